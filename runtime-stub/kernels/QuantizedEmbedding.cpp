// embedding with a quantized table: each gathered row is dequantized straight
// into the output (one row per token; the table stays in the mapped file).
#include "runtime-stub/kernels/QuantizedKernels.h"

#include "runtime-stub/kernels/KernelUtil.h"
#include "runtime-stub/kernels/opt/OptElementwise.h"

namespace kiln {
namespace rt {

Error runQuantizedEmbedding(const KernelCall &call, const Tensor &w, const Tensor &idx) {
  Error e = checkQuantizedWeight(w, "weight");
  if (e.failed())
    return call.fail(e.message());
  if (idx.dtype() != DType::Int64 && idx.dtype() != DType::Int32)
    return call.fail("indices must be an i64 or i32 tensor, got " + idx.describe());
  if (idx.rank() + 1 > kMaxRank)
    return call.fail("indices " + idx.describe() + " have too many dims", ErrorCode::Unsupported);
  Shape s = idx.shape();
  s.push(w.dim(1));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(DType::Float32, s));
  const int64_t num = w.dim(0), dim = w.dim(1);
  float *po = out.mutableDataAs<float>();
  for (int64_t i = 0; i < idx.numel(); ++i) {
    int64_t v = idx.dtype() == DType::Int64 ? idx.dataAs<int64_t>()[i] : idx.dataAs<int32_t>()[i];
    if (v < 0 || v >= num)
      return call.fail("index " + std::to_string(v) + " (at position " + std::to_string(i) +
                           " of indices " + idx.describe() + ") is out of range for weight " +
                           w.describe(),
                       ErrorCode::OutOfRange);
    // SIMD kernel chosen by CPU features (kernels/opt/) for row-layout tables;
    // a strip-layout table (a tied lm_head) is read element by element.
    if (!call.portableOnly && w.quant().layout == QuantLayout::Rows)
      opt::dequantizeRow(w.dtype() == DType::Int4, w.data(), w.quant().scales,
                         w.quant().scalesDType == DType::Float16, w.quant().groupSize, dim, v,
                         po + i * dim);
    else
      dequantizeSpan(w, v, 0, dim, po + i * dim);
  }
  return Error::success();
}

} // namespace rt
} // namespace kiln
