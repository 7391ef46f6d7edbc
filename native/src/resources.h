// Memory the system can still give, so that a model or context too big for this
// machine is refused with numbers before anything is allocated (not killed later
// by the OOM killer).
#pragma once

#include <cstdint>
#include <string>

namespace tactic {

// Bytes that can still be allocated without swapping: MemAvailable from /proc/meminfo,
// lowered to the cgroup's remaining limit when the process runs in a container, and
// to TACTIC_MEMORY_LIMIT (bytes; also "512M", "4G") when that is set. 0 if unknown.
uint64_t available_memory();

// Throws Error(TACTIC_ERR_OUT_OF_MEMORY) naming `what`, the bytes needed and the bytes
// available when `bytes` would not fit. Does nothing when the amount is unknown.
void check_fits(uint64_t bytes, const std::string &what);

// "1.50 GiB", "12.0 MiB", "512 bytes": for messages.
std::string format_bytes(uint64_t bytes);

}  // namespace tactic
