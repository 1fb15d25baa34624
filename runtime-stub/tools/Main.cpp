// kiln-runtime: the standalone runtime tool (no compiler linked in).
#include "runtime-stub/tools/Commands.h"

#include <cstdio>
#include <cstring>

static void usage(FILE *out) {
  std::fprintf(out, "usage: kiln-runtime <command> [args]\n\ncommands:\n");
  std::fputs(kiln::rt::kilnRunUsage(), out);
  std::fputs("\n", out);
  std::fputs(kiln::rt::kilnInspectUsage(), out);
  std::fputs("\n", out);
  std::fputs(kiln::rt::kilnTokenizeUsage(), out);
  std::fputs("\n", out);
  std::fputs(kiln::rt::kilnGenerateUsage(), out);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 1;
  }
  const char *cmd = argv[1];
  if (!std::strcmp(cmd, "--help") || !std::strcmp(cmd, "-h") || !std::strcmp(cmd, "help")) {
    usage(stdout);
    return 0;
  }
  if (!std::strcmp(cmd, "run"))
    return kiln::rt::kilnRunCommand(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "inspect"))
    return kiln::rt::kilnInspectCommand(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "tokenize"))
    return kiln::rt::kilnTokenizeCommand(argc - 1, argv + 1);
  if (!std::strcmp(cmd, "generate"))
    return kiln::rt::kilnGenerateCommand(argc - 1, argv + 1);
  std::fprintf(stderr, "error: unknown command '%s'\n", cmd);
  usage(stderr);
  return 1;
}
