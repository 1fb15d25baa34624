//===- ExportHfCommand.cpp - `kiln export-hf` -----------------------------===//
//
// The Hugging Face exporter is Python (it builds and traces our own PyTorch model,
// python/kiln/export_hf.py). This command execs Debian's python3 on it with
// PYTHONPATH = <source dir>/python (prepended) and KILN_BIN = this binary, which the
// exporter runs for `compile`, `run`, `generate` and `inspect`.
//
//===----------------------------------------------------------------------===//

#include "compiler/tools/kiln/ExportHfCommand.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

#ifndef KILN_SOURCE_DIR
#error "KILN_SOURCE_DIR must be defined (the repository root, for python/kiln)"
#endif
#ifndef KILN_PYTHON_EXECUTABLE
#define KILN_PYTHON_EXECUTABLE "/usr/bin/python3"
#endif

int kiln::exportHfCommand(int argc, char **argv) {
  std::string pythonPath = std::string(KILN_SOURCE_DIR) + "/python";
  if (const char *old = std::getenv("PYTHONPATH"); old && *old)
    pythonPath += std::string(":") + old;
  if (setenv("PYTHONPATH", pythonPath.c_str(), 1) != 0) {
    std::fprintf(stderr, "kiln export-hf: error: cannot set PYTHONPATH: %s\n",
                 std::strerror(errno));
    return 1;
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    setenv("KILN_BIN", self, 1);
  }
  const char *python = KILN_PYTHON_EXECUTABLE;
  std::vector<char *> args;
  args.push_back(const_cast<char *>(python));
  args.push_back(const_cast<char *>("-m"));
  args.push_back(const_cast<char *>("kiln.export_hf"));
  for (int i = 1; i < argc; ++i)
    args.push_back(argv[i]);
  args.push_back(nullptr);
  std::fflush(stdout);
  std::fflush(stderr);
  execv(python, args.data());
  std::fprintf(stderr, "kiln export-hf: error: cannot run %s: %s\n", python,
               std::strerror(errno));
  return 1;
}
