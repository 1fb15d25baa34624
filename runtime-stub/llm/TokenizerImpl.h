// Private to the tokenizer implementation: the two concrete factories behind
// Tokenizer::create (docs/llm.md §4).
#ifndef KILN_RUNTIME_LLM_TOKENIZERIMPL_H
#define KILN_RUNTIME_LLM_TOKENIZERIMPL_H

#include "runtime-stub/llm/Tokenizer.h"

namespace kiln {
namespace rt {

/// From the bytes of a sentencepiece `tokenizer.model` (a serialized ModelProto).
Result<std::unique_ptr<Tokenizer>> createSentencePieceTokenizer(const void *data, size_t size);
/// From the bytes of a Hugging Face `tokenizer.json` holding a byte-level BPE.
Result<std::unique_ptr<Tokenizer>> createBpeTokenizer(const void *data, size_t size);

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_LLM_TOKENIZERIMPL_H
