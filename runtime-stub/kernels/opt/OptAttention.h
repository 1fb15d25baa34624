// Optimized cached_attention (issue 6): grouped-query attention of T query rows
// over the valid prefix of f32 or f16 KV caches, read in place (query head h reads kv
// head h / (Hq / Hkv); no repeated heads are built). Per query row: SIMD dot
// products q . k_j over D, a SIMD softmax (Highway's Exp), SIMD accumulation of
// p_j * v_j. Prefill chunks are split by query heads over the thread pool like
// the portable kernel (Cache.cpp), which stays the reference
// (KernelCall::portableOnly); decode steps by key ranges (cachedAttention).
#ifndef KILN_RUNTIME_KERNELS_OPT_OPTATTENTION_H
#define KILN_RUNTIME_KERNELS_OPT_OPTATTENTION_H

#include <cstdint>

namespace kiln {
namespace rt {

class ThreadPool;

namespace opt {

/// q [B, Hq, T, D], caches [B, Hkv, S, D], out [B, Hq, T, D] (contiguous; q,
/// out f32, the caches f32 in k / v or f16 in kHalf / vHalf). Query row i sits
/// at position start + i and attends cache positions 0 .. start + i (causal
/// within the chunk); start + T <= S.
struct CachedAttentionArgs {
  const float *q = nullptr;
  const float *k = nullptr;
  const float *v = nullptr;
  /// f16 caches (IEEE half bits), used instead of k / v when set: rows are
  /// widened to f32 as they are loaded (half the bytes of a decode step's reads).
  const uint16_t *kHalf = nullptr;
  const uint16_t *vHalf = nullptr;
  float *out = nullptr;
  int64_t batch = 0, hq = 0, hkv = 0, t = 0, s = 0, d = 0;
  int64_t start = 0;
  float scale = 1.0f;
};

/// Computes all of out. Prefill chunks (T > 1) are split by (batch, query
/// head) over `pool` when the heads carry enough work. Decode steps (T = 1)
/// are split by key ranges of equal size over the query sets of all kv heads
/// (flash-decoding: partial max / sum of exp / weighted values per range,
/// merged afterwards in range order) into cachedAttentionDecodeChunks(args)
/// chunks, which the pool's threads share; the chunks depend on the data only,
/// so the result is bit-identical for every thread count (a single thread
/// computes the same chunks one after the other).
void cachedAttention(const CachedAttentionArgs &args, ThreadPool *pool);

/// Bytes of K and V cache a decode chunk should read at least (a hand-off
/// costs ~1-2 us; 32 KiB take ~3 us from L2, ~6 us from memory as in a real
/// decode step): MobileLLM-125M decode (3 kv heads,
/// D = 64) is split from position 42 on, tiny caches stay in one piece.
constexpr int64_t kDecodeBytesPerTask = 32 * 1024;

/// Most chunks of a decode step. Fixed, not the thread count: results must not
/// depend on --threads. 2: each of 2 threads streams one contiguous half; 4
/// smaller chunks claimed in turn measured slower in 125M decode (16-27 us per
/// call vs 14-22 us); more threads than chunks wait.
constexpr int64_t kDecodeMaxChunks = 2;

/// Chunks a decode step (T = 1) is split into: min(kDecodeMaxChunks, cache
/// bytes read / kDecodeBytesPerTask), at least 1; 1 for T > 1.
int64_t cachedAttentionDecodeChunks(const CachedAttentionArgs &args);

/// Threads a decode step runs on with `threads` threads: min(threads, chunks).
int64_t cachedAttentionDecodeTasks(const CachedAttentionArgs &args, int threads);

/// Heads bh in [begin, end) (bh = b * Hq + h) only, on the calling thread.
void cachedAttentionHeads(const CachedAttentionArgs &args, int64_t begin, int64_t end);

} // namespace opt
} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_OPT_OPTATTENTION_H
