// Tokenizer tests (runtime-stub/llm, docs/llm.md §4). Byte-level BPE: hand-made
// tokenizer.json files whose ids are worked out by hand in the comments; every
// unsupported feature is an error naming it; truncated and garbled files are
// errors, never crashes. Sentencepiece: a model trained here from the test corpus;
// byte pieces that cut a UTF-8 sequence decode to raw bytes; robustness as above.
#include "runtime-stub/llm/Tokenizer.h"

#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>

#include <cstring>
#include <fstream>
#include <random>
#include <unordered_map>
#include <sstream>

using kiln::rt::ErrorCode;
using kiln::rt::Tokenizer;

namespace {

const char *kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
    "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";

/// GPT-2's bytes_to_unicode, written out again for the test (UTF-8 of each byte's char).
std::string byteChar(int b) {
  bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  unsigned cp = static_cast<unsigned>(b);
  if (!printable) {
    unsigned n = 0;
    for (int k = 0; k < b; ++k)
      if (!((k >= 33 && k <= 126) || (k >= 161 && k <= 172) || (k >= 174 && k <= 255)))
        ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

std::string jsonString(const std::string &s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "\"";
}

struct BpeOptions {
  bool pairs = false;        // merges as ["a","b"] instead of "a b"
  bool llama3Split = true;   // Sequence[Split(llama3), ByteLevel(use_regex=false)]
  bool ignoreMerges = false;
  std::string normalizer = "null";
  std::string decoder = "{\"type\": \"ByteLevel\"}";
  std::string addedExtra;    // extra fields for the first added token
  std::string modelType = "BPE";
  std::string extraMerge;    // appended to merges verbatim
  bool dropByte = false;     // leave byte 'z' out of the vocabulary
};

// Vocabulary: the 256 byte tokens (id = byte value), then
//   256 "he", 257 "ll", 258 "hell", 259 "hello", 260 "Ġw", 261 "xyz" (no merge makes it);
// merges in rank order: h e, l l, he ll, hell o, Ġ w. Added: 262 "<a>", 263 "<a><b>".
std::string bpeJson(const BpeOptions &o = {}) {
  std::ostringstream j;
  j << "{\"version\": \"1.0\", \"normalizer\": " << o.normalizer << ",\n";
  if (o.llama3Split)
    j << "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
         "\"pattern\": {\"Regex\": \""
      << kLlama3Pattern
      << "\"}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
         "\"add_prefix_space\": false, \"trim_offsets\": true, \"use_regex\": false}]},\n";
  else
    j << "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
         "\"use_regex\": true},\n";
  j << "\"decoder\": " << o.decoder << ",\n";
  j << "\"added_tokens\": [{\"id\": 262, \"content\": \"<a>\", \"special\": true" << o.addedExtra
    << "}, {\"id\": 263, \"content\": \"<a><b>\", \"special\": true}],\n";
  j << "\"model\": {\"type\": \"" << o.modelType << "\", \"dropout\": null, \"ignore_merges\": "
    << (o.ignoreMerges ? "true" : "false") << ", \"vocab\": {";
  for (int b = 0; b < 256; ++b) {
    if (o.dropByte && b == 'z')
      continue;
    j << jsonString(byteChar(b)) << ": " << b << ", ";
  }
  std::string G = byteChar(' ');
  j << "\"he\": 256, \"ll\": 257, \"hell\": 258, \"hello\": 259, " << jsonString(G + "w")
    << ": 260, \"xyz\": 261},\n\"merges\": [";
  std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {G, "w"}};
  for (size_t i = 0; i < merges.size(); ++i) {
    if (i)
      j << ", ";
    if (o.pairs)
      j << "[" << jsonString(merges[i].first) << ", " << jsonString(merges[i].second) << "]";
    else
      j << jsonString(merges[i].first + " " + merges[i].second);
  }
  j << o.extraMerge << "]}}\n";
  return j.str();
}

std::unique_ptr<Tokenizer> makeBpe(const std::string &json) {
  auto tok = Tokenizer::create("bpe", json.data(), json.size());
  EXPECT_TRUE(tok.ok()) << tok.error().message();
  return tok.ok() ? tok.take() : nullptr;
}

std::vector<int32_t> encode(const Tokenizer &t, const std::string &text) {
  auto ids = t.encode(text);
  EXPECT_TRUE(ids.ok()) << ids.error().message();
  return ids.ok() ? *ids : std::vector<int32_t>{};
}

std::string decode(const Tokenizer &t, const std::vector<int32_t> &ids) {
  auto text = t.decode(ids);
  EXPECT_TRUE(text.ok()) << text.error().message();
  return text.ok() ? *text : std::string();
}

/// The load error of a tokenizer.json text (fails the test when it loads).
kiln::rt::Error bpeError(const std::string &json) {
  auto tok = Tokenizer::create("bpe", json.data(), json.size());
  EXPECT_FALSE(tok.ok()) << "loaded although it should not:\n" << json.substr(0, 300);
  return tok.ok() ? kiln::rt::invalidArgument("(loaded)") : tok.error();
}

using Ids = std::vector<int32_t>;

TEST(BpeTokenizer, MergesByRankInBothMergeFormatsAndBothPreTokenizers) {
  for (bool pairs : {false, true})
    for (bool llama3 : {true, false}) {
      BpeOptions o;
      o.pairs = pairs;
      o.llama3Split = llama3;
      auto t = makeBpe(bpeJson(o));
      ASSERT_TRUE(t);
      SCOPED_TRACE(std::string(pairs ? "pairs" : "strings") + (llama3 ? " llama3" : " gpt2"));
      EXPECT_STREQ(t->kind(), "bpe");
      EXPECT_EQ(t->vocabSize(), 264);
      // "hello": h e l l o -> (h,e) rank 0 -> (l,l) 1 -> (he,ll) 2 -> (hell,o) 3 = 259.
      // " world": Ġ w o r l d -> (Ġ,w) rank 4 = 260, then o r l d as bytes.
      EXPECT_EQ(encode(*t, "hello world"), (Ids{259, 260, 'o', 'r', 'l', 'd'}));
      // Equal ranks: the leftmost pair merges first: "lll" -> ll l.
      EXPECT_EQ(encode(*t, "lll"), (Ids{257, 'l'}));
      // "xyz" is in the vocabulary but no merge makes it (ignore_merges is off).
      EXPECT_EQ(encode(*t, "xyz"), (Ids{'x', 'y', 'z'}));
      // Bytes of non-ASCII text are byte tokens: é = C3 A9.
      EXPECT_EQ(encode(*t, "é"), (Ids{0xC3, 0xA9}));
      EXPECT_EQ(encode(*t, ""), Ids{});
      EXPECT_EQ(decode(*t, {259, 260, 'o'}), "hello wo");
      EXPECT_EQ(t->tokenId("hello"), 259);
      EXPECT_EQ(t->tokenId("<a><b>"), 263);
      EXPECT_EQ(t->tokenId("nope"), -1);
    }
}

TEST(BpeTokenizer, IgnoreMergesTakesWholeVocabularyWords) {
  BpeOptions o;
  o.ignoreMerges = true;
  auto t = makeBpe(bpeJson(o));
  ASSERT_TRUE(t);
  EXPECT_EQ(encode(*t, "xyz"), Ids{261});
  EXPECT_EQ(encode(*t, "xyzz"), (Ids{'x', 'y', 'z', 'z'}));
}

TEST(BpeTokenizer, AddedTokensAreCutOutFirstLongestMatch) {
  auto t = makeBpe(bpeJson());
  ASSERT_TRUE(t);
  EXPECT_EQ(encode(*t, "<a><b><a>"), (Ids{263, 262}));
  EXPECT_EQ(encode(*t, "hello<a>hello"), (Ids{259, 262, 259}));
  EXPECT_EQ(encode(*t, "<a"), (Ids{'<', 'a'}));
  EXPECT_EQ(decode(*t, {262, 259, 263}), "<a>hello<a><b>");
}

TEST(BpeTokenizer, DecodeKeepsCutUtf8AndRejectsUnknownIds) {
  auto t = makeBpe(bpeJson());
  ASSERT_TRUE(t);
  // 😀 = F0 9F 98 80: the first two bytes alone decode to those two raw bytes.
  EXPECT_EQ(decode(*t, {0xF0, 0x9F}), "\xF0\x9F");
  auto bad = t->decode({259, 264});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::InvalidArgument);
  EXPECT_NE(bad.error().message().find("264"), std::string::npos) << bad.error().message();
  EXPECT_FALSE(t->decode({-1}).ok());
  auto invalid = t->encode("abc\xFF");
  ASSERT_FALSE(invalid.ok());
  EXPECT_NE(invalid.error().message().find("UTF-8"), std::string::npos);
}

TEST(BpeTokenizer, UnsupportedFeaturesAreNamed) {
  struct Case {
    BpeOptions options;
    const char *expect;
  };
  std::vector<Case> cases;
  BpeOptions o;
  o.normalizer = "{\"type\": \"NFC\"}";
  cases.push_back({o, "NFC"});
  o = {};
  o.decoder = "{\"type\": \"WordPiece\"}";
  cases.push_back({o, "WordPiece"});
  o = {};
  o.modelType = "Unigram";
  cases.push_back({o, "Unigram"});
  o = {};
  o.addedExtra = ", \"lstrip\": true";
  cases.push_back({o, "lstrip"});
  for (const Case &c : cases) {
    kiln::rt::Error e = bpeError(bpeJson(c.options));
    EXPECT_EQ(e.code(), ErrorCode::Unsupported) << e.message();
    EXPECT_NE(e.message().find(c.expect), std::string::npos) << e.message();
  }
  std::string json = bpeJson();
  std::string from = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": "
                     "true, \"use_regex\": false}";
  ASSERT_NE(json.find(from), std::string::npos);
  std::string ws = json;
  ws.replace(ws.find(from), from.size(), "{\"type\": \"Whitespace\"}");
  kiln::rt::Error e = bpeError(ws);
  EXPECT_NE(e.message().find("Whitespace"), std::string::npos) << e.message();
}

TEST(BpeTokenizer, MalformedFilesAreInvalidArgument) {
  struct Case {
    std::string json;
    const char *expect;
  };
  BpeOptions threeParts, unknownPart, noByte;
  threeParts.extraMerge = ", \"a b c\"";
  unknownPart.extraMerge = ", \"q nothere\"";
  noByte.dropByte = true;
  std::string sparse = bpeJson();
  sparse.replace(sparse.find("\"xyz\": 261"), 10, "\"xyz\": 999999999");
  std::string badRegex = bpeJson();
  badRegex.replace(badRegex.find("(?i:"), 4, "(?i:(");
  std::vector<Case> cases = {
      {bpeJson(threeParts), "two tokens"},
      {bpeJson(unknownPart), "nothere"},
      {bpeJson(noByte), "0x7A"},
      {sparse, "999999999"},
      {badRegex, "regex"},
      {"", "JSON"},
      {"[1, 2]", "object"},
      {"{\"model\": {\"type\": \"BPE\", \"vocab\": [], \"merges\": []}}", "vocab"},
  };
  for (const Case &c : cases) {
    kiln::rt::Error e = bpeError(c.json);
    EXPECT_EQ(e.code(), ErrorCode::InvalidArgument) << e.message();
    EXPECT_NE(e.message().find(c.expect), std::string::npos) << e.message();
  }
}

/// Loads `bytes`; a failure must be a clean InvalidArgument/Unsupported error and a
/// success must give a working tokenizer. Counts successes.
void loadsCleanly(const std::string &kind, const std::string &bytes, int &loaded) {
  auto tok = Tokenizer::create(kind, bytes.data(), bytes.size());
  if (!tok.ok()) {
    ErrorCode c = tok.error().code();
    EXPECT_TRUE(c == ErrorCode::InvalidArgument || c == ErrorCode::Unsupported)
        << kiln::rt::errorCodeName(c) << ": " << tok.error().message();
    EXPECT_FALSE(tok.error().message().empty());
    return;
  }
  ++loaded;
  auto ids = (*tok)->encode("hello world, héllo 😀 <a> ＡＢＣ ｶﾀｶﾅ ﬁ ① x\u00a0y");
  if (ids.ok())
    (void)(*tok)->decode(*ids);
}

TEST(BpeTokenizer, TruncatedAndGarbledJsonNeverCrash) {
  std::string json = bpeJson();
  int loaded = 0;
  for (size_t n = 0; n + 1 < json.size(); n += 3) // all but the final newline
    loadsCleanly("bpe", json.substr(0, n), loaded);
  EXPECT_EQ(loaded, 0) << "a truncated tokenizer.json loaded";
  std::mt19937 rng(1234);
  for (int i = 0; i < 1500; ++i) {
    std::string bad = json;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k)
      bad[rng() % bad.size()] = static_cast<char>(rng() % 256);
    loadsCleanly("bpe", bad, loaded);
  }
}

// ------------------------------------------------------------------ sentencepiece

std::string trainSentencePiece(std::unordered_map<std::string, std::string> options) {
  options["input"] = KILN_TOKENIZER_CORPUS;
  options["character_coverage"] = "0.98";
  options["hard_vocab_limit"] = "false";
  options["minloglevel"] = "2";
  std::string proto;
  auto status = sentencepiece::SentencePieceTrainer::Train(options, nullptr, &proto);
  EXPECT_TRUE(status.ok()) << status.ToString();
  return proto;
}

/// Llama-2 style: BPE, byte fallback, identity normalization (no rules stored).
const std::string &sentencePieceModel() {
  static const std::string model = trainSentencePiece({{"vocab_size", "800"},
                                                       {"model_type", "bpe"},
                                                       {"byte_fallback", "true"},
                                                       {"normalization_rule_name", "identity"},
                                                       {"remove_extra_whitespaces", "false"},
                                                       {"split_digits", "true"}});
  return model;
}

/// Unigram with the default nmt_nfkc rules: the model stores a ~240 KB
/// normalization trie, which libsentencepiece reads without bounds checks.
const std::string &sentencePieceNfkcModel() {
  static const std::string model =
      trainSentencePiece({{"vocab_size", "500"}, {"model_type", "unigram"}});
  return model;
}

TEST(SentencePieceTokenizer, RoundTripsAndKeepsCutUtf8Raw) {
  const std::string &model = sentencePieceModel();
  ASSERT_FALSE(model.empty());
  auto tok = Tokenizer::create("sentencepiece", model.data(), model.size());
  ASSERT_TRUE(tok.ok()) << tok.error().message();
  const Tokenizer &t = **tok;
  EXPECT_STREQ(t.kind(), "sentencepiece");
  EXPECT_EQ(t.vocabSize(), 800);
  EXPECT_EQ(t.tokenId("<s>"), 1);
  EXPECT_EQ(t.tokenId("</s>"), 2);
  EXPECT_EQ(t.tokenId("<unk>"), 0);
  EXPECT_EQ(t.tokenId("certainly not a piece"), -1);
  for (const char *text : {"Hello, world!", "Zürich café — 日本語 😀 Привет", "  two  spaces\t"}) {
    auto ids = encode(t, text);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(decode(t, ids), text);
  }
  int32_t f0 = t.tokenId("<0xF0>"), x9f = t.tokenId("<0x9F>"), x98 = t.tokenId("<0x98>"),
          x80 = t.tokenId("<0x80>");
  ASSERT_TRUE(f0 >= 0 && x9f >= 0 && x98 >= 0 && x80 >= 0);
  int32_t hello = encode(t, "hello").front();
  std::string helloText = decode(t, {hello});
  EXPECT_EQ(decode(t, {hello, f0, x9f}), helloText + "\xF0\x9F");
  EXPECT_EQ(decode(t, {hello, f0, x9f, x98, x80}), helloText + "😀");
  auto bad = t.decode({hello, 800});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("800"), std::string::npos) << bad.error().message();
}

TEST(SentencePieceTokenizer, TruncatedAndGarbledModelsNeverCrash) {
  const std::string &model = sentencePieceModel();
  ASSERT_FALSE(model.empty());
  int loaded = 0;
  for (size_t n = 0; n < model.size(); n += 1 + model.size() / 300)
    loadsCleanly("sentencepiece", model.substr(0, n), loaded);
  std::mt19937 rng(99);
  for (int i = 0; i < 1500; ++i) {
    std::string bad = model;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k)
      bad[rng() % bad.size()] = static_cast<char>(rng() % 256);
    loadsCleanly("sentencepiece", bad, loaded);
  }
  // Garbled normalization tries (most flips land in them): rejected, or safe.
  const std::string &nfkc = sentencePieceNfkcModel();
  ASSERT_GT(nfkc.size(), 100000u);
  loaded = 0;
  loadsCleanly("sentencepiece", nfkc, loaded);
  EXPECT_EQ(loaded, 1) << "the intact NFKC model must load";
  for (int i = 0; i < 400; ++i) {
    std::string bad = nfkc;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k)
      bad[rng() % bad.size()] = static_cast<char>(rng() % 256);
    loadsCleanly("sentencepiece", bad, loaded);
  }
  std::string junk(5000, '\0');
  for (char &c : junk)
    c = static_cast<char>(rng());
  int before = loaded;
  loadsCleanly("sentencepiece", junk, loaded);
  EXPECT_EQ(loaded, before) << "random bytes loaded as a sentencepiece model";
}

TEST(SentencePieceTokenizer, RejectsATrieThatPointsOutOfBounds) {
  // Find the precompiled charsmap: NormalizerSpec { 1: "nmt_nfkc", 2: bytes }.
  std::string model = sentencePieceNfkcModel();
  const std::string marker = std::string("\x0a\x08nmt_nfkc\x12", 11);
  size_t at = model.find(marker);
  ASSERT_NE(at, std::string::npos) << "normalizer spec not found in the trained model";
  size_t p = at + marker.size();
  uint64_t length = 0;
  for (int shift = 0; static_cast<unsigned char>(model[p]) & 0x80; shift += 7, ++p)
    length |= static_cast<uint64_t>(model[p] & 0x7F) << shift;
  ++p; // last varint byte
  ASSERT_GT(length, 8u);
  // The root unit (after the 4-byte trie size) gets an offset far past the array.
  uint32_t root = (0x1FFFFFu << 10) | (1u << 9);
  std::memcpy(&model[p + 4], &root, 4);
  auto tok = Tokenizer::create("sentencepiece", model.data(), model.size());
  ASSERT_FALSE(tok.ok()) << "a model whose normalization trie points out of bounds loaded";
  EXPECT_EQ(tok.error().code(), ErrorCode::InvalidArgument);
  EXPECT_NE(tok.error().message().find("normalization"), std::string::npos)
      << tok.error().message();
}

TEST(Tokenizer, KindsAndFiles) {
  std::string json = bpeJson();
  auto t = Tokenizer::create("wordpiece", json.data(), json.size());
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message().find("wordpiece"), std::string::npos);
  auto missing = Tokenizer::fromFile("/nonexistent/tokenizer.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::Io);
  auto noKind = Tokenizer::fromFile(KILN_TOKENIZER_CORPUS);
  ASSERT_FALSE(noKind.ok());
  EXPECT_NE(noKind.error().message().find("kind"), std::string::npos);
  // The corpus is text, neither a model nor JSON.
  auto wrong = Tokenizer::fromFile(KILN_TOKENIZER_CORPUS, "bpe");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::InvalidArgument);
}

} // namespace
