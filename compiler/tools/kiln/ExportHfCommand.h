//===- ExportHfCommand.h - `kiln export-hf` -------------------------------===//
#ifndef KILN_TOOLS_KILN_EXPORTHFCOMMAND_H
#define KILN_TOOLS_KILN_EXPORTHFCOMMAND_H

namespace kiln {
/// `kiln export-hf CHECKPOINT_DIR -o OUT.kiln [options]`; argv[0] is "export-hf".
/// Runs the Python exporter (`python3 -m kiln.export_hf`, python/kiln/export_hf.py)
/// in place of this process, so its exit code is the command's. Returns 1 only
/// when the interpreter cannot be started.
int exportHfCommand(int argc, char **argv);
} // namespace kiln

#endif // KILN_TOOLS_KILN_EXPORTHFCOMMAND_H
