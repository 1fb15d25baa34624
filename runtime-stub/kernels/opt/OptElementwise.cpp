// Highway implementation of OptElementwise.h. Compiled once per SIMD target
// through hwy/foreach_target.h; the per-target code lives in
// kiln::rt::opt::HWY_NAMESPACE and the dispatchers at the bottom (HWY_ONCE).
// Leftover elements (n % lanes) run as scalar code with the portable kernels'
// own expressions.
#include "runtime-stub/kernels/opt/OptElementwise.h"

// SVE/RVV are disabled like in OptLinear.cpp (sizeless vectors).
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime-stub/kernels/opt/OptElementwise.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep
#include "hwy/highway.h"

#include "hwy/contrib/math/math-inl.h"

#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/ThreadPool.h"

#include <algorithm>
#include <cmath>

HWY_BEFORE_NAMESPACE();
namespace kiln {
namespace rt {
namespace opt {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---- binary -------------------------------------------------------------------

template <int Op, class V> HWY_INLINE V applyOp(V a, V b) {
  if (Op == static_cast<int>(BinaryOp::Add))
    return hn::Add(a, b);
  if (Op == static_cast<int>(BinaryOp::Sub))
    return hn::Sub(a, b);
  if (Op == static_cast<int>(BinaryOp::Mul))
    return hn::Mul(a, b);
  return hn::Div(a, b);
}

template <int Op> HWY_INLINE float applyScalar(float a, float b) {
  if (Op == static_cast<int>(BinaryOp::Add))
    return a + b;
  if (Op == static_cast<int>(BinaryOp::Sub))
    return a - b;
  if (Op == static_cast<int>(BinaryOp::Mul))
    return a * b;
  return a / b;
}

// out[0, n) = a[i * sa] op b[i * sb] with sa, sb in {0, 1} (0: a scalar).
template <int Op>
HWY_INLINE void binarySpan(const float *HWY_RESTRICT a, bool aScalar, const float *HWY_RESTRICT b,
                           bool bScalar, float *out, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto va0 = hn::Set(d, a[0]), vb0 = hn::Set(d, b[0]);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    const auto x0 = aScalar ? va0 : hn::LoadU(d, a + i);
    const auto x1 = aScalar ? va0 : hn::LoadU(d, a + i + N);
    const auto y0 = bScalar ? vb0 : hn::LoadU(d, b + i);
    const auto y1 = bScalar ? vb0 : hn::LoadU(d, b + i + N);
    hn::StoreU(applyOp<Op>(x0, y0), d, out + i);
    hn::StoreU(applyOp<Op>(x1, y1), d, out + i + N);
  }
  for (; i + N <= n; i += N) {
    const auto x = aScalar ? va0 : hn::LoadU(d, a + i);
    const auto y = bScalar ? vb0 : hn::LoadU(d, b + i);
    hn::StoreU(applyOp<Op>(x, y), d, out + i);
  }
  for (; i < n; ++i)
    out[i] = applyScalar<Op>(a[aScalar ? 0 : i], b[bScalar ? 0 : i]);
}

template <int Op>
void binaryT(const float *a, int64_t na, const float *b, int64_t nb, float *out, int64_t n) {
  if (n <= 0)
    return;
  if ((na != n && nb != n) || na <= 0 || nb <= 0 || n % na != 0 || n % nb != 0) {
    for (int64_t i = 0; i < n; ++i) // not a documented form: elementwise by index
      out[i] = applyScalar<Op>(a[i % na], b[i % nb]);
    return;
  }
  const int64_t p = std::min(na, nb); // the period of the repeating operand (n: none)
  if (p == n || p == 1) {
    binarySpan<Op>(a, na == 1 && n != 1, b, nb == 1 && n != 1, out, n);
    return;
  }
  // One operand is [rows, p] and the other repeats its p elements per row.
  for (int64_t r0 = 0; r0 < n; r0 += p)
    binarySpan<Op>(na == n ? a + r0 : a, false, nb == n ? b + r0 : b, false, out + r0, p);
}

void BinaryImpl(BinaryOp op, const float *a, int64_t na, const float *b, int64_t nb, float *out,
                int64_t n) {
  switch (op) {
  case BinaryOp::Add: binaryT<0>(a, na, b, nb, out, n); break;
  case BinaryOp::Sub: binaryT<1>(a, na, b, nb, out, n); break;
  case BinaryOp::Mul: binaryT<2>(a, na, b, nb, out, n); break;
  case BinaryOp::Div: binaryT<3>(a, na, b, nb, out, n); break;
  }
}

// ---- rms_norm -----------------------------------------------------------------

void RmsNormImpl(const float *x, const float *w, int64_t rows, int64_t n, double eps,
                 float *out) {
  const hn::ScalableTag<double> dd;
  const hn::Rebind<float, decltype(dd)> dfh; // as many floats as dd has doubles
  const int64_t ND = static_cast<int64_t>(hn::Lanes(dd));
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (int64_t row = 0; row < rows; ++row) {
    const float *p = x + row * n;
    float *q = out + row * n;
    // Sum of squares in f64 (like the portable kernel), 4 accumulators.
    auto a0 = hn::Zero(dd), a1 = hn::Zero(dd), a2 = hn::Zero(dd), a3 = hn::Zero(dd);
    int64_t i = 0;
    for (; i + 4 * ND <= n; i += 4 * ND) {
      const auto x0 = hn::PromoteTo(dd, hn::LoadU(dfh, p + i));
      const auto x1 = hn::PromoteTo(dd, hn::LoadU(dfh, p + i + ND));
      const auto x2 = hn::PromoteTo(dd, hn::LoadU(dfh, p + i + 2 * ND));
      const auto x3 = hn::PromoteTo(dd, hn::LoadU(dfh, p + i + 3 * ND));
      a0 = hn::MulAdd(x0, x0, a0);
      a1 = hn::MulAdd(x1, x1, a1);
      a2 = hn::MulAdd(x2, x2, a2);
      a3 = hn::MulAdd(x3, x3, a3);
    }
    for (; i + ND <= n; i += ND) {
      const auto x0 = hn::PromoteTo(dd, hn::LoadU(dfh, p + i));
      a0 = hn::MulAdd(x0, x0, a0);
    }
    double ss = hn::GetLane(hn::SumOfLanes(dd, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
    for (; i < n; ++i)
      ss += (double)p[i] * p[i];
    const float scale = (float)(1.0 / std::sqrt(ss / (double)n + eps));
    // out = w * (x * scale): the portable kernel's two products, in its order.
    const auto vs = hn::Set(d, scale);
    i = 0;
    if (w) {
      for (; i + N <= n; i += N)
        hn::StoreU(hn::Mul(hn::LoadU(d, w + i), hn::Mul(hn::LoadU(d, p + i), vs)), d, q + i);
      for (; i < n; ++i)
        q[i] = w[i] * (p[i] * scale);
    } else {
      for (; i + N <= n; i += N)
        hn::StoreU(hn::Mul(hn::LoadU(d, p + i), vs), d, q + i);
      for (; i < n; ++i)
        q[i] = p[i] * scale;
    }
  }
}

// ---- swiglu -------------------------------------------------------------------

void SwigluImpl(const float *g, const float *u, float *out, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto one = hn::Set(d, 1.0f);
  // Exp is valid up to 104; e^-g overflows to inf for -g > 88.7 anyway, so the
  // clamp changes nothing but keeps the argument in range.
  const auto hi = hn::Set(d, 104.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto gv = hn::LoadU(d, g + i);
    const auto e = hn::Exp(d, hn::Min(hn::Neg(gv), hi));
    hn::StoreU(hn::Mul(hn::Div(gv, hn::Add(one, e)), hn::LoadU(d, u + i)), d, out + i);
  }
  for (; i < n; ++i)
    out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

// ---- quantized rows -----------------------------------------------------------

inline float scaleValue(const void *scales, bool f16, int64_t index) {
  if (f16)
    return halfToFloat(static_cast<const uint16_t *>(scales)[index]);
  return static_cast<const float *>(scales)[index];
}

void DequantizeRowImpl(bool int4, const void *w, const void *scales, bool scalesF16,
                       int64_t group, int64_t in, int64_t row, float *out) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t groups = in / group;
  for (int64_t g = 0; g < groups; ++g) {
    const float s = scaleValue(scales, scalesF16, row * groups + g);
    const auto vs = hn::Set(d, s);
    const int64_t c0 = g * group, c1 = c0 + group;
    int64_t c = c0;
    if (!int4) {
      const int8_t *src = static_cast<const int8_t *>(w) + row * in;
      const hn::Rebind<int8_t, decltype(d)> d8;
      for (; c + N <= c1; c += N)
        hn::StoreU(hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, src + c))), vs), d,
                   out + c);
      for (; c < c1; ++c)
        out[c] = static_cast<float>(src[c]) * s;
      continue;
    }
    const uint8_t *src = static_cast<const uint8_t *>(w) + row * (in / 2);
#if HWY_TARGET != HWY_SCALAR
    // N/2 bytes -> u16 lanes (lo | hi << 8) -> N bytes in element order (the
    // low nibble of byte k is element 2k) -> i32, sign-extended by (v ^ 8) - 8.
    const hn::Rebind<uint8_t, decltype(d)> d8;       // N bytes
    const hn::Repartition<uint16_t, decltype(d8)> d16; // N/2 u16
    const hn::Rebind<uint8_t, decltype(d16)> d8h;     // N/2 bytes
    const auto mask = hn::Set(d16, 0x0F);
    const auto eight = hn::Set(di, 8);
    for (; c + N <= c1; c += N) {
      const auto b16 = hn::PromoteTo(d16, hn::LoadU(d8h, src + c / 2));
      const auto pairs = hn::Or(hn::And(b16, mask), hn::ShiftLeft<8>(hn::ShiftRight<4>(b16)));
      const auto v = hn::PromoteTo(di, hn::BitCast(d8, pairs));
      const auto sv = hn::Sub(hn::Xor(v, eight), eight);
      hn::StoreU(hn::Mul(hn::ConvertTo(d, sv), vs), d, out + c);
    }
#endif
    for (; c < c1; ++c) {
      const uint8_t byte = src[c >> 1];
      int v = (c & 1) ? (byte >> 4) : (byte & 0x0F);
      v = (v ^ 8) - 8;
      out[c] = static_cast<float>(v) * s;
    }
  }
}

// f32 -> f16 bits, rounded to nearest even: F16C's vcvtps2ph on the x86
// targets that have it (AVX2 and up), floatToHalf (the portable conversion)
// elsewhere and for the tail. Equal bit for bit but for NaN payloads.
void FloatsToHalfImpl(const float *src, uint16_t *dst, int64_t n) {
  int64_t i = 0;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  const hn::ScalableTag<float> d;
  const hn::Rebind<hwy::float16_t, decltype(d)> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  for (; i + N <= n; i += N)
    hn::StoreU(hn::DemoteTo(dh, hn::LoadU(d, src + i)), dh,
               reinterpret_cast<hwy::float16_t *>(dst + i));
#endif
  for (; i < n; ++i)
    dst[i] = floatToHalf(src[i]);
}

const char *EwTargetName() { return hwy::TargetName(HWY_TARGET); }

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

HWY_EXPORT(BinaryImpl);
HWY_EXPORT(RmsNormImpl);
HWY_EXPORT(SwigluImpl);
HWY_EXPORT(DequantizeRowImpl);
HWY_EXPORT(FloatsToHalfImpl);
HWY_EXPORT(EwTargetName);

namespace {
// Elements below which an op stays on the calling thread: a hand-off costs
// ~1-2 us, these ops move ~4-16 GB/s per thread from cache (a decode step's
// 576-wide rows never split; a 64-token prefill chunk's [64, 576] does).
constexpr int64_t kSplitElements = 16 * 1024;
} // namespace

void binary(BinaryOp op, const float *a, int64_t na, const float *b, int64_t nb, float *out,
            int64_t n, ThreadPool *pool) {
  if (!pool || pool->numThreads() <= 1 || n < 2 * kSplitElements) {
    HWY_DYNAMIC_DISPATCH(BinaryImpl)(op, a, na, b, nb, out, n);
    return;
  }
  // Split at multiples of the repeating operands' periods (a full-size operand
  // is offset with the output), so every piece sees its operands' pattern.
  const int64_t pa = na == n ? 1 : na, pb = nb == n ? 1 : nb;
  int64_t g = pa, r = pb;
  while (r) { // g = gcd(pa, pb)
    const int64_t t = g % r;
    g = r;
    r = t;
  }
  const int64_t unit = pa / g * pb; // lcm: a divisor of n (both periods divide n)
  if (unit <= 0 || n % unit != 0 || n / unit < 2) {
    HWY_DYNAMIC_DISPATCH(BinaryImpl)(op, a, na, b, nb, out, n);
    return;
  }
  pool->parallelFor(n / unit, std::max<int64_t>(1, kSplitElements / unit),
                    [&](int64_t u0, int64_t u1) {
                      const int64_t s = u0 * unit, len = (u1 - u0) * unit;
                      HWY_DYNAMIC_DISPATCH(BinaryImpl)(op, na == n ? a + s : a, na == n ? len : na,
                                                       nb == n ? b + s : b, nb == n ? len : nb,
                                                       out + s, len);
                    });
}

void rmsNorm(const float *x, const float *w, int64_t rows, int64_t n, double eps, float *out,
             ThreadPool *pool) {
  if (!pool || pool->numThreads() <= 1 || n <= 0 || rows < 2 || rows * n < 2 * kSplitElements) {
    HWY_DYNAMIC_DISPATCH(RmsNormImpl)(x, w, rows, n, eps, out);
    return;
  }
  pool->parallelFor(rows, std::max<int64_t>(1, kSplitElements / n), [&](int64_t r0, int64_t r1) {
    HWY_DYNAMIC_DISPATCH(RmsNormImpl)(x + r0 * n, w, r1 - r0, n, eps, out + r0 * n);
  });
}

void swiglu(const float *gate, const float *up, float *out, int64_t n, ThreadPool *pool) {
  // ~16K elements (an exp, a division and a few products each) are several
  // microseconds: split only prefill-sized inputs, never a decode row.
  constexpr int64_t kGrain = 16 * 1024;
  if (!pool || pool->numThreads() <= 1 || n < 2 * kGrain) {
    HWY_DYNAMIC_DISPATCH(SwigluImpl)(gate, up, out, n);
    return;
  }
  pool->parallelFor(n, kGrain, [&](int64_t b, int64_t e) {
    HWY_DYNAMIC_DISPATCH(SwigluImpl)(gate + b, up + b, out + b, e - b);
  });
}

void dequantizeRow(bool int4, const void *w, const void *scales, bool scalesF16, int64_t group,
                   int64_t in, int64_t row, float *out) {
  HWY_DYNAMIC_DISPATCH(DequantizeRowImpl)(int4, w, scales, scalesF16, group, in, row, out);
}

void floatsToHalf(const float *src, uint16_t *dst, int64_t n) {
  HWY_DYNAMIC_DISPATCH(FloatsToHalfImpl)(src, dst, n);
}

const char *elementwiseTargetName() { return HWY_DYNAMIC_DISPATCH(EwTargetName)(); }

} // namespace opt
} // namespace rt
} // namespace kiln
#endif // HWY_ONCE
