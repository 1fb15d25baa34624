// `tokenize`: encode text to ids or decode ids to text with a tokenizer file
// (docs/llm.md §4). Shared by `kiln-runtime` and `kiln`.
#include "runtime-stub/llm/Tokenizer.h"
#include "runtime-stub/tools/Commands.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace kiln {
namespace rt {

const char *kilnTokenizeUsage() {
  return "  tokenize --tokenizer FILE [--kind sentencepiece|bpe]\n"
         "           (--text STR | --text-file F [--lines] | --decode IDS | --decode-file F)\n"
         "      encode text (prints ids, space-separated; --lines: one line of ids per\n"
         "      input line) or decode ids (IDS: comma/space-separated; --decode-file:\n"
         "      one id list per line, one decoded text per output line)\n";
}

namespace {

int fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

bool readFile(const std::string &path, std::string &out, std::string &error) {
  std::FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    out.append(buf, n);
  bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad)
    error = path + ": read error";
  return !bad;
}

/// Lines of `text` split on '\n'; a final newline does not start another line.
std::vector<std::string> splitLines(const std::string &text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

/// Parses "1,2,3" or "1 2 3" (commas and whitespace both separate).
bool parseIds(const std::string &list, std::vector<int32_t> &ids, std::string &error) {
  size_t i = 0;
  while (i < list.size()) {
    char c = list[i];
    if (c == ',' || c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    size_t j = i;
    if (list[j] == '-' || list[j] == '+')
      ++j;
    while (j < list.size() && list[j] >= '0' && list[j] <= '9')
      ++j;
    std::string token = list.substr(i, j - i);
    bool digits = j > i && list[j - 1] >= '0' && list[j - 1] <= '9';
    if (!digits || (j < list.size() && list[j] != ',' && list[j] != ' ' && list[j] != '\t' &&
                    list[j] != '\r')) {
      size_t end = list.find_first_of(", \t\r", i);
      error = "'" + list.substr(i, end == std::string::npos ? std::string::npos : end - i) +
              "' is not a token id";
      return false;
    }
    errno = 0;
    long long v = std::strtoll(token.c_str(), nullptr, 10);
    if (errno == ERANGE || v < INT32_MIN || v > INT32_MAX) {
      error = "token id " + token + " is out of range";
      return false;
    }
    ids.push_back(static_cast<int32_t>(v));
    i = j;
  }
  return true;
}

std::string joinIds(const std::vector<int32_t> &ids) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i)
      s += ' ';
    s += std::to_string(ids[i]);
  }
  return s;
}

} // namespace

int kilnTokenizeCommand(int argc, char **argv) {
  std::string tokenizerPath, kind, text, textFile, decodeList, decodeFile;
  bool haveText = false, haveDecode = false, lines = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    if (arg == "--help" || arg == "-h") {
      std::printf("usage:\n%s", kilnTokenizeUsage());
      return 0;
    }
    bool ok = true;
    if (arg == "--tokenizer")
      ok = value(tokenizerPath);
    else if (arg == "--kind")
      ok = value(kind);
    else if (arg == "--text")
      ok = haveText = value(text);
    else if (arg == "--text-file")
      ok = value(textFile);
    else if (arg == "--decode")
      ok = haveDecode = value(decodeList);
    else if (arg == "--decode-file")
      ok = value(decodeFile);
    else if (arg == "--lines")
      lines = true;
    else
      return fail("tokenize: unknown option '" + arg + "'\nusage:\n" + kilnTokenizeUsage());
    if (!ok)
      return fail("tokenize: " + arg + " needs a value");
  }
  if (tokenizerPath.empty())
    return fail(std::string("tokenize: --tokenizer FILE is required\nusage:\n") +
                kilnTokenizeUsage());
  int modes = haveText + !textFile.empty() + haveDecode + !decodeFile.empty();
  if (modes != 1)
    return fail(std::string("tokenize: give exactly one of --text, --text-file, --decode, "
                            "--decode-file\nusage:\n") +
                kilnTokenizeUsage());
  if (lines && textFile.empty())
    return fail("tokenize: --lines goes with --text-file");

  auto tok = Tokenizer::fromFile(tokenizerPath, kind);
  if (!tok.ok())
    return fail(tok.error().message());
  const Tokenizer &t = **tok;

  std::string out, error;
  if (haveText || !textFile.empty()) {
    if (!textFile.empty() && !readFile(textFile, text, error))
      return fail(error);
    std::vector<std::string> inputs = lines ? splitLines(text) : std::vector<std::string>{text};
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto ids = t.encode(inputs[i]);
      if (!ids.ok())
        return fail(lines ? "line " + std::to_string(i + 1) + ": " + ids.error().message()
                          : ids.error().message());
      out += joinIds(*ids) + "\n";
    }
  } else {
    std::vector<std::string> inputs;
    if (haveDecode) {
      inputs.push_back(decodeList);
    } else {
      std::string content;
      if (!readFile(decodeFile, content, error))
        return fail(error);
      inputs = splitLines(content);
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      std::vector<int32_t> ids;
      std::string where = haveDecode ? "--decode: " : decodeFile + ":" + std::to_string(i + 1) + ": ";
      if (!parseIds(inputs[i], ids, error))
        return fail(where + error);
      auto decoded = t.decode(ids);
      if (!decoded.ok())
        return fail(where + decoded.error().message());
      out += *decoded;
      if (!haveDecode)
        out += "\n";
    }
  }
  // All or nothing: the output is written only once everything succeeded.
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0)
    return fail("cannot write to stdout");
  return 0;
}

} // namespace rt
} // namespace kiln
