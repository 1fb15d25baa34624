// The `run` and `inspect` commands, shared by the standalone `kiln-runtime`
// binary and the main `kiln` CLI. argv[0] is the subcommand name ("run" /
// "inspect"). They print errors to stderr and return a process exit code.
#ifndef KILN_RUNTIME_TOOLS_COMMANDS_H
#define KILN_RUNTIME_TOOLS_COMMANDS_H

#include <cstdio>
#include <string>

namespace kiln {
namespace rt {

struct LoadOptions;

/// run OUT.kiln [--method NAME] --input A.npy [--input B.npy ...]
///     [--then [--method NAME] --input ...]... --output-dir DIR [--no-verify-hashes]
/// Writes DIR/output0.npy, output1.npy, ... (all or nothing). With --then, several
/// calls on one loaded program (state such as KV caches carries over); call K
/// writes DIR/stepK.output0.npy, ... Returns 0 or 1.
int kilnRunCommand(int argc, char **argv);

/// inspect OUT.kiln [--json]: methods, inputs/outputs, op counts, sizes, metadata.
int kilnInspectCommand(int argc, char **argv);

/// generate OUT.kiln (--prompt TEXT | --prompt-tokens 1,2,3) [-n N] [--temperature T]
///     [--top-p P] [--seed S] [--ignore-eos] [--print-token-ids]: streams generated
/// text (docs/llm.md §3); figures on stderr. Returns 0 or 1.
int kilnGenerateCommand(int argc, char **argv);

/// tokenize --tokenizer FILE [--kind K] (--text STR | --text-file F [--lines] |
///     --decode IDS | --decode-file F): ids or text on stdout (docs/llm.md §4).
/// Lives in the kiln_llm library. Returns 0 or 1.
int kilnTokenizeCommand(int argc, char **argv);

/// The runtime options shared by `run` and `generate` (docs/runtime-threads.md):
/// --threads N (1..256; default: physical cores), --kernels portable|optimized and
/// --profile (LoadOptions::profile; the command then calls printProfile at the end).
/// If argv[*i] is one of them, consumes it and its value (advancing *i) into
/// `options` and returns 1; returns 0 when argv[*i] is another argument and -1
/// with `*error` set on a missing or bad value.
int parseRuntimeOption(int argc, char **argv, int *i, LoadOptions *options, std::string *error);
/// Usage lines of those options (for the commands' usage texts).
#define KILN_RUNTIME_OPTIONS_USAGE                                                         \
  "--threads N uses N threads for the kernels (default: the physical cores).\n"           \
  "--kernels portable runs the portable scalar kernels only (default: optimized).\n"    \
  "--profile prints where the time went per method (by op, slowest instructions).\n"

class Program;
/// The per-instruction profile of every method that ran (Program::profile) as
/// tables on `out`: time per run by op, then the slowest instructions.
void printProfile(const Program &program, std::FILE *out);

/// Usage text of the commands.
const char *kilnRunUsage();
const char *kilnInspectUsage();
const char *kilnTokenizeUsage();
const char *kilnGenerateUsage();

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_TOOLS_COMMANDS_H
