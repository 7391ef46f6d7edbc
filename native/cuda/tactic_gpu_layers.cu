// K-means on the GPU (one CUDA block per job: a block of tokens of one KV head of one
// layer, all layers and KV heads in one launch) and the per-layer cluster pages of the
// CUDA backend's Tactic (tactic_gpu_layers.cuh).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "cuda_util.cuh"
#include "device_limits.cuh"
#include "tactic_gpu_layers.cuh"

namespace tactic {
namespace cuda {

namespace {

constexpr int kMaxJobTokens = 2048;

__device__ __forceinline__ uint32_t mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// Shared memory of a job with C slots (padded to 32) and len tokens.
__host__ __device__ inline size_t kmeans_smem(int D, int Cp, int len) {
    return size_t(Cp) * D * (sizeof(float) + sizeof(__half)) + 2 * sizeof(float) * size_t(Cp) + sizeof(int) * size_t(len);
}

// blockDim.x == D: thread d owns dimension d in the centroid update and the copies;
// in the assignment each thread takes whole keys.
template <int D>
__global__ void __launch_bounds__(D) kmeans_kernel(const KmeansJob *__restrict__ jobs) {
    const KmeansJob J = jobs[blockIdx.x];
    const int C = J.C, Cp = (C + 31) / 32 * 32, len = J.len, tid = threadIdx.x;
    extern __shared__ float4 smem_f4[];
    float *sums = reinterpret_cast<float *>(smem_f4);           // [Cp][D]
    __half *cent = reinterpret_cast<__half *>(sums + size_t(Cp) * D);  // [Cp][D]
    float *hn = reinterpret_cast<float *>(cent + size_t(Cp) * D);      // [Cp]: |c|^2 / 2
    int *cnt = reinterpret_cast<int *>(hn + Cp);                        // [Cp]
    int *asg = cnt + Cp;                                                // [len]
    __shared__ int s_changed;
    const __half *K = J.k + int64_t(J.tok_begin) * D;

    // Initial centroids: a key from each of C equal strata of the block (distinct keys).
    for (int c = 0; c < Cp; c++) {
        int src = 0;
        if (c < C) {
            const int lo = int(int64_t(c) * len / C), hi = int(int64_t(c + 1) * len / C);
            src = lo + int(mix32(J.seed ^ mix32(uint32_t(c) + 0x9e3779b9u)) % uint32_t(max(1, hi - lo)));
        }
        cent[size_t(c) * D + tid] = c < C ? K[int64_t(src) * D + tid] : __float2half(0.f);
    }
    for (int t = tid; t < len; t += D) asg[t] = -1;
    __syncthreads();

    for (int it = 0; it < kKmeansMaxIter; it++) {
        for (int c = tid; c < C; c += D) {
            float s = 0.f;
            for (int d = 0; d < D; d++) {
                const float x = __half2float(cent[size_t(c) * D + d]);
                s = fmaf(x, x, s);
            }
            hn[c] = 0.5f * s;
        }
        if (tid == 0) s_changed = 0;
        __syncthreads();
        // Assignment: nearest centroid = argmax k.c - |c|^2 / 2 (ties: lower index).
        for (int t = tid; t < len; t += D) {
            float best = -INFINITY;
            int bi = 0;
            for (int c0 = 0; c0 < C; c0 += 32) {
                float acc[32];
#pragma unroll
                for (int j = 0; j < 32; j++) acc[j] = 0.f;
                for (int d0 = 0; d0 < D; d0 += 8) {
                    const uint4 w = *reinterpret_cast<const uint4 *>(K + int64_t(t) * D + d0);
                    const __half2 *kh = reinterpret_cast<const __half2 *>(&w);
                    float2 kf[4];
#pragma unroll
                    for (int i = 0; i < 4; i++) kf[i] = __half22float2(kh[i]);
#pragma unroll
                    for (int j = 0; j < 32; j++) {
                        const __half2 *cr = reinterpret_cast<const __half2 *>(cent + size_t(c0 + j) * D + d0);
#pragma unroll
                        for (int i = 0; i < 4; i++) {
                            const float2 cf = __half22float2(cr[i]);
                            acc[j] = fmaf(kf[i].x, cf.x, fmaf(kf[i].y, cf.y, acc[j]));
                        }
                    }
                }
#pragma unroll
                for (int j = 0; j < 32; j++) {
                    const int c = c0 + j;
                    if (c < C && acc[j] - hn[c] > best) {
                        best = acc[j] - hn[c];
                        bi = c;
                    }
                }
            }
            if (asg[t] != bi) {
                asg[t] = bi;
                s_changed = 1;
            }
        }
        __syncthreads();
        if (!s_changed) break;  // converged: the centroids are already their members' means
        // Update: thread d sums dimension d of every key into its cluster's row.
        for (int c = 0; c < C; c++) sums[size_t(c) * D + tid] = 0.f;
        if (tid == 0)
            for (int c = 0; c < C; c++) cnt[c] = 0;
        __syncthreads();
        for (int t = 0; t < len; t++) {
            const int a = asg[t];
            sums[size_t(a) * D + tid] += __half2float(K[int64_t(t) * D + tid]);
            if (tid == 0) cnt[a]++;
        }
        __syncthreads();
        for (int c = 0; c < C; c++)  // an empty cluster keeps its centroid
            if (cnt[c] > 0) cent[size_t(c) * D + tid] = __float2half(sums[size_t(c) * D + tid] / float(cnt[c]));
        __syncthreads();
    }

    // Pages: slot c's rows start at row0 + the tokens of slots before it.
    __shared__ int s_start[kKmeansMaxC];
    if (tid == 0) {
        int r = 0;
        for (int c = 0; c < C; c++) {
            s_start[c] = r;
            J.coff[c] = J.row0 + r;
            r += cnt[c];
        }
        J.coff[C] = J.row0 + r;  // == the next job's first row
    }
    __syncthreads();
    for (int c = tid; c < C; c += D) {  // tokens ascend inside a cluster
        int r = J.row0 + s_start[c];
        for (int t = 0; t < len; t++)
            if (asg[t] == c) J.pos_map[r++] = J.tok_begin + t;
    }
    for (int c = 0; c < C; c++) J.cent[size_t(c) * D + tid] = cent[size_t(c) * D + tid];
    __syncthreads();
    for (int o = 0; o < len; o++) {
        const int src = J.pos_map[J.row0 + o];
        J.ks[int64_t(J.row0 + o) * D + tid] = J.k[int64_t(src) * D + tid];
        J.vs[int64_t(J.row0 + o) * D + tid] = J.v[int64_t(src) * D + tid];
    }
}

template <int D>
void launch_kmeans(const KmeansJob *d_jobs, int n_jobs, int max_C, int max_len, cudaStream_t s) {
    const size_t smem = kmeans_smem(D, (max_C + 31) / 32 * 32, max_len);
    set_dynamic_smem(kmeans_kernel<D>, smem, "Tactic's K-means kernel");
    kmeans_kernel<D><<<unsigned(n_jobs), D, smem, s>>>(d_jobs);
}

// The slots a job may have here: a job's shared memory (kKmeansMaxC slots at head_dim 256 is
// 201 KB) must fit one block: 96 slots at head_dim 256 on sm_80 (163 KB), 32 at 256 and 96 at
// 128 on sm_86 / sm_89 (99 KB); a block of tokens is then clustered as more, shorter jobs.
template <int D>
int kmeans_max_slots() {
    static int n = 0;
    if (n == 0) {
        n = 32;
        for (int c = kKmeansMaxC; c > 32; c -= 32)
            if (smem_fits(kmeans_kernel<D>, kmeans_smem(D, c, kMaxJobTokens))) {
                n = c;
                break;
            }
    }
    return n;
}
int kmeans_max_slots(int head_dim) {
    return head_dim == 64 ? kmeans_max_slots<64>() : head_dim == 128 ? kmeans_max_slots<128>() : kmeans_max_slots<256>();
}

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void kmeans_jobs_dev(const KmeansJob *d_jobs, int n_jobs, int head_dim, int max_C, int max_len, cudaStream_t s) {
    if (n_jobs <= 0) return;
    switch (head_dim) {
        case 64: launch_kmeans<64>(d_jobs, n_jobs, max_C, max_len, s); break;
        case 128: launch_kmeans<128>(d_jobs, n_jobs, max_C, max_len, s); break;
        default: launch_kmeans<256>(d_jobs, n_jobs, max_C, max_len, s); break;
    }
}

namespace {

int slots_for(int len, int cluster_size) {
    return std::max(1, int(std::lround(double(len) / cluster_size)));
}

int cmax_for(const TacticGpuParams &prm, int n_ctx) {
    const int bs = std::max(1, std::min(prm.block_size > 0 ? prm.block_size : 256, 64 * prm.cluster_size));
    return n_ctx / prm.cluster_size + n_ctx / bs + 64;
}

}  // namespace

uint64_t TacticGpu::bytes(const TacticGpuParams &prm, int n_global, int n_head, int n_head_kv, int D, int n_ctx) {
    const uint64_t cmax = uint64_t(cmax_for(prm, n_ctx));
    TACTIC_CHECK(cmax <= uint64_t(tactic_max_clusters()), TACTIC_ERR_UNSUPPORTED,
                 "attention=tactic on CUDA: a context of " + std::to_string(n_ctx) + " tokens needs " +
                     std::to_string(cmax) + " clusters per KV head; the GPU selection handles " +
                     std::to_string(tactic_max_clusters()) + " (raise cluster_size or shorten n_ctx)");
    const uint64_t per_layer = 2ull * n_head_kv * n_ctx * D * sizeof(__half) + uint64_t(n_head_kv) * n_ctx * 4 +
                               2 * n_head_kv * cmax * D * sizeof(__half) + n_head_kv * (cmax + 1) * 4 + 64;
    const uint64_t nb = uint64_t(tactic_attn_blocks(D, n_head / n_head_kv));
    const uint64_t shared = n_head * cmax * 5 + uint64_t(n_head_kv) * (n_ctx + 1) * 4 + nb * n_head * (D + 2) * 4;
    return n_global * per_layer + shared + tactic_tail_bytes(n_head, D) + (64ull << 10) * sizeof(KmeansJob);
}

void *TacticGpu::alloc(size_t bytes) {
    void *p = nullptr;
    TACTIC_CU(cudaMalloc(&p, std::max<size_t>(bytes, 16)));
    allocs_.push_back(p);
    TACTIC_CU(cudaMemset(p, 0, std::max<size_t>(bytes, 16)));
    // cudaMemset runs on the legacy stream, which the backend's non-blocking stream is not ordered
    // after: without this wait the step's counters and workspaces (reused, dirty memory once other
    // contexts freed theirs) could be read before they are zero (illegal accesses on the H200).
    TACTIC_CU(cudaDeviceSynchronize());
    return p;
}

TacticGpu::TacticGpu(const TacticGpuParams &prm, const std::vector<uint8_t> &is_global, int n_head, int n_head_kv,
                     int D, int n_ctx, const __half *k_cache, const __half *v_cache, size_t kv_layer)
    : prm_(prm), H_(n_head), Hkv_(n_head_kv), D_(D), n_ctx_(n_ctx) {
    if (prm_.block_size <= 0) prm_.block_size = 256;
    cmax_ = cmax_for(prm_, n_ctx);
    tactic_init_kernels();
    layers_.resize(is_global.size());
    TACTIC_CU(cudaHostAlloc(reinterpret_cast<void **>(&h_sizes_), sizeof(int32_t) * layers_.size() * (Hkv_ + 2),
                            cudaHostAllocDefault));
    for (size_t il = 0; il < layers_.size(); il++) {
        Layer &L = layers_[il];
        L.global = is_global[il] != 0;
        if (!L.global) continue;
        L.ks = static_cast<__half *>(alloc(sizeof(__half) * size_t(Hkv_) * n_ctx * D));
        L.vs = static_cast<__half *>(alloc(sizeof(__half) * size_t(Hkv_) * n_ctx * D));
        L.cent = static_cast<__half *>(alloc(sizeof(__half) * size_t(Hkv_) * cmax_ * D));
        L.vmean = static_cast<__half *>(alloc(sizeof(__half) * size_t(Hkv_) * cmax_ * D));
        L.pos_map = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(Hkv_) * n_ctx));
        L.coff = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(Hkv_) * (cmax_ + 1)));
        L.ncl = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(Hkv_)));
        L.range = static_cast<int32_t *>(alloc(sizeof(int32_t) * 2));
        TacticLayerDev &d = L.dev;
        d.k_cache = k_cache + il * kv_layer;
        d.v_cache = v_cache + il * kv_layer;
        d.ks = L.ks;
        d.vs = L.vs;
        d.cent = L.cent;
        d.vmean = L.vmean;
        d.coff = L.coff;
        d.n_clusters = L.ncl;
        d.range = L.range;
        d.n_head = H_;
        d.n_head_kv = Hkv_;
        d.head_dim = D_;
        d.n_ctx = n_ctx_;
        d.cap = n_ctx_;
        d.cmax = cmax_;
    }
    bufs_.n_blocks = tactic_attn_blocks(D_, H_ / Hkv_);
    bufs_.cscore = static_cast<float *>(alloc(sizeof(float) * size_t(H_) * cmax_));
    bufs_.hsel = static_cast<uint8_t *>(alloc(size_t(H_) * cmax_));
    bufs_.list = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(Hkv_) * n_ctx_));
    bufs_.rows = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(Hkv_) * n_ctx_));
    bufs_.count = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(Hkv_)));
    bufs_.part_acc = static_cast<float *>(alloc(sizeof(float) * size_t(bufs_.n_blocks) * H_ * D_));
    bufs_.part_ml = static_cast<float *>(alloc(sizeof(float) * size_t(bufs_.n_blocks) * H_ * 2));
    bufs_.done = static_cast<int32_t *>(alloc(sizeof(int32_t) * size_t(Hkv_)));  // alloc() zeroes
    bufs_.sel_ws = static_cast<int32_t *>(alloc(tactic_select_ws_bytes(H_, Hkv_)));
    bufs_.spart = static_cast<float *>(alloc(tactic_score_parts_bytes(H_, cmax_)));
    tactic_tail_bufs(static_cast<float *>(alloc(tactic_tail_bytes(H_, D_))), H_, D_, bufs_);
}

TacticGpu::~TacticGpu() {
    for (void *p : allocs_) cudaFree(p);
    if (h_sizes_) cudaFreeHost(h_sizes_);
}

void TacticGpu::upload_sizes(Layer &L, cudaStream_t s) {
    const size_t il = size_t(&L - layers_.data());
    int32_t *h = h_sizes_ + il * (Hkv_ + 2);
    for (int g = 0; g < Hkv_; g++) h[g] = L.n_clusters;
    h[Hkv_] = L.begin;
    h[Hkv_ + 1] = L.end;
    TACTIC_CU(cudaMemcpyAsync(L.ncl, h, sizeof(int32_t) * Hkv_, cudaMemcpyHostToDevice, s));
    TACTIC_CU(cudaMemcpyAsync(L.range, h + Hkv_, sizeof(int32_t) * 2, cudaMemcpyHostToDevice, s));
}

void TacticGpu::cluster_range(int from, int to, bool first, cudaStream_t s) {
    // Blocks as the CPU cuts them; a block too big for one job is split evenly.
    std::vector<std::pair<int, int>> blocks;
    if (first) {
        const int bi = std::max(1024, 4 * prm_.block_size);
        const int nb = std::max(1, (to - from) / bi);
        for (int b = 0; b < nb; b++) blocks.emplace_back(from + b * bi, b + 1 == nb ? to : from + (b + 1) * bi);
    } else {
        blocks.emplace_back(from, to);
    }
    struct Piece {
        int begin, len, C, block;
    };
    std::vector<Piece> pieces;
    const int max_c = kmeans_max_slots(D_);
    for (size_t b = 0; b < blocks.size(); b++) {
        const int len = blocks[b].second - blocks[b].first;
        const int C = slots_for(len, prm_.cluster_size);
        const int parts = std::max((C + max_c - 1) / max_c, (len + kMaxJobTokens - 1) / kMaxJobTokens);
        for (int p = 0; p < parts; p++) {
            const int b0 = blocks[b].first + int(int64_t(p) * len / parts);
            const int b1 = blocks[b].first + int(int64_t(p + 1) * len / parts);
            pieces.push_back(Piece{b0, b1 - b0, std::min(max_c, slots_for(b1 - b0, prm_.cluster_size)), int(b)});
        }
    }
    jobs_.clear();
    int max_len = 1;
    std::vector<int> cl_from(layers_.size(), 0);  // per layer: its first new cluster
    for (size_t il = 0; il < layers_.size(); il++) {
        Layer &L = layers_[il];
        if (!L.global) continue;
        if (first) {
            L.begin = L.end = from;
            L.n_clusters = 0;
            L.block_end.clear();
            L.block_clusters.clear();
        }
        int cl = L.n_clusters;
        cl_from[il] = cl;
        for (const Piece &pc : pieces) {
            TACTIC_CHECK(cl + pc.C <= cmax_, TACTIC_ERR_INTERNAL, "Tactic on CUDA: more clusters than reserved");
            for (int g = 0; g < Hkv_; g++) {
                KmeansJob j;
                j.k = L.dev.k_cache + size_t(g) * n_ctx_ * D_;
                j.v = L.dev.v_cache + size_t(g) * n_ctx_ * D_;
                j.ks = L.ks + size_t(g) * n_ctx_ * D_;
                j.vs = L.vs + size_t(g) * n_ctx_ * D_;
                j.pos_map = L.pos_map + size_t(g) * n_ctx_;
                j.coff = L.coff + size_t(g) * (cmax_ + 1) + cl;
                j.cent = L.cent + (size_t(g) * cmax_ + cl) * D_;
                j.tok_begin = pc.begin;
                j.len = pc.len;
                j.row0 = pc.begin - L.begin;
                j.C = pc.C;
                j.seed = uint32_t(prm_.seed * 0x9E3779B97F4A7C15ull + il * 1000003u + uint64_t(g) * 7919u + pc.begin);
                jobs_.push_back(j);
                max_len = std::max(max_len, pc.len);
            }
            cl += pc.C;
            if (&pc == &pieces.back() || pieces[size_t(&pc - pieces.data()) + 1].block != pc.block) {
                L.block_end.push_back(pc.begin + pc.len);
                L.block_clusters.push_back(cl);
            }
        }
        L.n_clusters = cl;
        L.end = to;
    }
    if (jobs_.empty()) return;
    if (int(jobs_.size()) > jobs_cap_) {
        if (d_jobs_) {
            cudaFree(d_jobs_);
            allocs_.erase(std::find(allocs_.begin(), allocs_.end(), static_cast<void *>(d_jobs_)));
        }
        jobs_cap_ = int(jobs_.size());
        d_jobs_ = static_cast<KmeansJob *>(alloc(sizeof(KmeansJob) * size_t(jobs_cap_)));
    }
    // Two launches: the jobs of the common size first, the few larger ones (a range's last
    // block takes its remainder: up to twice the tokens and slots) after, each launch with
    // the shared memory its own jobs need: the common jobs then fit twice as many blocks on
    // a multiprocessor as when all are sized for the largest.
    int small_C = max_c, small_len = max_len;
    {
        std::vector<int> cs;
        for (const KmeansJob &j : jobs_) cs.push_back(j.C);
        std::nth_element(cs.begin(), cs.begin() + cs.size() / 2, cs.end());
        small_C = cs[cs.size() / 2];
        small_len = 0;
        for (const KmeansJob &j : jobs_)
            if (j.C <= small_C) small_len = std::max(small_len, j.len);
    }
    const auto mid = std::stable_partition(jobs_.begin(), jobs_.end(), [&](const KmeansJob &j) { return j.C <= small_C; });
    const int n_small = int(mid - jobs_.begin());
    int big_C = 1, big_len = 1;
    for (auto it = mid; it != jobs_.end(); ++it) {
        big_C = std::max(big_C, it->C);
        big_len = std::max(big_len, it->len);
    }
    TACTIC_CU(cudaMemcpyAsync(d_jobs_, jobs_.data(), sizeof(KmeansJob) * jobs_.size(), cudaMemcpyHostToDevice, s));
    kmeans_jobs_dev(d_jobs_, n_small, D_, small_C, std::max(1, small_len), s);
    kmeans_jobs_dev(d_jobs_ + n_small, int(jobs_.size()) - n_small, D_, big_C, big_len, s);
    TACTIC_CU(cudaGetLastError());
    for (size_t il = 0; il < layers_.size(); il++) {  // the new clusters' mean values (the output estimate)
        const Layer &L = layers_[il];
        if (L.global) tactic_value_means_dev(L.vs, L.coff, Hkv_, n_ctx_, cmax_, D_, cl_from[il], L.n_clusters, L.vmean, s);
    }
    for (Layer &L : layers_)
        if (L.global) upload_sizes(L, s);
}

bool TacticGpu::prepare(int n_tokens, cudaStream_t s) {
    if (prm_.min_ctx > 0 && n_tokens < prm_.min_ctx) return false;
    const int begin = std::min(prm_.n_sink, n_tokens);
    const int end = std::max(begin, n_tokens - prm_.n_recent);
    const Layer *first = nullptr;
    for (const Layer &L : layers_)
        if (L.global) {
            first = &L;
            break;
        }
    if (!first) return false;
    const double t0 = now_s();
    bool ran = false;
    if (first->n_clusters == 0) {
        if (end - begin >= std::max(64, 4 * prm_.cluster_size)) {
            cluster_range(begin, end, true, s);
            ran = true;
        }
    } else {
        while (end - first->end >= prm_.block_size) {
            cluster_range(first->end, first->end + prm_.block_size, false, s);
            ran = true;
        }
    }
    if (ran) {
        TACTIC_CU(cudaStreamSynchronize(s));
        t_cluster_ += now_s() - t0;
    }
    return true;
}

void TacticGpu::step(int il, const float *q, const int32_t *d_pos, float *out, cudaStream_t s) const {
    TacticStepArgs a;
    a.q = q;
    a.d_pos = d_pos;
    a.scale = 1.f;  // the backend's q is pre-scaled
    // P = 1 keeps every cached token, as on the CPU (a cut of the centroid proxy's mass can stop
    // short of clusters whose proxy weight rounds to nothing).
    a.force_fraction = prm_.force_fraction > 0.f ? prm_.force_fraction : prm_.p >= 1.f ? 1.f : 0.f;
    // The kernels' candidate target is 1 - (1 - p) / 4 of the mass: p chosen so it is 1 - (1 - P) / div
    // (options().tactic_cand_div).
    a.p = 1.f - (1.f - prm_.p) * 4.f / float(options().tactic_cand_div);
    a.out = out;
    tactic_step_dev(layers_[size_t(il)].dev, a, bufs_, s);
}

void TacticGpu::truncate(int n_keep) {
    const int limit = n_keep - prm_.n_recent;
    for (Layer &L : layers_) {
        if (!L.global || L.n_clusters == 0) continue;
        while (!L.block_end.empty() && L.block_end.back() > limit) {
            L.block_end.pop_back();
            L.block_clusters.pop_back();
        }
        if (L.block_end.empty()) {
            L.n_clusters = 0;
            L.begin = L.end = 0;
        } else {
            L.end = L.block_end.back();
            L.n_clusters = L.block_clusters.back();
        }
        const size_t il = size_t(&L - layers_.data());
        int32_t *h = h_sizes_ + il * (Hkv_ + 2);
        for (int g = 0; g < Hkv_; g++) h[g] = L.n_clusters;
        h[Hkv_] = L.begin;
        h[Hkv_ + 1] = L.end;
        TACTIC_CU(cudaMemcpy(L.ncl, h, sizeof(int32_t) * Hkv_, cudaMemcpyHostToDevice));
        TACTIC_CU(cudaMemcpy(L.range, h + Hkv_, sizeof(int32_t) * 2, cudaMemcpyHostToDevice));
    }
}

}  // namespace cuda
}  // namespace tactic
