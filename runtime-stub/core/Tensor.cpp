#include "runtime-stub/core/Tensor.h"

#include <cstdlib>
#include <cstring>

namespace kiln {
namespace rt {

Shape::Shape(std::initializer_list<int64_t> dims) {
  assert(dims.size() <= (size_t)kMaxRank);
  for (int64_t d : dims)
    dims_[rank_++] = d;
}

Result<Shape> Shape::make(const int64_t *dims, size_t rank) {
  if (rank > (size_t)kMaxRank)
    return unsupported("rank " + std::to_string(rank) + " exceeds the maximum rank " +
                       std::to_string(kMaxRank));
  Shape s;
  int64_t n = 1;
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 0)
      return invalidArgument("negative dimension " + std::to_string(dims[i]));
    // Keep numel * 8 representable so byte sizes never overflow.
    if (!checkedMul(n, dims[i], &n) || n > (INT64_MAX >> 4))
      return invalidArgument("shape has too many elements");
    s.dims_[s.rank_++] = dims[i];
  }
  return s;
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i)
    n *= dims_[i];
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (int i = 0; i < rank_; ++i) {
    if (i)
      s += ",";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

bool Shape::operator==(const Shape &o) const {
  if (rank_ != o.rank_)
    return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i])
      return false;
  return true;
}

Storage::~Storage() {
  if (owned)
    std::free(ptr);
}

Error Tensor::allocate(DType dtype, const Shape &shape) {
  if (dtype == DType::Unknown)
    return invalidArgument("cannot allocate a tensor of unknown dtype");
  if (dtype == DType::Int4)
    return invalidArgument("cannot allocate an i4 tensor (only quantized weights are i4)");
  quant_ = QuantParams();
  // Re-validate: callers build shapes by hand in kernels.
  Result<Shape> checked = Shape::make(shape.data(), shape.rank());
  if (!checked.ok())
    return checked.error();
  size_t bytes = (size_t)shape.numel() * dtypeSize(dtype);
  if (arenaBound_.bound) {
    // The memory plan fixed this value's size: a different one is a kernel or
    // plan bug, never a silent reallocation.
    if (bytes != storage_->capacity)
      return invalidArgument("the memory plan reserved " + std::to_string(storage_->capacity) +
                             " bytes for this value, but the kernel produced " +
                             std::string(dtypeName(dtype)) + shape.str() + " (" +
                             std::to_string(bytes) + " bytes)");
    dtype_ = dtype;
    shape_ = shape;
    data_ = storage_->ptr;
    return Error::success();
  }
  if (!storage_ || !storage_->owned || storage_.use_count() > 1 || storage_->capacity < bytes) {
    size_t cap = (bytes + 63) / 64 * 64;
    if (cap == 0)
      cap = 64;
    void *p = std::aligned_alloc(64, cap);
    if (!p)
      return outOfMemory("cannot allocate " + std::to_string(bytes) + " bytes for a " +
                         std::string(dtypeName(dtype)) + shape.str() + " tensor");
    auto st = std::make_shared<Storage>();
    st->ptr = p;
    st->capacity = cap;
    storage_ = std::move(st);
  }
  dtype_ = dtype;
  shape_ = shape;
  data_ = storage_->ptr;
  return Error::success();
}

Result<Tensor> Tensor::empty(DType dtype, const Shape &shape) {
  Tensor t;
  KILN_TRY(t.allocate(dtype, shape));
  return t;
}

Result<Tensor> Tensor::zeros(DType dtype, const Shape &shape) {
  Tensor t;
  KILN_TRY(t.allocate(dtype, shape));
  std::memset(t.mutableData(), 0, t.nbytes());
  return t;
}

Result<Tensor> Tensor::fromBytes(DType dtype, const Shape &shape, const void *bytes,
                                 size_t size) {
  Tensor t;
  KILN_TRY(t.allocate(dtype, shape));
  if (size != t.nbytes())
    return invalidArgument("fromBytes: " + std::to_string(size) + " bytes given, " +
                           t.describe() + " needs " + std::to_string(t.nbytes()));
  if (size)
    std::memcpy(t.mutableData(), bytes, size);
  return t;
}

Result<Tensor> Tensor::fromFloats(const Shape &shape, const std::vector<float> &v) {
  return fromBytes(DType::Float32, shape, v.data(), v.size() * sizeof(float));
}
Result<Tensor> Tensor::fromInt64s(const Shape &shape, const std::vector<int64_t> &v) {
  return fromBytes(DType::Int64, shape, v.data(), v.size() * sizeof(int64_t));
}
Result<Tensor> Tensor::fromInt32s(const Shape &shape, const std::vector<int32_t> &v) {
  return fromBytes(DType::Int32, shape, v.data(), v.size() * sizeof(int32_t));
}
Result<Tensor> Tensor::fromBools(const Shape &shape, const std::vector<bool> &v) {
  std::vector<uint8_t> bytes(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    bytes[i] = v[i] ? 1 : 0;
  return fromBytes(DType::Bool, shape, bytes.data(), bytes.size());
}

Tensor Tensor::borrow(DType dtype, const Shape &shape, const void *data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.data_ = const_cast<void *>(data);
  return t;
}

Tensor Tensor::borrowQuantized(DType dtype, const Shape &shape, const void *data,
                               const QuantParams &quant) {
  Tensor t = borrow(dtype, shape, data);
  t.quant_ = quant;
  return t;
}

Tensor Tensor::bindToArena(DType dtype, const Shape &shape, void *data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.data_ = data;
  auto st = std::make_shared<Storage>();
  st->ptr = data;
  st->capacity = (size_t)shape.numel() * dtypeSize(dtype);
  st->owned = false;
  t.storage_ = std::move(st);
  t.arenaBound_.bound = true;
  return t;
}

Result<Tensor> Tensor::clone() const {
  if (!defined())
    return Tensor();
  if (isQuantized())
    return Error::make(ErrorCode::Unsupported,
                       "cannot copy quantized weight " + describe() + " as a tensor");
  return fromBytes(dtype_, shape_, data_, nbytes());
}

std::string Tensor::describe() const {
  std::string s = std::string(dtypeName(dtype_)) + shape_.str();
  if (isQuantized())
    s += " (quantized, group " + std::to_string(quant_.groupSize) + ", " +
         dtypeName(quant_.scalesDType) + " scales)";
  return s;
}

const char *errorCodeName(ErrorCode code) {
  switch (code) {
  case ErrorCode::Ok: return "ok";
  case ErrorCode::InvalidArgument: return "invalid argument";
  case ErrorCode::InvalidProgram: return "invalid program";
  case ErrorCode::Unsupported: return "unsupported";
  case ErrorCode::OutOfRange: return "out of range";
  case ErrorCode::OutOfMemory: return "out of memory";
  case ErrorCode::Io: return "i/o error";
  }
  return "error";
}

} // namespace rt
} // namespace kiln
