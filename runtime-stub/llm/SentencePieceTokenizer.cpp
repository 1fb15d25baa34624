// The sentencepiece tokenizer (`tokenizer.model`): a thin wrapper over
// libsentencepiece, which does the normalization, segmentation and decoding.
// One addition: ids ending in byte pieces that cut a UTF-8 sequence decode to
// those raw bytes (the library would turn them into U+FFFD), so a streaming
// caller can hold them back until the sequence completes (Tokenizer.h).
//
// libsentencepiece trusts the normalization rules stored in a model (a darts-clone
// trie plus replacement strings): a garbled trie makes it read out of bounds. So
// before loading, the model's protobuf is walked (wire format only) and each
// precompiled charsmap is checked: every trie node reachable from the root must
// keep all 256 possible child reads inside the array, and every value must point
// at a NUL-terminated string inside the replacement blob.
#include "runtime-stub/llm/TokenizerImpl.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstring>

namespace kiln {
namespace rt {
namespace {

/// Length of the UTF-8 sequence a lead byte starts (0: not a lead byte).
int utf8SequenceLength(unsigned char b) {
  if (b < 0x80)
    return 1;
  if (b >= 0xC2 && b <= 0xDF)
    return 2;
  if (b >= 0xE0 && b <= 0xEF)
    return 3;
  if (b >= 0xF0 && b <= 0xF4)
    return 4;
  return 0;
}

// ------------------------------------------------- protobuf wire format (just enough)

struct Wire {
  const unsigned char *p, *end;
  bool varint(uint64_t &v) {
    v = 0;
    for (int shift = 0; shift < 64 && p < end; shift += 7) {
      unsigned char b = *p++;
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80))
        return true;
    }
    return false;
  }
  /// Reads one field; for length-delimited ones `data`/`size` is the payload.
  bool field(uint32_t &number, uint32_t &type, const unsigned char *&data, size_t &size) {
    uint64_t key, v;
    if (!varint(key))
      return false;
    number = static_cast<uint32_t>(key >> 3);
    type = static_cast<uint32_t>(key & 7);
    switch (type) {
    case 0:
      return varint(v);
    case 1:
      if (end - p < 8)
        return false;
      p += 8;
      return true;
    case 5:
      if (end - p < 4)
        return false;
      p += 4;
      return true;
    case 2:
      if (!varint(v) || v > static_cast<uint64_t>(end - p))
        return false;
      data = p;
      size = static_cast<size_t>(v);
      p += size;
      return true;
    default:
      return false; // groups (3, 4) and invalid types
    }
  }
};

/// Checks a precompiled charsmap: [u32 trie size][darts-clone units][strings].
Error checkCharsMap(const unsigned char *blob, size_t size, const char *which) {
  auto broken = [&](const std::string &why) {
    return invalidArgument(std::string("not a valid sentencepiece model: the ") + which +
                           " normalization rules are broken (" + why + ")");
  };
  if (size == 0)
    return Error::success(); // no rules: identity
  if (size <= 4)
    return broken("too short");
  uint32_t trieBytes = static_cast<uint32_t>(blob[0]) | (static_cast<uint32_t>(blob[1]) << 8) |
                       (static_cast<uint32_t>(blob[2]) << 16) |
                       (static_cast<uint32_t>(blob[3]) << 24);
  if (trieBytes >= size || trieBytes > size - 4)
    return broken("trie size beyond the blob");
  size_t units = trieBytes / 4;
  if (units == 0)
    return broken("empty trie");
  std::vector<uint32_t> array(units);
  std::memcpy(array.data(), blob + 4, units * 4); // little-endian hosts only (x86, arm)
  const unsigned char *strings = blob + 4 + trieBytes;
  size_t stringsSize = size - 4 - trieBytes;
  size_t lastNul = std::string::npos;
  for (size_t i = stringsSize; i-- > 0;)
    if (strings[i] == 0) {
      lastNul = i;
      break;
    }
  auto offset = [](uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); };
  auto label = [](uint32_t u) { return u & ((1u << 31) | 0xFFu); };
  std::vector<uint8_t> seen(units, 0);
  std::vector<size_t> stack{0};
  seen[0] = 1;
  while (!stack.empty()) {
    size_t node = stack.back();
    stack.pop_back();
    uint32_t unit = array[node];
    size_t base = node ^ offset(unit);
    if ((base | 0xFF) >= units)
      return broken("a trie node points outside the array");
    if (node != 0 && ((unit >> 8) & 1)) { // has a leaf: its value sits at `base`
      uint32_t value = array[base] & ((1u << 31) - 1);
      if (lastNul == std::string::npos || value > lastNul)
        return broken("a rule points outside the replacement strings");
    }
    for (uint32_t c = 0; c < 256; ++c) {
      size_t child = base ^ c;
      if (label(array[child]) == c && !seen[child]) {
        seen[child] = 1;
        stack.push_back(child);
      }
    }
  }
  return Error::success();
}

/// Walks ModelProto: normalizer_spec (3) and denormalizer_spec (5), each a
/// NormalizerSpec whose field 2 is precompiled_charsmap (the last one wins).
Error checkModelProto(const void *data, size_t size) {
  Wire model{static_cast<const unsigned char *>(data),
             static_cast<const unsigned char *>(data) + size};
  const unsigned char *maps[2] = {nullptr, nullptr};
  size_t mapSizes[2] = {0, 0};
  while (model.p < model.end) {
    uint32_t number, type;
    const unsigned char *payload = nullptr;
    size_t length = 0;
    if (!model.field(number, type, payload, length))
      return invalidArgument("not a valid sentencepiece model (malformed protobuf)");
    if (type != 2 || (number != 3 && number != 5))
      continue;
    Wire spec{payload, payload + length};
    while (spec.p < spec.end) {
      uint32_t n, t;
      const unsigned char *d = nullptr;
      size_t len = 0;
      if (!spec.field(n, t, d, len))
        return invalidArgument("not a valid sentencepiece model (malformed normalizer spec)");
      if (n == 2 && t == 2) {
        maps[number == 5] = d;
        mapSizes[number == 5] = len;
      }
    }
  }
  KILN_TRY(checkCharsMap(maps[0], mapSizes[0], "normalizer"));
  KILN_TRY(checkCharsMap(maps[1], mapSizes[1], "denormalizer"));
  return Error::success();
}

class SentencePieceTokenizer final : public Tokenizer {
public:
  Error load(const void *data, size_t size) {
    KILN_TRY(checkModelProto(data, size));
    auto status = sp_.LoadFromSerializedProto(
        absl::string_view(static_cast<const char *>(data), size));
    if (!status.ok())
      return invalidArgument(std::string("not a valid sentencepiece model: ") + status.ToString());
    int n = sp_.GetPieceSize();
    if (n <= 0)
      return invalidArgument("the sentencepiece model has no pieces");
    // Byte pieces are "<0xAB>": remember their values for decode().
    byteValue_.assign(static_cast<size_t>(n), -1);
    for (int id = 0; id < n; ++id) {
      if (!sp_.IsByte(id))
        continue;
      const std::string &piece = sp_.IdToPiece(id);
      unsigned value = 0;
      char tail = 0;
      if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%2X>%c", &value, &tail) == 1)
        byteValue_[static_cast<size_t>(id)] = static_cast<int>(value);
    }
    return Error::success();
  }

  const char *kind() const override { return "sentencepiece"; }

  Result<std::vector<int32_t>> encode(const std::string &text) const override {
    std::vector<int> ids;
    auto status = sp_.Encode(absl::string_view(text), &ids);
    if (!status.ok())
      return invalidArgument(std::string("sentencepiece encode failed: ") + status.ToString());
    return std::vector<int32_t>(ids.begin(), ids.end());
  }

  Result<std::string> decode(const std::vector<int32_t> &ids) const override {
    int n = sp_.GetPieceSize();
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= n)
        return invalidArgument("token id " + std::to_string(ids[i]) + " (at position " +
                               std::to_string(i) + ") is outside the vocabulary [0, " +
                               std::to_string(n) + ")");
    // A trailing run of byte pieces that ends inside a UTF-8 sequence: keep those
    // bytes raw instead of letting the library replace them.
    size_t keep = ids.size();
    std::string tail;
    size_t runStart = ids.size();
    while (runStart > 0 && byteValue_[static_cast<size_t>(ids[runStart - 1])] >= 0)
      --runStart;
    if (runStart < ids.size()) {
      // Find the last lead byte in the run; incomplete if fewer bytes follow it
      // than it announces (and all of those are continuation bytes).
      for (size_t i = ids.size(); i-- > runStart && ids.size() - i <= 4;) {
        unsigned char b = static_cast<unsigned char>(byteValue_[static_cast<size_t>(ids[i])]);
        if ((b & 0xC0) == 0x80)
          continue; // continuation byte: keep looking for its lead
        int len = utf8SequenceLength(b);
        if (len > 1 && ids.size() - i < static_cast<size_t>(len)) {
          keep = i;
          for (size_t j = i; j < ids.size(); ++j)
            tail.push_back(static_cast<char>(byteValue_[static_cast<size_t>(ids[j])]));
        }
        break;
      }
    }
    std::string text;
    if (keep > 0) {
      std::vector<int> head(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
      auto status = sp_.Decode(head, &text);
      if (!status.ok())
        return invalidArgument(std::string("sentencepiece decode failed: ") + status.ToString());
    }
    return text + tail;
  }

  int32_t vocabSize() const override { return sp_.GetPieceSize(); }

  int32_t tokenId(const std::string &piece) const override {
    int id = sp_.PieceToId(absl::string_view(piece));
    // PieceToId answers unk_id for unknown strings; only the unknown piece itself maps there.
    if (id == sp_.unk_id() && sp_.IdToPiece(id) != piece)
      return -1;
    return id;
  }

private:
  sentencepiece::SentencePieceProcessor sp_;
  std::vector<int> byteValue_; // id -> byte value of a byte piece, else -1
};

} // namespace

Result<std::unique_ptr<Tokenizer>> createSentencePieceTokenizer(const void *data, size_t size) {
  auto tok = std::make_unique<SentencePieceTokenizer>();
  KILN_TRY(tok->load(data, size));
  return std::unique_ptr<Tokenizer>(std::move(tok));
}

} // namespace rt
} // namespace kiln
