// Available memory from /proc/meminfo and the cgroup limits (v2, then v1).
#include "resources.h"

#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common.h"

namespace tactic {

namespace {

constexpr uint64_t kUnlimited = UINT64_MAX;

// The first unsigned number in a small text file, or kUnlimited if absent/"max".
uint64_t read_u64_file(const char *path) {
    FILE *f = std::fopen(path, "re");
    if (!f) return kUnlimited;
    char buf[64] = {0};
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = 0;
    if (!std::isdigit(static_cast<unsigned char>(buf[0]))) return kUnlimited;  // "max"
    return std::strtoull(buf, nullptr, 10);
}

uint64_t meminfo_available() {
    FILE *f = std::fopen("/proc/meminfo", "re");
    if (!f) return kUnlimited;
    char line[256];
    uint64_t kb = 0;
    bool found = false;
    while (std::fgets(line, sizeof line, f)) {
        if (std::sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1) {
            found = true;
            break;
        }
    }
    std::fclose(f);
    return found ? kb * 1024 : kUnlimited;
}

// Room left under this process's cgroup memory limit (containers): limit - usage.
uint64_t cgroup_available() {
    uint64_t limit = read_u64_file("/sys/fs/cgroup/memory.max");  // v2
    uint64_t usage = read_u64_file("/sys/fs/cgroup/memory.current");
    if (limit == kUnlimited) {
        limit = read_u64_file("/sys/fs/cgroup/memory/memory.limit_in_bytes");  // v1
        usage = read_u64_file("/sys/fs/cgroup/memory/memory.usage_in_bytes");
        if (limit >= (uint64_t(1) << 60)) return kUnlimited;  // v1 reports "no limit" as ~2^63
    }
    if (limit == kUnlimited) return kUnlimited;
    if (usage == kUnlimited) usage = 0;
    return usage >= limit ? 0 : limit - usage;
}

// TACTIC_MEMORY_LIMIT: a byte count with an optional K/M/G suffix (powers of 1024).
uint64_t env_limit() {
    const char *s = std::getenv("TACTIC_MEMORY_LIMIT");
    if (!s || !*s) return kUnlimited;
    char *end = nullptr;
    const double v = std::strtod(s, &end);
    if (end == s || !(v >= 0)) return kUnlimited;
    double mul = 1;
    switch (std::toupper(static_cast<unsigned char>(*end))) {
        case 'K': mul = 1024.0; break;
        case 'M': mul = 1024.0 * 1024; break;
        case 'G': mul = 1024.0 * 1024 * 1024; break;
        case 'T': mul = 1024.0 * 1024 * 1024 * 1024; break;
        default: break;
    }
    const double b = v * mul;
    return b >= 1.8e19 ? kUnlimited : uint64_t(b);
}

// The smallest of the three bounds; kUnlimited when none is known.
uint64_t available_or_unlimited() {
    uint64_t a = meminfo_available();
    const uint64_t c = cgroup_available();
    const uint64_t e = env_limit();
    if (c < a) a = c;
    if (e < a) a = e;
    return a;
}

}  // namespace

uint64_t available_memory() {
    const uint64_t a = available_or_unlimited();
    return a == kUnlimited ? 0 : a;
}

void check_fits(uint64_t bytes, const std::string &what) {
    const uint64_t avail = available_or_unlimited();
    if (avail == kUnlimited || bytes <= avail) return;  // unknown: the allocation itself decides
    fail(TACTIC_ERR_OUT_OF_MEMORY, what + " needs " + format_bytes(bytes) + " but only " + format_bytes(avail) +
                                       " of memory is available (MemAvailable / cgroup limit / TACTIC_MEMORY_LIMIT)");
}

std::string format_bytes(uint64_t bytes) {
    char buf[48];
    const double b = double(bytes);
    if (bytes >= (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(1 << 30));
    else if (bytes >= (uint64_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", b / double(1 << 20));
    else if (bytes >= 1024) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
    else std::snprintf(buf, sizeof buf, "%" PRIu64 " bytes", bytes);
    return buf;
}

}  // namespace tactic
