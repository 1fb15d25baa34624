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

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime-stub/kernels/opt/OptAttention.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep
#include "hwy/highway.h"

#include "hwy/contrib/math/math-inl.h"

#include "runtime-stub/core/ThreadPool.h"

#include <algorithm>
#include <cmath>
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
constexpr int kMaxRows = 4; // query rows sharing each pass over the keys

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
template <int R, int U>
HWY_INLINE void accumulateColumns(const RowSet &set, float *const *p, const float *inv,
                                  const float *HWY_RESTRICT v, int64_t D, int64_t nmax,
                                  int64_t c0) {
  const hn::ScalableTag<float> d;
  using V = decltype(hn::Zero(d));
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  V acc[R][U];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < U; ++u)
      acc[r][u] = hn::Zero(d);
  for (int64_t j = 0; j < nmax; ++j) {
    const float *vr = v + j * D + c0;
    V vv[U];
    for (int u = 0; u < U; ++u)
      vv[u] = hn::LoadU(d, vr + u * N);
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

template <int R>
void attendRows(const RowSet &set, const float *HWY_RESTRICT kH, const float *HWY_RESTRICT vH,
                int64_t D, float scale, float *const *p) {
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
    const float *k0 = kH + j0 * D, *k1 = k0 + D, *k2 = k1 + D, *k3 = k2 + D;
    for (int r = 0; r < R; ++r) {
      const float *qr = set.q[r];
      V a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
      int64_t c = 0;
      for (; c + N <= D; c += N) {
        const V qv = hn::LoadU(d, qr + c);
        a0 = hn::MulAdd(qv, hn::LoadU(d, k0 + c), a0);
        a1 = hn::MulAdd(qv, hn::LoadU(d, k1 + c), a1);
        a2 = hn::MulAdd(qv, hn::LoadU(d, k2 + c), a2);
        a3 = hn::MulAdd(qv, hn::LoadU(d, k3 + c), a3);
      }
      float dots[4];
      sumOfLanes4(a0, a1, a2, a3, dots);
      for (; c < D; ++c) {
        dots[0] += qr[c] * k0[c];
        dots[1] += qr[c] * k1[c];
        dots[2] += qr[c] * k2[c];
        dots[3] += qr[c] * k3[c];
      }
      for (int k = 0; k < 4; ++k)
        p[r][j0 + k] = dots[k] * scale;
    }
  }
#endif
  for (int64_t j = j0; j < nmax; ++j) {
    const float *kr = kH + j * D;
    V acc[R];
    for (int r = 0; r < R; ++r)
      acc[r] = hn::Zero(d);
    int64_t c = 0;
    for (; c + N <= D; c += N) {
      const V kv = hn::LoadU(d, kr + c);
      for (int r = 0; r < R; ++r)
        acc[r] = hn::MulAdd(hn::LoadU(d, set.q[r] + c), kv, acc[r]);
    }
    for (int r = 0; r < R; ++r) {
      float dot = hn::GetLane(hn::SumOfLanes(d, acc[r]));
      for (int64_t x = c; x < D; ++x)
        dot += set.q[r][x] * kr[x];
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
    inv[r] = 1.0f / hn::GetLane(hn::SumOfLanes(d, vsum));
  }
  // (3) out_r = inv_r * sum_j p_r[j] v_j, kU vectors of columns at a time.
  int64_t c = 0;
  for (; c + kU * N <= D; c += kU * N)
    accumulateColumns<R, kU>(set, p, inv, vH, D, nmax, c);
  for (; c + N <= D; c += N)
    accumulateColumns<R, 1>(set, p, inv, vH, D, nmax, c);
  for (; c < D; ++c)
    for (int r = 0; r < R; ++r) {
      float acc = 0.0f;
      for (int64_t j = 0; j < nmax; ++j)
        acc += p[r][j] * vH[j * D + c];
      set.out[r][c] = acc * inv[r];
    }
}

void attendSet(int rows, const RowSet &set, const float *kH, const float *vH, int64_t D,
               float scale, float *const *p) {
  switch (rows) {
  case 1: attendRows<1>(set, kH, vH, D, scale, p); break;
  case 2: attendRows<2>(set, kH, vH, D, scale, p); break;
  case 3: attendRows<3>(set, kH, vH, D, scale, p); break;
  default: attendRows<4>(set, kH, vH, D, scale, p); break;
  }
}

void AttentionHeadsImpl(const CachedAttentionArgs &a, int64_t begin, int64_t end) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t D = a.d, group = a.hq / a.hkv;
  // Scores / weights of each row of a set, padded to whole vectors.
  const int64_t stride = a.s + N;
  std::vector<float> buf(static_cast<size_t>(kMaxRows * stride));
  float *p[kMaxRows];
  for (int r = 0; r < kMaxRows; ++r)
    p[r] = buf.data() + r * stride;
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
      attendSet(rows, set, a.k + kv * a.s * D, a.v + kv * a.s * D, D, a.scale, p);
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
      attendSet(rows, set, a.k + kv * a.s * D, a.v + kv * a.s * D, D, a.scale, p);
    }
  }
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

void cachedAttentionHeads(const CachedAttentionArgs &args, int64_t begin, int64_t end) {
  HWY_DYNAMIC_DISPATCH(AttentionHeadsImpl)(args, begin, end);
}

void cachedAttention(const CachedAttentionArgs &args, ThreadPool *pool) {
  const int64_t heads = args.batch * args.hq;
  if (heads <= 0 || args.t <= 0)
    return;
  // Work of one head in keys visited; a range should carry several
  // microseconds (kMinKeysPerTask keys, each a D-long dot product and a
  // D-long multiply-add, ~2-3 ns per key for D = 64 on AVX-512) to be worth a
  // hand-off: a decode step of 9 heads x 256 keys stays on one thread, a
  // prefill chunk is split.
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
