// The `run` and `inspect` commands, shared by the standalone `kiln-runtime`
// binary and the main `kiln` CLI. argv[0] is the subcommand name ("run" /
// "inspect"). They print errors to stderr and return a process exit code.
#ifndef KILN_RUNTIME_TOOLS_COMMANDS_H
#define KILN_RUNTIME_TOOLS_COMMANDS_H

namespace kiln {
namespace rt {

/// run OUT.kiln [--method NAME] --input A.npy [--input B.npy ...] --output-dir DIR
///     [--no-verify-hashes]
/// Writes DIR/output0.npy, output1.npy, ... (all or nothing). Returns 0 or 1.
int kilnRunCommand(int argc, char **argv);

/// inspect OUT.kiln [--json]: methods, inputs/outputs, op counts, sizes, metadata.
int kilnInspectCommand(int argc, char **argv);

/// Usage text of both commands.
const char *kilnRunUsage();
const char *kilnInspectUsage();

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_TOOLS_COMMANDS_H
