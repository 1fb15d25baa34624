//===- TorchScriptImporter.h - TorchScript archive -> kiln dialect -*- C++ -*-===//
//
// The front end's public API. It loads a TorchScript archive (torch.jit.trace or
// torch.jit.script, then .save()), freezes it and imports every method into one
// `func.func` of `kiln` ops. This header does not include LibTorch, so tools
// that only call the importer build without exceptions or RTTI.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_FRONTEND_TORCHSCRIPTIMPORTER_H
#define KILN_COMPILER_FRONTEND_TORCHSCRIPTIMPORTER_H

#include "compiler/frontend/InputSpecs.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

#include <string>
#include <vector>

namespace kiln {

struct ImportOptions {
  /// Methods to import. Empty: every method of the module (`forward` plus any
  /// traced with torch.jit.trace_module).
  std::vector<std::string> methods;
  /// Declared input shapes and dtypes (`--input-shape`), in order per method;
  /// an argument without a method name applies to `forward`, or to the only
  /// method compiled. A method with none takes the specs of the archive's
  /// extra file `kiln/input_specs.json`, if it has some.
  std::vector<InputShapeArgument> inputShapes;
  /// Whether to read `kiln/input_specs.json` from the archive.
  bool readArchiveInputSpecs = true;
};

/// Loads the TorchScript archive at `path`, freezes it (parameters and
/// unmutated buffers become constants; every method name is preserved),
/// inlines, lowers tuples and imports each method as one public `func.func`.
///
/// A method with input specs gets statically shaped arguments of the declared
/// dtypes; TorchScript's shape propagation, peephole and constant propagation
/// then fold its size arithmetic, and every value whose shape is known gets a
/// static type. Without specs, arguments are unranked with guessed dtypes.
///
/// Never throws. On failure returns null after emitting diagnostics (with the
/// Python source location of the offending node when there is one) on
/// `context`; every unsupported operator of the archive is reported, not just
/// the first.
mlir::OwningOpRef<mlir::ModuleOp>
importTorchScript(mlir::MLIRContext &context, llvm::StringRef path,
                  const ImportOptions &options);

/// Registers the dialects the imported module uses (kiln, func).
void registerFrontendDialects(mlir::DialectRegistry &registry);

} // namespace kiln

#endif // KILN_COMPILER_FRONTEND_TORCHSCRIPTIMPORTER_H
