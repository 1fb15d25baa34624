// TextStream against a small table tokenizer that decodes like sentencepiece:
// "▁" is a word-start space, dropped at the very start of the decoded text, and
// byte pieces <0xNN> give raw bytes (so a character can be cut between ids).
#include "runtime-stub/llm/TextStream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace kiln::rt;

namespace {

class TableTokenizer : public Tokenizer {
public:
  explicit TableTokenizer(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {}
  const char *kind() const override { return "table"; }
  Result<std::vector<int32_t>> encode(const std::string &) const override {
    return unsupported("encode is not needed here");
  }
  Result<std::string> decode(const std::vector<int32_t> &ids) const override {
    std::string out;
    for (int32_t id : ids) {
      if (id < 0 || id >= (int32_t)pieces_.size())
        return invalidArgument("id " + std::to_string(id) + " is outside the vocabulary");
      const std::string &p = pieces_[(size_t)id];
      if (p.rfind("\xE2\x96\x81", 0) == 0) // U+2581
        out += " " + p.substr(3);
      else
        out += p;
    }
    if (!out.empty() && out[0] == ' ')
      out.erase(0, 1);
    return out;
  }
  int32_t vocabSize() const override { return (int32_t)pieces_.size(); }
  int32_t tokenId(const std::string &) const override { return -1; }

private:
  std::vector<std::string> pieces_;
};

const std::vector<std::string> kPieces = {
    "<s>",                  // 0: decodes to itself here; only used as prompt
    "\xE2\x96\x81" "Hello", // 1: ▁Hello
    "\xE2\x96\x81" "world", // 2: ▁world
    "!",                    // 3
    "\xC3",                 // 4: first byte of é (C3 A9)
    "\xA9",                 // 5: second byte of é
    "\xE2\x82",             // 6: first two bytes of € (E2 82 AC)
    "\xAC",                 // 7: last byte of €
    "\xE2\x96\x81",         // 8: a lone word-start space
    "caf",                  // 9
};

/// Streams `generated` after `prompt`; returns the pieces.
std::vector<std::string> stream(const std::vector<int32_t> &prompt,
                                const std::vector<int32_t> &generated) {
  TableTokenizer tok(kPieces);
  TextStream ts(&tok, prompt, generated.size());
  std::vector<std::string> pieces;
  for (size_t i = 0; i < generated.size(); ++i) {
    std::string piece;
    Error e = ts.push(generated[i], i + 1 == generated.size(), &piece);
    EXPECT_TRUE(e.ok()) << e.message();
    pieces.push_back(piece);
  }
  return pieces;
}

} // namespace

TEST(TextStream, WordStartSpacesSurviveAfterThePrompt) {
  // Prompt "Hello"; the first generated piece "▁world" must come out as " world",
  // which decoding it alone ("world") would not give.
  auto pieces = stream({1}, {2, 3, 2});
  EXPECT_EQ(pieces, (std::vector<std::string>{" world", "!", " world"}));
}

TEST(TextStream, CutCharactersAreHeldBack) {
  // "caf" + C3 | A9  and  " " + E2 82 | AC: nothing is emitted mid-character.
  auto pieces = stream({1}, {9, 4, 5, 8, 6, 7, 3});
  EXPECT_EQ(pieces, (std::vector<std::string>{"caf", "", "\xC3\xA9", " ", "", "\xE2\x82\xAC",
                                               "!"}));
  std::string joined;
  for (auto &p : pieces)
    joined += p;
  EXPECT_EQ(joined, "caf\xC3\xA9 \xE2\x82\xAC!");
}

TEST(TextStream, CompletePartBeforeACutIsEmitted) {
  // One id "!" then a cut € in the same step: "!" goes out, the two bytes wait.
  TableTokenizer tok({"!", "!\xE2\x82", "\xAC"});
  TextStream ts(&tok, {0}, 2);
  std::string piece;
  ASSERT_TRUE(ts.push(1, false, &piece).ok());
  EXPECT_EQ(piece, "!");
  ASSERT_TRUE(ts.push(2, false, &piece).ok());
  EXPECT_EQ(piece, "\xE2\x82\xAC");
}

TEST(TextStream, LastPieceFlushesIncompleteBytes) {
  auto pieces = stream({1}, {3, 4});
  EXPECT_EQ(pieces, (std::vector<std::string>{"!", "\xC3"}));
  // flush() after a stop that adds no id (the runner's EOS) gives what was held.
  TableTokenizer tok(kPieces);
  TextStream ts(&tok, {1}, 2);
  std::string piece;
  ASSERT_TRUE(ts.push(6, false, &piece).ok());
  EXPECT_EQ(piece, "");
  ASSERT_TRUE(ts.flush(&piece).ok());
  EXPECT_EQ(piece, "\xE2\x82");
}

TEST(TextStream, LongGenerationMatchesTheWholeDecode) {
  // 300 ids cycling through every piece: the pieces join to decode(prompt + ids)
  // minus decode(prompt).
  TableTokenizer tok(kPieces);
  std::vector<int32_t> prompt = {0, 1, 2}, generated;
  for (int i = 0; i < 300; ++i)
    generated.push_back(1 + (i * 7) % 9);
  auto pieces = stream(prompt, generated);
  std::string joined;
  for (auto &p : pieces)
    joined += p;
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), generated.begin(), generated.end());
  std::string whole = *tok.decode(all), head = *tok.decode(prompt);
  EXPECT_EQ(joined, whole.substr(head.size()));
}

TEST(TextStream, DecodeErrorsAreReturned) {
  TableTokenizer tok(kPieces);
  TextStream ts(&tok, {1}, 1);
  std::string piece;
  Error e = ts.push(99, false, &piece);
  ASSERT_TRUE(e.failed());
  EXPECT_NE(e.message().find("99"), std::string::npos);
}

TEST(TextStream, IncompleteUtf8Tail) {
  EXPECT_EQ(incompleteUtf8Tail(""), 0u);
  EXPECT_EQ(incompleteUtf8Tail("abc"), 0u);
  EXPECT_EQ(incompleteUtf8Tail("a\xC3"), 1u);
  EXPECT_EQ(incompleteUtf8Tail("a\xC3\xA9"), 0u);
  EXPECT_EQ(incompleteUtf8Tail("\xE2\x82"), 2u);
  EXPECT_EQ(incompleteUtf8Tail("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(incompleteUtf8Tail("\xF0\x9F\x98\x80"), 0u);
  EXPECT_EQ(incompleteUtf8Tail("\xA9"), 0u); // a stray continuation byte: nothing to wait for
}
