//===- KilnOps.h - kiln dialect ops -----------------------------*- C++ -*-===//
//
// The kiln ops (kiln::ConstantOp, kiln::UnaryOp, ...), generated from
// KilnOps.td, and the element type rules they share with the front end.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_KILNOPS_H
#define KILN_DIALECT_KILNOPS_H

#include "kiln/Dialect/KilnDialect.h"
#include "kiln/Dialect/KilnTypeRules.h"
#include "kiln/Dialect/KilnTypes.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#define GET_OP_CLASSES
#include "kiln/Dialect/KilnOps.h.inc"

#endif // KILN_DIALECT_KILNOPS_H
