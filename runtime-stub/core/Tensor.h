// A dense, contiguous, row-major tensor: dtype, shape (rank <= 8) and a data
// pointer into either owned storage (shared between copies, like torch.Tensor)
// or borrowed memory (e.g. a constant inside the mmapped program file).
#ifndef KILN_RUNTIME_CORE_TENSOR_H
#define KILN_RUNTIME_CORE_TENSOR_H

#include "runtime-stub/core/DType.h"
#include "runtime-stub/core/Error.h"
#include "runtime-stub/core/QuantLayout.h"

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace kiln {
namespace rt {

inline constexpr int kMaxRank = 8;

/// Dims of a tensor. Every Shape held by a Tensor has dims >= 0 and a numel
/// whose byte size fits in int64 (checked by Shape::make / Tensor::allocate).
class Shape {
public:
  Shape() = default;
  /// For literals in code and tests; asserts rank <= kMaxRank.
  Shape(std::initializer_list<int64_t> dims);
  /// Checks rank <= kMaxRank, dims >= 0 and that numel fits in int64.
  static Result<Shape> make(const int64_t *dims, size_t rank);
  static Result<Shape> make(const std::vector<int64_t> &dims) {
    return make(dims.data(), dims.size());
  }

  int rank() const { return rank_; }
  int64_t operator[](int i) const { return dims_[i]; }
  int64_t &operator[](int i) { return dims_[i]; }
  const int64_t *data() const { return dims_; }
  int64_t numel() const;
  std::vector<int64_t> vec() const { return std::vector<int64_t>(dims_, dims_ + rank_); }
  /// "[2,3]"; "[]" for a scalar.
  std::string str() const;

  /// Appends a dim (caller ensures rank < kMaxRank).
  void push(int64_t d) { dims_[rank_++] = d; }
  bool operator==(const Shape &o) const;
  bool operator!=(const Shape &o) const { return !(*this == o); }

private:
  int rank_ = 0;
  int64_t dims_[kMaxRank] = {};
};

/// 64-byte aligned bytes: owned (freed with the Storage), or a slice of a
/// memory-plan arena that someone else owns (`owned` false).
struct Storage {
  void *ptr = nullptr;
  size_t capacity = 0;
  bool owned = true;
  ~Storage();
};

/// How a quantized weight reads as f32 (docs/program-format.md): a 2-d
/// [out, in] Int8 or Int4 tensor, w[r][c] = q[r][c] * scales[r][c / groupSize],
/// scales row-major [out, in / groupSize] of scalesDType (Float16 or Float32);
/// with layout Int4Strip16 / Int8Strip16 the integers and scales are ordered in
/// strips of 16 output channels instead (core/QuantLayout.h).
struct QuantParams {
  int64_t groupSize = 0; // 0: not quantized
  DType scalesDType = DType::Unknown;
  const void *scales = nullptr;
  QuantLayout layout = QuantLayout::Rows;
};

class Tensor {
public:
  /// An undefined tensor (dtype Unknown, no data).
  Tensor() = default;

  /// New owned, uninitialised storage.
  static Result<Tensor> empty(DType dtype, const Shape &shape);
  /// New owned storage filled with zeros.
  static Result<Tensor> zeros(DType dtype, const Shape &shape);
  /// New owned tensor holding a copy of `bytes` (must be numel * dtypeSize bytes).
  static Result<Tensor> fromBytes(DType dtype, const Shape &shape, const void *bytes,
                                  size_t size);
  /// Typed convenience for tests and tools: copies `values`.
  static Result<Tensor> fromFloats(const Shape &shape, const std::vector<float> &values);
  static Result<Tensor> fromInt64s(const Shape &shape, const std::vector<int64_t> &values);
  static Result<Tensor> fromBools(const Shape &shape, const std::vector<bool> &values);
  static Result<Tensor> fromInt32s(const Shape &shape, const std::vector<int32_t> &values);
  /// A view of memory the caller keeps alive and does not change; no copy.
  static Tensor borrow(DType dtype, const Shape &shape, const void *data);
  /// A tensor bound to exactly dtype/shape's bytes of writable memory at `data`
  /// (a memory-plan arena slice the caller keeps alive). `allocate` then keeps
  /// this memory and fails for any other byte size instead of reallocating.
  /// Copies of the tensor share the memory but are not bound: allocating into
  /// a copy gives the copy storage of its own.
  static Tensor bindToArena(DType dtype, const Shape &shape, void *data);
  bool isArenaBound() const { return arenaBound_.bound; }
  /// A view of a quantized weight (Int8/Int4 data and its scales, e.g. inside
  /// the mapped program); no copy, never dequantized as a whole. The caller
  /// has checked the shape, group size and sizes (ProgramReader does).
  static Tensor borrowQuantized(DType dtype, const Shape &shape, const void *data,
                                const QuantParams &quant);

  bool defined() const { return dtype_ != DType::Unknown; }
  DType dtype() const { return dtype_; }
  const Shape &shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const {
    return dtype_ == DType::Int4 ? ((size_t)numel() + 1) / 2
                                 : (size_t)numel() * dtypeSize(dtype_);
  }
  /// A quantized weight: only the kernels that declare it (linear weight,
  /// embedding table) read it; see QuantParams.
  bool isQuantized() const { return quant_.groupSize > 0; }
  const QuantParams &quant() const { return quant_; }
  bool isBorrowed() const { return defined() && !storage_; }

  const void *data() const { return data_; }
  /// Writable data; only for owned storage (kernels write their outputs only).
  void *mutableData() { return storage_ ? data_ : nullptr; }
  template <typename T> const T *dataAs() const { return static_cast<const T *>(data_); }
  template <typename T> T *mutableDataAs() { return static_cast<T *>(mutableData()); }

  /// Gives this tensor the dtype and shape, with owned storage of at least
  /// nbytes. Keeps the current storage when it is owned, large enough and not
  /// shared with another Tensor (so a per-value buffer is reused across calls);
  /// contents are unspecified afterwards (an arena-bound tensor keeps its
  /// memory and contents: in-place kernels rely on that).
  Error allocate(DType dtype, const Shape &shape);
  /// Changes the shape without touching data (numel must be unchanged).
  void reshapeInPlace(const Shape &shape) { shape_ = shape; }

  /// A deep copy with its own storage.
  Result<Tensor> clone() const;

  /// "f32[2,3]".
  std::string describe() const;

private:
  DType dtype_ = DType::Unknown;
  Shape shape_;
  void *data_ = nullptr;
  std::shared_ptr<Storage> storage_;
  QuantParams quant_;
  /// Set by bindToArena on one tensor; a copy is not bound (moves keep it).
  struct ArenaBinding {
    bool bound = false;
    ArenaBinding() = default;
    ArenaBinding(const ArenaBinding &) {}
    ArenaBinding &operator=(const ArenaBinding &) {
      bound = false;
      return *this;
    }
    ArenaBinding(ArenaBinding &&) = default;
    ArenaBinding &operator=(ArenaBinding &&) = default;
  };
  ArenaBinding arenaBound_;
};

/// Checked a*b for non-negative sizes; false on overflow.
inline bool checkedMul(int64_t a, int64_t b, int64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool checkedAdd(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_CORE_TENSOR_H
