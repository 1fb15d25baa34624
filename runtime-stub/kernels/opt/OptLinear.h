// Optimized `linear` kernels (issue 6): y = x . W^T (+ bias) for an f32, int8
// (per-row or group-wise scales) or int4 (group-wise, two per byte, element 2k
// in the low nibble) weight W [out, in], read in place (never dequantized as a
// whole) with f32 accumulation. One source compiled for several SIMD targets
// with Highway; the best target this CPU supports is chosen at run time
// (HWY_DYNAMIC_DISPATCH), never at compile time only. The portable kernels in
// LinearAlgebra.cpp / QuantizedLinear.cpp stay the reference (KernelCall::
// portableOnly selects them).
#ifndef KILN_RUNTIME_KERNELS_OPT_OPTLINEAR_H
#define KILN_RUNTIME_KERNELS_OPT_OPTLINEAR_H

#include <cstdint>
#include <cstring>

namespace kiln {
namespace rt {

class ThreadPool;

namespace opt {

enum class WeightKind : uint8_t { F32, Int8, Int4 };

/// One linear product. x is [rows, in] f32 (row stride in); y is [rows, ldy]
/// f32 and column o of it receives output channel o. For Int8/Int4, scales holds
/// out * (in / group) f32 or f16 (scalesF16) values, group divides in (and is
/// even for Int4).
struct LinearArgs {
  const float *x = nullptr;
  int64_t rows = 0;
  int64_t in = 0;
  int64_t out = 0;
  WeightKind kind = WeightKind::F32;
  const void *w = nullptr;      // f32 [out, in], int8 [out, in] or int4 [out, in/2] bytes
  const void *scales = nullptr; // quantized kinds only
  bool scalesF16 = false;
  int64_t group = 0;            // quantized kinds only
  /// w and scales are in the Int4Strip16 (Int4) or Int8Strip16 (Int8) layout
  /// (core/QuantLayout.h) instead of rows. Only `linear` / `gemm` read it (not linearRange).
  bool strip16 = false;
  /// A later call reads this weight again: prefetch it into the caches (T0 /
  /// T1) instead of non-temporally where that is used (int4 on AMD CPUs;
  /// quantized GEMV only; KernelCall::weightReadAgain).
  bool weightReadAgain = false;
  const float *bias = nullptr;  // [out] or null
  float *y = nullptr;
  int64_t ldy = 0;
};

/// Computes all of y, split by output channels over `pool` when it is non-null
/// (else on the calling thread) with the best SIMD target of this CPU.
void linear(const LinearArgs &args, ThreadPool *pool);

/// n linears that read the same x (the q / k / v or gate / up projections of
/// a block, made consecutive by kiln-group-linears): for few rows (decode)
/// with quantized (OptQuant.h quantLinearGroup) or f32 weights, all output
/// channels laid end to end are split over `pool` in one parallel job (one
/// hand-off instead of n; x quantized once); for many rows (prefill) one GEMM
/// job with x packed once (OptGemm.h gemmGroup). Otherwise (mixed kinds or
/// layouts, non-finite x for the quantized GEMV) each runs as linear(). Every
/// y gets the same bits as from linear() alone.
void linearGroup(const LinearArgs *const *as, int64_t n, ThreadPool *pool);

/// Output channels [o0, o1) only, on the calling thread. For Int4, `xSplit`
/// is x with each row rearranged as [even columns | odd columns] (splitInt4X);
/// ignored for the other kinds.
void linearRange(const LinearArgs &args, const float *xSplit, int64_t o0, int64_t o1);

/// dst[r] = [x[r][0], x[r][2], ... | x[r][1], x[r][3], ...] for rows of even `in`.
void splitInt4X(const float *x, int64_t rows, int64_t in, float *dst);

/// Name of the SIMD target the dispatcher picks now (e.g. "AVX3", "AVX2", "SSE4").
const char *selectedTargetName();

/// IEEE half -> float, exact for every value: rt::halfToFloat (core/DType.h),
/// inline and branch-light for the kernels' inner loops (OptLinearTest checks
/// all 65536 inputs against it). Subnormals are rebiased with a power-of-two
/// product (exact; the runtime never sets flush-to-zero / denormals-are-zero).
inline float halfBitsToFloat(uint16_t h) {
  const uint32_t em = h & 0x7FFFu;
  uint32_t bits = em << 13;
  float f;
  if (em >= 0x7C00u) { // inf / nan
    bits |= 0x7F800000u;
    std::memcpy(&f, &bits, 4);
  } else {
    std::memcpy(&f, &bits, 4);
    f *= 5.192296858534828e+33f; // 2^112
  }
  uint32_t out;
  std::memcpy(&out, &f, 4);
  out |= static_cast<uint32_t>(h & 0x8000u) << 16;
  std::memcpy(&f, &out, 4);
  return f;
}

/// Scale `index` of a quantized weight (f16 or f32 scales).
inline float scaleAt(const LinearArgs &a, int64_t index) {
  return a.scalesF16 ? halfBitsToFloat(static_cast<const uint16_t *>(a.scales)[index])
                     : static_cast<const float *>(a.scales)[index];
}

} // namespace opt
} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_OPT_OPTLINEAR_H
