// Highway implementation of OptGemm.h, compiled once per SIMD target through
// hwy/foreach_target.h (per-target code in kiln::rt::opt::HWY_NAMESPACE, the
// dispatcher at the bottom under HWY_ONCE).
//
// Data flow of one call, for chunks of at most ~128K floats of x:
//  1. x rows [r0, r0 + nr) are packed into blocks of R = kRV * lanes rows laid
//     out xp[block][k][R] (row r of the block in lane r % lanes of vector r /
//     lanes; rows past the end are zeros). For int4 the k order is [even columns
//     | odd columns] so that a weight byte's low nibbles land in the first half
//     and its high nibbles in the second (the sum over k does not care about the
//     order). On AVX-512, 16 x 16 blocks are transposed in registers.
//  2. Output channels are taken in groups of kNO. A task dequantizes its group's
//     kNO weight rows into per-thread f32 scratch (f32 weights are read in
//     place) and prefetches the next group's rows, then for every row block runs
//     the microkernel: for each k, load kRV vectors of x (kRV * lanes rows),
//     broadcast each of the kNO weights w[o][k] and FMA into kNO x kRV
//     accumulators, which stay in registers for the whole k loop (one sequential
//     f32 sum per output, no horizontal reductions). Tiles go to a per-thread
//     stage and from there (transposed in registers on AVX-512) to y with the bias.
//  With a pool, each chunk is one pool job: every thread claims k pieces of the
//  packing from an atomic counter, waits until all are packed, then claims
//  strips of channel groups until none is left.
#include "runtime-stub/kernels/opt/OptGemm.h"
#include "runtime-stub/kernels/opt/OptQuant.h" // kMaxLinearGroup

// SVE/RVV vectors are sizeless and cannot live in the accumulator arrays below;
// on those machines NEON (or the baseline) is used.
#ifndef HWY_DISABLED_TARGETS
#define HWY_DISABLED_TARGETS (HWY_SVE | HWY_SVE2 | HWY_SVE_256 | HWY_SVE2_128 | HWY_RVV)
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime-stub/kernels/opt/OptGemm.cpp"
#include "hwy/foreach_target.h" // IWYU pragma: keep
#include "hwy/cache_control.h"
#include "hwy/highway.h"

#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/QuantLayout.h"
#include "runtime-stub/core/ThreadPool.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#ifndef KILN_OPT_GEMM_SHARED
#define KILN_OPT_GEMM_SHARED
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
namespace kiln {
namespace rt {
namespace opt {
namespace gemm_detail {

// Per-thread scratch, grown on first use and kept (no allocation per call once
// warm): slot 0 = packed x (calling thread), slot 1 = dequantized weight rows,
// slot 2 = output stage, slot 3 = one weight row's f32 group scales.
// The returned pointer is 64-byte aligned.
inline float *scratch(int slot, size_t floats) {
  thread_local std::vector<float> buf[4];
  std::vector<float> &b = buf[slot];
  if (b.size() < floats + 16)
    b.resize(floats + 16);
  const uintptr_t p = reinterpret_cast<uintptr_t>(b.data());
  return b.data() + ((64 - p % 64) % 64) / sizeof(float);
}

// Floats of x per chunk (~512 KiB: packed x stays in L2 while every channel
// group of the chunk streams over it).
constexpr int64_t kChunkFloats = 128 * 1024;
// Weights above this size are taken to come from DRAM (Groups).
constexpr int64_t kBigWeightBytes = 16 << 20;
// Parallel calls: floats of packed x per claimed packing piece, and strips of
// channel groups per thread (at least; strips have at most kStrip groups).
constexpr int64_t kPackPieceFloats = 4096;
constexpr int64_t kStripsPerThread = 4;

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__) || defined(__arm__)
  asm volatile("yield" ::: "memory");
#endif
}

} // namespace gemm_detail
} // namespace opt
} // namespace rt
} // namespace kiln
#endif // KILN_OPT_GEMM_SHARED

// GCC 12 flags the `__Y = __Y` idiom inside the AVX-512 unpack / shuffle
// intrinsics (Transpose16) as maybe-uninitialized once they are inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
HWY_BEFORE_NAMESPACE();
namespace kiln {
namespace rt {
namespace opt {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
namespace gd = gemm_detail;

// Register tile: kRV vectors of rows x kNO output channels of accumulators, plus
// kRV x vectors and one broadcast live at a time. AVX-512 has 32 registers
// (24 + 4 + 1), the other targets 16 (12 + 2 + 1) or more.
#if HWY_TARGET <= HWY_AVX3
constexpr int kRV = 4;
#else
constexpr int kRV = 2;
#endif
constexpr int kNO = 6;
constexpr int64_t kStrip = 8; // channel groups staged before they are written to y

// (Re-defined for every target pass of foreach_target.)
#undef KILN_GEMM_AVX512_TRANSPOSE
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define KILN_GEMM_AVX512_TRANSPOSE 1
// In-register transpose of a 16 x 16 block: on return v[c] holds element c of
// every input vector (v[c][r] = old v[r][c]). 32 unpacks + 32 128-bit shuffles.
inline void Transpose16(__m512 v[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
  }
  // u[4i + j], 128-bit block L: column 4L + j of rows 4i .. 4i + 3.
  __m512 u[16];
  for (int i = 0; i < 4; ++i) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 1]), e = _mm512_castps_pd(t[4 * i + 3]);
    u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, e));
    u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, e));
  }
  for (int j = 0; j < 4; ++j) {
    const __m512 p = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);
    const __m512 q = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);
    const __m512 s = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    const __m512 w = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
    v[j] = _mm512_shuffle_f32x4(p, s, 0x88);
    v[8 + j] = _mm512_shuffle_f32x4(p, s, 0xDD);
    v[4 + j] = _mm512_shuffle_f32x4(q, w, 0x88);
    v[12 + j] = _mm512_shuffle_f32x4(q, w, 0xDD);
  }
}
#endif

using MicroFn = void (*)(const float *, const float *, int64_t, int64_t, float *, int64_t,
                         const char *, int64_t);

// tile[j * ldt + i * N + lane] = sum_k xp[k * R + i * N + lane] * w[j * ldw + k]
// for j < NO, i < RV (R = kRV * N; xp, tile and ldt aligned to whole vectors).
// When pf is non-null, the pfLines cache lines from pf (the next group's weights)
// are prefetched, one every two k steps, so they arrive from DRAM while this runs.
template <int RV, int NO>
HWY_NOINLINE void Micro(const float *HWY_RESTRICT xp, const float *HWY_RESTRICT w, int64_t ldw,
                        int64_t K, float *HWY_RESTRICT tile, int64_t ldt, const char *pf,
                        int64_t pfLines) {
  const hn::ScalableTag<float> d;
  using V = decltype(hn::Zero(d));
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t R = kRV * N;
  const float *HWY_RESTRICT wr[NO];
  for (int j = 0; j < NO; ++j)
    wr[j] = w + j * ldw;
  V acc[NO][RV];
  for (int j = 0; j < NO; ++j)
    for (int i = 0; i < RV; ++i)
      acc[j][i] = hn::Zero(d);
  for (int64_t k = 0; k < K; ++k) {
    if (pf && (k & 1) == 0 && (k >> 1) < pfLines)
      hwy::Prefetch(pf + (k >> 1) * 64);
    const float *HWY_RESTRICT xk = xp + k * R;
    V xv[RV];
    for (int i = 0; i < RV; ++i)
      xv[i] = hn::Load(d, xk + i * N);
    for (int j = 0; j < NO; ++j) {
      const V wb = hn::Set(d, wr[j][k]);
      for (int i = 0; i < RV; ++i)
        acc[j][i] = hn::MulAdd(xv[i], wb, acc[j][i]);
    }
  }
  for (int j = 0; j < NO; ++j)
    for (int i = 0; i < RV; ++i)
      hn::Store(acc[j][i], d, tile + j * ldt + i * N);
}

template <int RV> MicroFn PickNo(int64_t no) {
  static_assert(kNO == 6, "PickNo lists 1..6 channels");
  switch (no) {
  case 1: return &Micro<RV, 1>;
  case 2: return &Micro<RV, 2>;
  case 3: return &Micro<RV, 3>;
  case 4: return &Micro<RV, 4>;
  case 5: return &Micro<RV, 5>;
  default: return &Micro<RV, 6>;
  }
}

MicroFn Pick(int64_t rv, int64_t no) {
#if HWY_TARGET <= HWY_AVX3
  static_assert(kRV == 4, "Pick lists 1..4 row vectors");
  switch (rv) {
  case 1: return PickNo<1>(no);
  case 2: return PickNo<2>(no);
  case 3: return PickNo<3>(no);
  default: return PickNo<4>(no);
  }
#else
  static_assert(kRV == 2, "Pick lists 1..2 row vectors");
  return rv == 1 ? PickNo<1>(no) : PickNo<2>(no);
#endif
}

// The group scales of weight row o as f32: the f32 scales in place, f16 ones
// converted (whole vectors at a time) into buf (in / group floats).
const float *RowScales(const LinearArgs &a, int64_t o, float *HWY_RESTRICT buf) {
  const int64_t n = a.in / a.group;
  if (!a.scalesF16)
    return static_cast<const float *>(a.scales) + o * n;
  const hn::ScalableTag<float> d;
  const hn::Rebind<hwy::float16_t, decltype(d)> dh;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const uint16_t *HWY_RESTRICT src = static_cast<const uint16_t *>(a.scales) + o * n;
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t *>(src + i))),
               d, buf + i);
  for (; i < n; ++i)
    buf[i] = halfToFloat(src[i]);
  return buf;
}

// dst[c] = q[c] * scale(c / group) for one int8 weight row.
void DequantInt8Row(const LinearArgs &a, int64_t o, float *HWY_RESTRICT dst,
                    float *HWY_RESTRICT scaleBuf) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<int8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t in = a.in, group = a.group;
  const int8_t *HWY_RESTRICT q = static_cast<const int8_t *>(a.w) + o * in;
  const float *HWY_RESTRICT sc = RowScales(a, o, scaleBuf);
  for (int64_t c0 = 0, g = 0; c0 < in; c0 += group, ++g) {
    const int64_t c1 = c0 + group;
    const float s = sc[g];
    const auto vs = hn::Set(d, s);
    int64_t c = c0;
    for (; c + N <= c1; c += N)
      hn::StoreU(hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q + c))), vs), d,
                 dst + c);
    for (; c < c1; ++c)
      dst[c] = static_cast<float>(q[c]) * s;
  }
}

// One int4 weight row in split order: dst[b] = low nibble of byte b, dst[half + b]
// = its high nibble (elements 2b and 2b + 1), each times its group's scale.
// A nibble n is the signed value (n ^ 8) - 8, and ((n ^ 8) - 8) * s is computed
// as the fused (n ^ 8) * s - 8 s (the same single rounding: 8 s is exact).
void DequantInt4Row(const LinearArgs &a, int64_t o, float *HWY_RESTRICT dst,
                    float *HWY_RESTRICT scaleBuf) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t in = a.in, half = in / 2, groupBytes = a.group / 2;
  const uint8_t *HWY_RESTRICT q = static_cast<const uint8_t *>(a.w) + o * half;
  const float *HWY_RESTRICT sc = RowScales(a, o, scaleBuf);
  const auto mask = hn::Set(di, 0x0F), flip = hn::Set(di, 0x88);
  for (int64_t b0 = 0, g = 0; b0 < half; b0 += groupBytes, ++g) {
    const int64_t b1 = b0 + groupBytes;
    const float s = sc[g];
    const auto vs = hn::Set(d, s), v8s = hn::Set(d, 8.0f * s);
    int64_t b = b0;
    for (; b + N <= b1; b += N) {
      const auto u = hn::Xor(hn::PromoteTo(di, hn::LoadU(d8, q + b)), flip);
      hn::StoreU(hn::MulSub(hn::ConvertTo(d, hn::And(u, mask)), vs, v8s), d, dst + b);
      hn::StoreU(hn::MulSub(hn::ConvertTo(d, hn::ShiftRight<4>(u)), vs, v8s), d, dst + half + b);
    }
    for (; b < b1; ++b) {
      dst[b] = static_cast<float>(((q[b] & 0x0F) ^ 8) - 8) * s;
      dst[half + b] = static_cast<float>(((q[b] >> 4) ^ 8) - 8) * s;
    }
  }
}

// One Int4Strip16 weight row (core/QuantLayout.h) in column order: a block's
// 4 bytes per vector are spread to 8 nibbles (32 per block), then widened like
// DequantInt4Row (stored nibbles are already unsigned n + 8).
void DequantStrip16Row(const LinearArgs &a, int64_t o, float *HWY_RESTRICT dst) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t in = a.in, groups = in / a.group, lane = o % strip16::kChannels;
  const uint8_t *HWY_RESTRICT strip =
      static_cast<const uint8_t *>(a.w) + (o / strip16::kChannels) * strip16::kChannels * (in / 2);
  alignas(64) uint8_t nib[strip16::kBlockCols];
  alignas(16) uint32_t words[4];
#if HWY_TARGET != HWY_SCALAR
  const hn::Full128<uint32_t> d32;
  const auto nibMask = hn::Set(d32, 0x0F0F0F0Fu);
#endif
  for (int64_t c0 = 0; c0 < in; c0 += strip16::kBlockCols) {
    const int64_t b = c0 / strip16::kBlockCols;
    for (int64_t v = 0; v < 4; ++v)
      std::memcpy(&words[v], strip + ((b * 4 + v) * strip16::kChannels + lane) * 4, 4);
    // words[v] holds columns 8v..8v+3 (low nibbles) and 8v+4..8v+7 (high).
#if HWY_TARGET != HWY_SCALAR
    const auto w = hn::Load(d32, words);
    const auto lo = hn::And(w, nibMask), hi = hn::And(hn::ShiftRight<4>(w), nibMask);
    hn::Store(hn::InterleaveLower(d32, lo, hi), d32, reinterpret_cast<uint32_t *>(nib));
    hn::Store(hn::InterleaveUpper(d32, lo, hi), d32, reinterpret_cast<uint32_t *>(nib + 16));
#else
    for (int64_t v = 0; v < 4; ++v) {
      const uint32_t lo = words[v] & 0x0F0F0F0Fu, hi = (words[v] >> 4) & 0x0F0F0F0Fu;
      std::memcpy(nib + v * 8, &lo, 4);
      std::memcpy(nib + v * 8 + 4, &hi, 4);
    }
#endif
    const float sc = scaleAt(a, strip16::scaleIndex(groups, o, c0 / a.group));
    const auto vs = hn::Set(d, sc), v8s = hn::Set(d, 8.0f * sc);
    for (int64_t k = 0; k < strip16::kBlockCols; k += N)
      hn::StoreU(hn::MulSub(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, nib + k))), vs, v8s),
                 d, dst + c0 + k);
  }
}

// One Int8Strip16 weight row (core/QuantLayout.h) in column order: a block's
// 8 dwords (4 columns each, 64 bytes apart) gathered, then widened like
// DequantInt8Row.
void DequantStrip8Row(const LinearArgs &a, int64_t o, float *HWY_RESTRICT dst) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<int8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t in = a.in, groups = in / a.group, lane = o % strip16::kChannels;
  const uint8_t *HWY_RESTRICT strip =
      static_cast<const uint8_t *>(a.w) + (o / strip16::kChannels) * strip16::kChannels * in;
  alignas(64) int8_t q[strip16::kBlockCols];
  for (int64_t c0 = 0; c0 < in; c0 += strip16::kBlockCols) {
    for (int64_t k = 0; k < strip16::kBlockCols / 4; ++k)
      std::memcpy(q + 4 * k, strip + ((c0 / 4 + k) * strip16::kChannels + lane) * 4, 4);
    const auto vs = hn::Set(d, scaleAt(a, strip16::scaleIndex(groups, o, c0 / a.group)));
    for (int64_t k = 0; k < strip16::kBlockCols; k += N)
      hn::StoreU(hn::Mul(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, q + k))), vs), d,
                 dst + c0 + k);
  }
}

// Packs k in [k0, k1) of x rows [r0, r0 + nr) into xp (layout in the header).
void PackX(const LinearArgs &a, int64_t r0, int64_t nr, float *HWY_RESTRICT xp, int64_t k0,
           int64_t k1) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t R = kRV * N, K = a.in, half = K / 2;
  const bool split = a.kind == WeightKind::Int4 && !a.strip16; // strip16 rows: column order
  for (int64_t b = 0; b * R < nr; ++b) {
    float *HWY_RESTRICT blk = xp + b * K * R;
    const int64_t rows = std::min(R, nr - b * R);
    int64_t rr0 = 0; // rows below rr0 are packed for all k in [k0, k1)
#ifdef KILN_GEMM_AVX512_TRANSPOSE
    // Whole 16-row vectors: 16 x 16 blocks of x transposed in registers (the
    // scalar loop below stores one float at a time, 64 floats apart). int4's
    // split order packs two segments, packed k in [0, half) from the even
    // columns 2k and [half, K) from the odd ones 2(k - half) + 1: 32 columns are
    // loaded and the even or odd 16 picked with one permute.
    const __m512i pickEven = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6,
                                              4, 2, 0);
    const __m512i pickOdd = _mm512_add_epi32(pickEven, _mm512_set1_epi32(1));
    for (; rr0 + 16 <= rows; rr0 += 16) {
      const float *HWY_RESTRICT src = a.x + (r0 + b * R + rr0) * K;
      for (int seg = 0; seg < (split ? 2 : 1); ++seg) {
        // Packed k in [s0, s1) of this segment; column of packed k: k - off
        // (f32 / int8) or 2 (k - off) + parity (int4).
        const int64_t s0 = std::max(k0, seg == 0 ? int64_t{0} : half);
        const int64_t s1 = std::min(k1, split && seg == 0 ? half : K);
        const int64_t off = seg == 0 ? 0 : half;
        int64_t k = s0;
        for (; k + 16 <= s1; k += 16) {
          __m512 v[16];
          if (!split) {
            for (int i = 0; i < 16; ++i)
              v[i] = _mm512_loadu_ps(src + i * K + k);
          } else {
            const __m512i pick = seg == 0 ? pickEven : pickOdd;
            for (int i = 0; i < 16; ++i) {
              const float *p = src + i * K + 2 * (k - off);
              v[i] = _mm512_permutex2var_ps(_mm512_loadu_ps(p), pick, _mm512_loadu_ps(p + 16));
            }
          }
          Transpose16(v);
          for (int i = 0; i < 16; ++i)
            _mm512_store_ps(blk + (k + i) * R + rr0, v[i]);
        }
        for (; k < s1; ++k)
          for (int64_t i = 0; i < 16; ++i)
            blk[k * R + rr0 + i] = split ? src[i * K + 2 * (k - off) + seg] : src[i * K + k];
      }
    }
#endif
    // k in slices of 32 so the slice of the block being written (32 x R floats)
    // stays in L1 while every row visits it.
    for (int64_t ks = k0; ks < k1; ks += 32) {
      const int64_t ke = std::min(k1, ks + 32);
      for (int64_t rr = rr0; rr < rows; ++rr) {
        const float *HWY_RESTRICT src = a.x + (r0 + b * R + rr) * K;
        if (!split) {
          for (int64_t k = ks; k < ke; ++k)
            blk[k * R + rr] = src[k];
        } else {
          for (int64_t k = ks; k < ke; ++k)
            blk[k * R + rr] = k < half ? src[2 * k] : src[2 * (k - half) + 1];
        }
      }
    }
    if (rows < R)
      for (int64_t k = k0; k < k1; ++k)
        std::memset(blk + k * R + rows, 0, static_cast<size_t>(R - rows) * sizeof(float));
  }
}

// Channel groups [g0, g1) for x rows [r0, r0 + nr) packed in xp.
void Groups(const LinearArgs &a, int64_t r0, int64_t nr, const float *xp, int64_t g0,
            int64_t g1) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t R = kRV * N, K = a.in;
  // Weights larger than the L3 (the LM head: 74 MB in f32) come from DRAM: f32
  // ones are copied group by group into scratch (one sequential stream instead
  // of six scalar broadcast streams in the microkernel).
  const int64_t rowBytes =
      a.kind == WeightKind::F32 ? K * 4 : a.kind == WeightKind::Int8 ? K : K / 2;
  const bool bigWeight = a.out * rowBytes > gd::kBigWeightBytes;
  const bool copyF32 = a.kind == WeightKind::F32 && bigWeight;
  float *deq = a.kind == WeightKind::F32 && !copyF32
                   ? nullptr
                   : gd::scratch(1, static_cast<size_t>(kNO * K));
  float *scaleBuf = a.kind == WeightKind::F32 ? nullptr : gd::scratch(3, static_cast<size_t>(K));
  // Tiles of a strip of kStrip groups are stored (whole vectors) into a small
  // per-thread stage [strip channel][row]; y then receives strip-wide row pieces
  // with the bias. Writing 6-float pieces straight into rows of a wide y (the LM
  // head: 128 KB apart) touched a page per row per group.
  const int64_t stripW = kStrip * kNO, nrPad = (nr + R - 1) / R * R;
  float *stage = gd::scratch(2, static_cast<size_t>(nrPad * stripW));
  for (int64_t gs = g0; gs < g1; gs += kStrip) {
    const int64_t ge = std::min(g1, gs + kStrip);
    for (int64_t g = gs; g < ge; ++g) {
      const int64_t o = g * kNO, no = std::min<int64_t>(kNO, a.out - o);
      const float *w = deq;
      if (a.kind == WeightKind::F32 && !copyF32) {
        w = static_cast<const float *>(a.w) + o * K;
      } else if (a.kind == WeightKind::F32) {
        std::memcpy(deq, static_cast<const float *>(a.w) + o * K,
                    static_cast<size_t>(no * K) * sizeof(float));
      } else {
        for (int64_t j = 0; j < no; ++j) {
          if (a.kind == WeightKind::Int8 && a.strip16)
            DequantStrip8Row(a, o + j, deq + j * K);
          else if (a.kind == WeightKind::Int8)
            DequantInt8Row(a, o + j, deq + j * K, scaleBuf);
          else if (a.strip16)
            DequantStrip16Row(a, o + j, deq + j * K);
          else
            DequantInt4Row(a, o + j, deq + j * K, scaleBuf);
        }
      }
      for (int64_t b = 0; b * R < nr; ++b) {
        const int64_t rows = std::min(R, nr - b * R), rv = (rows + N - 1) / N;
        // Prefetch the next group's weight rows during the first row block (a
        // burst of prefetches up front stalled). Every weight, not only the LM
        // head: a model's weights (125M: 53-425 MB) exceed the L3, so a prefill
        // chunk reads each linear's weights from DRAM (+4-8 % for 64 x 576 x 576
        // with weights cycled through 96 MB, neutral for L3-resident ones).
        const char *pf = nullptr;
        int64_t pfLines = 0;
        if (b == 0 && g + 1 < g1) {
          pf = static_cast<const char *>(a.w) + (o + kNO) * rowBytes;
          pfLines = (std::min<int64_t>(kNO, a.out - o - kNO) * rowBytes + 63) / 64;
        }
        Pick(rv, no)(xp + b * K * R, w, K, K, stage + (g - gs) * kNO * nrPad + b * R, nrPad, pf,
                     pfLines);
      }
    }
    const int64_t o0 = gs * kNO, width = std::min(a.out, ge * kNO) - o0;
#ifdef KILN_GEMM_AVX512_TRANSPOSE
    // 16 channels x 16 rows of the stage at a time, transposed in registers;
    // the stage holds whole row vectors (rows past nr are computed from zero
    // rows of x and not stored) and at least 16 * ceil(width / 16) channels.
    for (int64_t c0 = 0; c0 < width; c0 += 16) {
      const __mmask16 m = static_cast<__mmask16>(
          width - c0 >= 16 ? 0xFFFF : (1u << (width - c0)) - 1u);
      const __m512 bias =
          a.bias ? _mm512_maskz_loadu_ps(m, a.bias + o0 + c0) : _mm512_setzero_ps();
      for (int64_t rb = 0; rb < nr; rb += 16) {
        __m512 v[16];
        for (int i = 0; i < 16; ++i)
          v[i] = _mm512_load_ps(stage + (c0 + i) * nrPad + rb);
        Transpose16(v);
        const int64_t rows = std::min<int64_t>(16, nr - rb);
        for (int64_t i = 0; i < rows; ++i)
          _mm512_mask_storeu_ps(a.y + (r0 + rb + i) * a.ldy + o0 + c0, m,
                                _mm512_add_ps(v[i], bias));
      }
    }
    continue;
#endif
    for (int64_t r = 0; r < nr; ++r) {
      float *HWY_RESTRICT y = a.y + (r0 + r) * a.ldy + o0;
      const float *HWY_RESTRICT st = stage + r;
      if (a.bias) {
        for (int64_t c = 0; c < width; ++c)
          y[c] = st[c * nrPad] + a.bias[o0 + c];
      } else {
        for (int64_t c = 0; c < width; ++c)
          y[c] = st[c * nrPad];
      }
    }
  }
}

// The n members share x, rows, in, kind and layout (gemmGroup): x is packed
// once per row chunk for all of them, and their channel groups are laid end to
// end in one pool job. Each member's outputs are what a call of its own gives
// (the same packed x, the same groups of kNO channels).
void GemmImpl(const LinearArgs *const *as, int64_t n, ThreadPool *pool) {
  const LinearArgs &a = *as[0];
  if (n <= 0 || a.rows <= 0 || a.in <= 0)
    return;
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t R = kRV * N, K = a.in;
  const int64_t chunk = std::max<int64_t>(1, gd::kChunkFloats / (K * R)) * R;
  int64_t groups[kMaxLinearGroup], totalGroups = 0;
  for (int64_t i = 0; i < n; ++i) {
    groups[i] = (as[i]->out + kNO - 1) / kNO;
    totalGroups += groups[i];
  }
  const int64_t firstRows = std::min(chunk, a.rows);
  float *xp = gd::scratch(0, static_cast<size_t>(((firstRows + R - 1) / R) * R * K));
  const int threads = pool ? pool->numThreads() : 1;
  if (threads <= 1) {
    for (int64_t r0 = 0; r0 < a.rows; r0 += chunk) {
      const int64_t nr = std::min(chunk, a.rows - r0);
      PackX(a, r0, nr, xp, 0, K);
      for (int64_t i = 0; i < n; ++i)
        Groups(*as[i], r0, nr, xp, 0, groups[i]);
    }
    return;
  }
  // One pool job per chunk. Every participant first claims k pieces of the
  // packing until none is left and waits until all are packed (a piece is only
  // ever claimed by a running thread, so the wait ends), then claims strips of
  // channel groups until none is left. Claiming (instead of one fixed range per
  // thread) keeps both cores busy to the end when one of them is slowed down by
  // another process, and one hand-off per chunk replaces two.
  const int64_t pieceK = std::max<int64_t>(16, gd::kPackPieceFloats / std::max<int64_t>(1, firstRows));
  const int64_t pieces = (K + pieceK - 1) / pieceK;
  const int64_t strip = std::max<int64_t>(
      1, std::min<int64_t>(kStrip, totalGroups / (gd::kStripsPerThread * threads)));
  // Strips of the members laid end to end: member i owns [first[i], first[i + 1]).
  int64_t first[kMaxLinearGroup + 1];
  first[0] = 0;
  for (int64_t i = 0; i < n; ++i)
    first[i + 1] = first[i] + (groups[i] + strip - 1) / strip;
  const int64_t strips = first[n];
  for (int64_t r0 = 0; r0 < a.rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, a.rows - r0);
    std::atomic<int64_t> packNext{0}, packDone{0}, stripNext{0};
    pool->parallelFor(threads, 1, [&](int64_t, int64_t) {
      for (int64_t p; (p = packNext.fetch_add(1, std::memory_order_relaxed)) < pieces;) {
        PackX(a, r0, nr, xp, p * pieceK, std::min(K, (p + 1) * pieceK));
        packDone.fetch_add(1, std::memory_order_release);
      }
      while (packDone.load(std::memory_order_acquire) < pieces)
        gd::relax();
      for (int64_t s; (s = stripNext.fetch_add(1, std::memory_order_relaxed)) < strips;) {
        int64_t i = 0;
        while (s >= first[i + 1])
          ++i;
        const int64_t local = s - first[i];
        Groups(*as[i], r0, nr, xp, local * strip, std::min(groups[i], (local + 1) * strip));
      }
    });
  }
}

void GemmTileImpl(int64_t *rows, int64_t *channels) {
  *rows = kRV * static_cast<int64_t>(hn::Lanes(hn::ScalableTag<float>()));
  *channels = kNO;
}

// NOLINTNEXTLINE(google-readability-namespace-comments)
} // namespace HWY_NAMESPACE
} // namespace opt
} // namespace rt
} // namespace kiln
HWY_AFTER_NAMESPACE();
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#if HWY_ONCE
namespace kiln {
namespace rt {
namespace opt {

HWY_EXPORT(GemmImpl);
HWY_EXPORT(GemmTileImpl);

void gemm(const LinearArgs &args, ThreadPool *pool) {
  const LinearArgs *one = &args;
  HWY_DYNAMIC_DISPATCH(GemmImpl)(&one, 1, pool);
}

bool gemmGroupApplies(const LinearArgs *const *as, int64_t n) {
  if (n < 1 || n > kMaxLinearGroup)
    return false;
  const LinearArgs &a = *as[0];
  for (int64_t i = 0; i < n; ++i) {
    const LinearArgs &b = *as[i];
    if (!gemmPreferred(b) || b.out <= 0 || b.x != a.x || b.rows != a.rows || b.in != a.in ||
        b.kind != a.kind || b.strip16 != a.strip16)
      return false;
  }
  return true;
}

void gemmGroup(const LinearArgs *const *as, int64_t n, ThreadPool *pool) {
  HWY_DYNAMIC_DISPATCH(GemmImpl)(as, n, pool);
}

void gemmTile(int64_t *rows, int64_t *channels) {
  HWY_DYNAMIC_DISPATCH(GemmTileImpl)(rows, channels);
}

} // namespace opt
} // namespace rt
} // namespace kiln
#endif // HWY_ONCE
