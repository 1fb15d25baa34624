// layer_norm and rms_norm, computed in f32 with double statistics.
#include "runtime-stub/kernels/KernelUtil.h"
#include "runtime-stub/kernels/opt/OptElementwise.h"

namespace kiln {
namespace rt {
namespace {

Error parseLayerNorm(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getInt("normalized_ndim", false, &o->normalizedNdim));
  KILN_TRY(a.getFloat("eps", false, &o->eps));
  if (o->normalizedNdim < 1 || o->normalizedNdim > kMaxRank)
    return invalidProgram("normalized_ndim " + std::to_string(o->normalizedNdim) +
                          " is out of range [1, 8]");
  return Error::success();
}

Error parseRmsNorm(const AttrSet &a, OpAttrs *o) {
  o->eps = 1e-6;
  return a.getFloat("eps", false, &o->eps);
}

/// Checks an optional per-feature parameter against the normalised shape.
Error checkParam(const KernelCall &call, const Tensor *p, const char *name, const Tensor &x,
                 int firstNormDim, Tensor *tmp, const float **data) {
  *data = nullptr;
  if (!p)
    return Error::success();
  int k = x.rank() - firstNormDim;
  bool ok = p->rank() == k;
  for (int i = 0; ok && i < k; ++i)
    ok = p->dim(i) == x.dim(firstNormDim + i);
  if (!ok)
    return call.fail(std::string(name) + " has shape " + p->shape().str() +
                     " but the normalized shape of x " + x.describe() + " is " +
                     Shape::make(x.shape().data() + firstNormDim, (size_t)k).value().str());
  if (!isFloating(p->dtype()))
    return call.fail(std::string(name) + " must be a float tensor, got " + p->describe());
  Result<const Tensor *> c = asDType(*p, DType::Float32, tmp);
  if (!c.ok())
    return c.error();
  *data = (*c)->dataAs<float>();
  return Error::success();
}

Error runNorm(const KernelCall &call, bool rms) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  if (!isFloating(x->dtype()))
    return call.fail("input must be a float tensor, got " + x->describe());
  int r = x->rank();
  int k = rms ? 1 : (int)call.attrs->normalizedNdim;
  if (k > r)
    return call.fail("normalizes the last " + std::to_string(k) + " dims but x is " +
                     x->describe());
  int first = r - k;
  Tensor tw, tb, tx, res;
  const float *w = nullptr, *b = nullptr;
  KILN_TRY(checkParam(call, call.input(1), "weight", *x, first, &tw, &w));
  if (!rms)
    KILN_TRY(checkParam(call, call.input(2), "bias", *x, first, &tb, &b));
  Result<const Tensor *> cx = asDType(*x, DType::Float32, &tx);
  if (!cx.ok())
    return cx.error();
  Tensor &out = *call.out[0];
  Tensor *dst = x->dtype() == DType::Float32 ? &out : &res;
  KILN_TRY(dst->allocate(DType::Float32, x->shape()));
  int64_t n = dimProduct(x->shape(), first, r);
  int64_t rows = n == 0 ? 0 : x->numel() / n;
  const float *px = (*cx)->dataAs<float>();
  float *po = dst->mutableDataAs<float>();
  double eps = call.attrs->eps;
  if (rms && !call.portableOnly) { // SIMD kernel chosen by CPU features (kernels/opt/)
    opt::rmsNorm(px, w, rows, n, eps, po, call.pool);
    rows = 0; // done: the portable loop below is skipped
  }
  for (int64_t row = 0; row < rows; ++row) {
    const float *p = px + row * n;
    float *q = po + row * n;
    if (rms) {
      double ss = 0;
      for (int64_t i = 0; i < n; ++i)
        ss += (double)p[i] * p[i];
      float scale = (float)(1.0 / std::sqrt(ss / (double)n + eps));
      for (int64_t i = 0; i < n; ++i)
        q[i] = w ? w[i] * (p[i] * scale) : p[i] * scale;
    } else {
      double sum = 0;
      for (int64_t i = 0; i < n; ++i)
        sum += p[i];
      double mean = sum / (double)n;
      double var = 0;
      for (int64_t i = 0; i < n; ++i) {
        double dlt = p[i] - mean;
        var += dlt * dlt;
      }
      var /= (double)n; // biased, like PyTorch
      float rstd = (float)(1.0 / std::sqrt(var + eps));
      float fm = (float)mean;
      for (int64_t i = 0; i < n; ++i) {
        float v = (p[i] - fm) * rstd;
        if (w)
          v *= w[i];
        if (b)
          v += b[i];
        q[i] = v;
      }
    }
  }
  if (dst != &out)
    return castInto(res, x->dtype(), &out);
  return Error::success();
}

Error runLayerNorm(const KernelCall &call) { return runNorm(call, false); }
Error runRmsNorm(const KernelCall &call) { return runNorm(call, true); }

} // namespace

extern const KernelDef kLayerNormKernel = {"layer_norm", 1, 3, 1, 1, 0x6u, parseLayerNorm,
                                           runLayerNorm};
extern const KernelDef kRmsNormKernel = {"rms_norm", 1, 2, 1, 1, 0x2u, parseRmsNorm, runRmsNorm};

} // namespace rt
} // namespace kiln
