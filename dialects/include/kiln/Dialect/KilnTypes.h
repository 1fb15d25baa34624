//===- KilnTypes.h - kiln dialect types -------------------------*- C++ -*-===//
//
// kiln::QWeightType (`!kiln.qweight<...>`), generated from KilnTypes.td.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_KILNTYPES_H
#define KILN_DIALECT_KILNTYPES_H

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Types.h"

#define GET_TYPEDEF_CLASSES
#include "kiln/Dialect/KilnTypes.h.inc"

#endif // KILN_DIALECT_KILNTYPES_H
