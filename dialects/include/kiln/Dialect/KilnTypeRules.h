//===- KilnTypeRules.h - element type rules of the kiln ops -----*- C++ -*-===//
//
// The element type rules of docs/dialect.md, shared by the op verifiers and
// the front end (which must build ops whose result types verify).
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_KILNTYPERULES_H
#define KILN_DIALECT_KILNTYPERULES_H

#include "mlir/IR/Types.h"
#include "llvm/ADT/StringRef.h"

namespace mlir {
class MLIRContext;
class Operation;
class Value;
} // namespace mlir

namespace kiln {

/// The dtype names accepted by `dtype` attributes, space separated, for
/// diagnostics: "f32 i64 i1 i32 f16 bf16".
llvm::StringRef getDtypeNames();

/// The element type named by a dtype string ("f32", "i64", "i1", "i32",
/// "f16", "bf16"), or a null type if the name is not one of them.
mlir::Type getElementTypeForDtype(mlir::MLIRContext *context,
                                  llvm::StringRef dtype);

/// The dtype name of a supported element type, or "" for any other type.
llvm::StringRef getDtypeName(mlir::Type elementType);

/// PyTorch type categories, ordered: bool < integer < float.
enum class TypeCategory { Bool = 0, Integer = 1, Float = 2 };

/// The category of an element type (i1 is Bool, other integers Integer,
/// floats Float).
TypeCategory getTypeCategory(mlir::Type elementType);

/// PyTorch promotion of two element types of the same priority: the higher
/// category wins; two integers give the wider; two floats give the wider,
/// f16 with bf16 gives f32.
mlir::Type promoteElementTypes(mlir::Type lhs, mlir::Type rhs);

/// Promotion of two tensor operands following PyTorch's rule for 0-d tensors:
/// when exactly one operand is 0-d, it decides the result element type only if
/// its category is higher than the other operand's. `lhsIsZeroDim` and
/// `rhsIsZeroDim` say whether each operand is (known to be) 0-d.
mlir::Type promoteOperandTypes(mlir::Type lhs, bool lhsIsZeroDim,
                               mlir::Type rhs, bool rhsIsZeroDim);

/// Whether the op's result element type is fixed by the op itself (a
/// comparison is i1, a cast its `dtype`, an embedding its table's type, ...)
/// rather than derived from its operands' element types. Used to track which
/// values have a dtype the front end could only guess (arguments of a bare
/// traced archive) and which the runtime must take as it comes.
bool hasFixedResultElementType(mlir::Operation *op);

/// The unit attribute the front end puts on function arguments whose element
/// type it guessed.
inline constexpr llvm::StringLiteral kDtypeGuessedAttrName = "kiln.dtype_guessed";

/// Whether `value`'s element type may derive from a guessed argument type:
/// walks the producers up to function arguments marked `kiln.dtype_guessed`,
/// stopping at ops whose result element type is fixed.
bool mayHaveGuessedElementType(mlir::Value value);

} // namespace kiln

#endif // KILN_DIALECT_KILNTYPERULES_H
