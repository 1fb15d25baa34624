#include "runtime-stub/tools/Commands.h"

#include "runtime-stub/core/Program.h"
#include "runtime-stub/io/Npy.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace kiln {
namespace rt {

int parseRuntimeOption(int argc, char **argv, int *i, LoadOptions *options, std::string *error) {
  std::string a = argv[*i];
  if (a == "--profile") {
    options->profile = true;
    return 1;
  }
  if (a != "--threads" && a != "--kernels")
    return 0;
  if (*i + 1 >= argc) {
    *error = a == "--threads" ? "--threads needs a number of threads (1 to " +
                                    std::to_string(Program::kMaxThreads) + ")"
                              : "--kernels needs 'portable' or 'optimized'";
    return -1;
  }
  std::string v = argv[++*i];
  if (a == "--kernels") {
    if (v != "portable" && v != "optimized") {
      *error = "--kernels must be 'portable' or 'optimized', got '" + v + "'";
      return -1;
    }
    options->portableKernels = v == "portable";
    return 1;
  }
  int n = 0;
  bool ok = !v.empty() && v.size() <= 4 && v.find_first_not_of("0123456789") == std::string::npos;
  if (ok)
    n = std::atoi(v.c_str());
  if (!ok || n < 1 || n > Program::kMaxThreads) {
    *error = "--threads must be a whole number from 1 to " + std::to_string(Program::kMaxThreads) +
             ", got '" + v + "'";
    return -1;
  }
  options->numThreads = n;
  return 1;
}

const char *kilnRunUsage() {
  return "usage: run PROGRAM.kiln [--method NAME] --input A.npy [--input B.npy ...]\n"
         "           [--then [--method NAME] --input ... ]... --output-dir DIR\n"
         "           [--no-verify-hashes] [--threads N] [--kernels portable|optimized]\n"
         "           [--profile]\n"
         "Runs a method (default: forward, or the only method) on .npy inputs and writes\n"
         "DIR/output0.npy, DIR/output1.npy, ... (nothing is written on error).\n"
         "--then starts another call on the same loaded program: program state (KV\n"
         "caches) carries over from call to call, as in prefill followed by decode\n"
         "steps. With several calls, call K writes DIR/stepK.output0.npy, ...\n"
         KILN_RUNTIME_OPTIONS_USAGE;
}

namespace {

int usageError(const std::string &message) {
  std::fprintf(stderr, "error: %s\n%s", message.c_str(), kilnRunUsage());
  return 1;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

bool makeDirs(const std::string &dir, std::string *err) {
  std::string cur;
  size_t pos = 0;
  while (pos <= dir.size()) {
    size_t next = dir.find('/', pos);
    if (next == std::string::npos)
      next = dir.size();
    cur = dir.substr(0, next);
    pos = next + 1;
    if (cur.empty())
      continue;
    if (::mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) {
      *err = "cannot create directory " + cur + ": " + std::strerror(errno);
      return false;
    }
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    *err = dir + " is not a directory";
    return false;
  }
  return true;
}

bool writeFile(const std::string &path, const std::vector<uint8_t> &bytes, std::string *err) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    *err = "cannot create " + path + ": " + std::strerror(errno);
    return false;
  }
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      *err = "cannot write " + path + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    off += (size_t)w;
  }
  if (::close(fd) != 0) {
    *err = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

} // namespace

int kilnRunCommand(int argc, char **argv) {
  // One call per --then group; state persists across the calls of one run.
  struct Step {
    std::string method;
    std::vector<std::string> inputs;
  };
  std::string programPath, outDir;
  std::vector<Step> steps(1);
  LoadOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string *out) {
      if (i + 1 >= argc)
        return false;
      *out = argv[++i];
      return true;
    };
    std::string optionError;
    int runtimeOption = parseRuntimeOption(argc, argv, &i, &options, &optionError);
    if (runtimeOption < 0)
      return usageError(optionError);
    if (runtimeOption > 0)
      continue;
    if (a == "--help" || a == "-h") {
      std::fputs(kilnRunUsage(), stdout);
      return 0;
    } else if (a == "--method") {
      if (!value(&steps.back().method))
        return usageError("--method needs a value");
    } else if (a == "--input") {
      std::string v;
      if (!value(&v))
        return usageError("--input needs a value");
      steps.back().inputs.push_back(v);
    } else if (a == "--then") {
      steps.emplace_back();
    } else if (a == "--output-dir") {
      if (!value(&outDir))
        return usageError("--output-dir needs a value");
    } else if (a == "--no-verify-hashes") {
      options.verifySegmentHashes = false;
    } else if (!a.empty() && a[0] == '-') {
      return usageError("unknown option '" + a + "'");
    } else if (programPath.empty()) {
      programPath = a;
    } else {
      return usageError("unexpected argument '" + a + "'");
    }
  }
  if (programPath.empty())
    return usageError("missing PROGRAM.kiln");
  if (outDir.empty())
    return usageError("missing --output-dir");

  Result<std::unique_ptr<Program>> program = Program::load(programPath, options);
  if (!program.ok())
    return fail(program.error().message());
  Program &prog = **program;
  std::string methodList;
  for (const std::string &n : prog.methodNames())
    methodList += (methodList.empty() ? "" : ", ") + n;
  for (Step &step : steps) {
    if (step.method.empty()) {
      std::vector<std::string> names = prog.methodNames();
      for (const std::string &n : names)
        if (n == "forward")
          step.method = n;
      if (step.method.empty()) {
        if (names.size() == 1)
          step.method = names[0];
        else
          return fail("the program has no 'forward' method; choose one with --method "
                      "(methods: " +
                      (methodList.empty() ? std::string("none") : methodList) + ")");
      }
    }
    if (!prog.methodInfo(step.method))
      return fail("no method '" + step.method + "' (methods: " + methodList + ")");
  }

  // Run every call, encoding the outputs; write nothing unless all succeed.
  std::vector<std::vector<uint8_t>> encoded;
  std::vector<std::string> finals;
  for (size_t k = 0; k < steps.size(); ++k) {
    const Step &step = steps[k];
    std::string where = steps.size() > 1 ? "call " + std::to_string(k) + " (" + step.method +
                                               "): "
                                         : "";
    std::vector<Tensor> tensors;
    for (const std::string &path : step.inputs) {
      Result<Tensor> t = readNpy(path);
      if (!t.ok())
        return fail(where + t.error().message());
      tensors.push_back(t.take());
    }
    Result<std::vector<Tensor>> outputs = prog.run(step.method, tensors);
    if (!outputs.ok())
      return fail(where + outputs.error().message());
    for (size_t i = 0; i < outputs->size(); ++i) {
      Result<std::vector<uint8_t>> e = encodeNpy((*outputs)[i]);
      if (!e.ok())
        return fail(where + "output " + std::to_string(i) + ": " + e.error().message());
      encoded.push_back(e.take());
      finals.push_back(outDir + "/" +
                       (steps.size() > 1 ? "step" + std::to_string(k) + "." : std::string()) +
                       "output" + std::to_string(i) + ".npy");
    }
  }
  if (options.profile)
    printProfile(prog, stderr);

  // Write temps, then rename: all or nothing.
  std::string err;
  if (!makeDirs(outDir, &err))
    return fail(err);
  std::vector<std::string> temps;
  std::string suffix = ".tmp." + std::to_string(::getpid());
  for (size_t i = 0; i < encoded.size(); ++i)
    temps.push_back(finals[i] + suffix);
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (!writeFile(temps[i], encoded[i], &err)) {
      for (size_t k = 0; k <= i; ++k)
        ::unlink(temps[k].c_str());
      return fail(err);
    }
  }
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (::rename(temps[i].c_str(), finals[i].c_str()) != 0) {
      err = "cannot rename " + temps[i] + " to " + finals[i] + ": " + std::strerror(errno);
      for (size_t k = i; k < temps.size(); ++k)
        ::unlink(temps[k].c_str());
      return fail(err);
    }
  }
  return 0;
}

} // namespace rt
} // namespace kiln
