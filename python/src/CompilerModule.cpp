// kiln._compiler: `kiln compile` in process (the same code as the CLI: front end,
// pass pipeline, portable program writer). Imported on demand by kiln.compile,
// because it loads LibTorch and MLIR.
//
// The compiler reports on stderr (llvm::errs); to hand its diagnostics to Python,
// file descriptor 2 is pointed at a temporary file for the duration of the call.
// That is process-wide, so compile from one thread at a time (the GIL is held).
#include "compiler/tools/kiln/CompileCommand.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

namespace py = pybind11;

namespace {

/// Points fd 2 at a temporary file until release(), which restores it and returns
/// what was written.
class StderrCapture {
public:
  StderrCapture() {
    std::fflush(stderr);
    file_ = std::tmpfile();
    saved_ = ::dup(2);
    if (!file_ || saved_ < 0 || ::dup2(::fileno(file_), 2) < 0)
      throw std::runtime_error("kiln.compile: cannot capture the compiler's diagnostics");
  }
  ~StderrCapture() { restore(); }

  std::string release() {
    std::fflush(stderr);
    restore();
    std::string text;
    if (file_) {
      std::rewind(file_);
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0)
        text.append(buf, n);
      std::fclose(file_);
      file_ = nullptr;
    }
    return text;
  }

private:
  void restore() {
    if (saved_ >= 0) {
      ::dup2(saved_, 2);
      ::close(saved_);
      saved_ = -1;
    }
  }
  std::FILE *file_ = nullptr;
  int saved_ = -1;
};

} // namespace

PYBIND11_MODULE(_compiler, m) {
  m.doc() = "The Kiln compiler in process (use kiln.compile)";
  m.def(
      "compile_command",
      [](const std::vector<std::string> &args) {
        // argv as `kiln compile ARGS...` sees it.
        std::vector<std::string> storage;
        storage.push_back("compile");
        storage.insert(storage.end(), args.begin(), args.end());
        std::vector<char *> argv;
        for (std::string &s : storage)
          argv.push_back(s.data());
        argv.push_back(nullptr);
        int code;
        std::string output;
        {
          StderrCapture capture;
          code = kiln::compileCommand((int)storage.size(), argv.data());
          output = capture.release();
        }
        return py::make_tuple(code, py::bytes(output).attr("decode")("utf-8", "replace"));
      },
      py::arg("args"),
      "Runs `kiln compile ARGS...`; returns (exit code, diagnostics and progress text).");
}
