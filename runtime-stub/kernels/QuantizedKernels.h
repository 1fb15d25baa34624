// Kernels that read quantized weights (Tensor::isQuantized, docs/program-format.md)
// directly from the mapped program: int8 per-row and int4 group-wise, f16 or f32
// scales. Weights are dequantized a span at a time into a small stack buffer
// (linear) or straight into the output row (embedding), never as a whole.
#ifndef KILN_RUNTIME_KERNELS_QUANTIZEDKERNELS_H
#define KILN_RUNTIME_KERNELS_QUANTIZEDKERNELS_H

#include "runtime-stub/core/Error.h"
#include "runtime-stub/core/Tensor.h"
#include "runtime-stub/kernels/Kernel.h"

#include <cstdint>

namespace kiln {
namespace rt {

/// Checks that `w` is a well-formed quantized weight view: 2-d, Int8 or Int4,
/// group > 0 dividing in (even for Int4), Float16 or Float32 scales, data and
/// scales present. Returns an error naming `what` otherwise.
Error checkQuantizedWeight(const Tensor &w, const char *what);

/// out[0..len) = w[row][col0 .. col0+len) as f32. `w` passed checkQuantizedWeight;
/// row < out, col0 + len <= in.
void dequantizeSpan(const Tensor &w, int64_t row, int64_t col0, int64_t len, float *out);

/// y[r][o] = sum_c x[r][c] * w[o][c] (+ bias[o]) for `rows` rows of x
/// ([rows, in] f32) and the quantized weight w [out, in]; y is [rows, out].
void quantizedLinear(const float *x, int64_t rows, const Tensor &w, const float *bias,
                     float *y);

/// The linear / embedding kernels for a quantized weight (called by the f32
/// kernels when their weight operand is quantized).
Error runQuantizedLinear(const KernelCall &call, const Tensor &x, const Tensor &w,
                         const Tensor *bias);
Error runQuantizedEmbedding(const KernelCall &call, const Tensor &w, const Tensor &indices);

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_QUANTIZEDKERNELS_H
