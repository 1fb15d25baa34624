// Optimized elementwise kernels (issue 6): f32 binary add/sub/mul/div with the
// broadcasts of LLM decode/prefill (same shape, scalar, an operand repeating
// along the leading dims such as RoPE's cos/sin [T, D] against [B, H, T, D]),
// rms_norm, swiglu and the dequantization of quantized embedding rows. One
// source compiled for several SIMD targets with Highway, the best target this
// CPU supports chosen at run time (HWY_DYNAMIC_DISPATCH). The portable kernels
// (Elementwise.cpp, Normalization.cpp, Fused.cpp, QuantizedEmbedding.cpp) stay
// the reference; KernelCall::portableOnly selects them.
//
// Numerics against the portable kernels: binary ops and dequantization are bit
// for bit equal (the same IEEE operations per element); rms_norm sums squares
// in f64 in another order (the f32 scale may differ by 1 ulp); swiglu uses a
// SIMD exp (<= 1 ulp, Highway's contrib/math Exp) instead of std::exp.
#ifndef KILN_RUNTIME_KERNELS_OPT_OPTELEMENTWISE_H
#define KILN_RUNTIME_KERNELS_OPT_OPTELEMENTWISE_H

#include <cstdint>

namespace kiln {
namespace rt {

class ThreadPool;

namespace opt {

enum class BinaryOp : uint8_t { Add, Sub, Mul, Div };

/// out[i] = a[i % na] op b[i % nb] for i in [0, n), where na and nb are each
/// either n or a divisor of n (1: a scalar; a period p: the operand is the
/// trailing p elements of the output's shape, repeated along the leading dims).
/// Split over `pool` (when non-null) only for prefill-sized inputs (32K+
/// elements, pieces at multiples of the periods); the same values either way.
void binary(BinaryOp op, const float *a, int64_t na, const float *b, int64_t nb, float *out,
            int64_t n, ThreadPool *pool = nullptr);

/// rms_norm over rows of length n: out = w * (x * scale) (w may be null), with
/// scale = 1 / sqrt(mean(x^2) + eps), the sum of squares in f64 like the
/// portable kernel. Rows split over `pool` like binary (decode rows never).
void rmsNorm(const float *x, const float *w, int64_t rows, int64_t n, double eps, float *out,
             ThreadPool *pool = nullptr);

/// out[i] = silu(gate[i]) * up[i] = gate / (1 + exp(-gate)) * up, split over
/// `pool` (when non-null) only for sizes that carry several microseconds of work.
void swiglu(const float *gate, const float *up, float *out, int64_t n, ThreadPool *pool);

/// out[0, in) = row `row` of a quantized weight [rows, in] as f32: int8
/// (`int4` false) or int4 (two per byte, element 2k in the low nibble), one
/// scale (f32 or f16 bits) per `group` columns (group divides in, and is even
/// for int4).
void dequantizeRow(bool int4, const void *w, const void *scales, bool scalesF16, int64_t group,
                   int64_t in, int64_t row, float *out);

/// dst[i] = f16 bits of src[i], rounded to nearest even (F16C where the CPU
/// has it): floatToHalf's results bit for bit, NaN payloads aside. Writes an
/// f16 KV cache row from f32 k / v (cache_write).
void floatsToHalf(const float *src, uint16_t *dst, int64_t n);

/// Name of the SIMD target the dispatcher picks now for these kernels.
const char *elementwiseTargetName();

} // namespace opt
} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_OPT_OPTELEMENTWISE_H
