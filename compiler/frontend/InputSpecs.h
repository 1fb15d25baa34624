//===- InputSpecs.h - declared shapes and dtypes of method inputs -*- C++ -*-===//
//
// A bare traced TorchScript archive carries no input shapes or dtypes. Users
// who know them say so on the command line (`--input-shape [METHOD:]DIMS[:DTYPE]`)
// or through the archive extra file `kiln/input_specs.json` written by the
// Python helper `kiln.torchscript.save`. This header parses both forms; it
// does not include LibTorch.
//
//===----------------------------------------------------------------------===//

#ifndef KILN_COMPILER_FRONTEND_INPUTSPECS_H
#define KILN_COMPILER_FRONTEND_INPUTSPECS_H

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln {

/// The archive extra file holding input specs (in the zip:
/// `<archive>/extra/kiln/input_specs.json`).
inline constexpr const char *kInputSpecsExtraFile = "kiln/input_specs.json";

/// The dtype names input specs accept (docs/dialect.md element types).
inline constexpr const char *kInputSpecDtypes = "f32, i64, i1, i32, f16, bf16";

/// The shape and dtype of one tensor input.
struct TensorInputSpec {
  /// Static dims; empty for a 0-d tensor.
  std::vector<int64_t> shape;
  /// One of kInputSpecDtypes.
  std::string dtype = "f32";
};

/// One `--input-shape` argument. `method` is empty when the argument names
/// none (it then applies to `forward`, or to the only method compiled).
struct InputShapeArgument {
  std::string method;
  TensorInputSpec spec;
};

/// Specs by method name, each list in the order of the method's tensor inputs.
using MethodInputSpecs = std::map<std::string, std::vector<TensorInputSpec>>;

/// Whether `dtype` is one of kInputSpecDtypes.
bool isInputSpecDtype(llvm::StringRef dtype);

/// Formats a spec the way `--input-shape` takes it, e.g. `1x16:i64`,
/// `scalar:f32`.
std::string formatInputSpec(const TensorInputSpec &spec);

/// Parses `[METHOD:]DIMS[:DTYPE]`: DIMS is `AxBx...` of non-negative integers
/// or `scalar` (0-d); DTYPE defaults to f32. On failure returns false and
/// sets `error` to a sentence saying what is wrong.
bool parseInputShapeArgument(llvm::StringRef text, InputShapeArgument &result,
                             std::string &error);

/// Parses the JSON of kInputSpecsExtraFile:
/// `{"forward": [{"shape": [1, 16], "dtype": "i64"}, ...], ...}` (`dtype`
/// optional, f32 by default). On failure returns false and sets `error`.
bool parseInputSpecsJson(llvm::StringRef json, MethodInputSpecs &result,
                         std::string &error);

} // namespace kiln

#endif // KILN_COMPILER_FRONTEND_INPUTSPECS_H
