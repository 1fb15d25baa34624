//===- kiln.cpp - The kiln command-line driver ----------------------------===//
//
// One binary for the whole toolchain: `kiln compile` runs the compiler (it links
// LibTorch and MLIR); `kiln run` and `kiln inspect` call the same code as the
// standalone runtime binary `kiln-runtime`, which links neither.
//
//===----------------------------------------------------------------------===//

#include "compiler/tools/kiln/CompileCommand.h"
#include "compiler/tools/kiln/ExportHfCommand.h"
#include "runtime-stub/tools/Commands.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

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
               "  export-hf CHECKPOINT_DIR -o OUT.kiln [--quantize none|int8|int4]\n"
               "            [--group-size N] [--max-seq-len N] [--prefill-chunk C]\n"
               "            [--verify] [--verify-tokens N] [--report FILE.json]\n"
               "      export a Hugging Face MobileLLM / -LS / -R1 checkpoint (prefill +\n"
               "      decode methods, KV cache, config and tokenizer in one program)\n"
               "  inspect OUT.kiln [--json]\n"
               "      methods, inputs/outputs, op counts and sizes of a program\n"
               "  generate OUT.kiln (--prompt TEXT | --prompt-tokens 1,2,3) [-n N]\n"
               "           [--temperature T] [--top-p P] [--seed S] [--ignore-eos]\n"
               "           [--print-token-ids]\n"
               "      generate text with an exported LLM (streams; speeds on stderr)\n"
               "  tokenize --tokenizer FILE (--text STR | --text-file F | --decode IDS)\n"
               "      encode text to token ids or decode ids (`kiln tokenize --help`)\n"
               "\n"
               "`kiln <command> --help` shows the options of one command.\n");
}

/// `tokenize` and `generate` run in `kiln-runtime` (next to this binary): they need
/// libsentencepiece, whose bundled protobuf 3.14 symbols clash with the protobuf
/// 3.21 that LibTorch loads (one process crashes at startup with both linked).
static int runWithKilnRuntime(int argc, char **argv) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n <= 0) {
    std::fprintf(stderr, "kiln: error: cannot locate this binary: %s\n", std::strerror(errno));
    return 1;
  }
  self[n] = '\0';
  std::string runtime = self;
  runtime = runtime.substr(0, runtime.rfind('/') + 1) + "kiln-runtime";
  std::vector<char *> args;
  args.push_back(const_cast<char *>(runtime.c_str()));
  for (int i = 1; i < argc; ++i)
    args.push_back(argv[i]);
  args.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  execv(runtime.c_str(), args.data());
  std::fprintf(stderr, "kiln: error: cannot run %s: %s\n", runtime.c_str(), std::strerror(errno));
  return 1;
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
  if (!std::strcmp(command, "export-hf"))
    return kiln::exportHfCommand(argc - 1, argv + 1);
  if (!std::strcmp(command, "run"))
    return kiln::rt::kilnRunCommand(argc - 1, argv + 1);
  if (!std::strcmp(command, "inspect"))
    return kiln::rt::kilnInspectCommand(argc - 1, argv + 1);
  if (!std::strcmp(command, "tokenize") || !std::strcmp(command, "generate"))
    return runWithKilnRuntime(argc, argv);
  std::fprintf(stderr, "kiln: unknown command '%s'\n\n", command);
  printUsage(stderr);
  return 1;
}
