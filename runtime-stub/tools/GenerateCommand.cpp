// `generate`: text generation from an LLM program (docs/llm.md §3), shared by
// `kiln` and `kiln-runtime`.
#include "runtime-stub/tools/Commands.h"

#include "runtime-stub/llm/Runner.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace kiln {
namespace rt {

const char *kilnGenerateUsage() {
  return "usage: generate PROGRAM.kiln (--prompt TEXT | --prompt-tokens 1,2,3) [-n N]\n"
         "           [--temperature T] [--top-p P] [--seed S] [--ignore-eos]\n"
         "           [--print-token-ids] [--no-verify-hashes] [--threads N]\n"
         "           [--kernels portable|optimized] [--profile]\n"
         "Generates text with an LLM program (kiln export-hf): prints the prompt, then\n"
         "streams the continuation as it decodes; stops at EOS, after N new tokens\n"
         "(-n, default 128) or when the KV cache is full (--max-seq-len of the export).\n"
         "Greedy by default; --temperature T > 0 samples (nucleus --top-p P, default 1)\n"
         "with --seed S (default 0). --print-token-ids prints only the generated ids,\n"
         "space-separated, on one line. Token and speed figures go to stderr.\n"
         KILN_RUNTIME_OPTIONS_USAGE;
}

namespace {

int usageError(const std::string &message) {
  std::fprintf(stderr, "error: %s\n%s", message.c_str(), kilnGenerateUsage());
  return 1;
}

int fail(const std::string &message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

bool parseLong(const std::string &s, long long lo, long long hi, long long *out) {
  if (s.empty())
    return false;
  errno = 0;
  char *end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

bool parseUnsigned(const std::string &s, unsigned long long *out) {
  if (s.empty() || s[0] == '-')
    return false;
  errno = 0;
  char *end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *out = v;
  return true;
}

bool parseFloat(const std::string &s, float *out) {
  if (s.empty())
    return false;
  errno = 0;
  char *end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(v))
    return false;
  *out = (float)v;
  return true;
}

/// "1,2,3" -> ids; false with a message naming the bad item.
bool parseTokenList(const std::string &s, std::vector<int32_t> *out, std::string *error) {
  size_t at = 0;
  while (at <= s.size()) {
    size_t comma = s.find(',', at);
    std::string item = s.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    long long v = 0;
    if (!parseLong(item, 0, INT32_MAX, &v)) {
      *error = "invalid --prompt-tokens '" + s + "': '" + item +
               "' is not a token id (expected comma-separated non-negative integers)";
      return false;
    }
    out->push_back((int32_t)v);
    if (comma == std::string::npos)
      break;
    at = comma + 1;
  }
  return true;
}

void writeOut(const std::string &s) {
  if (!s.empty())
    std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

std::string perSecond(int tokens, double seconds) {
  if (seconds <= 0.0)
    return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f", tokens / seconds);
  return buf;
}

} // namespace

int kilnGenerateCommand(int argc, char **argv) {
  std::string programPath, promptText, promptTokensArg;
  bool haveText = false, haveTokens = false, printIds = false;
  GenerationConfig config;
  LoadOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string *out) {
      if (i + 1 >= argc)
        return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    std::string optionError;
    int runtimeOption = parseRuntimeOption(argc, argv, &i, &options, &optionError);
    if (runtimeOption < 0)
      return usageError(optionError);
    if (runtimeOption > 0)
      continue;
    if (a == "--help" || a == "-h") {
      std::fputs(kilnGenerateUsage(), stdout);
      return 0;
    } else if (a == "--prompt") {
      if (!value(&promptText))
        return usageError("--prompt needs a value");
      haveText = true;
    } else if (a == "--prompt-tokens") {
      if (!value(&promptTokensArg))
        return usageError("--prompt-tokens needs a value");
      haveTokens = true;
    } else if (a == "-n" || a == "--max-new-tokens") {
      long long n = 0;
      if (!value(&v) || !parseLong(v, 0, INT32_MAX, &n))
        return usageError(a + " needs a non-negative integer");
      config.maxNewTokens = (int)n;
    } else if (a == "--temperature") {
      if (!value(&v) || !parseFloat(v, &config.temperature) || config.temperature < 0)
        return usageError("--temperature needs a number >= 0");
    } else if (a == "--top-p") {
      if (!value(&v) || !parseFloat(v, &config.topP) || !(config.topP > 0) || config.topP > 1)
        return usageError("--top-p needs a number in (0, 1]");
    } else if (a == "--seed") {
      unsigned long long s = 0;
      if (!value(&v) || !parseUnsigned(v, &s))
        return usageError("--seed needs a non-negative integer");
      config.seed = s;
    } else if (a == "--ignore-eos") {
      config.ignoreEos = true;
    } else if (a == "--print-token-ids") {
      printIds = true;
    } else if (a == "--no-verify-hashes") {
      options.verifySegmentHashes = false;
    } else if (!a.empty() && a[0] == '-') {
      return usageError("unknown option '" + a + "'");
    } else if (programPath.empty()) {
      programPath = a;
    } else {
      return usageError("unexpected argument '" + a + "'");
    }
  }
  if (programPath.empty())
    return usageError("missing PROGRAM.kiln");
  if (haveText == haveTokens)
    return usageError(haveText ? "give --prompt or --prompt-tokens, not both"
                               : "missing --prompt TEXT or --prompt-tokens 1,2,3");

  Result<std::unique_ptr<LlmRunner>> loaded = LlmRunner::load(programPath, options);
  if (!loaded.ok())
    return fail(loaded.error().message());
  LlmRunner &runner = **loaded;
  const Tokenizer *tok = runner.tokenizer();

  std::vector<int32_t> prompt;
  std::string error;
  if (haveTokens) {
    if (!parseTokenList(promptTokensArg, &prompt, &error))
      return usageError(error);
  } else {
    if (!tok)
      return fail("the program carries no tokenizer (kiln.tokenizer.kind = none), so a text "
                  "prompt cannot be encoded: give token ids with --prompt-tokens 1,2,3");
    Result<std::vector<int32_t>> ids = runner.encodePrompt(promptText);
    if (!ids.ok())
      return fail("cannot encode the prompt: " + ids.error().message());
    prompt = ids.take();
  }

  // Text mode needs a tokenizer; without one the ids are the output.
  const bool textMode = !printIds && tok;
  if (!printIds && !tok)
    std::fprintf(stderr, "note: the program carries no tokenizer: printing token ids\n");
  if (textMode) {
    if (haveText) {
      writeOut(promptText);
    } else {
      // Ids that are not text (BOS) decode to nothing; a bad id is reported by generate.
      Result<std::string> shown = tok->decode(prompt);
      if (shown.ok())
        writeOut(*shown);
    }
  }
  bool first = true;
  TokenCallback onToken = [&](int32_t id, const std::string &text) {
    if (textMode) {
      writeOut(text);
    } else {
      writeOut((first ? "" : " ") + std::to_string(id));
      first = false;
    }
    return true;
  };
  GenerationStats stats;
  Result<std::vector<int32_t>> out = runner.generate(prompt, config, onToken, &stats);
  if (!out.ok()) {
    writeOut("\n");
    return fail(out.error().message());
  }
  writeOut("\n");

  const char *reason = stats.stoppedAtEos        ? "end of sequence (EOS)"
                       : stats.stoppedAtCacheEnd ? "KV cache full (--max-seq-len)"
                                                 : "max new tokens (-n)";
  if (config.maxNewTokens == 0)
    reason = "max new tokens (-n 0)";
  std::fprintf(stderr,
               "prompt tokens: %d, prefill: %s tokens/s (%.4f s)\n"
               "generated tokens: %d, decode: %s tokens/s (%.4f s)\n"
               "stop: %s\n"
               "threads: %d, kernels: %s\n",
               stats.promptTokens, perSecond(stats.promptTokens, stats.prefillSeconds).c_str(),
               stats.prefillSeconds, stats.generatedTokens,
               perSecond(stats.generatedTokens, stats.decodeSeconds).c_str(),
               stats.decodeSeconds, reason, runner.program().numThreads(),
               options.portableKernels ? "portable" : "optimized");
  if (options.profile)
    printProfile(runner.program(), stderr);
  return 0;
}

} // namespace rt
} // namespace kiln
