//===- KilnTypeRules.cpp - element type rules of the kiln ops -------------===//

#include "kiln/Dialect/KilnTypeRules.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Operation.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "llvm/ADT/DenseSet.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;

namespace kiln {

StringRef getDtypeNames() { return "f32 i64 i1 i32 f16 bf16"; }

Type getElementTypeForDtype(MLIRContext *context, StringRef dtype) {
  Builder b(context);
  if (dtype == "f32")
    return b.getF32Type();
  if (dtype == "i64")
    return b.getI64Type();
  if (dtype == "i1")
    return b.getI1Type();
  if (dtype == "i32")
    return b.getI32Type();
  if (dtype == "f16")
    return b.getF16Type();
  if (dtype == "bf16")
    return b.getBF16Type();
  return Type();
}

StringRef getDtypeName(Type elementType) {
  if (elementType.isF32())
    return "f32";
  if (elementType.isF16())
    return "f16";
  if (elementType.isBF16())
    return "bf16";
  if (elementType.isSignlessInteger(64))
    return "i64";
  if (elementType.isSignlessInteger(32))
    return "i32";
  if (elementType.isSignlessInteger(1))
    return "i1";
  return "";
}

TypeCategory getTypeCategory(Type elementType) {
  if (elementType.isInteger(1))
    return TypeCategory::Bool;
  if (isa<FloatType>(elementType))
    return TypeCategory::Float;
  return TypeCategory::Integer;
}

Type promoteElementTypes(Type lhs, Type rhs) {
  if (lhs == rhs)
    return lhs;
  TypeCategory lhsCategory = getTypeCategory(lhs);
  TypeCategory rhsCategory = getTypeCategory(rhs);
  if (lhsCategory != rhsCategory)
    return lhsCategory > rhsCategory ? lhs : rhs;
  if (lhsCategory == TypeCategory::Float) {
    unsigned lhsWidth = lhs.getIntOrFloatBitWidth();
    unsigned rhsWidth = rhs.getIntOrFloatBitWidth();
    // f16 and bf16 have the same width and neither holds the other.
    if (lhsWidth == rhsWidth)
      return Float32Type::get(lhs.getContext());
    return lhsWidth > rhsWidth ? lhs : rhs;
  }
  // Two integers of different types: the wider one.
  return lhs.getIntOrFloatBitWidth() >= rhs.getIntOrFloatBitWidth() ? lhs
                                                                      : rhs;
}

Type promoteOperandTypes(Type lhs, bool lhsIsZeroDim, Type rhs,
                         bool rhsIsZeroDim) {
  if (lhsIsZeroDim != rhsIsZeroDim) {
    Type dimensioned = lhsIsZeroDim ? rhs : lhs;
    Type zeroDim = lhsIsZeroDim ? lhs : rhs;
    if (getTypeCategory(zeroDim) > getTypeCategory(dimensioned))
      return zeroDim;
    return dimensioned;
  }
  return promoteElementTypes(lhs, rhs);
}

bool hasFixedResultElementType(mlir::Operation *op) {
  llvm::StringRef name = op->getName().getStringRef();
  if (name == "kiln.full_like") {
    auto dtype = op->getAttrOfType<mlir::StringAttr>("dtype");
    return dtype && !dtype.getValue().empty();
  }
  return llvm::StringSwitch<bool>(name)
      .Cases("kiln.constant", "kiln.compare", "kiln.cast", "kiln.dim_size",
             "kiln.shape_of", "kiln.argmax", "kiln.full", "kiln.arange", true)
      .Case("kiln.embedding", true)
      .Default(false);
}

bool mayHaveGuessedElementType(Value value) {
  llvm::SmallVector<Value> worklist{value};
  llvm::DenseSet<Value> visited{value};
  while (!worklist.empty()) {
    Value current = worklist.pop_back_val();
    if (auto arg = dyn_cast<BlockArgument>(current)) {
      auto func = dyn_cast_or_null<FunctionOpInterface>(arg.getOwner()->getParentOp());
      if (func && func.getArgAttr(arg.getArgNumber(), kDtypeGuessedAttrName))
        return true;
      continue;
    }
    Operation *op = current.getDefiningOp();
    if (!op || hasFixedResultElementType(op))
      continue;
    for (Value operand : op->getOperands())
      if (visited.insert(operand).second)
        worklist.push_back(operand);
  }
  return false;
}

} // namespace kiln
