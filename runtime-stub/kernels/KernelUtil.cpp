#include "runtime-stub/kernels/KernelUtil.h"

#include <cstring>

namespace kiln {
namespace rt {

void convertElements(const void *src, DType from, void *dst, DType to, int64_t n) {
  dispatchAll(from, [&](auto stag) {
    using S = decltype(stag);
    dispatchAll(to, [&](auto dtag) {
      using D = decltype(dtag);
      const S *s = static_cast<const S *>(src);
      D *d = static_cast<D *>(dst);
      for (int64_t i = 0; i < n; ++i)
        d[i] = convertElem<D, S>(s[i]);
      return 0;
    });
    return 0;
  });
}

Error castInto(const Tensor &src, DType dtype, Tensor *dst) {
  KILN_TRY(dst->allocate(dtype, src.shape()));
  convertElements(src.data(), src.dtype(), dst->mutableData(), dtype, src.numel());
  return Error::success();
}

Result<const Tensor *> asDType(const Tensor &t, DType dtype, Tensor *tmp) {
  if (t.dtype() == dtype)
    return &t;
  KILN_TRY(castInto(t, dtype, tmp));
  return static_cast<const Tensor *>(tmp);
}

Error normalizeDim(const KernelCall &call, int64_t dim, int rank, int *out, const char *what) {
  int64_t r = rank == 0 ? 1 : rank;
  if (dim < -r || dim >= r)
    return call.fail(std::string(what) + " " + std::to_string(dim) +
                         " is out of range for a tensor of rank " + std::to_string(rank),
                     ErrorCode::OutOfRange);
  *out = (int)(dim < 0 ? dim + r : dim);
  return Error::success();
}

Error broadcastShapes(const KernelCall &call, const Shape *const *shapes, int n, Shape *out) {
  int r = 0;
  for (int k = 0; k < n; ++k)
    r = std::max(r, shapes[k]->rank());
  Shape s;
  for (int i = 0; i < r; ++i) {
    int64_t d = 1;
    for (int k = 0; k < n; ++k) {
      int off = r - shapes[k]->rank();
      if (i < off)
        continue;
      int64_t v = (*shapes[k])[i - off];
      if (v == d || v == 1)
        continue;
      if (d == 1) {
        d = v;
        continue;
      }
      std::string list;
      for (int j = 0; j < n; ++j)
        list += (j ? " and " : "") + shapes[j]->str();
      return call.fail("shapes " + list + " cannot be broadcast (dim " + std::to_string(i) +
                       ": " + std::to_string(d) + " vs " + std::to_string(v) + ")");
    }
    s.push(d);
  }
  *out = s;
  return Error::success();
}

void broadcastStrides(const Shape &s, const Shape &out, int64_t *strides) {
  int r = out.rank();
  int off = r - s.rank();
  int64_t stride = 1;
  for (int i = r - 1; i >= 0; --i) {
    if (i < off) {
      strides[i] = 0;
      continue;
    }
    int64_t d = s[i - off];
    strides[i] = d == 1 ? 0 : stride;
    stride *= d;
  }
}

Error readScalarInt(const KernelCall &call, const Tensor &t, const char *what, int64_t *out) {
  if (t.numel() != 1)
    return call.fail(std::string(what) + " must be a scalar, got " + t.describe());
  switch (t.dtype()) {
  case DType::Int64: *out = t.dataAs<int64_t>()[0]; return Error::success();
  case DType::Int32: *out = t.dataAs<int32_t>()[0]; return Error::success();
  case DType::Int8: *out = t.dataAs<int8_t>()[0]; return Error::success();
  case DType::UInt8: *out = t.dataAs<uint8_t>()[0]; return Error::success();
  case DType::Bool: *out = t.dataAs<uint8_t>()[0] != 0; return Error::success();
  default:
    return call.fail(std::string(what) + " must be an integer scalar, got " + t.describe());
  }
}

Error readScalarDouble(const KernelCall &call, const Tensor &t, const char *what, double *out) {
  if (t.numel() != 1)
    return call.fail(std::string(what) + " must be a scalar, got " + t.describe());
  dispatchAll(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = t.dataAs<T>()[0];
    if constexpr (IsFloatLike<T>::value)
      *out = toF32(v);
    else
      *out = (double)toI64(v);
    return 0;
  });
  return Error::success();
}

Error readIntList(const KernelCall &call, const Tensor &t, const char *what,
                  std::vector<int64_t> *out) {
  if (t.rank() > 1)
    return call.fail(std::string(what) + " must be a 1-d integer tensor, got " + t.describe());
  if (t.dtype() != DType::Int64 && t.dtype() != DType::Int32)
    return call.fail(std::string(what) + " must be an i64 tensor, got " + t.describe());
  int64_t n = t.numel();
  if (n > kMaxRank)
    return call.fail(std::string(what) + " has " + std::to_string(n) +
                         " entries, more than the maximum rank " + std::to_string(kMaxRank),
                     ErrorCode::Unsupported);
  out->resize((size_t)n);
  for (int64_t i = 0; i < n; ++i)
    (*out)[(size_t)i] = t.dtype() == DType::Int64 ? t.dataAs<int64_t>()[i]
                                                   : t.dataAs<int32_t>()[i];
  return Error::success();
}

Error requireInput(const KernelCall &call, int i, const char *name, const Tensor **out) {
  const Tensor *t = call.input(i);
  if (!t || !t->defined())
    return call.fail(std::string("operand ") + name + " is missing");
  *out = t;
  return Error::success();
}

Error parseNoAttrs(const AttrSet &, OpAttrs *) { return Error::success(); }

} // namespace rt
} // namespace kiln

namespace kiln {
namespace rt {

void fillWith(Tensor &t, double value) {
  int64_t n = t.numel();
  dispatchAll(t.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = fromDouble<T>(value);
    T *p = t.mutableDataAs<T>();
    for (int64_t i = 0; i < n; ++i)
      p[i] = v;
    return 0;
  });
}

namespace {
template <typename E>
void gatherTyped(const Tensor &src, int64_t base, const int64_t *strides, Tensor &out) {
  const E *ps = src.dataAs<E>() + base;
  E *po = out.mutableDataAs<E>();
  int64_t st[1][kMaxRank];
  for (int i = 0; i < out.rank(); ++i)
    st[0][i] = strides[i];
  forEachBroadcast<1>(out.shape(), st, [&](int64_t o, const std::array<int64_t, 1> &off) {
    po[o] = ps[off[0]];
  });
}

/// The fast case of gatherStrided: once size-1 dims are dropped and dims that
/// stay adjacent in src are merged, the innermost dim is contiguous (stride 1)
/// and at least 8 elements long: copy it run by run (transposes of heads,
/// [1, T, H, D] -> [1, H, T, D]; slices of the last dims; layout-preserving
/// transposes in decode, one memcpy). False when the generic loop is needed.
bool gatherRuns(const Tensor &src, int64_t base, const int64_t *strides, Tensor &out) {
  int64_t dims[kMaxRank], st[kMaxRank];
  int n = 0;
  for (int i = 0; i < out.rank(); ++i) {
    if (out.dim(i) == 1)
      continue;
    if (n > 0 && st[n - 1] == strides[i] * out.dim(i)) { // merges with the previous dim
      dims[n - 1] *= out.dim(i);
      st[n - 1] = strides[i];
      continue;
    }
    dims[n] = out.dim(i);
    st[n++] = strides[i];
  }
  if (out.numel() == 0)
    return true;
  if (n == 0) { // a single element
    dims[0] = 1;
    st[0] = 1;
    n = 1;
  }
  if (st[n - 1] != 1 || (dims[n - 1] < 8 && n > 1))
    return false;
  const size_t es = dtypeSize(out.dtype());
  const size_t runBytes = (size_t)dims[n - 1] * es;
  const uint8_t *ps = src.dataAs<uint8_t>() + (size_t)base * es;
  uint8_t *po = out.mutableDataAs<uint8_t>();
  int64_t idx[kMaxRank] = {};
  int64_t off = 0;
  for (int64_t run = 0, runs = out.numel() / dims[n - 1]; run < runs; ++run) {
    std::memcpy(po + (size_t)run * runBytes, ps + (size_t)off * es, runBytes);
    for (int d = n - 2; d >= 0; --d) { // next outer index
      off += st[d];
      if (++idx[d] < dims[d])
        break;
      off -= st[d] * dims[d];
      idx[d] = 0;
    }
  }
  return true;
}
} // namespace

void gatherStrided(const Tensor &src, int64_t base, const int64_t *strides, Tensor &out) {
  if (gatherRuns(src, base, strides, out))
    return;
  switch (dtypeSize(out.dtype())) {
  case 1: gatherTyped<uint8_t>(src, base, strides, out); break;
  case 2: gatherTyped<uint16_t>(src, base, strides, out); break;
  case 4: gatherTyped<uint32_t>(src, base, strides, out); break;
  default: gatherTyped<uint64_t>(src, base, strides, out); break;
  }
}

void contiguousStrides(const Shape &s, int64_t *strides) {
  int64_t st = 1;
  for (int i = s.rank() - 1; i >= 0; --i) {
    strides[i] = st;
    st *= s[i];
  }
}

} // namespace rt
} // namespace kiln
