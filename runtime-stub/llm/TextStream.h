// Incremental detokenization for streaming generated text (docs/llm.md §3).
#ifndef KILN_RUNTIME_LLM_TEXTSTREAM_H
#define KILN_RUNTIME_LLM_TEXTSTREAM_H

#include "runtime-stub/core/Error.h"
#include "runtime-stub/llm/Tokenizer.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {
namespace rt {

/// The byte length of the incomplete UTF-8 sequence at the end of `s` (0 if none).
size_t incompleteUtf8Tail(const std::string &s);

/// Turns generated ids into text as it becomes complete. Each step decodes a short
/// window that starts a few ids before the new ones (prompt ids included) and
/// emits what the new ids added: decode(window) minus decode(window without
/// them). So a sentencepiece word-start piece ("▁word") keeps its space, which
/// decoding it alone would drop, and the pieces join to the text of the whole
/// sequence. Held back until a later id completes them: an incomplete UTF-8
/// sequence at the end, and a trailing U+FFFD (what some decoders print for a
/// cut character).
class TextStream {
public:
  /// `tokenizer` null: every piece is empty. `capacity`: how many ids will be pushed
  /// (reserved up front).
  TextStream(const Tokenizer *tokenizer, const std::vector<int32_t> &prompt, size_t capacity);

  /// Adds an id and sets `out` to the new complete text (everything left when `last`).
  Error push(int32_t id, bool last, std::string *out);
  /// Sets `out` to whatever is still held back.
  Error flush(std::string *out);

private:
  Error take(bool last, std::string *out);

  const Tokenizer *tok_;
  std::vector<int32_t> ids_;
  std::vector<int32_t> prefix_, window_; // reused buffers
  size_t prefixOffset_ = 0;   // the window starts here
  size_t readOffset_ = 0;     // ids before this one are fully emitted
  size_t emittedPartial_ = 0; // bytes past decode(prefix) already emitted
};

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_LLM_TEXTSTREAM_H
