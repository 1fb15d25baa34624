//===- TorchScriptImporter.cpp - TorchScript archive -> kiln dialect ------===//
//
// Loads and freezes the archive with LibTorch, prepares each method graph
// (inline, functionalise in-place ops, fold constants, flatten tuples) and
// hands it to GraphImporter. LibTorch reports errors with exceptions; none
// leaves this file: they become MLIR diagnostics.
//
//===----------------------------------------------------------------------===//

#include "compiler/frontend/TorchScriptImporter.h"

#include "compiler/frontend/GraphImporter.h"
#include "compiler/frontend/TensorConstants.h"

#include "kiln/Dialect/KilnOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringExtras.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/lower_tuples.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/serialization/import.h>

using namespace mlir;
namespace jit = torch::jit;

namespace kiln {

void registerFrontendDialects(DialectRegistry &registry) {
  registry.insert<kiln::KilnDialect, func::FuncDialect>();
}

namespace {

/// The first line of a LibTorch error (the rest is a C++ backtrace).
std::string summarize(const std::exception &error) {
  if (const auto *c10Error = dynamic_cast<const c10::Error *>(&error))
    return c10Error->what_without_backtrace();
  return error.what();
}

/// Prepares a frozen method graph for import: calls inlined, in-place ops on
/// intermediate tensors made functional, constants folded, tuples flattened.
void prepareGraph(std::shared_ptr<jit::Graph> &graph) {
  jit::Inline(*graph);
  jit::LowerSimpleTuples(graph);
  jit::RemoveListMutation(graph);
  jit::RemoveTensorMutation(graph);
  jit::ConstantPropagation(graph);
  jit::LowerAllTuples(graph);
  jit::EliminateDeadCode(graph);
}

} // namespace

OwningOpRef<ModuleOp> importTorchScript(MLIRContext &context, llvm::StringRef path,
                                        const ImportOptions &options) {
  context.loadDialect<kiln::KilnDialect, func::FuncDialect>();
  Location fileLoc = FileLineColLoc::get(&context, path, 0, 0);

  jit::Module frozen;
  std::vector<std::string> methods;
  try {
    jit::Module module = jit::load(path.str());
    module.eval();
    std::vector<std::string> available;
    for (const jit::Method &method : module.get_methods())
      available.push_back(method.name());
    if (options.methods.empty()) {
      methods = available;
    } else {
      for (const std::string &name : options.methods) {
        if (!llvm::is_contained(available, name)) {
          emitError(fileLoc) << "the archive has no method '" << name
                             << "' (methods: " << llvm::join(available, ", ") << ")";
          return nullptr;
        }
        methods.push_back(name);
      }
    }
    if (methods.empty()) {
      emitError(fileLoc) << "the archive has no methods to compile";
      return nullptr;
    }
    // Freezing keeps `forward` by default; every other method we import must
    // be preserved by name, or it would be dropped.
    std::vector<std::string> preserved;
    for (const std::string &name : methods)
      if (name != "forward")
        preserved.push_back(name);
    // freeze_module rather than jit::freeze: the latter insists on a
    // `forward` method, which trace_module archives may not have.
    frozen = jit::freeze_module(module, preserved);
  } catch (const std::exception &error) {
    emitError(fileLoc) << "cannot load TorchScript archive " << path << ": "
                       << summarize(error);
    return nullptr;
  }

  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  frontend::TensorConstantImporter constants(&context);
  frontend::GraphImporter importer(*module, constants, path);
  bool hadError = false;
  for (const std::string &name : methods) {
    std::shared_ptr<jit::Graph> graph;
    try {
      graph = frozen.get_method(name).graph()->copy();
      prepareGraph(graph);
    } catch (const std::exception &error) {
      emitError(fileLoc) << "cannot prepare method '" << name
                         << "' for import: " << summarize(error);
      hadError = true;
      continue;
    }
    try {
      if (failed(importer.importMethod(name, *graph)))
        hadError = true;
    } catch (const std::exception &error) {
      emitError(fileLoc) << "internal error while importing method '" << name
                         << "': " << summarize(error);
      hadError = true;
    }
  }
  if (hadError)
    return nullptr;
  if (failed(verify(*module)))
    return nullptr;
  return module;
}

} // namespace kiln
