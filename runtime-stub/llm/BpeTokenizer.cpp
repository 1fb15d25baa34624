// Byte-level BPE from a Hugging Face `tokenizer.json` (docs/llm.md §4).
//
// encode(text):
//   1. added tokens (`added_tokens`) are cut out of the text first (leftmost,
//      longest match) and map straight to their ids;
//   2. every other stretch is pre-tokenized by the regex splitters, in order: a
//      `Split{pattern: Regex, behavior: Isolated}` and/or the GPT-2 regex of
//      `ByteLevel{use_regex: true}` (matches and the gaps between them are pieces);
//   3. each piece's bytes map to the byte-level alphabet (GPT-2 `bytes_to_unicode`);
//   4. BPE: adjacent symbols merge by lowest merge rank (leftmost first on ties)
//      until no ranked pair is left; `ignore_merges` takes a whole piece that is in
//      the vocabulary as is. Results are cached per piece.
// decode(ids): each token's byte-level characters map back to bytes (a token with a
// character outside that alphabet, e.g. an added token with a space, is its raw text).
//
// The JSON is parsed without exceptions (nlohmann::json with allow_exceptions=false)
// and every field is type-checked before use, so a malformed file is an error.
#include "runtime-stub/llm/TokenizerImpl.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <unordered_set>

namespace kiln {
namespace rt {
namespace {

using json = nlohmann::json;

// The pre-tokenizer regex of GPT-2 (ByteLevel with use_regex = true).
const char *const kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// ---------------------------------------------------------------- UTF-8 helpers

/// Length of the valid UTF-8 sequence at s[i] (strict: no overlongs, surrogates
/// or code points above U+10FFFF), or 0 when it is invalid.
size_t validUtf8At(const std::string &s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b = at(i);
  size_t n = s.size() - i;
  if (b < 0x80)
    return 1;
  if (b >= 0xC2 && b <= 0xDF)
    return n >= 2 && (at(i + 1) & 0xC0) == 0x80 ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    if (n < 3 || (at(i + 1) & 0xC0) != 0x80 || (at(i + 2) & 0xC0) != 0x80)
      return 0;
    if (b == 0xE0 && at(i + 1) < 0xA0)
      return 0; // overlong
    if (b == 0xED && at(i + 1) >= 0xA0)
      return 0; // surrogate
    return 3;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    if (n < 4 || (at(i + 1) & 0xC0) != 0x80 || (at(i + 2) & 0xC0) != 0x80 ||
        (at(i + 3) & 0xC0) != 0x80)
      return 0;
    if (b == 0xF0 && at(i + 1) < 0x90)
      return 0; // overlong
    if (b == 0xF4 && at(i + 1) >= 0x90)
      return 0; // above U+10FFFF
    return 4;
  }
  return 0;
}

/// Decodes the code point of a valid sequence of length `len` at s[i].
uint32_t codePointAt(const std::string &s, size_t i, size_t len) {
  auto at = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[k])); };
  switch (len) {
  case 1:
    return at(i);
  case 2:
    return ((at(i) & 0x1F) << 6) | (at(i + 1) & 0x3F);
  case 3:
    return ((at(i) & 0x0F) << 12) | ((at(i + 1) & 0x3F) << 6) | (at(i + 2) & 0x3F);
  default:
    return ((at(i) & 0x07) << 18) | ((at(i + 1) & 0x3F) << 12) | ((at(i + 2) & 0x3F) << 6) |
           (at(i + 3) & 0x3F);
  }
}

void appendUtf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

/// Position of the first invalid UTF-8 byte, or npos.
size_t firstInvalidUtf8(const std::string &s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = validUtf8At(s, i);
    if (!len)
      return i;
    i += len;
  }
  return std::string::npos;
}

// ------------------------------------------------------------ byte-level alphabet

/// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the other 68
/// bytes map to U+0100.. in byte order.
struct ByteAlphabet {
  std::string charOf[256];                    // byte -> UTF-8 of its character
  std::unordered_map<uint32_t, uint8_t> byteOf; // code point -> byte
  ByteAlphabet() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      uint32_t cp = printable ? static_cast<uint32_t>(b) : next++;
      appendUtf8(charOf[b], cp);
      byteOf[cp] = static_cast<uint8_t>(b);
    }
  }
};

const ByteAlphabet &byteAlphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

// ------------------------------------------------------------------ JSON access

const json *member(const json &obj, const char *key) {
  if (!obj.is_object())
    return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

/// A member that is absent or null.
bool isAbsent(const json &obj, const char *key) {
  const json *m = member(obj, key);
  return !m || m->is_null();
}

std::string typeOf(const json &obj) {
  const json *t = member(obj, "type");
  if (t && t->is_string())
    return t->get_ref<const std::string &>();
  return "(no type)";
}

/// An integer id as int64 (huge unsigned values saturate, so range checks name them).
int64_t idValue(const json &v) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    return u > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(u);
  }
  return v.get<int64_t>();
}

/// Reads an optional boolean member; a non-boolean value is an error.
Error optionalBool(const json &obj, const char *key, const char *where, bool dflt, bool *out) {
  const json *m = member(obj, key);
  if (!m || m->is_null()) {
    *out = dflt;
    return Error::success();
  }
  if (!m->is_boolean())
    return invalidArgument(std::string(where) + "." + key + " must be a boolean");
  *out = m->get<bool>();
  return Error::success();
}

// ----------------------------------------------------------------- regex splitter

/// A compiled pre-tokenizer pattern (PCRE2, UTF + Unicode properties, JIT when
/// available). Splitting keeps matches and the gaps between them ("Isolated").
class RegexSplitter {
public:
  RegexSplitter() = default;
  RegexSplitter(const RegexSplitter &) = delete;
  RegexSplitter &operator=(const RegexSplitter &) = delete;
  ~RegexSplitter() {
    if (code_)
      pcre2_code_free(code_);
  }

  Error compile(const std::string &pattern, bool literal) {
    int errorCode = 0;
    PCRE2_SIZE errorOffset = 0;
    uint32_t options = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                          &errorCode, &errorOffset, nullptr);
    if (!code_) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(errorCode, message, sizeof(message));
      return invalidArgument("pre-tokenizer regex does not compile at offset " +
                             std::to_string(errorOffset) + ": " +
                             reinterpret_cast<const char *>(message));
    }
    // JIT is an optimisation only: without it (unsupported platform) matching is the same.
    (void)pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
    return Error::success();
  }

  /// Splits text[begin, end) (valid UTF-8) into pieces appended to `out` as
  /// (offset, length) pairs.
  Error split(const std::string &text, size_t begin, size_t end,
              std::vector<std::pair<size_t, size_t>> &out) const {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(code_, nullptr);
    if (!md)
      return outOfMemory("cannot allocate regex match data");
    PCRE2_SPTR subject = reinterpret_cast<PCRE2_SPTR>(text.data() + begin);
    size_t length = end - begin;
    size_t pos = 0, gapStart = 0;
    Error result;
    while (pos < length) {
      int rc = pcre2_match(code_, subject, length, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH)
        break;
      if (rc < 0) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(rc, message, sizeof(message));
        result = invalidArgument(std::string("pre-tokenizer regex failed: ") +
                                 reinterpret_cast<const char *>(message));
        break;
      }
      PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
      size_t ms = ov[0], me = ov[1];
      if (me <= ms) {
        // An empty match splits nothing; step over one character.
        size_t step = validUtf8At(text, begin + pos);
        pos += step ? step : 1;
        continue;
      }
      if (ms > gapStart)
        out.emplace_back(begin + gapStart, ms - gapStart);
      out.emplace_back(begin + ms, me - ms);
      pos = gapStart = me;
    }
    if (result.ok() && gapStart < length)
      out.emplace_back(begin + gapStart, length - gapStart);
    pcre2_match_data_free(md);
    return result;
  }

private:
  pcre2_code *code_ = nullptr;
};

// -------------------------------------------------------------------- tokenizer

struct AddedToken {
  std::string content;
  int32_t id;
};

class BpeTokenizer final : public Tokenizer {
public:
  Error load(const void *data, size_t size);

  const char *kind() const override { return "bpe"; }
  Result<std::vector<int32_t>> encode(const std::string &text) const override;
  Result<std::string> decode(const std::vector<int32_t> &ids) const override;
  int32_t vocabSize() const override { return static_cast<int32_t>(idToken_.size()); }
  int32_t tokenId(const std::string &piece) const override {
    auto it = tokenToId_.find(piece);
    return it == tokenToId_.end() ? -1 : it->second;
  }

private:
  Error addToken(const std::string &token, int64_t id, const char *where);
  Error loadModel(const json &model);
  Error loadAddedTokens(const json &root);
  Error loadPreTokenizer(const json &root);
  Error addPreTokenizer(const json &pre, const char *where);
  Error encodePiece(const std::string &text, size_t offset, size_t length,
                    std::vector<int32_t> &ids) const;
  void bpe(const std::string &symbols, std::vector<int32_t> &ids) const;

  std::unordered_map<std::string, int32_t> tokenToId_;
  std::vector<std::string> idToken_; // "" for ids nothing uses
  std::vector<uint8_t> idUsed_;
  std::vector<std::string> idBytes_; // decoded bytes of each id
  int32_t byteToken_[256];           // id of each byte's single-character token
  // (left id, right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  bool ignoreMerges_ = false;
  std::vector<AddedToken> added_;                 // longest first
  std::vector<std::vector<size_t>> addedByFirst_; // first byte -> indices into added_
  std::vector<std::unique_ptr<RegexSplitter>> splitters_;

  mutable std::mutex cacheMutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

uint64_t pairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

Error BpeTokenizer::addToken(const std::string &token, int64_t id, const char *where) {
  if (id < 0 || id > INT32_MAX - 1)
    return invalidArgument(std::string(where) + ": token id " + std::to_string(id) +
                           " is out of range");
  auto it = tokenToId_.find(token);
  if (it != tokenToId_.end()) {
    if (it->second != id)
      return invalidArgument(std::string(where) + ": token '" + token + "' has two ids, " +
                             std::to_string(it->second) + " and " + std::to_string(id));
    return Error::success();
  }
  // Ids are dense in real vocabularies; refuse wildly sparse ones rather than
  // allocating for a garbled id.
  size_t need = static_cast<size_t>(id) + 1;
  if (need > idToken_.size()) {
    if (need > 2 * (tokenToId_.size() + 1) + 4096)
      return invalidArgument(std::string(where) + ": token id " + std::to_string(id) +
                             " is far beyond the number of tokens (" +
                             std::to_string(tokenToId_.size() + 1) + ")");
    idToken_.resize(need);
    idUsed_.resize(need, 0);
  }
  if (idUsed_[static_cast<size_t>(id)])
    return invalidArgument(std::string(where) + ": id " + std::to_string(id) +
                           " is given to both '" + idToken_[static_cast<size_t>(id)] + "' and '" +
                           token + "'");
  idUsed_[static_cast<size_t>(id)] = 1;
  idToken_[static_cast<size_t>(id)] = token;
  tokenToId_.emplace(token, static_cast<int32_t>(id));
  return Error::success();
}

Error BpeTokenizer::loadModel(const json &model) {
  if (!model.is_object())
    return invalidArgument("'model' must be an object");
  std::string type = typeOf(model);
  if (type != "BPE")
    return unsupported("model type '" + type + "' is not supported (only BPE)");
  const json *dropout = member(model, "dropout");
  if (dropout && !dropout->is_null() && !(dropout->is_number() && dropout->get<double>() == 0.0))
    return unsupported("model.dropout is not supported");
  for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json *m = member(model, key);
    if (m && !m->is_null() && !(m->is_string() && m->get_ref<const std::string &>().empty()))
      return unsupported(std::string("model.") + key + " is not supported");
  }
  bool byteFallback = false;
  KILN_TRY(optionalBool(model, "byte_fallback", "model", false, &byteFallback));
  if (byteFallback)
    return unsupported("model.byte_fallback = true is not supported (byte-level BPE needs none)");
  KILN_TRY(optionalBool(model, "ignore_merges", "model", false, &ignoreMerges_));

  const json *vocab = member(model, "vocab");
  if (!vocab || !vocab->is_object())
    return invalidArgument("model.vocab must be an object {token: id}");
  if (vocab->empty())
    return invalidArgument("model.vocab is empty");
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    if (!it.value().is_number_integer())
      return invalidArgument("model.vocab: the id of '" + it.key() + "' is not an integer");
    KILN_TRY(addToken(it.key(), idValue(it.value()), "model.vocab"));
  }
  const ByteAlphabet &alphabet = byteAlphabet();
  for (int b = 0; b < 256; ++b) {
    auto it = tokenToId_.find(alphabet.charOf[b]);
    if (it == tokenToId_.end()) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", b);
      return invalidArgument(std::string("model.vocab lacks the byte-level token of byte ") + hex +
                             " ('" + alphabet.charOf[b] + "'): not a byte-level BPE vocabulary");
    }
    byteToken_[b] = it->second;
  }

  const json *merges = member(model, "merges");
  if (!merges || !merges->is_array())
    return invalidArgument("model.merges must be an array");
  int32_t rank = 0;
  for (const json &m : *merges) {
    std::string left, right;
    if (m.is_string()) {
      const std::string &s = m.get_ref<const std::string &>();
      size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        return invalidArgument("model.merges[" + std::to_string(rank) + "] '" + s +
                               "' is not two tokens separated by one space");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      return invalidArgument("model.merges[" + std::to_string(rank) +
                             "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
    auto l = tokenToId_.find(left), r = tokenToId_.find(right),
         merged = tokenToId_.find(left + right);
    if (l == tokenToId_.end() || r == tokenToId_.end() || merged == tokenToId_.end())
      return invalidArgument("model.merges[" + std::to_string(rank) + "] ('" + left + "', '" +
                             right + "'): " +
                             (l == tokenToId_.end()   ? "'" + left + "'"
                              : r == tokenToId_.end() ? "'" + right + "'"
                                                      : "'" + left + right + "'") +
                             " is not in model.vocab");
    // The first (lowest) rank of a repeated pair wins.
    merges_.emplace(pairKey(l->second, r->second), std::make_pair(rank, merged->second));
    ++rank;
  }
  return Error::success();
}

Error BpeTokenizer::loadAddedTokens(const json &root) {
  const json *list = member(root, "added_tokens");
  if (!list || list->is_null())
    return Error::success();
  if (!list->is_array())
    return invalidArgument("added_tokens must be an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const json &t = (*list)[i];
    std::string where = "added_tokens[" + std::to_string(i) + "]";
    const json *content = member(t, "content");
    const json *id = member(t, "id");
    if (!content || !content->is_string() || content->get_ref<const std::string &>().empty())
      return invalidArgument(where + ".content must be a non-empty string");
    if (!id || !id->is_number_integer())
      return invalidArgument(where + ".id must be an integer");
    for (const char *flag : {"single_word", "lstrip", "rstrip"}) {
      bool value = false;
      KILN_TRY(optionalBool(t, flag, where.c_str(), false, &value));
      if (value)
        return unsupported(where + " ('" + content->get_ref<const std::string &>() + "'): " +
                           flag + " = true is not supported");
    }
    const std::string &text = content->get_ref<const std::string &>();
    if (firstInvalidUtf8(text) != std::string::npos)
      return invalidArgument(where + ".content is not valid UTF-8");
    KILN_TRY(addToken(text, idValue(*id), where.c_str()));
    added_.push_back({text, static_cast<int32_t>(idValue(*id))});
  }
  std::stable_sort(added_.begin(), added_.end(), [](const AddedToken &a, const AddedToken &b) {
    return a.content.size() > b.content.size();
  });
  addedByFirst_.assign(256, {});
  for (size_t i = 0; i < added_.size(); ++i)
    addedByFirst_[static_cast<unsigned char>(added_[i].content[0])].push_back(i);
  return Error::success();
}

Error BpeTokenizer::addPreTokenizer(const json &pre, const char *where) {
  std::string type = typeOf(pre);
  if (type == "Split") {
    const json *pattern = member(pre, "pattern");
    const json *regex = pattern ? member(*pattern, "Regex") : nullptr;
    const json *literal = pattern ? member(*pattern, "String") : nullptr;
    const json *p = regex ? regex : literal;
    if (!p || !p->is_string())
      return invalidArgument(std::string(where) +
                             ": Split.pattern must be {\"Regex\": ...} or {\"String\": ...}");
    const json *behavior = member(pre, "behavior");
    if (!behavior || !behavior->is_string() ||
        behavior->get_ref<const std::string &>() != "Isolated")
      return unsupported(std::string(where) + ": Split.behavior '" +
                         (behavior && behavior->is_string()
                              ? behavior->get_ref<const std::string &>()
                              : std::string("?")) +
                         "' is not supported (only Isolated)");
    bool invert = false;
    KILN_TRY(optionalBool(pre, "invert", where, false, &invert));
    if (invert)
      return unsupported(std::string(where) + ": Split.invert = true is not supported");
    auto splitter = std::make_unique<RegexSplitter>();
    KILN_TRY(splitter->compile(p->get_ref<const std::string &>(), !regex)
                 .withContext(where));
    splitters_.push_back(std::move(splitter));
    return Error::success();
  }
  if (type == "ByteLevel") {
    bool addPrefixSpace = true, useRegex = true;
    KILN_TRY(optionalBool(pre, "add_prefix_space", where, true, &addPrefixSpace));
    KILN_TRY(optionalBool(pre, "use_regex", where, true, &useRegex));
    if (addPrefixSpace)
      return unsupported(std::string(where) +
                         ": ByteLevel.add_prefix_space = true is not supported");
    if (useRegex) {
      auto splitter = std::make_unique<RegexSplitter>();
      KILN_TRY(splitter->compile(kGpt2Pattern, false));
      splitters_.push_back(std::move(splitter));
    }
    return Error::success();
  }
  return unsupported(std::string(where) + ": pre-tokenizer '" + type +
                     "' is not supported (only Split(Regex, Isolated) and ByteLevel)");
}

Error BpeTokenizer::loadPreTokenizer(const json &root) {
  const json *pre = member(root, "pre_tokenizer");
  if (!pre || pre->is_null())
    return unsupported("pre_tokenizer is null: a byte-level BPE needs a ByteLevel pre-tokenizer");
  if (!pre->is_object())
    return invalidArgument("pre_tokenizer must be an object");
  bool sawByteLevel = false;
  if (typeOf(*pre) == "Sequence") {
    const json *list = member(*pre, "pretokenizers");
    if (!list || !list->is_array())
      return invalidArgument("pre_tokenizer.pretokenizers must be an array");
    for (size_t i = 0; i < list->size(); ++i) {
      std::string where = "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]";
      sawByteLevel |= typeOf((*list)[i]) == "ByteLevel";
      KILN_TRY(addPreTokenizer((*list)[i], where.c_str()));
    }
  } else {
    sawByteLevel = typeOf(*pre) == "ByteLevel";
    KILN_TRY(addPreTokenizer(*pre, "pre_tokenizer"));
  }
  if (!sawByteLevel)
    return unsupported("pre_tokenizer has no ByteLevel step: only byte-level BPE is supported");
  return Error::success();
}

Error BpeTokenizer::load(const void *data, size_t size) {
  const char *begin = static_cast<const char *>(data);
  json root = json::parse(begin, begin + size, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded())
    return invalidArgument("not valid JSON");
  if (!root.is_object())
    return invalidArgument("the top level must be a JSON object");
  if (!isAbsent(root, "normalizer"))
    return unsupported("normalizer '" + typeOf(*member(root, "normalizer")) +
                       "' is not supported (only null)");
  const json *model = member(root, "model");
  if (!model)
    return invalidArgument("no 'model' member");
  KILN_TRY(loadModel(*model));
  KILN_TRY(loadAddedTokens(root));
  KILN_TRY(loadPreTokenizer(root));
  if (!isAbsent(root, "decoder") && typeOf(*member(root, "decoder")) != "ByteLevel")
    return unsupported("decoder '" + typeOf(*member(root, "decoder")) +
                       "' is not supported (only ByteLevel)");
  // post_processor (BOS/EOS templates) is ignored: the runner adds BOS itself.

  const ByteAlphabet &alphabet = byteAlphabet();
  idBytes_.assign(idToken_.size(), std::string());
  for (size_t id = 0; id < idToken_.size(); ++id) {
    if (!idUsed_[id])
      continue;
    const std::string &token = idToken_[id];
    std::string bytes;
    bool mapped = firstInvalidUtf8(token) == std::string::npos;
    for (size_t i = 0; mapped && i < token.size();) {
      size_t len = validUtf8At(token, i);
      auto it = alphabet.byteOf.find(codePointAt(token, i, len));
      if (it == alphabet.byteOf.end())
        mapped = false;
      else
        bytes.push_back(static_cast<char>(it->second));
      i += len;
    }
    idBytes_[id] = mapped ? bytes : token;
  }
  return Error::success();
}

void BpeTokenizer::bpe(const std::string &piece, std::vector<int32_t> &ids) const {
  struct Symbol {
    int32_t id;
    int prev, next;
  };
  std::vector<Symbol> symbols(piece.size());
  for (size_t i = 0; i < piece.size(); ++i)
    symbols[i] = {byteToken_[static_cast<unsigned char>(piece[i])], static_cast<int>(i) - 1,
                  i + 1 < piece.size() ? static_cast<int>(i) + 1 : -1};
  struct Candidate {
    int32_t rank;
    int left;
    int32_t leftId, rightId;
    bool operator>(const Candidate &o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int left) {
    if (left < 0 || symbols[static_cast<size_t>(left)].next < 0)
      return;
    const Symbol &l = symbols[static_cast<size_t>(left)];
    const Symbol &r = symbols[static_cast<size_t>(l.next)];
    auto it = merges_.find(pairKey(l.id, r.id));
    if (it != merges_.end())
      queue.push({it->second.first, left, l.id, r.id});
  };
  for (size_t i = 0; i + 1 < piece.size(); ++i)
    consider(static_cast<int>(i));
  while (!queue.empty()) {
    Candidate c = queue.top();
    queue.pop();
    Symbol &l = symbols[static_cast<size_t>(c.left)];
    if (l.id != c.leftId || l.next < 0)
      continue; // stale: the left symbol changed or was merged away
    Symbol &r = symbols[static_cast<size_t>(l.next)];
    if (r.id != c.rightId)
      continue;
    l.id = merges_.find(pairKey(c.leftId, c.rightId))->second.second;
    l.next = r.next;
    if (r.next >= 0)
      symbols[static_cast<size_t>(r.next)].prev = c.left;
    r.id = -1; // dead
    consider(l.prev);
    consider(c.left);
  }
  for (int i = piece.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<size_t>(i)].next)
    ids.push_back(symbols[static_cast<size_t>(i)].id);
}

Error BpeTokenizer::encodePiece(const std::string &text, size_t offset, size_t length,
                                std::vector<int32_t> &ids) const {
  std::string piece = text.substr(offset, length);
  {
    std::lock_guard<std::mutex> lock(cacheMutex_);
    auto it = cache_.find(piece);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return Error::success();
    }
  }
  std::vector<int32_t> result;
  bool whole = false;
  if (ignoreMerges_) {
    std::string symbols;
    for (unsigned char b : piece)
      symbols += byteAlphabet().charOf[b];
    auto it = tokenToId_.find(symbols);
    if (it != tokenToId_.end()) {
      result.push_back(it->second);
      whole = true;
    }
  }
  if (!whole)
    bpe(piece, result);
  ids.insert(ids.end(), result.begin(), result.end());
  std::lock_guard<std::mutex> lock(cacheMutex_);
  if (cache_.size() >= 65536)
    cache_.clear();
  cache_.emplace(std::move(piece), std::move(result));
  return Error::success();
}

Result<std::vector<int32_t>> BpeTokenizer::encode(const std::string &text) const {
  size_t bad = firstInvalidUtf8(text);
  if (bad != std::string::npos)
    return invalidArgument("text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  std::vector<int32_t> ids;
  std::vector<std::pair<size_t, size_t>> pieces, next;
  auto encodeStretch = [&](size_t begin, size_t end) -> Error {
    if (begin >= end)
      return Error::success();
    pieces.assign(1, {begin, end - begin});
    for (const auto &splitter : splitters_) {
      next.clear();
      for (const auto &p : pieces)
        KILN_TRY(splitter->split(text, p.first, p.first + p.second, next));
      pieces.swap(next);
    }
    for (const auto &p : pieces)
      KILN_TRY(encodePiece(text, p.first, p.second, ids));
    return Error::success();
  };
  size_t stretch = 0;
  for (size_t i = 0; i < text.size();) {
    const AddedToken *match = nullptr;
    if (!added_.empty())
      for (size_t k : addedByFirst_[static_cast<unsigned char>(text[i])])
        if (text.compare(i, added_[k].content.size(), added_[k].content) == 0) {
          match = &added_[k]; // longest first
          break;
        }
    if (!match) {
      ++i;
      continue;
    }
    KILN_TRY(encodeStretch(stretch, i));
    ids.push_back(match->id);
    i += match->content.size();
    stretch = i;
  }
  KILN_TRY(encodeStretch(stretch, text.size()));
  return ids;
}

Result<std::string> BpeTokenizer::decode(const std::vector<int32_t> &ids) const {
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    int32_t id = ids[i];
    if (id < 0 || static_cast<size_t>(id) >= idToken_.size() || !idUsed_[static_cast<size_t>(id)])
      return invalidArgument("token id " + std::to_string(id) + " (at position " +
                             std::to_string(i) + ") is not in the vocabulary (size " +
                             std::to_string(idToken_.size()) + ")");
    text += idBytes_[static_cast<size_t>(id)];
  }
  return text;
}

} // namespace

Result<std::unique_ptr<Tokenizer>> createBpeTokenizer(const void *data, size_t size) {
  auto tok = std::make_unique<BpeTokenizer>();
  Error e = tok->load(data, size);
  if (e.failed())
    return e.withContext("tokenizer.json");
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

} // namespace rt
} // namespace kiln
