#include "tail_estimate.h"

#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace tactic {

void extend_value_means(const KeyClusters &kc, const uint16_t *V, int D, std::vector<float> &vmean) {
    const int have = int(vmean.size() / size_t(D));
    if (have >= kc.n_clusters) {
        vmean.resize(size_t(kc.n_clusters) * D);
        return;
    }
    vmean.resize(size_t(kc.n_clusters) * D, 0.f);
    std::vector<float> row(static_cast<size_t>(D));
    for (int c = have; c < kc.n_clusters; c++) {
        float *vm = vmean.data() + size_t(c) * D;
        std::fill(vm, vm + D, 0.f);
        const int o0 = kc.offsets[size_t(c)], o1 = kc.offsets[size_t(c) + 1];
        for (int o = o0; o < o1; o++) {
            tk::f16_to_f32_row(V + size_t(kc.order[size_t(o)]) * D, row.data(), D);
            for (int d = 0; d < D; d++) vm[d] += row[size_t(d)];
        }
        const float inv = o1 > o0 ? 1.f / float(o1 - o0) : 0.f;
        for (int d = 0; d < D; d++) vm[d] *= inv;
    }
}

void tail_partial(const KeyClusters &kc, const float *vmean, int D, int g, const uint8_t *scored, const float *osc,
                  const uint8_t *attended, const float *cscores, const BoundedGroup &grp, SoftmaxPartial &part,
                  ThreadPool &pool) {
    const int C = kc.n_clusters;
    part.reset(g, D);
    pool.parallel_for(g, 1, [&](int64_t hb, int64_t he) {
        std::vector<double> W(static_cast<size_t>(C));
        for (int64_t h = hb; h < he; h++) {
            const BoundedHead &bh = grp.heads[size_t(h)];
            const double mh = bh.m;
            const float *cs = cscores + size_t(h) * C;
            // Unscored clusters: the proxy's shares of the stratified tail estimate.
            float cmax = -INFINITY;
            for (int c = 0; c < C; c++)
                if (!scored[size_t(c)]) cmax = std::max(cmax, cs[c]);
            double proxy_sum = 0;
            for (int c = 0; c < C; c++) {
                double w = 0;
                if (!scored[size_t(c)]) {
                    w = double(kc.offsets[size_t(c) + 1] - kc.offsets[size_t(c)]) * std::exp(double(cs[c]) - cmax);
                    proxy_sum += w;
                }
                W[size_t(c)] = w;
            }
            const double tail_scale = proxy_sum > 0 ? bh.tail_point / proxy_sum : 0.0;
            double l = 0;
            for (int c = 0; c < C; c++) {
                if (!scored[size_t(c)]) {
                    W[size_t(c)] *= tail_scale;
                } else {  // scored clusters: the exact weights of their unattended tokens
                    double w = 0;
                    for (int o = kc.offsets[size_t(c)]; o < kc.offsets[size_t(c) + 1]; o++)
                        if (!attended[size_t(kc.order[size_t(o)])]) w += std::exp(double(osc[size_t(o) * g + h]) - mh);
                    W[size_t(c)] = w;
                }
                l += W[size_t(c)];
            }
            float *acc = part.acc.data() + size_t(h) * D;
            for (int c = 0; c < C; c++) {
                const float w = float(W[size_t(c)]);
                if (w == 0.f) continue;
                const float *vm = vmean + size_t(c) * D;
                for (int d = 0; d < D; d++) acc[d] += w * vm[d];
            }
            part.m[size_t(h)] = float(mh);
            part.l[size_t(h)] = float(l);
        }
    });
}

}  // namespace tactic
