// The LLM runner (docs/llm.md §3): loads a program exported by `kiln export-hf`,
// prefills a prompt in fixed-size chunks, decodes token by token with the KV cache
// kept in the program's state, samples, and streams text.
#ifndef KILN_RUNTIME_LLM_RUNNER_H
#define KILN_RUNTIME_LLM_RUNNER_H

#include "runtime-stub/core/Error.h"
#include "runtime-stub/core/Program.h"
#include "runtime-stub/llm/Tokenizer.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace kiln {
namespace rt {

struct GenerationConfig {
  int maxNewTokens = 128;   // stops earlier at EOS or when the cache is full
  float temperature = 0.0f; // 0 = greedy
  float topP = 1.0f;        // nucleus sampling when temperature > 0
  uint64_t seed = 0;
  bool ignoreEos = false;   // benchmarks: keep decoding past EOS
};

struct GenerationStats {
  int promptTokens = 0;
  int generatedTokens = 0;   // decode steps' tokens, including the one from prefill
  double prefillSeconds = 0; // all prefill chunks
  double decodeSeconds = 0;  // all decode steps
  bool stoppedAtEos = false;
  bool stoppedAtCacheEnd = false;
};

/// Called for each generated token with its id and the new text it completes
/// (may be empty while a UTF-8 sequence is incomplete). Return false to stop.
using TokenCallback = std::function<bool(int32_t id, const std::string &text)>;

class LlmRunner {
public:
  static Result<std::unique_ptr<LlmRunner>> load(const std::string &path,
                                                 const LoadOptions &options = {});
  /// Wraps an already loaded program (must have prefill/decode and the kiln.llm.* metadata).
  static Result<std::unique_ptr<LlmRunner>> fromProgram(std::unique_ptr<Program> program);

  /// Null when the program carries no tokenizer (kiln.tokenizer.kind = none).
  const Tokenizer *tokenizer() const;
  /// Encodes a text prompt, with BOS first when kiln.llm.add_bos is 1.
  Result<std::vector<int32_t>> encodePrompt(const std::string &text) const;

  /// Resets the KV cache, prefills `prompt`, then samples up to maxNewTokens.
  /// Returns the generated ids (not the prompt).
  Result<std::vector<int32_t>> generate(const std::vector<int32_t> &prompt,
                                        const GenerationConfig &config,
                                        const TokenCallback &onToken = nullptr,
                                        GenerationStats *stats = nullptr);

  /// Resets the KV cache and returns the logits of every prompt position,
  /// f32 [n, V] (for verification against eager PyTorch).
  Result<Tensor> promptLogits(const std::vector<int32_t> &prompt);

  int maxSeqLen() const;
  int prefillChunk() const;
  int vocabSize() const;
  const std::vector<int32_t> &eosIds() const;
  Program &program();

  ~LlmRunner();

private:
  struct Impl;
  explicit LlmRunner(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_LLM_RUNNER_H
