//===- KilnDialect.td - The kiln dialect -------------------*- tablegen -*-===//
//
// The `kiln` dialect: value-semantics tensor ops at the level of the aten ops
// that small language models use. See docs/dialect.md for the op contract
// shared with the front end, the lowering and the runtime.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_DIALECT_KILNDIALECT_TD
#define KILN_DIALECT_KILNDIALECT_TD

include "mlir/IR/OpBase.td"

def Kiln_Dialect : Dialect {
  let name = "kiln";
  let cppNamespace = "::kiln";
  let summary = "Tensor ops of the Kiln ahead-of-time compiler";
  let description = [{
    Value-semantics ops on builtin `tensor` types. Every op `kiln.X` becomes a
    program instruction `X` with the same operand order and attribute names,
    executed by a runtime kernel of the same name (docs/dialect.md).
  }];
  let hasConstantMaterializer = 1;
  // Types (KilnTypes.td): parsed and printed by the generated dispatch.
  let useDefaultTypePrinterParser = 1;
  let extraClassDeclaration = [{
    /// Registers the types of KilnTypes.td (KilnTypes.cpp).
    void registerTypes();
  }];
}

class Kiln_Op<string mnemonic, list<Trait> traits = []>
    : Op<Kiln_Dialect, mnemonic, traits>;

#endif // KILN_DIALECT_KILNDIALECT_TD
