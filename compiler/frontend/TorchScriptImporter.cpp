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
#include "llvm/ADT/StringSwitch.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/library.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/passes/lower_tuples.h>
#include <torch/csrc/jit/passes/peephole.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/passes/symbolic_shape_analysis.h>
#include <torch/csrc/jit/serialization/import.h>

#include <map>

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

/// The schema of the custom op of docs/llm.md (python/kiln/ops.py defines the
/// same one for PyTorch).
constexpr const char *kCachedAttentionSchema =
    "cached_attention(Tensor q, Tensor k_cache, Tensor v_cache, Tensor start_pos, "
    "float scale) -> Tensor";

/// Makes `kiln::cached_attention` known to the dispatcher (and so to
/// torch::jit::load) unless it is already, e.g. by python/kiln/ops.py in the
/// same process. A static TORCH_LIBRARY would clash with that registration;
/// this one only defines the schema (the front end never runs the op), and the
/// Library object stays alive for the rest of the process.
void registerKilnTorchOps() {
  static std::unique_ptr<torch::Library> library;
  if (library)
    return;
  if (c10::Dispatcher::singleton().findSchema({"kiln::cached_attention", ""}).has_value())
    return;
  library = std::make_unique<torch::Library>(torch::Library::DEF, "kiln", c10::nullopt,
                                             __FILE__, __LINE__);
  library->def(kCachedAttentionSchema);
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

/// The graph inputs that input specs describe: the tensor inputs, in order
/// (`self` and number arguments of scripted methods are not described).
std::vector<jit::Value *> getTensorInputs(jit::Graph &graph) {
  std::vector<jit::Value *> inputs;
  for (jit::Value *input : graph.inputs())
    if (input->type()->kind() == c10::TypeKind::TensorType)
      inputs.push_back(input);
  return inputs;
}

c10::ScalarType getScalarType(llvm::StringRef dtype) {
  return llvm::StringSwitch<c10::ScalarType>(dtype)
      .Case("i64", c10::kLong)
      .Case("i1", c10::kBool)
      .Case("i32", c10::kInt)
      .Case("f16", c10::kHalf)
      .Case("bf16", c10::kBFloat16)
      .Default(c10::kFloat);
}

/// Gives the tensor inputs of `graph` the complete types of `specs` (sizes,
/// contiguous strides, dtype, CPU), then lets TorchScript propagate shapes
/// and fold what they make constant: shape peepholes turn `aten::size` of
/// known sizes into constants, constant propagation folds the integer
/// arithmetic and the tensors computed from sizes alone (positions, masks).
/// Shape propagation is best effort: when it fails the graph keeps only its
/// input types and the importer computes shapes itself (a warning says so).
void applyInputSpecs(std::shared_ptr<jit::Graph> &graph, llvm::StringRef method,
                     const std::vector<TensorInputSpec> &specs, Location loc) {
  std::vector<jit::Value *> inputs = getTensorInputs(*graph);
  for (auto [input, spec] : llvm::zip_equal(inputs, specs)) {
    std::vector<int64_t> strides(spec.shape.size(), 1);
    for (size_t i = spec.shape.size(); i-- > 1;)
      strides[i - 1] = strides[i] * std::max<int64_t>(spec.shape[i], 1);
    input->setType(c10::TensorType::create(
        getScalarType(spec.dtype), c10::Device(c10::kCPU),
        c10::VaryingShape<int64_t>(spec.shape), c10::VaryingShape<int64_t>(strides),
        /*requires_grad=*/false));
  }
  std::shared_ptr<jit::Graph> work = graph->copy();
  try {
    // Each round can expose more: a folded size makes a view's shape constant,
    // which makes the next shapes known. Four rounds are plenty for traces.
    for (int round = 0; round < 4; ++round) {
      jit::PropagateShapesOnGraph(work);
      bool changed = jit::PeepholeOptimize(work, /*disable_shape_peepholes=*/false);
      changed |= jit::ConstantPropagation(work);
      if (!changed)
        break;
    }
    jit::PropagateShapesOnGraph(work);
    jit::EliminateDeadCode(work);
  } catch (const std::exception &error) {
    emitWarning(loc) << "TorchScript shape propagation failed for method '"
                     << method << "' (" << summarize(error)
                     << "); Kiln computes the static shapes it can by itself";
    return;
  }
  graph = work;
}

/// Resolves the input specs of each imported method: `--input-shape`
/// arguments first, else the archive's kiln/input_specs.json. Emits an error
/// and returns failure for a spec naming an unknown or not imported method.
LogicalResult resolveInputSpecs(const ImportOptions &options,
                                const std::string &archiveSpecsJson,
                                llvm::ArrayRef<std::string> available,
                                llvm::ArrayRef<std::string> imported, Location loc,
                                MethodInputSpecs &result,
                                std::map<std::string, std::string> &origin) {
  auto checkMethod = [&](const std::string &name, llvm::StringRef source) {
    if (!llvm::is_contained(available, name)) {
      emitError(loc) << source << " names method '" << name
                     << "', which the archive does not have (methods: "
                     << llvm::join(available, ", ") << ")";
      return failure();
    }
    return success();
  };
  MethodInputSpecs fromArguments;
  for (const InputShapeArgument &argument : options.inputShapes) {
    std::string method = argument.method;
    if (method.empty()) {
      // The default: forward, or the only method compiled.
      if (llvm::is_contained(imported, "forward")) {
        method = "forward";
      } else if (imported.size() == 1) {
        method = imported.front();
      } else {
        emitError(loc) << "--input-shape " << formatInputSpec(argument.spec)
                       << " names no method, and several methods but no "
                          "'forward' are compiled ("
                       << llvm::join(imported, ", ") << "); write METHOD:"
                       << formatInputSpec(argument.spec);
        return failure();
      }
    }
    if (failed(checkMethod(method, "--input-shape")))
      return failure();
    if (!llvm::is_contained(imported, method)) {
      emitError(loc) << "--input-shape names method '" << method
                     << "', which is not compiled (--method "
                     << llvm::join(imported, " --method ") << ")";
      return failure();
    }
    fromArguments[method].push_back(argument.spec);
  }
  // The archive's specs matter only for methods without --input-shape.
  bool needArchiveSpecs = llvm::any_of(
      imported, [&](const std::string &method) { return !fromArguments.count(method); });
  MethodInputSpecs fromArchive;
  if (needArchiveSpecs && !archiveSpecsJson.empty()) {
    std::string error;
    if (!parseInputSpecsJson(archiveSpecsJson, fromArchive, error)) {
      emitError(loc) << "invalid archive extra file " << kInputSpecsExtraFile
                     << ": " << error;
      return failure();
    }
    for (const auto &entry : fromArchive)
      if (failed(checkMethod(entry.first, kInputSpecsExtraFile)))
        return failure();
  }
  for (const std::string &method : imported) {
    if (auto it = fromArguments.find(method); it != fromArguments.end()) {
      result[method] = it->second;
      origin[method] = "--input-shape";
    } else if (auto it = fromArchive.find(method); it != fromArchive.end()) {
      result[method] = it->second;
      origin[method] = kInputSpecsExtraFile;
    }
  }
  return success();
}

} // namespace

OwningOpRef<ModuleOp> importTorchScript(MLIRContext &context, llvm::StringRef path,
                                        const ImportOptions &options) {
  context.loadDialect<kiln::KilnDialect, func::FuncDialect>();
  Location fileLoc = FileLineColLoc::get(&context, path, 0, 0);

  jit::Module frozen;
  std::vector<std::string> methods;
  MethodInputSpecs inputSpecs;
  std::map<std::string, std::string> inputSpecsOrigin;
  try {
    registerKilnTorchOps();
    jit::ExtraFilesMap extraFiles;
    if (options.readArchiveInputSpecs)
      extraFiles[kInputSpecsExtraFile] = "";
    jit::Module module = jit::load(path.str(), c10::nullopt, extraFiles);
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
    if (failed(resolveInputSpecs(options, extraFiles[kInputSpecsExtraFile],
                                 available, methods, fileLoc, inputSpecs,
                                 inputSpecsOrigin)))
      return nullptr;
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
  importer.setModule(&frozen);
  bool hadError = false;
  for (const std::string &name : methods) {
    std::shared_ptr<jit::Graph> graph;
    auto specs = inputSpecs.find(name);
    try {
      graph = frozen.get_method(name).graph()->copy();
      prepareGraph(graph);
      if (specs != inputSpecs.end()) {
        size_t count = getTensorInputs(*graph).size();
        if (count != specs->second.size()) {
          const std::string &origin = inputSpecsOrigin[name];
          InFlightDiagnostic diag = emitError(fileLoc);
          diag << "method " << name << " takes " << count << " tensor input"
               << (count == 1 ? "" : "s") << ", ";
          if (origin == kInputSpecsExtraFile)
            diag << origin << " describes " << specs->second.size();
          else
            diag << specs->second.size() << " --input-shape given";
          hadError = true;
          continue;
        }
        applyInputSpecs(graph, name, specs->second, fileLoc);
      }
    } catch (const std::exception &error) {
      emitError(fileLoc) << "cannot prepare method '" << name
                         << "' for import: " << summarize(error);
      hadError = true;
      continue;
    }
    try {
      const std::vector<TensorInputSpec> *methodSpecs =
          specs != inputSpecs.end() ? &specs->second : nullptr;
      if (failed(importer.importMethod(name, *graph, methodSpecs)))
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
