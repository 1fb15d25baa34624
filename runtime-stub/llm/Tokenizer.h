// Tokenizers for LLM programs (docs/llm.md §4): sentencepiece (`tokenizer.model`,
// via libsentencepiece) and byte-level BPE (`tokenizer.json`, HF tokenizers format,
// pre-tokenizer regex under PCRE2). Errors as values, never exceptions.
#ifndef KILN_RUNTIME_LLM_TOKENIZER_H
#define KILN_RUNTIME_LLM_TOKENIZER_H

#include "runtime-stub/core/Error.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln {
namespace rt {

class Tokenizer {
public:
  virtual ~Tokenizer() = default;

  /// "sentencepiece" or "bpe".
  virtual const char *kind() const = 0;
  /// Text (UTF-8) to ids. Never adds BOS/EOS (the runner decides).
  virtual Result<std::vector<int32_t>> encode(const std::string &text) const = 0;
  /// Ids to text. The result may end in an incomplete UTF-8 sequence when the ids
  /// cut one (byte tokens); an id outside the vocabulary is an error naming it.
  virtual Result<std::string> decode(const std::vector<int32_t> &ids) const = 0;
  /// Number of ids (including added/special tokens).
  virtual int32_t vocabSize() const = 0;
  /// The id of a token string (e.g. "<s>", "<|begin_of_text|>"), or -1.
  virtual int32_t tokenId(const std::string &piece) const = 0;

  /// Builds a tokenizer of `kind` ("sentencepiece" | "bpe") from the bytes of its
  /// file (tokenizer.model | tokenizer.json). The bytes are copied or parsed; the
  /// caller may free them afterwards. A malformed file is an InvalidArgument error.
  static Result<std::unique_ptr<Tokenizer>> create(const std::string &kind, const void *data,
                                                   size_t size);
  /// Reads `path`; kind from the file name (*.model -> sentencepiece, *.json -> bpe)
  /// unless `kind` is given.
  static Result<std::unique_ptr<Tokenizer>> fromFile(const std::string &path,
                                                     const std::string &kind = "");
};

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_LLM_TOKENIZER_H
