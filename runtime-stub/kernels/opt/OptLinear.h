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
  const float *bias = nullptr;  // [out] or null
  float *y = nullptr;
  int64_t ldy = 0;
};

/// Computes all of y, split by output channels over `pool` when it is non-null
/// (else on the calling thread) with the best SIMD target of this CPU.
void linear(const LinearArgs &args, ThreadPool *pool);

/// Output channels [o0, o1) only, on the calling thread. For Int4, `xSplit`
/// is x with each row rearranged as [even columns | odd columns] (splitInt4X);
/// ignored for the other kinds.
void linearRange(const LinearArgs &args, const float *xSplit, int64_t o0, int64_t o1);

/// dst[r] = [x[r][0], x[r][2], ... | x[r][1], x[r][3], ...] for rows of even `in`.
void splitInt4X(const float *x, int64_t rows, int64_t in, float *dst);

/// Name of the SIMD target the dispatcher picks now (e.g. "AVX3", "AVX2", "SSE4").
const char *selectedTargetName();

} // namespace opt
} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_OPT_OPTLINEAR_H
