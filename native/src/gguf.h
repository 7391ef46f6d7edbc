// GGUF container reader: maps the file, parses metadata and the tensor table, and
// checks every count, offset and size against the file before anything uses it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common.h"

namespace tactic {

enum class GGUFType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

// One metadata value. Arrays hold their elements (nested arrays allowed).
struct GGUFValue {
    GGUFType type = GGUFType::U8;
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num{};                        // scalars (bool as u)
    std::string str;                // STRING
    GGUFType elem_type = GGUFType::U8;  // ARRAY
    std::vector<GGUFValue> arr;     // ARRAY

    bool is_int() const;
    bool is_float() const { return type == GGUFType::F32 || type == GGUFType::F64; }
    int64_t as_int() const;    // any integer or bool type; throws on others
    double as_float() const;   // any numeric type
    std::string to_string() const;  // readable rendering (strings verbatim)
};

struct GGUFTensor {
    std::string name;
    uint32_t type = 0;          // ggml type id
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};
    uint64_t offset = 0;        // relative to the data section
    uint64_t nbytes = 0;
    const uint8_t *data = nullptr;  // into the mapping / buffer

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class GGUFFile {
public:
    // Opens and validates; throws Error(TACTIC_ERR_IO / TACTIC_ERR_FORMAT / ...).
    static std::unique_ptr<GGUFFile> open(const std::string &path, bool use_mmap = true);
    // Parses an in-memory image (copied). Used by tests and fuzzers.
    static std::unique_ptr<GGUFFile> from_memory(const uint8_t *data, size_t size);
    ~GGUFFile();
    GGUFFile(const GGUFFile &) = delete;
    GGUFFile &operator=(const GGUFFile &) = delete;

    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    const std::string &path() const { return path_; }
    size_t file_size() const { return size_; }

    const std::vector<std::pair<std::string, GGUFValue>> &kv() const { return kv_; }
    const GGUFValue *find(const std::string &key) const;
    bool has(const std::string &key) const { return find(key) != nullptr; }
    // Typed getters: the fallback when absent; an Error(FORMAT) if present with a wrong type.
    int64_t get_int(const std::string &key, int64_t fallback) const;
    double get_float(const std::string &key, double fallback) const;
    bool get_bool(const std::string &key, bool fallback) const;
    std::string get_str(const std::string &key, const std::string &fallback) const;
    // Arrays: nullptr when absent; Error(FORMAT) when present but not an array of `elem`.
    const GGUFValue *get_arr(const std::string &key, GGUFType elem) const;

    const std::vector<GGUFTensor> &tensors() const { return tensors_; }
    const GGUFTensor *tensor(const std::string &name) const;
    uint64_t data_offset() const { return data_start_; }

private:
    GGUFFile() = default;
    void parse();

    std::string path_;
    const uint8_t *base_ = nullptr;
    size_t size_ = 0;
    void *mapping_ = nullptr;        // mmap'ed region, or
    std::vector<uint8_t> buffer_;    // a copy in memory
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_start_ = 0;
    std::vector<std::pair<std::string, GGUFValue>> kv_;
    std::map<std::string, size_t> kv_index_;
    std::vector<GGUFTensor> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

}  // namespace tactic
