// Optimized `linear` for many rows of x (prefill: GEMM), issue 6. Same contract
// as opt::linear (OptLinear.h): y = x . W^T (+ bias) for f32, int8 and int4
// weights [out, in], f32 accumulation, written to y [rows, ldy]. x is packed once
// per call into blocks of rows laid out [k][row] (rows in the vector lanes);
// each task dequantizes a few weight rows (output channels) at a time into f32
// and runs one register-blocked f32 microkernel that broadcasts weights and
// accumulates whole output tiles in registers (no horizontal sums). Details and
// measurements: docs/runtime-kernels.md, section "GEMM (prefill)". Highway run-
// time dispatch picks the SIMD target (never compile-time only).
#ifndef KILN_RUNTIME_KERNELS_OPT_OPTGEMM_H
#define KILN_RUNTIME_KERNELS_OPT_OPTGEMM_H

#include "runtime-stub/kernels/opt/OptLinear.h"

#include <cstdint>

namespace kiln {
namespace rt {

class ThreadPool;

namespace opt {

/// opt::linear sends products with at least this many rows of x to gemm():
/// f32 from 8 rows, int8 / int4 from 9 (up to 8 rows the quantized GEMV of
/// OptQuant.h is faster). Crossover measured in the doc.
constexpr int64_t kGemmMinRowsF32 = 8;
constexpr int64_t kGemmMinRowsQuant = 9;

/// True when gemm() is the better kernel for this product.
inline bool gemmPreferred(const LinearArgs &a) {
  return a.in > 0 &&
         a.rows >= (a.kind == WeightKind::F32 ? kGemmMinRowsF32 : kGemmMinRowsQuant);
}

/// Computes all of y like opt::linear, over `pool` when it is non-null (else on
/// the calling thread): one pool job per row chunk, in which the threads claim
/// pieces of the packing of x, then strips of output channel groups.
void gemm(const LinearArgs &args, ThreadPool *pool);

/// True when gemmGroup can run the n linears as one: each gemmPreferred, all
/// sharing x, rows, in, kind and layout, 1 <= n <= kMaxLinearGroup.
bool gemmGroupApplies(const LinearArgs *const *as, int64_t n);

/// gemm() for n linears that read the same x (a prefill chunk's q / k / v or
/// gate / up): x is packed once per row chunk, and the channel groups of all
/// members are claimed in one pool job. Each y gets the bits gemm() gives it
/// alone. Requires gemmGroupApplies.
void gemmGroup(const LinearArgs *const *as, int64_t n, ThreadPool *pool);

/// Register tile of the selected target: rows x output channels per microkernel call.
void gemmTile(int64_t *rows, int64_t *channels);

} // namespace opt
} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_OPT_OPTGEMM_H
