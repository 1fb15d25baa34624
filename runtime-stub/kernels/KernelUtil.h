// Helpers shared by the portable kernels: dtype dispatch, element conversion,
// dim normalisation and broadcasting iteration. Internal to the kernels.
#ifndef KILN_RUNTIME_KERNELS_KERNELUTIL_H
#define KILN_RUNTIME_KERNELS_KERNELUTIL_H

#include "runtime-stub/kernels/Kernel.h"

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

namespace kiln {
namespace rt {

// Storage types that are not plain C++ arithmetic types.
struct BoolT { uint8_t v; };
struct HalfT { uint16_t bits; };
struct BF16T { uint16_t bits; };

/// Calls f(T{}) with T the storage type of `t`; returns f's result.
template <typename F> auto dispatchAll(DType t, F &&f) {
  switch (t) {
  case DType::Float32: return f(float{});
  case DType::Int64: return f(int64_t{});
  case DType::Bool: return f(BoolT{});
  case DType::Int32: return f(int32_t{});
  case DType::Float16: return f(HalfT{});
  case DType::BFloat16: return f(BF16T{});
  case DType::Int8: return f(int8_t{});
  case DType::UInt8: return f(uint8_t{});
  case DType::Int4:    // packed pairs, only inside quantized weights, which the
  case DType::Unknown: // load rejects for every kernel that does not declare them
    break;
  }
  return f(float{}); // unreachable for defined tensors
}

template <typename T> struct IsFloatLike : std::false_type {};
template <> struct IsFloatLike<float> : std::true_type {};
template <> struct IsFloatLike<HalfT> : std::true_type {};
template <> struct IsFloatLike<BF16T> : std::true_type {};

template <typename S> inline float toF32(S s) { return (float)s; }
template <> inline float toF32(BoolT s) { return s.v ? 1.0f : 0.0f; }
template <> inline float toF32(HalfT s) { return halfToFloat(s.bits); }
template <> inline float toF32(BF16T s) { return bfloat16ToFloat(s.bits); }

template <typename S> inline int64_t toI64(S s) {
  if constexpr (IsFloatLike<S>::value) {
    float f = toF32(s);
    // Out of range / NaN: x86's cvttss2si result, without undefined behaviour.
    if (!(f >= -9.2233720368547758e18f && f < 9.2233720368547758e18f))
      return std::numeric_limits<int64_t>::min();
    return (int64_t)f;
  } else if constexpr (std::is_same<S, BoolT>::value) {
    return s.v ? 1 : 0;
  } else {
    return (int64_t)s;
  }
}

template <typename S> inline bool toBool(S s) {
  if constexpr (IsFloatLike<S>::value)
    return toF32(s) != 0.0f;
  else if constexpr (std::is_same<S, BoolT>::value)
    return s.v != 0;
  else
    return s != 0;
}

/// Converts one element from storage type S to storage type D (PyTorch rules:
/// float->int truncates toward zero, int->int wraps, x->bool is x != 0).
template <typename D, typename S> inline D convertElem(S s) {
  if constexpr (std::is_same<D, S>::value && !std::is_same<D, BoolT>::value) {
    return s;
  } else if constexpr (std::is_same<D, BoolT>::value) {
    return BoolT{(uint8_t)(toBool(s) ? 1 : 0)};
  } else if constexpr (std::is_same<D, float>::value) {
    return toF32(s);
  } else if constexpr (std::is_same<D, HalfT>::value) {
    return HalfT{floatToHalf(toF32(s))};
  } else if constexpr (std::is_same<D, BF16T>::value) {
    return BF16T{floatToBFloat16(toF32(s))};
  } else {
    return (D)(uint64_t)toI64(s); // wrap through unsigned: defined behaviour
  }
}

/// n elements of type `from` at src converted to type `to` at dst, as the
/// `cast` op converts them (floats to f16 / bf16 rounded to nearest even).
void convertElements(const void *src, DType from, void *dst, DType to, int64_t n);

/// dst = src converted to `dtype` (dst is allocated with src's shape).
Error castInto(const Tensor &src, DType dtype, Tensor *dst);

/// Returns `t` itself if it already has `dtype`, else a converted copy in *tmp.
Result<const Tensor *> asDType(const Tensor &t, DType dtype, Tensor *tmp);

/// Normalises a possibly negative dim for `rank` (PyTorch wrap); for rank 0
/// dims -1 and 0 are accepted like PyTorch.
Error normalizeDim(const KernelCall &call, int64_t dim, int rank, int *out,
                   const char *what = "dim");

/// Broadcast shape of several shapes (PyTorch rules), or an error naming them.
Error broadcastShapes(const KernelCall &call, const Shape *const *shapes, int n, Shape *out);

/// Row-major strides of `s` aligned to `outRank` dims, 0 where broadcast.
void broadcastStrides(const Shape &s, const Shape &out, int64_t *strides);

/// Calls f(outIndex, offsets) for every element of `out`, where offsets[k] is
/// the element offset into input k (strides from broadcastStrides).
template <int N, typename F>
void forEachBroadcast(const Shape &out, const int64_t (&strides)[N][kMaxRank], F &&f) {
  int r = out.rank();
  int64_t total = out.numel();
  if (total == 0)
    return;
  if (r == 0) {
    std::array<int64_t, N> offs{};
    f((int64_t)0, offs);
    return;
  }
  int64_t counter[kMaxRank] = {};
  std::array<int64_t, N> base{};
  int64_t inner = out[r - 1];
  int64_t outIndex = 0;
  while (outIndex < total) {
    std::array<int64_t, N> offs = base;
    for (int64_t i = 0; i < inner; ++i) {
      f(outIndex++, offs);
      for (int k = 0; k < N; ++k)
        offs[k] += strides[k][r - 1];
    }
    // Advance the outer counter.
    for (int d = r - 2; d >= 0; --d) {
      ++counter[d];
      for (int k = 0; k < N; ++k)
        base[k] += strides[k][d];
      if (counter[d] < out[d])
        break;
      for (int k = 0; k < N; ++k)
        base[k] -= strides[k][d] * out[d];
      counter[d] = 0;
    }
  }
}

/// Reads a 0-d (or 1-element) integer tensor as int64.
Error readScalarInt(const KernelCall &call, const Tensor &t, const char *what, int64_t *out);
/// Reads a 0-d (or 1-element) tensor of any dtype as double.
Error readScalarDouble(const KernelCall &call, const Tensor &t, const char *what, double *out);
/// Reads a 1-d integer tensor as a dims list.
Error readIntList(const KernelCall &call, const Tensor &t, const char *what,
                  std::vector<int64_t> *out);

/// Requires input `i` to be present.
Error requireInput(const KernelCall &call, int i, const char *name, const Tensor **out);

/// Product of dims [begin, end).
inline int64_t dimProduct(const Shape &s, int begin, int end) {
  int64_t n = 1;
  for (int i = begin; i < end; ++i)
    n *= s[i];
  return n;
}

/// Parsers shared by several ops.
Error parseNoAttrs(const AttrSet &, OpAttrs *);

} // namespace rt
} // namespace kiln


namespace kiln {
namespace rt {

/// A double converted to storage type T (ints truncate; NaN/out of range give INT64_MIN).
template <typename T> inline T fromDouble(double v) {
  if constexpr (IsFloatLike<T>::value) {
    return convertElem<T, float>((float)v);
  } else if constexpr (std::is_same<T, BoolT>::value) {
    return BoolT{(uint8_t)(v != 0.0 ? 1 : 0)};
  } else {
    int64_t i = (v >= -9.2233720368547758e18 && v < 9.2233720368547758e18)
                    ? (int64_t)v
                    : std::numeric_limits<int64_t>::min();
    return (T)(uint64_t)i;
  }
}

/// Fills `t` with `value` converted to its dtype.
void fillWith(Tensor &t, double value);

/// out[i] = src[base + sum_d idx_d * strides[d]] over out's shape (any dtype).
void gatherStrided(const Tensor &src, int64_t base, const int64_t *strides, Tensor &out);

/// Row-major element strides of a shape.
void contiguousStrides(const Shape &s, int64_t *strides);

/// Whether permuting a row-major tensor of dims[0..rank) by `perm` (result dim
/// i = input dim perm[i]) keeps its bytes in order: the dims of size > 1 keep
/// their relative order (only size-1 dims move, e.g. [1,1,H,D] -> [1,H,1,D]).
inline bool permutationKeepsBytes(const int64_t *dims, int rank, const int *perm) {
  for (int i = 0, last = -1; i < rank; ++i) {
    if (dims[perm[i]] == 1)
      continue;
    if (perm[i] < last)
      return false;
    last = perm[i];
  }
  return true;
}

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_KERNELS_KERNELUTIL_H
