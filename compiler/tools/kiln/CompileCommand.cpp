//===- CompileCommand.cpp - `kiln compile` --------------------------------===//
//
// TorchScript archive -> kiln dialect (front end) -> pass pipeline -> portable
// program file. Every failure is reported with its source location and exits 1;
// the program writer is atomic, so a failed compile leaves no output file.
//
//===----------------------------------------------------------------------===//

#include "compiler/tools/kiln/CompileCommand.h"

#include "compiler/frontend/TorchScriptImporter.h"
#include "lowering/portable/PortableLowering.h"
#include "passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

namespace kiln {
namespace {

struct CompileOptions {
  std::string modelPath;
  std::string outputPath;
  std::string backend = "portable";
  std::vector<std::string> methods;
  std::vector<InputShapeArgument> inputShapes;
  bool emitMlir = false;
  bool quiet = false;
  PipelineOptions pipeline;
  /// --metadata / --metadata-file, in command-line order (a later key wins).
  std::vector<std::pair<std::string, std::string>> metadata;
  /// --asset NAME=PATH: the file bytes, read while parsing the arguments.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> assets;
};

/// Splits "KEY=VALUE" at the first '='; false if there is none or KEY is empty.
bool splitAssignment(llvm::StringRef text, std::string &key, std::string &value) {
  size_t eq = text.find('=');
  if (eq == llvm::StringRef::npos || eq == 0)
    return false;
  key = text.substr(0, eq).str();
  value = text.substr(eq + 1).str();
  return true;
}

/// Reads a whole file for --metadata-file / --asset; false after an error.
bool readWholeFile(const std::string &option, const std::string &path,
                   std::vector<uint8_t> &bytes) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buffer =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buffer) {
    llvm::errs() << "kiln compile: error: " << option << ": cannot read '" << path
                 << "': " << buffer.getError().message() << "\n";
    return false;
  }
  llvm::StringRef data = (*buffer)->getBuffer();
  bytes.assign(data.begin(), data.end());
  return true;
}

void printCompileUsage(llvm::raw_ostream &os) {
  os << "usage: kiln compile MODEL.pt -o OUT.kiln [options]\n"
        "\n"
        "Compiles a TorchScript archive (torch.jit.trace or torch.jit.script,\n"
        "then .save()) into a Kiln program. Every method of the module is\n"
        "compiled (forward and any traced with torch.jit.trace_module).\n"
        "\n"
        "options:\n"
        "  -o, --output PATH     output program (or MLIR with --emit-mlir; '-' = stdout)\n"
        "  --backend NAME        code generation backend: portable (default)\n"
        "  --method NAME         compile only this method (repeatable)\n"
        "  --input-shape SPEC    declare a tensor input: [METHOD:]DIMS[:DTYPE], DIMS like\n"
        "                        1x16 or 'scalar', DTYPE f32 (default) i64 i1 i32 f16 bf16;\n"
        "                        repeat once per tensor input, in order; METHOD defaults\n"
        "                        to forward (or the only method compiled). Without it, specs\n"
        "                        come from the archive's kiln/input_specs.json, if any\n"
        "  --emit-mlir           write the kiln-dialect MLIR instead of a program\n"
        "  --no-dedup-weights    keep constants with identical bytes apart\n"
        "  --no-plan-memory      no static memory plan: the runtime allocates every value\n"
        "  --quantize MODE       weight-only quantization of linear/embedding weights:\n"
        "                        none (default), int8 (per output channel), int4 (group-wise)\n"
        "  --group-size N        int4 group size: 32 (default), 64 or 128\n"
        "  --no-fuse             keep RMSNorm/SwiGLU/RoPE/attention unfused (kiln-fuse off)\n"
        "  --metadata KEY=VALUE  store a metadata string (repeatable; docs/llm.md keys)\n"
        "  --metadata-file KEY=PATH  store the text of a file as metadata KEY\n"
        "  --asset NAME=PATH     store a file's bytes as the named asset (repeatable)\n"
        "  -q, --quiet           no progress output\n";
}

/// Parses argv (argv[0] == "compile"). Returns false after printing an error.
bool parseArgs(int argc, char **argv, CompileOptions &opts, bool &helpShown) {
  helpShown = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto needValue = [&](const char *name) -> const char * {
      if (i + 1 >= argc) {
        llvm::errs() << "kiln compile: option " << name << " needs a value\n";
        return nullptr;
      }
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      printCompileUsage(llvm::outs());
      helpShown = true;
      return true;
    }
    if (arg == "-o" || arg == "--output") {
      const char *v = needValue("-o");
      if (!v)
        return false;
      opts.outputPath = v;
    } else if (arg == "--backend") {
      const char *v = needValue("--backend");
      if (!v)
        return false;
      opts.backend = v;
    } else if (arg == "--method") {
      const char *v = needValue("--method");
      if (!v)
        return false;
      opts.methods.push_back(v);
    } else if (arg == "--input-shape") {
      const char *v = needValue("--input-shape");
      if (!v)
        return false;
      InputShapeArgument spec;
      std::string error;
      if (!parseInputShapeArgument(v, spec, error)) {
        llvm::errs() << "kiln compile: error: invalid --input-shape '" << v
                     << "': " << error << "\n";
        return false;
      }
      opts.inputShapes.push_back(spec);
    } else if (arg == "--quantize") {
      const char *v = needValue("--quantize");
      if (!v)
        return false;
      std::string mode = v;
      if (mode != "none" && mode != "int8" && mode != "int4") {
        llvm::errs() << "kiln compile: error: invalid --quantize '" << mode
                     << "' (expected none, int8 or int4)\n";
        return false;
      }
      opts.pipeline.quantize = mode;
    } else if (arg == "--group-size") {
      const char *v = needValue("--group-size");
      if (!v)
        return false;
      int64_t group = 0;
      if (llvm::StringRef(v).getAsInteger(10, group) || group <= 0) {
        llvm::errs() << "kiln compile: error: invalid --group-size '" << v
                     << "' (expected a positive integer: 32, 64 or 128)\n";
        return false;
      }
      opts.pipeline.groupSize = group;
    } else if (arg == "--metadata" || arg == "--metadata-file" || arg == "--asset") {
      const char *v = needValue(arg.c_str());
      if (!v)
        return false;
      std::string key, value;
      if (!splitAssignment(v, key, value)) {
        llvm::errs() << "kiln compile: error: invalid " << arg << " '" << v << "' (expected "
                     << (arg == "--metadata" ? "KEY=VALUE" : arg == "--asset" ? "NAME=PATH"
                                                                               : "KEY=PATH")
                     << ")\n";
        return false;
      }
      if (arg == "--metadata") {
        opts.metadata.push_back({key, value});
        continue;
      }
      std::vector<uint8_t> bytes;
      if (!readWholeFile(arg, value, bytes))
        return false;
      if (arg == "--metadata-file") {
        opts.metadata.push_back({key, std::string(bytes.begin(), bytes.end())});
        continue;
      }
      for (const auto &asset : opts.assets)
        if (asset.first == key) {
          llvm::errs() << "kiln compile: error: --asset '" << key << "' given twice\n";
          return false;
        }
      opts.assets.push_back({key, std::move(bytes)});
    } else if (arg == "--no-dedup-weights") {
      opts.pipeline.dedupWeights = false;
    } else if (arg == "--no-plan-memory") {
      opts.pipeline.planMemory = false;
    } else if (arg == "--no-fuse") {
      opts.pipeline.fuse = false;
    } else if (arg == "--emit-mlir") {
      opts.emitMlir = true;
    } else if (arg == "-q" || arg == "--quiet") {
      opts.quiet = true;
    } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
      llvm::errs() << "kiln compile: unknown option '" << arg << "'\n\n";
      printCompileUsage(llvm::errs());
      return false;
    } else if (opts.modelPath.empty()) {
      opts.modelPath = arg;
    } else {
      llvm::errs() << "kiln compile: unexpected argument '" << arg
                   << "' (one model per compile)\n";
      return false;
    }
  }
  if (opts.modelPath.empty() || opts.outputPath.empty()) {
    llvm::errs() << "kiln compile: "
                 << (opts.modelPath.empty() ? "no model given" : "no output given (-o OUT.kiln)")
                 << "\n\n";
    printCompileUsage(llvm::errs());
    return false;
  }
  if (opts.backend != "portable") {
    llvm::errs() << "kiln compile: unknown backend '" << opts.backend
                 << "' (available: portable)\n";
    return false;
  }
  return true;
}

/// Prints diagnostics as `file:line:col: error: message`, the form editors and
/// people read; notes attached to a diagnostic follow it.
void printDiagnostic(mlir::Diagnostic &diag) {
  llvm::raw_ostream &os = llvm::errs();
  if (diag.getSeverity() == mlir::DiagnosticSeverity::Remark) {
    // The passes' reports (progress output).
    os << "kiln: " << diag.str() << "\n";
    return;
  }
  auto printOne = [&](mlir::Diagnostic &d) {
    std::string loc;
    llvm::raw_string_ostream locStream(loc);
    d.getLocation().print(locStream);
    // FileLineColLoc prints as loc("file":L:C); show it as file:L:C.
    if (auto flc = mlir::dyn_cast<mlir::FileLineColLoc>(d.getLocation()))
      os << flc.getFilename().getValue() << ":" << flc.getLine() << ":" << flc.getColumn() << ": ";
    else if (!mlir::isa<mlir::UnknownLoc>(d.getLocation()))
      os << locStream.str() << ": ";
    switch (d.getSeverity()) {
    case mlir::DiagnosticSeverity::Error:
      os << "error: ";
      break;
    case mlir::DiagnosticSeverity::Warning:
      os << "warning: ";
      break;
    case mlir::DiagnosticSeverity::Note:
      os << "note: ";
      break;
    case mlir::DiagnosticSeverity::Remark:
      os << "remark: ";
      break;
    }
    os << d.str() << "\n";
  };
  printOne(diag);
  for (mlir::Diagnostic &note : diag.getNotes())
    printOne(note);
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

int compileCommand(int argc, char **argv) {
  CompileOptions opts;
  bool helpShown = false;
  if (!parseArgs(argc, argv, opts, helpShown))
    return 1;
  if (helpShown)
    return 0;

  if (!llvm::sys::fs::exists(opts.modelPath)) {
    llvm::errs() << "kiln compile: error: model file '" << opts.modelPath
                 << "' does not exist\n";
    return 1;
  }

  mlir::DialectRegistry registry;
  registerFrontendDialects(registry);
  mlir::MLIRContext context(registry);
  context.loadAllAvailableDialects();
  context.printOpOnDiagnostic(false);
  mlir::ScopedDiagnosticHandler diagHandler(&context, [](mlir::Diagnostic &diag) {
    printDiagnostic(diag);
    return mlir::success();
  });

  auto progress = [&](const std::string &line) {
    if (!opts.quiet)
      llvm::errs() << "kiln: " << line << "\n";
  };

  auto start = std::chrono::steady_clock::now();
  ImportOptions importOptions;
  importOptions.methods = opts.methods;
  importOptions.inputShapes = opts.inputShapes;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      importTorchScript(context, opts.modelPath, importOptions);
  if (!module) {
    llvm::errs() << "kiln compile: error: could not compile '" << opts.modelPath
                 << "'; no output written\n";
    return 1;
  }
  unsigned numMethods = 0;
  for (auto &op : module->getBody()->getOperations())
    numMethods += op.getName().getStringRef() == "func.func";
  progress("imported " + opts.modelPath + " (" + std::to_string(numMethods) +
           " method" + (numMethods == 1 ? "" : "s") + ") in " +
           std::to_string(secondsSince(start)).substr(0, 5) + " s");

  // The pass pipeline (passes/Pipeline.cpp).
  auto passStart = std::chrono::steady_clock::now();
  mlir::PassManager pm(&context);
  opts.pipeline.report = !opts.quiet;
  buildCompilePipeline(pm, opts.pipeline);
  if (mlir::failed(pm.run(*module))) {
    llvm::errs() << "kiln compile: error: the pass pipeline failed; no output written\n";
    return 1;
  }
  progress("passes done in " + std::to_string(secondsSince(passStart)).substr(0, 5) + " s");

  if (opts.emitMlir) {
    std::string errorMessage;
    auto output = mlir::openOutputFile(opts.outputPath, &errorMessage);
    if (!output) {
      llvm::errs() << "kiln compile: error: " << errorMessage << "\n";
      return 1;
    }
    module->print(output->os());
    output->os() << "\n";
    output->keep();
    return 0;
  }

  auto writeStart = std::chrono::steady_clock::now();
  ProgramOptions programOptions;
  programOptions.metadata.push_back({"source_model", llvm::sys::path::filename(opts.modelPath).str()});
  programOptions.metadata.push_back({"backend", opts.backend});
  if (opts.pipeline.quantize != "none")
    programOptions.metadata.push_back(
        {"quantize", opts.pipeline.quantize +
                         (opts.pipeline.quantize == "int4"
                              ? " group " + std::to_string(opts.pipeline.groupSize)
                              : std::string())});
  for (auto &kv : opts.metadata)
    programOptions.metadata.push_back(kv);
  programOptions.assets = std::move(opts.assets);
  if (mlir::failed(writePortableProgram(*module, opts.outputPath, programOptions))) {
    llvm::errs() << "kiln compile: error: could not write '" << opts.outputPath
                 << "'; no output written\n";
    return 1;
  }
  uint64_t size = 0;
  llvm::sys::fs::file_size(opts.outputPath, size);
  progress("wrote " + opts.outputPath + " (" + std::to_string(size) + " bytes) in " +
           std::to_string(secondsSince(writeStart)).substr(0, 5) + " s");
  return 0;
}

} // namespace kiln
