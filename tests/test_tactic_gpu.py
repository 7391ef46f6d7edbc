"""Tactic's GPU decode step (native/cuda/tactic_gpu.cu) held equal to a numpy twin.

The twin is written from the CPU's bounded selector under tactic_force_fraction
(native/src/tactic/bounded_selection.cpp, step 1: each query head takes clusters in
decreasing q . centroid, ties by lower index, until they hold ceil(f n) tokens, f and n
multiplied in float32 as the CPU does; the KV group takes the union of its heads'
clusters) plus every token outside the clustered range. The GPU step must pick the same
token sets on the same clusters and queries (except clusters whose centroid score ties
the cut within float tolerance) and attend them exactly (float64 reference).
GPU tests skip where no GPU is usable; without one the call must fail cleanly."""

import functools
import math

import numpy as np
import pytest

from pytactic._native import ffi, lib

TACTIC_ERR_INVALID_ARGUMENT = 1
TACTIC_ERR_UNSUPPORTED = 4


def gpu_count():
    return int(lib.tactic_cuda_device_count())


needs_gpu = pytest.mark.skipif(gpu_count() == 0, reason="no usable CUDA GPU (the GPU step cannot run here)")

# The options the tests below set, at their compiled defaults (native/cuda/cuda_util.cuh's
# Options): put back after every test.
OPTION_DEFAULTS = {b"tactic_group_budget": 1, b"tactic_select": 9, b"tactic_score": 5, b"tactic_attend": 2,
                   b"tactic_tail": 0, b"tactic_score_blocks": 0, b"tactic_stream": 8}


@pytest.fixture(autouse=True)
def per_head_budget():
    """Every test starts with a forced fraction per query head (what twin_select is written
    from), whatever the default; the group_budget fixture turns the group budget on. The
    output estimate starts off (the twins below attend their lists alone); the tail_on
    fixture turns it on."""
    lib.tactic_cuda_set_option(b"tactic_group_budget", 0)
    lib.tactic_cuda_set_option(b"tactic_tail", 0)
    yield
    for name, value in OPTION_DEFAULTS.items():
        lib.tactic_cuda_set_option(name, value)


def ptr(a, ctype):
    return ffi.cast(ctype, ffi.from_buffer(a))


def clustered_cache(rng, n_head_kv, n_ctx, D, n_mix=40):
    """Keys from a mixture of Gaussians (centres + smaller within-component noise), so
    that clusters and centroid order mean something; values standard normal."""
    centres = rng.standard_normal((n_head_kv, n_mix, D)) * 1.5
    comp = rng.integers(0, n_mix, size=(n_head_kv, n_ctx))
    K = np.take_along_axis(centres, comp[..., None], axis=1) + 0.5 * rng.standard_normal((n_head_kv, n_ctx, D))
    V = rng.standard_normal((n_head_kv, n_ctx, D))
    return K.astype(np.float16), V.astype(np.float16)


def kmeans_layout(rng, K, c_begin, c_end, cluster_size, iters=4):
    """Per KV head: Lloyd iterations on the keys of [c_begin, c_end); returns order
    [Hkv][len], offsets [Hkv][cmax + 1], n_clusters [Hkv], centroids [Hkv][cmax][D]."""
    n_head_kv, _, D = K.shape
    length = c_end - c_begin
    c0 = max(1, round(length / cluster_size))
    orders, offs, ncl, cents = [], [], [], []
    for g in range(n_head_kv):
        x = K[g, c_begin:c_end].astype(np.float64)
        cen = x[rng.choice(length, size=c0, replace=False)]
        for _ in range(iters):
            a = np.argmax(x @ cen.T - 0.5 * (cen * cen).sum(1), axis=1)
            for c in range(len(cen)):
                m = a == c
                if m.any():
                    cen[c] = x[m].mean(0)
        a = np.argmax(x @ cen.T - 0.5 * (cen * cen).sum(1), axis=1)
        used = np.unique(a)  # empty clusters dropped, as the CPU's K-means does
        remap = np.full(len(cen), -1)
        remap[used] = np.arange(len(used))
        a = remap[a]
        order = np.argsort(a, kind="stable") + c_begin
        sizes = np.bincount(a, minlength=len(used))
        orders.append(order)
        offs.append(np.concatenate([[0], np.cumsum(sizes)]))
        ncl.append(len(used))
        cents.append(cen[used])
    offsets, centroids = padded_layout(offs, cents, D)
    order = np.ascontiguousarray(np.stack(orders).astype(np.int32)) if length else np.zeros((n_head_kv, 0), np.int32)
    return order, offsets, np.array(ncl, np.int32), centroids


def padded_layout(offs, cents, D):
    """Per-KV-head cluster offsets and centroids padded to the most clusters: offsets
    [Hkv][cmax + 1] (past a head's last cluster, its end repeated), centroids
    [Hkv][cmax][D] (zeros past its last)."""
    n_head_kv, cmax = len(offs), max(len(c) for c in cents)
    offsets = np.zeros((n_head_kv, cmax + 1), np.int32)
    centroids = np.zeros((n_head_kv, cmax, D), np.float32)
    for g in range(n_head_kv):
        C = len(cents[g])
        offsets[g, : C + 1] = offs[g]
        offsets[g, C + 1 :] = offs[g][-1]
        centroids[g, :C] = cents[g]
    return offsets, centroids


def twin_select(q, layout, c_begin, c_end, n, frac, p=0.9, scale=1.0):
    """Per KV head: the sorted positions the CPU's bounded selector proposes (its first
    prefix per query head, union over the group) plus the always-attended tokens; and
    per KV head a predicate telling whether a cluster sits at a head's cut within
    float tolerance (its score ties the cut's, or the running mass there ties the target)."""
    order, offsets, ncl, centroids = layout
    n_head, D = q.shape
    n_head_kv = order.shape[0]
    group = n_head // n_head_kv
    need = min(n, math.ceil(np.float32(frac) * np.float32(n))) if frac > 0 else 64
    always = list(range(c_begin)) + list(range(c_end, n))
    sets, ties = [], []
    for g in range(n_head_kv):
        C = int(ncl[g])
        off = offsets[g, : C + 1]
        sizes = np.diff(off)
        cent = centroids[g, :C].astype(np.float16).astype(np.float64)
        chosen = np.zeros(C, bool)
        near = np.zeros(C, bool)
        for h in range(g * group, (g + 1) * group):
            cs = cent @ q[h].astype(np.float64)
            if need >= sizes.sum():
                chosen[:] = True
                continue
            ordc = sorted(range(C), key=lambda c: (-cs[c], c))
            w = sizes * np.exp(scale * (cs - cs.max()))
            target = (1 - (1 - p) / 4) * w.sum()
            tok, cum, j = 0, 0.0, 0
            cum_before = np.zeros(C)
            while j < C and (tok < need or (frac == 0 and cum < target)):
                c = ordc[j]
                cum_before[c] = cum
                tok += sizes[c]
                cum += w[c]
                chosen[c] = True
                j += 1
            cut = cs[ordc[j - 1]]
            near |= np.abs(cs - cut) <= 1e-3 * max(1.0, abs(cut))
            if frac == 0 and tok >= need:  # the mass decided: ties of the running mass at the target
                last = ordc[j - 1]
                tol = 1e-4 * w.sum()
                if target - cum_before[last] <= tol:
                    near[last] = True
                if cum - target <= tol and j < C:
                    near[ordc[j]] = True
        toks = set(always)
        for c in np.nonzero(chosen)[0]:
            toks.update(order[g, off[c] : off[c + 1]].tolist())
        sets.append(sorted(toks))
        ties.append(near)
    return sets, ties


def gpu_step(q, K, V, n, c_begin, c_end, layout, frac, scale, stage_ms=None, p=0.9):
    order, offsets, ncl, centroids = layout
    n_head, D = q.shape
    n_head_kv, n_ctx, _ = K.shape
    shape = ffi.new("tactic_cuda_tactic_shape *")
    shape.n_head, shape.n_head_kv, shape.head_dim, shape.n_ctx = n_head, n_head_kv, D, n_ctx
    shape.n_tokens, shape.c_begin, shape.c_end = n, c_begin, c_end
    shape.max_clusters = offsets.shape[1] - 1
    shape.force_fraction, shape.p, shape.scale = frac, p, scale
    out = np.empty((n_head, D), np.float32)
    sel = np.full((n_head_kv, n), -7, np.int32)
    nsel = np.zeros(n_head_kv, np.int32)
    st = lib.tactic_cuda_tactic_step(
        shape, ptr(q, "float *"), ptr(K, "uint16_t *"), ptr(V, "uint16_t *"),
        ptr(order, "int32_t *") if order.size else ffi.NULL, ptr(offsets, "int32_t *"), ptr(ncl, "int32_t *"),
        ptr(centroids, "float *") if centroids.size else ffi.NULL, ptr(out, "float *"), ptr(sel, "int32_t *"),
        ptr(nsel, "int32_t *"), ffi.cast("double *", ffi.from_buffer(stage_ms)) if stage_ms is not None else ffi.NULL)
    assert st == 0, ffi.string(lib.tactic_last_error()).decode()
    lists = [sel[g, : nsel[g]] for g in range(n_head_kv)]
    return out, lists


def ref_attention(q, K, V, lists, scale):
    n_head, D = q.shape
    group = n_head // K.shape[0]
    out = np.zeros((n_head, D))
    for g, rows in enumerate(lists):
        k = K[g, rows].astype(np.float64)
        v = V[g, rows].astype(np.float64)
        s = scale * (q[g * group : (g + 1) * group].astype(np.float64) @ k.T)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out[g * group : (g + 1) * group] = (p / p.sum(axis=1, keepdims=True)) @ v
    return out


def rel_err(out, ref):
    out = np.asarray(out, np.float64)
    assert np.all(np.isfinite(out)), "non-finite output (an element was not written?)"
    return np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30)


def assert_same_sets(gpu_lists, twin_sets, ties, layout):
    """Equal, or differing only in clusters at some head's cut within float tolerance
    (the ties the twin marks)."""
    order, offsets, ncl, _ = layout
    for g, (got, want) in enumerate(zip(gpu_lists, twin_sets)):
        assert len(got) == len(set(got.tolist())), f"KV head {g}: a token listed twice"
        diff = set(got.tolist()) ^ set(want)
        if not diff:
            continue
        of = {}
        for c in range(int(ncl[g])):
            for t in order[g, offsets[g, c] : offsets[g, c + 1]]:
                of[int(t)] = c
        for t in diff:
            assert t in of, f"KV head {g}: always-attended token {t} differs"
            assert ties[g][of[t]], f"KV head {g}: cluster {of[t]} differs without a tie at the cut"


SHAPES = [  # n_head, n_head_kv, head_dim
    (32, 8, 128),  # Llama 3 8B
    (4, 1, 256),   # Gemma 3 270M
    (8, 8, 64),
    (12, 2, 128),  # a group of 6
    (3, 3, 128),
]


# (tactic_score, tactic_select) pairs the twin tests run: v1 the one-block selection; v3 the
# selection from the scoring blocks' partials (scores 3: FMAs, rows after pdl_wait); v4 scores
# 4 (the kernel of 3 on tensor cores) with selection 3; v5 the defaults, scores 4 with
# selection 4 (one radix level, one barrier fewer); v6 selection 5 (4 scoring the centroids
# itself where head_dim is 128; elsewhere 4 after scores 4); s5 scores 5 (4 in one early
# wave) with selection 4, s5sel3 with selection 3; s5few that with 8 scoring blocks (option
# tactic_score_blocks: each block loops over many chunks).
SCORE_VERSIONS = {"v1": (3, 1), "v3": (3, 3), "v4": (4, 3), "v5": (4, 4), "v6": (4, 5), "s5": (5, 4),
                  "s5sel3": (5, 3), "s5few": (5, 3, 8)}


def set_score(score, select, score_blocks=0, stream=8):
    assert lib.tactic_cuda_set_option(b"tactic_score", score) == 0
    assert lib.tactic_cuda_set_option(b"tactic_select", select) == 0
    assert lib.tactic_cuda_set_option(b"tactic_score_blocks", score_blocks) == 0
    assert lib.tactic_cuda_set_option(b"tactic_stream", stream) == 0


@pytest.fixture(params=list(SCORE_VERSIONS.values()), ids=list(SCORE_VERSIONS))
def score_version(request):
    """Each centroid scoring kernel and selection (options tactic_score and tactic_select),
    after the options' bounds are checked."""
    for name, bad in ((b"tactic_score", 1), (b"tactic_score", 6), (b"tactic_select", 2), (b"tactic_select", 6),
                      (b"tactic_score_blocks", -1)):
        assert lib.tactic_cuda_set_option(name, bad) == TACTIC_ERR_INVALID_ARGUMENT
    set_score(*request.param)
    yield request.param  # (per_head_budget puts the defaults back)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("frac", [0.025, 0.1, 0.37, 1.0])
def test_step_matches_twin(shape, frac, score_version):
    rng = np.random.default_rng(7 + int(frac * 1000))
    n_head, n_head_kv, D = shape
    n_ctx, n, c_begin = 6000, 5321, 4
    c_end = n - 97
    K, V = clustered_cache(rng, n_head_kv, n_ctx, D)
    layout = kmeans_layout(rng, K, c_begin, c_end, 16)
    # query heads of a group related (shared direction + own part), as in real GQA
    base = rng.standard_normal((n_head_kv, 1, D))
    q = (base + 0.7 * rng.standard_normal((n_head_kv, n_head // n_head_kv, D))).reshape(n_head, D).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, frac, scale)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, frac)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5
    if frac == 1.0:  # every token: full attention
        assert all(len(l) == n for l in lists)
    for g in range(n_head_kv):  # at least the forced share of the clustered range per head
        assert len(lists[g]) >= min(n, math.ceil(frac * n))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_mass_target_matches_twin(shape, p, score_version):
    """force_fraction 0: each head's clusters until 1 - (1 - P) / 4 of its centroid mass
    and at least 64 tokens, as the CPU's bounded selector's first prefix."""
    rng = np.random.default_rng(11 + int(p * 100))
    n_head, n_head_kv, D = shape
    n_ctx = n = 7000
    c_begin, c_end = 4, n - 150
    K, V = clustered_cache(rng, n_head_kv, n_ctx, D)
    layout = kmeans_layout(rng, K, c_begin, c_end, 16)
    q = (2.0 * rng.standard_normal((n_head, D))).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.0, scale, p=p)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, 0.0, p=p, scale=scale)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5


@pytest.mark.gpu
@needs_gpu
def test_unequal_budgets_and_no_clusters():
    """KV heads whose lists differ 4-8x in length (the attention cuts the total work, not
    each head's, into pieces), and a layer with nothing clustered yet (full attention)."""
    rng = np.random.default_rng(3)
    n_head, n_head_kv, D = 32, 8, 128
    n_ctx = n = 9000
    c_begin, c_end = 4, n - 64
    K, V = clustered_cache(rng, n_head_kv, n_ctx, D, n_mix=8)
    layout = list(kmeans_layout(rng, K, c_begin, c_end, 16))
    # KV head 0: one giant cluster plus singletons -> its union is most of the cache
    order, offsets, ncl, cent = layout
    C0 = int(ncl[0])
    offsets[0, 1:C0] = np.arange(1, C0) + (c_end - c_begin - C0)
    cent[0, 0] = 100.0 * np.sign(rng.standard_normal(D))
    scale = 1.0 / math.sqrt(D)
    q = rng.standard_normal((n_head, D)).astype(np.float32)
    q[:4] = cent[0, 0] / 100.0
    layout = tuple(layout)
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.05, scale)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, 0.05)
    assert_same_sets(lists, sets, ties, layout)
    lens = [len(l) for l in lists]
    assert max(lens) > 4 * min(lens), lens
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5

    empty = (np.zeros((n_head_kv, 0), np.int32), np.zeros((n_head_kv, 1), np.int32), np.zeros(n_head_kv, np.int32),
             np.zeros((n_head_kv, 0, D), np.float32))
    out, lists = gpu_step(q, K, V, 700, 0, 0, empty, 0.05, scale)
    assert all(sorted(l.tolist()) == list(range(700)) for l in lists)
    assert rel_err(out, ref_attention(q, K, V, [np.arange(700)] * n_head_kv, scale)) < 1e-5


@pytest.mark.gpu
@needs_gpu
def test_bench_timings_are_reported():
    rng = np.random.default_rng(5)
    K, V = clustered_cache(rng, 2, 4096, 128)
    layout = kmeans_layout(rng, K, 4, 4000, 16, iters=2)
    q = rng.standard_normal((8, 128)).astype(np.float32)
    ms = np.zeros(7)
    assert lib.tactic_cuda_set_option(b"bench_iters", 4) == 0
    try:
        out, _ = gpu_step(q, K, V, 4096, 4, 4000, layout, 0.1, 0.1, stage_ms=ms)
    finally:
        lib.tactic_cuda_set_option(b"bench_iters", 0)
    # the merge stage is empty with the default streaming kernel (it merges in its last block)
    assert np.all(ms[[0, 1, 3, 5]] > 0) and ms[2] >= 0 and ms[4] >= 0 and np.all(ms[:6] < 50) and ms[6] >= 1, ms
    assert np.all(np.isfinite(out))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("fused", [1, 0])
@pytest.mark.parametrize("blocks", [1, 3, 37, 600])
def test_attention_kernels_any_block_count(fused, blocks):
    """Both attention kernels (the streaming one merging in its last block per KV head, and
    the earlier one + merge kernel) equal the float64 reference whatever the number of
    pieces: one block for everything, pieces spanning several KV heads, more blocks than
    rows of some heads. KV heads' lists differ in length (a giant cluster in head 0). The
    harness replays the step twice with the output poisoned in between, so a counter left
    non-zero by the first replay leaves NaN here."""
    rng = np.random.default_rng(17)
    n_head, n_head_kv, D = 32, 8, 128
    n_ctx = n = 9000
    c_begin, c_end = 4, n - 200
    K, V, layout = giant_cluster_case(rng, n_head_kv, n_ctx, D, c_begin, c_end)
    scale = 1.0 / math.sqrt(D)
    q = rng.standard_normal((n_head, D)).astype(np.float32)
    assert lib.tactic_cuda_set_option(b"tactic_fused", 2) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_set_option(b"tactic_fused", fused) == 0
    assert lib.tactic_cuda_set_option(b"tactic_blocks", blocks) == 0
    try:
        out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.1, scale)
    finally:
        lib.tactic_cuda_set_option(b"tactic_fused", 1)
        lib.tactic_cuda_set_option(b"tactic_blocks", 0)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, 0.1)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", [(4, 1, 256), (8, 8, 64), (12, 2, 128)])
def test_earlier_attention_kernel_matches_twin(shape):
    """tactic_fused=0 (the earlier attention kernel and the merge kernel) on the other
    head shapes: same selection, same attention."""
    rng = np.random.default_rng(23)
    n_head, n_head_kv, D = shape
    n_ctx, n, c_begin = 6000, 5321, 4
    c_end = n - 97
    K, V = clustered_cache(rng, n_head_kv, n_ctx, D)
    layout = kmeans_layout(rng, K, c_begin, c_end, 16)
    q = rng.standard_normal((n_head, D)).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    assert lib.tactic_cuda_set_option(b"tactic_fused", 0) == 0
    try:
        out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.1, scale)
    finally:
        lib.tactic_cuda_set_option(b"tactic_fused", 1)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, 0.1)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("blocks", [0, 3, 600])
@pytest.mark.parametrize("mma", [1, 0])
def test_mma_attention_matches_reference(shape, blocks, mma):
    """tactic_mma=1 (the default): the streaming kernel with scores and values on tensor
    cores (q and the weights split into f16 hi + lo parts, K and V f16 as cached) equals
    the float64 reference as closely as the FMA kernel (tactic_mma=0); head_dim 256 falls
    back to the FMA kernel."""
    rng = np.random.default_rng(37)
    n_head, n_head_kv, D = shape
    n_ctx, n, c_begin = 6000, 5321, 4
    c_end = n - 97
    K, V = clustered_cache(rng, n_head_kv, n_ctx, D)
    layout = kmeans_layout(rng, K, c_begin, c_end, 16)
    q = (1.5 * rng.standard_normal((n_head, D))).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    assert lib.tactic_cuda_set_option(b"tactic_mma", 2) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_set_option(b"tactic_mma", mma) == 0
    assert lib.tactic_cuda_set_option(b"tactic_blocks", blocks) == 0
    try:
        out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.1, scale)
    finally:
        lib.tactic_cuda_set_option(b"tactic_mma", 1)
        lib.tactic_cuda_set_option(b"tactic_blocks", 0)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, 0.1)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", [(32, 8, 128), (12, 2, 128), (8, 8, 64), (3, 3, 128)])
@pytest.mark.parametrize("blocks", [0, 1, 37, 600])
@pytest.mark.parametrize("attend", [1, 2, 3, 4, 5, 6], ids=["att1", "att2", "att3", "att4", "att5", "att6"])
def test_attend_variants_match_reference(shape, blocks, attend):
    """Each tactic_attend variant equals the float64 reference whatever the number of pieces:
    1 (four warps a block, the sequential merge tail), 2 (the default: eight warps a block,
    the parallel merge tail), 3 (four warps, the parallel tail), 4 (3 with TMA bulk row
    copies on sm_90; the barrier phases run across KV heads), 5 and 6 (2 and 3 with pieces
    that never span two KV heads; 1 block falls back to the unaligned cut). 2-6 exist at
    head_dim 128 (64 keeps 1). Unequal lists (a giant cluster in KV head 0: its list is the
    longest, so 37 aligned blocks give it most of them), pieces spanning KV heads, more
    blocks than rows (600), and a graph replayed twice with the output poisoned in between
    (a counter left non-zero leaves NaN)."""
    rng = np.random.default_rng(53)
    n_head, n_head_kv, D = shape
    n_ctx = n = 9000
    c_begin, c_end = 4, n - 200
    K, V, layout = giant_cluster_case(rng, n_head_kv, n_ctx, D, c_begin, c_end)
    scale = 1.0 / math.sqrt(D)
    q = (1.5 * rng.standard_normal((n_head, D))).astype(np.float32)
    assert lib.tactic_cuda_set_option(b"tactic_attend", 0) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_set_option(b"tactic_attend", 7) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_set_option(b"tactic_attend", attend) == 0
    assert lib.tactic_cuda_set_option(b"tactic_blocks", blocks) == 0
    try:
        out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.1, scale)
    finally:
        lib.tactic_cuda_set_option(b"tactic_attend", OPTION_DEFAULTS[b"tactic_attend"])
        lib.tactic_cuda_set_option(b"tactic_blocks", 0)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, 0.1)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5


def twin_group_select(q, layout, c_begin, c_end, n, frac, scale):
    """Option tactic_group_budget, written from its spec (docs/TACTIC.md "On the GPU"):
    per KV head one cut: a cluster's key is max over the group's heads of
    scale q_h.c - log sum_c' |c'| exp(scale q_h.c'); clusters in decreasing key (ties:
    lower index) until the union holds ceil(f n) tokens. Returns the token sets and the
    clusters whose key ties the cut's within float tolerance."""
    order, offsets, ncl, centroids = layout
    n_head, D = q.shape
    n_head_kv = order.shape[0]
    group = n_head // n_head_kv
    need = min(n, math.ceil(np.float32(frac) * np.float32(n)))
    always = list(range(c_begin)) + list(range(c_end, n))
    sets, ties = [], []
    for g in range(n_head_kv):
        C = int(ncl[g])
        off = offsets[g, : C + 1]
        sizes = np.diff(off)
        cent = centroids[g, :C].astype(np.float16).astype(np.float64)
        chosen = np.zeros(C, bool)
        near = np.zeros(C, bool)
        if need >= sizes.sum():
            chosen[:] = True
        else:
            key = np.full(C, -np.inf)
            for h in range(g * group, (g + 1) * group):
                s = scale * (cent @ q[h].astype(np.float64))
                lse = s.max() + np.log((sizes * np.exp(s - s.max())).sum())
                key = np.maximum(key, s - lse)
            ordc = sorted(range(C), key=lambda c: (-key[c], c))
            tok, j = 0, 0
            while j < C and tok < need:
                chosen[ordc[j]] = True
                tok += sizes[ordc[j]]
                j += 1
            cut = key[ordc[j - 1]]
            near = np.abs(key - cut) <= 1e-3 * max(1.0, abs(cut))
        toks = set(always)
        for c in np.nonzero(chosen)[0]:
            toks.update(order[g, off[c] : off[c + 1]].tolist())
        sets.append(sorted(toks))
        ties.append(near)
    return sets, ties


# (tactic_score, tactic_select) pairs with the group budget: select1 one block per KV head;
# select3 from the scores' partials (scores 2, rows before pdl_wait); mmascore scores 4 with
# selection 3; select4 one radix level (scores 4); select5 that scoring the centroids itself (head_dim 128);
# fused9 (the default) / fused10 selection 4 inside the attention kernel (10: the scores too; head_dim 128,
# else 4); score5 scores 5 with 9; score5few that with 8 scoring blocks and selection 4.
# fused9 / fused10 run tactic_stream 8 (the default: the first copies before q's fragments);
# fused9st0 / fused10st0 the fused step with tactic_stream 0 (the copies after them, as before).
GROUP_VERSIONS = {"select1": (2, 1), "select3": (2, 3), "mmascore": (4, 3), "select4": (4, 4), "select5": (4, 5),
                  "fused9": (4, 9), "fused10": (4, 10), "score5": (5, 9), "score5few": (5, 4, 8),
                  "fused9st0": (4, 9, 0, 0), "fused10st0": (4, 10, 0, 0)}


@pytest.fixture(params=list(GROUP_VERSIONS.values()), ids=list(GROUP_VERSIONS))
def group_budget(request):
    """The group budget on, with each selection kernel (option tactic_select) and scores."""
    assert lib.tactic_cuda_set_option(b"tactic_group_budget", 2) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_set_option(b"tactic_group_budget", 1) == 0
    set_score(*request.param)
    yield request.param  # (per_head_budget puts the defaults back)


def giant_cluster_case(rng, n_head_kv, n_ctx, D, c_begin, c_end):
    """Clustered keys whose KV head 0 has one giant cluster (its first holds all but C0 - 1
    of the range's tokens), so the KV heads' lists differ widely in length."""
    K, V = clustered_cache(rng, n_head_kv, n_ctx, D, n_mix=8)
    order, offsets, ncl, cent = kmeans_layout(rng, K, c_begin, c_end, 16)
    C0 = int(ncl[0])
    offsets[0, 1:C0] = np.arange(1, C0) + (c_end - c_begin - C0)
    return K, V, (order, offsets, ncl, cent)


def random_layout(rng, K, c_begin, c_end, mean_size, tie_run=0):
    """A layout without K-means, for many clusters fast: the range's tokens in a random
    order, cut into clusters of 0 .. 2 mean_size - 1 tokens (some empty), centroids the
    mean of their keys. tie_run > 0: runs of tie_run consecutive clusters share one
    centroid (their scores tie exactly)."""
    n_head_kv, _, D = K.shape
    length = c_end - c_begin
    orders, offs, ncl, cents = [], [], [], []
    for g in range(n_head_kv):
        sizes = []
        while sum(sizes) < length:
            sizes.append(int(min(rng.integers(0, 2 * mean_size), length - sum(sizes))))
        sizes = np.array(sizes)
        order = rng.permutation(length).astype(np.int32) + c_begin
        off = np.concatenate([[0], np.cumsum(sizes)])
        x = K[g, order].astype(np.float64)
        cen = np.zeros((len(sizes), D))
        nz = np.nonzero(sizes)[0]
        cen[nz] = np.add.reduceat(x, off[nz], axis=0) / sizes[nz, None]
        if tie_run:
            cen = cen[np.arange(len(sizes)) // tie_run * tie_run]
        orders.append(order)
        offs.append(off)
        ncl.append(len(sizes))
        cents.append(cen)
    offsets, centroids = padded_layout(offs, cents, D)
    return np.ascontiguousarray(np.stack(orders)), offsets, np.array(ncl, np.int32), centroids


MANY_N = 16000


@functools.lru_cache(maxsize=None)
def random_layout_case(seed, mean_size, tie_run):
    """An 8-KV-head, head_dim-128 cache of MANY_N tokens and a random_layout of it."""
    rng = np.random.default_rng(seed)
    K, V = clustered_cache(rng, 8, MANY_N, 128)
    return K, V, random_layout(rng, K, 4, MANY_N - 200, mean_size, tie_run)


def many_clusters_case(tie_run):
    return random_layout_case(41 + tie_run, 5, tie_run)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("tie_run", [0, 40])
@pytest.mark.parametrize("frac", [0.1, 0.0])
def test_per_head_many_clusters_matches_twin(tie_run, frac, score_version):
    """Per query head (a forced fraction, or the mass target P = 0.9) with thousands of
    clusters a KV head, some empty, with and without runs of tied scores: against the twin."""
    rng = np.random.default_rng(43 + tie_run + int(frac * 100))
    n_head, n_head_kv, D = 32, 8, 128
    n, c_begin, c_end = MANY_N, 4, MANY_N - 200
    K, V, layout = many_clusters_case(tie_run)
    base = rng.standard_normal((n_head_kv, 1, D))
    q = (1.5 * (base + 0.7 * rng.standard_normal((n_head_kv, n_head // n_head_kv, D)))).reshape(n_head, D)
    q = q.astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, frac, scale, p=0.9)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, frac, p=0.9, scale=scale)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5
    for g in range(n_head_kv):
        assert list(lists[g][:c_begin]) == list(range(c_begin))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("tie_run", [0, 40])
@pytest.mark.parametrize("frac", [0.05, 0.1, 0.3])
def test_group_budget_many_clusters_matches_twin(tie_run, frac, group_budget):
    """Thousands of clusters a KV head (the spread selection cuts them over several
    blocks), some empty, with and without runs of exactly tied scores crossing the blocks'
    slices: the union against the twin, the budget held, attention exact."""
    rng = np.random.default_rng(37 + tie_run + int(frac * 100))
    n_head, n_head_kv, D = 32, 8, 128
    n, c_begin, c_end = MANY_N, 4, MANY_N - 200
    K, V, layout = many_clusters_case(tie_run)
    assert layout[2].min() > 4 * 512  # more clusters than one block of the spread selection takes
    q = (1.5 * rng.standard_normal((n_head, D))).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, frac, scale)
    sets, ties = twin_group_select(q, layout, c_begin, c_end, n, frac, scale)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5
    need = min(n, math.ceil(frac * n))
    n_always = c_begin + (n - c_end)
    sizes = np.diff(layout[1], axis=1)
    for g in range(n_head_kv):
        clustered = len(lists[g]) - n_always
        assert need <= clustered < need + sizes[g].max()
        assert list(lists[g][:c_begin]) == list(range(c_begin))  # the always-attended tokens first


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("case", ["most", "crowd"])
def test_group_budget_most_clusters_and_crowds(case, group_budget):
    """The fused step's two harder layouts against the twin: "most", over 8,192 clusters a
    KV head (selection 9 takes 4 clusters a thread there), and "crowd", runs of 3,000 clusters
    sharing one centroid, so that more clusters than the candidate list holds (1,024) sit at
    the cut's prefix and every one of them is taken (each a tie the twin allows)."""
    rng = np.random.default_rng(59)
    n_head, n_head_kv, D = 32, 8, 128
    n, c_begin, c_end = MANY_N, 4, MANY_N - 200
    K, V, layout = random_layout_case(53, 1.5, 0) if case == "most" else random_layout_case(3053, 5, 3000)
    if case == "most":
        assert layout[2].min() > 16 * 512
    q = (1.5 * rng.standard_normal((n_head, D))).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    frac = 0.1
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, frac, scale)
    sets, ties = twin_group_select(q, layout, c_begin, c_end, n, frac, scale)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5
    need = min(n, math.ceil(frac * n))
    n_always = c_begin + (n - c_end)
    for g in range(n_head_kv):
        assert len(lists[g]) - n_always >= need
        assert list(lists[g][:c_begin]) == list(range(c_begin))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("frac", [0.025, 0.1, 0.37, 1.0])
def test_group_budget_matches_twin(shape, frac, group_budget):
    """tactic_group_budget=1: the union per KV head holds the forced share (one cut per
    KV group at a common per-token weight), against its numpy twin; attention exact."""
    rng = np.random.default_rng(29 + int(frac * 1000))
    n_head, n_head_kv, D = shape
    n_ctx, n, c_begin = 6000, 5321, 4
    c_end = n - 97
    K, V = clustered_cache(rng, n_head_kv, n_ctx, D)
    layout = kmeans_layout(rng, K, c_begin, c_end, 16)
    q = (1.5 * rng.standard_normal((n_head, D))).astype(np.float32)  # independent heads: the largest unions
    scale = 1.0 / math.sqrt(D)
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, frac, scale)
    sets, ties = twin_group_select(q, layout, c_begin, c_end, n, frac, scale)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5
    need = min(n, math.ceil(frac * n))
    n_always = c_begin + (n - c_end)
    sizes = np.diff(layout[1], axis=1)
    for g in range(n_head_kv):  # the union is the budget: at least it, less than it + one cluster
        clustered = len(lists[g]) - n_always
        assert clustered >= min(need, c_end - c_begin)
        assert clustered < need + sizes[g].max() or clustered == c_end - c_begin
    if frac < 0.37 and n_head > n_head_kv:  # per head, the same fraction gives a larger union
        lib.tactic_cuda_set_option(b"tactic_group_budget", 0)
        _, per_head = gpu_step(q, K, V, n, c_begin, c_end, layout, frac, scale)
        lib.tactic_cuda_set_option(b"tactic_group_budget", 1)
        assert sum(map(len, per_head)) > sum(map(len, lists))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("stream", [0, 8])
@pytest.mark.parametrize("select", [9, 10])
def test_fused_step_edge_cases(select, stream):
    """The fused step (tactic_select 9, 10: the cut inside the attention kernel, one piece of
    the list a slice's block) where its pieces are uneven or empty: a KV head whose union is
    one giant cluster (4-8x the others' lists), nothing clustered yet, and fewer tokens than
    the KV head has blocks. Against the group budget's twin and the float64 reference."""
    assert lib.tactic_cuda_set_option(b"tactic_group_budget", 1) == 0
    assert lib.tactic_cuda_set_option(b"tactic_select", select) == 0
    for bad in (-1, 1, 9):
        assert lib.tactic_cuda_set_option(b"tactic_stream", bad) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_set_option(b"tactic_stream", stream) == 0
    rng = np.random.default_rng(53)
    n_head, n_head_kv, D = 32, 8, 128
    n_ctx = n = 9000
    c_begin, c_end = 4, n - 64
    K, V, layout = giant_cluster_case(rng, n_head_kv, n_ctx, D, c_begin, c_end)
    order, offsets, ncl, cent = layout
    cent[0, 0] = 100.0 * np.sign(rng.standard_normal(D))
    scale = 1.0 / math.sqrt(D)
    q = rng.standard_normal((n_head, D)).astype(np.float32)
    q[:4] = cent[0, 0] / 100.0
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.05, scale)
    sets, ties = twin_group_select(q, layout, c_begin, c_end, n, 0.05, scale)
    assert_same_sets(lists, sets, ties, layout)
    lens = [len(x) for x in lists]
    assert max(lens) > 4 * min(lens), lens
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5
    empty = (np.zeros((n_head_kv, 0), np.int32), np.zeros((n_head_kv, 1), np.int32), np.zeros(n_head_kv, np.int32),
             np.zeros((n_head_kv, 0, D), np.float32))
    for m in (700, 10):
        out, lists = gpu_step(q, K, V, m, 0, 0, empty, 0.05, scale)
        assert all(sorted(x.tolist()) == list(range(m)) for x in lists)
        assert rel_err(out, ref_attention(q, K, V, [np.arange(m)] * n_head_kv, scale)) < 1e-5


@pytest.mark.gpu
@needs_gpu
def test_group_budget_leaves_mass_target_per_head(group_budget):
    """force_fraction 0 (the mass target): tactic_group_budget changes nothing, each head
    still reaches its own P."""
    rng = np.random.default_rng(31)
    n_head, n_head_kv, D = 32, 8, 128
    n_ctx = n = 7000
    c_begin, c_end = 4, n - 150
    K, V = clustered_cache(rng, n_head_kv, n_ctx, D)
    layout = kmeans_layout(rng, K, c_begin, c_end, 16)
    q = (2.0 * rng.standard_normal((n_head, D))).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.0, scale, p=0.9)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, 0.0, p=0.9, scale=scale)
    assert_same_sets(lists, sets, ties, layout)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(1)
    K, V = clustered_cache(rng, 2, 300, 64)
    layout = kmeans_layout(rng, K, 4, 250, 16, iters=1)
    q = rng.standard_normal((4, 64)).astype(np.float32)
    order = layout[0].copy()
    order[1, 0] = order[1, 1]  # not a permutation
    bad = [
        dict(frac=-0.1),
        dict(frac=0.0, p=0.0),
        dict(frac=1.5),
        dict(n=301),
        dict(layout=(order,) + tuple(layout[1:])),
    ]
    for b in bad:
        shape = ffi.new("tactic_cuda_tactic_shape *")
        lay = b.get("layout", layout)
        shape.n_head, shape.n_head_kv, shape.head_dim, shape.n_ctx = 4, 2, 64, 300
        shape.n_tokens, shape.c_begin, shape.c_end = b.get("n", 300), 4, 250
        shape.max_clusters = lay[1].shape[1] - 1
        shape.force_fraction, shape.p, shape.scale = b.get("frac", 0.1), b.get("p", 0.9), 0.125
        out = np.empty((4, 64), np.float32)
        sel = np.empty((2, 301), np.int32)
        nsel = np.empty(2, np.int32)
        st = lib.tactic_cuda_tactic_step(shape, ptr(q, "float *"), ptr(K, "uint16_t *"), ptr(V, "uint16_t *"),
                                         ptr(lay[0], "int32_t *"), ptr(lay[1], "int32_t *"), ptr(lay[2], "int32_t *"),
                                         ptr(lay[3], "float *"), ptr(out, "float *"), ptr(sel, "int32_t *"),
                                         ptr(nsel, "int32_t *"), ffi.NULL)
        # a build without CUDA refuses every call as unsupported; with CUDA, as invalid
        assert st in (TACTIC_ERR_INVALID_ARGUMENT, TACTIC_ERR_UNSUPPORTED), (b, st)
        if gpu_count():
            assert st == TACTIC_ERR_INVALID_ARGUMENT, (b, st)


# ---- the CUDA backend with attention="tactic" (K-means on the GPU, pages, the step in
# the decode graph) ---------------------------------------------------------------------

CUDA, TACTIC_ATTN, FULL_ATTN = 2, 2, 1


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    return tiny_gguf(tmp_path_factory, "llama-tiny", seed=5, n_embd=256, head_dim=64)


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory):
    """A six-layer Gemma 3 of random weights (Q8_0; the real Gemma 3 270M's attention: 4
    query heads, 1 KV head, head_dim 256, layer 5 global, the others a sliding window of
    128): the head size and layer pattern the real model runs Tactic on."""
    return random_gguf(tmp_path_factory, "gemma-tiny", "gemma-3-270m", seed=7, n_layer=6, n_embd=256, n_ff=512,
                       vocab=1024, sliding_window=128)


def tiny_gguf(tmp_path_factory, name, seed, n_embd, head_dim):
    """A two-layer Llama-shaped Q8_0 file of random weights (4 query heads, 2 KV heads)."""
    return random_gguf(tmp_path_factory, name, "llama-3.1-8b", seed=seed, n_layer=2, n_embd=n_embd, n_head=4,
                       n_head_kv=2, n_ff=512, vocab=1024, head_dim=head_dim)


def random_gguf(tmp_path_factory, name, preset, seed, **shape):
    """scripts/make_random_gguf.py's file of the preset with the shape's overrides (Q8_0)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "scripts" / "make_random_gguf.py"
    spec = importlib.util.spec_from_file_location("make_random_gguf", script)
    mrg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mrg)
    out = tmp_path_factory.mktemp("tactic_gpu") / f"{name}.gguf"
    mrg.make_random_gguf(out, preset, "q8_0", seed=seed, qk_scale=2.0, output_scale=0.4, **shape)
    return str(out)


@pytest.fixture
def f32_activations():
    """Decode matvecs on f32 activations: with the default 8-bit activation blocks a
    difference in the last bits of one attention output can flip a rounding step of the
    next layer's input, so equal attention would not give logits equal to 1e-3."""
    assert lib.tactic_cuda_set_option(b"matvec_q8", 0) == 0
    yield
    lib.tactic_cuda_set_option(b"matvec_q8", 1)


def decode_logits(path, ids, n_prefill, attention, truncate_to=None, n_ctx=2048, **fields):
    from pytactic.lowlevel import NativeSession

    with NativeSession(path, n_ctx=n_ctx, attention=attention, device=CUDA, **fields) as s:
        if truncate_to is not None:  # a different continuation first, then rewind
            s.eval(ids[:n_prefill] + [7] * 300)
            for t in [9] * 40:
                s.eval([t])
            lib.tactic_context_truncate(s.ctx, truncate_to)
            got = [s.eval(ids[truncate_to:n_prefill], logits_all=True)] if n_prefill > truncate_to else []
        else:
            got = [s.eval(ids[:n_prefill], logits_all=True)]
        for t in ids[n_prefill:]:
            got.append(s.eval([t]))
    return np.concatenate(got)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("model", ["tiny_llama", "tiny_gemma"])
def test_backend_tactic_all_tokens_equals_full(model, f32_activations, request):
    """Forced fraction 1: every cluster is selected, so each decode step attends every
    token through the pages (K-means on the GPU, rows copied in cluster order, blocks of
    256 appended as tokens leave the recent window): the logits of full attention."""
    rng = np.random.default_rng(2)
    ids = [1] + rng.integers(3, 1024, 1399).tolist()
    path = request.getfixturevalue(model)
    full = decode_logits(path, ids, 900, FULL_ATTN)
    tac = decode_logits(path, ids, 900, TACTIC_ATTN, tactic_force_fraction=1.0)
    rel = np.linalg.norm(tac - full, axis=-1) / np.linalg.norm(full, axis=-1)
    assert np.isfinite(tac).all() and rel.max() < 1e-3, rel.max()


@pytest.mark.gpu
@needs_gpu
def test_backend_tactic_all_tokens_long_context(tiny_gemma, f32_activations):
    """Fraction 1 and P = 1 at the real Gemma's scale of the cache (a 6,000-token prompt in a
    16K context: thousands of clusters, the first clustering in several K-means launches, the
    selection spread over several blocks, a full grid of attention blocks): the logits of
    full attention."""
    rng = np.random.default_rng(9)
    ids = [1] + rng.integers(3, 1024, 6299).tolist()
    full = decode_logits(tiny_gemma, ids, 6000, FULL_ATTN, n_ctx=16384)
    for extra in (dict(tactic_force_fraction=1.0), dict(tactic_p=1.0)):
        tac = decode_logits(tiny_gemma, ids, 6000, TACTIC_ATTN, n_ctx=16384, **extra)
        rel = np.linalg.norm(tac - full, axis=-1) / np.linalg.norm(full, axis=-1)
        assert np.isfinite(tac).all() and rel.max() < 1e-3, (extra, rel.max())


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("model", ["tiny_llama", "tiny_gemma"])
def test_backend_tactic_p1_equals_full(model, f32_activations, request):
    """The mass target at P = 1 keeps every token, as on the CPU: the logits of full
    attention. (The candidate cut of the centroid proxy's mass alone stops short of
    clusters whose proxy weight rounds to nothing: on the real Gemma 3 270M at 16K its KL
    against full attention was 0.0040, as much as P = 0.9's.) Below 1 the step leaves
    tokens out, so the logits differ from full attention's."""
    path = request.getfixturevalue(model)
    rng = np.random.default_rng(3)
    ids = [1] + rng.integers(3, 1024, 1399).tolist()
    full = decode_logits(path, ids, 900, FULL_ATTN)
    tac = decode_logits(path, ids, 900, TACTIC_ATTN, tactic_p=1.0)
    rel = np.linalg.norm(tac - full, axis=-1) / np.linalg.norm(full, axis=-1)
    assert np.isfinite(tac).all() and rel.max() < 1e-3, rel.max()
    # below 1 tokens are left out: with the candidate target at P itself (div 1; the default 16
    # takes 97% of flat random attention's proxy mass, every cluster on the Gemma shape)
    assert lib.tactic_cuda_set_option(b"tactic_cand_div", 1) == 0
    try:
        part = decode_logits(path, ids, 900, TACTIC_ATTN, tactic_p=0.5)
    finally:
        lib.tactic_cuda_set_option(b"tactic_cand_div", 16)  # the default
    rel = np.linalg.norm(part[900:] - full[900:], axis=-1) / np.linalg.norm(full[900:], axis=-1)
    assert rel.max() > 1e-4, rel.max()


@pytest.mark.gpu
@needs_gpu
def test_backend_tactic_cand_div_grows_the_candidates(tiny_llama, f32_activations):
    """tactic_cand_div: the candidate target 1 - (1 - P) / div of the centroid mass. At P =
    0.5, div 1 (half the proxy mass) leaves more out than div 64 (99%), so its logits are
    further from full attention's (median over the decoded steps); 4 (the first prefix of the CPU) lies
    between, up to noise."""
    rng = np.random.default_rng(5)
    ids = [1] + rng.integers(3, 1024, 1399).tolist()
    full = decode_logits(tiny_llama, ids, 900, FULL_ATTN)[900:]
    errs = {}
    for d in (1, 4, 64):
        assert lib.tactic_cuda_set_option(b"tactic_cand_div", d) == 0
        try:
            tac = decode_logits(tiny_llama, ids, 900, TACTIC_ATTN, tactic_p=0.5)[900:]
        finally:
            lib.tactic_cuda_set_option(b"tactic_cand_div", 16)  # the default
        errs[d] = np.median(np.linalg.norm(tac - full, axis=-1) / np.linalg.norm(full, axis=-1))
    assert lib.tactic_cuda_set_option(b"tactic_cand_div", 0) == TACTIC_ERR_INVALID_ARGUMENT
    assert errs[1] > 1.2 * errs[64] and errs[1] * 1.05 >= errs[4] >= errs[64] * 0.95, errs


@pytest.mark.gpu
@needs_gpu
def test_backend_tactic_truncate_and_fraction(tiny_llama, f32_activations, score_version):
    """A rewind into the clustered range drops the blocks after it (all tokens attended
    again: equal to full); at 10% the step runs (finite logits that differ from full
    attention's: tokens were left out)."""
    rng = np.random.default_rng(4)
    ids = [1] + rng.integers(3, 1024, 1299).tolist()
    full = decode_logits(tiny_llama, ids, 1000, FULL_ATTN)
    tac = decode_logits(tiny_llama, ids, 1000, TACTIC_ATTN, truncate_to=700, tactic_force_fraction=1.0)
    rel = np.linalg.norm(tac - full[700:], axis=-1) / np.linalg.norm(full[700:], axis=-1)
    assert rel.max() < 1e-3, rel.max()
    part = decode_logits(tiny_llama, ids, 1000, TACTIC_ATTN, tactic_force_fraction=0.1)
    assert np.isfinite(part).all()
    rel = np.linalg.norm(part[1000:] - full[1000:], axis=-1) / np.linalg.norm(full[1000:], axis=-1)
    assert np.median(rel) > 1e-5, np.median(rel)


@pytest.fixture(scope="module")
def tiny_llama_d128(tmp_path_factory):
    """tiny_llama with head_dim 128, the shape where selection 5 scores the
    centroids itself."""
    return tiny_gguf(tmp_path_factory, "llama-tiny-d128", seed=6, n_embd=512, head_dim=128)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("select,stream", [(4, 8), (5, 8), (9, 8), (10, 8), (9, 0), (10, 0)])
@pytest.mark.parametrize("model", ["tiny_llama", "tiny_llama_d128"])
def test_backend_group_budget_selection_matches_v3(model, select, stream, f32_activations, request):
    """The model's decode path (the step inside the decode graph, pages appended as tokens
    leave the recent window) with the group budget at 10%: selections 4, 5, 9 and 10 give the logits
    of selection 4 (held to its twin above) except at rare steps where a near-tie of keys
    falls at the cut (their spread keys' bounds differ in the last bits), and never the
    logits of full attention."""
    path = request.getfixturevalue(model)
    rng = np.random.default_rng(8)
    ids = [1] + rng.integers(3, 1024, 1299).tolist()
    assert lib.tactic_cuda_set_option(b"tactic_group_budget", 1) == 0
    assert lib.tactic_cuda_set_option(b"tactic_select", 4) == 0  # (the default is 9)
    ref = decode_logits(path, ids, 1000, TACTIC_ATTN, tactic_force_fraction=0.1)
    assert lib.tactic_cuda_set_option(b"tactic_select", select) == 0
    assert lib.tactic_cuda_set_option(b"tactic_stream", stream) == 0  # (9, 10: the fused step's first copies)
    got = decode_logits(path, ids, 1000, TACTIC_ATTN, tactic_force_fraction=0.1)
    full = decode_logits(path, ids, 1000, FULL_ATTN)
    assert np.isfinite(got).all()
    rel = np.linalg.norm(got[1000:] - ref[1000:], axis=-1) / np.linalg.norm(ref[1000:], axis=-1)
    assert np.median(rel) < 1e-4 and np.mean(rel < 1e-3) > 0.9, (np.median(rel), np.mean(rel < 1e-3))
    off = np.linalg.norm(got[1000:] - full[1000:], axis=-1) / np.linalg.norm(full[1000:], axis=-1)
    assert np.median(off) > 1e-4, np.median(off)


# ---- the output estimate of the unattended clusters (option tactic_tail, mass target) ----


@pytest.fixture
def tail_on():
    for bad in (-1, 2):
        assert lib.tactic_cuda_set_option(b"tactic_tail", bad) == TACTIC_ERR_INVALID_ARGUMENT
    assert lib.tactic_cuda_set_option(b"tactic_tail", 1) == 0
    yield  # (per_head_budget puts the default back)


def twin_tail(q, K, V, lists, layout, scale):
    """The attention over each KV head's list plus the estimate of its unattended clusters,
    written from native/src/tactic/tail_estimate.h with the GPU selection's sets: a cluster
    no token of which is in the list (the GPU attends whole clusters) adds, for query head
    h, the weight W_hc = |c| exp(scale q_h . centroid_c) (centroid as stored, f16) on its
    mean value row vbar_c (stored as f16): out_h = (sum_S w v + sum_c W_hc vbar_c) /
    (sum_S w + sum_c W_hc). Returns the output and each head's estimated share of the mass."""
    order, offsets, ncl, centroids = layout
    n_head, D = q.shape
    group = n_head // K.shape[0]
    out, share = np.zeros((n_head, D)), np.zeros(n_head)
    for g, rows in enumerate(lists):
        off = offsets[g]
        listed = np.zeros(K.shape[1], bool)
        listed[rows] = True
        unatt = []
        for c in range(int(ncl[g])):
            toks = order[g, off[c] : off[c + 1]]
            if len(toks) == 0:
                continue
            inside = listed[toks]
            assert inside.all() or not inside.any(), f"KV head {g}: cluster {c} attended in part"
            if not inside.any():
                unatt.append(c)
        qg = q[g * group : (g + 1) * group].astype(np.float64)
        s = scale * qg @ K[g, rows].astype(np.float64).T
        cent = centroids[g, unatt].astype(np.float16).astype(np.float64)
        sizes = np.diff(off)[unatt].astype(np.float64)
        vbar = np.array([V[g, order[g, off[c] : off[c + 1]]].astype(np.float64).mean(0) for c in unatt]).reshape(-1, D)
        vbar = vbar.astype(np.float16).astype(np.float64)
        t = scale * qg @ cent.T + np.log(sizes)
        m = np.maximum(s.max(1), t.max(1) if unatt else -np.inf)[:, None]
        ws, wt = np.exp(s - m), np.exp(t - m)
        z = ws.sum(1) + wt.sum(1)
        out[g * group : (g + 1) * group] = (ws @ V[g, rows].astype(np.float64) + wt @ vbar) / z[:, None]
        share[g * group : (g + 1) * group] = wt.sum(1) / z
    return out, share


def structured_cache(rng, n_head_kv, n_ctx, D, n_mix=40):
    """clustered_cache whose values follow the keys' mixture component (a value centre per
    component + noise): a cluster's mean value then says what its tokens carry."""
    centres = rng.standard_normal((n_head_kv, n_mix, D)) * 1.5
    vcentres = rng.standard_normal((n_head_kv, n_mix, D))
    comp = rng.integers(0, n_mix, size=(n_head_kv, n_ctx))
    K = np.take_along_axis(centres, comp[..., None], axis=1) + 0.5 * rng.standard_normal((n_head_kv, n_ctx, D))
    V = np.take_along_axis(vcentres, comp[..., None], axis=1) + 0.3 * rng.standard_normal((n_head_kv, n_ctx, D))
    return K.astype(np.float16), V.astype(np.float16)


def check_tail(q, K, V, n, c_begin, c_end, layout, scale, p, tol=2e-4):
    """The GPU step at the mass target with the estimate on: the selection the twin's, the
    output the estimate's twin; the estimate present (the output moved from the lists'
    attention) wherever it holds a share of the mass."""
    out, lists = gpu_step(q, K, V, n, c_begin, c_end, layout, 0.0, scale, p=p)
    sets, ties = twin_select(q, layout, c_begin, c_end, n, 0.0, p=p, scale=scale)
    assert_same_sets(lists, sets, ties, layout)
    want, share = twin_tail(q, K, V, lists, layout, scale)
    err = rel_err(out, want)
    assert err < tol, err
    plain = ref_attention(q, K, V, lists, scale)
    if share.max() > 1e-3:
        assert rel_err(out, plain) > 10 * err
    return out, lists, share


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("p", [0.5, 0.9])
def test_tail_estimate_matches_twin(shape, p, score_version, tail_on):
    """Every scoring kernel and selection the mass target runs (selection 5 at the mass
    target runs 4 after the scores), Gemma's and the 8B's shapes among them."""
    rng = np.random.default_rng(21 + int(p * 10))
    n_head, n_head_kv, D = shape
    n_ctx = n = 7000
    c_begin, c_end = 4, n - 150
    K, V = structured_cache(rng, n_head_kv, n_ctx, D)
    layout = kmeans_layout(rng, K, c_begin, c_end, 16)
    q = (2.0 * rng.standard_normal((n_head, D))).astype(np.float32)
    _, _, share = check_tail(q, K, V, n, c_begin, c_end, layout, 1.0 / math.sqrt(D), p)
    assert share.max() > 1e-3  # (these keys leave clusters unattended at both targets)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", [(32, 8, 128), (12, 2, 128), (8, 8, 64), (4, 1, 256)])
@pytest.mark.parametrize("blocks", [0, 1, 37, 600], ids=["b0", "b1", "b37", "b600"])
@pytest.mark.parametrize("attend", [1, 2, 3, 4, 5, 6, "fused0"], ids=["att1", "att2", "att3", "att4", "att5", "att6", "fused0"])
def test_tail_estimate_every_merge(shape, blocks, attend, tail_on):
    """Each attention variant and merge (tactic_attend 1-6; tactic_fused 0: the register-tile
    kernel and merge_kernel) hands the estimate its log-sum-exp, whatever the number of
    pieces (KV heads' lists of very unequal length: a giant cluster in KV head 0), with the
    graph replayed twice (the output poisoned in between)."""
    rng = np.random.default_rng(57)
    n_head, n_head_kv, D = shape
    n_ctx = n = 9000
    c_begin, c_end = 4, n - 200
    K, V, layout = giant_cluster_case(rng, n_head_kv, n_ctx, D, c_begin, c_end)
    q = (1.5 * rng.standard_normal((n_head, D))).astype(np.float32)
    if attend == "fused0":
        assert lib.tactic_cuda_set_option(b"tactic_fused", 0) == 0
    else:
        assert lib.tactic_cuda_set_option(b"tactic_attend", attend) == 0
    assert lib.tactic_cuda_set_option(b"tactic_blocks", blocks) == 0
    try:
        check_tail(q, K, V, n, c_begin, c_end, layout, 1.0 / math.sqrt(D), 0.5)
    finally:
        lib.tactic_cuda_set_option(b"tactic_fused", 1)
        lib.tactic_cuda_set_option(b"tactic_attend", OPTION_DEFAULTS[b"tactic_attend"])
        lib.tactic_cuda_set_option(b"tactic_blocks", 0)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("tie_run", [0, 40])
def test_tail_estimate_many_clusters(tie_run, score_version, tail_on):
    """Thousands of clusters a KV head, some empty (the estimate's blocks take hundreds
    each), with and without runs of tied scores."""
    K, V, layout = many_clusters_case(tie_run)
    rng = np.random.default_rng(43)
    q = (2.0 * rng.standard_normal((32, 128))).astype(np.float32)
    check_tail(q, K, V, MANY_N, 4, MANY_N - 200, layout, 1.0 / math.sqrt(128), 0.5)


@pytest.mark.gpu
@needs_gpu
def test_tail_estimate_most_clusters(tail_on):
    """Near the most clusters the selection handles (16,384 a KV head): the estimate's
    blocks at nearly their largest share (512 clusters each)."""
    rng = np.random.default_rng(44)
    n = 4 + 71000 + 100
    K, V = clustered_cache(rng, 2, n, 64)
    layout = random_layout(rng, K, 4, n - 100, 5)  # clusters of 0-9 tokens: about 15,800
    assert layout[1].shape[1] - 1 <= 16384
    q = (2.0 * rng.standard_normal((4, 64))).astype(np.float32)
    check_tail(q, K, V, n, 4, n - 100, layout, 1.0 / 8.0, 0.5)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("frac", [0.1, 0.0])
def test_tail_estimate_only_under_mass_target(frac, tail_on):
    """A forced fraction (the speed benchmarks) attends its lists alone with the option on;
    the mass target with the option off too."""
    rng = np.random.default_rng(23)
    n_head, n_head_kv, D = 32, 8, 128
    n = 7000
    K, V = structured_cache(rng, n_head_kv, n, D)
    layout = kmeans_layout(rng, K, 4, n - 150, 16)
    q = (2.0 * rng.standard_normal((n_head, D))).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    if frac == 0.0:
        assert lib.tactic_cuda_set_option(b"tactic_tail", 0) == 0
    out, lists = gpu_step(q, K, V, n, 4, n - 150, layout, frac, scale, p=0.5)
    assert rel_err(out, ref_attention(q, K, V, lists, scale)) < 1e-5


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("shape", [(32, 8, 128), (4, 1, 256)])
@pytest.mark.parametrize("p", [0.5, 0.9])
def test_tail_estimate_moves_toward_full(shape, p, tail_on):
    """On keys in clusters whose values follow them, the estimate brings every head's
    output closer to full attention than the lists alone (the float64 twin: about 3x)."""
    rng = np.random.default_rng(31)
    n_head, n_head_kv, D = shape
    n = 7000
    K, V = structured_cache(rng, n_head_kv, n, D)
    layout = kmeans_layout(rng, K, 4, n - 150, 16)
    q = (2.0 * rng.standard_normal((n_head, D))).astype(np.float32)
    scale = 1.0 / math.sqrt(D)
    out, lists, _ = check_tail(q, K, V, n, 4, n - 150, layout, scale, p)
    full = ref_attention(q, K, V, [np.arange(n)] * n_head_kv, scale)
    plain = ref_attention(q, K, V, lists, scale)
    e_on = np.linalg.norm(out - full, axis=1) / np.linalg.norm(full, axis=1)
    e_off = np.linalg.norm(plain - full, axis=1) / np.linalg.norm(full, axis=1)
    assert np.all(e_on < e_off) and e_on.mean() < 0.6 * e_off.mean(), (e_on.mean(), e_off.mean())


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("model", ["tiny_llama", "tiny_llama_d128"])
def test_backend_tactic_tail(model, f32_activations, request):
    """The model's decode path at the mass target (pages appended as tokens leave the
    recent window, their value means computed as they are clustered): with the estimate the
    logits are finite, repeat in a second session (up to the order in which the selection
    lays out its clusters, which moves the sums' rounding), and differ from the lists'
    attention alone by a correction (not by a broken step)."""
    path = request.getfixturevalue(model)
    rng = np.random.default_rng(9)
    ids = [1] + rng.integers(3, 1024, 1299).tolist()
    off = decode_logits(path, ids, 1000, TACTIC_ATTN, tactic_p=0.5)
    assert lib.tactic_cuda_set_option(b"tactic_tail", 1) == 0
    on = decode_logits(path, ids, 1000, TACTIC_ATTN, tactic_p=0.5)
    again = decode_logits(path, ids, 1000, TACTIC_ATTN, tactic_p=0.5)
    full = decode_logits(path, ids, 1000, FULL_ATTN)
    assert np.isfinite(on).all()
    rep = np.linalg.norm(on - again, axis=-1) / np.linalg.norm(on, axis=-1)
    assert np.median(rep) < 1e-5 and rep.max() < 1e-3, (np.median(rep), rep.max())
    d = np.linalg.norm(on[1000:] - off[1000:], axis=-1) / np.linalg.norm(off[1000:], axis=-1)
    assert np.median(d) > 1e-6, np.median(d)
    e_on = np.linalg.norm(on[1000:] - full[1000:], axis=-1) / np.linalg.norm(full[1000:], axis=-1)
    e_off = np.linalg.norm(off[1000:] - full[1000:], axis=-1) / np.linalg.norm(full[1000:], axis=-1)
    print(f"median rel. error vs full: estimate off {np.median(e_off):.3g}, on {np.median(e_on):.3g}")
    assert np.median(e_on) < 2 * np.median(e_off) + 1e-4
