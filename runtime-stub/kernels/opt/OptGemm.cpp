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
//     order). Packing is split over the pool by k ranges.
//  2. Output channels are taken in groups of kNO; the groups are split over the
//     pool. A task dequantizes its group's kNO weight rows into per-thread f32
//     scratch (f32 weights are read in place), then for every row block runs the
//     microkernel: for each k, load kRV vectors of x (kRV * lanes rows), broadcast
//     each of the kNO weights w[o][k] and FMA into kNO x kRV accumulators, which
//     stay in registers for the whole k loop (one sequential f32 sum per output,
//     no horizontal reductions). The tile is written to y with the bias.
#include "runtime-stub/kernels/opt/OptGemm.h"

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
#include "runtime-stub/core/ThreadPool.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#ifndef KILN_OPT_GEMM_SHARED
#define KILN_OPT_GEMM_SHARED
namespace kiln {
namespace rt {
namespace opt {
namespace gemm_detail {

// Per-thread scratch, grown on first use and kept (no allocation per call once
// warm): slot 0 = packed x (calling thread), slot 1 = dequantized weight rows,
// slot 2 = output stage.
// The returned pointer is 64-byte aligned.
inline float *scratch(int slot, size_t floats) {
  thread_local std::vector<float> buf[3];
  std::vector<float> &b = buf[slot];
  if (b.size() < floats + 16)
    b.resize(floats + 16);
  const uintptr_t p = reinterpret_cast<uintptr_t>(b.data());
  return b.data() + ((64 - p % 64) % 64) / sizeof(float);
}

inline float scaleAt(const LinearArgs &a, int64_t index) {
  if (a.scalesF16)
    return halfToFloat(static_cast<const uint16_t *>(a.scales)[index]);
  return static_cast<const float *>(a.scales)[index];
}

// Floats of x per chunk (~512 KiB: packed x stays in L2 while every channel
// group of the chunk streams over it).
constexpr int64_t kChunkFloats = 128 * 1024;
// Weights above this size are taken to come from DRAM (Groups).
constexpr int64_t kBigWeightBytes = 16 << 20;

} // namespace gemm_detail
} // namespace opt
} // namespace rt
} // namespace kiln
#endif // KILN_OPT_GEMM_SHARED

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

// dst[c] = q[c] * scale(c / group) for one int8 weight row.
void DequantInt8Row(const LinearArgs &a, int64_t o, float *HWY_RESTRICT dst) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<int8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t in = a.in, group = a.group;
  const int8_t *HWY_RESTRICT q = static_cast<const int8_t *>(a.w) + o * in;
  const int64_t scale0 = o * (in / group);
  for (int64_t c0 = 0, g = 0; c0 < in; c0 += group, ++g) {
    const int64_t c1 = c0 + group;
    const float s = gd::scaleAt(a, scale0 + g);
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
void DequantInt4Row(const LinearArgs &a, int64_t o, float *HWY_RESTRICT dst) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<uint8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t in = a.in, half = in / 2, groupBytes = a.group / 2;
  const uint8_t *HWY_RESTRICT q = static_cast<const uint8_t *>(a.w) + o * half;
  const int64_t scale0 = o * (in / a.group);
  const auto mask = hn::Set(di, 0x0F), eight = hn::Set(di, 8);
  for (int64_t b0 = 0, g = 0; b0 < half; b0 += groupBytes, ++g) {
    const int64_t b1 = b0 + groupBytes;
    const float s = gd::scaleAt(a, scale0 + g);
    const auto vs = hn::Set(d, s);
    int64_t b = b0;
    for (; b + N <= b1; b += N) {
      const auto u = hn::PromoteTo(di, hn::LoadU(d8, q + b));
      // (v ^ 8) - 8 sign-extends a 4-bit value held in the low bits.
      const auto lo = hn::Sub(hn::Xor(hn::And(u, mask), eight), eight);
      const auto hi = hn::Sub(hn::Xor(hn::ShiftRight<4>(u), eight), eight);
      hn::StoreU(hn::Mul(hn::ConvertTo(d, lo), vs), d, dst + b);
      hn::StoreU(hn::Mul(hn::ConvertTo(d, hi), vs), d, dst + half + b);
    }
    for (; b < b1; ++b) {
      dst[b] = static_cast<float>(((q[b] & 0x0F) ^ 8) - 8) * s;
      dst[half + b] = static_cast<float>(((q[b] >> 4) ^ 8) - 8) * s;
    }
  }
}

// Packs k in [k0, k1) of x rows [r0, r0 + nr) into xp (layout in the header).
void PackX(const LinearArgs &a, int64_t r0, int64_t nr, float *HWY_RESTRICT xp, int64_t k0,
           int64_t k1) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t R = kRV * N, K = a.in, half = K / 2;
  const bool split = a.kind == WeightKind::Int4;
  for (int64_t b = 0; b * R < nr; ++b) {
    float *HWY_RESTRICT blk = xp + b * K * R;
    const int64_t rows = std::min(R, nr - b * R);
    // k in slices of 32 so the slice of the block being written (32 x R floats)
    // stays in L1 while every row visits it.
    for (int64_t ks = k0; ks < k1; ks += 32) {
      const int64_t ke = std::min(k1, ks + 32);
      for (int64_t rr = 0; rr < rows; ++rr) {
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
  // of six scalar broadcast streams in the microkernel), and the microkernel
  // prefetches the next group's rows.
  const int64_t rowBytes =
      a.kind == WeightKind::F32 ? K * 4 : a.kind == WeightKind::Int8 ? K : K / 2;
  const bool bigWeight = a.out * rowBytes > gd::kBigWeightBytes;
  const bool copyF32 = a.kind == WeightKind::F32 && bigWeight;
  float *deq = a.kind == WeightKind::F32 && !copyF32
                   ? nullptr
                   : gd::scratch(1, static_cast<size_t>(kNO * K));
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
          if (a.kind == WeightKind::Int8)
            DequantInt8Row(a, o + j, deq + j * K);
          else
            DequantInt4Row(a, o + j, deq + j * K);
        }
      }
      for (int64_t b = 0; b * R < nr; ++b) {
        const int64_t rows = std::min(R, nr - b * R), rv = (rows + N - 1) / N;
        // Weights from DRAM (larger than the L3): prefetch the next group's rows
        // during the first row block (a burst of prefetches up front stalled).
        const char *pf = nullptr;
        int64_t pfLines = 0;
        if (bigWeight && b == 0 && g + 1 < g1) {
          pf = static_cast<const char *>(a.w) + (o + kNO) * rowBytes;
          pfLines = (std::min<int64_t>(kNO, a.out - o - kNO) * rowBytes + 63) / 64;
        }
        Pick(rv, no)(xp + b * K * R, w, K, K, stage + (g - gs) * kNO * nrPad + b * R, nrPad, pf,
                     pfLines);
      }
    }
    const int64_t o0 = gs * kNO, width = std::min(a.out, ge * kNO) - o0;
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

void GemmImpl(const LinearArgs &a, ThreadPool *pool) {
  if (a.rows <= 0 || a.out <= 0 || a.in <= 0)
    return;
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const int64_t R = kRV * N, K = a.in;
  const int64_t chunk = std::max<int64_t>(1, gd::kChunkFloats / (K * R)) * R;
  const int64_t groups = (a.out + kNO - 1) / kNO;
  const int64_t firstRows = std::min(chunk, a.rows);
  float *xp = gd::scratch(0, static_cast<size_t>(((firstRows + R - 1) / R) * R * K));
  const bool par = pool && pool->numThreads() > 1;
  for (int64_t r0 = 0; r0 < a.rows; r0 += chunk) {
    const int64_t nr = std::min(chunk, a.rows - r0);
    if (par) {
      pool->parallelFor(K, std::max<int64_t>(16, 4096 / std::max<int64_t>(1, nr)),
                        [&](int64_t k0, int64_t k1) { PackX(a, r0, nr, xp, k0, k1); });
      pool->parallelFor(groups, 1,
                        [&](int64_t g0, int64_t g1) { Groups(a, r0, nr, xp, g0, g1); });
    } else {
      PackX(a, r0, nr, xp, 0, K);
      Groups(a, r0, nr, xp, 0, groups);
    }
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

#if HWY_ONCE
namespace kiln {
namespace rt {
namespace opt {

HWY_EXPORT(GemmImpl);
HWY_EXPORT(GemmTileImpl);

void gemm(const LinearArgs &args, ThreadPool *pool) {
  HWY_DYNAMIC_DISPATCH(GemmImpl)(args, pool);
}

void gemmTile(int64_t *rows, int64_t *channels) {
  HWY_DYNAMIC_DISPATCH(GemmTileImpl)(rows, channels);
}

} // namespace opt
} // namespace rt
} // namespace kiln
#endif // HWY_ONCE
