// The failure counter and CHECK macro the native unit tests that compile the engine's
// sources in share: a failed CHECK prints where and counts, and main returns non-zero.
#pragma once

#include <cstdio>

static int g_failures = 0;
#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            g_failures++;                                                        \
        }                                                                        \
    } while (0)
