//===- kiln-import.cpp - print the kiln MLIR of a TorchScript archive -----===//
//
// usage: kiln-import MODEL.pt [--method NAME ...] [--input-shape SPEC ...]
//                    [--locations] [-o OUT.mlir]
//
// Runs only the front end (no passes) and prints the imported module.
// Diagnostics go to stderr as `file:line:col: error: message`; on failure
// the exit code is 1 and nothing is written.
//
//===----------------------------------------------------------------------===//

#include "compiler/frontend/TorchScriptImporter.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Location.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

/// `file:line:col` for a location that has one, else MLIR's form.
static void printLocation(llvm::raw_ostream &os, mlir::Location loc) {
  if (auto fileLoc = loc->findInstanceOf<mlir::FileLineColLoc>()) {
    os << fileLoc.getFilename().getValue() << ":" << fileLoc.getLine() << ":"
       << fileLoc.getColumn();
    return;
  }
  os << loc;
}

static void printUsage(llvm::raw_ostream &os) {
  os << "usage: kiln-import MODEL.pt [--method NAME ...] [--input-shape SPEC ...]\n"
        "                   [--locations] [-o OUT.mlir]\n"
        "  Imports a TorchScript archive into the kiln dialect and prints it.\n"
        "  --method NAME   import only this method (repeatable; default: all)\n"
        "  --input-shape SPEC  declare a tensor input, [METHOD:]DIMS[:DTYPE]\n"
        "                  (as `kiln compile`; repeatable, in input order)\n"
        "  --locations     print op locations (Python source lines)\n"
        "  -o PATH         output file ('-' = stdout, the default)\n";
}

int main(int argc, char **argv) {
  std::string input, output = "-";
  bool printLocations = false;
  kiln::ImportOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      printUsage(llvm::outs());
      return 0;
    }
    if ((arg == "-o" || arg == "--method" || arg == "--input-shape") && i + 1 >= argc) {
      llvm::errs() << "kiln-import: option " << arg << " needs a value\n";
      return 1;
    }
    if (arg == "-o") {
      output = argv[++i];
    } else if (arg == "--locations") {
      printLocations = true;
    } else if (arg == "--method") {
      options.methods.push_back(argv[++i]);
    } else if (arg == "--input-shape") {
      kiln::InputShapeArgument spec;
      std::string error;
      if (!kiln::parseInputShapeArgument(argv[++i], spec, error)) {
        llvm::errs() << "kiln-import: error: invalid --input-shape '" << argv[i]
                     << "': " << error << "\n";
        return 1;
      }
      options.inputShapes.push_back(spec);
    } else if (!arg.empty() && arg[0] == '-') {
      llvm::errs() << "kiln-import: unknown option " << arg << "\n";
      printUsage(llvm::errs());
      return 1;
    } else if (input.empty()) {
      input = arg;
    } else {
      llvm::errs() << "kiln-import: more than one input file\n";
      return 1;
    }
  }
  if (input.empty()) {
    printUsage(llvm::errs());
    return 1;
  }

  mlir::DialectRegistry registry;
  kiln::registerFrontendDialects(registry);
  mlir::MLIRContext context(registry);
  context.printOpOnDiagnostic(false);
  mlir::ScopedDiagnosticHandler handler(&context, [](mlir::Diagnostic &diag) {
    printLocation(llvm::errs(), diag.getLocation());
    llvm::errs() << ": ";
    switch (diag.getSeverity()) {
    case mlir::DiagnosticSeverity::Error:
      llvm::errs() << "error: ";
      break;
    case mlir::DiagnosticSeverity::Warning:
      llvm::errs() << "warning: ";
      break;
    default:
      llvm::errs() << "note: ";
      break;
    }
    llvm::errs() << diag << "\n";
    for (mlir::Diagnostic &note : diag.getNotes()) {
      printLocation(llvm::errs(), note.getLocation());
      llvm::errs() << ": note: " << note << "\n";
    }
    return mlir::success();
  });

  mlir::OwningOpRef<mlir::ModuleOp> module =
      kiln::importTorchScript(context, input, options);
  if (!module)
    return 1;
  std::string error;
  std::unique_ptr<llvm::ToolOutputFile> file = mlir::openOutputFile(output, &error);
  if (!file) {
    llvm::errs() << "kiln-import: " << error << "\n";
    return 1;
  }
  mlir::OpPrintingFlags flags;
  if (printLocations)
    flags.enableDebugInfo(/*enable=*/true, /*prettyForm=*/false);
  module->print(file->os(), flags);
  file->os() << "\n";
  file->keep();
  return 0;
}
