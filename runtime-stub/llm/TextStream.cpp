#include "runtime-stub/llm/TextStream.h"

#include <algorithm>

namespace kiln {
namespace rt {

namespace {

/// Ids of context kept before the new ones (enough for a word-start space).
constexpr size_t kContextIds = 4;

bool endsWithReplacementChar(const std::string &s) {
  return s.size() >= 3 && (unsigned char)s[s.size() - 3] == 0xEF &&
         (unsigned char)s[s.size() - 2] == 0xBF && (unsigned char)s[s.size() - 1] == 0xBD;
}

} // namespace

size_t incompleteUtf8Tail(const std::string &s) {
  const size_t n = s.size();
  // A sequence is at most 4 bytes: look back at most 3 bytes for its lead byte.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    unsigned char c = (unsigned char)s[n - back];
    if ((c & 0xC0) == 0x80)
      continue; // a continuation byte: keep looking for the lead
    size_t need = (c & 0x80) == 0      ? 1
                  : (c & 0xE0) == 0xC0 ? 2
                  : (c & 0xF0) == 0xE0 ? 3
                  : (c & 0xF8) == 0xF0 ? 4
                                       : 1; // not a lead byte: nothing to wait for
    return back < need ? back : 0;
  }
  return 0;
}

TextStream::TextStream(const Tokenizer *tokenizer, const std::vector<int32_t> &prompt,
                       size_t capacity)
    : tok_(tokenizer) {
  ids_.reserve(prompt.size() + capacity);
  ids_.assign(prompt.begin(), prompt.end());
  readOffset_ = ids_.size();
  prefixOffset_ = ids_.size() > kContextIds ? ids_.size() - kContextIds : 0;
  prefix_.reserve(kContextIds + capacity);
  window_.reserve(kContextIds + capacity);
}

Error TextStream::push(int32_t id, bool last, std::string *out) {
  out->clear();
  ids_.push_back(id);
  return take(last, out);
}

Error TextStream::flush(std::string *out) {
  out->clear();
  return take(true, out);
}

Error TextStream::take(bool last, std::string *out) {
  if (!tok_)
    return Error::success();
  prefix_.assign(ids_.begin() + (long)prefixOffset_, ids_.begin() + (long)readOffset_);
  window_.assign(ids_.begin() + (long)prefixOffset_, ids_.end());
  Result<std::string> before = tok_->decode(prefix_);
  if (!before.ok())
    return before.error();
  Result<std::string> after = tok_->decode(window_);
  if (!after.ok())
    return after.error();
  const std::string &a = *after;
  const size_t from = std::min(before->size() + emittedPartial_, a.size());
  if (!last) {
    if (endsWithReplacementChar(a))
      return Error::success(); // maybe a character cut between byte tokens: wait
    size_t end = a.size() - incompleteUtf8Tail(a);
    if (end < a.size()) {
      // Emit the complete part; the window stays until the character completes.
      if (end > from) {
        out->assign(a, from, end - from);
        emittedPartial_ += end - from;
      }
      return Error::success();
    }
  }
  // Everything is out: the window moves past these ids.
  out->assign(a, from, a.size() - from);
  emittedPartial_ = 0;
  readOffset_ = ids_.size();
  prefixOffset_ = readOffset_ > kContextIds ? readOffset_ - kContextIds : 0;
  return Error::success();
}

} // namespace rt
} // namespace kiln
