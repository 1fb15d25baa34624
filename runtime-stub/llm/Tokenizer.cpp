// Tokenizer::create / fromFile: dispatch on the kind (docs/llm.md §4).
#include "runtime-stub/llm/Tokenizer.h"
#include "runtime-stub/llm/TokenizerImpl.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kiln {
namespace rt {

Result<std::unique_ptr<Tokenizer>> Tokenizer::create(const std::string &kind, const void *data,
                                                     size_t size) {
  if (!data && size)
    return invalidArgument("tokenizer data is null");
  if (kind == "sentencepiece")
    return createSentencePieceTokenizer(data, size);
  if (kind == "bpe")
    return createBpeTokenizer(data, size);
  return invalidArgument("unknown tokenizer kind '" + kind +
                         "' (expected 'sentencepiece' or 'bpe')");
}

static bool endsWith(const std::string &s, const char *suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

Result<std::unique_ptr<Tokenizer>> Tokenizer::fromFile(const std::string &path,
                                                       const std::string &kind) {
  std::string k = kind;
  if (k.empty()) {
    if (endsWith(path, ".model"))
      k = "sentencepiece";
    else if (endsWith(path, ".json"))
      k = "bpe";
    else
      return invalidArgument(path + ": cannot tell the tokenizer kind from the file name "
                                    "(*.model is sentencepiece, *.json is bpe); give the kind");
  }
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return ioError(path + ": cannot open: " + std::strerror(errno));
  std::string bytes;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    bytes.append(buf, n);
  bool readError = std::ferror(f) != 0;
  std::fclose(f);
  if (readError)
    return ioError(path + ": read error");
  auto tok = create(k, bytes.data(), bytes.size());
  if (!tok.ok())
    return tok.error().withContext(path);
  return tok;
}

} // namespace rt
} // namespace kiln
