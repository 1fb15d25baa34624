//===- TensorConstants.h - torch tensors -> MLIR elements attrs -*- C++ -*-===//
//
// Converts the tensor constants of a frozen TorchScript graph (weights, masks,
// 0-d literals) into `ElementsAttr`s for `kiln.constant`.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_FRONTEND_TENSORCONSTANTS_H
#define KILN_COMPILER_FRONTEND_TENSORCONSTANTS_H

#include "mlir/IR/BuiltinAttributeInterfaces.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/LogicalResult.h"

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace kiln::frontend {

/// The element type Kiln uses for a torch dtype: float64 becomes f32, float16
/// and bfloat16 keep their type. Null for dtypes Kiln does not support.
mlir::Type getElementType(mlir::MLIRContext *context, c10::ScalarType dtype);

/// The torch dtype of a Kiln element type (the inverse of getElementType).
c10::optional<c10::ScalarType> getScalarType(mlir::Type elementType);

/// Imports tensor constants. Tensors above `kResourceThreshold` elements become
/// `DenseResourceElementsAttr`s whose blob (64-byte aligned, owned by MLIR) is
/// a single copy of the torch bytes; smaller ones become `DenseElementsAttr`s.
/// One importer is shared by all methods of an archive, so a weight that
/// several methods reference (the frozen methods share the tensor) is imported
/// once and every method uses the same attribute.
class TensorConstantImporter {
public:
  static constexpr int64_t kResourceThreshold = 64;

  explicit TensorConstantImporter(mlir::MLIRContext *context)
      : context(context) {}

  /// `nameHint` (e.g. the TorchScript name `self.layers.0.mlp.weight`) names
  /// the blob. Fails with a message in `error` for unsupported dtypes.
  mlir::FailureOr<mlir::ElementsAttr>
  import(const at::Tensor &tensor, llvm::StringRef nameHint, std::string &error);

private:
  // Identity of a tensor view: storage pointer, dtype, sizes, strides.
  using Key = std::tuple<const void *, int, std::vector<int64_t>,
                         std::vector<int64_t>>;
  mlir::MLIRContext *context;
  std::map<Key, mlir::ElementsAttr> cache;
};

} // namespace kiln::frontend

#endif // KILN_COMPILER_FRONTEND_TENSORCONSTANTS_H
