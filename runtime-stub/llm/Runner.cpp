// The LLM runner (docs/llm.md §3). The prefill/decode input tensors are allocated
// once per runner and rewritten in place; the KV cache is the program's state;
// the logits are read in place (Program::runViews), never copied.
#include "runtime-stub/llm/Runner.h"

#include "runtime-stub/llm/Sampler.h"
#include "runtime-stub/llm/TextStream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

namespace kiln {
namespace rt {

namespace {

const char *const kPrefill = "prefill";
const char *const kDecode = "decode";
const char *const kPrefillLast = "prefill_last";

/// A metadata value of the program file, or null.
const std::string *metadataValue(const Program &program, const std::string &key) {
  return program.metadata(key);
}

/// Parses a whole string as a decimal integer in [lo, hi].
bool parseInt(const std::string &s, int64_t lo, int64_t hi, int64_t *out) {
  if (s.empty() || s.size() > 18) // no overflow below 10^18
    return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

Result<int64_t> requiredInt(const Program &program, const char *key, int64_t lo, int64_t hi) {
  const std::string *v = metadataValue(program, key);
  if (!v)
    return invalidProgram(std::string("not an LLM program: metadata key '") + key +
                          "' is missing (export it with `kiln export-hf`)");
  int64_t out = 0;
  if (!parseInt(*v, lo, hi, &out))
    return invalidProgram(std::string("metadata ") + key + " = '" + *v +
                          "' is not an integer in [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "]");
  return out;
}

double secondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

/// Checks that `method` takes (tokens i64 [1, T], start_pos i64 [1]) and returns
/// logits f32 [1, T, V], where the program declares static shapes.
/// An LLM method: (tokens i64[1, tokens], start_pos i64[1]) -> logits
/// f32[1, outRows, vocab]; withLast: a third input last i64[1] (prefill_last).
Error checkMethod(const Program &program, const char *method, int64_t tokens, int64_t vocab,
                  int64_t outRows, bool withLast) {
  const MethodInfo *info = program.methodInfo(method);
  if (!info)
    return invalidProgram(std::string("not an LLM program: no '") + method +
                          "' method (an exported LLM has 'prefill' and 'decode')");
  auto dimsMatch = [](const ValueInfo &v, const std::vector<int64_t> &want) {
    if (v.rank < 0)
      return true;
    if ((size_t)v.rank != want.size())
      return false;
    for (size_t i = 0; i < want.size(); ++i)
      if (v.dims[i] >= 0 && v.dims[i] != want[i])
        return false;
    return true;
  };
  auto str = [](const std::vector<int64_t> &d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i)
      s += (i ? "," : "") + std::to_string(d[i]);
    return s + "]";
  };
  std::string where = std::string("method ") + method;
  const size_t nIn = withLast ? 3 : 2;
  if (info->inputs.size() != nIn)
    return invalidProgram(where + " takes " + std::to_string(info->inputs.size()) +
                          " inputs; it should take " +
                          (withLast ? "(tokens, start_pos, last)" : "(tokens, start_pos)"));
  const ValueInfo &tok = info->inputs[0];
  const ValueInfo &pos = info->inputs[1];
  if ((tok.dtype != DType::Unknown && tok.dtype != DType::Int64) ||
      !dimsMatch(tok, {1, tokens}))
    return invalidProgram(where + ": input tokens is " + tok.str() + ", expected i64" +
                          str({1, tokens}));
  if ((pos.dtype != DType::Unknown && pos.dtype != DType::Int64) || !dimsMatch(pos, {1}))
    return invalidProgram(where + ": input start_pos is " + pos.str() + ", expected i64[1]");
  if (withLast) {
    const ValueInfo &last = info->inputs[2];
    if ((last.dtype != DType::Unknown && last.dtype != DType::Int64) || !dimsMatch(last, {1}))
      return invalidProgram(where + ": input last is " + last.str() + ", expected i64[1]");
  }
  if (info->outputs.size() != 1)
    return invalidProgram(where + " returns " + std::to_string(info->outputs.size()) +
                          " outputs; an LLM method returns the logits only");
  const ValueInfo &out = info->outputs[0];
  if ((out.dtype != DType::Unknown && out.dtype != DType::Float32) ||
      !dimsMatch(out, {1, outRows, vocab}))
    return invalidProgram(where + ": output logits is " + out.str() + ", expected f32" +
                          str({1, outRows, vocab}));
  return Error::success();
}

} // namespace

struct LlmRunner::Impl {
  std::unique_ptr<Program> program;
  std::unique_ptr<Tokenizer> tokenizer;
  int maxSeqLen = 0;
  int chunk = 0;
  int vocab = 0;
  int32_t bosId = -1;
  bool addBos = false;
  std::vector<int32_t> eos;

  // Inputs, allocated once: prefill (tokens [1, C], start_pos [1]) and decode
  // (tokens [1, 1], start_pos [1]).
  std::vector<Tensor> prefillInputs;
  std::vector<Tensor> decodeInputs;
  std::vector<Tensor> prefillLastInputs; // prefillInputs' tensors + last [1]
  // Method indices and the outputs of the last run: views into the program's
  // arena, valid until the next run (Program::runViews): no copy per token.
  int prefillIndex = -1;
  int decodeIndex = -1;
  int prefillLastIndex = -1; // -1: the program has no prefill_last
  std::vector<Tensor> outputs;

  Error checkPrompt(const std::vector<int32_t> &prompt) const;
  /// Writes the chunk of `prompt` starting at `start` (padded with token 0)
  /// and start_pos into a prefill method's inputs.
  void setChunk(std::vector<Tensor> &inputs, const std::vector<int32_t> &prompt, int start) const;
  /// Runs prefill on the chunk starting at `start` (padding with 0 past the
  /// prompt) and returns the logits [1, C, V]: a view valid until the next run.
  /// Without wantLogits the logits are not computed (Program::runViews
  /// skipOutputs) and the result is undefined.
  Result<const Tensor *> prefillChunk(const std::vector<int32_t> &prompt, int start,
                                      bool wantLogits = true);
  Result<const Tensor *> decodeStep(int32_t token, int position);
  /// Runs prefill_last on the chunk starting at `start` and returns the
  /// logits [1, 1, V] of prompt position start + row (a view, as above).
  Result<const Tensor *> prefillLastChunk(const std::vector<int32_t> &prompt, int start,
                                          int row);
  Result<const float *> logitsRow(const Tensor &logits, int row, int rows) const;
};

Error LlmRunner::Impl::checkPrompt(const std::vector<int32_t> &prompt) const {
  const int64_t n = (int64_t)prompt.size();
  if (n == 0)
    return invalidArgument("the prompt is empty: give at least one token");
  if (n + 1 > maxSeqLen)
    return invalidArgument(
        "the prompt has " + std::to_string(n) + " tokens but the program's KV cache holds " +
        std::to_string(maxSeqLen) + " positions (n + 1 > S: " + std::to_string(n) + " + 1 > " +
        std::to_string(maxSeqLen) +
        "); shorten the prompt or export with a larger --max-seq-len");
  for (int64_t i = 0; i < n; ++i)
    if (prompt[(size_t)i] < 0 || prompt[(size_t)i] >= vocab)
      return invalidArgument("prompt token " + std::to_string(i) + " is id " +
                             std::to_string(prompt[(size_t)i]) +
                             ", outside the vocabulary [0, " + std::to_string(vocab) + ")");
  return Error::success();
}

void LlmRunner::Impl::setChunk(std::vector<Tensor> &inputs, const std::vector<int32_t> &prompt,
                               int start) const {
  int64_t *tokens = inputs[0].mutableDataAs<int64_t>();
  for (int i = 0; i < chunk; ++i) {
    size_t at = (size_t)(start + i);
    tokens[i] = at < prompt.size() ? prompt[at] : 0;
  }
  inputs[1].mutableDataAs<int64_t>()[0] = start;
}

Result<const Tensor *> LlmRunner::Impl::prefillChunk(const std::vector<int32_t> &prompt,
                                                      int start, bool wantLogits) {
  setChunk(prefillInputs, prompt, start);
  KILN_TRY(program->runViews(prefillIndex, prefillInputs, &outputs, wantLogits ? 0 : 1));
  return static_cast<const Tensor *>(&outputs[0]);
}

Result<const Tensor *> LlmRunner::Impl::prefillLastChunk(const std::vector<int32_t> &prompt,
                                                          int start, int row) {
  setChunk(prefillLastInputs, prompt, start);
  prefillLastInputs[2].mutableDataAs<int64_t>()[0] = row;
  KILN_TRY(program->runViews(prefillLastIndex, prefillLastInputs, &outputs));
  return static_cast<const Tensor *>(&outputs[0]);
}

Result<const Tensor *> LlmRunner::Impl::decodeStep(int32_t token, int position) {
  decodeInputs[0].mutableDataAs<int64_t>()[0] = token;
  decodeInputs[1].mutableDataAs<int64_t>()[0] = position;
  KILN_TRY(program->runViews(decodeIndex, decodeInputs, &outputs));
  return static_cast<const Tensor *>(&outputs[0]);
}

Result<const float *> LlmRunner::Impl::logitsRow(const Tensor &logits, int row, int rows) const {
  if (logits.dtype() != DType::Float32 || logits.numel() != (int64_t)rows * vocab)
    return invalidProgram("the logits are " + logits.describe() + ", expected f32[1," +
                          std::to_string(rows) + "," + std::to_string(vocab) + "]");
  return logits.dataAs<float>() + (size_t)row * (size_t)vocab;
}

LlmRunner::LlmRunner(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlmRunner::~LlmRunner() = default;

Result<std::unique_ptr<LlmRunner>> LlmRunner::load(const std::string &path,
                                                   const LoadOptions &options) {
  Result<std::unique_ptr<Program>> program = Program::load(path, options);
  if (!program.ok())
    return program.error();
  Result<std::unique_ptr<LlmRunner>> runner = fromProgram(program.take());
  if (!runner.ok())
    return runner.error().withContext(path);
  return runner;
}

Result<std::unique_ptr<LlmRunner>> LlmRunner::fromProgram(std::unique_ptr<Program> program) {
  if (!program)
    return invalidArgument("no program");
  auto impl = std::make_unique<Impl>();
  const Program &p = *program;

  // Methods first: "no prefill" says more than a missing metadata key.
  for (const char *m : {kPrefill, kDecode})
    if (!p.methodInfo(m))
      return invalidProgram(std::string("not an LLM program: no '") + m +
                            "' method (an exported LLM has 'prefill' and 'decode')");

  Result<int64_t> s = requiredInt(p, "kiln.llm.max_seq_len", 2, 1 << 24);
  if (!s.ok())
    return s.error();
  Result<int64_t> c = requiredInt(p, "kiln.llm.prefill_chunk", 1, *s);
  if (!c.ok())
    return c.error();
  Result<int64_t> v = requiredInt(p, "kiln.llm.vocab_size", 1, INT32_MAX);
  if (!v.ok())
    return v.error();
  impl->maxSeqLen = (int)*s;
  impl->chunk = (int)*c;
  impl->vocab = (int)*v;
  KILN_TRY(checkMethod(p, kPrefill, impl->chunk, impl->vocab, impl->chunk, false));
  KILN_TRY(checkMethod(p, kDecode, 1, impl->vocab, 1, false));
  // Optional (docs/llm.md §1): the last prompt chunk with only its last row's logits.
  if (p.methodInfo(kPrefillLast))
    KILN_TRY(checkMethod(p, kPrefillLast, impl->chunk, impl->vocab, 1, true));

  const std::string *bos = metadataValue(p, "kiln.llm.bos_token_id");
  if (!bos)
    return invalidProgram("not an LLM program: metadata key 'kiln.llm.bos_token_id' is missing");
  if (!bos->empty()) {
    int64_t id = 0;
    if (!parseInt(*bos, 0, impl->vocab - 1, &id))
      return invalidProgram("metadata kiln.llm.bos_token_id = '" + *bos +
                            "' is not an id in [0, " + std::to_string(impl->vocab) + ")");
    impl->bosId = (int32_t)id;
  }
  const std::string *addBos = metadataValue(p, "kiln.llm.add_bos");
  if (!addBos || (*addBos != "0" && *addBos != "1"))
    return invalidProgram("metadata kiln.llm.add_bos must be 0 or 1" +
                          std::string(addBos ? ", got '" + *addBos + "'" : " (missing)"));
  impl->addBos = *addBos == "1";
  if (impl->addBos && impl->bosId < 0)
    return invalidProgram("metadata kiln.llm.add_bos is 1 but kiln.llm.bos_token_id is empty");

  const std::string *eos = metadataValue(p, "kiln.llm.eos_token_ids");
  if (!eos)
    return invalidProgram("not an LLM program: metadata key 'kiln.llm.eos_token_ids' is missing");
  size_t at = 0;
  while (at < eos->size()) {
    size_t comma = eos->find(',', at);
    std::string item = eos->substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    int64_t id = 0;
    if (!parseInt(item, 0, impl->vocab - 1, &id))
      return invalidProgram("metadata kiln.llm.eos_token_ids = '" + *eos + "': '" + item +
                            "' is not an id in [0, " + std::to_string(impl->vocab) + ")");
    impl->eos.push_back((int32_t)id);
    if (comma == std::string::npos)
      break;
    at = comma + 1;
  }

  const std::string *kind = metadataValue(p, "kiln.tokenizer.kind");
  if (!kind)
    return invalidProgram("not an LLM program: metadata key 'kiln.tokenizer.kind' is missing");
  if (*kind != "none") {
    auto bytes = p.asset("tokenizer");
    if (!bytes.ok())
      return bytes.error().withContext("tokenizer (kind " + *kind + ")");
    Result<std::unique_ptr<Tokenizer>> tok =
        Tokenizer::create(*kind, bytes->first, bytes->second);
    if (!tok.ok())
      return tok.error().withContext("tokenizer (kind " + *kind + ")");
    impl->tokenizer = tok.take();
  }

  // The inputs, once.
  for (auto spec : {std::make_pair(&impl->prefillInputs, impl->chunk),
                    std::make_pair(&impl->decodeInputs, 1)}) {
    Result<Tensor> tokens = Tensor::zeros(DType::Int64, Shape{1, spec.second});
    if (!tokens.ok())
      return tokens.error();
    Result<Tensor> pos = Tensor::zeros(DType::Int64, Shape{1});
    if (!pos.ok())
      return pos.error();
    spec.first->push_back(tokens.take());
    spec.first->push_back(pos.take());
  }
  impl->prefillIndex = program->methodIndex(kPrefill);
  impl->decodeIndex = program->methodIndex(kDecode);
  impl->prefillLastIndex = program->methodIndex(kPrefillLast);
  if (impl->prefillLastIndex >= 0) {
    for (int i = 0; i < 2; ++i) {
      Result<Tensor> t = Tensor::zeros(DType::Int64, impl->prefillInputs[(size_t)i].shape());
      if (!t.ok())
        return t.error();
      impl->prefillLastInputs.push_back(t.take());
    }
    Result<Tensor> last = Tensor::zeros(DType::Int64, Shape{1});
    if (!last.ok())
      return last.error();
    impl->prefillLastInputs.push_back(last.take());
  }
  impl->outputs.reserve(1);
  impl->program = std::move(program);
  return std::unique_ptr<LlmRunner>(new LlmRunner(std::move(impl)));
}

const Tokenizer *LlmRunner::tokenizer() const { return impl_->tokenizer.get(); }
int LlmRunner::maxSeqLen() const { return impl_->maxSeqLen; }
int LlmRunner::prefillChunk() const { return impl_->chunk; }
int LlmRunner::vocabSize() const { return impl_->vocab; }
const std::vector<int32_t> &LlmRunner::eosIds() const { return impl_->eos; }
Program &LlmRunner::program() { return *impl_->program; }

Result<std::vector<int32_t>> LlmRunner::encodePrompt(const std::string &text) const {
  if (!impl_->tokenizer)
    return invalidArgument("the program carries no tokenizer (kiln.tokenizer.kind = none): "
                           "give the prompt as token ids (--prompt-tokens 1,2,3)");
  Result<std::vector<int32_t>> ids = impl_->tokenizer->encode(text);
  if (!ids.ok())
    return ids.error();
  std::vector<int32_t> out;
  out.reserve(ids->size() + 1);
  if (impl_->addBos)
    out.push_back(impl_->bosId);
  out.insert(out.end(), ids->begin(), ids->end());
  return out;
}

Result<Tensor> LlmRunner::promptLogits(const std::vector<int32_t> &prompt) {
  Impl &m = *impl_;
  KILN_TRY(m.checkPrompt(prompt));
  KILN_TRY(m.program->resetState());
  const int n = (int)prompt.size();
  Result<Tensor> all = Tensor::empty(DType::Float32, Shape{n, m.vocab});
  if (!all.ok())
    return all.error();
  float *dst = all->mutableDataAs<float>();
  int done = 0; // rows [0, done) are filled
  while (done < n) {
    int start = done + m.chunk <= n ? done : std::max(0, n - m.chunk);
    Result<const Tensor *> logits = m.prefillChunk(prompt, start);
    if (!logits.ok())
      return logits.error();
    Result<const float *> rows = m.logitsRow(**logits, 0, m.chunk);
    if (!rows.ok())
      return rows.error();
    int end = std::min(n, start + m.chunk);
    std::memcpy(dst + (size_t)done * m.vocab, *rows + (size_t)(done - start) * m.vocab,
                sizeof(float) * (size_t)(end - done) * m.vocab);
    done = end;
  }
  return all;
}

Result<std::vector<int32_t>> LlmRunner::generate(const std::vector<int32_t> &prompt,
                                                 const GenerationConfig &config,
                                                 const TokenCallback &onToken,
                                                 GenerationStats *stats) {
  Impl &m = *impl_;
  if (config.maxNewTokens < 0)
    return invalidArgument("max new tokens must be >= 0, got " +
                           std::to_string(config.maxNewTokens));
  if (!(config.temperature >= 0.0f) || std::isinf(config.temperature))
    return invalidArgument("temperature must be a finite number >= 0, got " +
                           std::to_string(config.temperature));
  if (!(config.topP > 0.0f && config.topP <= 1.0f))
    return invalidArgument("top-p must be in (0, 1], got " + std::to_string(config.topP));
  KILN_TRY(m.checkPrompt(prompt));

  GenerationStats local;
  GenerationStats &st = stats ? *stats : local;
  st = GenerationStats();
  st.promptTokens = (int)prompt.size();

  Sampler sampler(m.vocab, config.temperature, config.topP, config.seed);
  std::vector<int32_t> generated;
  generated.reserve((size_t)std::max(0, std::min(config.maxNewTokens, m.maxSeqLen)));
  TextStream text(onToken ? m.tokenizer.get() : nullptr, prompt,
                  (size_t)std::max(0, std::min(config.maxNewTokens, m.maxSeqLen)));
  std::string piece;

  // 1-2. Reset the cache and prefill. Only the last prompt position's logits
  // are sampled. With prefill_last (docs/llm.md §3): the chunks cover
  // positions [0, n), the earlier ones without their logits (runViews skips
  // the final norm and the [C, V] lm_head, which nobody reads) and the last
  // one through prefill_last, which returns position n-1's [1, 1, V] logits.
  // Programs without it: the chunks cover [0, n-1) without logits, then
  // decode runs the last prompt token.
  KILN_TRY(m.program->resetState());
  const int n = (int)prompt.size();
  const bool viaPrefillLast = m.prefillLastIndex >= 0 && config.maxNewTokens > 0;
  const int m1 = viaPrefillLast ? n : n - 1; // positions prefilled in chunks
  auto prefillStart = std::chrono::steady_clock::now();
  Result<const Tensor *> last = static_cast<const Tensor *>(nullptr);
  for (int start = 0; m1 > 0;) {
    const bool final = start + m.chunk >= m1;
    if (final && viaPrefillLast)
      last = m.prefillLastChunk(prompt, start, n - 1 - start);
    else
      last = m.prefillChunk(prompt, start, /*wantLogits=*/false);
    if (!last.ok())
      return last.error();
    if (final)
      break;
    start = start + 2 * m.chunk <= m1 ? start + m.chunk : std::max(0, m1 - m.chunk);
  }
  if (config.maxNewTokens == 0) {
    st.prefillSeconds = secondsSince(prefillStart);
    return generated;
  }
  if (!viaPrefillLast) {
    last = m.decodeStep(prompt[(size_t)m1], m1);
    if (!last.ok())
      return last.error().withContext("decode of the last prompt token");
  }
  st.prefillSeconds = secondsSince(prefillStart);
  // The prefill arena (mostly room for the [1, C, V] logits) is scratch now:
  // decode needs only the start of it.
  m.program->releaseArenaMemory(m.program->methodInfo(kDecode)->arenaBytes);
  Result<const float *> row = m.logitsRow(**last, 0, 1);
  if (!row.ok())
    return row.error();

  // 3-4. Sample, then decode one token at a time.
  auto isEos = [&](int32_t id) {
    return std::find(m.eos.begin(), m.eos.end(), id) != m.eos.end();
  };
  auto decodeStart = std::chrono::steady_clock::now();
  int position = n; // where the next sampled token goes
  for (;;) {
    int32_t id = sampler.sample(*row);
    generated.push_back(id);
    bool eosStop = !config.ignoreEos && isEos(id);
    bool full = (int)generated.size() >= config.maxNewTokens;
    bool cacheEnd = position >= m.maxSeqLen && !eosStop && !full; // cannot be decoded
    bool last = eosStop || full || cacheEnd;
    if (onToken) {
      // The stopping EOS has no text of its own (and BPE would spell it out).
      Error e = eosStop ? text.flush(&piece) : text.push(id, last, &piece);
      if (e.failed())
        return e.withContext("decoding generated token " + std::to_string(id));
      if (!onToken(id, piece))
        break;
    }
    if (last) {
      st.stoppedAtEos = eosStop;
      st.stoppedAtCacheEnd = cacheEnd;
      break;
    }
    Result<const Tensor *> out = m.decodeStep(id, position);
    if (!out.ok())
      return out.error().withContext("decode at position " + std::to_string(position));
    row = m.logitsRow(**out, 0, 1);
    if (!row.ok())
      return row.error();
    ++position;
  }
  st.generatedTokens = (int)generated.size();
  st.decodeSeconds = secondsSince(decodeStart);
  return generated;
}

} // namespace rt
} // namespace kiln
