"""Choosing n_ctx: the model's training context, capped so that the KV cache fits in
what memory allows, and describing the KV memory a context takes."""

from __future__ import annotations

from ._native import check, ffi, lib

# The KV cache may take at most this share of the memory available at load time.
KV_MEMORY_SHARE = 0.5
_ROUND = 256  # n_ctx is cut down to a multiple of this


def kv_memory_estimate(model_handle, params, n_ctx: int) -> dict:
    """reserved / flat KV bytes of a context of n_ctx tokens with these params."""
    cp = ffi.new("tactic_context_params *", params)
    cp.n_ctx = n_ctx
    out = ffi.new("tactic_kv_memory *")
    check(lib.tactic_kv_memory_estimate(model_handle, cp, out), "kv_memory_estimate")
    return {"reserved": int(out.reserved), "flat": int(out.flat)}


def default_n_ctx(model_handle, params, n_ctx_train: int) -> int:
    """The training context, or the largest multiple of 256 below it whose KV cache
    fits in KV_MEMORY_SHARE of the available memory (unknown memory: no cap)."""
    avail = int(lib.tactic_available_memory())
    if avail <= 0:
        return n_ctx_train
    budget = avail * KV_MEMORY_SHARE
    if kv_memory_estimate(model_handle, params, n_ctx_train)["reserved"] <= budget:
        return n_ctx_train
    lo, hi = _ROUND, n_ctx_train  # KV bytes grow with n_ctx: bisect
    while hi - lo > _ROUND:
        mid = (lo + hi) // 2 // _ROUND * _ROUND
        if mid <= lo:
            break
        if kv_memory_estimate(model_handle, params, mid)["reserved"] <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def describe_kv_memory(mem: dict) -> str:
    text = f"KV cache up to {format_bytes(mem['reserved'])}"
    if mem["flat"] > mem["reserved"]:
        text += f" (sliding-window layers at their window; {format_bytes(mem['flat'])} without)"
    return text + f", committed as it fills ({format_bytes(mem['committed'])} now)"
