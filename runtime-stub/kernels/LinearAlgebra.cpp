// linear (x @ w^T + b) and matmul (1-d, 2-d, batched with broadcasting).
// Portable loops with independent accumulators so compilers vectorise them.
#include "runtime-stub/kernels/KernelUtil.h"
#include "runtime-stub/kernels/QuantizedKernels.h"
#include "runtime-stub/kernels/opt/OptLinear.h"
#include "runtime-stub/kernels/opt/OptQuant.h"

#include <algorithm>
#include <type_traits>

namespace kiln {
namespace rt {

namespace {

// y[r][o] = dot(x[r], w[o]) for 4 rows of x at once (the w row is loaded once
// per 4 rows). Generic 4-lane vectors (GCC/Clang vector extension: SSE on
// x86-64, NEON on arm64, scalar elsewhere); two partial sums per row break the
// floating-point dependency chain.
typedef float V4 __attribute__((vector_size(16)));

inline V4 load4(const float *p) {
  V4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline float hsum(V4 a) { return (a[0] + a[2]) + (a[1] + a[3]); }

void dotRows4(const float *x0, const float *x1, const float *x2, const float *x3,
              const float *w, int64_t n, float *out) {
  V4 a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    V4 w0 = load4(w + i), w1 = load4(w + i + 4);
    a0 += load4(x0 + i) * w0;
    b0 += load4(x0 + i + 4) * w1;
    a1 += load4(x1 + i) * w0;
    b1 += load4(x1 + i + 4) * w1;
    a2 += load4(x2 + i) * w0;
    b2 += load4(x2 + i + 4) * w1;
    a3 += load4(x3 + i) * w0;
    b3 += load4(x3 + i + 4) * w1;
  }
  float s[4] = {hsum(a0 + b0), hsum(a1 + b1), hsum(a2 + b2), hsum(a3 + b3)};
  const float *xs[4] = {x0, x1, x2, x3};
  for (int r = 0; r < 4; ++r) {
    for (int64_t k = i; k < n; ++k)
      s[r] += xs[r][k] * w[k];
    out[r] = s[r];
  }
}

float dotRow(const float *x, const float *w, int64_t n) {
  float a[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j)
      a[j] += x[i + j] * w[i + j];
  float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
  for (; i < n; ++i)
    s += x[i] * w[i];
  return s;
}

// The optimized kernel's arguments for a `linear` call whose operands it reads
// as they are: f32 x (and bias [out]) with an f32 or a valid quantized weight
// of x's in-features; binds the f32 output. False (nothing reported) when the
// call needs runLinear's general path: portable kernels, other dtypes, or
// operands that runLinear rejects with an error.
bool directLinearArgs(const KernelCall &call, opt::LinearArgs *args) {
  const Tensor *x = call.input(0), *w = call.input(1), *b = call.input(2);
  if (call.portableOnly || !x || !w || x->dtype() != DType::Float32 || x->rank() < 1 ||
      w->rank() != 2 || !x->data() || !w->data())
    return false;
  const int64_t outF = w->dim(0), in = w->dim(1);
  if (in <= 0 || x->dim(x->rank() - 1) != in ||
      (b && !(b->dtype() == DType::Float32 && b->rank() == 1 && b->dim(0) == outF && b->data())))
    return false;
  if (w->isQuantized()) {
    if (checkQuantizedWeight(*w, "weight").failed())
      return false;
    args->kind = w->dtype() == DType::Int8 ? opt::WeightKind::Int8 : opt::WeightKind::Int4;
    args->scales = w->quant().scales;
    args->scalesF16 = w->quant().scalesDType == DType::Float16;
    args->group = w->quant().groupSize;
    args->strip16 = w->quant().layout != QuantLayout::Rows; // Int4Strip16 / Int8Strip16
    args->weightReadAgain = call.weightReadAgain;
  } else if (w->dtype() == DType::Float32) {
    args->kind = opt::WeightKind::F32;
  } else {
    return false;
  }
  Shape outShape = x->shape();
  outShape[outShape.rank() - 1] = outF;
  Tensor &out = *call.out[0];
  if (out.allocate(DType::Float32, outShape).failed())
    return false;
  args->x = x->dataAs<float>();
  args->rows = x->numel() / in;
  args->in = in;
  args->out = outF;
  args->w = w->data();
  args->bias = b ? b->dataAs<float>() : nullptr;
  args->y = out.mutableDataAs<float>();
  args->ldy = outF;
  return true;
}

Error runLinear(const KernelCall &call) {
  {
    opt::LinearArgs args;
    if (directLinearArgs(call, &args)) { // SIMD kernels chosen by CPU features (kernels/opt/)
      opt::linear(args, call.pool);
      return Error::success();
    }
  }
  const Tensor *x, *w;
  KILN_TRY(requireInput(call, 0, "x", &x));
  KILN_TRY(requireInput(call, 1, "weight", &w));
  const Tensor *b = call.input(2);
  if (w->isQuantized())
    return runQuantizedLinear(call, *x, *w, b);
  if (w->rank() != 2)
    return call.fail("weight must be 2-d [out, in], got " + w->describe());
  if (x->rank() < 1)
    return call.fail("x must have at least 1 dim, got " + x->describe());
  int64_t in = w->dim(1), outF = w->dim(0);
  if (x->dim(x->rank() - 1) != in)
    return call.fail("x " + x->describe() + " has " + std::to_string(x->dim(x->rank() - 1)) +
                     " features but weight " + w->describe() + " expects " + std::to_string(in));
  if (b && !(b->rank() == 1 && b->dim(0) == outF))
    return call.fail("bias " + b->describe() + " must be [" + std::to_string(outF) + "]");
  if (!isFloating(x->dtype()) || !isFloating(w->dtype()) || (b && !isFloating(b->dtype())))
    return call.fail("linear needs float tensors, got x " + x->describe() + ", weight " +
                     w->describe());
  DType rt = promoteTypes(x->dtype(), w->dtype());
  Tensor tx, tw, tb, res;
  Result<const Tensor *> cx = asDType(*x, DType::Float32, &tx);
  if (!cx.ok())
    return cx.error();
  Result<const Tensor *> cw = asDType(*w, DType::Float32, &tw);
  if (!cw.ok())
    return cw.error();
  const float *pb = nullptr;
  if (b) {
    Result<const Tensor *> cb = asDType(*b, DType::Float32, &tb);
    if (!cb.ok())
      return cb.error();
    pb = (*cb)->dataAs<float>();
  }
  Shape outShape = x->shape();
  outShape[outShape.rank() - 1] = outF;
  Tensor &out = *call.out[0];
  Tensor *dst = rt == DType::Float32 ? &out : &res;
  KILN_TRY(dst->allocate(DType::Float32, outShape));
  int64_t rows = in == 0 ? dimProduct(x->shape(), 0, x->rank() - 1) : x->numel() / in;
  const float *px = (*cx)->dataAs<float>();
  const float *pw = (*cw)->dataAs<float>();
  float *py = dst->mutableDataAs<float>();
  if (!call.portableOnly) { // SIMD kernels chosen by CPU features (kernels/opt/)
    opt::LinearArgs args;
    args.x = px;
    args.rows = rows;
    args.in = in;
    args.out = outF;
    args.w = pw;
    args.bias = pb;
    args.y = py;
    args.ldy = outF;
    opt::linear(args, call.pool);
    if (dst != &out)
      return castInto(res, rt, &out);
    return Error::success();
  }
  // Weights are the big operand: stream each weight row once and use it for a
  // block of x rows while it is in L1 (x blocks stay cached across rows of w).
  const int64_t kRowBlock = 64;
  for (int64_t r0 = 0; r0 < rows; r0 += kRowBlock) {
    int64_t r1 = std::min(rows, r0 + kRowBlock);
    for (int64_t o = 0; o < outF; ++o) {
      const float *wo = pw + o * in;
      float bias = pb ? pb[o] : 0.0f;
      int64_t r = r0;
      for (; r + 4 <= r1; r += 4) {
        const float *x0 = px + r * in;
        float v[4];
        dotRows4(x0, x0 + in, x0 + 2 * in, x0 + 3 * in, wo, in, v);
        for (int k = 0; k < 4; ++k)
          py[(r + k) * outF + o] = v[k] + bias;
      }
      for (; r < r1; ++r)
        py[r * outF + o] = dotRow(px + r * in, wo, in) + bias;
    }
  }
  if (dst != &out)
    return castInto(res, rt, &out);
  return Error::success();
}

// c[n,m] = a[n,k] @ b[k,m], c zero-initialised by the caller; i-p-j order keeps
// the innermost loop contiguous in b and c.
template <typename T>
void matmul2d(const T *a, const T *b, T *c, int64_t n, int64_t k, int64_t m) {
  for (int64_t i = 0; i < n; ++i) {
    T *ci = c + i * m;
    for (int64_t p = 0; p < k; ++p) {
      T av = a[i * k + p];
      const T *bp = b + p * m;
      for (int64_t j = 0; j < m; ++j)
        ci[j] += av * bp[j];
    }
  }
}

// c[n x m] = a[n x k] @ b[m x k]^T: every output element is one contiguous dot
// product, summed in the order of the untransposed kernel (p ascending).
template <typename T>
void matmul2dTransposedB(const T *a, const T *b, T *c, int64_t n, int64_t k, int64_t m) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      T sum = 0;
      for (int64_t p = 0; p < k; ++p)
        sum += a[i * k + p] * b[j * k + p];
      c[i * m + j] = sum;
    }
}

Error parseMatmul(const AttrSet &a, OpAttrs *o) {
  return a.getBool("transpose_b", false, &o->transposeB);
}

// `transpose_b` (set by kiln-fuse) reads b [..., m, k] as [..., k, m].
Error runMatmul(const KernelCall &call) {
  const bool transposeB = call.attrs->transposeB;
  const Tensor *a, *b;
  KILN_TRY(requireInput(call, 0, "a", &a));
  KILN_TRY(requireInput(call, 1, "b", &b));
  if (a->rank() == 0 || b->rank() == 0)
    return call.fail("both operands must have at least 1 dim, got " + a->describe() + " and " +
                     b->describe());
  if (transposeB && b->rank() < 2)
    return call.fail("transpose_b needs b of rank >= 2, got " + b->describe());
  if (a->dtype() == DType::Bool || b->dtype() == DType::Bool)
    return call.fail("matmul is not supported on bool tensors " + a->describe() + ", " +
                     b->describe());
  // Treat 1-d operands as a row (a) / column (b) and drop that dim at the end.
  Shape sa = a->shape(), sb = b->shape();
  bool aVec = sa.rank() == 1, bVec = sb.rank() == 1;
  if (aVec)
    sa = Shape{1, sa[0]};
  if (bVec)
    sb = Shape{sb[0], 1};
  int64_t n = sa[sa.rank() - 2], k = sa[sa.rank() - 1];
  int64_t k2 = sb[sb.rank() - (transposeB ? 1 : 2)], m = sb[sb.rank() - (transposeB ? 2 : 1)];
  if (k != k2)
    return call.fail("shapes " + a->shape().str() + " and " + b->shape().str() +
                     (transposeB ? " (transposed)" : "") + " cannot be multiplied (" +
                     std::to_string(k) + " vs " + std::to_string(k2) + ")");
  Shape batchA = Result<Shape>(Shape::make(sa.data(), (size_t)sa.rank() - 2)).take();
  Shape batchB = Result<Shape>(Shape::make(sb.data(), (size_t)sb.rank() - 2)).take();
  Shape batch;
  const Shape *shapes[2] = {&batchA, &batchB};
  KILN_TRY(broadcastShapes(call, shapes, 2, &batch));
  Shape outShape = batch;
  if (!aVec)
    outShape.push(n);
  if (!bVec)
    outShape.push(m);
  if (outShape.rank() > kMaxRank)
    return call.fail("result rank exceeds " + std::to_string(kMaxRank), ErrorCode::Unsupported);
  DType rt = promoteTypes(a->dtype(), b->dtype());
  DType ct = isFloating(rt) ? DType::Float32 : DType::Int64;
  Tensor ta, tb, res;
  Result<const Tensor *> ca = asDType(*a, ct, &ta);
  if (!ca.ok())
    return ca.error();
  Result<const Tensor *> cb = asDType(*b, ct, &tb);
  if (!cb.ok())
    return cb.error();
  Tensor &out = *call.out[0];
  Tensor *dst = rt == ct ? &out : &res;
  KILN_TRY(dst->allocate(ct, outShape));
  if (dst->nbytes() && !transposeB) // matmul2d accumulates into c
    std::memset(dst->mutableData(), 0, dst->nbytes());
  int64_t strides[2][kMaxRank];
  broadcastStrides(batchA, batch, strides[0]);
  broadcastStrides(batchB, batch, strides[1]);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T *pa = (*ca)->dataAs<T>();
    const T *pb = (*cb)->dataAs<T>();
    T *pc = dst->mutableDataAs<T>();
    forEachBroadcast<2>(batch, strides, [&](int64_t o, const std::array<int64_t, 2> &off) {
      if (transposeB && std::is_same<T, float>::value && !call.portableOnly) {
        opt::LinearArgs args; // c = a . b^T is a linear without bias
        args.x = reinterpret_cast<const float *>(pa + off[0] * n * k);
        args.rows = n;
        args.in = k;
        args.out = m;
        args.w = pb + off[1] * k * m;
        args.y = reinterpret_cast<float *>(pc + o * n * m);
        args.ldy = m;
        opt::linear(args, call.pool);
      } else if (transposeB)
        matmul2dTransposedB<T>(pa + off[0] * n * k, pb + off[1] * k * m, pc + o * n * m, n, k,
                               m);
      else
        matmul2d<T>(pa + off[0] * n * k, pb + off[1] * k * m, pc + o * n * m, n, k, m);
    });
    return 0;
  };
  if (ct == DType::Float32)
    run(float{});
  else
    run(int64_t{});
  if (dst != &out)
    return castInto(res, rt, &out);
  return Error::success();
}

} // namespace

static_assert(kMaxLinearGroupSize == opt::kMaxLinearGroup, "one limit for linear groups");

Error runLinearGroup(const KernelCall *const *calls, int n, bool *ran) {
  *ran = false;
  if (n < 2 || n > opt::kMaxLinearGroup)
    return Error::success();
  opt::LinearArgs args[opt::kMaxLinearGroup];
  const opt::LinearArgs *ptrs[opt::kMaxLinearGroup];
  for (int i = 0; i < n; ++i) {
    if (!directLinearArgs(*calls[i], &args[i]) || args[i].x != args[0].x)
      return Error::success(); // each call runs (and reports) on its own
    ptrs[i] = &args[i];
  }
  opt::linearGroup(ptrs, n, calls[0]->pool);
  *ran = true;
  return Error::success();
}

// The weight (input 1) may be a quantized weight (QuantizedLinear.cpp).
extern const KernelDef kLinearKernel = {"linear", 2, 3, 1, 1, 0x4u, parseNoAttrs, runLinear,
                                        /*quantizedInputs=*/0x2u};
extern const KernelDef kMatmulKernel = {"matmul", 2, 2, 1, 1, 0, parseMatmul, runMatmul};

} // namespace rt
} // namespace kiln
