// Highway implementation of OptAttention.h. Compiled once per SIMD target
// through hwy/foreach_target.h; the per-target code lives in
// kiln::rt::opt::HWY_NAMESPACE and the dispatcher at the bottom (HWY_ONCE).
//
// Query rows are taken in sets of up to 4 that read the same kv head (decode:
// the query heads of a group; prefill: 4 consecutive rows of a head, each
// attending its causal prefix). Per set: (1) scores s_j = (q . k_j) * scale,
// 4 keys at a time per row with one interleave-based reduction for the 4 dot
// products; (2) per row p_j = exp(s_j - max) over the scores buffer (padded
// with -inf to whole vectors; Exp(-inf) = 0) with their sum; (3) out =
// (sum_j p_j v_j) / sum for all rows of the set in one pass over the values,
// with up to 4 vectors of output columns per row held in registers. Leftover
// columns (D % lanes) and keys (% 4) run as scalar / one-key code.
#include "runtime-stub/kernels/opt/OptAttention.h"

// SVE/RVV are disabled like in OptLinear.cpp (sizeless vectors).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif

// The split of a decode step (T = 1) over the pool, shared by every target
// (defined once although foreach_target includes this file per target).
#ifndef KILN_OPT_ATTENTION_SPLIT_ONCE
#define KILN_OPT_ATTENTION_SPLIT_ONCE
#include <algorithm>
#include <cstdint>
namespace kiln {
namespace rt {
namespace opt {
namespace {

constexpr int kMaxRows = 4; // query rows sharing each pass over the keys

// The query sets of a decode step (up to kMaxRows query heads of one kv head
// of one batch row; set index = (b * Hkv + kv) * setsPerKv + sub) laid end to
// end: flat key index f = set * n + key. Chunk i of `chunks` is the flat
// range [begin(i), begin(i + 1)): equal bytes of cache per chunk whatever the
// number of kv heads. The threads claim chunks in turn (a late or slow thread
// takes fewer). A set inside one chunk is finished there; the pieces of a set
// cut by chunk boundaries leave partial states (unnormalized sums, max, sum of
// exp) in `partial`, merged by the caller afterwards in chunk order, so the
// result does not depend on which thread ran which chunk.
struct DecodeSplit {
  int64_t setsPerKv = 1; // ceil(group / kMaxRows)
  int64_t sets = 0;      // batch * Hkv * setsPerKv
  int64_t n = 0;         // keys per set: start + 1
  int64_t chunks = 1;
  // [chunks][2][kMaxRows][D + 2]: a chunk's first (0) and last (1) piece, per
  // row D unnormalized sums, then max and sum of exp.
  float *partial = nullptr;

  int64_t begin(int64_t chunk) const { return chunk * (sets * n) / chunks; }
  float *slot(int64_t chunk, int which, int r, int64_t d) const {
    return partial + ((chunk * 2 + which) * kMaxRows + r) * (d + 2);
  }
  // Set s: its kv cache (b * Hkv + kv), first query head bh = b * Hq + h, rows.
  void setOf(int64_t hq, int64_t hkv, int64_t s, int64_t *cache, int64_t *bh0, int *rows) const {
    const int64_t group = hq / hkv, sub = s % setsPerKv, bkv = s / setsPerKv;
    *cache = bkv;
    *bh0 = (bkv / hkv) * hq + (bkv % hkv) * group + sub * kMaxRows;
    *rows = static_cast<int>(std::min<int64_t>(kMaxRows, group - sub * kMaxRows));
  }
};

} // namespace
} // namespace opt
} // namespace rt
} // namespace kiln
#endif // KILN_OPT_ATTENTION_SPLIT_ONCE

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime-stub/kernels/opt/OptAttention.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep
#include "hwy/highway.h"

#include "hwy/contrib/math/math-inl.h"

#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace kiln {
namespace rt {
namespace opt {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Columns per register block of the p . v accumulation: R rows x kU vectors of
// accumulators must fit the register file (32 on AVX-512, 16 below).
#if HWY_TARGET <= HWY_AVX3
constexpr int kU = 4;
#else
constexpr int kU = 2;
#endif
// Cache rows as f32 vectors / scalars: T = float (read as is) or
// hwy::float16_t (f16 caches, widened on load; the math stays f32).
template <class D> HWY_INLINE hn::Vec<D> LoadCache(D d, const float *HWY_RESTRICT p) {
  return hn::LoadU(d, p);
}
template <class D>
HWY_INLINE hn::Vec<D> LoadCache(D d, const hwy::float16_t *HWY_RESTRICT p) {
  const hn::Rebind<hwy::float16_t, D> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, p));
}
// (Scalar tails use std::fma explicitly: whether the compiler contracts a * b
// + c must not differ between the f32 and f16 instantiations.)
HWY_INLINE float CacheAt(const float *p, int64_t i) { return p[i]; }
HWY_INLINE float CacheAt(const hwy::float16_t *p, int64_t i) {
  uint16_t bits;
  std::memcpy(&bits, p + i, sizeof(bits));
  return halfToFloat(bits);
}

// Up to kMaxRows query rows that read the same kv head: row r attends keys
// [0, n[r]). Sharing the pass over the keys reads each k/v row once per set
// instead of once per query row (prefill: 4 consecutive rows of a head;
// decode: the query heads of a group).
struct RowSet {
  const float *q[kMaxRows];
  float *out[kMaxRows];
  int64_t n[kMaxRows];
};

// o_r[c0, c0 + U * N) = inv_r * sum_j p_r[j] * v[j][c] for keys j < nmax.
template <int R, int U, typename T>
HWY_INLINE void accumulateColumns(const RowSet &set, float *const *p, const float *inv,
                                  const T *HWY_RESTRICT v, int64_t D, int64_t nmax,
                                  int64_t c0) {
  const hn::ScalableTag<float> d;
  using V = decltype(hn::Zero(d));
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  V acc[R][U];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < U; ++u)
      acc[r][u] = hn::Zero(d);
  for (int64_t j = 0; j < nmax; ++j) {
    const T *vr = v + j * D + c0;
    V vv[U];
    for (int u = 0; u < U; ++u)
      vv[u] = LoadCache(d, vr + u * N);
    for (int r = 0; r < R; ++r) {
      const V pj = hn::Set(d, p[r][j]);
      for (int u = 0; u < U; ++u)
        acc[r][u] = hn::MulAdd(pj, vv[u], acc[r][u]);
    }
  }
  for (int r = 0; r < R; ++r) {
    const V vinv = hn::Set(d, inv[r]);
    for (int u = 0; u < U; ++u)
      hn::StoreU(hn::Mul(acc[r][u], vinv), d, set.out[r] + c0 + u * N);
  }
}

#if HWY_TARGET != HWY_SCALAR
// out4[k] = sum of the lanes of a_k, k = 0..3: pairwise interleaves leave the
// four sums of each 128-bit block side by side, then the blocks are added.
template <class V> HWY_INLINE void sumOfLanes4(V a0, V a1, V a2, V a3, float *out4) {
  const hn::ScalableTag<float> d;
  const hn::Repartition<double, decltype(d)> dd;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const V t0 = hn::Add(hn::InterleaveLower(d, a0, a1), hn::InterleaveUpper(d, a0, a1));
  const V t1 = hn::Add(hn::InterleaveLower(d, a2, a3), hn::InterleaveUpper(d, a2, a3));
  const auto b0 = hn::BitCast(dd, t0), b1 = hn::BitCast(dd, t1);
  const V u = hn::Add(hn::BitCast(d, hn::InterleaveLower(dd, b0, b1)),
                      hn::BitCast(d, hn::InterleaveUpper(dd, b0, b1)));
  HWY_ALIGN float tmp[HWY_MAX_BYTES / sizeof(float)];
  hn::Store(u, d, tmp);
  const hn::Full128<float> d4;
  auto s = hn::Load(d4, tmp);
  for (int64_t b = 4; b < N; b += 4)
    s = hn::Add(s, hn::Load(d4, tmp + b));
  hn::StoreU(s, d4, out4);
}
#endif

// Attends the rows of `set` to keys [0, n[r]) of kH / vH (already offset to
// the first key of the range). stat null: out_r = softmax-weighted sum of the
// values. stat non-null (a split decode range): out_r = the unnormalized sum
// sum_j exp(s_j - m_r) v_j, stat[r][0] = m_r = max_j s_j, stat[r][1] = sum_j
// exp(s_j - m_r) -- the partial state the ranges of a head are merged from.
template <int R, typename T>
void attendRows(const RowSet &set, const T *HWY_RESTRICT kH, const T *HWY_RESTRICT vH,
                int64_t D, float scale, float *const *p, float *const *stat) {
  const hn::ScalableTag<float> d;
  using V = decltype(hn::Zero(d));
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  int64_t nmax = 0;
  for (int r = 0; r < R; ++r)
    nmax = std::max(nmax, set.n[r]);
  // (1) Scores q_r . k_j * scale for j < nmax: 4 keys at a time per row (their
  // k rows stay in L1 across the rows of the set; one reduction for 4 dot
  // products), then the leftover keys one at a time, each k row loaded once.
  int64_t j0 = 0;
#if HWY_TARGET != HWY_SCALAR
  for (; j0 + 4 <= nmax; j0 += 4) {
    const T *k0 = kH + j0 * D, *k1 = k0 + D, *k2 = k1 + D, *k3 = k2 + D;
    for (int r = 0; r < R; ++r) {
      const float *qr = set.q[r];
      V a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      int64_t c = 0;
      for (; c + N <= D; c += N) {
        const V qv = hn::LoadU(d, qr + c);
        a0 = hn::MulAdd(qv, LoadCache(d, k0 + c), a0);
        a1 = hn::MulAdd(qv, LoadCache(d, k1 + c), a1);
        a2 = hn::MulAdd(qv, LoadCache(d, k2 + c), a2);
        a3 = hn::MulAdd(qv, LoadCache(d, k3 + c), a3);
      }
      float dots[4];
      sumOfLanes4(a0, a1, a2, a3, dots);
      for (; c < D; ++c) {
        dots[0] = std::fma(qr[c], CacheAt(k0, c), dots[0]);
        dots[1] = std::fma(qr[c], CacheAt(k1, c), dots[1]);
        dots[2] = std::fma(qr[c], CacheAt(k2, c), dots[2]);
        dots[3] = std::fma(qr[c], CacheAt(k3, c), dots[3]);
      }
      for (int k = 0; k < 4; ++k)
        p[r][j0 + k] = dots[k] * scale;
    }
  }
#endif
  for (int64_t j = j0; j < nmax; ++j) {
    const T *kr = kH + j * D;
    V acc[R];
    for (int r = 0; r < R; ++r)
      acc[r] = hn::Zero(d);
    int64_t c = 0;
    for (; c + N <= D; c += N) {
      const V kv = LoadCache(d, kr + c);
      for (int r = 0; r < R; ++r)
        acc[r] = hn::MulAdd(hn::LoadU(d, set.q[r] + c), kv, acc[r]);
    }
    for (int r = 0; r < R; ++r) {
      float dot = hn::GetLane(hn::SumOfLanes(d, acc[r]));
      for (int64_t x = c; x < D; ++x)
        dot = std::fma(set.q[r][x], CacheAt(kr, x), dot);
      p[r][j] = dot * scale;
    }
  }
  // (2) p_r[j] = exp(s_j - max) for j < n_r, 0 after (-inf padding to whole
  // vectors: Exp(-inf) = 0); the sums.
  const int64_t padded = (nmax + N - 1) / N * N;
  float inv[R];
  for (int r = 0; r < R; ++r) {
    float *pr = p[r];
    for (int64_t j = set.n[r]; j < padded; ++j)
      pr[j] = -INFINITY;
    V vmax = hn::Set(d, -INFINITY);
    for (int64_t j = 0; j < padded; j += N)
      vmax = hn::Max(vmax, hn::LoadU(d, pr + j));
    vmax = hn::MaxOfLanes(d, vmax);
    V vsum = hn::Zero(d);
    for (int64_t j = 0; j < padded; j += N) {
      const V e = hn::Exp(d, hn::Sub(hn::LoadU(d, pr + j), vmax));
      hn::StoreU(e, d, pr + j);
      vsum = hn::Add(vsum, e);
    }
    const float sum = hn::GetLane(hn::SumOfLanes(d, vsum));
    if (stat) {
      stat[r][0] = hn::GetLane(vmax);
      stat[r][1] = sum;
      inv[r] = 1.0f;
    } else {
      inv[r] = 1.0f / sum;
    }
  }
  // (3) out_r = inv_r * sum_j p_r[j] v_j, kU vectors of columns at a time.
  int64_t c = 0;
  for (; c + kU * N <= D; c += kU * N)
    accumulateColumns<R, kU, T>(set, p, inv, vH, D, nmax, c);
  for (; c + N <= D; c += N)
    accumulateColumns<R, 1, T>(set, p, inv, vH, D, nmax, c);
  for (; c < D; ++c)
    for (int r = 0; r < R; ++r) {
      float acc = 0.0f;
      for (int64_t j = 0; j < nmax; ++j)
        acc = std::fma(p[r][j], CacheAt(vH, j * D + c), acc);
      set.out[r][c] = acc * inv[r];
    }
}

template <typename T>
void attendSet(int rows, const RowSet &set, const T *kH, const T *vH, int64_t D,
               float scale, float *const *p, float *const *stat = nullptr) {
  switch (rows) {
  case 1: attendRows<1, T>(set, kH, vH, D, scale, p, stat); break;
  case 2: attendRows<2, T>(set, kH, vH, D, scale, p, stat); break;
  case 3: attendRows<3, T>(set, kH, vH, D, scale, p, stat); break;
  default: attendRows<4, T>(set, kH, vH, D, scale, p, stat); break;
  }
}

// The caches of `a` as T (f32 or f16, CachedAttentionArgs::kHalf).
template <typename T> const T *cacheK(const CachedAttentionArgs &a);
template <> const float *cacheK<float>(const CachedAttentionArgs &a) { return a.k; }
template <> const hwy::float16_t *cacheK<hwy::float16_t>(const CachedAttentionArgs &a) {
  return reinterpret_cast<const hwy::float16_t *>(a.kHalf);
}
template <typename T> const T *cacheV(const CachedAttentionArgs &a);
template <> const float *cacheV<float>(const CachedAttentionArgs &a) { return a.v; }
template <> const hwy::float16_t *cacheV<hwy::float16_t>(const CachedAttentionArgs &a) {
  return reinterpret_cast<const hwy::float16_t *>(a.vHalf);
}

// Score / weight buffers of the rows of a set (kMaxRows rows of S + N floats,
// padded to whole vectors), kept per thread: no allocation per call once a
// thread has seen the largest cache.
void scoreRows(int64_t s, float **p) {
  const hn::ScalableTag<float> d;
  const int64_t stride = s + static_cast<int64_t>(hn::Lanes(d));
  thread_local std::vector<float> buf;
  if (buf.size() < static_cast<size_t>(kMaxRows * stride))
    buf.resize(static_cast<size_t>(kMaxRows * stride));
  for (int r = 0; r < kMaxRows; ++r)
    p[r] = buf.data() + r * stride;
}

template <typename T>
void attentionHeads(const CachedAttentionArgs &a, int64_t begin, int64_t end) {
  const T *K = cacheK<T>(a), *Vc = cacheV<T>(a);
  const int64_t D = a.d, group = a.hq / a.hkv;
  float *p[kMaxRows];
  scoreRows(a.s, p);
  auto qRow = [&](int64_t bh, int64_t i) { return a.q + (bh * a.t + i) * D; };
  auto oRow = [&](int64_t bh, int64_t i) { return a.out + (bh * a.t + i) * D; };
  auto kvHead = [&](int64_t bh) { return (bh / a.hq) * a.hkv + (bh % a.hq) / group; };
  RowSet set;
  if (a.t == 1) {
    // Decode: consecutive query heads of the same kv head form a set.
    for (int64_t bh = begin; bh < end;) {
      const int64_t kv = kvHead(bh);
      int rows = 0;
      for (; rows < kMaxRows && bh < end && kvHead(bh) == kv; ++rows, ++bh) {
        set.q[rows] = qRow(bh, 0);
        set.out[rows] = oRow(bh, 0);
        set.n[rows] = a.start + 1;
      }
      attendSet<T>(rows, set, K + kv * a.s * D, Vc + kv * a.s * D, D, a.scale, p);
    }
    return;
  }
  // Prefill: up to kMaxRows consecutive rows of one head form a set.
  for (int64_t bh = begin; bh < end; ++bh) {
    const int64_t kv = kvHead(bh);
    for (int64_t i0 = 0; i0 < a.t; i0 += kMaxRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kMaxRows, a.t - i0));
      for (int r = 0; r < rows; ++r) {
        set.q[r] = qRow(bh, i0 + r);
        set.out[r] = oRow(bh, i0 + r);
        set.n[r] = a.start + i0 + r + 1; // keys 0 .. start + i
      }
      attendSet<T>(rows, set, K + kv * a.s * D, Vc + kv * a.s * D, D, a.scale, p);
    }
  }
}

void AttentionHeadsImpl(const CachedAttentionArgs &a, int64_t begin, int64_t end) {
  a.kHalf ? attentionHeads<hwy::float16_t>(a, begin, end) : attentionHeads<float>(a, begin, end);
}

// Chunk `chunk` of a split decode step (see DecodeSplit).
template <typename T>
void attentionDecodeChunk(const CachedAttentionArgs &a, const DecodeSplit &sp, int64_t chunk) {
  const T *K = cacheK<T>(a), *Vc = cacheV<T>(a);
  const int64_t D = a.d;
  float *p[kMaxRows];
  scoreRows(a.s, p);
  const int64_t begin = sp.begin(chunk), end = sp.begin(chunk + 1);
  for (int64_t f = begin; f < end;) {
    const int64_t s = f / sp.n, j0 = f % sp.n, j1 = std::min(sp.n, j0 + (end - f));
    int64_t cache, bh0;
    int rows;
    sp.setOf(a.hq, a.hkv, s, &cache, &bh0, &rows);
    RowSet set;
    for (int r = 0; r < rows; ++r) {
      set.q[r] = a.q + (bh0 + r) * D;
      set.n[r] = j1 - j0;
    }
    const T *kH = K + (cache * a.s + j0) * D, *vH = Vc + (cache * a.s + j0) * D;
    if (j0 == 0 && j1 == sp.n) { // the whole set: finished here
      for (int r = 0; r < rows; ++r)
        set.out[r] = a.out + (bh0 + r) * D;
      attendSet<T>(rows, set, kH, vH, D, a.scale, p);
    } else { // a piece: partial state
      float *stat[kMaxRows];
      for (int r = 0; r < rows; ++r) {
        set.out[r] = sp.slot(chunk, f == begin ? 0 : 1, r, D);
        stat[r] = set.out[r] + D;
      }
      attendSet<T>(rows, set, kH, vH, D, a.scale, p, stat);
    }
    f += j1 - j0;
  }
}

void AttentionDecodeChunkImpl(const CachedAttentionArgs &a, const DecodeSplit &sp, int64_t chunk) {
  a.kHalf ? attentionDecodeChunk<hwy::float16_t>(a, sp, chunk)
          : attentionDecodeChunk<float>(a, sp, chunk);
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
} // namespace HWY_NAMESPACE
} // namespace opt
} // namespace rt
} // namespace kiln
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kiln {
namespace rt {
namespace opt {

HWY_EXPORT(AttentionHeadsImpl);
HWY_EXPORT(AttentionDecodeChunkImpl);

void cachedAttentionHeads(const CachedAttentionArgs &args, int64_t begin, int64_t end) {
  HWY_DYNAMIC_DISPATCH(AttentionHeadsImpl)(args, begin, end);
}

int64_t cachedAttentionDecodeChunks(const CachedAttentionArgs &args) {
  if (args.t != 1 || args.batch <= 0 || args.hkv <= 0 || args.d <= 0)
    return 1;
  const int64_t group = args.hq / args.hkv;
  const int64_t keys = args.batch * args.hkv * ((group + kMaxRows - 1) / kMaxRows) * (args.start + 1);
  // (Counted as f32 for f16 caches too: the chunks, and so the order of the
  // sums, stay those of the same values in an f32 cache.)
  const int64_t bytes = keys * args.d * 2 * static_cast<int64_t>(sizeof(float));
  return std::max<int64_t>(1, std::min<int64_t>({kDecodeMaxChunks, bytes / kDecodeBytesPerTask, keys}));
}

int64_t cachedAttentionDecodeTasks(const CachedAttentionArgs &args, int threads) {
  return std::max<int64_t>(1, std::min<int64_t>(threads, cachedAttentionDecodeChunks(args)));
}

namespace {

// Merges the pieces of the sets that chunk boundaries cut (DecodeSplit): per
// query row, with m_i, l_i, o_i the max, sum of exp and unnormalized sum of
// piece i and M = max_i m_i: out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) l_i.
void mergeDecodePieces(const CachedAttentionArgs &a, const DecodeSplit &sp) {
  const int64_t D = a.d;
  for (int64_t s = 0; s < sp.sets; ++s) {
    const int64_t lo = s * sp.n, hi = lo + sp.n;
    int64_t first = -1, last = -1;
    for (int64_t i = 0; i < sp.chunks; ++i) {
      const int64_t b = sp.begin(i), e = sp.begin(i + 1);
      if (b < e && b < hi && e > lo) {
        if (first < 0)
          first = i;
        last = i;
      }
    }
    if (first == last) // one chunk held the whole set
      continue;
    int64_t cache, bh0;
    int rows;
    sp.setOf(a.hq, a.hkv, s, &cache, &bh0, &rows);
    // Piece of chunk i: its first piece (0) when the set is where its range starts.
    auto piece = [&](int64_t i, int r) {
      return sp.slot(i, sp.begin(i) / sp.n == s ? 0 : 1, r, D);
    };
    for (int r = 0; r < rows; ++r) {
      float m = -INFINITY;
      for (int64_t i = first; i <= last; ++i)
        m = std::max(m, piece(i, r)[D]);
      float *out = a.out + (bh0 + r) * D;
      float l = 0.0f;
      for (int64_t i = first; i <= last; ++i) {
        const float *pc = piece(i, r);
        const float w = std::exp(pc[D] - m);
        l += w * pc[D + 1];
        if (i == first)
          for (int64_t c = 0; c < D; ++c)
            out[c] = w * pc[c];
        else
          for (int64_t c = 0; c < D; ++c)
            out[c] += w * pc[c];
      }
      const float inv = 1.0f / l;
      for (int64_t c = 0; c < D; ++c)
        out[c] *= inv;
    }
  }
}

} // namespace

void cachedAttention(const CachedAttentionArgs &args, ThreadPool *pool) {
  const int64_t heads = args.batch * args.hq;
  if (heads <= 0 || args.t <= 0)
    return;
  if (args.t == 1) {
    // Decode: split the keys of all query sets into equal chunks (see
    // DecodeSplit) once each chunk gets kDecodeBytesPerTask of cache; the
    // chunks do not depend on the thread count (bit-identical results).
    const int64_t chunks = cachedAttentionDecodeChunks(args);
    if (chunks <= 1) {
      cachedAttentionHeads(args, 0, heads);
      return;
    }
    DecodeSplit sp;
    sp.setsPerKv = (args.hq / args.hkv + kMaxRows - 1) / kMaxRows;
    sp.sets = args.batch * args.hkv * sp.setsPerKv;
    sp.n = args.start + 1;
    sp.chunks = std::min(chunks, sp.sets * sp.n);
    // Partial states live in the caller's scratch (read back here after the
    // workers are done); it only grows, so steady decoding allocates nothing.
    thread_local std::vector<float> scratch;
    const size_t need = static_cast<size_t>(sp.chunks * 2 * kMaxRows * (args.d + 2));
    if (scratch.size() < need)
      scratch.resize(need);
    sp.partial = scratch.data();
    const int64_t tasks = pool ? std::min<int64_t>(pool->numThreads(), sp.chunks) : 1;
    if (tasks <= 1) {
      for (int64_t i = 0; i < sp.chunks; ++i)
        HWY_DYNAMIC_DISPATCH(AttentionDecodeChunkImpl)(args, sp, i);
    } else {
      std::atomic<int64_t> next{0};
      pool->parallelFor(tasks, 1, [&](int64_t, int64_t) {
        for (int64_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < sp.chunks;)
          HWY_DYNAMIC_DISPATCH(AttentionDecodeChunkImpl)(args, sp, i);
      });
    }
    mergeDecodePieces(args, sp);
    return;
  }
  // Prefill chunk: work of one head in keys visited; a range should carry several
  // microseconds (kMinKeysPerTask keys, each a D-long dot product and a
  // D-long multiply-add, ~2-3 ns per key for D = 64 on AVX-512) to be worth a
  // hand-off.
  constexpr int64_t kMinKeysPerTask = 2048;
  const int64_t keysPerHead = args.t * (args.start + (args.t + 1) / 2) * std::max<int64_t>(1, args.d / 64);
  const int64_t grain = std::max<int64_t>(1, kMinKeysPerTask / std::max<int64_t>(1, keysPerHead));
  if (!pool || pool->numThreads() <= 1 || heads < 2 * grain) {
    cachedAttentionHeads(args, 0, heads);
    return;
  }
  pool->parallelFor(heads, grain, [&](int64_t b, int64_t e) { cachedAttentionHeads(args, b, e); });
}

} // namespace opt
} // namespace rt
} // namespace kiln
#endif // HWY_ONCE
