// Builds a Kiln program file (`.kiln`, see docs/program-format.md) from a plain
// C++ description: methods, values, instructions, constant segments, states and
// metadata. Depends on flatbuffers only; no exceptions, errors are values.
//
// Constant bytes are not copied by default (addSegment borrows them until
// writeToFile returns) so that a model with gigabytes of weights is streamed to
// disk without a second copy in memory. Identical constant bytes are stored once
// (FNV-1a 64 hash, then a byte comparison), also across methods.
#ifndef KILN_SERIALIZER_PROGRAMWRITER_H
#define KILN_SERIALIZER_PROGRAMWRITER_H

#include "kiln/program_generated.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kiln {

/// The outcome of a write: an empty message means success.
struct [[nodiscard]] WriteResult {
  std::string error;

  static WriteResult success() { return {}; }
  static WriteResult failure(std::string message) {
    if (message.empty())
      message = "unknown error";
    return WriteResult{std::move(message)};
  }
  bool ok() const { return error.empty(); }
  explicit operator bool() const { return ok(); }
};

/// One named op attribute. Only the payload field that matches `kind` is written.
struct AttrSpec {
  std::string name;
  fb::AttrKind kind = fb::AttrKind::Int;
  int64_t i = 0;               // Int; Bool (0 or 1)
  double f = 0.0;              // Float
  std::vector<int64_t> ints;   // Ints
  std::vector<double> floats;  // Floats
  std::string s;               // String

  static AttrSpec makeInt(std::string name, int64_t v);
  static AttrSpec makeBool(std::string name, bool v);
  static AttrSpec makeFloat(std::string name, double v);
  static AttrSpec makeInts(std::string name, std::vector<int64_t> v);
  static AttrSpec makeFloats(std::string name, std::vector<double> v);
  static AttrSpec makeString(std::string name, std::string v);
};

/// One value of a method. `shape` holds `rank` dims (-1 = dynamic) when rank >= 0.
struct ValueSpec {
  std::string name;
  fb::DType dtype = fb::DType::Unknown;
  int32_t rank = -1;
  std::vector<int64_t> shape;
  fb::ValueKind kind = fb::ValueKind::Intermediate;
  int32_t segment = -1; // Constant: index returned by ProgramWriter::addSegment
  int32_t state = -1;   // State: index returned by ProgramWriter::addState
  /// Quantized weight (docs/program-format.md): a Constant of dtype Int8 or
  /// Int4 with shape [out, in]; `segment` holds the integers (Int4: packed two
  /// per byte) and `scalesSegment` the out * (in / quantGroupSize) scales.
  int32_t quantGroupSize = 0;
  int32_t scalesSegment = -1; // -1: not quantized
  fb::DType scalesDType = fb::DType::Unknown;
  /// Order of the integers and scales (program.fbs QuantLayout; Int4Strip16,
  /// Int8Strip16: runtime-stub/core/QuantLayout.h). Rows for non-quantized values.
  fb::QuantLayout quantLayout = fb::QuantLayout::Rows;
  /// Memory plan: offset in the method's arena (a multiple of 64), -1 = not
  /// planned. Only Intermediate/Output values with a known dtype and a static
  /// shape, fitting in MethodSpec::arenaBytes.
  int64_t arenaOffset = -1;
};

/// One kernel call. `inputs` may hold -1 for an absent optional operand.
/// Attributes may be given in any order: the writer sorts them by name.
struct InstructionSpec {
  std::string op; // without the dialect prefix, e.g. "linear"
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
  std::vector<AttrSpec> attrs;
  std::string loc; // "file.py:LINE" or empty
};

struct MethodSpec {
  std::string name;
  std::vector<ValueSpec> values;
  std::vector<int32_t> inputs;
  std::vector<int32_t> outputs;
  std::vector<InstructionSpec> instructions;
  /// Memory plan (kiln-plan-memory): arena size, lower bound and no-reuse total.
  uint64_t arenaBytes = 0;
  uint64_t arenaLowerBoundBytes = 0;
  uint64_t naiveBytes = 0;

  /// Appends `value` and returns its index.
  int32_t addValue(ValueSpec value);
};

/// A program-level mutable state (e.g. a KV cache); its shape is static.
struct StateSpec {
  std::string name;
  fb::DType dtype = fb::DType::Unknown;
  std::vector<int64_t> shape;
};

/// Collects a program and writes it atomically. Not thread-safe.
class ProgramWriter {
public:
  ProgramWriter();
  ~ProgramWriter();
  ProgramWriter(const ProgramWriter &) = delete;
  ProgramWriter &operator=(const ProgramWriter &) = delete;

  /// Adds a constant segment holding `size` bytes at `data` and returns its
  /// index. The bytes are NOT copied: they must stay valid and unchanged until
  /// writeToFile returns. Identical bytes return the index of the existing segment.
  int32_t addSegment(const void *data, size_t size);
  /// Like addSegment, but takes ownership of `bytes` (for data built on the
  /// fly, e.g. an expanded splat). Dropped if identical bytes already exist.
  int32_t addOwnedSegment(std::vector<uint8_t> bytes);
  size_t getNumSegments() const { return segments.size(); }
  /// Size of segment `index` in bytes (index must be valid).
  size_t getSegmentSize(int32_t index) const { return segments[index].size; }

  /// Appends a method and returns its index. Names must be unique (checked on write).
  int32_t addMethod(MethodSpec method);
  MethodSpec &getMethod(int32_t index) { return methods[index]; }
  size_t getNumMethods() const { return methods.size(); }

  /// Appends a state declaration and returns its index.
  int32_t addState(StateSpec state);

  /// Sets metadata `key` to `value`, replacing an earlier value of the same key
  /// (keys keep the order in which they were first set).
  void setMetadata(const std::string &key, std::string value);

  /// Adds a named byte blob (Program.assets): the bytes are copied into a
  /// deduplicated segment. Names must be unique (checked on write).
  void addAsset(const std::string &name, const void *data, size_t size);

  /// Bytes of one element of `dtype`, or 0 for Unknown / an invalid enum value.
  static size_t getDTypeSize(fb::DType dtype);

  /// Validates the program (indices in range, unique names, segment sizes
  /// matching constant shapes when static) and writes it to `path`:
  /// `path.tmp.<pid>` first, renamed over `path` only on success; on failure the
  /// temporary file is removed and `path` is left untouched. Same inputs always
  /// give the same bytes.
  WriteResult writeToFile(const std::string &path) const;

private:
  struct Segment {
    const uint8_t *data;
    uint64_t size;
    uint64_t hash;
  };

  int32_t findOrAddSegment(const uint8_t *data, size_t size, uint64_t hash,
                           bool *added);
  WriteResult validate() const;

  std::vector<Segment> segments;
  /// Content hash -> indices of segments with that hash.
  std::unordered_map<uint64_t, std::vector<int32_t>> segmentsByHash;
  /// Storage for addOwnedSegment; each buffer's address is stable.
  std::vector<std::unique_ptr<std::vector<uint8_t>>> ownedBuffers;
  std::vector<MethodSpec> methods;
  std::vector<StateSpec> states;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<std::pair<std::string, int32_t>> assets; // name, segment
};

} // namespace kiln

#endif // KILN_SERIALIZER_PROGRAMWRITER_H
