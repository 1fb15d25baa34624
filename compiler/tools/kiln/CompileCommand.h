//===- CompileCommand.h - `kiln compile` ----------------------------------===//
#ifndef KILN_TOOLS_KILN_COMPILECOMMAND_H
#define KILN_TOOLS_KILN_COMPILECOMMAND_H

namespace kiln {
/// `kiln compile MODEL.pt -o OUT.kiln [options]`; argv[0] is "compile".
/// Returns the process exit code: 0 on success, 1 on any error (message on
/// stderr, no output file left behind).
int compileCommand(int argc, char **argv);
} // namespace kiln

#endif // KILN_TOOLS_KILN_COMPILECOMMAND_H
