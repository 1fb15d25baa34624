//===- TensorConstants.cpp - torch tensors -> MLIR elements attrs ---------===//

#include "compiler/frontend/TensorConstants.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/StringExtras.h"

#include <ATen/ATen.h>

using namespace mlir;

namespace kiln::frontend {

Type getElementType(MLIRContext *context, c10::ScalarType dtype) {
  switch (dtype) {
  case c10::ScalarType::Float:
  case c10::ScalarType::Double:
    return Float32Type::get(context);
  case c10::ScalarType::Half:
    return Float16Type::get(context);
  case c10::ScalarType::BFloat16:
    return BFloat16Type::get(context);
  case c10::ScalarType::Long:
    return IntegerType::get(context, 64);
  case c10::ScalarType::Int:
    return IntegerType::get(context, 32);
  case c10::ScalarType::Bool:
    return IntegerType::get(context, 1);
  default:
    return Type();
  }
}

c10::optional<c10::ScalarType> getScalarType(Type type) {
  if (type.isF32())
    return c10::ScalarType::Float;
  if (type.isF16())
    return c10::ScalarType::Half;
  if (type.isBF16())
    return c10::ScalarType::BFloat16;
  if (type.isInteger(64))
    return c10::ScalarType::Long;
  if (type.isInteger(32))
    return c10::ScalarType::Int;
  if (type.isInteger(1))
    return c10::ScalarType::Bool;
  return c10::nullopt;
}

/// A resource key from a TorchScript name: MLIR prints keys as bare
/// identifiers when they look like one, so keep [A-Za-z0-9_.] only.
static std::string sanitizeBlobName(llvm::StringRef hint) {
  std::string name;
  for (char c : hint)
    name += (llvm::isAlnum(c) || c == '_' || c == '.') ? c : '_';
  if (name.empty() || !(llvm::isAlpha(name[0]) || name[0] == '_'))
    name = "c" + name;
  return name;
}

FailureOr<ElementsAttr>
TensorConstantImporter::import(const at::Tensor &original, llvm::StringRef nameHint,
                               std::string &error) {
  // A tensor is identified by its data address, dtype, sizes and strides; the
  // address stays valid while the archive is alive, i.e. the whole import.
  Key key{original.has_storage() ? original.data_ptr() : nullptr,
          static_cast<int>(original.scalar_type()), original.sizes().vec(),
          original.strides().vec()};
  if (std::get<0>(key)) {
    auto it = cache.find(key);
    if (it != cache.end())
      return it->second;
  }

  Type elementType = getElementType(context, original.scalar_type());
  if (!elementType) {
    error = std::string("tensor constant of unsupported dtype ") +
            c10::toString(original.scalar_type()) +
            " (Kiln supports float32/float64/float16/bfloat16/int64/int32/bool)";
    return failure();
  }
  at::Tensor tensor = original.detach().to(at::kCPU);
  if (tensor.scalar_type() == at::kDouble)
    tensor = tensor.to(at::kFloat);
  tensor = tensor.contiguous();

  auto shape = llvm::to_vector(llvm::ArrayRef<int64_t>(tensor.sizes().vec()));
  auto type = RankedTensorType::get(shape, elementType);
  int64_t numel = tensor.numel();
  ElementsAttr attr;
  if (elementType.isInteger(1)) {
    // i1 elements are bit-packed in MLIR: build them element by element.
    const bool *data = tensor.data_ptr<bool>();
    attr = DenseElementsAttr::get(type, llvm::ArrayRef<bool>(data, numel));
  } else {
    llvm::ArrayRef<char> bytes(static_cast<const char *>(tensor.data_ptr()),
                               tensor.nbytes());
    if (numel > kResourceThreshold) {
      AsmResourceBlob blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(
          bytes, /*align=*/64, /*dataIsMutable=*/false);
      attr = DenseResourceElementsAttr::get(type, sanitizeBlobName(nameHint),
                                            std::move(blob));
    } else {
      attr = DenseElementsAttr::getFromRawBuffer(type, bytes);
    }
  }
  if (std::get<0>(key))
    cache.emplace(std::move(key), attr);
  return attr;
}

} // namespace kiln::frontend
