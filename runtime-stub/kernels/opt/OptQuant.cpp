// Quantized GEMV (OptQuant.h). Compiled once per SIMD target through
// hwy/foreach_target.h (AVX3_DL included: HWY_WANT_AVX3_DL); Highway provides
// the run-time dispatch, the kernels use x86 intrinsics per target:
//   AVX3_DL  512-bit, vpdpbusd (AVX512-VNNI; emitted with inline asm because
//            Highway 1.0.3's AVX3_DL target attribute lacks avx512vnni, but its
//            run-time check requires VNNI)
//   AVX3     512-bit, vpmaddubsw + vpmaddwd
//   AVX2     256-bit, vpmaddubsw + vpmaddwd
//   SSE4/SSSE3 128-bit, pmaddubsw + pmaddwd
//   others   scalar integer code (same math, same results)
//
// Math. Activation row x is quantized per call in blocks of 32 columns:
// xs_b = max|x_b| / 127, xq = round(x / xs_b) in [-127, 127]. A weight row is
// read a vector (W bytes) at a time; int32 lane l of the integer dot reads
// weight bytes 4l..4l+3 (int8: columns 4l..4l+3, int4: columns 8l..8l+7), so a
// lane never straddles a 32-block and lane l's f32 factor is xs_{block(l)} *
// ws_{group(l)}. Unsigned x signed byte products need an unsigned operand:
// int4 nibbles n become u = n ^ 8 = n + 8 in [0, 15]; int8 weights w become
// u = w ^ 0x80 = w + 128 (VNNI only). The offset is removed by starting each
// lane's int32 sum at corr_l = -8 (resp. -128) * sum of the x bytes the lane
// reads (precomputed with x). Without VNNI, int8 uses pmaddubsw(|w|, sign(x, w)),
// whose pair sums (<= 2 * 128 * 127) cannot saturate, and no offset.
// For int4 the weight byte k of a chunk holds columns 2k (low nibble) and 2k+1
// (high nibble); x is stored per chunk (2W columns; 32 for the 16-byte tail) as
// [even columns | odd columns] so that the low / high nibble vectors meet their
// x bytes at the same positions.
#include "runtime-stub/kernels/opt/OptQuant.h"

#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif
#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime-stub/kernels/opt/OptQuant.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep
#include "hwy/highway.h"

#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/QuantLayout.h"
#include "runtime-stub/core/ThreadPool.h"

#include <algorithm>
#include <cmath>
#include <cpuid.h>
#include <cstring>
#include <initializer_list>
#include <vector>

#ifndef KILN_OPT_QUANT_SHARED
#define KILN_OPT_QUANT_SHARED
namespace kiln {
namespace rt {
namespace opt {
namespace quant {

/// One call's quantized activations (see the top of this file).
struct Plan {
  const LinearArgs *a = nullptr;
  const int8_t *xq = nullptr;    // [rows, in]; int4: per chunk [even | odd]
  const float *xs = nullptr;     // [rows, lanes]: x block scale of lane l
  const int32_t *corr = nullptr; // [rows, lanes]: offset correction of lane l
  int64_t lanes = 0;             // in / 4 (int8) or in / 8 (int4)
  int64_t rowBytes = 0;          // weight bytes per output channel
  int64_t groupsPerRow = 0;
  int64_t prefetch = 0; // bytes ahead of the current weight row to prefetch (0: none; int4 into L1, int8 into L2)
  bool nta = false;      // int4: prefetch non-temporally (the weight is not read again soon)
};

} // namespace quant
} // namespace opt
} // namespace rt
} // namespace kiln
#endif // KILN_OPT_QUANT_SHARED

HWY_BEFORE_NAMESPACE();
namespace kiln {
namespace rt {
namespace opt {
namespace HWY_NAMESPACE {

using quant::Plan;

#undef KILN_Q_WIDTH
#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3
#define KILN_Q_WIDTH 64
#elif HWY_TARGET == HWY_AVX2
#define KILN_Q_WIDTH 32
#elif HWY_TARGET == HWY_SSE4 || HWY_TARGET == HWY_SSSE3
#define KILN_Q_WIDTH 16
#else
#define KILN_Q_WIDTH 0
#endif

constexpr bool kVnni = HWY_TARGET == HWY_AVX3_DL;

#if KILN_Q_WIDTH >= 16
// 128-bit ops (the whole row on SSSE3/SSE4, the 16-byte tail pieces above).
struct O128 {
  using I = __m128i;
  using F = __m128;
  static constexpr int64_t kBytes = 16;
  static I Load(const void *p) { return _mm_loadu_si128(static_cast<const __m128i *>(p)); }
  static F LoadF(const float *p) { return _mm_loadu_ps(p); }
  static I Zero() { return _mm_setzero_si128(); }
  static F ZeroF() { return _mm_setzero_ps(); }
  static I Set8(int v) { return _mm_set1_epi8(static_cast<char>(v)); }
  static F Set(float v) { return _mm_set1_ps(v); }
  static I Xor(I a, I b) { return _mm_xor_si128(a, b); }
  static I And(I a, I b) { return _mm_and_si128(a, b); }
  static I Shr4(I a) { return _mm_srli_epi16(a, 4); }
  static F Cvt(I a) { return _mm_cvtepi32_ps(a); }
  static F Mul(F a, F b) { return _mm_mul_ps(a, b); }
  static F MulAdd(F a, F b, F c) {
#if KILN_Q_WIDTH >= 32
    return _mm_fmadd_ps(a, b, c);
#else
    return _mm_add_ps(_mm_mul_ps(a, b), c);
#endif
  }
  static float Sum(F v) {
    v = _mm_add_ps(v, _mm_movehl_ps(v, v));
    v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 0x55));
    return _mm_cvtss_f32(v);
  }
  // acc + per-lane sum of 4 products u * s (u unsigned bytes, s signed).
  static I DotU(I acc, I u, I s) {
#if HWY_TARGET == HWY_AVX3_DL
    asm("%{evex%} vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
    return acc;
#else
    return _mm_add_epi32(acc, _mm_madd_epi16(_mm_maddubs_epi16(u, s), _mm_set1_epi16(1)));
#endif
  }
  // int4: acc + lo . xe + hi . xo (lo, hi in [0, 15]: pair sums fit int16).
  static I Dot4(I acc, I lo, I xe, I hi, I xo) {
#if HWY_TARGET == HWY_AVX3_DL
    return DotU(DotU(acc, lo, xe), hi, xo);
#else
    const I p = _mm_add_epi16(_mm_maddubs_epi16(lo, xe), _mm_maddubs_epi16(hi, xo));
    return _mm_add_epi32(acc, _mm_madd_epi16(p, _mm_set1_epi16(1)));
#endif
  }
  // int8: acc + w . x; with VNNI acc must start at the -128 offset correction.
  static I Dot8(I acc, I w, I x) {
#if HWY_TARGET == HWY_AVX3_DL
    return DotU(acc, Xor(w, Set8(0x80)), x);
#else
    const I p = _mm_maddubs_epi16(_mm_abs_epi8(w), _mm_sign_epi8(x, w));
    return _mm_add_epi32(acc, _mm_madd_epi16(p, _mm_set1_epi16(1)));
#endif
  }
  // Int4Strip16 kernel (StripSimd).
  static I Set32(int32_t v) { return _mm_set1_epi32(v); }
  static I Bcast32(const int8_t *p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm_set1_epi32(v);
  }
  static I Add32(I a, I b) { return _mm_add_epi32(a, b); }
  static I Add16(I a, I b) { return _mm_add_epi16(a, b); }
  static I Sar4(I a) { return _mm_srai_epi32(a, 4); }
  static I Maddubs(I u, I s) { return _mm_maddubs_epi16(u, s); }
  static I Madd1(I a) { return _mm_madd_epi16(a, _mm_set1_epi16(1)); }
  static void StoreF(float *p, F v) { _mm_storeu_ps(p, v); }
  static F StripScalesF16(const uint16_t *p) { // no F16C before AVX2
    alignas(16) float t[4];
    for (int l = 0; l < 4; ++l)
      t[l] = halfBitsToFloat(p[l]);
    return _mm_load_ps(t);
  }
  // Scales g0 .. g0+G-1 of a row, each on 4/G consecutive lanes.
  template <int G>
  static F Expand(const LinearArgs &a, int64_t g0) {
    alignas(16) float t[4];
    for (int l = 0; l < 4; ++l)
      t[l] = scaleAt(a, g0 + l / (4 / G));
    return _mm_load_ps(t);
  }
};
#endif

#if KILN_Q_WIDTH >= 32
// G consecutive scales (G = 2 or 4) in the low lanes of a 128-bit vector.
template <int G>
HWY_INLINE __m128 LoadScales(const LinearArgs &a, int64_t g0) {
  if (a.scalesF16) {
    const uint16_t *p = static_cast<const uint16_t *>(a.scales) + g0;
    if (G == 4) {
      uint64_t bits;
      std::memcpy(&bits, p, 8);
      return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(bits)));
    }
    uint32_t bits;
    std::memcpy(&bits, p, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(bits)));
  }
  const float *p = static_cast<const float *>(a.scales) + g0;
  if (G == 4)
    return _mm_loadu_ps(p);
  return _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double *>(p)));
}

// One scale (F16C where the target has it).
HWY_INLINE float ScaleFast(const LinearArgs &a, int64_t i) {
  return a.scalesF16 ? _cvtsh_ss(static_cast<const uint16_t *>(a.scales)[i])
                     : static_cast<const float *>(a.scales)[i];
}
#else
HWY_INLINE float ScaleFast(const LinearArgs &a, int64_t i) { return scaleAt(a, i); }
#endif

#if KILN_Q_WIDTH == 32
struct O256 {
  using I = __m256i;
  using F = __m256;
  static constexpr int64_t kBytes = 32;
  static I Load(const void *p) { return _mm256_loadu_si256(static_cast<const __m256i *>(p)); }
  static F LoadF(const float *p) { return _mm256_loadu_ps(p); }
  static I Zero() { return _mm256_setzero_si256(); }
  static F ZeroF() { return _mm256_setzero_ps(); }
  static I Set8(int v) { return _mm256_set1_epi8(static_cast<char>(v)); }
  static F Set(float v) { return _mm256_set1_ps(v); }
  static I Xor(I a, I b) { return _mm256_xor_si256(a, b); }
  static I And(I a, I b) { return _mm256_and_si256(a, b); }
  static I Shr4(I a) { return _mm256_srli_epi16(a, 4); }
  static F Cvt(I a) { return _mm256_cvtepi32_ps(a); }
  static F Mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F MulAdd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static float Sum(F v) {
    return O128::Sum(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
  }
  static I Dot4(I acc, I lo, I xe, I hi, I xo) {
    const I p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xe), _mm256_maddubs_epi16(hi, xo));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  static I Dot8(I acc, I w, I x) {
    const I p = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  // Int4Strip16 kernel (StripSimd).
  static I Set32(int32_t v) { return _mm256_set1_epi32(v); }
  static I Bcast32(const int8_t *p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  static I Add32(I a, I b) { return _mm256_add_epi32(a, b); }
  static I Add16(I a, I b) { return _mm256_add_epi16(a, b); }
  static I Sar4(I a) { return _mm256_srai_epi32(a, 4); }
  static I Maddubs(I u, I s) { return _mm256_maddubs_epi16(u, s); }
  static I Madd1(I a) { return _mm256_madd_epi16(a, _mm256_set1_epi16(1)); }
  static void StoreF(float *p, F v) { _mm256_storeu_ps(p, v); }
  static F StripScalesF16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
  }
  // Scales g0 .. g0+G-1, each on 8/G consecutive lanes (G = 2 or 4).
  template <int G>
  static F Expand(const LinearArgs &a, int64_t g0) {
    const __m256i idx = G == 4 ? _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)
                               : _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(LoadScales<G>(a, g0)), idx);
  }
};
#endif

#if KILN_Q_WIDTH == 64
struct O512 {
  using I = __m512i;
  using F = __m512;
  static constexpr int64_t kBytes = 64;
  static I Load(const void *p) { return _mm512_loadu_si512(p); }
  static F LoadF(const float *p) { return _mm512_loadu_ps(p); }
  static I Zero() { return _mm512_setzero_si512(); }
  static F ZeroF() { return _mm512_setzero_ps(); }
  static I Set8(int v) { return _mm512_set1_epi8(static_cast<char>(v)); }
  static F Set(float v) { return _mm512_set1_ps(v); }
  static I Xor(I a, I b) { return _mm512_xor_si512(a, b); }
  static I And(I a, I b) { return _mm512_and_si512(a, b); }
  static I Shr4(I a) { return _mm512_srli_epi16(a, 4); }
  static F Cvt(I a) { return _mm512_cvtepi32_ps(a); }
  static F Mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F MulAdd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static float Sum(F v) { return _mm512_reduce_add_ps(v); }
#if HWY_TARGET == HWY_AVX3_DL
  static I DotU(I acc, I u, I s) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
    return acc;
  }
  // acc + u . (the 4 bytes at p broadcast to every lane), one instruction.
  static I DotUBcast(I acc, I u, const int8_t *p) {
    asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(u), "m"(*reinterpret_cast<const int32_t *>(p)));
    return acc;
  }
  static I Dot4(I acc, I lo, I xe, I hi, I xo) { return DotU(DotU(acc, lo, xe), hi, xo); }
  static I Dot8(I acc, I w, I x) { return DotU(acc, Xor(w, Set8(0x80)), x); }
#else
  static I Dot4(I acc, I lo, I xe, I hi, I xo) {
    const I p = _mm512_add_epi16(_mm512_maddubs_epi16(lo, xe), _mm512_maddubs_epi16(hi, xo));
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
  }
  static I Dot8(I acc, I w, I x) {
    // No vpsignb on zmm: negate x where w < 0.
    const __mmask64 neg = _mm512_movepi8_mask(w);
    const I s = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
    const I p = _mm512_maddubs_epi16(_mm512_abs_epi8(w), s);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(p, _mm512_set1_epi16(1)));
  }
#endif
  // Int4Strip16 kernel (StripSimd).
  static I Set32(int32_t v) { return _mm512_set1_epi32(v); }
  static I Bcast32(const int8_t *p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static I Add32(I a, I b) { return _mm512_add_epi32(a, b); }
  static I Add16(I a, I b) { return _mm512_add_epi16(a, b); }
  static I Sar4(I a) { return _mm512_srai_epi32(a, 4); }
  static I Maddubs(I u, I s) { return _mm512_maddubs_epi16(u, s); }
  static I Madd1(I a) { return _mm512_madd_epi16(a, _mm512_set1_epi16(1)); }
  static void StoreF(float *p, F v) { _mm512_storeu_ps(p, v); }
  static F StripScalesF16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
  }
  // Scales g0 .. g0+G-1, each on 16/G consecutive lanes (G = 2 or 4).
  template <int G>
  static F Expand(const LinearArgs &a, int64_t g0) {
    const __m512i idx = G == 4 ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                               : _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(LoadScales<G>(a, g0)));
  }
};
#endif

enum Mode { kPerRow = 0, kPerChunk = 1, kExpand2 = 2, kExpand4 = 3, kGeneric = 4 };

#if KILN_Q_WIDTH >= 16
// out[n * R + r] = y[r0 + r][o + n] (no bias) for R x rows and NO output
// channels (weight rows share the x loads; NO > 1 for decode): main chunks
// with ops O, the remaining 16-byte pieces (one 32-column int4 block / half an
// int8 block) with O128. M: how the weight scales vary along a row (QuantRange).
template <class O, int R, int NO, bool kInt4, int M>
HWY_INLINE void RowsSimd(const Plan &p, int64_t o, int64_t r0, float *out) {
  using I = typename O::I;
  using F = typename O::F;
  const LinearArgs &a = *p.a;
  constexpr int64_t W = O::kBytes, L = W / 4, C = kInt4 ? 2 * W : W;
  const uint8_t *w[NO];
  int64_t sBase[NO];
  const int64_t in = a.in, group = a.group, nMain = in / C;
  for (int n = 0; n < NO; ++n) {
    w[n] = static_cast<const uint8_t *>(a.w) + (o + n) * p.rowBytes;
    sBase[n] = (o + n) * p.groupsPerRow;
  }
  const int8_t *xr[R];
  const float *xsr[R];
  const int32_t *cr[R];
  F acc[NO][R];
  for (int r = 0; r < R; ++r) {
    xr[r] = p.xq + (r0 + r) * in;
    xsr[r] = p.xs + (r0 + r) * p.lanes;
    cr[r] = p.corr + (r0 + r) * p.lanes;
    for (int n = 0; n < NO; ++n)
      acc[n][r] = O::ZeroF();
  }
  const I nib = O::Set8(0x0F), flip = O::Set8(0x88);
  // Scale bookkeeping without divisions: g = scale index of chunk k in a row.
  const int64_t chunksPerGroup = M == kPerChunk ? group / C : 1;
  int64_t g = 0, inGroup = 0;
  for (int64_t k = 0; k < nMain; ++k) {
    F ws[NO];
    for (int n = 0; n < NO; ++n) {
      if (M == kPerChunk) {
        ws[n] = O::Set(ScaleFast(a, sBase[n] + g));
      } else if (M == kExpand2 || M == kExpand4) {
        ws[n] = O::template Expand<M == kExpand2 ? 2 : 4>(a, sBase[n] + g);
      } else if (M == kGeneric) {
        alignas(64) float t[L];
        for (int64_t l = 0; l < L; ++l)
          t[l] = scaleAt(a, sBase[n] + (k * C + l * (kInt4 ? 8 : 4)) / group);
        ws[n] = O::LoadF(t);
      } else {
        ws[n] = O::ZeroF();
      }
    }
    if (M == kPerChunk && ++inGroup == chunksPerGroup) {
      inGroup = 0;
      ++g;
    } else if (M == kExpand2 || M == kExpand4) {
      g += M == kExpand2 ? 2 : 4;
    }
    // Weights streamed from DRAM: one prefetch per cache line, p.prefetch
    // bytes ahead of each row's read position (the rows of one call and of
    // the next are adjacent, so this covers the stream without bursts).
    if (p.prefetch > 0 && (k * W) % 64 == 0)
      for (int n = 0; n < NO; ++n) {
        const char *ahead = reinterpret_cast<const char *>(w[n] + k * W) + p.prefetch;
        if (kInt4 && p.nta)
          _mm_prefetch(ahead, _MM_HINT_NTA);
        else if (kInt4)
          _mm_prefetch(ahead, _MM_HINT_T0);
        else
          _mm_prefetch(ahead, _MM_HINT_T1);
      }
    I lo[NO], hi[NO];
    for (int n = 0; n < NO; ++n) {
      const I wv = O::Load(w[n] + k * W);
      if (kInt4) {
        const I u = O::Xor(wv, flip);
        lo[n] = O::And(u, nib);
        hi[n] = O::And(O::Shr4(u), nib);
      } else {
        lo[n] = hi[n] = wv;
      }
    }
    for (int r = 0; r < R; ++r) {
      const I c0 = (kInt4 || kVnni) ? O::Load(cr[r] + k * L) : O::Zero();
      const I x0 = O::Load(xr[r] + k * C);
      const I x1 = kInt4 ? O::Load(xr[r] + k * C + W) : x0;
      const F xs = O::LoadF(xsr[r] + k * L);
      for (int n = 0; n < NO; ++n) {
        const I dot = kInt4 ? O::Dot4(c0, lo[n], x0, hi[n], x1) : O::Dot8(c0, lo[n], x0);
        acc[n][r] = M == kPerRow ? O::MulAdd(O::Cvt(dot), xs, acc[n][r])
                                 : O::MulAdd(O::Mul(O::Cvt(dot), xs), ws[n], acc[n][r]);
      }
    }
  }
  float sums[NO][R];
  for (int n = 0; n < NO; ++n)
    for (int r = 0; r < R; ++r)
      sums[n][r] = O::Sum(acc[n][r]);
  // 16-byte tail pieces (none when O is O128).
  const int64_t mainBytes = nMain * W, pieceCols = kInt4 ? 32 : 16;
  if (mainBytes < p.rowBytes) {
    using I1 = O128::I;
    using F1 = O128::F;
    F1 tacc[NO][R];
    for (int n = 0; n < NO; ++n)
      for (int r = 0; r < R; ++r)
        tacc[n][r] = O128::ZeroF();
    const I1 nib1 = O128::Set8(0x0F), flip1 = O128::Set8(0x88);
    for (int64_t b = mainBytes, j = 0; b < p.rowBytes; b += 16, ++j) {
      const int64_t col0 = nMain * C + j * pieceCols, lane0 = b / 4;
      F1 ws[NO];
      I1 lo[NO], hi[NO];
      for (int n = 0; n < NO; ++n) {
        ws[n] = O128::Set(M == kPerRow ? 0.0f : ScaleFast(a, sBase[n] + col0 / group));
        const I1 wv = O128::Load(w[n] + b);
        if (kInt4) {
          const I1 u = O128::Xor(wv, flip1);
          lo[n] = O128::And(u, nib1);
          hi[n] = O128::And(O128::Shr4(u), nib1);
        } else {
          lo[n] = hi[n] = wv;
        }
      }
      for (int r = 0; r < R; ++r) {
        const I1 c0 = (kInt4 || kVnni) ? O128::Load(cr[r] + lane0) : O128::Zero();
        const I1 x0 = O128::Load(xr[r] + col0);
        const I1 x1 = kInt4 ? O128::Load(xr[r] + col0 + 16) : x0;
        const F1 xs = O128::LoadF(xsr[r] + lane0);
        for (int n = 0; n < NO; ++n) {
          const I1 dot = kInt4 ? O128::Dot4(c0, lo[n], x0, hi[n], x1) : O128::Dot8(c0, lo[n], x0);
          tacc[n][r] = M == kPerRow ? O128::MulAdd(O128::Cvt(dot), xs, tacc[n][r])
                                    : O128::MulAdd(O128::Mul(O128::Cvt(dot), xs), ws[n], tacc[n][r]);
        }
      }
    }
    for (int n = 0; n < NO; ++n)
      for (int r = 0; r < R; ++r)
        sums[n][r] += O128::Sum(tacc[n][r]);
  }
  for (int n = 0; n < NO; ++n) {
    const float rowScale = M == kPerRow ? scaleAt(a, sBase[n]) : 1.0f;
    for (int r = 0; r < R; ++r)
      out[n * R + r] = sums[n][r] * rowScale;
  }
}
#endif

// Scalar version of the same math over 16-byte pieces (layout as O128's).
template <int R, bool kInt4, int M>
HWY_INLINE void RowsScalar(const Plan &p, int64_t o, int64_t r0, float *out) {
  const LinearArgs &a = *p.a;
  const uint8_t *w = static_cast<const uint8_t *>(a.w) + o * p.rowBytes;
  const int64_t in = a.in, group = a.group, sBase = o * p.groupsPerRow;
  const int64_t pieceCols = kInt4 ? 32 : 16;
  float sums[R] = {};
  for (int64_t b = 0, j = 0; b < p.rowBytes; b += 16, ++j) {
    const int64_t col0 = j * pieceCols;
    const float ws = M == kPerRow ? 1.0f : scaleAt(a, sBase + col0 / group);
    for (int r = 0; r < R; ++r) {
      const int8_t *x = p.xq + (r0 + r) * in + col0;
      int32_t dot = 0;
      for (int k = 0; k < 16; ++k) {
        if (kInt4) {
          const int lo = ((w[b + k] & 0x0F) ^ 8) - 8, hi = ((w[b + k] >> 4) ^ 8) - 8;
          dot += lo * x[k] + hi * x[16 + k];
        } else {
          dot += static_cast<int8_t>(w[b + k]) * x[k];
        }
      }
      sums[r] += static_cast<float>(dot) * p.xs[(r0 + r) * p.lanes + b / 4] * ws;
    }
  }
  const float rowScale = M == kPerRow ? scaleAt(a, sBase) : 1.0f;
  for (int r = 0; r < R; ++r)
    out[r] = sums[r] * rowScale;
}

// Decode (one x row) computes one output channel per pass, like the other
// row counts: the weights are then read as one sequential stream, which the
// hardware and the software prefetch follow far better than 2 or 4
// interleaved rows of 288-768 bytes (one 125M layer from DRAM, 1 thread, best
// of 20 sweeps, AVX3_DL: int4 8 -> 12 GB/s, int8 9 -> 17 GB/s with 4 -> 1
// channels per pass; 2 channels: int4 11.5, int8 9). RowsSimd keeps its NO
// parameter (channels per pass) for such measurements; Rows uses NO = 1.

template <int R, int NO, bool kInt4, int M>
HWY_INLINE void Rows(const Plan &p, int64_t o, int64_t r0, float *out) {
#if KILN_Q_WIDTH == 64
  RowsSimd<O512, R, NO, kInt4, M>(p, o, r0, out);
#elif KILN_Q_WIDTH == 32
  RowsSimd<O256, R, NO, kInt4, M>(p, o, r0, out);
#elif KILN_Q_WIDTH == 16
  RowsSimd<O128, R, NO, kInt4, M>(p, o, r0, out);
#else
  for (int n = 0; n < NO; ++n)
    RowsScalar<R, kInt4, M>(p, o + n, r0, out + n * R);
#endif
}

template <bool kInt4, int M>
void RangeT(const Plan &p, int64_t o0, int64_t o1) {
  const LinearArgs &a = *p.a;
  float v[4];
  for (int64_t o = o0; o < o1; ++o) {
    const float bias = a.bias ? a.bias[o] : 0.0f;
    int64_t r = 0;
    for (; r + 4 <= a.rows; r += 4) {
      Rows<4, 1, kInt4, M>(p, o, r, v);
      for (int k = 0; k < 4; ++k)
        a.y[(r + k) * a.ldy + o] = v[k] + bias;
    }
    const int64_t left = a.rows - r;
    if (left == 3)
      Rows<3, 1, kInt4, M>(p, o, r, v);
    else if (left == 2)
      Rows<2, 1, kInt4, M>(p, o, r, v);
    else if (left == 1)
      Rows<1, 1, kInt4, M>(p, o, r, v);
    for (int64_t k = 0; k < left; ++k)
      a.y[(r + k) * a.ldy + o] = v[k] + bias;
  }
}

// ---- Int4Strip16 weights (core/QuantLayout.h) ---------------------------------
// A 64-byte vector holds 8 columns (4 bytes: low nibbles 4 columns, high nibbles
// the next 4) of 16 output channels, int32 lane l = channel l. Its products
// with x need x's 4 bytes of each half broadcast to every lane: no x reordering,
// no horizontal sums, and one int32 -> f32 conversion per 32-column block.
// Stored nibbles are u = q + 8; the block's correction corr_b = -8 * sum of its
// x bytes (Plan::corr, one per block) starts the int32 sum. With VNNI the high
// nibbles are used in place as 16 u (w & 0xF0, no shift): their sum is 16x the
// wanted one and is shifted back (exact) before adding. Without VNNI the
// nibbles are isolated and the 8 pmaddubsw pair sums of a block (each <= 2 * 15
// * 127) are added in int16 (<= 30480) before one pmaddwd.
// Plan fields here: xq [rows, in] in column order; xs / corr [rows, lanes] with
// lanes = in / 32 (one per block); groupsPerRow = in / group.

// ---- Int8Strip16 weights (core/QuantLayout.h) ---------------------------------
// A 64-byte vector holds 4 columns of 16 output channels (int32 lane l =
// channel l) and meets one broadcast dword of x; a 32-column block is 8 such
// vectors, one int32 -> f32 conversion per block. Bytes are the signed
// weights: with VNNI they become u = w ^ 0x80 = w + 128 (the block's
// correction corr_b = -128 * sum of its x bytes starts the int32 sum), without
// it pmaddubsw(|w|, sign(x, w)) (pair sums <= 2 * 128 * 127, no saturation) is
// widened by pmaddwd per vector. Two int32 chains per block (even / odd
// vectors) halve the dependency chain. Weights stream from DRAM in decode: the
// kernel prefetches p.prefetch bytes ahead into L2, like the int8 rows kernel.

#if KILN_Q_WIDTH >= 16
// out[r * 16 + l] = y[r0 + r][16 s + l] (no bias) for R x rows of an
// Int4Strip16 (kInt8 false) or Int8Strip16 weight. One flat loop over the
// 32-column blocks with running pointers: a group loop around it cost as many
// scalar instructions per block as the block's vector work (group 32).
template <class O, int R, bool kF16, bool kInt8>
HWY_INLINE void StripSimd(const Plan &p, int64_t s, int64_t r0, float *out) {
  using I = typename O::I;
  using F = typename O::F;
  const LinearArgs &a = *p.a;
  constexpr int64_t W = O::kBytes, L = W / 4, NH = 64 / W; // sub-vectors per 64 bytes
  constexpr int64_t kBlockBytes = kInt8 ? 512 : 256;      // 16 channels x 32 columns
  const int64_t in = a.in, blocks = in / 32, blocksPerGroup = a.group / 32;
  const uint8_t *wb = static_cast<const uint8_t *>(a.w) + s * blocks * kBlockBytes;
  const int64_t scale0 = s * p.groupsPerRow * 16;
  const uint16_t *sh = static_cast<const uint16_t *>(a.scales) + scale0;
  const float *sf = static_cast<const float *>(a.scales) + scale0;
  const int8_t *xb[R];
  const float *xsp[R];
  const int32_t *cp[R];
  F acc[R][NH];
  for (int r = 0; r < R; ++r) {
    xb[r] = p.xq + (r0 + r) * in;
    xsp[r] = p.xs + (r0 + r) * p.lanes;
    cp[r] = p.corr + (r0 + r) * p.lanes;
    for (int h = 0; h < NH; ++h)
      acc[r][h] = O::ZeroF();
  }
  [[maybe_unused]] const I nib = O::Set8(0x0F);
  [[maybe_unused]] const I nibHi = O::Set8(static_cast<char>(0xF0));
  [[maybe_unused]] const I flip = O::Set8(static_cast<char>(0x80));
  const char *pf = reinterpret_cast<const char *>(wb) + p.prefetch;
  F ws[NH];
  int64_t left = 0; // blocks left in the current scale group
  for (int64_t b = 0; b < blocks; ++b, wb += kBlockBytes, pf += kBlockBytes) {
    if (left == 0) {
      for (int h = 0; h < NH; ++h)
        ws[h] = kF16 ? O::StripScalesF16(sh + h * L) : O::LoadF(sf + h * L);
      sh += 16;
      sf += 16;
      left = blocksPerGroup;
    }
    --left;
    if constexpr (kInt8) {
      for (int k = 0; k < 8; ++k)
        _mm_prefetch(pf + k * 64, _MM_HINT_T1);
      for (int r = 0; r < R; ++r) {
        const int8_t *x = xb[r] + 32 * b;
        const F xs = O::Set(xsp[r][b]);
#if HWY_TARGET != HWY_AVX3_DL
        I xd[8];
        for (int v = 0; v < 8; ++v)
          xd[v] = O::Bcast32(x + 4 * v);
#endif
        for (int h = 0; h < NH; ++h) {
#if HWY_TARGET == HWY_AVX3_DL
          I d0 = O::Set32(cp[r][b]), d1 = O::Zero();
          for (int v = 0; v < 8; v += 2) {
            d0 = O::DotUBcast(d0, O::Xor(O::Load(wb + v * 64 + h * W), flip), x + 4 * v);
            d1 = O::DotUBcast(d1, O::Xor(O::Load(wb + (v + 1) * 64 + h * W), flip), x + 4 * v + 4);
          }
#else
          I d0 = O::Zero(), d1 = O::Zero();
          for (int v = 0; v < 8; v += 2) {
            d0 = O::Dot8(d0, O::Load(wb + v * 64 + h * W), xd[v]);
            d1 = O::Dot8(d1, O::Load(wb + (v + 1) * 64 + h * W), xd[v + 1]);
          }
#endif
          acc[r][h] = O::MulAdd(O::Cvt(O::Add32(d0, d1)), O::Mul(ws[h], xs), acc[r][h]);
        }
      }
      continue;
    }
    if (p.nta)
      for (int k = 0; k < 4; ++k)
        _mm_prefetch(pf + k * 64, _MM_HINT_NTA);
    else
      for (int k = 0; k < 4; ++k)
        _mm_prefetch(pf + k * 64, _MM_HINT_T0);
    I lo[4][NH], hi[4][NH];
    for (int v = 0; v < 4; ++v)
      for (int h = 0; h < NH; ++h) {
        I wv = O::Load(wb + v * 64 + h * W);
        asm("" : "+v"(wv)); // one load, not one folded into each And
        lo[v][h] = O::And(wv, nib);
        hi[v][h] = kVnni ? O::And(wv, nibHi) : O::And(O::Shr4(wv), nib);
      }
    for (int r = 0; r < R; ++r) {
#if HWY_TARGET != HWY_AVX3_DL // (AVX3_DL broadcasts inside vpdpbusd)
      I xd[8];
      for (int k = 0; k < 8; ++k)
        xd[k] = O::Bcast32(xb[r] + 32 * b + 4 * k);
#endif
      const F xs = O::Set(xsp[r][b]);
      const I corr = O::Set32(cp[r][b]);
      for (int h = 0; h < NH; ++h) {
        I dot;
#if HWY_TARGET == HWY_AVX3_DL
        I dl = corr, dh = O::Zero();
        for (int v = 0; v < 4; ++v) {
          dl = O::DotUBcast(dl, lo[v][h], xb[r] + 32 * b + 8 * v);
          dh = O::DotUBcast(dh, hi[v][h], xb[r] + 32 * b + 8 * v + 4);
        }
        dot = O::Add32(dl, O::Sar4(dh));
#else
        I p16 = O::Maddubs(lo[0][h], xd[0]);
        p16 = O::Add16(p16, O::Maddubs(hi[0][h], xd[1]));
        for (int v = 1; v < 4; ++v) {
          p16 = O::Add16(p16, O::Maddubs(lo[v][h], xd[2 * v]));
          p16 = O::Add16(p16, O::Maddubs(hi[v][h], xd[2 * v + 1]));
        }
        dot = O::Add32(corr, O::Madd1(p16));
#endif
        acc[r][h] = O::MulAdd(O::Cvt(dot), O::Mul(ws[h], xs), acc[r][h]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int h = 0; h < NH; ++h)
      O::StoreF(out + r * 16 + h * L, acc[r][h]);
}
#endif

// Scalar version of the same math (same int32 block dots); int8 bytes are
// used signed, without the VNNI offset and its correction.
template <int R, bool kInt8>
HWY_INLINE void StripScalar(const Plan &p, int64_t s, int64_t r0, float *out) {
  const LinearArgs &a = *p.a;
  const int64_t in = a.in, groups = p.groupsPerRow, blockBytes = kInt8 ? 512 : 256;
  const uint8_t *w = static_cast<const uint8_t *>(a.w) + s * (in / 32) * blockBytes;
  for (int64_t l = 0; l < 16; ++l)
    for (int r = 0; r < R; ++r) {
      float acc = 0.0f;
      for (int64_t b = 0; b < in / 32; ++b) {
        const int8_t *xb = p.xq + (r0 + r) * in + b * 32;
        const int64_t xi = (r0 + r) * p.lanes + b;
        const uint8_t *wb = w + b * blockBytes;
        int32_t dot = kInt8 ? 0 : p.corr[xi];
        for (int v = 0; v < (kInt8 ? 8 : 4); ++v)
          for (int j = 0; j < 4; ++j) {
            const uint8_t byte = wb[v * 64 + l * 4 + j];
            if (kInt8)
              dot += static_cast<int8_t>(byte) * xb[4 * v + j];
            else
              dot += (byte & 0x0F) * xb[8 * v + j] + (byte >> 4) * xb[8 * v + 4 + j];
          }
        const float ws = scaleAt(a, (s * groups + b * 32 / a.group) * 16 + l);
        acc += static_cast<float>(dot) * (ws * p.xs[xi]);
      }
      out[r * 16 + l] = acc;
    }
}

template <int R, bool kInt8>
HWY_INLINE void StripKind(const Plan &p, int64_t s, int64_t r0, float *out) {
#if KILN_Q_WIDTH == 64
  p.a->scalesF16 ? StripSimd<O512, R, true, kInt8>(p, s, r0, out)
                 : StripSimd<O512, R, false, kInt8>(p, s, r0, out);
#elif KILN_Q_WIDTH == 32
  p.a->scalesF16 ? StripSimd<O256, R, true, kInt8>(p, s, r0, out)
                 : StripSimd<O256, R, false, kInt8>(p, s, r0, out);
#elif KILN_Q_WIDTH == 16
  p.a->scalesF16 ? StripSimd<O128, R, true, kInt8>(p, s, r0, out)
                 : StripSimd<O128, R, false, kInt8>(p, s, r0, out);
#else
  StripScalar<R, kInt8>(p, s, r0, out);
#endif
}

template <int R>
HWY_INLINE void Strip(const Plan &p, int64_t s, int64_t r0, float *out) {
  if (p.a->kind == WeightKind::Int8)
    StripKind<R, true>(p, s, r0, out);
  else
    StripKind<R, false>(p, s, r0, out);
}

// Strips [s0, s1) for all x rows.
void StripRange(const Plan &p, int64_t s0, int64_t s1) {
  const LinearArgs &a = *p.a;
  alignas(64) float v[4 * 16];
  for (int64_t s = s0; s < s1; ++s) {
    for (int64_t r = 0; r < a.rows;) {
      const int64_t n = std::min<int64_t>(4, a.rows - r);
      if (n == 4)
        Strip<4>(p, s, r, v);
      else if (n == 3)
        Strip<3>(p, s, r, v);
      else if (n == 2)
        Strip<2>(p, s, r, v);
      else
        Strip<1>(p, s, r, v);
      for (int64_t k = 0; k < n; ++k) {
        float *y = a.y + (r + k) * a.ldy + s * 16;
        for (int64_t l = 0; l < 16; ++l)
          y[l] = v[k * 16 + l] + (a.bias ? a.bias[s * 16 + l] : 0.0f);
      }
      r += n;
    }
  }
}

/// Quantizes x[0, in) (in % 32 == 0) to q (column order) with block scales
/// bs[b] = max|x_b| / 127; false if some value is inf or nan.
bool QuantizeRow(const float *HWY_RESTRICT x, int64_t in, int8_t *HWY_RESTRICT q,
                 float *HWY_RESTRICT bs) {
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<int8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto finite = hn::Zero(d); // sum of x * 0: nan once any x is inf or nan
  const auto lo = hn::Set(di, -127), hi = hn::Set(di, 127);
  for (int64_t b = 0; b < in; b += kQuantBlock) {
    auto m = hn::Zero(d);
    for (int64_t c = 0; c < kQuantBlock; c += N) {
      const auto v = hn::LoadU(d, x + b + c);
      m = hn::Max(m, hn::Abs(v));
      finite = hn::MulAdd(v, hn::Zero(d), finite);
    }
    const float mx = hn::GetLane(hn::MaxOfLanes(d, m));
    const auto inv = hn::Set(d, mx > 0.0f ? 127.0f / mx : 0.0f);
    for (int64_t c = 0; c < kQuantBlock; c += N) {
      const auto qi = hn::Min(hn::Max(hn::NearestInt(hn::Mul(hn::LoadU(d, x + b + c), inv)), lo), hi);
      hn::StoreU(hn::DemoteTo(d8, qi), d8, q + b + c);
    }
    bs[b / kQuantBlock] = mx / 127.0f;
  }
  return hn::GetLane(hn::SumOfLanes(d, finite)) == 0.0f;
}

/// Chunk bytes of this target's main loop (int4 x layout); 16 for scalar.
int64_t QuantWidth() { return KILN_Q_WIDTH == 0 ? 16 : KILN_Q_WIDTH; }

void QuantRange(const Plan &p, int64_t o0, int64_t o1) {
  const LinearArgs &a = *p.a;
  const bool i4 = a.kind == WeightKind::Int4;
  const int64_t W = QuantWidth(), C = i4 ? 2 * W : W;
  // How the weight scale varies over a main chunk of C columns: not at all
  // (one scale per row), once per chunk (group % C == 0), G = C / group = 2
  // or 4 groups per chunk (expanded in registers) or irregularly (group 96,
  // or 8 groups per chunk: scales gathered lane by lane).
  int mode = kGeneric;
  if (a.group == a.in)
    mode = kPerRow;
  else if (a.group % C == 0)
    mode = kPerChunk;
  else if (C == 2 * a.group)
    mode = kExpand2;
  else if (C == 4 * a.group)
    mode = kExpand4;
  switch (mode * 2 + (i4 ? 1 : 0)) {
  case kPerRow * 2: RangeT<false, kPerRow>(p, o0, o1); break;
  case kPerRow * 2 + 1: RangeT<true, kPerRow>(p, o0, o1); break;
  case kPerChunk * 2: RangeT<false, kPerChunk>(p, o0, o1); break;
  case kPerChunk * 2 + 1: RangeT<true, kPerChunk>(p, o0, o1); break;
  case kExpand2 * 2: RangeT<false, kExpand2>(p, o0, o1); break;
  case kExpand2 * 2 + 1: RangeT<true, kExpand2>(p, o0, o1); break;
  case kExpand4 * 2: RangeT<false, kExpand4>(p, o0, o1); break;
  case kExpand4 * 2 + 1: RangeT<true, kExpand4>(p, o0, o1); break;
  case kGeneric * 2: RangeT<false, kGeneric>(p, o0, o1); break;
  default: RangeT<true, kGeneric>(p, o0, o1); break;
  }
}

const char *QuantTargetNameImpl() { return hwy::TargetName(HWY_TARGET); }

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

HWY_EXPORT(QuantWidth);
HWY_EXPORT(QuantizeRow);
HWY_EXPORT(QuantRange);
HWY_EXPORT(StripRange);
HWY_EXPORT(QuantTargetNameImpl);

namespace {

// Quantizes the rows of a.x (see the top of this file) for main chunks of W
// bytes. Returns false if some x value is not finite (the f32 path then keeps
// inf / nan semantics).
bool prepare(const LinearArgs &a, int64_t W, int8_t *xq, float *xs, int32_t *corr,
             int8_t *tmp, float *blockScale) {
  if (a.strip16) { // column order, one scale and correction per 32-column block
    // (correction: -8 (int4 nibbles) or -128 (int8 bytes with VNNI) * block sum)
    const int64_t blocks = a.in / kQuantBlock;
    for (int64_t r = 0; r < a.rows; ++r) {
      int8_t *q = xq + r * a.in;
      if (!HWY_DYNAMIC_DISPATCH(QuantizeRow)(a.x + r * a.in, a.in, q, xs + r * blocks))
        return false;
      for (int64_t b = 0; b < blocks; ++b) {
        int32_t sum = 0;
        for (int64_t k = 0; k < kQuantBlock; ++k)
          sum += q[b * kQuantBlock + k];
        corr[r * blocks + b] = (a.kind == WeightKind::Int4 ? -8 : -128) * sum;
      }
    }
    return true;
  }
  const bool i4 = a.kind == WeightKind::Int4;
  const int64_t in = a.in, lanes = i4 ? in / 8 : in / 4, lanesPerBlock = i4 ? 4 : 8;
  const int64_t perLane = i4 ? 8 : 4, offset = i4 ? 8 : 128;
  for (int64_t r = 0; r < a.rows; ++r) {
    const float *x = a.x + r * in;
    int8_t *q = i4 ? tmp : xq + r * in;
    float *xsr = xs + r * lanes;
    int32_t *cr = corr + r * lanes;
    if (!HWY_DYNAMIC_DISPATCH(QuantizeRow)(x, in, q, blockScale))
      return false;
    for (int64_t l = 0; l < lanes; ++l) {
      xsr[l] = blockScale[l / lanesPerBlock];
      int32_t sum = 0;
      for (int64_t k = 0; k < perLane; ++k)
        sum += q[l * perLane + k];
      cr[l] = -offset * sum;
    }
    if (i4) { // per chunk [even | odd]: chunks of 2W columns, then of 32
      int8_t *dst = xq + r * in;
      int64_t c0 = 0;
      for (int64_t chunk : {2 * W, int64_t{32}}) {
        const int64_t half = chunk / 2;
        for (; c0 + chunk <= in; c0 += chunk)
          for (int64_t j = 0; j < half; ++j) {
            dst[c0 + j] = q[c0 + 2 * j];
            dst[c0 + half + j] = q[c0 + 2 * j + 1];
          }
      }
    }
  }
  return true;
}

// Software prefetch distance along the weights: hardware prefetching alone
// left DRAM bandwidth unused. int4 (more work per byte): 2 KB ahead into L1
// (1 / 2 / 4 / 8 KB gave int4 decode 202 / 221 / 196 / 171 t/s per core; into
// L2 or further ahead was slower). int8: 8 KB ahead into L2 (one 125M layer from
// DRAM, 2 threads, best of 20: 18.5-19.7 GB/s at 2 KB into L1, 26.5-27.4 at 4 KB
// into L2, 28-29 at 8 KB, no better at 16 KB), docs/runtime-kernels.md.
// Int8Strip16: 4 KB ahead into L2 (125M int8 decode, 2 threads, best of 8
// alternating runs: 297.6 / 299.3 / 247.3 t/s at 2 / 4 / 8 KB; 277.2 with T0 at 4 KB).
// int4 weights that no later call reads again (LinearArgs::weightReadAgain
// false: every weight of a plain decode step) are prefetched with the NTA hint
// on AMD only (quantStreamsNonTemporal; docs/runtime-kernels.md "Weights in
// cache"): on Zen 4 it measured +2.5-10 % (125M int4 decode), on an Intel Xeon
// with AMX (Sapphire Rapids class, 2 MB L2 per core) 2.7x slower (173 vs 477
// t/s, alternating best of 3; the strip micro-benchmark streams 8-36 GB/s with
// NTA vs 15-58 GB/s with T0 in every working set). Elsewhere: T0.
constexpr int64_t kPrefetchBytesInt4 = 2048;
constexpr int64_t kPrefetchBytesInt8 = 8192;
constexpr int64_t kPrefetchBytesInt8Strip = 4096;

struct Buffers {
  std::vector<int8_t> xq, tmp;
  std::vector<float> xs, blockScale;
  std::vector<int32_t> corr;
};

} // namespace

bool quantGemvApplies(const LinearArgs &a) {
  if (a.strip16)
    return (a.kind == WeightKind::Int4 || a.kind == WeightKind::Int8) && a.rows >= 1 && a.rows <= kQuantGemvMaxRows &&
           strip16::applies(a.out, a.in, a.group);
  return (a.kind == WeightKind::Int8 || a.kind == WeightKind::Int4) && a.rows >= 1 &&
         a.rows <= kQuantGemvMaxRows && a.in > 0 && a.in % kQuantBlock == 0 && a.group > 0 &&
         a.group % kQuantBlock == 0 && a.in % a.group == 0;
}

bool quantLinearGroupApplies(const LinearArgs *const *as, int64_t n) {
  if (n < 1 || n > kMaxLinearGroup || !quantGemvApplies(*as[0]))
    return false;
  const LinearArgs &a = *as[0];
  for (int64_t i = 1; i < n; ++i) {
    const LinearArgs &b = *as[i];
    if (!quantGemvApplies(b) || b.x != a.x || b.rows != a.rows || b.in != a.in ||
        b.kind != a.kind || b.strip16 != a.strip16)
      return false;
  }
  return true;
}

bool quantLinearGroup(const LinearArgs *const *as, int64_t n, ThreadPool *pool) {
  static thread_local Buffers buf;
  const LinearArgs &a = *as[0];
  const bool i4 = a.kind == WeightKind::Int4;
  const int64_t lanes = i4 ? a.in / 8 : a.in / 4;
  const size_t nx = static_cast<size_t>(a.rows * a.in), nl = static_cast<size_t>(a.rows * lanes);
  if (buf.xq.size() < nx)
    buf.xq.resize(nx);
  if (buf.tmp.size() < static_cast<size_t>(a.in)) {
    buf.tmp.resize(static_cast<size_t>(a.in));
    buf.blockScale.resize(static_cast<size_t>(a.in / kQuantBlock));
  }
  if (buf.xs.size() < nl) {
    buf.xs.resize(nl);
    buf.corr.resize(nl);
  }
  // x is quantized once for every member (they share x, rows, in and kind).
  const int64_t W = HWY_DYNAMIC_DISPATCH(QuantWidth)();
  if (!prepare(a, W, buf.xq.data(), buf.xs.data(), buf.corr.data(), buf.tmp.data(),
               buf.blockScale.data()))
    return false;
  quant::Plan plans[kMaxLinearGroup];
  int64_t units[kMaxLinearGroup], total = 0;
  for (int64_t i = 0; i < n; ++i) {
    quant::Plan &p = plans[i];
    p.a = as[i];
    p.xq = buf.xq.data();
    p.xs = buf.xs.data();
    p.corr = buf.corr.data();
    p.lanes = a.strip16 ? a.in / kQuantBlock : lanes;
    p.rowBytes = i4 ? a.in / 2 : a.in;
    p.groupsPerRow = a.in / as[i]->group;
    p.prefetch = i4 ? kPrefetchBytesInt4 : a.strip16 ? kPrefetchBytesInt8Strip : kPrefetchBytesInt8;
    p.nta = quantStreamsNonTemporal() && !as[i]->weightReadAgain;
    // Work units: strips of 16 output channels (strip layouts) or channels.
    units[i] = a.strip16 ? as[i]->out / strip16::kChannels : as[i]->out;
    total += units[i];
  }
  // Units [b, e) of the members laid end to end, each piece in its own range call.
  auto runUnits = [&](int64_t b, int64_t e) {
    for (int64_t i = 0, base = 0; i < n && base < e; base += units[i], ++i) {
      const int64_t lo = std::max(b, base) - base, hi = std::min(e, base + units[i]) - base;
      if (lo >= hi)
        continue;
      if (a.strip16)
        HWY_DYNAMIC_DISPATCH(StripRange)(plans[i], lo, hi);
      else
        HWY_DYNAMIC_DISPATCH(QuantRange)(plans[i], lo, hi);
    }
  };
  if (!pool || pool->numThreads() <= 1) {
    runUnits(0, total);
    return true;
  }
  // Tasks of at least ~16 KiB of weights (a few microseconds each).
  const int64_t unitBytes = plans[0].rowBytes * (a.strip16 ? strip16::kChannels : 1);
  const int64_t grain = std::max<int64_t>(1, (16 * 1024) / std::max<int64_t>(1, unitBytes));
  pool->parallelFor(total, grain, runUnits);
  return true;
}

bool quantLinear(const LinearArgs &a, ThreadPool *pool) {
  const LinearArgs *one = &a;
  return quantLinearGroup(&one, 1, pool);
}

const char *quantTargetName() { return HWY_DYNAMIC_DISPATCH(QuantTargetNameImpl)(); }

bool quantStreamsNonTemporal() {
  static const bool amd = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx))
      return false;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::strcmp(vendor, "AuthenticAMD") == 0;
  }();
  return amd;
}

} // namespace opt
} // namespace rt
} // namespace kiln
#endif // HWY_ONCE
