// Optimized cached_attention (issue 6): grouped-query attention of T query rows
// over the valid prefix of f32 KV caches, read in place (query head h reads kv
// head h / (Hq / Hkv); no repeated heads are built). Per query row: SIMD dot
// products q . k_j over D, a SIMD softmax (Highway's Exp), SIMD accumulation of
// p_j * v_j. Query heads are split over the thread pool like the portable
// kernel (Cache.cpp), which stays the reference (KernelCall::portableOnly).
#ifndef KILN_RUNTIME_KERNELS_OPT_OPTATTENTION_H
#define KILN_RUNTIME_KERNELS_OPT_OPTATTENTION_H

#include <cstdint>

namespace kiln {
namespace rt {

class ThreadPool;

namespace opt {

/// q [B, Hq, T, D], caches [B, Hkv, S, D], out [B, Hq, T, D] (all f32,
/// contiguous). Query row i sits at position start + i and attends cache
/// positions 0 .. start + i (causal within the chunk); start + T <= S.
struct CachedAttentionArgs {
  const float *q = nullptr;
  const float *k = nullptr;
  const float *v = nullptr;
  float *out = nullptr;
  int64_t batch = 0, hq = 0, hkv = 0, t = 0, s = 0, d = 0;
  int64_t start = 0;
  float scale = 1.0f;
};

/// Computes all of out, split by (batch, query head) over `pool` when it is
/// non-null and the heads carry enough work, else on the calling thread.
void cachedAttention(const CachedAttentionArgs &args, ThreadPool *pool);

/// Heads bh in [begin, end) (bh = b * Hq + h) only, on the calling thread.
void cachedAttentionHeads(const CachedAttentionArgs &args, int64_t begin, int64_t end);

} // namespace opt
} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_OPT_OPTATTENTION_H
