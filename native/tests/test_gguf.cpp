// Native unit tests of the GGUF reader (GGUFFile::from_memory) and of resources.h:
// values of every metadata type read back exactly (v2 and v3, nested arrays), and
// every corruption gives tactic::Error with the right status and a useful message.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common.h"
#include "gguf.h"
#include "resources.h"

using namespace tactic;

namespace {

int g_failures = 0;
#define EXPECT(cond)                                                                  \
    do {                                                                              \
        if (!(cond)) {                                                                \
            std::fprintf(stderr, "%s:%d: EXPECT failed: %s\n", __FILE__, __LINE__, #cond); \
            g_failures++;                                                             \
        }                                                                             \
    } while (0)

// Little-endian GGUF writer, just enough to build test files.
struct W {
    std::vector<uint8_t> b;
    template <class T> W &put(T v) {
        uint8_t bytes[sizeof v];
        std::memcpy(bytes, &v, sizeof v);
        for (uint8_t x : bytes) b.push_back(x);
        return *this;
    }
    W &str(const std::string &s) {
        put<uint64_t>(s.size());
        b.insert(b.end(), s.begin(), s.end());
        return *this;
    }
    W &key(const std::string &k, GGUFType t) { return str(k).put<uint32_t>(uint32_t(t)); }
    W &pad(size_t al) {
        while (b.size() % al) b.push_back(0);
        return *this;
    }
};

W header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    W w;
    w.b = {'G', 'G', 'U', 'F'};
    w.put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
    return w;
}

// A file with one key of every type and two tensors (F32 [4,2], Q8_0 [32]).
std::vector<uint8_t> every_type_file(uint32_t version, uint32_t alignment = 0) {
    W w = header(version, 2, alignment ? 17 : 16);
    w.key("u8", GGUFType::U8).put<uint8_t>(200);
    w.key("i8", GGUFType::I8).put<int8_t>(-100);
    w.key("u16", GGUFType::U16).put<uint16_t>(60000);
    w.key("i16", GGUFType::I16).put<int16_t>(-30000);
    w.key("u32", GGUFType::U32).put<uint32_t>(4000000000u);
    w.key("i32", GGUFType::I32).put<int32_t>(-2000000000);
    w.key("u64", GGUFType::U64).put<uint64_t>((uint64_t(1) << 63) + 5);
    w.key("i64", GGUFType::I64).put<int64_t>(-(int64_t(1) << 62));
    w.key("f32", GGUFType::F32).put<float>(1.5f);
    w.key("f64", GGUFType::F64).put<double>(-2.25);
    w.key("bool", GGUFType::BOOL).put<uint8_t>(1);
    w.key("str", GGUFType::STRING).str("h\xc3\xa9llo");
    w.key("empty", GGUFType::STRING).str("");
    w.key("arr_i32", GGUFType::ARRAY).put<uint32_t>(uint32_t(GGUFType::I32)).put<uint64_t>(3);
    w.put<int32_t>(1).put<int32_t>(-2).put<int32_t>(3);
    w.key("arr_str", GGUFType::ARRAY).put<uint32_t>(uint32_t(GGUFType::STRING)).put<uint64_t>(2).str("a").str("bc");
    // [[1, 2], [[-7]]]: an array of arrays, the second itself nested.
    w.key("nested", GGUFType::ARRAY).put<uint32_t>(uint32_t(GGUFType::ARRAY)).put<uint64_t>(2);
    w.put<uint32_t>(uint32_t(GGUFType::U8)).put<uint64_t>(2).put<uint8_t>(1).put<uint8_t>(2);
    w.put<uint32_t>(uint32_t(GGUFType::ARRAY)).put<uint64_t>(1);
    w.put<uint32_t>(uint32_t(GGUFType::I64)).put<uint64_t>(1).put<int64_t>(-7);
    if (alignment) w.key("general.alignment", GGUFType::U32).put<uint32_t>(alignment);
    const size_t al = alignment ? alignment : 32;
    w.str("a").put<uint32_t>(2).put<uint64_t>(4).put<uint64_t>(2).put<uint32_t>(0).put<uint64_t>(0);
    w.str("b").put<uint32_t>(1).put<uint64_t>(32).put<uint32_t>(8).put<uint64_t>((32 + al - 1) / al * al);
    w.pad(al);
    for (int i = 0; i < 8; i++) w.put<float>(float(i));
    w.pad(al);
    for (int i = 0; i < 34; i++) w.put<uint8_t>(uint8_t(i));
    return w.b;
}

std::unique_ptr<GGUFFile> parse(const std::vector<uint8_t> &b) { return GGUFFile::from_memory(b.data(), b.size()); }

// The Error parsing `b` throws ("" if none), checking it has the status wanted.
std::string error_of(const std::vector<uint8_t> &b, tactic_status want = TACTIC_ERR_FORMAT) {
    try {
        parse(b);
    } catch (const Error &e) {
        if (e.status != want) {
            std::fprintf(stderr, "status %d, wanted %d: %s\n", int(e.status), int(want), e.what());
            g_failures++;
        }
        return e.what();
    }
    return "";
}

bool contains(const std::string &s, const std::string &part) {
    if (s.find(part) != std::string::npos) return true;
    std::fprintf(stderr, "message '%s' lacks '%s'\n", s.c_str(), part.c_str());
    return false;
}

void test_every_type(uint32_t version, uint32_t alignment) {
    const auto b = every_type_file(version, alignment);
    const auto f = parse(b);
    EXPECT(f->version() == version);
    EXPECT(f->kv().size() == (alignment ? 17u : 16u));
    EXPECT(f->alignment() == (alignment ? alignment : 32u));
    EXPECT(f->get_int("u8", 0) == 200 && f->find("u8")->type == GGUFType::U8);
    EXPECT(f->get_int("i8", 0) == -100);
    EXPECT(f->get_int("u16", 0) == 60000);
    EXPECT(f->get_int("i16", 0) == -30000);
    EXPECT(f->get_int("u32", 0) == 4000000000ll);
    EXPECT(f->get_int("i32", 0) == -2000000000ll);
    EXPECT(f->find("u64")->num.u == (uint64_t(1) << 63) + 5);
    EXPECT(f->find("u64")->to_string() == "9223372036854775813");
    bool threw = false;
    try { f->get_int("u64", 0); } catch (const Error &e) { threw = e.status == TACTIC_ERR_FORMAT; }
    EXPECT(threw);  // past INT64_MAX: a typed error, not a wrapped value
    EXPECT(f->get_int("i64", 0) == -(int64_t(1) << 62));
    EXPECT(f->get_float("f32", 0) == 1.5);
    EXPECT(f->get_float("f64", 0) == -2.25);
    EXPECT(f->get_float("i8", 0) == -100.0);
    EXPECT(f->get_bool("bool", false) == true);
    EXPECT(f->get_str("str", "") == "h\xc3\xa9llo");
    EXPECT(f->get_str("empty", "x").empty());
    EXPECT(f->get_str("absent", "fb") == "fb" && f->get_int("absent", 7) == 7);
    const GGUFValue *a = f->get_arr("arr_i32", GGUFType::I32);
    EXPECT(a && a->arr.size() == 3 && a->arr[1].as_int() == -2 && a->to_string() == "[1, -2, 3]");
    const GGUFValue *s = f->get_arr("arr_str", GGUFType::STRING);
    EXPECT(s && s->arr.size() == 2 && s->arr[1].str == "bc");
    const GGUFValue *n = f->get_arr("nested", GGUFType::ARRAY);
    EXPECT(n && n->arr.size() == 2);
    if (n && n->arr.size() == 2) {
        EXPECT(n->arr[0].elem_type == GGUFType::U8 && n->arr[0].arr.size() == 2 && n->arr[0].arr[1].as_int() == 2);
        EXPECT(n->arr[1].elem_type == GGUFType::ARRAY && n->arr[1].arr[0].arr[0].as_int() == -7);
        EXPECT(n->to_string() == "[[1, 2], [[-7]]]");
    }
    threw = false;
    try { f->get_arr("arr_i32", GGUFType::STRING); } catch (const Error &) { threw = true; }
    EXPECT(threw);
    threw = false;
    try { f->get_str("u8", ""); } catch (const Error &e) { threw = contains(e.what(), "'u8'"); }
    EXPECT(threw);

    EXPECT(f->tensors().size() == 2);
    const GGUFTensor *ta = f->tensor("a");
    const GGUFTensor *tb = f->tensor("b");
    EXPECT(ta && ta->n_dims == 2 && ta->ne[0] == 4 && ta->ne[1] == 2 && ta->nbytes == 32 && ta->n_elements() == 8);
    EXPECT(tb && tb->type == 8 && tb->nbytes == 34);
    if (ta) {
        float v[8];
        std::memcpy(v, ta->data, sizeof v);
        EXPECT(v[0] == 0.f && v[7] == 7.f);
        EXPECT(f->data_offset() % f->alignment() == 0 && ta->offset % f->alignment() == 0);
    }
    if (tb) EXPECT(tb->data[0] == 0 && tb->data[33] == 33);
}

// Patches a little-endian value at byte `at`.
template <class T> std::vector<uint8_t> patched(std::vector<uint8_t> b, size_t at, T v) {
    std::memcpy(b.data() + at, &v, sizeof v);
    return b;
}

// Byte offset of the last occurrence of `s` (a key or tensor name) in b.
size_t find_bytes(const std::vector<uint8_t> &b, const std::string &s) {
    for (size_t i = b.size() - s.size() + 1; i-- > 0;)
        if (std::memcmp(b.data() + i, s.data(), s.size()) == 0) return i;
    std::fprintf(stderr, "'%s' not found\n", s.c_str());
    std::abort();
}

void test_truncations() {
    const auto b = every_type_file(3);
    // Every prefix shorter than the file is refused with a FORMAT error.
    for (size_t n = 0; n < b.size(); n++) {
        std::vector<uint8_t> t(b.begin(), b.begin() + long(n));
        const std::string msg = error_of(t);
        if (msg.empty()) {
            std::fprintf(stderr, "prefix of %zu bytes parsed\n", n);
            g_failures++;
        }
    }
    EXPECT(contains(error_of({b.begin(), b.begin() + 30}), "truncated"));
    EXPECT(contains(error_of({b.begin(), b.begin() + long(b.size() / 2)}), "truncated at byte"));
    EXPECT(contains(error_of({b.begin(), b.end() - 1}), "runs past the end"));
}

void test_corruptions() {
    const auto b = every_type_file(3);
    EXPECT(contains(error_of(patched<uint32_t>(b, 0, 0x4c4d4747u)), "bad magic"));  // "GGUF" reversed
    EXPECT(contains(error_of(patched<uint32_t>(b, 4, 1), TACTIC_ERR_UNSUPPORTED), "version 1"));
    EXPECT(contains(error_of(patched<uint32_t>(b, 4, 4)), "unknown version 4"));
    EXPECT(contains(error_of(patched<uint32_t>(b, 4, 0x03000000u), TACTIC_ERR_UNSUPPORTED), "big-endian"));
    EXPECT(contains(error_of(patched<uint64_t>(b, 8, uint64_t(1) << 62)), "tensor count"));
    EXPECT(contains(error_of(patched<uint64_t>(b, 16, ~uint64_t(0))), "metadata count"));
    // Key string length far past the end.
    EXPECT(contains(error_of(patched<uint64_t>(b, 24, uint64_t(1) << 40)), "too large"));
    EXPECT(contains(error_of(patched<uint64_t>(b, 24, 1000000)), "truncated"));
    // Unknown value type for key "u8" (its type tag follows the 2-byte key).
    const size_t u8_at = find_bytes(b, "u8");
    EXPECT(contains(error_of(patched<uint32_t>(b, u8_at + 2, 13)), "unknown value type 13"));
    // Bool of 2.
    const size_t bool_at = find_bytes(b, "bool");
    EXPECT(contains(error_of(patched<uint8_t>(b, bool_at + 4 + 4, 2)), "bool"));
    // Duplicate key: rename "i8" to "u8".
    const size_t i8_at = find_bytes(b, "i8");
    EXPECT(contains(error_of(patched<char>(b, i8_at, 'u')), "duplicate metadata key 'u8'"));
    // Array: unknown element type, a count past the end, a count that overflows size*count.
    const size_t arr_at = find_bytes(b, "arr_i32") + 7 + 4;
    EXPECT(contains(error_of(patched<uint32_t>(b, arr_at, 99)), "unknown array element type 99"));
    EXPECT(contains(error_of(patched<uint64_t>(b, arr_at + 4, 1000000)), "past the end"));
    EXPECT(contains(error_of(patched<uint64_t>(b, arr_at + 4, (uint64_t(1) << 62) + 1)), "too large"));
    // A string inside an array whose length runs past the end.
    const size_t sarr_at = find_bytes(b, "arr_str") + 7 + 4 + 4 + 8;
    EXPECT(contains(error_of(patched<uint64_t>(b, sarr_at, 5000)), "truncated"));

    // Tensor table: name "a" is preceded by its length 1.
    const size_t ta = find_bytes(b, std::string("\x01\0\0\0\0\0\0\0a", 9)) + 9;
    EXPECT(contains(error_of(patched<uint32_t>(b, ta, 0)), "dimensions"));
    EXPECT(contains(error_of(patched<uint32_t>(b, ta, 5)), "dimensions"));
    EXPECT(contains(error_of(patched<uint64_t>(patched<uint64_t>(b, ta + 4, uint64_t(1) << 40), ta + 12, uint64_t(1) << 40)),
                    "overflows"));
    EXPECT(contains(error_of(patched<uint64_t>(b, ta + 4, ~uint64_t(0))), "overflows"));
    EXPECT(contains(error_of(patched<uint64_t>(b, ta + 4, uint64_t(1) << 40)), "past the end"));  // huge dimension
    EXPECT(contains(error_of(patched<uint32_t>(b, ta + 20, 4)), "unknown tensor type 4"));
    EXPECT(contains(error_of(patched<uint32_t>(b, ta + 20, 1000)), "unknown tensor type"));
    EXPECT(contains(error_of(patched<uint32_t>(b, ta + 20, 8)), "block size"));  // Q8_0 with a row of 4
    EXPECT(contains(error_of(patched<uint64_t>(b, ta + 24, 4)), "not aligned"));
    EXPECT(contains(error_of(patched<uint64_t>(b, ta + 24, 32)), "does not follow"));
    EXPECT(contains(error_of(patched<uint64_t>(b, ta + 24, ~uint64_t(31))), "does not follow"));
    // Duplicate tensor name: rename "b" to "a".
    const size_t tb = find_bytes(b, std::string("\x01\0\0\0\0\0\0\0b", 9)) + 8;
    EXPECT(contains(error_of(patched<char>(b, tb, 'a')), "duplicate tensor name 'a'"));
    // Name longer than ggml allows.
    EXPECT(contains(error_of(patched<uint64_t>(b, tb - 8, 64)), "name length"));

    // Alignment: not a power of two, and of the wrong type.
    const auto a = every_type_file(3, 64);
    const size_t al_at = find_bytes(a, "general.alignment") + 17;
    EXPECT(contains(error_of(patched<uint32_t>(a, al_at + 4, 48)), "power of two"));
    EXPECT(contains(error_of(patched<uint32_t>(a, al_at + 4, 0)), "power of two"));
    EXPECT(contains(error_of(patched<uint32_t>(a, al_at, uint32_t(GGUFType::I32))), "u32"));

    // Arrays nested past the depth limit.
    W deep = header(3, 0, 1);
    deep.key("deep", GGUFType::ARRAY);
    for (int i = 0; i < 20; i++) deep.put<uint32_t>(uint32_t(GGUFType::ARRAY)).put<uint64_t>(1);
    deep.put<uint32_t>(uint32_t(GGUFType::U8)).put<uint64_t>(0);
    EXPECT(contains(error_of(deep.b), "nested too deeply"));
    // Empty key.
    W empty = header(3, 0, 1);
    empty.key("", GGUFType::U8).put<uint8_t>(0);
    EXPECT(contains(error_of(empty.b), "empty"));
    // An array of arrays whose count could only be satisfied by 12-byte headers.
    W aa = header(3, 0, 1);
    aa.key("aa", GGUFType::ARRAY).put<uint32_t>(uint32_t(GGUFType::ARRAY)).put<uint64_t>(1000);
    for (int i = 0; i < 100; i++) aa.put<uint8_t>(0);
    EXPECT(contains(error_of(aa.b), "past the end"));
}

void test_minimal_files() {
    // Header only: valid, nothing in it.
    const auto f = parse(header(3, 0, 0).b);
    EXPECT(f->kv().empty() && f->tensors().empty() && f->version() == 3);
    EXPECT(contains(error_of({}), "bad magic"));
    EXPECT(contains(error_of({'G', 'G', 'U'}), "bad magic"));
    EXPECT(contains(error_of({'G', 'G', 'U', 'F'}), "truncated"));
}

void test_resources() {
    EXPECT(format_bytes(512) == "512 bytes");
    EXPECT(format_bytes(3ull << 20) == "3.0 MiB");
    EXPECT(format_bytes(3ull << 30) == "3.00 GiB");
    const uint64_t avail = available_memory();
    EXPECT(avail > (16ull << 20));  // /proc/meminfo is readable here
    check_fits(1 << 20, "a small buffer");  // fits: no throw
    setenv("TACTIC_MEMORY_LIMIT", "100M", 1);
    EXPECT(available_memory() <= (100ull << 20));
    bool threw = false;
    try {
        check_fits(200ull << 20, "the KV cache");
    } catch (const Error &e) {
        threw = e.status == TACTIC_ERR_OUT_OF_MEMORY && contains(e.what(), "the KV cache needs 200.0 MiB") &&
                contains(e.what(), "100.0 MiB");
    }
    EXPECT(threw);
    // The metadata budget: a file asking for more values than the limit allows.
    setenv("TACTIC_MEMORY_LIMIT", "1M", 1);
    W big = header(3, 0, 1);
    big.key("many", GGUFType::ARRAY).put<uint32_t>(uint32_t(GGUFType::U8)).put<uint64_t>(1u << 21);
    big.b.resize(big.b.size() + (1u << 21));
    const std::string msg = error_of(big.b, TACTIC_ERR_OUT_OF_MEMORY);
    EXPECT(contains(msg, "metadata") && contains(msg, "needs"));
    unsetenv("TACTIC_MEMORY_LIMIT");
}

}  // namespace

int main() {
    const std::vector<std::pair<const char *, std::function<void()>>> tests = {
        {"every_type_v3", [] { test_every_type(3, 0); }},
        {"every_type_v2", [] { test_every_type(2, 0); }},
        {"every_type_align64", [] { test_every_type(3, 64); }},
        {"truncations", test_truncations},
        {"corruptions", test_corruptions},
        {"minimal_files", test_minimal_files},
        {"resources", test_resources},
    };
    for (const auto &t : tests) {
        const int before = g_failures;
        try {
            t.second();
        } catch (const std::exception &e) {
            std::fprintf(stderr, "%s: unexpected exception: %s\n", t.first, e.what());
            g_failures++;
        }
        std::printf("%s %s\n", g_failures == before ? "ok  " : "FAIL", t.first);
    }
    return g_failures ? 1 : 0;
}
