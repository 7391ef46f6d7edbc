// The tokens a KV group does not attend, estimated instead of dropped (bounded selector).
//
// Attending only the kept set S renormalises the softmax over S: the output becomes
// sum_S w v / sum_S w, which leaves out the unattended share of the mass (about 1 - P)
// and with it the part of the output its values carry. Here that part is estimated per
// K-means cluster c: W_hc, head h's weight of c's unattended tokens, times the mean value
// vbar_c of c's tokens, merged into the softmax as one more partial:
//   out_h = (sum_S w v + sum_c W_hc vbar_c) / (sum_S w + sum_c W_hc).
// W_hc is exact for clusters the selector scored (their scores are known; only the values
// are replaced by the cluster's mean); for clusters nobody scored, the head's stratified
// tail estimate is spread over them by the centroid proxy |c| exp(q . centroid_c).
// Values are read once per cluster when its block is clustered, never per step.
#pragma once

#include <cstdint>
#include <vector>

#include "../cpu/attention.h"
#include "../threadpool.h"
#include "bounded_selection.h"
#include "kmeans.h"

namespace tactic {

// Extends vmean ([clusters][D] f32, the mean value row of each cluster's tokens) from the
// clusters it already holds (vmean.size() / D) to all of kc's. Block mode only: there a
// cluster's members never change after its block is clustered.
void extend_value_means(const KeyClusters &kc, const uint16_t *V, int D, std::vector<float> &vmean);

// part (g heads, D) = the unattended tokens' estimated partial softmax: m[h] = the head's
// selection reference grp.heads[h].m, l[h] = sum_c W_hc, acc[h] = sum_c W_hc vbar_c.
//  scored/osc: the selector's per-cluster flags and exact scores by order index (osc[o*g+h]);
//  attended:  per token, nonzero when the group attends it;
//  cscores:   [g][n_clusters] q . centroid.
void tail_partial(const KeyClusters &kc, const float *vmean, int D, int g, const uint8_t *scored, const float *osc,
                  const uint8_t *attended, const float *cscores, const BoundedGroup &grp, SoftmaxPartial &part,
                  ThreadPool &pool);

}  // namespace tactic
