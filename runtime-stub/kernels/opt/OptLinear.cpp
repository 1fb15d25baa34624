// Highway implementation of OptLinear.h. This file is compiled once per SIMD
// target through hwy/foreach_target.h; the per-target code lives in
// kiln::rt::opt::HWY_NAMESPACE and the dispatcher at the bottom (HWY_ONCE).
//
// Layout of the work: output channels [o0, o1) are the parallel dimension. x rows
// are taken in blocks of kRowBlock; inside a block every weight row is read once
// and multiplied with register tiles of up to 4 x rows (GEMM: prefill), while a
// single x row (GEMV: decode) uses 4 independent accumulators to hide the FMA
// latency. Quantized weights are widened lane by lane (int8 -> i32 -> f32, int4
// nibbles -> i32 -> f32) and multiplied straight away; a group's partial sum is
// scaled once per group. Leftover columns (in % lanes) run as scalar code.
#include "runtime-stub/kernels/opt/OptLinear.h"
#include "runtime-stub/kernels/opt/OptGemm.h"
#include "runtime-stub/kernels/opt/OptQuant.h"

// SVE/RVV vectors are sizeless and cannot live in the accumulator arrays below;
// on those machines NEON (or the baseline) is used.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif
// Same target list as OptQuant.cpp (AVX3_DL included), so that forcing one
// target in tests forces it for both files.
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime-stub/kernels/opt/OptLinear.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep
#include "hwy/highway.h"

#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/QuantLayout.h"
#include "runtime-stub/core/ThreadPool.h"

#include <algorithm>
#include <cstring>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace kiln {
namespace rt {
namespace opt {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kRowBlock = 32; // x rows sharing each pass over the weights

// out[r] = dot(x + r * ldx, w) for R rows of x, f32 weight row w[0, n).
template <int R>
HWY_INLINE void tileF32(const float *HWY_RESTRICT x, int64_t ldx, const float *HWY_RESTRICT w,
                        int64_t n, float *out) {
  const hn::ScalableTag<float> d;
  using V = decltype(hn::Zero(d));
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  constexpr int U = R == 1 ? 4 : 2; // accumulators per row
  V acc[R][U];
  for (int r = 0; r < R; ++r)
    for (int u = 0; u < U; ++u)
      acc[r][u] = hn::Zero(d);
  int64_t i = 0;
  for (; i + U * N <= n; i += U * N) {
    for (int u = 0; u < U; ++u) {
      const V wv = hn::LoadU(d, w + i + u * N);
      for (int r = 0; r < R; ++r)
        acc[r][u] = hn::MulAdd(hn::LoadU(d, x + r * ldx + i + u * N), wv, acc[r][u]);
    }
  }
  for (; i + N <= n; i += N) {
    const V wv = hn::LoadU(d, w + i);
    for (int r = 0; r < R; ++r)
      acc[r][0] = hn::MulAdd(hn::LoadU(d, x + r * ldx + i), wv, acc[r][0]);
  }
  for (int r = 0; r < R; ++r) {
    V s = acc[r][0];
    for (int u = 1; u < U; ++u)
      s = hn::Add(s, acc[r][u]);
    float sum = hn::GetLane(hn::SumOfLanes(d, s));
    for (int64_t k = i; k < n; ++k)
      sum += x[r * ldx + k] * w[k];
    out[r] = sum;
  }
}

// Int8 weight row q[0, n) with one scale per `group` columns (index scale0 + g).
template <int R>
HWY_INLINE void tileInt8(const float *HWY_RESTRICT x, int64_t ldx, const int8_t *HWY_RESTRICT q,
                         int64_t n, int64_t group, const LinearArgs &a, int64_t scale0,
                         float *out) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<int8_t, decltype(d)> d8;
  using V = decltype(hn::Zero(d));
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  V total[R];
  float tail[R];
  for (int r = 0; r < R; ++r) {
    total[r] = hn::Zero(d);
    tail[r] = 0.0f;
  }
  for (int64_t c0 = 0, g = 0; c0 < n; c0 += group, ++g) {
    const int64_t c1 = c0 + group;
    V acc[R][2];
    for (int r = 0; r < R; ++r)
      acc[r][0] = acc[r][1] = hn::Zero(d);
    int64_t c = c0;
    for (; c + 2 * N <= c1; c += 2 * N) {
      const V w0 = hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q + c)));
      const V w1 = hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q + c + N)));
      for (int r = 0; r < R; ++r) {
        acc[r][0] = hn::MulAdd(hn::LoadU(d, x + r * ldx + c), w0, acc[r][0]);
        acc[r][1] = hn::MulAdd(hn::LoadU(d, x + r * ldx + c + N), w1, acc[r][1]);
      }
    }
    for (; c + N <= c1; c += N) {
      const V w0 = hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q + c)));
      for (int r = 0; r < R; ++r)
        acc[r][0] = hn::MulAdd(hn::LoadU(d, x + r * ldx + c), w0, acc[r][0]);
    }
    const float s = scaleAt(a, scale0 + g);
    const V vs = hn::Set(d, s);
    for (int r = 0; r < R; ++r) {
      total[r] = hn::MulAdd(hn::Add(acc[r][0], acc[r][1]), vs, total[r]);
      float t = 0.0f;
      for (int64_t k = c; k < c1; ++k)
        t += x[r * ldx + k] * static_cast<float>(q[k]);
      tail[r] += t * s;
    }
  }
  for (int r = 0; r < R; ++r)
    out[r] = hn::GetLane(hn::SumOfLanes(d, total[r])) + tail[r];
}

// Int4 weight row: bytes q[0, n/2), element 2k in the low nibble of byte k. xs
// rows are [even columns | odd columns] (n/2 each), so the low nibbles of a
// byte vector meet the even half and the high nibbles the odd half.
template <int R>
HWY_INLINE void tileInt4(const float *HWY_RESTRICT xs, int64_t ldx, const uint8_t *HWY_RESTRICT q,
                         int64_t n, int64_t group, const LinearArgs &a, int64_t scale0,
                         float *out) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> d8;
  using V = decltype(hn::Zero(d));
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t half = n / 2, groupBytes = group / 2;
  const auto mask = hn::Set(di, 0x0F);
  const auto eight = hn::Set(di, 8);
  if (groupBytes % N == 0) {
    // Whole vectors per group: scale the widened weights on the fly, with
    // nibble n -> u = n ^ 8 in [0, 15] and w = (u - 8) * s = u * s + (-8 s), so
    // accumulators live across groups (no per-group reduction).
    const auto flip = hn::Set(d8, static_cast<uint8_t>(0x88));
    V acc[R][2];
    for (int r = 0; r < R; ++r)
      acc[r][0] = acc[r][1] = hn::Zero(d);
    for (int64_t b0 = 0, g = 0; b0 < half; b0 += groupBytes, ++g) {
      const float s = scaleAt(a, scale0 + g);
      const V vs = hn::Set(d, s), off = hn::Set(d, -8.0f * s);
      for (int64_t b = b0; b < b0 + groupBytes; b += N) {
        const auto u = hn::PromoteTo(di, hn::Xor(hn::LoadU(d8, q + b), flip));
        const V wl = hn::MulAdd(hn::ConvertTo(d, hn::And(u, mask)), vs, off);
        const V wh = hn::MulAdd(hn::ConvertTo(d, hn::ShiftRight<4>(u)), vs, off);
        for (int r = 0; r < R; ++r) {
          acc[r][0] = hn::MulAdd(hn::LoadU(d, xs + r * ldx + b), wl, acc[r][0]);
          acc[r][1] = hn::MulAdd(hn::LoadU(d, xs + r * ldx + half + b), wh, acc[r][1]);
        }
      }
    }
    for (int r = 0; r < R; ++r)
      out[r] = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc[r][0], acc[r][1])));
    return;
  }
  V total[R];
  float tail[R];
  for (int r = 0; r < R; ++r) {
    total[r] = hn::Zero(d);
    tail[r] = 0.0f;
  }
  for (int64_t b0 = 0, g = 0; b0 < half; b0 += groupBytes, ++g) {
    const int64_t b1 = b0 + groupBytes;
    V acc[R][2];
    for (int r = 0; r < R; ++r)
      acc[r][0] = acc[r][1] = hn::Zero(d);
    int64_t b = b0;
    for (; b + N <= b1; b += N) {
      const auto bytes = hn::PromoteTo(di, hn::LoadU(d8, q + b));
      // (v ^ 8) - 8 sign-extends a 4-bit value held in the low bits.
      const auto lo = hn::Sub(hn::Xor(hn::And(bytes, mask), eight), eight);
      const auto hi = hn::Sub(hn::Xor(hn::ShiftRight<4>(bytes), eight), eight);
      const V wl = hn::ConvertTo(d, lo), wh = hn::ConvertTo(d, hi);
      for (int r = 0; r < R; ++r) {
        acc[r][0] = hn::MulAdd(hn::LoadU(d, xs + r * ldx + b), wl, acc[r][0]);
        acc[r][1] = hn::MulAdd(hn::LoadU(d, xs + r * ldx + half + b), wh, acc[r][1]);
      }
    }
    const float s = scaleAt(a, scale0 + g);
    const V vs = hn::Set(d, s);
    for (int r = 0; r < R; ++r) {
      total[r] = hn::MulAdd(hn::Add(acc[r][0], acc[r][1]), vs, total[r]);
      float t = 0.0f;
      for (int64_t k = b; k < b1; ++k) {
        const int lo = ((q[k] & 0x0F) ^ 8) - 8, hi = ((q[k] >> 4) ^ 8) - 8;
        t += xs[r * ldx + k] * static_cast<float>(lo) +
             xs[r * ldx + half + k] * static_cast<float>(hi);
      }
      tail[r] += t * s;
    }
  }
  for (int r = 0; r < R; ++r)
    out[r] = hn::GetLane(hn::SumOfLanes(d, total[r])) + tail[r];
}

template <int R>
HWY_INLINE void tile(const LinearArgs &a, const float *xs, int64_t r, int64_t o, float *v) {
  const int64_t in = a.in;
  switch (a.kind) {
  case WeightKind::F32:
    tileF32<R>(a.x + r * in, in, static_cast<const float *>(a.w) + o * in, in, v);
    break;
  case WeightKind::Int8:
    tileInt8<R>(a.x + r * in, in, static_cast<const int8_t *>(a.w) + o * in, in, a.group, a,
                o * (in / a.group), v);
    break;
  case WeightKind::Int4:
    tileInt4<R>(xs + r * in, in, static_cast<const uint8_t *>(a.w) + o * (in / 2), in, a.group,
                a, o * (in / a.group), v);
    break;
  }
}

void LinearRange(const LinearArgs &a, const float *xs, int64_t o0, int64_t o1) {
  for (int64_t r0 = 0; r0 < a.rows; r0 += kRowBlock) {
    const int64_t r1 = std::min(a.rows, r0 + kRowBlock);
    for (int64_t o = o0; o < o1; ++o) {
      const float bias = a.bias ? a.bias[o] : 0.0f;
      float v[4];
      int64_t r = r0;
      for (; r + 4 <= r1; r += 4) {
        tile<4>(a, xs, r, o, v);
        for (int k = 0; k < 4; ++k)
          a.y[(r + k) * a.ldy + o] = v[k] + bias;
      }
      const int64_t left = r1 - r;
      if (left == 3)
        tile<3>(a, xs, r, o, v);
      else if (left == 2)
        tile<2>(a, xs, r, o, v);
      else if (left == 1)
        tile<1>(a, xs, r, o, v);
      for (int64_t k = 0; k < left; ++k)
        a.y[(r + k) * a.ldy + o] = v[k] + bias;
    }
  }
}

const char *TargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

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

HWY_EXPORT(LinearRange);
HWY_EXPORT(TargetNameImpl);

void linearRange(const LinearArgs &args, const float *xSplit, int64_t o0, int64_t o1) {
  HWY_DYNAMIC_DISPATCH(LinearRange)(args, xSplit, o0, o1);
}

void splitInt4X(const float *x, int64_t rows, int64_t in, float *dst) {
  const int64_t half = in / 2;
  for (int64_t r = 0; r < rows; ++r) {
    const float *src = x + r * in;
    float *even = dst + r * in, *odd = even + half;
    for (int64_t k = 0; k < half; ++k) {
      even[k] = src[2 * k];
      odd[k] = src[2 * k + 1];
    }
  }
}

namespace {

// Int4Strip16 / Int8Strip16 weight as f32, one row at a time (only when x is not finite,
// which the integer kernel cannot represent).
void strip16Reference(const LinearArgs &a, int64_t o0, int64_t o1) {
  std::vector<float> row(static_cast<size_t>(a.in));
  const uint8_t *data = static_cast<const uint8_t *>(a.w);
  for (int64_t o = o0; o < o1; ++o) {
    strip16::dequantize(a.kind == WeightKind::Int8 ? 8 : 4, data, a.in, a.group, o, 0, a.in, [&](int64_t i) { return scaleAt(a, i); },
                        row.data());
    for (int64_t r = 0; r < a.rows; ++r) {
      const float *x = a.x + r * a.in;
      float s = 0.0f;
      for (int64_t c = 0; c < a.in; ++c)
        s += x[c] * row[c];
      a.y[r * a.ldy + o] = s + (a.bias ? a.bias[o] : 0.0f);
    }
  }
}

} // namespace

void linear(const LinearArgs &args, ThreadPool *pool) {
  if (args.rows <= 0 || args.out <= 0)
    return;
  // Many rows (prefill): register-blocked GEMM for every weight kind (OptGemm.h).
  if (gemmPreferred(args)) {
    gemm(args, pool);
    return;
  }
  // Quantized weights, few rows (decode): integer dot products (OptQuant.h).
  if (quantGemvApplies(args) && quantLinear(args, pool))
    return;
  if (args.strip16) { // x holds inf / nan: f32 products keep their semantics
    strip16Reference(args, 0, args.out);
    return;
  }
  std::vector<float> split;
  const float *xs = nullptr;
  if (args.kind == WeightKind::Int4) {
    split.resize(static_cast<size_t>(args.rows * args.in));
    splitInt4X(args.x, args.rows, args.in, split.data());
    xs = split.data();
  }
  if (!pool || pool->numThreads() <= 1) {
    linearRange(args, xs, 0, args.out);
    return;
  }
  // Each task should carry >= ~32K multiply-adds to pay for the hand-off.
  const int64_t perChannel = std::max<int64_t>(1, args.rows * args.in);
  const int64_t grain = std::max<int64_t>(1, (32 * 1024) / perChannel);
  pool->parallelFor(args.out, grain,
                    [&](int64_t b, int64_t e) { linearRange(args, xs, b, e); });
}

void linearGroup(const LinearArgs *const *as, int64_t n, ThreadPool *pool) {
  if (n <= 0)
    return;
  bool gemv = n <= kMaxLinearGroup;
  for (int64_t i = 0; i < n && gemv; ++i)
    gemv = as[i]->rows > 0 && as[i]->out > 0 && !gemmPreferred(*as[i]);
  // Quantized weights (decode): x quantized once, one job for all channels.
  if (n > 1 && gemv && quantLinearGroupApplies(as, n) && quantLinearGroup(as, n, pool))
    return;
  // Many rows (prefill): x packed once, the members' channel groups in one job.
  if (n > 1 && gemmGroupApplies(as, n)) {
    gemmGroup(as, n, pool);
    return;
  }
  const LinearArgs &a = *as[0];
  bool f32 = n > 1 && gemv;
  for (int64_t i = 0; i < n && f32; ++i)
    f32 = as[i]->kind == WeightKind::F32 && as[i]->x == a.x && as[i]->rows == a.rows &&
          as[i]->in == a.in;
  if (!f32 || !pool || pool->numThreads() <= 1) {
    for (int64_t i = 0; i < n; ++i)
      linear(*as[i], pool);
    return;
  }
  // f32 GEMV: the output channels of all members laid end to end, one job.
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i)
    total += as[i]->out;
  const int64_t grain = std::max<int64_t>(1, (32 * 1024) / std::max<int64_t>(1, a.rows * a.in));
  pool->parallelFor(total, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = 0, base = 0; i < n && base < e; base += as[i]->out, ++i) {
      const int64_t lo = std::max(b, base) - base, hi = std::min(e, base + as[i]->out) - base;
      if (lo < hi)
        linearRange(*as[i], nullptr, lo, hi);
    }
  });
}

const char *selectedTargetName() { return HWY_DYNAMIC_DISPATCH(TargetNameImpl)(); }

} // namespace opt
} // namespace rt
} // namespace kiln
#endif // HWY_ONCE
