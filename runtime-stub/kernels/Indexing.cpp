// Gather and slicing ops: embedding, index_select, slice, select, split, concat, stack.
#include "runtime-stub/kernels/KernelUtil.h"
#include "runtime-stub/kernels/QuantizedKernels.h"

#include <algorithm>

namespace kiln {
namespace rt {
namespace {

Error readIndex(const KernelCall &call, const Tensor &idx, int64_t i, int64_t *out) {
  *out = idx.dtype() == DType::Int64 ? idx.dataAs<int64_t>()[i] : idx.dataAs<int32_t>()[i];
  return Error::success();
}

Error checkIndexDType(const KernelCall &call, const Tensor &idx, const char *what) {
  if (idx.dtype() != DType::Int64 && idx.dtype() != DType::Int32)
    return call.fail(std::string(what) + " must be an i64 or i32 tensor, got " + idx.describe());
  return Error::success();
}

// ---- embedding / index_select -------------------------------------------------

Error runEmbedding(const KernelCall &call) {
  const Tensor *w, *idx;
  KILN_TRY(requireInput(call, 0, "weight", &w));
  KILN_TRY(requireInput(call, 1, "indices", &idx));
  if (w->isQuantized())
    return runQuantizedEmbedding(call, *w, *idx);
  if (w->rank() != 2)
    return call.fail("weight must be 2-d [num_embeddings, dim], got " + w->describe());
  KILN_TRY(checkIndexDType(call, *idx, "indices"));
  if (idx->rank() + 1 > kMaxRank)
    return call.fail("indices " + idx->describe() + " have too many dims", ErrorCode::Unsupported);
  Shape s = idx->shape();
  s.push(w->dim(1));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(w->dtype(), s));
  int64_t num = w->dim(0);
  size_t rowBytes = (size_t)w->dim(1) * dtypeSize(w->dtype());
  const uint8_t *pw = w->dataAs<uint8_t>();
  uint8_t *po = out.mutableDataAs<uint8_t>();
  for (int64_t i = 0; i < idx->numel(); ++i) {
    int64_t v;
    KILN_TRY(readIndex(call, *idx, i, &v));
    if (v < 0 || v >= num)
      return call.fail("index " + std::to_string(v) + " (at position " + std::to_string(i) +
                           " of indices " + idx->describe() + ") is out of range for weight " +
                           w->describe(),
                       ErrorCode::OutOfRange);
    std::memcpy(po + (size_t)i * rowBytes, pw + (size_t)v * rowBytes, rowBytes);
  }
  return Error::success();
}

Error parseDimRequired(const AttrSet &a, OpAttrs *o) {
  o->hasDim = true;
  return a.getInt("dim", true, &o->dim);
}

Error runIndexSelect(const KernelCall &call) {
  const Tensor *x, *idx;
  KILN_TRY(requireInput(call, 0, "x", &x));
  KILN_TRY(requireInput(call, 1, "index", &idx));
  KILN_TRY(checkIndexDType(call, *idx, "index"));
  if (x->rank() == 0)
    return call.fail("cannot index a 0-d tensor " + x->describe());
  int d;
  KILN_TRY(normalizeDim(call, call.attrs->dim, x->rank(), &d));
  if (x->rank() - 1 + idx->rank() > kMaxRank)
    return call.fail("result rank exceeds " + std::to_string(kMaxRank), ErrorCode::Unsupported);
  Shape s;
  for (int i = 0; i < d; ++i)
    s.push(x->dim(i));
  for (int i = 0; i < idx->rank(); ++i)
    s.push(idx->dim(i));
  for (int i = d + 1; i < x->rank(); ++i)
    s.push(x->dim(i));
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x->dtype(), s));
  int64_t outer = dimProduct(x->shape(), 0, d);
  int64_t size = x->dim(d);
  size_t innerBytes = (size_t)dimProduct(x->shape(), d + 1, x->rank()) * dtypeSize(x->dtype());
  int64_t n = idx->numel();
  const uint8_t *px = x->dataAs<uint8_t>();
  uint8_t *po = out.mutableDataAs<uint8_t>();
  for (int64_t k = 0; k < n; ++k) {
    int64_t v;
    KILN_TRY(readIndex(call, *idx, k, &v));
    if (v < -size || v >= size)
      return call.fail("index " + std::to_string(v) + " is out of range for dim " +
                           std::to_string(d) + " of " + x->describe(),
                       ErrorCode::OutOfRange);
  }
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < n; ++k) {
      int64_t v;
      KILN_TRY(readIndex(call, *idx, k, &v));
      if (v < 0)
        v += size;
      std::memcpy(po, px + (size_t)(o * size + v) * innerBytes, innerBytes);
      po += innerBytes;
    }
  return Error::success();
}

// ---- slice / select -----------------------------------------------------------

Error parseSlice(const AttrSet &a, OpAttrs *o) {
  o->hasDim = true;
  KILN_TRY(a.getInt("dim", true, &o->dim));
  o->step = 1;
  KILN_TRY(a.getInt("step", false, &o->step));
  if (o->step <= 0)
    return invalidProgram("slice step must be positive, got " + std::to_string(o->step));
  return Error::success();
}

Error runSlice(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int r = x->rank();
  if (r == 0)
    return call.fail("cannot slice a 0-d tensor " + x->describe());
  int d;
  KILN_TRY(normalizeDim(call, call.attrs->dim, r, &d));
  int64_t size = x->dim(d);
  int64_t start = 0, end = INT64_MAX;
  if (call.input(1))
    KILN_TRY(readScalarInt(call, *call.input(1), "start", &start));
  if (call.input(2))
    KILN_TRY(readScalarInt(call, *call.input(2), "end", &end));
  // Python slice clamping.
  auto clampIndex = [size](int64_t v) {
    if (v < 0)
      v = v < -size ? 0 : v + size;
    return v > size ? size : v;
  };
  start = clampIndex(start);
  end = clampIndex(end);
  int64_t step = call.attrs->step;
  int64_t len = end > start ? (end - start + step - 1) / step : 0;
  int64_t inStrides[kMaxRank];
  contiguousStrides(x->shape(), inStrides);
  Shape s = x->shape();
  s[d] = len;
  int64_t strides[kMaxRank];
  for (int i = 0; i < r; ++i)
    strides[i] = inStrides[i];
  strides[d] = inStrides[d] * step;
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x->dtype(), s));
  gatherStrided(*x, len ? start * inStrides[d] : 0, strides, out);
  return Error::success();
}

Error runSelect(const KernelCall &call) {
  const Tensor *x, *it;
  KILN_TRY(requireInput(call, 0, "x", &x));
  KILN_TRY(requireInput(call, 1, "index", &it));
  int r = x->rank();
  if (r == 0)
    return call.fail("cannot select from a 0-d tensor " + x->describe());
  int d;
  KILN_TRY(normalizeDim(call, call.attrs->dim, r, &d));
  int64_t index;
  KILN_TRY(readScalarInt(call, *it, "index", &index));
  int64_t size = x->dim(d);
  if (index < -size || index >= size)
    return call.fail("index " + std::to_string(index) + " is out of range for dim " +
                         std::to_string(d) + " of " + x->describe(),
                     ErrorCode::OutOfRange);
  if (index < 0)
    index += size;
  int64_t inStrides[kMaxRank], strides[kMaxRank];
  contiguousStrides(x->shape(), inStrides);
  Shape s;
  int k = 0;
  for (int i = 0; i < r; ++i) {
    if (i == d)
      continue;
    s.push(x->dim(i));
    strides[k++] = inStrides[i];
  }
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(x->dtype(), s));
  gatherStrided(*x, index * inStrides[d], strides, out);
  return Error::success();
}

// ---- split ------------------------------------------------------------------

Error parseSplit(const AttrSet &a, OpAttrs *o) {
  o->hasDim = true;
  o->dim = 0;
  KILN_TRY(a.getInt("dim", false, &o->dim));
  bool hasSize = false, hasSizes = false, hasChunks = false;
  int64_t size = 0, chunks = 0;
  KILN_TRY(a.getInt("split_size", false, &size, &hasSize));
  KILN_TRY(a.getInts("sizes", false, &o->ints, &hasSizes));
  KILN_TRY(a.getInt("chunks", false, &chunks, &hasChunks));
  if ((int)hasSize + (int)hasSizes + (int)hasChunks != 1)
    return invalidProgram("split needs exactly one of split_size, sizes, chunks");
  if (hasSize) {
    if (size <= 0)
      return invalidProgram("split_size must be positive, got " + std::to_string(size));
    o->splitMode = SplitMode::SplitSize;
    o->count = size;
  } else if (hasChunks) {
    if (chunks <= 0)
      return invalidProgram("chunks must be positive, got " + std::to_string(chunks));
    o->splitMode = SplitMode::Chunks;
    o->count = chunks;
  } else {
    o->splitMode = SplitMode::Sizes;
    for (int64_t s : o->ints)
      if (s < 0)
        return invalidProgram("split sizes must be >= 0");
  }
  return Error::success();
}

Error runSplit(const KernelCall &call) {
  const Tensor *x;
  KILN_TRY(requireInput(call, 0, "x", &x));
  int r = x->rank();
  if (r == 0)
    return call.fail("cannot split a 0-d tensor " + x->describe());
  int d;
  KILN_TRY(normalizeDim(call, call.attrs->dim, r, &d));
  int64_t size = x->dim(d);
  std::vector<int64_t> pieces;
  const OpAttrs &at = *call.attrs;
  if (at.splitMode == SplitMode::Sizes) {
    pieces = at.ints;
    int64_t total = 0;
    for (int64_t p : pieces)
      if (__builtin_add_overflow(total, p, &total))
        total = -1;
    if (total != size)
      return call.fail("split sizes sum to " + std::to_string(total) + " but dim " +
                       std::to_string(d) + " of " + x->describe() + " has size " +
                       std::to_string(size));
  } else {
    int64_t piece = at.count;
    if (at.splitMode == SplitMode::Chunks)
      piece = size == 0 ? 0 : (size + at.count - 1) / at.count; // ceil, like torch.chunk
    if (piece == 0) {
      // torch.chunk of an empty dim: `chunks` empty pieces; split: one empty piece.
      int64_t n = at.splitMode == SplitMode::Chunks ? at.count : 1;
      if (n > (int64_t)call.nOut)
        n = (int64_t)call.nOut + 1; // mismatch reported below
      pieces.assign((size_t)n, 0);
    } else {
      for (int64_t off = 0; off < size; off += piece)
        pieces.push_back(std::min(piece, size - off));
      if (size == 0)
        pieces.push_back(0);
    }
  }
  if ((int64_t)pieces.size() != call.nOut)
    return call.fail("splitting dim " + std::to_string(d) + " of " + x->describe() + " gives " +
                     std::to_string(pieces.size()) + " pieces but the program expects " +
                     std::to_string(call.nOut));
  int64_t outer = dimProduct(x->shape(), 0, d);
  size_t innerBytes = (size_t)dimProduct(x->shape(), d + 1, r) * dtypeSize(x->dtype());
  const uint8_t *px = x->dataAs<uint8_t>();
  int64_t off = 0;
  for (size_t k = 0; k < pieces.size(); ++k) {
    Shape s = x->shape();
    s[d] = pieces[k];
    Tensor &out = *call.out[k];
    KILN_TRY(out.allocate(x->dtype(), s));
    uint8_t *po = out.mutableDataAs<uint8_t>();
    size_t chunk = (size_t)pieces[k] * innerBytes;
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(po + (size_t)o * chunk, px + ((size_t)(o * size + off)) * innerBytes, chunk);
    off += pieces[k];
  }
  return Error::success();
}

// ---- concat / stack -------------------------------------------------------------

Error concatInto(const KernelCall &call, const std::vector<const Tensor *> &xs, int d,
                 const Shape &outShape, DType dt) {
  Tensor &out = *call.out[0];
  KILN_TRY(out.allocate(dt, outShape));
  int r = outShape.rank();
  int64_t outer = dimProduct(outShape, 0, d);
  size_t es = dtypeSize(dt);
  size_t innerElems = (size_t)dimProduct(outShape, d + 1, r);
  size_t outRow = (size_t)outShape[d] * innerElems * es;
  uint8_t *po = out.mutableDataAs<uint8_t>();
  size_t colOff = 0;
  for (const Tensor *t : xs) {
    Tensor tmp;
    Result<const Tensor *> c = asDType(*t, dt, &tmp);
    if (!c.ok())
      return c.error();
    int64_t td = (*c)->rank() == r ? (*c)->dim(d) : 1; // stack: inputs lack the dim
    size_t chunk = (size_t)td * innerElems * es;
    const uint8_t *px = (*c)->dataAs<uint8_t>();
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(po + (size_t)o * outRow + colOff, px + (size_t)o * chunk, chunk);
    colOff += chunk;
  }
  return Error::success();
}

Error runConcat(const KernelCall &call) {
  std::vector<const Tensor *> xs;
  for (int i = 0; i < call.nIn; ++i) {
    const Tensor *t;
    KILN_TRY(requireInput(call, i, "x", &t));
    // Legacy PyTorch behaviour: 1-d empty tensors are skipped.
    if (!(t->rank() == 1 && t->dim(0) == 0))
      xs.push_back(t);
  }
  if (xs.empty()) {
    Tensor &out = *call.out[0];
    return out.allocate(call.input(0)->dtype(), Shape{0});
  }
  const Tensor &first = *xs[0];
  int r = first.rank();
  if (r == 0)
    return call.fail("cannot concatenate 0-d tensors");
  int d;
  KILN_TRY(normalizeDim(call, call.attrs->dim, r, &d));
  Shape s = first.shape();
  int64_t total = 0;
  DType dt = first.dtype();
  for (size_t k = 0; k < xs.size(); ++k) {
    const Tensor &t = *xs[k];
    bool ok = t.rank() == r;
    for (int i = 0; ok && i < r; ++i)
      ok = i == d || t.dim(i) == first.dim(i);
    if (!ok)
      return call.fail("input " + std::to_string(k) + " " + t.describe() +
                       " does not match input 0 " + first.describe() + " outside dim " +
                       std::to_string(d));
    total += t.dim(d);
    dt = promoteTypes(dt, t.dtype());
  }
  s[d] = total;
  Result<Shape> checked = Shape::make(s.data(), (size_t)s.rank());
  if (!checked.ok())
    return call.fail(checked.error().message());
  return concatInto(call, xs, d, s, dt);
}

Error runStack(const KernelCall &call) {
  std::vector<const Tensor *> xs;
  for (int i = 0; i < call.nIn; ++i) {
    const Tensor *t;
    KILN_TRY(requireInput(call, i, "x", &t));
    xs.push_back(t);
  }
  const Tensor &first = *xs[0];
  int r = first.rank();
  if (r + 1 > kMaxRank)
    return call.fail("result rank exceeds " + std::to_string(kMaxRank), ErrorCode::Unsupported);
  int64_t dim = call.attrs->dim;
  if (dim < -(r + 1) || dim > r)
    return call.fail("dim " + std::to_string(dim) + " is out of range for stacking " +
                         first.describe(),
                     ErrorCode::OutOfRange);
  int d = (int)(dim < 0 ? dim + r + 1 : dim);
  DType dt = first.dtype();
  for (size_t k = 0; k < xs.size(); ++k) {
    if (xs[k]->shape() != first.shape())
      return call.fail("input " + std::to_string(k) + " " + xs[k]->describe() +
                       " does not match input 0 " + first.describe());
    dt = promoteTypes(dt, xs[k]->dtype());
  }
  Shape s;
  for (int i = 0; i <= r; ++i) {
    if (i == d)
      s.push((int64_t)xs.size());
    if (i < r)
      s.push(first.dim(i));
  }
  return concatInto(call, xs, d, s, dt);
}

} // namespace

// The table (input 0) may be a quantized weight (QuantizedEmbedding.cpp).
extern const KernelDef kEmbeddingKernel = {"embedding", 2, 2, 1, 1, 0, parseNoAttrs, runEmbedding,
                                           /*quantizedInputs=*/0x1u};
extern const KernelDef kIndexSelectKernel = {"index_select", 2, 2, 1, 1, 0, parseDimRequired,
                                             runIndexSelect};
extern const KernelDef kSliceKernel = {"slice", 1, 3, 1, 1, 0x6u, parseSlice, runSlice};
extern const KernelDef kSelectKernel = {"select", 2, 2, 1, 1, 0, parseDimRequired, runSelect};
extern const KernelDef kSplitKernel = {"split", 1, 1, 1, -1, 0, parseSplit, runSplit};
extern const KernelDef kConcatKernel = {"concat", 1, -1, 1, 1, 0, parseDimRequired, runConcat};
extern const KernelDef kStackKernel = {"stack", 1, -1, 1, 1, 0, parseDimRequired, runStack};

} // namespace rt
} // namespace kiln
