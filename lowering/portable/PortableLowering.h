// The portable backend: lowers a module of `kiln` ops to a Kiln program file
// whose instructions are kernel calls over value indices, interpreted by the
// runtime. See docs/program-format.md and docs/dialect.md.
#ifndef KILN_LOWERING_PORTABLE_PORTABLELOWERING_H
#define KILN_LOWERING_PORTABLE_PORTABLELOWERING_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LogicalResult.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kiln {

struct ProgramOptions {
  /// Extra key/value pairs stored in Program.metadata after "producer"
  /// (a repeated key replaces the earlier value).
  std::vector<std::pair<std::string, std::string>> metadata;
  /// Named byte blobs stored in Program.assets (as deduplicated segments).
  std::vector<std::pair<std::string, std::vector<uint8_t>>> assets;
};

/// Lowers every public func.func in `module` (containing only kiln ops and
/// func.return) to a program method and writes the program atomically to
/// `outputPath`. Emits diagnostics (at the op's location) and returns failure on
/// anything it cannot lower: a non-kiln op, a non-tensor type, an element type
/// with no program DType, an attribute with no program attribute kind.
mlir::LogicalResult writePortableProgram(mlir::ModuleOp module, llvm::StringRef outputPath,
                                         const ProgramOptions &options);

/// The "file:line" of the first file location found in `loc` (looking through
/// fused, name and call-site locations), or "" if there is none.
std::string getSourceLineString(mlir::Location loc);

} // namespace kiln

#endif // KILN_LOWERING_PORTABLE_PORTABLELOWERING_H
