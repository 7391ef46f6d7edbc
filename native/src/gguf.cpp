// GGUF reader. Every read goes through Reader, which refuses to step past the end;
// every size is computed with overflow checks before it is trusted.
#include "gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>

#include "quant.h"
#include "resources.h"

namespace tactic {

namespace {

constexpr uint64_t kMaxStringLen = 1ull << 30;  // as ggml: strings and arrays capped
constexpr uint64_t kMaxArrayLen = 1ull << 30;
constexpr int kMaxArrayDepth = 8;
constexpr uint64_t kMaxTensorName = 63;

[[noreturn]] void bad(const std::string &msg) { fail(TACTIC_ERR_FORMAT, "invalid GGUF: " + msg); }

struct Reader {
    const uint8_t *p;
    size_t size;
    size_t pos = 0;
    // Metadata values allocated so far. Each element of an array is a GGUFValue of
    // ~100 bytes, so a file can ask for far more memory than its own size: past a
    // threshold the total is checked against the memory available.
    uint64_t n_values = 0;
    uint64_t next_check = uint64_t(1) << 20;

    size_t left() const { return size - pos; }
    void need(uint64_t n, const char *what) {
        if (n > left()) {
            char buf[160];
            std::snprintf(buf, sizeof buf, "truncated at byte %zu reading %s (%" PRIu64
                          " bytes needed, %zu left)", pos, what, n, left());
            bad(buf);
        }
    }
    template <class T> T get(const char *what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, p + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }
    std::string str(const char *what) {
        const uint64_t n = get<uint64_t>(what);
        if (n > kMaxStringLen) bad(std::string(what) + ": string length " + std::to_string(n) + " is too large");
        need(n, what);
        std::string s(reinterpret_cast<const char *>(p + pos), size_t(n));
        pos += size_t(n);
        return s;
    }
};

size_t scalar_size(GGUFType t) {
    switch (t) {
        case GGUFType::U8: case GGUFType::I8: case GGUFType::BOOL: return 1;
        case GGUFType::U16: case GGUFType::I16: return 2;
        case GGUFType::U32: case GGUFType::I32: case GGUFType::F32: return 4;
        case GGUFType::U64: case GGUFType::I64: case GGUFType::F64: return 8;
        default: return 0;
    }
}

bool known_type(uint32_t t) { return t <= 12; }

void read_scalar(Reader &r, GGUFType t, GGUFValue &v, const std::string &key) {
    v.type = t;
    switch (t) {
        case GGUFType::U8: v.num.u = r.get<uint8_t>("u8"); break;
        case GGUFType::I8: v.num.i = r.get<int8_t>("i8"); break;
        case GGUFType::U16: v.num.u = r.get<uint16_t>("u16"); break;
        case GGUFType::I16: v.num.i = r.get<int16_t>("i16"); break;
        case GGUFType::U32: v.num.u = r.get<uint32_t>("u32"); break;
        case GGUFType::I32: v.num.i = r.get<int32_t>("i32"); break;
        case GGUFType::U64: v.num.u = r.get<uint64_t>("u64"); break;
        case GGUFType::I64: v.num.i = r.get<int64_t>("i64"); break;
        case GGUFType::F32: v.num.f = r.get<float>("f32"); break;
        case GGUFType::F64: v.num.f = r.get<double>("f64"); break;
        case GGUFType::BOOL: {
            const uint8_t b = r.get<uint8_t>("bool");
            if (b > 1) bad("key '" + key + "': bool value " + std::to_string(b) + " is not 0 or 1");
            v.num.u = b;
            break;
        }
        case GGUFType::STRING: v.str = r.str("string value"); break;
        default: bad("key '" + key + "': unknown value type " + std::to_string(uint32_t(t)));
    }
}

void read_value(Reader &r, GGUFType t, GGUFValue &v, const std::string &key, int depth) {
    if (t != GGUFType::ARRAY) return read_scalar(r, t, v, key);
    if (depth >= kMaxArrayDepth) bad("key '" + key + "': arrays nested too deeply");
    v.type = GGUFType::ARRAY;
    const uint32_t et = r.get<uint32_t>("array element type");
    if (!known_type(et)) bad("key '" + key + "': unknown array element type " + std::to_string(et));
    v.elem_type = GGUFType(et);
    const uint64_t n = r.get<uint64_t>("array length");
    if (n > kMaxArrayLen) bad("key '" + key + "': array length " + std::to_string(n) + " is too large");
    // Each element takes at least its scalar size (8 for a string's length, 12 for an
    // array header): refuse counts the remaining bytes cannot hold before allocating.
    const size_t min_elem = scalar_size(v.elem_type) ? scalar_size(v.elem_type)
                            : v.elem_type == GGUFType::STRING ? 8 : 12;
    if (n > r.left() / min_elem) bad("key '" + key + "': array of " + std::to_string(n) + " elements runs past the end of the file");
    r.n_values += n;
    if (r.n_values >= r.next_check) {
        check_fits(r.n_values * sizeof(GGUFValue), "the metadata of this GGUF file (" + std::to_string(r.n_values) + " values)");
        r.next_check = r.n_values * 2;
    }
    v.arr.resize(size_t(n));
    for (auto &e : v.arr) read_value(r, v.elem_type, e, key, depth + 1);
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t *out) { return __builtin_mul_overflow(a, b, out); }

}  // namespace

bool GGUFValue::is_int() const {
    switch (type) {
        case GGUFType::U8: case GGUFType::I8: case GGUFType::U16: case GGUFType::I16:
        case GGUFType::U32: case GGUFType::I32: case GGUFType::U64: case GGUFType::I64:
        case GGUFType::BOOL: return true;
        default: return false;
    }
}

int64_t GGUFValue::as_int() const {
    switch (type) {
        case GGUFType::U8: case GGUFType::U16: case GGUFType::U32: case GGUFType::BOOL:
            return int64_t(num.u);
        case GGUFType::U64:
            if (num.u > uint64_t(INT64_MAX)) fail(TACTIC_ERR_FORMAT, "integer value out of range");
            return int64_t(num.u);
        case GGUFType::I8: case GGUFType::I16: case GGUFType::I32: case GGUFType::I64:
            return num.i;
        default: fail(TACTIC_ERR_FORMAT, "value is not an integer");
    }
}

double GGUFValue::as_float() const {
    if (is_float()) return num.f;
    return double(as_int());
}

std::string GGUFValue::to_string() const {
    switch (type) {
        case GGUFType::STRING: return str;
        case GGUFType::F32: case GGUFType::F64: {
            char b[64];
            std::snprintf(b, sizeof b, "%.9g", num.f);
            return b;
        }
        case GGUFType::BOOL: return num.u ? "true" : "false";
        case GGUFType::ARRAY: {
            std::string s = "[";
            for (size_t i = 0; i < arr.size(); i++) {
                if (i) s += ", ";
                if (i == 16) { s += "... (" + std::to_string(arr.size()) + " items)"; break; }
                s += arr[i].to_string();
            }
            return s + "]";
        }
        case GGUFType::U8: case GGUFType::U16: case GGUFType::U32: case GGUFType::U64:
            return std::to_string(num.u);  // u64 values past INT64_MAX are valid too
        default: return std::to_string(num.i);
    }
}

std::unique_ptr<GGUFFile> GGUFFile::open(const std::string &path, bool use_mmap) {
    std::unique_ptr<GGUFFile> f(new GGUFFile());
    f->path_ = path;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(TACTIC_ERR_IO, "cannot open '" + path + "': " + std::strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        fail(TACTIC_ERR_IO, "'" + path + "' is not a regular file");
    }
    f->size_ = size_t(st.st_size);
    if (f->size_ < 24) {
        ::close(fd);
        fail(TACTIC_ERR_FORMAT, "'" + path + "' is not a GGUF file (only " + std::to_string(f->size_) + " bytes)");
    }
    if (use_mmap) {
        void *m = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
        ::close(fd);
        if (m == MAP_FAILED) fail(TACTIC_ERR_IO, "cannot map '" + path + "': " + std::strerror(errno));
        f->mapping_ = m;
        f->base_ = static_cast<const uint8_t *>(m);
    } else {
        try {
            check_fits(f->size_, "reading '" + path + "' into memory");
            f->buffer_.resize(f->size_);
        } catch (const Error &) {
            ::close(fd);
            throw;
        } catch (const std::bad_alloc &) {
            ::close(fd);
            fail(TACTIC_ERR_OUT_OF_MEMORY, "cannot allocate " + std::to_string(f->size_) + " bytes to read '" + path + "'");
        }
        size_t got = 0;
        while (got < f->size_) {
            const ssize_t n = ::read(fd, f->buffer_.data() + got, f->size_ - got);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                ::close(fd);
                fail(TACTIC_ERR_IO, "cannot read '" + path + "'");
            }
            got += size_t(n);
        }
        ::close(fd);
        f->base_ = f->buffer_.data();
    }
    try {
        f->parse();
    } catch (const Error &e) {
        fail(e.status, "'" + path + "': " + e.what());
    }
    return f;
}

std::unique_ptr<GGUFFile> GGUFFile::from_memory(const uint8_t *data, size_t size) {
    std::unique_ptr<GGUFFile> f(new GGUFFile());
    f->path_ = "<memory>";
    f->buffer_.assign(data, data + size);
    f->base_ = f->buffer_.data();
    f->size_ = size;
    f->parse();
    return f;
}

GGUFFile::~GGUFFile() {
    if (mapping_) munmap(mapping_, size_);
}

void GGUFFile::parse() {
    Reader r{base_, size_};
    if (size_ < 4 || std::memcmp(base_, "GGUF", 4) != 0) bad("not a GGUF file (bad magic)");
    r.pos = 4;
    version_ = r.get<uint32_t>("version");
    if ((version_ & 0xffff) == 0 && version_ != 0)
        fail(TACTIC_ERR_UNSUPPORTED, "big-endian GGUF files are not supported");
    if (version_ == 1) fail(TACTIC_ERR_UNSUPPORTED, "GGUF version 1 is not supported (only 2 and 3)");
    if (version_ != 2 && version_ != 3) bad("unknown version " + std::to_string(version_));
    const uint64_t n_tensors = r.get<uint64_t>("tensor count");
    const uint64_t n_kv = r.get<uint64_t>("metadata count");
    // A KV pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor info 8+4+8+4+8.
    if (n_kv > r.left() / 13)
        bad("metadata count " + std::to_string(n_kv) + " exceeds what the file can hold (corrupt or truncated)");
    if (n_tensors > r.left() / 32)
        bad("tensor count " + std::to_string(n_tensors) + " exceeds what the file can hold (corrupt or truncated)");

    kv_.reserve(size_t(n_kv));
    for (uint64_t i = 0; i < n_kv; i++) {
        std::string key = r.str("metadata key");
        if (key.empty()) bad("metadata key " + std::to_string(i) + " is empty");
        if (kv_index_.count(key)) bad("duplicate metadata key '" + key + "'");
        const uint32_t t = r.get<uint32_t>("value type");
        if (!known_type(t)) bad("key '" + key + "': unknown value type " + std::to_string(t));
        GGUFValue v;
        read_value(r, GGUFType(t), v, key, 0);
        kv_index_[key] = kv_.size();
        kv_.emplace_back(std::move(key), std::move(v));
    }

    if (const GGUFValue *a = find("general.alignment")) {
        if (a->type != GGUFType::U32) bad("general.alignment must be a u32");
        const uint64_t al = a->num.u;
        if (al == 0 || (al & (al - 1)) != 0) bad("general.alignment " + std::to_string(al) + " is not a power of two");
        alignment_ = uint32_t(al);
    }

    tensors_.reserve(size_t(n_tensors));
    for (uint64_t i = 0; i < n_tensors; i++) {
        GGUFTensor t;
        t.name = r.str("tensor name");
        if (t.name.empty() || t.name.size() > kMaxTensorName)
            bad("tensor " + std::to_string(i) + ": name length " + std::to_string(t.name.size()) + " is not in 1..63");
        if (tensor_index_.count(t.name)) bad("duplicate tensor name '" + t.name + "'");
        const uint32_t nd = r.get<uint32_t>("tensor dims");
        if (nd == 0 || nd > 4) bad("tensor '" + t.name + "': " + std::to_string(nd) + " dimensions (1..4 allowed)");
        t.n_dims = int(nd);
        uint64_t n_el = 1;
        for (uint32_t d = 0; d < nd; d++) {
            const uint64_t ne = r.get<uint64_t>("tensor dim");
            if (ne > uint64_t(INT64_MAX) || mul_overflows(n_el, ne, &n_el) || n_el > uint64_t(INT64_MAX))
                bad("tensor '" + t.name + "': element count overflows");
            t.ne[d] = int64_t(ne);
        }
        t.type = r.get<uint32_t>("tensor type");
        const TypeTraits &tt = type_traits(t.type);
        if (tt.block_size == 0) bad("tensor '" + t.name + "': unknown tensor type " + std::to_string(t.type));
        if (t.ne[0] % tt.block_size != 0)
            bad("tensor '" + t.name + "': row length " + std::to_string(t.ne[0]) + " is not a multiple of the " +
                tt.name + " block size " + std::to_string(tt.block_size));
        uint64_t nb = uint64_t(t.ne[0] / tt.block_size);
        for (int d = 1; d < 4; d++)
            if (mul_overflows(nb, uint64_t(t.ne[d]), &nb)) bad("tensor '" + t.name + "': byte size overflows");
        if (mul_overflows(nb, tt.type_size, &nb)) bad("tensor '" + t.name + "': byte size overflows");
        t.nbytes = nb;
        t.offset = r.get<uint64_t>("tensor offset");
        tensor_index_[t.name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }

    const uint64_t al = alignment_;
    data_start_ = n_tensors ? (r.pos + al - 1) / al * al : r.pos;
    if (data_start_ > size_) bad("data section starts past the end of the file");
    const uint64_t data_size = size_ - data_start_;
    uint64_t expect = 0;
    for (auto &t : tensors_) {
        if (t.offset % al != 0) bad("tensor '" + t.name + "': offset " + std::to_string(t.offset) + " is not aligned to " + std::to_string(al));
        if (t.offset != expect)
            bad("tensor '" + t.name + "': offset " + std::to_string(t.offset) + " does not follow the previous tensor (expected " + std::to_string(expect) + ")");
        if (t.offset > data_size || t.nbytes > data_size - t.offset)
            bad("tensor '" + t.name + "': data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                ") runs past the end of the file (data section is " + std::to_string(data_size) + " bytes; truncated file?)");
        t.data = base_ + data_start_ + t.offset;
        const uint64_t padded = (t.nbytes + al - 1) / al * al;
        if (padded < t.nbytes || expect + padded < expect) bad("tensor '" + t.name + "': size overflows");
        expect += padded;
    }
}

const GGUFValue *GGUFFile::find(const std::string &key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GGUFTensor *GGUFFile::tensor(const std::string &name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

int64_t GGUFFile::get_int(const std::string &key, int64_t fallback) const {
    const GGUFValue *v = find(key);
    if (!v) return fallback;
    if (!v->is_int()) fail(TACTIC_ERR_FORMAT, "metadata '" + key + "' should be an integer");
    return v->as_int();
}

double GGUFFile::get_float(const std::string &key, double fallback) const {
    const GGUFValue *v = find(key);
    if (!v) return fallback;
    if (!v->is_int() && !v->is_float()) fail(TACTIC_ERR_FORMAT, "metadata '" + key + "' should be a number");
    return v->as_float();
}

bool GGUFFile::get_bool(const std::string &key, bool fallback) const {
    const GGUFValue *v = find(key);
    if (!v) return fallback;
    if (!v->is_int()) fail(TACTIC_ERR_FORMAT, "metadata '" + key + "' should be a bool");
    return v->as_int() != 0;
}

std::string GGUFFile::get_str(const std::string &key, const std::string &fallback) const {
    const GGUFValue *v = find(key);
    if (!v) return fallback;
    if (v->type != GGUFType::STRING) fail(TACTIC_ERR_FORMAT, "metadata '" + key + "' should be a string");
    return v->str;
}

const GGUFValue *GGUFFile::get_arr(const std::string &key, GGUFType elem) const {
    const GGUFValue *v = find(key);
    if (!v) return nullptr;
    if (v->type != GGUFType::ARRAY || v->elem_type != elem)
        fail(TACTIC_ERR_FORMAT, "metadata '" + key + "' should be an array of type " + std::to_string(uint32_t(elem)));
    return v;
}

}  // namespace tactic
