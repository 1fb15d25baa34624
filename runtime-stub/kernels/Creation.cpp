// Ops that create tensors: constant (small inline literal), arange, full, full_like.
#include "runtime-stub/kernels/KernelUtil.h"

namespace kiln {
namespace rt {
namespace {

// `constant` normally becomes a Constant value backed by a segment; as an
// instruction it carries a small literal: `value` (int/float/bool, or ints/floats,
// row-major), optional `shape` (ints; default: [] for a scalar, [n] for a list)
// and optional `dtype` (default: i64 for ints, f32 for floats, i1 for bool).
Error parseConstant(const AttrSet &a, OpAttrs *o) {
  const fb::Attribute *v = a.find("value");
  if (!v)
    return invalidProgram("missing attribute 'value'");
  bool scalar = false;
  DType natural = DType::Float32;
  switch (v->kind()) {
  case fb::AttrKind::Int: o->floats = {(double)v->i()}; scalar = true; natural = DType::Int64; break;
  case fb::AttrKind::Bool: o->floats = {(double)(v->i() != 0)}; scalar = true; natural = DType::Bool; break;
  case fb::AttrKind::Float: o->floats = {v->f()}; scalar = true; break;
  case fb::AttrKind::Ints:
    if (v->ints())
      for (int64_t x : *v->ints())
        o->floats.push_back((double)x);
    natural = DType::Int64;
    break;
  case fb::AttrKind::Floats:
    if (v->floats())
      o->floats.assign(v->floats()->begin(), v->floats()->end());
    break;
  default:
    return invalidProgram("attribute 'value' of a constant instruction must be a number or a "
                          "list of numbers");
  }
  bool hasShape = false;
  KILN_TRY(a.getInts("shape", false, &o->ints, &hasShape));
  if (!hasShape) {
    o->ints.clear();
    if (!scalar)
      o->ints.push_back((int64_t)o->floats.size());
  }
  Result<Shape> s = Shape::make(o->ints);
  if (!s.ok())
    return invalidProgram("constant shape: " + s.error().message());
  if (s->numel() != (int64_t)o->floats.size())
    return invalidProgram("constant has " + std::to_string(o->floats.size()) +
                          " values for shape " + s->str());
  bool hasDtype = false;
  KILN_TRY(a.getDType("dtype", false, &o->dtype, &hasDtype));
  if (!hasDtype)
    o->dtype = natural;
  return Error::success();
}

Error runConstant(const KernelCall &call) {
  const OpAttrs &at = *call.attrs;
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(at.dtype, Result<Shape>(Shape::make(at.ints)).take()));
  int64_t n = out.numel();
  dispatchAll(at.dtype, [&](auto tag) {
    using T = decltype(tag);
    T *p = out.mutableDataAs<T>();
    for (int64_t i = 0; i < n; ++i)
      p[i] = fromDouble<T>(at.floats[(size_t)i]);
    return 0;
  });
  return Error::success();
}

Error parseDTypeOptional(const AttrSet &a, OpAttrs *o) {
  return a.getDType("dtype", false, &o->dtype, &o->hasDtype);
}

Error runArange(const KernelCall &call) {
  const Tensor *ts, *te, *tp;
  KILN_TRY(requireInput(call, 0, "start", &ts));
  KILN_TRY(requireInput(call, 1, "end", &te));
  KILN_TRY(requireInput(call, 2, "step", &tp));
  double start, end, step;
  KILN_TRY(readScalarDouble(call, *ts, "start", &start));
  KILN_TRY(readScalarDouble(call, *te, "end", &end));
  KILN_TRY(readScalarDouble(call, *tp, "step", &step));
  bool allInt = !isFloating(ts->dtype()) && !isFloating(te->dtype()) && !isFloating(tp->dtype());
  DType dt = call.attrs->hasDtype ? call.attrs->dtype : (allInt ? DType::Int64 : DType::Float32);
  if (!(step != 0) || std::isnan(start) || std::isnan(end) || std::isnan(step))
    return call.fail("step must be nonzero and bounds finite (start " + std::to_string(start) +
                     ", end " + std::to_string(end) + ", step " + std::to_string(step) + ")");
  if ((step > 0 && end < start) || (step < 0 && end > start))
    return call.fail("upper bound and larger bound inconsistent with step sign (start " +
                     std::to_string(start) + ", end " + std::to_string(end) + ", step " +
                     std::to_string(step) + ")");
  double len = std::ceil((end - start) / step);
  if (!(len >= 0 && len < 4.0e18))
    return call.fail("arange size " + std::to_string(len) + " is too large");
  int64_t n = (int64_t)len;
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(dt, Shape{n}));
  if (allInt) {
    int64_t s0, st;
    KILN_TRY(readScalarInt(call, *ts, "start", &s0));
    KILN_TRY(readScalarInt(call, *tp, "step", &st));
    dispatchAll(dt, [&](auto tag) {
      using T = decltype(tag);
      T *p = out.mutableDataAs<T>();
      for (int64_t i = 0; i < n; ++i)
        p[i] = convertElem<T, int64_t>((int64_t)((uint64_t)s0 + (uint64_t)i * (uint64_t)st));
      return 0;
    });
  } else {
    dispatchAll(dt, [&](auto tag) {
      using T = decltype(tag);
      T *p = out.mutableDataAs<T>();
      for (int64_t i = 0; i < n; ++i)
        p[i] = fromDouble<T>(start + (double)i * step);
      return 0;
    });
  }
  return Error::success();
}

Error parseFull(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getFloat("value", true, &o->value));
  return a.getDType("dtype", false, &o->dtype, &o->hasDtype);
}

Error runFull(const KernelCall &call) {
  const Tensor *st;
  KILN_TRY(requireInput(call, 0, "shape", &st));
  static thread_local std::vector<int64_t> dims; // keeps its capacity: no allocation per call
  KILN_TRY(readIntList(call, *st, "shape", &dims));
  Result<Shape> s = Shape::make(dims);
  if (!s.ok())
    return call.fail(s.error().message());
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(call.attrs->hasDtype ? call.attrs->dtype : DType::Float32, *s));
  fillWith(out, call.attrs->value);
  return Error::success();
}

Error runFullLike(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(call.attrs->hasDtype ? call.attrs->dtype : x->dtype(), x->shape()));
  fillWith(out, call.attrs->value);
  return Error::success();
}

} // namespace

extern const KernelDef kConstantKernel = {"constant", 0, 0, 1, 1, 0, parseConstant, runConstant};
extern const KernelDef kArangeKernel = {"arange", 3, 3, 1, 1, 0, parseDTypeOptional, runArange};
extern const KernelDef kFullKernel = {"full", 1, 1, 1, 1, 0, parseFull, runFull};
extern const KernelDef kFullLikeKernel = {"full_like", 1, 1, 1, 1, 0, parseFull, runFullLike};

} // namespace rt
} // namespace kiln
