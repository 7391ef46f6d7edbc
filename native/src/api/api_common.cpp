// Library-wide entry points: last error, version, build description.
#include <string>

#include "../quant.h"
#include "guard.h"

namespace tactic {
namespace {
thread_local std::string g_last_error;
}
void set_last_error(const std::string &msg) { g_last_error = msg; }
void clear_last_error() { g_last_error.clear(); }
}  // namespace tactic

#ifndef TACTIC_VERSION
#define TACTIC_VERSION "0.1.0"
#endif

extern "C" {

TACTIC_API const char *tactic_last_error(void) { return tactic::g_last_error.c_str(); }

TACTIC_API const char *tactic_version(void) { return TACTIC_VERSION; }

TACTIC_API const char *tactic_build_info(void) {
    static const std::string info = std::string("simd=") + tactic::simd_name() +
#ifdef TACTIC_HAVE_CUDA
                                    " cuda=compiled";
#else
                                    " cuda=off";
#endif
    return info.c_str();
}

}  // extern "C"
