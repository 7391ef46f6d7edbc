// RMSNorm and RoPE on the GPU; the CPU twins are rms_norm / rope_cos_sin + rope_apply
// in cpu/ops.cpp. The decode kernels follow pdl.cuh's protocol (pdl_wait() first, then
// pdl_trigger()) and launch with launch_pdl.
#include <cmath>

#include "cuda_backend.h"
#include "cuda_ops.cuh"
#include "cuda_util.cuh"
#include "fused_ops.cuh"
#include "pdl.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kNormThreads = 256;

// One block per row: sum of squares, then scale (and weight) every element.
__global__ void __launch_bounds__(kNormThreads)
    rms_norm_kernel(const float *__restrict__ x, const float *__restrict__ w, int n, float eps,
                    float *__restrict__ y) {
    pdl_wait();
    pdl_trigger();
    rms_norm_row<kNormThreads>(x + int64_t(blockIdx.x) * n, w, n, eps, y + int64_t(blockIdx.x) * n);
}

struct RopeDev {
    int neox, n_rot, head_dim, n_head;
    float theta_scale, freq_scale, mscale, yarn_low, yarn_high;
    int yarn;
};

// One thread per rotated pair (token, head, i < n_rot/2).
__global__ void rope_kernel(float *__restrict__ x, int n_tokens, const int32_t *__restrict__ pos,
                            const float *__restrict__ freq_factors, RopeDev r) {
    const int half = r.n_rot / 2;
    const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (t >= int64_t(n_tokens) * r.n_head * half) return;
    const int i = int(t % half);
    const int64_t th = t / half;  // token * n_head + head
    const int tok = int(th / r.n_head);
    float theta_extrap = float(pos[tok]) * powf(r.theta_scale, float(i));
    if (freq_factors) theta_extrap /= freq_factors[i];
    float theta = r.freq_scale * theta_extrap;
    if (r.yarn) {
        const float yv = (float(i) - r.yarn_low) / fmaxf(0.001f, r.yarn_high - r.yarn_low);
        const float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, yv));
        theta = theta * (1.0f - ramp) + theta_extrap * ramp;
    }
    float sn, cs;
    sincosf(theta, &sn, &cs);
    cs *= r.mscale;
    sn *= r.mscale;
    float *xh = x + th * r.head_dim;
    const int a = r.neox ? i : 2 * i, b = r.neox ? i + half : 2 * i + 1;
    const float x0 = xh[a], x1 = xh[b];
    xh[a] = x0 * cs - x1 * sn;
    xh[b] = x0 * sn + x1 * cs;
}

float yarn_corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return float(n_dims) * std::log(float(n_ctx_orig) / (n_rot * 2.0f * float(M_PI))) / (2.0f * std::log(base));
}

RopeDev make_rope_dev(const RopeArgs &a, int head_dim, int n_head) {
    RopeDev r{};
    r.neox = a.neox;
    r.n_rot = a.n_rot;
    r.head_dim = head_dim;
    r.n_head = n_head;
    r.theta_scale = std::pow(a.base, -2.0f / float(a.n_rot));
    r.freq_scale = a.freq_scale;
    r.mscale = a.attn_factor;
    r.yarn = a.yarn;
    if (a.yarn) {  // as the CPU twin (cpu/ops.cpp rope_cos_sin)
        r.yarn_low = std::max(0.0f, std::floor(yarn_corr_dim(a.n_rot, a.yarn_orig_ctx, 32.0f, a.base)));
        r.yarn_high = std::min(float(a.n_rot - 1), std::ceil(yarn_corr_dim(a.n_rot, a.yarn_orig_ctx, 1.0f, a.base)));
        r.mscale *= 1.0f + 0.1f * std::log(1.0f / a.freq_scale);
    }
    return r;
}

// One block per (token, head slot): slots [0, H) are query heads (rotated, scaled,
// rounded to f16 in place), [H, H + Hkv) key heads (rotated, stored to the cache),
// [H + Hkv, H + 2 Hkv) value heads (stored). The angle is built by repeated
// multiplication as the CPU twin does, so both rotate by the same float angles.
// With q_norm / k_norm (decode fusion: QK-norm) a head is first RMS-normed into shared
// memory by rms_norm_row<kNormThreads>, the code and block size of rms_norm_kernel, so
// the rotation reads the bytes the separate norm would have written.
__global__ void rope_qkv_kernel(QkvArgs a, RopeDev r, const float *__restrict__ freq_factors) {
    const int tok = blockIdx.x, slot = blockIdx.y, D = a.head_dim, H = a.n_head, Hkv = a.n_head_kv;
    pdl_wait();
    pdl_trigger();
    const int pos = a.pos[tok];
    if (slot >= H + Hkv) {  // value head: copy
        const int h = slot - H - Hkv;
        const float *src = a.v + (int64_t(tok) * Hkv + h) * D;
        __half *dst = a.v_cache + (int64_t(h) * a.n_ctx + pos) * D;
        for (int d = threadIdx.x; d < D; d += blockDim.x) dst[d] = __float2half_rn(src[d]);
        return;
    }
    const bool is_q = slot < H;
    const int h = is_q ? slot : slot - H;
    const float *src = is_q ? a.q + (int64_t(tok) * H + h) * D : a.k + (int64_t(tok) * Hkv + h) * D;
    const float *norm_w = is_q ? a.q_norm : a.k_norm;
    __shared__ float normed[256];  // head_dim <= 256
    if (norm_w) {  // the launch gave kNormThreads threads (rope_qkv_dev)
        rms_norm_row<kNormThreads>(src, norm_w, D, a.norm_eps, normed);
        __syncthreads();
        src = normed;
    }
    float *qdst = a.q + (int64_t(tok) * H + h) * D;
    __half *kdst = a.k_cache + (int64_t(h) * a.n_ctx + pos) * D;
    auto put = [&](int d, float val) {
        if (is_q) qdst[d] = __half2float(__float2half_rn(val * a.q_scale));
        else kdst[d] = __float2half_rn(val);
    };
    const int half = r.n_rot / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float theta_base = float(pos);
        for (int j = 0; j < i; j++) theta_base *= r.theta_scale;
        float theta_extrap = theta_base;
        if (freq_factors) theta_extrap /= freq_factors[i];
        float theta = r.freq_scale * theta_extrap;
        if (r.yarn) {
            const float yv = (float(i) - r.yarn_low) / fmaxf(0.001f, r.yarn_high - r.yarn_low);
            const float ramp = 1.0f - fminf(1.0f, fmaxf(0.0f, yv));
            theta = theta * (1.0f - ramp) + theta_extrap * ramp;
        }
        const float cs = cosf(theta) * r.mscale, sn = sinf(theta) * r.mscale;
        const int ia = r.neox ? i : 2 * i, ib = r.neox ? i + half : 2 * i + 1;
        const float x0 = src[ia], x1 = src[ib];
        put(ia, x0 * cs - x1 * sn);
        put(ib, x0 * sn + x1 * cs);
    }
    for (int d = r.n_rot + threadIdx.x; d < D; d += blockDim.x) put(d, src[d]);
}

}  // namespace

void rms_norm_dev(const float *x, const float *w, int64_t n_rows, int n, float eps, float *y, cudaStream_t stream) {
    if (n_rows == 0) return;
    launch_pdl(rms_norm_kernel, dim3(unsigned(n_rows)), dim3(kNormThreads), 0, stream, x, w, n, eps, y);
}

void rope_qkv_dev(const QkvArgs &a, const RopeArgs &rope, cudaStream_t stream) {
    if (a.n_tokens == 0) return;
    const RopeDev r = make_rope_dev(rope, a.head_dim, a.n_head);
    dim3 grid(unsigned(a.n_tokens), unsigned(a.n_head + 2 * a.n_head_kv));
    const bool norm = a.q_norm || a.k_norm;
    TACTIC_CHECK(!norm || a.head_dim <= 256, TACTIC_ERR_INTERNAL, "rope_qkv: QK-norm fused for head_dim <= 256 only");
    launch_pdl(rope_qkv_kernel, grid, dim3(norm ? kNormThreads : 64), 0, stream, a, r, rope.freq_factors);
}

void rms_norm(const float *x, const float *w, int64_t n_rows, int n, float eps, float *y) {
    require_device();
    const size_t bytes = sizeof(float) * size_t(n_rows) * size_t(n);
    const int copies = bench_copies(bytes);
    std::vector<DevBuf> d_x;
    for (int i = 0; i < copies; i++) {
        d_x.emplace_back(bytes);
        d_x.back().upload(x, bytes);
    }
    DevBuf d_w(w ? sizeof(float) * size_t(n) : 0), d_y(bytes);
    if (w) d_w.upload(w, d_w.size());
    d_y.poison();
    if (n_rows == 0) return;
    auto launch = [&](int copy) {
        rms_norm_kernel<<<unsigned(n_rows), kNormThreads>>>(d_x[copy].as<float>(), w ? d_w.as<float>() : nullptr, n,
                                                           eps, d_y.as<float>());
    };
    launch(0);
    check_launch("rms_norm_kernel");
    d_y.download(y, bytes);
    bench(launch, copies);
}

void rope(float *x, int n_tokens, int n_head, int head_dim, const int32_t *pos, const RopeArgs &a) {
    require_device();
    const size_t bytes = sizeof(float) * size_t(n_tokens) * size_t(n_head) * size_t(head_dim);
    DevBuf d_x(bytes), d_pos(sizeof(int32_t) * size_t(n_tokens)), d_ff(a.freq_factors ? sizeof(float) * (a.n_rot / 2) : 0);
    d_x.upload(x, bytes);
    d_pos.upload(pos, d_pos.size());
    if (a.freq_factors) d_ff.upload(a.freq_factors, d_ff.size());
    RopeDev r{};
    r.neox = a.neox;
    r.n_rot = a.n_rot;
    r.head_dim = head_dim;
    r.n_head = n_head;
    r.theta_scale = std::pow(a.base, -2.0f / float(a.n_rot));
    r.freq_scale = a.freq_scale;
    r.mscale = a.attn_factor;
    r.yarn = a.yarn;
    if (a.yarn) {  // as the CPU twin (cpu/ops.cpp rope_cos_sin)
        r.yarn_low = std::max(0.0f, std::floor(yarn_corr_dim(a.n_rot, a.yarn_orig_ctx, 32.0f, a.base)));
        r.yarn_high = std::min(float(a.n_rot - 1), std::ceil(yarn_corr_dim(a.n_rot, a.yarn_orig_ctx, 1.0f, a.base)));
        r.mscale *= 1.0f + 0.1f * std::log(1.0f / a.freq_scale);
    }
    const int64_t total = int64_t(n_tokens) * n_head * (a.n_rot / 2);
    if (total == 0) return;
    const int threads = 256;
    rope_kernel<<<unsigned((total + threads - 1) / threads), threads>>>(d_x.as<float>(), n_tokens, d_pos.as<int32_t>(),
                                                                          a.freq_factors ? d_ff.as<float>() : nullptr, r);
    check_launch("rope_kernel");
    d_x.download(x, bytes);
}

}  // namespace cuda
}  // namespace tactic
