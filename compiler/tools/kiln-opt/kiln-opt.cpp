//===- kiln-opt.cpp - mlir-opt for the kiln dialect -----------------------===//
//
// Parses, verifies, transforms and prints kiln IR: the driver of the dialect
// and pass lit tests. Registers the kiln, func and arith dialects, MLIR's
// generic transform passes (canonicalize, cse, ...) and the kiln passes.
//
//===----------------------------------------------------------------------===//

#include "kiln/Dialect/KilnDialect.h"
#include "passes/Passes.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

namespace {

/// MLIR's generic transform passes (canonicalize, cse, ...) and the kiln
/// passes declared in passes/Passes.td.
void registerAllKilnOptPasses() {
  mlir::registerTransformsPasses();
  kiln::registerKilnPasses();
}

} // namespace

int main(int argc, char **argv) {
  registerAllKilnOptPasses();

  mlir::DialectRegistry registry;
  registry.insert<kiln::KilnDialect, mlir::func::FuncDialect,
                  mlir::arith::ArithDialect>();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "Kiln optimizer driver\n", registry));
}
