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
};

/// Loads the TorchScript archive at `path`, freezes it (parameters and
/// unmutated buffers become constants; every method name is preserved),
/// inlines, lowers tuples and imports each method as one public `func.func`.
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
