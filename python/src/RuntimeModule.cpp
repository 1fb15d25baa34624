// kiln._kiln: the runtime for Python (load, run, generate). Links only the Kiln
// runtime (no LibTorch, no MLIR), so `kiln.load` is cheap to import. Errors from
// the runtime become Python exceptions with its message: a bad argument is a
// ValueError, a missing/unreadable file an OSError, anything else a RuntimeError.
#include "runtime-stub/core/Program.h"
#include "runtime-stub/llm/Runner.h"

#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace py = pybind11;
using namespace kiln::rt;

namespace {

[[noreturn]] void raise(const Error &e) {
  switch (e.code()) {
  case ErrorCode::InvalidArgument:
  case ErrorCode::OutOfRange:
    throw py::value_error(e.message());
  case ErrorCode::Io:
    PyErr_SetString(PyExc_OSError, e.message().c_str());
    throw py::error_already_set();
  default:
    throw std::runtime_error(e.message());
  }
}

template <typename T> T unwrap(Result<T> r) {
  if (!r.ok())
    raise(r.error());
  return r.take();
}

/// numpy dtype for a runtime dtype (bf16 has none: returned as f32).
py::dtype numpyDType(DType t) {
  switch (t) {
  case DType::Float32:
  case DType::BFloat16:
    return py::dtype::of<float>();
  case DType::Int64:
    return py::dtype::of<int64_t>();
  case DType::Bool:
    return py::dtype::of<bool>();
  case DType::Int32:
    return py::dtype::of<int32_t>();
  case DType::Float16:
    return py::dtype("float16");
  case DType::Int8:
    return py::dtype::of<int8_t>();
  case DType::UInt8:
    return py::dtype::of<uint8_t>();
  default:
    throw std::runtime_error(std::string("no numpy dtype for ") + dtypeName(t));
  }
}

/// A runtime dtype for a numpy array's dtype; throws ValueError for others.
DType runtimeDType(const py::array &a, size_t index) {
  const char kind = a.dtype().kind();
  const ssize_t size = a.dtype().itemsize();
  if (kind == 'f' && size == 4)
    return DType::Float32;
  if (kind == 'f' && size == 2)
    return DType::Float16;
  if (kind == 'i' && size == 8)
    return DType::Int64;
  if (kind == 'i' && size == 4)
    return DType::Int32;
  if (kind == 'i' && size == 1)
    return DType::Int8;
  if (kind == 'u' && size == 1)
    return DType::UInt8;
  if (kind == 'b')
    return DType::Bool;
  throw py::value_error("input " + std::to_string(index) + " has numpy dtype " +
                        py::str(a.dtype()).cast<std::string>() +
                        ", which Kiln does not take (float32, float16, int64, int32, int8, "
                        "uint8, bool)");
}

py::array toNumpy(const Tensor &t) {
  if (t.isQuantized() || t.dtype() == DType::Int4)
    throw std::runtime_error("cannot return a quantized tensor (" + t.describe() + ") to numpy");
  std::vector<ssize_t> shape;
  for (int i = 0; i < t.rank(); ++i)
    shape.push_back((ssize_t)t.dim(i));
  py::array out(numpyDType(t.dtype()), shape);
  if (t.numel() == 0)
    return out;
  if (t.dtype() == DType::BFloat16) {
    const uint16_t *src = t.dataAs<uint16_t>();
    float *dst = static_cast<float *>(out.mutable_data());
    for (int64_t i = 0; i < t.numel(); ++i)
      dst[i] = bfloat16ToFloat(src[i]);
  } else {
    std::memcpy(out.mutable_data(), t.data(), t.nbytes());
  }
  return out;
}

py::object shapeOf(const ValueInfo &v) {
  if (v.rank < 0)
    return py::none();
  py::list dims;
  for (int64_t d : v.dims)
    dims.append(d < 0 ? py::object(py::none()) : py::object(py::int_(d)));
  return py::tuple(dims);
}

py::dict valueInfoDict(const ValueInfo &v) {
  py::dict d;
  d["name"] = v.name;
  d["dtype"] = v.dtype == DType::Unknown ? py::object(py::none()) : py::object(py::str(dtypeName(v.dtype)));
  d["shape"] = shapeOf(v);
  d["spec"] = v.str();
  return d;
}

/// One call at a time per program (the runtime reuses its buffers and the KV cache
/// is shared): another thread waits, without the GIL; a call from inside a
/// generate() stream callback is an error instead of a deadlock.
class ProgramLock {
public:
  ProgramLock(std::mutex &mutex, std::atomic<std::thread::id> &owner)
      : lock_(mutex, std::defer_lock), owner_(owner) {
    if (owner_.load() == std::this_thread::get_id())
      throw std::runtime_error("the program is busy in generate(): a stream callback cannot "
                               "run, reset or generate with the same program");
    {
      py::gil_scoped_release release;
      lock_.lock();
    }
    owner_.store(std::this_thread::get_id());
  }
  ~ProgramLock() { owner_.store(std::thread::id()); }

private:
  std::unique_lock<std::mutex> lock_;
  std::atomic<std::thread::id> &owner_;
};

/// A loaded program. LLM programs (prefill/decode + kiln.llm.* metadata) are held
/// by an LlmRunner, which owns the Program; others by the Program alone.
class PyProgram {
public:
  PyProgram(const std::string &path, bool verifyHashes, int numThreads, bool portableKernels)
      : path_(path) {
    LoadOptions options;
    options.verifySegmentHashes = verifyHashes;
    options.numThreads = numThreads;
    options.portableKernels = portableKernels;
    std::unique_ptr<Program> program;
    {
      py::gil_scoped_release release;
      Result<std::unique_ptr<Program>> r = Program::load(path, options);
      if (!r.ok()) {
        py::gil_scoped_acquire acquire;
        raise(r.error());
      }
      program = r.take();
    }
    if (program->methodInfo("prefill") && program->methodInfo("decode")) {
      Result<std::unique_ptr<LlmRunner>> runner = LlmRunner::fromProgram(std::move(program));
      if (runner.ok()) {
        runner_ = runner.take();
        return;
      }
      // Not a usable LLM program: keep it as a plain program (the file is verified,
      // so reloading skips the hashes) and tell generate() why.
      notLlm_ = runner.error().message();
      options.verifySegmentHashes = false;
      program_ = unwrap(Program::load(path, options));
    } else {
      notLlm_ = "not an LLM program: it has no 'prefill' and 'decode' methods (methods: " +
                joined(program->methodNames()) + ")";
      program_ = std::move(program);
    }
  }

  Program &program() { return runner_ ? runner_->program() : *program_; }

  std::vector<std::string> methods() { return program().methodNames(); }
  int numThreads() { return program().numThreads(); }

  py::dict methodInfo(const std::string &name) {
    const MethodInfo *info = program().methodInfo(name);
    if (!info)
      throw py::key_error("no method '" + name + "' (methods: " + joined(methods()) + ")");
    py::dict d;
    d["name"] = info->name;
    py::list inputs, outputs;
    for (const ValueInfo &v : info->inputs)
      inputs.append(valueInfoDict(v));
    for (const ValueInfo &v : info->outputs)
      outputs.append(valueInfoDict(v));
    d["inputs"] = inputs;
    d["outputs"] = outputs;
    d["num_instructions"] = info->numInstructions;
    d["arena_bytes"] = info->arenaBytes;
    return d;
  }

  py::dict metadata() {
    py::dict d;
    for (const auto &kv : program().metadataEntries())
      d[py::str(kv.first)] = py::bytes(kv.second).attr("decode")("utf-8", "replace");
    return d;
  }

  std::vector<std::string> assetNames() { return program().assetNames(); }

  py::bytes asset(const std::string &name) {
    auto bytes = program().asset(name);
    if (!bytes.ok()) {
      if (bytes.error().code() == ErrorCode::InvalidArgument)
        throw py::key_error(bytes.error().message());
      raise(bytes.error());
    }
    return py::bytes(reinterpret_cast<const char *>(bytes->first), bytes->second);
  }

  py::list run(const std::string &method, const py::sequence &inputs) {
    if (!program().methodInfo(method))
      throw py::key_error("no method '" + method + "' (methods: " + joined(methods()) + ")");
    // Borrow each array's memory (C-contiguous copies where needed); `keep`
    // holds them until the run is over.
    ProgramLock lock(mutex_, owner_);
    std::vector<py::array> keep;
    std::vector<Tensor> tensors;
    for (size_t i = 0; i < (size_t)py::len(inputs); ++i) {
      py::object item = inputs[i];
      py::array a = py::array::ensure(item, py::array::c_style);
      if (!a)
        throw py::value_error("input " + std::to_string(i) + " is not an array (" +
                              py::str(py::type::of(item)).cast<std::string>() + ")");
      DType dtype = runtimeDType(a, i);
      Result<Shape> shape = Shape::make(std::vector<int64_t>(a.shape(), a.shape() + a.ndim()));
      if (!shape.ok())
        throw py::value_error("input " + std::to_string(i) + ": " + shape.error().message());
      tensors.push_back(Tensor::borrow(dtype, *shape, a.data()));
      keep.push_back(a);
    }
    Result<std::vector<Tensor>> out = [&] {
      py::gil_scoped_release release;
      return program().run(method, tensors);
    }();
    if (!out.ok())
      raise(out.error());
    py::list result;
    for (const Tensor &t : *out)
      result.append(toNumpy(t));
    return result;
  }

  void resetState() {
    ProgramLock lock(mutex_, owner_);
    Error e = program().resetState();
    if (e.failed())
      raise(e);
  }

  std::vector<std::string> stateNames() { return program().stateNames(); }

  py::object state(const std::string &name) {
    ProgramLock lock(mutex_, owner_);
    const Tensor *t = program().state(name);
    if (!t)
      throw py::key_error("no state '" + name + "' (states: " + joined(stateNames()) + ")");
    return toNumpy(*t);
  }

  bool isLlm() const { return runner_ != nullptr; }

  LlmRunner &runner() {
    if (!runner_)
      throw std::runtime_error(path_ + ": " + notLlm_);
    return *runner_;
  }

  std::vector<int32_t> encode(const std::string &text) {
    return unwrap(runner().encodePrompt(text));
  }

  py::bytes decode(const std::vector<int32_t> &ids) {
    const Tokenizer *tok = runner().tokenizer();
    if (!tok)
      throw std::runtime_error("the program carries no tokenizer (kiln.tokenizer.kind = none)");
    return py::bytes(unwrap(tok->decode(ids)));
  }

  py::dict llmInfo() {
    LlmRunner &r = runner();
    py::dict d;
    d["max_seq_len"] = r.maxSeqLen();
    d["prefill_chunk"] = r.prefillChunk();
    d["vocab_size"] = r.vocabSize();
    d["eos_token_ids"] = r.eosIds();
    d["tokenizer"] = r.tokenizer() ? py::object(py::str(r.tokenizer()->kind())) : py::none();
    return d;
  }

  py::array promptLogits(const std::vector<int32_t> &prompt) {
    LlmRunner &r = runner();
    ProgramLock lock(mutex_, owner_);
    Result<Tensor> t = [&] {
      py::gil_scoped_release release;
      return r.promptLogits(prompt);
    }();
    if (!t.ok())
      raise(t.error());
    return toNumpy(*t);
  }

  /// Returns {"tokens", "text" (bytes, UTF-8), "prompt_tokens", stats...}.
  py::dict generate(std::optional<std::string> prompt, std::optional<std::vector<int32_t>> promptTokens,
                    int maxNewTokens, float temperature, float topP, uint64_t seed,
                    bool ignoreEos, py::object stream) {
    LlmRunner &r = runner();
    if (prompt.has_value() == promptTokens.has_value())
      throw py::value_error(prompt ? "give prompt or prompt_tokens, not both"
                                   : "give a prompt (text) or prompt_tokens (ids)");
    std::vector<int32_t> ids = prompt ? unwrap(r.encodePrompt(*prompt)) : *promptTokens;
    GenerationConfig config;
    config.maxNewTokens = maxNewTokens;
    config.temperature = temperature;
    config.topP = topP;
    config.seed = seed;
    config.ignoreEos = ignoreEos;

    ProgramLock lock(mutex_, owner_);
    std::string text;
    std::optional<py::error_already_set> callbackError;
    const bool haveStream = !stream.is_none();
    TokenCallback onToken = [&](int32_t id, const std::string &piece) {
      text += piece;
      py::gil_scoped_acquire acquire;
      try {
        // Ctrl-C stops generation (KeyboardInterrupt), with or without a callback.
        if (PyErr_CheckSignals() != 0)
          throw py::error_already_set();
        if (!haveStream)
          return true;
        py::object keep = stream(id, py::bytes(piece).attr("decode")("utf-8", "replace"));
        return !(py::isinstance<py::bool_>(keep) && !keep.cast<bool>());
      } catch (py::error_already_set &e) {
        callbackError.emplace(std::move(e));
        return false;
      }
    };
    GenerationStats stats;
    Result<std::vector<int32_t>> out = [&] {
      py::gil_scoped_release release;
      return r.generate(ids, config, onToken, &stats);
    }();
    if (callbackError)
      throw std::move(*callbackError);
    if (!out.ok())
      raise(out.error());
    py::dict d;
    d["tokens"] = *out;
    d["text"] = py::bytes(text);
    d["prompt_tokens"] = ids;
    d["prefill_seconds"] = stats.prefillSeconds;
    d["decode_seconds"] = stats.decodeSeconds;
    d["prompt_token_count"] = stats.promptTokens;
    d["generated_token_count"] = stats.generatedTokens;
    d["stopped_at_eos"] = stats.stoppedAtEos;
    d["stopped_at_cache_end"] = stats.stoppedAtCacheEnd;
    return d;
  }

  const std::string &path() const { return path_; }

private:
  static std::string joined(const std::vector<std::string> &names) {
    std::string s;
    for (const std::string &n : names)
      s += (s.empty() ? "" : ", ") + n;
    return s.empty() ? "none" : s;
  }

  std::string path_;
  std::unique_ptr<Program> program_;
  std::unique_ptr<LlmRunner> runner_;
  std::string notLlm_;
  std::mutex mutex_;
  std::atomic<std::thread::id> owner_{};
};

} // namespace

PYBIND11_MODULE(_kiln, m) {
  m.doc() = "Kiln runtime bindings (use the kiln package: kiln.load, kiln.compile)";
  py::class_<PyProgram>(m, "Program")
      .def(py::init<const std::string &, bool, int, bool>(), py::arg("path"),
           py::arg("verify_hashes") = true, py::arg("num_threads") = 0,
           py::arg("portable_kernels") = false)
      .def_property_readonly("num_threads", &PyProgram::numThreads)
      .def_property_readonly("path", &PyProgram::path)
      .def_property_readonly("methods", &PyProgram::methods)
      .def("method_info", &PyProgram::methodInfo, py::arg("name"))
      .def_property_readonly("metadata", &PyProgram::metadata)
      .def_property_readonly("asset_names", &PyProgram::assetNames)
      .def("asset", &PyProgram::asset, py::arg("name"))
      .def("run", &PyProgram::run, py::arg("method"), py::arg("inputs"))
      .def("reset_state", &PyProgram::resetState)
      .def_property_readonly("state_names", &PyProgram::stateNames)
      .def("state", &PyProgram::state, py::arg("name"))
      .def_property_readonly("is_llm", &PyProgram::isLlm)
      .def("llm_info", &PyProgram::llmInfo)
      .def("encode", &PyProgram::encode, py::arg("text"))
      .def("decode", &PyProgram::decode, py::arg("ids"))
      .def("prompt_logits", &PyProgram::promptLogits, py::arg("prompt_tokens"))
      .def("generate", &PyProgram::generate, py::arg("prompt"), py::arg("prompt_tokens"),
           py::arg("max_new_tokens"), py::arg("temperature"), py::arg("top_p"),
           py::arg("seed"), py::arg("ignore_eos"), py::arg("stream"));
}
