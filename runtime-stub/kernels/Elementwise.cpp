// Elementwise kernels: unary, binary, compare, where, cast, clamp (PyTorch
// semantics incl. broadcasting and type promotion, docs/dialect.md).
#include "runtime-stub/kernels/KernelUtil.h"
#include "runtime-stub/kernels/opt/OptElementwise.h"

#include <algorithm>

namespace kiln {
namespace rt {
namespace {

// ---- shared -----------------------------------------------------------------

template <typename E> struct FnTable {
  const char *name;
  E fn;
};

template <typename E, size_t N>
Error parseFn(const AttrSet &attrs, const FnTable<E> (&table)[N], OpAttrs *out) {
  std::string s;
  KILN_TRY(attrs.getString("fn", true, &s));
  for (const auto &e : table) {
    if (s == e.name) {
      out->fn = (int)e.fn;
      return Error::success();
    }
  }
  std::string names;
  for (const auto &e : table)
    names += std::string(names.empty() ? "" : " ") + e.name;
  return invalidProgram("unknown fn '" + s + "' (expected one of: " + names + ")");
}

template <typename E, size_t N> const char *fnName(const FnTable<E> (&table)[N], int fn) {
  for (const auto &e : table)
    if ((int)e.fn == fn)
      return e.name;
  return "?";
}

/// The type kernels compute in for a (promoted) result dtype.
DType computeTypeFor(DType t) {
  if (isFloating(t))
    return DType::Float32;
  if (t == DType::Bool || t == DType::Int32)
    return t;
  return DType::Int64;
}

/// out = f(a, b) over T with broadcasting; R is the output storage type.
template <typename T, typename R, typename F>
void binaryLoop(const Tensor &a, const Tensor &b, Tensor &out, F f) {
  const T *pa = a.dataAs<T>();
  const T *pb = b.dataAs<T>();
  R *po = out.mutableDataAs<R>();
  int64_t n = out.numel();
  if (a.shape() == out.shape() && b.shape() == out.shape()) {
    for (int64_t i = 0; i < n; ++i)
      po[i] = f(pa[i], pb[i]);
  } else if (a.shape() == out.shape() && b.numel() == 1) {
    T vb = pb[0];
    for (int64_t i = 0; i < n; ++i)
      po[i] = f(pa[i], vb);
  } else if (b.shape() == out.shape() && a.numel() == 1) {
    T va = pa[0];
    for (int64_t i = 0; i < n; ++i)
      po[i] = f(va, pb[i]);
  } else {
    int64_t strides[2][kMaxRank];
    broadcastStrides(a.shape(), out.shape(), strides[0]);
    broadcastStrides(b.shape(), out.shape(), strides[1]);
    forEachBroadcast<2>(out.shape(), strides, [&](int64_t o, const std::array<int64_t, 2> &off) {
      po[o] = f(pa[off[0]], pb[off[1]]);
    });
  }
}

// ---- unary ------------------------------------------------------------------

enum class UnaryFn {
  Neg, Abs, Exp, Log, Sqrt, Rsqrt, Reciprocal, Sin, Cos, Tanh, Sigmoid, Relu, Silu, Gelu,
  GeluTanh, Erf, LogicalNot, Floor, Ceil, Round
};
const FnTable<UnaryFn> kUnaryFns[] = {
    {"neg", UnaryFn::Neg},         {"abs", UnaryFn::Abs},
    {"exp", UnaryFn::Exp},         {"log", UnaryFn::Log},
    {"sqrt", UnaryFn::Sqrt},       {"rsqrt", UnaryFn::Rsqrt},
    {"reciprocal", UnaryFn::Reciprocal}, {"sin", UnaryFn::Sin},
    {"cos", UnaryFn::Cos},         {"tanh", UnaryFn::Tanh},
    {"sigmoid", UnaryFn::Sigmoid}, {"relu", UnaryFn::Relu},
    {"silu", UnaryFn::Silu},       {"gelu", UnaryFn::Gelu},
    {"gelu_tanh", UnaryFn::GeluTanh}, {"erf", UnaryFn::Erf},
    {"logical_not", UnaryFn::LogicalNot}, {"floor", UnaryFn::Floor},
    {"ceil", UnaryFn::Ceil},       {"round", UnaryFn::Round},
};

Error parseUnary(const AttrSet &a, OpAttrs *o) { return parseFn(a, kUnaryFns, o); }

bool isFloatOnly(UnaryFn fn) {
  switch (fn) {
  case UnaryFn::Neg: case UnaryFn::Abs: case UnaryFn::Relu: case UnaryFn::LogicalNot:
  case UnaryFn::Floor: case UnaryFn::Ceil: case UnaryFn::Round:
    return false;
  default:
    return true;
  }
}

template <typename F> void mapF32(const float *x, float *y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = f(x[i]);
}

void unaryFloat(UnaryFn fn, const float *x, float *y, int64_t n) {
  switch (fn) {
  case UnaryFn::Neg: mapF32(x, y, n, [](float v) { return -v; }); break;
  case UnaryFn::Abs: mapF32(x, y, n, [](float v) { return std::fabs(v); }); break;
  case UnaryFn::Exp: mapF32(x, y, n, [](float v) { return std::exp(v); }); break;
  case UnaryFn::Log: mapF32(x, y, n, [](float v) { return std::log(v); }); break;
  case UnaryFn::Sqrt: mapF32(x, y, n, [](float v) { return std::sqrt(v); }); break;
  case UnaryFn::Rsqrt: mapF32(x, y, n, [](float v) { return 1.0f / std::sqrt(v); }); break;
  case UnaryFn::Reciprocal: mapF32(x, y, n, [](float v) { return 1.0f / v; }); break;
  case UnaryFn::Sin: mapF32(x, y, n, [](float v) { return std::sin(v); }); break;
  case UnaryFn::Cos: mapF32(x, y, n, [](float v) { return std::cos(v); }); break;
  case UnaryFn::Tanh: mapF32(x, y, n, [](float v) { return std::tanh(v); }); break;
  case UnaryFn::Sigmoid:
    mapF32(x, y, n, [](float v) { return 1.0f / (1.0f + std::exp(-v)); });
    break;
  case UnaryFn::Relu: mapF32(x, y, n, [](float v) { return v > 0.0f ? v : (v == v ? 0.0f : v); }); break;
  case UnaryFn::Silu: mapF32(x, y, n, [](float v) { return v / (1.0f + std::exp(-v)); }); break;
  case UnaryFn::Gelu:
    mapF32(x, y, n, [](float v) {
      return 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752440f));
    });
    break;
  case UnaryFn::GeluTanh:
    // PyTorch approximate='tanh': 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    mapF32(x, y, n, [](float v) {
      const float kBeta = 0.79788456080286535588f; // sqrt(2/pi)
      const float kKappa = 0.044715f;
      float inner = kBeta * (v + kKappa * v * v * v);
      return 0.5f * v * (1.0f + std::tanh(inner));
    });
    break;
  case UnaryFn::Erf: mapF32(x, y, n, [](float v) { return std::erf(v); }); break;
  case UnaryFn::Floor: mapF32(x, y, n, [](float v) { return std::floor(v); }); break;
  case UnaryFn::Ceil: mapF32(x, y, n, [](float v) { return std::ceil(v); }); break;
  case UnaryFn::Round: mapF32(x, y, n, [](float v) { return std::nearbyint(v); }); break;
  case UnaryFn::LogicalNot: break; // handled by the caller
  }
}

template <typename T> void unaryInt(UnaryFn fn, const T *x, T *y, int64_t n) {
  using U = typename std::make_unsigned<T>::type;
  for (int64_t i = 0; i < n; ++i) {
    T v = x[i];
    switch (fn) {
    case UnaryFn::Neg: y[i] = (T)(U)(0 - (U)v); break; // wraps like PyTorch
    case UnaryFn::Abs: y[i] = v < 0 ? (T)(U)(0 - (U)v) : v; break;
    case UnaryFn::Relu: y[i] = v > 0 ? v : 0; break;
    default: y[i] = v; break; // floor/ceil/round of an integer
    }
  }
}

Error runUnary(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  Tensor &out = *call.out[0];
  UnaryFn fn = (UnaryFn)call.attrs->fn;
  int64_t n = x->numel();
  if (fn == UnaryFn::LogicalNot) {
    Tensor tmp;
    Result<const Tensor *> b = asDType(*x, DType::Bool, &tmp);
    if (!b.ok())
      return b.error();
    KILN_TRY(out.allocate(DType::Bool, x->shape()));
    const uint8_t *px = (*b)->dataAs<uint8_t>();
    uint8_t *po = out.mutableDataAs<uint8_t>();
    for (int64_t i = 0; i < n; ++i)
      po[i] = px[i] ? 0 : 1;
    return Error::success();
  }
  DType in = x->dtype();
  if (in == DType::Bool) {
    if (fn == UnaryFn::Neg)
      return call.fail("neg is not supported on bool tensors (use logical_not), input " +
                       x->describe());
    if (!isFloatOnly(fn)) { // abs/relu/floor/ceil/round of bool: identity
      KILN_TRY(out.allocate(DType::Bool, x->shape()));
      if (out.data() != x->data()) // in place (memory plan): nothing to copy
        std::memcpy(out.mutableData(), x->data(), x->nbytes());
      return Error::success();
    }
  }
  if (in == DType::Int64 && !isFloatOnly(fn)) {
    KILN_TRY(out.allocate(in, x->shape()));
    unaryInt(fn, x->dataAs<int64_t>(), out.mutableDataAs<int64_t>(), n);
    return Error::success();
  }
  if (in == DType::Int32 && !isFloatOnly(fn)) {
    KILN_TRY(out.allocate(in, x->shape()));
    unaryInt(fn, x->dataAs<int32_t>(), out.mutableDataAs<int32_t>(), n);
    return Error::success();
  }
  if ((in == DType::Int8 || in == DType::UInt8) && !isFloatOnly(fn)) {
    Tensor wide, res;
    KILN_TRY(castInto(*x, DType::Int64, &wide));
    KILN_TRY(res.allocate(DType::Int64, x->shape()));
    unaryInt(fn, wide.dataAs<int64_t>(), res.mutableDataAs<int64_t>(), n);
    return castInto(res, in, &out);
  }
  // Float math in f32; integer inputs of float-only fns give f32 (PyTorch).
  DType resultType = isFloating(in) ? in : DType::Float32;
  Tensor tmp;
  Result<const Tensor *> xf = asDType(*x, DType::Float32, &tmp);
  if (!xf.ok())
    return xf.error();
  if (resultType == DType::Float32) {
    KILN_TRY(out.allocate(DType::Float32, x->shape()));
    unaryFloat(fn, (*xf)->dataAs<float>(), out.mutableDataAs<float>(), n);
    return Error::success();
  }
  Tensor res;
  KILN_TRY(res.allocate(DType::Float32, x->shape()));
  unaryFloat(fn, (*xf)->dataAs<float>(), res.mutableDataAs<float>(), n);
  return castInto(res, resultType, &out);
}

// ---- binary -----------------------------------------------------------------

enum class BinaryFn { Add, Sub, Mul, Div, FloorDiv, TruncDiv, Remainder, Pow, Maximum, Minimum };
const FnTable<BinaryFn> kBinaryFns[] = {
    {"add", BinaryFn::Add},           {"sub", BinaryFn::Sub},
    {"mul", BinaryFn::Mul},           {"div", BinaryFn::Div},
    {"floor_div", BinaryFn::FloorDiv}, {"trunc_div", BinaryFn::TruncDiv},
    {"remainder", BinaryFn::Remainder}, {"pow", BinaryFn::Pow},
    {"maximum", BinaryFn::Maximum},   {"minimum", BinaryFn::Minimum},
};

Error parseBinary(const AttrSet &a, OpAttrs *o) { return parseFn(a, kBinaryFns, o); }

/// numel of `s` when an operand of shape s repeats along the leading dims of
/// `out` (s without its leading 1s equals out's trailing dims: same shape,
/// scalar, RoPE's [T, D] against [B, H, T, D]), else -1.
int64_t repeatPeriod(const Shape &s, const Shape &out) {
  int first = 0;
  while (first < s.rank() && s[first] == 1)
    ++first;
  int k = s.rank() - first;
  if (k > out.rank())
    return -1;
  for (int i = 0; i < k; ++i)
    if (s[first + i] != out[out.rank() - k + i])
      return -1;
  return s.numel();
}
static_assert((int)BinaryFn::Add == (int)opt::BinaryOp::Add &&
                  (int)BinaryFn::Sub == (int)opt::BinaryOp::Sub &&
                  (int)BinaryFn::Mul == (int)opt::BinaryOp::Mul &&
                  (int)BinaryFn::Div == (int)opt::BinaryOp::Div,
              "opt::BinaryOp mirrors the first BinaryFn values");

void binaryFloat(BinaryFn fn, const Tensor &a, const Tensor &b, Tensor &out) {
  switch (fn) {
  case BinaryFn::Add: binaryLoop<float, float>(a, b, out, [](float x, float y) { return x + y; }); break;
  case BinaryFn::Sub: binaryLoop<float, float>(a, b, out, [](float x, float y) { return x - y; }); break;
  case BinaryFn::Mul: binaryLoop<float, float>(a, b, out, [](float x, float y) { return x * y; }); break;
  case BinaryFn::Div: binaryLoop<float, float>(a, b, out, [](float x, float y) { return x / y; }); break;
  case BinaryFn::FloorDiv:
    binaryLoop<float, float>(a, b, out, [](float x, float y) { return std::floor(x / y); });
    break;
  case BinaryFn::TruncDiv:
    binaryLoop<float, float>(a, b, out, [](float x, float y) { return std::trunc(x / y); });
    break;
  case BinaryFn::Remainder:
    // Python/PyTorch remainder: result has the sign of the divisor.
    binaryLoop<float, float>(a, b, out, [](float x, float y) {
      float r = std::fmod(x, y);
      if (r != 0.0f && ((r < 0.0f) != (y < 0.0f)))
        r += y;
      return r;
    });
    break;
  case BinaryFn::Pow:
    binaryLoop<float, float>(a, b, out, [](float x, float y) { return std::pow(x, y); });
    break;
  case BinaryFn::Maximum:
    binaryLoop<float, float>(a, b, out, [](float x, float y) {
      return (x != x || y != y) ? std::numeric_limits<float>::quiet_NaN() : (x > y ? x : y);
    });
    break;
  case BinaryFn::Minimum:
    binaryLoop<float, float>(a, b, out, [](float x, float y) {
      return (x != x || y != y) ? std::numeric_limits<float>::quiet_NaN() : (x < y ? x : y);
    });
    break;
  }
}

template <typename T> T intPow(T base, T exp) {
  using U = typename std::make_unsigned<T>::type;
  U result = 1, b = (U)base;
  while (exp > 0) {
    if (exp & 1)
      result *= b;
    b *= b;
    exp >>= 1;
  }
  return (T)result;
}

// Integer ops wrap (computed unsigned); division by zero sets *divByZero.
template <typename T>
void binaryInt(BinaryFn fn, const Tensor &a, const Tensor &b, Tensor &out, bool *divByZero,
               bool *negPow) {
  using U = typename std::make_unsigned<T>::type;
  const T kMin = std::numeric_limits<T>::min();
  switch (fn) {
  case BinaryFn::Add: binaryLoop<T, T>(a, b, out, [](T x, T y) { return (T)((U)x + (U)y); }); break;
  case BinaryFn::Sub: binaryLoop<T, T>(a, b, out, [](T x, T y) { return (T)((U)x - (U)y); }); break;
  case BinaryFn::Mul: binaryLoop<T, T>(a, b, out, [](T x, T y) { return (T)((U)x * (U)y); }); break;
  case BinaryFn::FloorDiv:
  case BinaryFn::TruncDiv:
  case BinaryFn::Remainder:
    binaryLoop<T, T>(a, b, out, [&](T x, T y) -> T {
      if (y == 0) {
        *divByZero = true;
        return 0;
      }
      if (y == -1) // avoids MIN / -1 overflow
        return fn == BinaryFn::Remainder ? 0 : (T)(0 - (U)x);
      T q = x / y, r = x % y;
      if (fn == BinaryFn::TruncDiv)
        return q;
      bool adjust = r != 0 && ((r < 0) != (y < 0));
      if (fn == BinaryFn::FloorDiv)
        return adjust ? q - 1 : q;
      return adjust ? r + y : r;
    });
    (void)kMin;
    break;
  case BinaryFn::Pow:
    binaryLoop<T, T>(a, b, out, [&](T x, T y) -> T {
      if (y < 0) {
        *negPow = true;
        return 0;
      }
      return intPow<T>(x, y);
    });
    break;
  case BinaryFn::Maximum: binaryLoop<T, T>(a, b, out, [](T x, T y) { return x > y ? x : y; }); break;
  case BinaryFn::Minimum: binaryLoop<T, T>(a, b, out, [](T x, T y) { return x < y ? x : y; }); break;
  case BinaryFn::Div: break; // computed in float by the caller
  }
}

Error runBinary(const KernelCall &call) {
  const Tensor *a, *b;
  KILN_TRY(requireInput(call, 0, "a", &a));
  KILN_TRY(requireInput(call, 1, "b", &b));
  BinaryFn fn = (BinaryFn)call.attrs->fn;
  const char *name = fnName(kBinaryFns, call.attrs->fn);
  Shape outShape;
  const Shape *shapes[2] = {&a->shape(), &b->shape()};
  KILN_TRY(broadcastShapes(call, shapes, 2, &outShape));
  DType resultType = promoteTypes(a->dtype(), b->dtype());
  if (fn == BinaryFn::Div && !isFloating(resultType))
    resultType = DType::Float32; // true division
  DType ct = computeTypeFor(resultType);
  if (ct == DType::Bool) {
    // bool op bool: add = or, mul = and, maximum = or, minimum = and (PyTorch).
    if (fn != BinaryFn::Add && fn != BinaryFn::Mul && fn != BinaryFn::Maximum &&
        fn != BinaryFn::Minimum)
      return call.fail(std::string(name) + " is not supported on bool tensors " +
                       a->describe() + " and " + b->describe());
    KILN_TRY(call.out[0]->allocate(DType::Bool, outShape));
    bool isOr = fn == BinaryFn::Add || fn == BinaryFn::Maximum;
    binaryLoop<uint8_t, uint8_t>(*a, *b, *call.out[0], [isOr](uint8_t x, uint8_t y) {
      return (uint8_t)(isOr ? ((x | y) != 0) : ((x != 0) & (y != 0)));
    });
    return Error::success();
  }
  Tensor ta, tb, res;
  Result<const Tensor *> ca = asDType(*a, ct, &ta);
  if (!ca.ok())
    return ca.error();
  Result<const Tensor *> cb = asDType(*b, ct, &tb);
  if (!cb.ok())
    return cb.error();
  Tensor &out = *call.out[0];
  Tensor *dst = resultType == ct ? &out : &res;
  KILN_TRY(dst->allocate(ct, outShape));
  bool divByZero = false, negPow = false;
  int64_t periodA = ct == DType::Float32 ? repeatPeriod((*ca)->shape(), outShape) : -1;
  int64_t periodB = ct == DType::Float32 ? repeatPeriod((*cb)->shape(), outShape) : -1;
  if (!call.portableOnly && fn <= BinaryFn::Div && periodA > 0 && periodB > 0 &&
      (periodA == outShape.numel() || periodB == outShape.numel()))
    opt::binary((opt::BinaryOp)fn, (*ca)->dataAs<float>(), periodA, (*cb)->dataAs<float>(),
                periodB, dst->mutableDataAs<float>(), outShape.numel(),
                call.pool); // SIMD (kernels/opt/)
  else if (ct == DType::Float32)
    binaryFloat(fn, **ca, **cb, *dst);
  else if (ct == DType::Int64)
    binaryInt<int64_t>(fn, **ca, **cb, *dst, &divByZero, &negPow);
  else
    binaryInt<int32_t>(fn, **ca, **cb, *dst, &divByZero, &negPow);
  if (divByZero)
    return call.fail(std::string(name) + ": integer division by zero (" + a->describe() +
                     ", " + b->describe() + ")");
  if (negPow)
    return call.fail("pow: integers to negative integer powers are not allowed (" +
                     a->describe() + ", " + b->describe() + ")");
  if (dst != &out)
    return castInto(res, resultType, &out);
  return Error::success();
}

// ---- compare ----------------------------------------------------------------

enum class CompareFn { Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr, LogicalXor };
const FnTable<CompareFn> kCompareFns[] = {
    {"eq", CompareFn::Eq}, {"ne", CompareFn::Ne}, {"lt", CompareFn::Lt},
    {"le", CompareFn::Le}, {"gt", CompareFn::Gt}, {"ge", CompareFn::Ge},
    {"logical_and", CompareFn::LogicalAnd}, {"logical_or", CompareFn::LogicalOr},
    {"logical_xor", CompareFn::LogicalXor},
};

Error parseCompare(const AttrSet &a, OpAttrs *o) { return parseFn(a, kCompareFns, o); }

template <typename T> void compareLoop(CompareFn fn, const Tensor &a, const Tensor &b, Tensor &out) {
  auto run = [&](auto f) { binaryLoop<T, uint8_t>(a, b, out, f); };
  switch (fn) {
  case CompareFn::Eq: run([](T x, T y) { return (uint8_t)(x == y); }); break;
  case CompareFn::Ne: run([](T x, T y) { return (uint8_t)(x != y); }); break;
  case CompareFn::Lt: run([](T x, T y) { return (uint8_t)(x < y); }); break;
  case CompareFn::Le: run([](T x, T y) { return (uint8_t)(x <= y); }); break;
  case CompareFn::Gt: run([](T x, T y) { return (uint8_t)(x > y); }); break;
  case CompareFn::Ge: run([](T x, T y) { return (uint8_t)(x >= y); }); break;
  case CompareFn::LogicalAnd: run([](T x, T y) { return (uint8_t)((x != 0) && (y != 0)); }); break;
  case CompareFn::LogicalOr: run([](T x, T y) { return (uint8_t)((x != 0) || (y != 0)); }); break;
  case CompareFn::LogicalXor: run([](T x, T y) { return (uint8_t)((x != 0) != (y != 0)); }); break;
  }
}

Error runCompare(const KernelCall &call) {
  const Tensor *a, *b;
  KILN_TRY(requireInput(call, 0, "a", &a));
  KILN_TRY(requireInput(call, 1, "b", &b));
  CompareFn fn = (CompareFn)call.attrs->fn;
  Shape outShape;
  const Shape *shapes[2] = {&a->shape(), &b->shape()};
  KILN_TRY(broadcastShapes(call, shapes, 2, &outShape));
  bool logical = fn == CompareFn::LogicalAnd || fn == CompareFn::LogicalOr ||
                 fn == CompareFn::LogicalXor;
  DType ct = logical ? DType::Bool : computeTypeFor(promoteTypes(a->dtype(), b->dtype()));
  Tensor ta, tb;
  Result<const Tensor *> ca = asDType(*a, ct, &ta);
  if (!ca.ok())
    return ca.error();
  Result<const Tensor *> cb = asDType(*b, ct, &tb);
  if (!cb.ok())
    return cb.error();
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(DType::Bool, outShape));
  switch (ct) {
  case DType::Float32: compareLoop<float>(fn, **ca, **cb, out); break;
  case DType::Int32: compareLoop<int32_t>(fn, **ca, **cb, out); break;
  case DType::Bool: compareLoop<uint8_t>(fn, **ca, **cb, out); break;
  default: compareLoop<int64_t>(fn, **ca, **cb, out); break;
  }
  return Error::success();
}

// ---- where ------------------------------------------------------------------

template <typename E>
void whereLoop(const Tensor &c, const Tensor &a, const Tensor &b, Tensor &out) {
  const uint8_t *pc = c.dataAs<uint8_t>();
  const E *pa = a.dataAs<E>();
  const E *pb = b.dataAs<E>();
  E *po = out.mutableDataAs<E>();
  int64_t strides[3][kMaxRank];
  broadcastStrides(c.shape(), out.shape(), strides[0]);
  broadcastStrides(a.shape(), out.shape(), strides[1]);
  broadcastStrides(b.shape(), out.shape(), strides[2]);
  forEachBroadcast<3>(out.shape(), strides, [&](int64_t o, const std::array<int64_t, 3> &off) {
    po[o] = pc[off[0]] ? pa[off[1]] : pb[off[2]];
  });
}

Error runWhere(const KernelCall &call) {
  const Tensor *c, *a, *b;
  KILN_TRY(requireInput(call, 0, "cond", &c));
  KILN_TRY(requireInput(call, 1, "a", &a));
  KILN_TRY(requireInput(call, 2, "b", &b));
  if (c->dtype() != DType::Bool && c->dtype() != DType::UInt8)
    return call.fail("condition must be a bool tensor, got " + c->describe());
  Shape outShape;
  const Shape *shapes[3] = {&c->shape(), &a->shape(), &b->shape()};
  KILN_TRY(broadcastShapes(call, shapes, 3, &outShape));
  DType rt = promoteTypes(a->dtype(), b->dtype());
  Tensor ta, tb;
  Result<const Tensor *> ca = asDType(*a, rt, &ta);
  if (!ca.ok())
    return ca.error();
  Result<const Tensor *> cb = asDType(*b, rt, &tb);
  if (!cb.ok())
    return cb.error();
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(rt, outShape));
  switch (dtypeSize(rt)) {
  case 1: whereLoop<uint8_t>(*c, **ca, **cb, out); break;
  case 2: whereLoop<uint16_t>(*c, **ca, **cb, out); break;
  case 4: whereLoop<uint32_t>(*c, **ca, **cb, out); break;
  default: whereLoop<uint64_t>(*c, **ca, **cb, out); break;
  }
  return Error::success();
}

// ---- cast, clamp, copy --------------------------------------------------------

Error parseCast(const AttrSet &a, OpAttrs *o) {
  return a.getDType("dtype", true, &o->dtype, &o->hasDtype);
}

Error runCast(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  return castInto(*x, call.attrs->dtype, call.out[0]);
}

// `x.type_as(like)` where `like`'s dtype is only known at run time.
Error runCastLike(const KernelCall &call) {
  const Tensor *x;
  const Tensor *like;
  KILN_TRY(requireInput(call, 0, "x", &x));
  KILN_TRY(requireInput(call, 1, "like", &like));
  return castInto(*x, like->dtype(), call.out[0]);
}

Error runCopy(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x->dtype(), x->shape()));
  // The memory plan may put the copy on its operand (in place).
  if (x->nbytes() && out.data() != x->data())
    std::memcpy(out.mutableData(), x->data(), x->nbytes());
  return Error::success();
}

Error parseClamp(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getFloat("min", false, &o->minValue, &o->hasMin));
  KILN_TRY(a.getFloat("max", false, &o->maxValue, &o->hasMax));
  return Error::success();
}

Error runClamp(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  const OpAttrs &at = *call.attrs;
  DType dt = x->dtype();
  if (dt == DType::Bool)
    return call.fail("clamp is not supported on bool tensor " + x->describe());
  // A fractional bound promotes an integer tensor to f32, like PyTorch's
  // result_type(int tensor, float scalar).
  if (!isFloating(dt) && ((at.hasMin && at.minValue != std::floor(at.minValue)) ||
                          (at.hasMax && at.maxValue != std::floor(at.maxValue))))
    dt = DType::Float32;
  DType ct = computeTypeFor(dt);
  Tensor tx, res;
  Result<const Tensor *> cx = asDType(*x, ct, &tx);
  if (!cx.ok())
    return cx.error();
  Tensor &out = *call.out[0];
  Tensor *dst = ct == dt ? &out : &res;
  KILN_TRY(dst->allocate(ct, x->shape()));
  int64_t n = x->numel();
  if (ct == DType::Float32) {
    const float *px = (*cx)->dataAs<float>();
    float *po = dst->mutableDataAs<float>();
    float lo = (float)at.minValue, hi = (float)at.maxValue;
    for (int64_t i = 0; i < n; ++i) {
      float v = px[i];
      if (at.hasMin && v < lo)
        v = lo;
      if (at.hasMax && v > hi)
        v = hi; // min > max gives max, like PyTorch
      po[i] = v;
    }
  } else {
    auto clampInt = [&](auto tag) {
      using T = decltype(tag);
      const T *px = (*cx)->dataAs<T>();
      T *po = dst->mutableDataAs<T>();
      for (int64_t i = 0; i < n; ++i) {
        T v = px[i];
        if (at.hasMin && (double)v < at.minValue)
          v = convertElem<T, float>((float)at.minValue);
        if (at.hasMax && (double)v > at.maxValue)
          v = convertElem<T, float>((float)at.maxValue);
        po[i] = v;
      }
      return 0;
    };
    if (ct == DType::Int32)
      clampInt(int32_t{});
    else
      clampInt(int64_t{});
  }
  if (dst != &out)
    return castInto(res, dt, &out);
  return Error::success();
}

} // namespace

extern const KernelDef kUnaryKernel = {"unary", 1, 1, 1, 1, 0, parseUnary, runUnary};
extern const KernelDef kBinaryKernel = {"binary", 2, 2, 1, 1, 0, parseBinary, runBinary};
extern const KernelDef kCompareKernel = {"compare", 2, 2, 1, 1, 0, parseCompare, runCompare};
extern const KernelDef kWhereKernel = {"where", 3, 3, 1, 1, 0, parseNoAttrs, runWhere};
extern const KernelDef kCastKernel = {"cast", 1, 1, 1, 1, 0, parseCast, runCast};
extern const KernelDef kCastLikeKernel = {"cast_like", 2, 2, 1, 1, 0, parseNoAttrs, runCastLike};
extern const KernelDef kClampKernel = {"clamp", 1, 1, 1, 1, 0, parseClamp, runClamp};
extern const KernelDef kCopyKernel = {"copy", 1, 1, 1, 1, 0, parseNoAttrs, runCopy};

} // namespace rt
} // namespace kiln
