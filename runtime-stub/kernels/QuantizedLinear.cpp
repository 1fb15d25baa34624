// linear with a quantized weight: y = x @ dequant(w)^T + b, accumulated in f32.
// The weight row is dequantized one span (<= kSpan values, a whole number of
// groups when the group is small) at a time into a stack buffer and used for a
// block of x rows, so each weight byte is decoded once per kRowBlock rows.
#include "runtime-stub/kernels/QuantizedKernels.h"

#include "runtime-stub/kernels/KernelUtil.h"
#include "runtime-stub/kernels/opt/OptLinear.h"

#include <algorithm>

namespace kiln {
namespace rt {
namespace {

constexpr int64_t kSpan = 1024;    // floats on the stack: 4 KiB
constexpr int64_t kRowBlock = 32;  // x rows sharing one decoded span

float scaleAt(const QuantParams &q, int64_t index) {
  if (q.scalesDType == DType::Float16)
    return halfToFloat(static_cast<const uint16_t *>(q.scales)[index]);
  return static_cast<const float *>(q.scales)[index];
}

float dot(const float *a, const float *b, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i)
    s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

} // namespace

Error checkQuantizedWeight(const Tensor &w, const char *what) {
  const QuantParams &q = w.quant();
  if (!w.isQuantized() || w.rank() != 2 ||
      (w.dtype() != DType::Int8 && w.dtype() != DType::Int4))
    return invalidArgument(std::string(what) + " " + w.describe() +
                           " is not a 2-d quantized i8/i4 weight");
  int64_t in = w.dim(1);
  if (in % q.groupSize != 0 || (w.dtype() == DType::Int4 && q.groupSize % 2 != 0))
    return invalidArgument(std::string(what) + " " + w.describe() + ": group " +
                           std::to_string(q.groupSize) + " does not divide " +
                           std::to_string(in) + " in-features");
  if (q.scalesDType != DType::Float16 && q.scalesDType != DType::Float32)
    return invalidArgument(std::string(what) + " " + w.describe() + ": scales must be f16 or f32");
  if (q.layout != QuantLayout::Rows) {
    const bool i4 = q.layout == QuantLayout::Int4Strip16;
    if (!i4 && q.layout != QuantLayout::Int8Strip16)
      return invalidArgument(std::string(what) + " " + w.describe() + ": unknown layout " +
                             std::to_string(static_cast<int>(q.layout)));
    if (w.dtype() != (i4 ? DType::Int4 : DType::Int8))
      return invalidArgument(std::string(what) + " " + w.describe() + ": layout " +
                             (i4 ? "Int4Strip16 needs an i4" : "Int8Strip16 needs an i8") +
                             " weight");
    if (!strip16::applies(w.dim(0), in, q.groupSize))
      return invalidArgument(std::string(what) + " " + w.describe() + ": layout " +
                             (i4 ? "Int4Strip16" : "Int8Strip16") +
                             " needs out % 16 == 0, in % 32 == 0 and a group size that is a "
                             "multiple of 32 (group " +
                             std::to_string(q.groupSize) + ")");
  }
  if ((w.numel() > 0 && !w.data()) || (w.numel() > 0 && !q.scales))
    return invalidArgument(std::string(what) + " " + w.describe() + " has no data");
  return Error::success();
}

void dequantizeSpan(const Tensor &w, int64_t row, int64_t col0, int64_t len, float *out) {
  const QuantParams &q = w.quant();
  const int64_t in = w.dim(1), group = q.groupSize;
  const int64_t groupsPerRow = in / group;
  int64_t c = col0;
  const int64_t end = col0 + len;
  if (q.layout != QuantLayout::Rows) {
    strip16::dequantize(q.layout == QuantLayout::Int8Strip16 ? 8 : 4, w.dataAs<uint8_t>(), in,
                        group, row, col0, len,
                        [&](int64_t i) { return scaleAt(q, i); }, out);
    return;
  }
  while (c < end) {
    // One group segment: a single scale.
    int64_t g = c / group;
    int64_t segEnd = std::min(end, (g + 1) * group);
    float scale = scaleAt(q, row * groupsPerRow + g);
    if (w.dtype() == DType::Int8) {
      const int8_t *src = w.dataAs<int8_t>() + row * in;
      for (; c < segEnd; ++c)
        *out++ = static_cast<float>(src[c]) * scale;
    } else {
      // Rows start on a byte: in is even (group is even and divides it).
      const uint8_t *src = w.dataAs<uint8_t>() + row * (in / 2);
      for (; c < segEnd; ++c) {
        uint8_t byte = src[c >> 1];
        int v = (c & 1) ? (byte >> 4) : (byte & 0x0F);
        v = (v ^ 8) - 8; // sign-extend the nibble
        *out++ = static_cast<float>(v) * scale;
      }
    }
  }
}

void quantizedLinear(const float *x, int64_t rows, const Tensor &w, const float *bias,
                     float *y) {
  const int64_t outF = w.dim(0), in = w.dim(1), group = w.quant().groupSize;
  // A span holds whole groups when they are small, so scales change only at
  // span-internal group boundaries handled by dequantizeSpan.
  const int64_t span = group <= kSpan ? (kSpan / group) * group : kSpan;
  float buf[kSpan];
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    const int64_t r1 = std::min(rows, r0 + kRowBlock);
    for (int64_t o = 0; o < outF; ++o) {
      float b = bias ? bias[o] : 0.0f;
      for (int64_t r = r0; r < r1; ++r)
        y[r * outF + o] = b;
      for (int64_t c0 = 0; c0 < in; c0 += span) {
        const int64_t len = std::min(span, in - c0);
        dequantizeSpan(w, o, c0, len, buf);
        for (int64_t r = r0; r < r1; ++r)
          y[r * outF + o] += dot(x + r * in + c0, buf, len);
      }
    }
  }
}

Error runQuantizedLinear(const KernelCall &call, const Tensor &x, const Tensor &w,
                         const Tensor *bias) {
  Error e = checkQuantizedWeight(w, "weight");
  if (e.failed())
    return call.fail(e.message());
  const int64_t outF = w.dim(0), in = w.dim(1);
  if (x.dtype() != DType::Float32)
    return call.fail("a quantized weight " + w.describe() + " needs an f32 input, got x " +
                     x.describe());
  if (x.rank() < 1 || x.dim(x.rank() - 1) != in)
    return call.fail("x " + x.describe() + " does not have the " + std::to_string(in) +
                     " in-features of weight " + w.describe());
  if (bias && !(bias->rank() == 1 && bias->dim(0) == outF && bias->dtype() == DType::Float32))
    return call.fail("bias " + bias->describe() + " must be f32[" + std::to_string(outF) + "]");
  Shape outShape = x.shape();
  outShape[outShape.rank() - 1] = outF;
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(DType::Float32, outShape));
  int64_t rows = in == 0 ? dimProduct(x.shape(), 0, x.rank() - 1) : x.numel() / in;
  quantizedLinear(x.dataAs<float>(), rows, w, bias ? bias->dataAs<float>() : nullptr,
                  out.mutableDataAs<float>());
  return Error::success();
}

} // namespace rt
} // namespace kiln
