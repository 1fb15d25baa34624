// Reductions: reduce (sum/mean/max/min/prod over several dims), argmax, softmax.
#include "runtime-stub/kernels/KernelUtil.h"

#include <algorithm>

namespace kiln {
namespace rt {
namespace {

enum class ReduceFn { Sum, Mean, Max, Min, Prod };

Error parseReduce(const AttrSet &a, OpAttrs *o) {
  std::string fn;
  KILN_TRY(a.getString("fn", true, &fn));
  static const char *kNames[] = {"sum", "mean", "max", "min", "prod"};
  o->fn = -1;
  for (int i = 0; i < 5; ++i)
    if (fn == kNames[i])
      o->fn = i;
  if (o->fn < 0)
    return invalidProgram("unknown fn '" + fn + "' (expected one of: sum mean max min prod)");
  KILN_TRY(a.getInts("dims", false, &o->ints));
  KILN_TRY(a.getBool("keepdim", false, &o->keepdim));
  return Error::success();
}

/// Normalised, de-duplicated-checked reduction dims as a mask; empty = all.
Error reductionMask(const KernelCall &call, const std::vector<int64_t> &dims, int rank,
                    bool *mask) {
  for (int i = 0; i < kMaxRank; ++i)
    mask[i] = dims.empty();
  for (int64_t d : dims) {
    int nd;
    KILN_TRY(normalizeDim(call, d, rank, &nd));
    if (rank == 0)
      continue;
    if (mask[nd])
      return call.fail("dim " + std::to_string(d) + " appears more than once in dims");
    mask[nd] = true;
  }
  return Error::success();
}

template <typename T, typename F>
void reduceInto(const Tensor &x, const Shape &keepShape, T init, T *out, F f) {
  int64_t n = keepShape.numel();
  for (int64_t i = 0; i < n; ++i)
    out[i] = init;
  int64_t strides[1][kMaxRank];
  broadcastStrides(keepShape, x.shape(), strides[0]);
  const T *px = x.dataAs<T>();
  forEachBroadcast<1>(x.shape(), strides, [&](int64_t i, const std::array<int64_t, 1> &off) {
    out[off[0]] = f(out[off[0]], px[i]);
  });
}

Error runReduce(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  ReduceFn fn = (ReduceFn)call.attrs->fn;
  int r = x->rank();
  bool mask[kMaxRank];
  KILN_TRY(reductionMask(call, call.attrs->ints, r, mask));
  Shape keepShape, outShape;
  int64_t count = 1;
  for (int i = 0; i < r; ++i) {
    if (mask[i]) {
      count *= x->dim(i);
      keepShape.push(1);
      if (call.attrs->keepdim)
        outShape.push(1);
    } else {
      keepShape.push(x->dim(i));
      outShape.push(x->dim(i));
    }
  }
  DType in = x->dtype();
  bool floating = isFloating(in);
  if (fn == ReduceFn::Mean && !floating)
    return call.fail("mean of a non-float tensor " + x->describe() +
                     " is not allowed (cast to f32 first), like PyTorch");
  if ((fn == ReduceFn::Max || fn == ReduceFn::Min) && count == 0)
    return call.fail(std::string(fn == ReduceFn::Max ? "max" : "min") +
                     " over an empty dimension of " + x->describe());
  DType resultType = floating ? in
                     : (fn == ReduceFn::Sum || fn == ReduceFn::Prod) ? DType::Int64
                                                                      : in;
  DType ct = floating ? DType::Float32 : DType::Int64;
  Tensor tx, res;
  Result<const Tensor *> cx = asDType(*x, ct, &tx);
  if (!cx.ok())
    return cx.error();
  Tensor &out = *call.out[0];
  Tensor *dst = resultType == ct ? &out : &res;
  KILN_TRY(dst->allocate(ct, outShape));
  if (ct == DType::Float32) {
    float *po = dst->mutableDataAs<float>();
    switch (fn) {
    case ReduceFn::Sum:
    case ReduceFn::Mean:
      reduceInto<float>(**cx, keepShape, 0.0f, po, [](float a, float v) { return a + v; });
      break;
    case ReduceFn::Prod:
      reduceInto<float>(**cx, keepShape, 1.0f, po, [](float a, float v) { return a * v; });
      break;
    case ReduceFn::Max:
      reduceInto<float>(**cx, keepShape, -INFINITY, po,
                        [](float a, float v) { return (v != v || v > a) ? v : a; });
      break;
    case ReduceFn::Min:
      reduceInto<float>(**cx, keepShape, INFINITY, po,
                        [](float a, float v) { return (v != v || v < a) ? v : a; });
      break;
    }
    if (fn == ReduceFn::Mean) {
      int64_t n = outShape.numel();
      float c = (float)count;
      for (int64_t i = 0; i < n; ++i)
        po[i] = po[i] / c; // 0/0 = nan for an empty reduction, like PyTorch
    }
  } else {
    int64_t *po = dst->mutableDataAs<int64_t>();
    switch (fn) {
    case ReduceFn::Sum:
      reduceInto<int64_t>(**cx, keepShape, 0, po,
                          [](int64_t a, int64_t v) { return (int64_t)((uint64_t)a + (uint64_t)v); });
      break;
    case ReduceFn::Prod:
      reduceInto<int64_t>(**cx, keepShape, 1, po,
                          [](int64_t a, int64_t v) { return (int64_t)((uint64_t)a * (uint64_t)v); });
      break;
    case ReduceFn::Max:
      reduceInto<int64_t>(**cx, keepShape, INT64_MIN, po,
                          [](int64_t a, int64_t v) { return v > a ? v : a; });
      break;
    case ReduceFn::Min:
      reduceInto<int64_t>(**cx, keepShape, INT64_MAX, po,
                          [](int64_t a, int64_t v) { return v < a ? v : a; });
      break;
    case ReduceFn::Mean: break;
    }
  }
  if (dst != &out)
    return castInto(res, resultType, &out);
  return Error::success();
}

// ---- argmax -----------------------------------------------------------------

Error parseArgmax(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getInt("dim", false, &o->dim, &o->hasDim));
  KILN_TRY(a.getBool("keepdim", false, &o->keepdim));
  return Error::success();
}

Error runArgmax(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int r = x->rank();
  int64_t outer, size, inner;
  Shape outShape;
  if (!call.attrs->hasDim) { // over the flattened tensor
    outer = 1;
    size = x->numel();
    inner = 1;
    if (call.attrs->keepdim)
      for (int i = 0; i < r; ++i)
        outShape.push(1);
  } else {
    int d;
    KILN_TRY(normalizeDim(call, call.attrs->dim, r, &d));
    if (r == 0) {
      outer = inner = size = 1;
    } else {
      outer = dimProduct(x->shape(), 0, d);
      size = x->dim(d);
      inner = dimProduct(x->shape(), d + 1, r);
      for (int i = 0; i < r; ++i) {
        if (i != d)
          outShape.push(x->dim(i));
        else if (call.attrs->keepdim)
          outShape.push(1);
      }
    }
  }
  if (size == 0)
    return call.fail("argmax over an empty dimension of " + x->describe());
  if (x->dtype() == DType::Bool)
    return call.fail("argmax is not supported on bool tensor " + x->describe());
  bool floating = isFloating(x->dtype());
  Tensor tx;
  Result<const Tensor *> cx = asDType(*x, floating ? DType::Float32 : DType::Int64, &tx);
  if (!cx.ok())
    return cx.error();
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(DType::Int64, outShape));
  int64_t *po = out.mutableDataAs<int64_t>();
  auto scan = [&](auto tag) {
    using T = decltype(tag);
    const T *px = (*cx)->dataAs<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T *p = px + o * size * inner + i;
        int64_t best = 0;
        T bv = p[0];
        for (int64_t k = 1; k < size; ++k) {
          T v = p[k * inner];
          if (bv != bv) // NaN is the maximum; the first one wins
            break;
          if (v > bv || v != v) {
            bv = v;
            best = k;
          }
        }
        po[o * inner + i] = best;
      }
    }
    return 0;
  };
  if (floating)
    scan(float{});
  else
    scan(int64_t{});
  return Error::success();
}

// ---- softmax ----------------------------------------------------------------

Error parseSoftmax(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getInt("dim", true, &o->dim));
  KILN_TRY(a.getBool("log", false, &o->log));
  return Error::success();
}

Error runSoftmax(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  if (!isFloating(x->dtype()))
    return call.fail("softmax needs a float tensor, got " + x->describe());
  int r = x->rank();
  int d;
  KILN_TRY(normalizeDim(call, call.attrs->dim, r, &d));
  int64_t outer = r == 0 ? 1 : dimProduct(x->shape(), 0, d);
  int64_t size = r == 0 ? 1 : x->dim(d);
  int64_t inner = r == 0 ? 1 : dimProduct(x->shape(), d + 1, r);
  Tensor tx, res;
  Result<const Tensor *> cx = asDType(*x, DType::Float32, &tx);
  if (!cx.ok())
    return cx.error();
  Tensor &out = *call.out[0];
  Tensor *dst = x->dtype() == DType::Float32 ? &out : &res;
  KILN_TRY(dst->allocate(DType::Float32, x->shape()));
  const float *px = (*cx)->dataAs<float>();
  float *po = dst->mutableDataAs<float>();
  bool log = call.attrs->log;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const float *p = px + o * size * inner + i;
      float *q = po + o * size * inner + i;
      // Subtract the max for stability.
      float m = -INFINITY;
      for (int64_t k = 0; k < size; ++k)
        m = std::max(m, p[k * inner]);
      if (std::isinf(m) && m < 0)
        m = 0; // all -inf: avoid (-inf) - (-inf)
      float sum = 0.0f;
      if (log) {
        for (int64_t k = 0; k < size; ++k)
          sum += std::exp(p[k * inner] - m);
        float lse = std::log(sum);
        for (int64_t k = 0; k < size; ++k)
          q[k * inner] = p[k * inner] - m - lse;
      } else {
        for (int64_t k = 0; k < size; ++k) {
          float e = std::exp(p[k * inner] - m);
          q[k * inner] = e;
          sum += e;
        }
        for (int64_t k = 0; k < size; ++k)
          q[k * inner] = q[k * inner] / sum;
      }
    }
  }
  if (dst != &out)
    return castInto(res, x->dtype(), &out);
  return Error::success();
}

} // namespace

extern const KernelDef kReduceKernel = {"reduce", 1, 1, 1, 1, 0, parseReduce, runReduce};
extern const KernelDef kArgmaxKernel = {"argmax", 1, 1, 1, 1, 0, parseArgmax, runArgmax};
extern const KernelDef kSoftmaxKernel = {"softmax", 1, 1, 1, 1, 0, parseSoftmax, runSoftmax};

} // namespace rt
} // namespace kiln
