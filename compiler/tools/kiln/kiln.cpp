//===- kiln.cpp - The kiln command-line driver ----------------------------===//
//
// One binary for the whole toolchain: `kiln compile` runs the compiler (it links
// LibTorch and MLIR); `kiln run` and `kiln inspect` call the same code as the
// standalone runtime binary `kiln-runtime`, which links neither.
//
//===----------------------------------------------------------------------===//

#include "compiler/tools/kiln/CompileCommand.h"
#include "runtime-stub/tools/Commands.h"

#include <cstdio>
#include <cstring>

static void printUsage(std::FILE *out) {
  std::fprintf(out,
               "usage: kiln <command> [options]\n"
               "\n"
               "commands:\n"
               "  compile MODEL.pt -o OUT.kiln [--backend portable] [--emit-mlir]\n"
               "                   [--method NAME ...] [-q]\n"
               "      compile a TorchScript archive (torch.jit.trace/script + save)\n"
               "  run OUT.kiln [--method NAME] --input A.npy [--input B.npy ...]\n"
               "               --output-dir DIR\n"
               "      run one method; writes DIR/output0.npy, DIR/output1.npy, ...\n"
               "  inspect OUT.kiln [--json]\n"
               "      methods, inputs/outputs, op counts and sizes of a program\n"
               "\n"
               "`kiln <command> --help` shows the options of one command.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    printUsage(stderr);
    return 1;
  }
  const char *command = argv[1];
  if (!std::strcmp(command, "--help") || !std::strcmp(command, "-h") ||
      !std::strcmp(command, "help")) {
    printUsage(stdout);
    return 0;
  }
  if (!std::strcmp(command, "compile"))
    return kiln::compileCommand(argc - 1, argv + 1);
  if (!std::strcmp(command, "run"))
    return kiln::rt::kilnRunCommand(argc - 1, argv + 1);
  if (!std::strcmp(command, "inspect"))
    return kiln::rt::kilnInspectCommand(argc - 1, argv + 1);
  std::fprintf(stderr, "kiln: unknown command '%s'\n\n", command);
  printUsage(stderr);
  return 1;
}
