// The C ABI's one rule: no exception crosses it. Every entry point runs its body
// through guard(), which turns any C++ failure into a status and a last-error message.
#pragma once

#include <new>
#include <string>

#include "../common.h"

namespace tactic {

void set_last_error(const std::string &msg);
void clear_last_error();

template <class F>
tactic_status guard(F &&body) noexcept {
    try {
        clear_last_error();
        body();
        return TACTIC_OK;
    } catch (const Error &e) {
        set_last_error(e.what());
        return e.status;
    } catch (const std::bad_alloc &) {
        set_last_error("out of memory");
        return TACTIC_ERR_OUT_OF_MEMORY;
    } catch (const std::exception &e) {
        set_last_error(std::string("internal error: ") + e.what());
        return TACTIC_ERR_INTERNAL;
    } catch (...) {
        set_last_error("internal error: unknown exception");
        return TACTIC_ERR_INTERNAL;
    }
}

#define TACTIC_REQUIRE_ARG(cond, msg) TACTIC_CHECK(cond, TACTIC_ERR_INVALID_ARGUMENT, msg)

}  // namespace tactic
