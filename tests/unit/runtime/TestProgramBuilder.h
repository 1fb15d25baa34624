// Builds small program files in memory with the flatbuffers builder directly
// (independent of ProgramWriter), for runtime tests.
#ifndef KILN_TESTS_UNIT_RUNTIME_TESTPROGRAMBUILDER_H
#define KILN_TESTS_UNIT_RUNTIME_TESTPROGRAMBUILDER_H

#include "runtime-stub/core/Program.h"
#include "runtime-stub/core/Tensor.h"

#include <string>
#include <vector>

namespace kiln {
namespace test {

struct TAttr {
  std::string name;
  fb::AttrKind kind = fb::AttrKind::Int;
  int64_t i = 0;
  double f = 0;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::string s;
};
TAttr attrInt(const std::string &n, int64_t v);
TAttr attrBool(const std::string &n, bool v);
TAttr attrFloat(const std::string &n, double v);
TAttr attrInts(const std::string &n, std::vector<int64_t> v);
TAttr attrStr(const std::string &n, const std::string &v);

struct TValue {
  std::string name;
  fb::DType dtype = fb::DType::Unknown;
  int rank = -1;
  std::vector<int64_t> shape;
  fb::ValueKind kind = fb::ValueKind::Intermediate;
  int segment = -1;
  int state = -1;
  // Quantized weight fields (docs/program-format.md).
  int quantGroupSize = 0;
  int scalesSegment = -1;
  fb::DType scalesDType = fb::DType::Unknown;
  int64_t arenaOffset = -1; // memory plan; -1 = not planned
  fb::QuantLayout quantLayout = fb::QuantLayout::Rows;
};

struct TInstr {
  std::string op;
  std::vector<int> inputs, outputs;
  std::vector<TAttr> attrs;
  std::string loc = "test.py:1";
};

struct TMethod {
  std::string name = "forward";
  std::vector<TValue> values;
  std::vector<int> inputs, outputs;
  std::vector<TInstr> instrs;
  // Memory plan sizes (Method.arena_bytes, ...).
  uint64_t arenaBytes = 0, arenaLowerBoundBytes = 0, naiveBytes = 0;
  int add(TValue v) {
    values.push_back(std::move(v));
    return (int)values.size() - 1;
  }
};

struct TState {
  std::string name;
  fb::DType dtype;
  std::vector<int64_t> shape;
};

struct TProgram {
  std::vector<TMethod> methods;
  std::vector<std::vector<uint8_t>> segments;
  std::vector<TState> states;
  std::vector<std::pair<std::string, std::string>> metadata;
  /// Header format_version and Program.version (older versions: reader tests).
  uint32_t version = kProgramFormatVersion;
  /// The complete file: header, flatbuffer, 64-aligned segments with hashes.
  std::vector<uint8_t> build() const;
};

/// Runs one op on `inputs` (method inputs of unknown dtype/rank) and returns
/// its `numOutputs` results. An input tensor that is undefined is passed as an
/// absent operand (-1).
rt::Result<std::vector<rt::Tensor>> runOp(const std::string &op,
                                          const std::vector<rt::Tensor> &inputs,
                                          const std::vector<TAttr> &attrs, int numOutputs = 1);

/// Tensor literals (abort the test binary on failure; only for valid literals).
rt::Tensor f32(rt::Shape shape, std::vector<float> v);
rt::Tensor i64(rt::Shape shape, std::vector<int64_t> v);
rt::Tensor i1(rt::Shape shape, std::vector<bool> v);
rt::Tensor i32(rt::Shape shape, std::vector<int32_t> v);

/// Runs one op that must succeed (else a gtest failure names the op and the
/// error, and the result is undefined) and returns its first result.
rt::Tensor runOne(const char *op, std::vector<rt::Tensor> inputs, std::vector<TAttr> attrs);
/// An f32 tensor of deterministic values in [-2, 2) (WriterTestUtil.h randomFloats).
rt::Tensor randomF32(rt::Shape shape, uint32_t seed);

std::vector<float> floatsOf(const rt::Tensor &t);
std::vector<int64_t> int64sOf(const rt::Tensor &t);
std::vector<int> boolsOf(const rt::Tensor &t);

} // namespace test
} // namespace kiln

#endif
