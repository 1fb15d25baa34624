// Shape and layout ops: reshape, expand, permute, transpose, unsqueeze, squeeze,
// flatten, repeat, repeat_interleave, triangular, dim_size, shape_of. Outputs are
// contiguous copies (aliasing is left to the memory planner).
#include "runtime-stub/core/ThreadPool.h"
#include "runtime-stub/kernels/KernelUtil.h"

#include <algorithm>

namespace kiln {
namespace rt {
namespace {

std::string listStr(const std::vector<int64_t> &v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i)
    s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

Error copyWithShape(const KernelCall &call, const Tensor &x, const Shape &shape) {
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x.dtype(), shape));
  // The memory plan may put a view's result on its operand (in place).
  if (x.nbytes() && out.data() != x.data())
    std::memcpy(out.mutableData(), x.data(), x.nbytes());
  return Error::success();
}

Error makeShape(const KernelCall &call, const std::vector<int64_t> &dims, Shape *out) {
  Result<Shape> s = Shape::make(dims);
  if (!s.ok())
    return call.fail(s.error().message() + " (shape " + listStr(dims) + ")");
  *out = *s;
  return Error::success();
}

// ---- reshape ----------------------------------------------------------------

Error runReshape(const KernelCall &call) {
  const Tensor *x, *shapeT;
  KILN_TRY(requireInput(call, 0, "x", &x));
  KILN_TRY(requireInput(call, 1, "shape", &shapeT));
  static thread_local std::vector<int64_t> dims; // keeps its capacity: no allocation per call
  KILN_TRY(readIntList(call, *shapeT, "shape", &dims));
  int inferAt = -1;
  int64_t known = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == -1) {
      if (inferAt >= 0)
        return call.fail("shape " + listStr(dims) + " has more than one -1");
      inferAt = (int)i;
    } else if (dims[i] < 0) {
      return call.fail("shape " + listStr(dims) + " has an invalid dim " +
                       std::to_string(dims[i]));
    } else if (!checkedMul(known, dims[i], &known)) {
      return call.fail("shape " + listStr(dims) + " is too large");
    }
  }
  int64_t n = x->numel();
  if (inferAt >= 0) {
    if (known == 0 || n % known != 0)
      return call.fail("cannot reshape " + x->describe() + " (" + std::to_string(n) +
                       " elements) into shape " + listStr(dims));
    dims[(size_t)inferAt] = n / known;
  } else if (known != n) {
    return call.fail("cannot reshape " + x->describe() + " (" + std::to_string(n) +
                     " elements) into shape " + listStr(dims));
  }
  Shape s;
  KILN_TRY(makeShape(call, dims, &s));
  return copyWithShape(call, *x, s);
}

// ---- expand -----------------------------------------------------------------

Error runExpand(const KernelCall &call) {
  const Tensor *x, *shapeT;
  KILN_TRY(requireInput(call, 0, "x", &x));
  KILN_TRY(requireInput(call, 1, "shape", &shapeT));
  static thread_local std::vector<int64_t> dims; // keeps its capacity: no allocation per call
  KILN_TRY(readIntList(call, *shapeT, "shape", &dims));
  int r = x->rank();
  int nr = (int)dims.size();
  if (nr < r)
    return call.fail("cannot expand " + x->describe() + " to fewer dims " + listStr(dims));
  int64_t inStrides[kMaxRank], strides[kMaxRank];
  contiguousStrides(x->shape(), inStrides);
  for (int i = 0; i < nr; ++i) {
    int j = i - (nr - r);
    if (j < 0) {
      if (dims[(size_t)i] < 0)
        return call.fail("expand " + x->describe() + " to " + listStr(dims) +
                         ": -1 is not allowed for a new leading dim");
      strides[i] = 0;
      continue;
    }
    int64_t d = x->dim(j);
    if (dims[(size_t)i] == -1)
      dims[(size_t)i] = d;
    if (dims[(size_t)i] == d) {
      strides[i] = inStrides[j];
    } else if (d == 1 && dims[(size_t)i] >= 0) {
      strides[i] = 0;
    } else {
      return call.fail("cannot expand " + x->describe() + " to " + listStr(dims) + " (dim " +
                       std::to_string(i) + ")");
    }
  }
  Shape s;
  KILN_TRY(makeShape(call, dims, &s));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x->dtype(), s));
  gatherStrided(*x, 0, strides, out);
  return Error::success();
}

// ---- permute / transpose ----------------------------------------------------

Error parsePermute(const AttrSet &a, OpAttrs *o) { return a.getInts("perm", true, &o->ints); }

Error permuteBy(const KernelCall &call, const Tensor &x, const int *perm) {
  int r = x.rank();
  int64_t inStrides[kMaxRank], strides[kMaxRank];
  contiguousStrides(x.shape(), inStrides);
  Shape s;
  for (int i = 0; i < r; ++i) {
    s.push(x.dim(perm[i]));
    strides[i] = inStrides[perm[i]];
  }
  // Only size-1 dims move (a decode step's [1, 1, H, D] -> [1, H, 1, D]): the
  // bytes stay as they are, and kiln-plan-memory may put the result on x.
  if (permutationKeepsBytes(x.shape().data(), r, perm))
    return copyWithShape(call, x, s);
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x.dtype(), s));
  // A prefill chunk's [1, T, H, D] -> [1, H, T, D] (and back): split over the
  // pool along the first dim of size > 1, each piece gathered like the whole.
  constexpr int64_t kSplitElements = 32 * 1024;
  int lead = 0;
  while (lead < r && s[lead] == 1)
    ++lead;
  if (call.pool && call.pool->numThreads() > 1 && out.numel() >= kSplitElements && lead < r &&
      out.data() != x.data()) {
    const int64_t inner = out.numel() / dimProduct(s, 0, lead + 1);
    const size_t es = dtypeSize(out.dtype());
    uint8_t *po = out.mutableDataAs<uint8_t>();
    call.pool->parallelFor(s[lead], 1, [&](int64_t j0, int64_t j1) {
      Shape piece = s;
      piece[lead] = j1 - j0;
      Tensor part = Tensor::bindToArena(out.dtype(), piece, po + (size_t)(j0 * inner) * es);
      gatherStrided(x, j0 * strides[lead], strides, part);
    });
    return Error::success();
  }
  gatherStrided(x, 0, strides, out);
  return Error::success();
}

Error runPermute(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  const std::vector<int64_t> &p = call.attrs->ints;
  int r = x->rank();
  if ((int)p.size() != r)
    return call.fail("perm " + listStr(p) + " does not match the rank of " + x->describe());
  int perm[kMaxRank];
  bool seen[kMaxRank] = {};
  for (int i = 0; i < r; ++i) {
    KILN_TRY(normalizeDim(call, p[(size_t)i], r, &perm[i], "perm entry"));
    if (seen[perm[i]])
      return call.fail("perm " + listStr(p) + " repeats a dim");
    seen[perm[i]] = true;
  }
  return permuteBy(call, *x, perm);
}

Error parseTranspose(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getInt("dim0", true, &o->dim0));
  return a.getInt("dim1", true, &o->dim1);
}

Error runTranspose(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int r = x->rank();
  int d0, d1;
  KILN_TRY(normalizeDim(call, call.attrs->dim0, r, &d0, "dim0"));
  KILN_TRY(normalizeDim(call, call.attrs->dim1, r, &d1, "dim1"));
  if (r == 0)
    return copyWithShape(call, *x, x->shape());
  int perm[kMaxRank];
  for (int i = 0; i < r; ++i)
    perm[i] = i;
  std::swap(perm[d0], perm[d1]);
  return permuteBy(call, *x, perm);
}

// ---- unsqueeze / squeeze / flatten --------------------------------------------

Error parseDim(const AttrSet &a, OpAttrs *o) {
  o->hasDim = true;
  return a.getInt("dim", true, &o->dim);
}

Error runUnsqueeze(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int r = x->rank();
  if (r >= kMaxRank)
    return call.fail("unsqueeze of " + x->describe() + " exceeds the maximum rank",
                     ErrorCode::Unsupported);
  int64_t d = call.attrs->dim;
  if (d < -(r + 1) || d > r)
    return call.fail("dim " + std::to_string(d) + " is out of range for unsqueeze of " +
                         x->describe(),
                     ErrorCode::OutOfRange);
  if (d < 0)
    d += r + 1;
  Shape s;
  for (int i = 0; i <= r; ++i) {
    if (i == d)
      s.push(1);
    if (i < r)
      s.push(x->dim(i));
  }
  return copyWithShape(call, *x, s);
}

Error parseSqueeze(const AttrSet &a, OpAttrs *o) {
  // `dims` per the dialect; accept a single `dim` too.
  bool has = false;
  KILN_TRY(a.getInts("dims", false, &o->ints, &has));
  if (!has) {
    int64_t d;
    bool hasDim = false;
    KILN_TRY(a.getInt("dim", false, &d, &hasDim));
    if (hasDim)
      o->ints = {d};
  }
  return Error::success();
}

Error runSqueeze(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int r = x->rank();
  bool drop[kMaxRank] = {};
  if (call.attrs->ints.empty()) {
    for (int i = 0; i < r; ++i)
      drop[i] = x->dim(i) == 1;
  } else {
    for (int64_t d : call.attrs->ints) {
      int nd;
      KILN_TRY(normalizeDim(call, d, r, &nd));
      if (r > 0 && x->dim(nd) == 1)
        drop[nd] = true;
    }
  }
  Shape s;
  for (int i = 0; i < r; ++i)
    if (!drop[i])
      s.push(x->dim(i));
  return copyWithShape(call, *x, s);
}

Error parseFlatten(const AttrSet &a, OpAttrs *o) {
  o->startDim = 0;
  o->endDim = -1;
  KILN_TRY(a.getInt("start_dim", false, &o->startDim));
  return a.getInt("end_dim", false, &o->endDim);
}

Error runFlatten(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int r = x->rank();
  int s0, s1;
  KILN_TRY(normalizeDim(call, call.attrs->startDim, r, &s0, "start_dim"));
  KILN_TRY(normalizeDim(call, call.attrs->endDim, r, &s1, "end_dim"));
  if (s0 > s1)
    return call.fail("start_dim " + std::to_string(call.attrs->startDim) +
                     " comes after end_dim " + std::to_string(call.attrs->endDim) + " for " +
                     x->describe());
  Shape s;
  if (r == 0) {
    s.push(1);
  } else {
    for (int i = 0; i < s0; ++i)
      s.push(x->dim(i));
    s.push(dimProduct(x->shape(), s0, s1 + 1));
    for (int i = s1 + 1; i < r; ++i)
      s.push(x->dim(i));
  }
  return copyWithShape(call, *x, s);
}

// ---- repeat / repeat_interleave -----------------------------------------------

Error parseRepeat(const AttrSet &a, OpAttrs *o) { return a.getInts("repeats", true, &o->ints); }

template <typename E> void repeatTyped(const Tensor &x, const Shape &inPadded, Tensor &out) {
  const E *px = x.dataAs<E>();
  E *po = out.mutableDataAs<E>();
  int r = out.rank();
  int64_t inStrides[kMaxRank];
  contiguousStrides(inPadded, inStrides);
  int64_t n = out.numel();
  int64_t idx[kMaxRank] = {};
  for (int64_t o = 0; o < n; ++o) {
    int64_t off = 0;
    for (int d = 0; d < r; ++d)
      off += (idx[d] % inPadded[d]) * inStrides[d];
    po[o] = px[off];
    for (int d = r - 1; d >= 0; --d) {
      if (++idx[d] < out.dim(d))
        break;
      idx[d] = 0;
    }
  }
}

Error runRepeat(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  const std::vector<int64_t> &reps = call.attrs->ints;
  int r = x->rank();
  if ((int)reps.size() < r)
    return call.fail("repeats " + listStr(reps) + " has fewer entries than the rank of " +
                     x->describe());
  int nr = (int)reps.size();
  std::vector<int64_t> outDims, inDims;
  for (int i = 0; i < nr; ++i) {
    int j = i - (nr - r);
    int64_t d = j < 0 ? 1 : x->dim(j);
    if (reps[(size_t)i] < 0)
      return call.fail("repeats " + listStr(reps) + " has a negative entry");
    int64_t od;
    if (!checkedMul(d, reps[(size_t)i], &od))
      return call.fail("repeat result is too large");
    inDims.push_back(d);
    outDims.push_back(od);
  }
  Shape os, is;
  KILN_TRY(makeShape(call, outDims, &os));
  KILN_TRY(makeShape(call, inDims, &is));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x->dtype(), os));
  if (out.numel() == 0)
    return Error::success();
  switch (dtypeSize(x->dtype())) {
  case 1: repeatTyped<uint8_t>(*x, is, out); break;
  case 2: repeatTyped<uint16_t>(*x, is, out); break;
  case 4: repeatTyped<uint32_t>(*x, is, out); break;
  default: repeatTyped<uint64_t>(*x, is, out); break;
  }
  return Error::success();
}

Error parseRepeatInterleave(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getInt("repeats", true, &o->count));
  if (o->count < 0)
    return invalidProgram("repeats must be >= 0, got " + std::to_string(o->count));
  return a.getInt("dim", false, &o->dim, &o->hasDim);
}

Error runRepeatInterleave(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int64_t reps = call.attrs->count;
  Shape inShape = x->shape();
  int d = 0;
  if (!call.attrs->hasDim) { // flattened, like PyTorch without dim
    inShape = Shape{x->numel()};
  } else {
    KILN_TRY(normalizeDim(call, call.attrs->dim, x->rank(), &d));
    if (x->rank() == 0)
      inShape = Shape{1};
  }
  int r = inShape.rank();
  std::vector<int64_t> outDims = inShape.vec();
  if (!checkedMul(outDims[(size_t)d], reps, &outDims[(size_t)d]))
    return call.fail("repeat_interleave result is too large");
  Shape os;
  KILN_TRY(makeShape(call, outDims, &os));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x->dtype(), os));
  size_t es = dtypeSize(x->dtype());
  int64_t outer = dimProduct(inShape, 0, d);
  int64_t size = inShape[d];
  size_t innerBytes = (size_t)dimProduct(inShape, d + 1, r) * es;
  const uint8_t *px = x->dataAs<uint8_t>();
  uint8_t *po = out.mutableDataAs<uint8_t>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t s = 0; s < size; ++s)
      for (int64_t k = 0; k < reps; ++k) {
        std::memcpy(po, px + ((size_t)(o * size + s)) * innerBytes, innerBytes);
        po += innerBytes;
      }
  return Error::success();
}

// ---- triangular ---------------------------------------------------------------

Error parseTriangular(const AttrSet &a, OpAttrs *o) {
  KILN_TRY(a.getBool("upper", true, &o->upper));
  return a.getInt("diagonal", false, &o->diagonal);
}

Error runTriangular(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int r = x->rank();
  if (r < 2)
    return call.fail("needs a tensor with at least 2 dims, got " + x->describe());
  KILN_TRY(copyWithShape(call, *x, x->shape()));
  Tensor &out = *call.out[0];
  int64_t rows = x->dim(r - 2), cols = x->dim(r - 1);
  int64_t mats = rows * cols == 0 ? 0 : x->numel() / (rows * cols);
  size_t es = dtypeSize(x->dtype());
  uint8_t *po = out.mutableDataAs<uint8_t>();
  int64_t diag = call.attrs->diagonal;
  bool upper = call.attrs->upper;
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        // j - i computed without overflow: |diag| may be huge.
        bool keep = upper ? (j - i >= diag) : (j - i <= diag);
        if (!keep)
          std::memset(po + ((size_t)((m * rows + i) * cols + j)) * es, 0, es);
      }
  return Error::success();
}

// ---- dim_size / shape_of --------------------------------------------------------

Error runDimSize(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  if (x->rank() == 0)
    return call.fail("size(dim) of a 0-d tensor " + x->describe(), ErrorCode::OutOfRange);
  int d;
  KILN_TRY(normalizeDim(call, call.attrs->dim, x->rank(), &d));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(DType::Int64, Shape{}));
  out.mutableDataAs<int64_t>()[0] = x->dim(d);
  return Error::success();
}

Error runShapeOf(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(DType::Int64, Shape{(int64_t)x->rank()}));
  for (int i = 0; i < x->rank(); ++i)
    out.mutableDataAs<int64_t>()[i] = x->dim(i);
  return Error::success();
}

} // namespace

extern const KernelDef kReshapeKernel = {"reshape", 2, 2, 1, 1, 0, parseNoAttrs, runReshape};
extern const KernelDef kExpandKernel = {"expand", 2, 2, 1, 1, 0, parseNoAttrs, runExpand};
extern const KernelDef kPermuteKernel = {"permute", 1, 1, 1, 1, 0, parsePermute, runPermute};
extern const KernelDef kTransposeKernel = {"transpose", 1, 1, 1, 1, 0, parseTranspose,
                                           runTranspose};
extern const KernelDef kUnsqueezeKernel = {"unsqueeze", 1, 1, 1, 1, 0, parseDim, runUnsqueeze};
extern const KernelDef kSqueezeKernel = {"squeeze", 1, 1, 1, 1, 0, parseSqueeze, runSqueeze};
extern const KernelDef kFlattenKernel = {"flatten", 1, 1, 1, 1, 0, parseFlatten, runFlatten};
extern const KernelDef kRepeatKernel = {"repeat", 1, 1, 1, 1, 0, parseRepeat, runRepeat};
extern const KernelDef kRepeatInterleaveKernel = {"repeat_interleave", 1, 1, 1, 1, 0,
                                                  parseRepeatInterleave, runRepeatInterleave};
extern const KernelDef kTriangularKernel = {"triangular", 1, 1, 1, 1, 0, parseTriangular,
                                            runTriangular};
extern const KernelDef kDimSizeKernel = {"dim_size", 1, 1, 1, 1, 0, parseDim, runDimSize};
extern const KernelDef kShapeOfKernel = {"shape_of", 1, 1, 1, 1, 0, parseNoAttrs, runShapeOf};

} // namespace rt
} // namespace kiln
