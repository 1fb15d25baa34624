// Quantized GEMV for `linear` (issue 6, docs/runtime-kernels.md "Quantized
// GEMV"): int8 / int4 weights times activations quantized per call to int8 in
// blocks of 32 columns (one f32 scale per block, symmetric max|x|/127), with
// integer dot products (AVX-512 VNNI vpdpbusd, else pmaddubsw + pmaddwd on
// AVX-512BW / AVX2 / SSSE3, else scalar) and f32 accumulation of
// x-scale * w-scale * int32 block dot. Used by opt::linear for few x rows.
// Weights in the compiler's Int4Strip16 / Int8Strip16 layouts (core/QuantLayout.h)
// take separate loops over strips of 16 output channels (OptQuant.cpp).
#ifndef KILN_RUNTIME_KERNELS_OPT_OPTQUANT_H
#define KILN_RUNTIME_KERNELS_OPT_OPTQUANT_H

#include "runtime-stub/kernels/opt/OptLinear.h"

#include <cstdint>

namespace kiln {
namespace rt {

class ThreadPool;

namespace opt {

/// Most x rows handled by quantLinear (decode steps, small batches); larger
/// calls (prefill) keep the f32 kernels.
constexpr int64_t kQuantGemvMaxRows = 8;

/// Block of activation columns sharing one int8 scale.
constexpr int64_t kQuantBlock = 32;

/// True when quantLinear can compute `a`: Int8/Int4 weight, 1 <= rows <=
/// kQuantGemvMaxRows, in % 32 == 0 and group % 32 == 0 (strip layouts: also
/// out % 16 == 0, which the layout guarantees).
bool quantGemvApplies(const LinearArgs &a);

/// y = x . dequant(W)^T (+ bias) with x quantized to int8 blocks (see top);
/// requires quantGemvApplies(a). Output channels split over `pool` if non-null.
/// Returns false, writing nothing, when x holds a non-finite value (the f32
/// kernels then keep inf / nan semantics).
bool quantLinear(const LinearArgs &a, ThreadPool *pool);

/// Most linears in one group (linearGroup).
constexpr int64_t kMaxLinearGroup = 8;

/// True when quantLinearGroup can compute the n linears as one job: each
/// passes quantGemvApplies, all share x, rows, in, kind and layout, and
/// 1 <= n <= kMaxLinearGroup.
bool quantLinearGroupApplies(const LinearArgs *const *as, int64_t n);

/// quantLinear for n linears that read the same x (q / k / v, gate / up):
/// x is quantized once and the output channels of all of them, laid end to
/// end, are split over `pool` in one parallel job. Each y gets the bits
/// quantLinear gives it alone. Requires quantLinearGroupApplies; returns
/// false, writing nothing, when x holds a non-finite value.
bool quantLinearGroup(const LinearArgs *const *as, int64_t n, ThreadPool *pool);

/// Name of the SIMD target quantLinear's dispatcher picks now.
const char *quantTargetName();

/// Whether this CPU streams int4 weights that no later call reads again
/// (LinearArgs::weightReadAgain false) with the NTA prefetch hint instead of
/// T0: AMD only (measured faster there, much slower on an Intel Xeon;
/// docs/runtime-kernels.md "Weights in cache"). Checked once (CPUID vendor).
bool quantStreamsNonTemporal();

} // namespace opt
} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_OPT_OPTQUANT_H
