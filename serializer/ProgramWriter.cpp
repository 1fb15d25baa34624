// Writes a Kiln program file: the 64-byte header, the flatbuffer, then the
// constant segments, each 64-byte aligned. See docs/program-format.md.
#include "serializer/ProgramWriter.h"

#include "serializer/ProgramFormat.h"
#include "runtime-stub/core/QuantLayout.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <unistd.h>

namespace kiln {

//===----------------------------------------------------------------------===//
// Spec helpers
//===----------------------------------------------------------------------===//

AttrSpec AttrSpec::makeInt(std::string name, int64_t v) {
  AttrSpec a;
  a.name = std::move(name);
  a.kind = fb::AttrKind::Int;
  a.i = v;
  return a;
}

AttrSpec AttrSpec::makeBool(std::string name, bool v) {
  AttrSpec a;
  a.name = std::move(name);
  a.kind = fb::AttrKind::Bool;
  a.i = v ? 1 : 0;
  return a;
}

AttrSpec AttrSpec::makeFloat(std::string name, double v) {
  AttrSpec a;
  a.name = std::move(name);
  a.kind = fb::AttrKind::Float;
  a.f = v;
  return a;
}

AttrSpec AttrSpec::makeInts(std::string name, std::vector<int64_t> v) {
  AttrSpec a;
  a.name = std::move(name);
  a.kind = fb::AttrKind::Ints;
  a.ints = std::move(v);
  return a;
}

AttrSpec AttrSpec::makeFloats(std::string name, std::vector<double> v) {
  AttrSpec a;
  a.name = std::move(name);
  a.kind = fb::AttrKind::Floats;
  a.floats = std::move(v);
  return a;
}

AttrSpec AttrSpec::makeString(std::string name, std::string v) {
  AttrSpec a;
  a.name = std::move(name);
  a.kind = fb::AttrKind::String;
  a.s = std::move(v);
  return a;
}

int32_t MethodSpec::addValue(ValueSpec value) {
  values.push_back(std::move(value));
  return static_cast<int32_t>(values.size() - 1);
}

//===----------------------------------------------------------------------===//
// ProgramWriter: collecting
//===----------------------------------------------------------------------===//

ProgramWriter::ProgramWriter() = default;
ProgramWriter::~ProgramWriter() = default;

size_t ProgramWriter::getDTypeSize(fb::DType dtype) {
  switch (dtype) {
  case fb::DType::Float32:
  case fb::DType::Int32:
    return 4;
  case fb::DType::Int64:
    return 8;
  case fb::DType::Bool:
  case fb::DType::Int8:
  case fb::DType::UInt8:
    return 1;
  case fb::DType::Float16:
  case fb::DType::BFloat16:
    return 2;
  case fb::DType::Unknown:
  case fb::DType::Int4: // packed, two per byte: quantized constants only
    return 0;
  }
  return 0;
}

int32_t ProgramWriter::findOrAddSegment(const uint8_t *data, size_t size,
                                        uint64_t hash, bool *added) {
  std::vector<int32_t> &candidates = segmentsByHash[hash];
  for (int32_t index : candidates) {
    const Segment &seg = segments[index];
    if (seg.size == size && (size == 0 || std::memcmp(seg.data, data, size) == 0)) {
      *added = false;
      return index;
    }
  }
  segments.push_back(Segment{data, static_cast<uint64_t>(size), hash});
  int32_t index = static_cast<int32_t>(segments.size() - 1);
  candidates.push_back(index);
  *added = true;
  return index;
}

int32_t ProgramWriter::addSegment(const void *data, size_t size) {
  const uint8_t *bytes = static_cast<const uint8_t *>(data);
  bool added = false;
  return findOrAddSegment(bytes, size, fnv1a64(bytes, size), &added);
}

int32_t ProgramWriter::addOwnedSegment(std::vector<uint8_t> bytes) {
  auto buffer = std::make_unique<std::vector<uint8_t>>(std::move(bytes));
  bool added = false;
  int32_t index = findOrAddSegment(buffer->data(), buffer->size(),
                                   fnv1a64(buffer->data(), buffer->size()), &added);
  if (added)
    ownedBuffers.push_back(std::move(buffer));
  return index;
}

int32_t ProgramWriter::addMethod(MethodSpec method) {
  methods.push_back(std::move(method));
  return static_cast<int32_t>(methods.size() - 1);
}

int32_t ProgramWriter::addState(StateSpec state) {
  states.push_back(std::move(state));
  return static_cast<int32_t>(states.size() - 1);
}

void ProgramWriter::addAsset(const std::string &name, const void *data, size_t size) {
  const uint8_t *bytes = static_cast<const uint8_t *>(data);
  assets.emplace_back(name, addOwnedSegment(std::vector<uint8_t>(bytes, bytes + size)));
}

void ProgramWriter::setMetadata(const std::string &key, std::string value) {
  for (auto &entry : metadata) {
    if (entry.first == key) {
      entry.second = std::move(value);
      return;
    }
  }
  metadata.emplace_back(key, std::move(value));
}

//===----------------------------------------------------------------------===//
// ProgramWriter: validation
//===----------------------------------------------------------------------===//

namespace {

bool isValidDType(fb::DType dtype) {
  auto v = static_cast<int>(dtype);
  return v >= static_cast<int>(fb::DType::MIN) && v <= static_cast<int>(fb::DType::MAX);
}

bool isValidKind(fb::ValueKind kind) {
  auto v = static_cast<int>(kind);
  return v >= static_cast<int>(fb::ValueKind::MIN) &&
         v <= static_cast<int>(fb::ValueKind::MAX);
}

bool isValidAttrKind(fb::AttrKind kind) {
  auto v = static_cast<int>(kind);
  return v >= static_cast<int>(fb::AttrKind::MIN) &&
         v <= static_cast<int>(fb::AttrKind::MAX);
}

/// Multiplies the dims of `shape` into `*count`; false on overflow.
bool getElementCount(const std::vector<int64_t> &shape, uint64_t *count) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    uint64_t ud = static_cast<uint64_t>(d);
    if (ud != 0 && n > std::numeric_limits<uint64_t>::max() / ud)
      return false;
    n *= ud;
  }
  *count = n;
  return true;
}

std::string where(const MethodSpec &m) { return "method '" + m.name + "'"; }

/// The fields of a quantized constant, before its segment sizes are checked.
WriteResult validateQuantizedConstant(const ValueSpec &v, size_t numSegments) {
  if (v.kind != fb::ValueKind::Constant)
    return WriteResult::failure("quantization fields set on a value that is not a constant");
  if (v.dtype != fb::DType::Int8 && v.dtype != fb::DType::Int4)
    return WriteResult::failure("a quantized constant must have dtype i8 or i4");
  if (v.rank != 2 || v.shape.size() != 2 || v.shape[0] < 0 || v.shape[1] < 0)
    return WriteResult::failure("a quantized constant must have a static 2-d shape [out, in]");
  if (v.shape[0] > (int64_t(1) << 24) || v.shape[1] > (int64_t(1) << 24))
    return WriteResult::failure("quantized constant dims too large");
  if (v.quantGroupSize <= 0 || v.shape[1] % v.quantGroupSize != 0 ||
      (v.dtype == fb::DType::Int4 && v.quantGroupSize % 2 != 0))
    return WriteResult::failure("quant group size " + std::to_string(v.quantGroupSize) +
                                " does not divide the in-features " +
                                std::to_string(v.shape[1]) +
                                (v.dtype == fb::DType::Int4 ? " into even groups" : ""));
  if (v.scalesDType != fb::DType::Float16 && v.scalesDType != fb::DType::Float32)
    return WriteResult::failure("quantization scales must be f16 or f32");
  if (v.quantLayout == fb::QuantLayout::Int4Strip16 ||
      v.quantLayout == fb::QuantLayout::Int8Strip16) {
    if (const char *problem = strip16::layoutProblem(
            (int)v.quantLayout, v.dtype == fb::DType::Int4, v.dtype == fb::DType::Int8,
            v.shape[0], v.shape[1], v.quantGroupSize))
      return WriteResult::failure(std::string("quant layout ") + problem);
  } else if (v.quantLayout != fb::QuantLayout::Rows) {
    return WriteResult::failure("unknown quant layout");
  }
  if (v.scalesSegment < 0 || static_cast<size_t>(v.scalesSegment) >= numSegments)
    return WriteResult::failure("scales segment " + std::to_string(v.scalesSegment) +
                                " out of range (" + std::to_string(numSegments) +
                                " segments)");
  return WriteResult::success();
}

std::string where(const MethodSpec &m, size_t valueIndex) {
  return where(m) + " value " + std::to_string(valueIndex) +
         (m.values[valueIndex].name.empty() ? "" : " ('" + m.values[valueIndex].name + "')");
}

/// The attributes of `inst` sorted by name (stable, so equal inputs give equal output).
std::vector<const AttrSpec *> sortedAttrs(const InstructionSpec &inst) {
  std::vector<const AttrSpec *> sorted;
  sorted.reserve(inst.attrs.size());
  for (const AttrSpec &a : inst.attrs)
    sorted.push_back(&a);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const AttrSpec *a, const AttrSpec *b) { return a->name < b->name; });
  return sorted;
}

} // namespace

WriteResult ProgramWriter::validate() const {
  if (methods.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()) ||
      segments.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return WriteResult::failure("too many methods or segments");

  std::set<std::string> methodNames;
  for (const MethodSpec &m : methods) {
    if (m.name.empty())
      return WriteResult::failure("a method has an empty name");
    if (!methodNames.insert(m.name).second)
      return WriteResult::failure("duplicate method name '" + m.name + "'");
    const int64_t numValues = static_cast<int64_t>(m.values.size());
    if (numValues > std::numeric_limits<int32_t>::max())
      return WriteResult::failure(where(m) + " has too many values");

    for (size_t vi = 0; vi < m.values.size(); ++vi) {
      const ValueSpec &v = m.values[vi];
      if (!isValidDType(v.dtype))
        return WriteResult::failure(where(m, vi) + ": invalid dtype " +
                                    std::to_string(static_cast<int>(v.dtype)));
      if (!isValidKind(v.kind))
        return WriteResult::failure(where(m, vi) + ": invalid kind " +
                                    std::to_string(static_cast<int>(v.kind)));
      if (v.rank < -1)
        return WriteResult::failure(where(m, vi) + ": rank " + std::to_string(v.rank) +
                                    " (must be >= -1)");
      if (v.rank == -1 && !v.shape.empty())
        return WriteResult::failure(where(m, vi) + ": unranked value with a shape");
      if (v.rank >= 0 && v.shape.size() != static_cast<size_t>(v.rank))
        return WriteResult::failure(where(m, vi) + ": rank " + std::to_string(v.rank) +
                                    " but " + std::to_string(v.shape.size()) + " dims");
      bool staticShape = v.rank >= 0;
      for (int64_t d : v.shape) {
        if (d < -1)
          return WriteResult::failure(where(m, vi) + ": dim " + std::to_string(d) +
                                      " (must be >= 0, or -1 for dynamic)");
        if (d == -1)
          staticShape = false;
      }

      bool quantized = v.scalesSegment != -1 || v.quantGroupSize != 0 ||
                       v.scalesDType != fb::DType::Unknown ||
                       v.quantLayout != fb::QuantLayout::Rows;
      if (quantized) {
        WriteResult q = validateQuantizedConstant(v, segments.size());
        if (!q.ok())
          return WriteResult::failure(where(m, vi) + ": " + q.error);
      } else if (v.dtype == fb::DType::Int4) {
        return WriteResult::failure(where(m, vi) +
                                    ": dtype i4 is only valid for a quantized constant");
      }
      if (v.kind == fb::ValueKind::Constant) {
        if (v.segment < 0 || static_cast<size_t>(v.segment) >= segments.size())
          return WriteResult::failure(where(m, vi) + ": constant segment " +
                                      std::to_string(v.segment) + " out of range (" +
                                      std::to_string(segments.size()) + " segments)");
        if (quantized) {
          // Segment sizes of a quantized constant.
          uint64_t out = static_cast<uint64_t>(v.shape[0]);
          uint64_t in = static_cast<uint64_t>(v.shape[1]);
          uint64_t dataBytes = v.dtype == fb::DType::Int4 ? out * in / 2 : out * in;
          uint64_t scaleBytes = out * (in / static_cast<uint64_t>(v.quantGroupSize)) *
                                getDTypeSize(v.scalesDType);
          if (segments[v.segment].size != dataBytes ||
              segments[v.scalesSegment].size != scaleBytes)
            return WriteResult::failure(
                where(m, vi) + ": quantized constant needs " + std::to_string(dataBytes) +
                " data bytes and " + std::to_string(scaleBytes) + " scale bytes, segments hold " +
                std::to_string(segments[v.segment].size) + " and " +
                std::to_string(segments[v.scalesSegment].size));
          if (v.state != -1)
            return WriteResult::failure(where(m, vi) + ": state set on a non-state value");
          continue;
        }
        size_t elemSize = getDTypeSize(v.dtype);
        if (!staticShape || elemSize == 0)
          return WriteResult::failure(where(m, vi) +
                                      ": a constant needs a known dtype and a static shape");
        uint64_t count = 0;
        if (!getElementCount(v.shape, &count) ||
            count > std::numeric_limits<uint64_t>::max() / elemSize)
          return WriteResult::failure(where(m, vi) + ": constant shape overflows");
        if (count * elemSize != segments[v.segment].size)
          return WriteResult::failure(
              where(m, vi) + ": constant needs " + std::to_string(count * elemSize) +
              " bytes but segment " + std::to_string(v.segment) + " holds " +
              std::to_string(segments[v.segment].size));
      } else if (v.segment != -1) {
        return WriteResult::failure(where(m, vi) + ": segment set on a non-constant value");
      }

      if (v.kind == fb::ValueKind::State) {
        if (v.state < 0 || static_cast<size_t>(v.state) >= states.size())
          return WriteResult::failure(where(m, vi) + ": state " + std::to_string(v.state) +
                                      " out of range (" + std::to_string(states.size()) +
                                      " states)");
      } else if (v.state != -1) {
        return WriteResult::failure(where(m, vi) + ": state set on a non-state value");
      }

      // Memory plan: the reader's rules (aligned, inside the arena, planned
      // values are intermediates/outputs of known dtype and static shape).
      if (v.arenaOffset != -1) {
        size_t elemSize = getDTypeSize(v.dtype);
        uint64_t count = 0;
        if (v.kind != fb::ValueKind::Intermediate && v.kind != fb::ValueKind::Output)
          return WriteResult::failure(where(m, vi) +
                                      ": arena offset set on a value that is not an "
                                      "intermediate or output");
        if (!staticShape || elemSize == 0)
          return WriteResult::failure(where(m, vi) +
                                      ": a planned value needs a known dtype and a static shape");
        if (v.arenaOffset < 0 || v.arenaOffset % 64 != 0)
          return WriteResult::failure(where(m, vi) + ": arena offset " +
                                      std::to_string(v.arenaOffset) +
                                      " is not a non-negative multiple of 64");
        if (!getElementCount(v.shape, &count) ||
            count > std::numeric_limits<uint64_t>::max() / elemSize ||
            count * elemSize > m.arenaBytes ||
            static_cast<uint64_t>(v.arenaOffset) > m.arenaBytes - count * elemSize)
          return WriteResult::failure(where(m, vi) + ": planned at offset " +
                                      std::to_string(v.arenaOffset) +
                                      ", it does not fit in the arena of " +
                                      std::to_string(m.arenaBytes) + " bytes");
      }
    }

    auto checkList = [&](const std::vector<int32_t> &list, const char *what) {
      for (int32_t idx : list)
        if (idx < 0 || idx >= numValues)
          return WriteResult::failure(where(m) + ": " + what + " index " +
                                      std::to_string(idx) + " out of range (" +
                                      std::to_string(numValues) + " values)");
      return WriteResult::success();
    };
    if (WriteResult r = checkList(m.inputs, "input"); !r.ok())
      return r;
    if (WriteResult r = checkList(m.outputs, "output"); !r.ok())
      return r;

    // Data flow, as the reader checks it: each value has contents before it is
    // read, and only state values are written more than once.
    std::vector<uint8_t> defined(m.values.size(), 0);
    for (size_t vi = 0; vi < m.values.size(); ++vi)
      defined[vi] = m.values[vi].kind == fb::ValueKind::Constant ||
                    m.values[vi].kind == fb::ValueKind::State;
    for (int32_t idx : m.inputs) {
      if (m.values[idx].kind != fb::ValueKind::Input)
        return WriteResult::failure(where(m, idx) + " is a method input but not of kind Input");
      if (defined[idx])
        return WriteResult::failure(where(m, idx) + " is listed twice as a method input");
      defined[idx] = 1;
    }

    for (size_t ii = 0; ii < m.instructions.size(); ++ii) {
      const InstructionSpec &inst = m.instructions[ii];
      std::string at = where(m) + " instruction " + std::to_string(ii) + " ('" + inst.op + "')";
      if (inst.op.empty())
        return WriteResult::failure(at + ": empty op name");
      for (int32_t idx : inst.inputs)
        if (idx < -1 || idx >= numValues)
          return WriteResult::failure(at + ": input index " + std::to_string(idx) +
                                      " out of range (" + std::to_string(numValues) +
                                      " values; -1 = absent)");
      for (int32_t idx : inst.outputs)
        if (idx < 0 || idx >= numValues)
          return WriteResult::failure(at + ": output index " + std::to_string(idx) +
                                      " out of range (" + std::to_string(numValues) +
                                      " values)");
      for (int32_t idx : inst.inputs)
        if (idx >= 0 && !defined[idx])
          return WriteResult::failure(at + ": reads value " + std::to_string(idx) +
                                      " before it is produced");
      for (int32_t idx : inst.outputs) {
        fb::ValueKind kind = m.values[idx].kind;
        if (kind == fb::ValueKind::Constant || kind == fb::ValueKind::Input)
          return WriteResult::failure(at + ": writes value " + std::to_string(idx) +
                                      ", which is a " +
                                      (kind == fb::ValueKind::Constant ? "constant"
                                                                       : "method input"));
        if (kind != fb::ValueKind::State && defined[idx])
          return WriteResult::failure(at + ": value " + std::to_string(idx) +
                                      " is produced twice");
        defined[idx] = 1;
      }
      std::vector<const AttrSpec *> attrs = sortedAttrs(inst);
      for (size_t ai = 0; ai < attrs.size(); ++ai) {
        if (attrs[ai]->name.empty())
          return WriteResult::failure(at + ": attribute with an empty name");
        if (!isValidAttrKind(attrs[ai]->kind))
          return WriteResult::failure(at + ": attribute '" + attrs[ai]->name +
                                      "' has an invalid kind");
        if (ai > 0 && attrs[ai]->name == attrs[ai - 1]->name)
          return WriteResult::failure(at + ": duplicate attribute '" + attrs[ai]->name + "'");
      }
    }
    for (size_t oi = 0; oi < m.outputs.size(); ++oi)
      if (!defined[m.outputs[oi]])
        return WriteResult::failure(where(m) + ": output " + std::to_string(oi) + " (value " +
                                    std::to_string(m.outputs[oi]) + ") is never produced");
  }

  std::set<std::string> stateNames;
  for (const StateSpec &s : states) {
    if (s.name.empty())
      return WriteResult::failure("a state has an empty name");
    if (!stateNames.insert(s.name).second)
      return WriteResult::failure("duplicate state name '" + s.name + "'");
    if (!isValidDType(s.dtype) || s.dtype == fb::DType::Unknown)
      return WriteResult::failure("state '" + s.name + "' needs a known dtype");
    if (s.dtype == fb::DType::Int4)
      return WriteResult::failure("state '" + s.name + "' cannot have dtype i4");
    for (int64_t d : s.shape)
      if (d < 0)
        return WriteResult::failure("state '" + s.name + "' has a non-static dim " +
                                    std::to_string(d));
  }
  for (const auto &kv : metadata)
    if (kv.first.empty())
      return WriteResult::failure("metadata with an empty key");
  std::set<std::string> assetNames;
  for (const auto &asset : assets) {
    if (asset.first.empty())
      return WriteResult::failure("an asset has an empty name");
    if (!assetNames.insert(asset.first).second)
      return WriteResult::failure("duplicate asset name '" + asset.first + "'");
    if (asset.second < 0 || static_cast<size_t>(asset.second) >= segments.size())
      return WriteResult::failure("asset '" + asset.first + "': segment " +
                                  std::to_string(asset.second) + " out of range");
  }
  return WriteResult::success();
}

//===----------------------------------------------------------------------===//
// ProgramWriter: writing
//===----------------------------------------------------------------------===//

namespace {

void storeLE32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}

void storeLE64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}

/// The header as little-endian bytes, whatever the host byte order.
void encodeHeader(const FileHeader &h, uint8_t out[kProgramHeaderSize]) {
  std::memset(out, 0, kProgramHeaderSize);
  std::memcpy(out + offsetof(FileHeader, magic), h.magic, sizeof(h.magic));
  storeLE32(out + offsetof(FileHeader, format_version), h.format_version);
  storeLE32(out + offsetof(FileHeader, header_size), h.header_size);
  storeLE64(out + offsetof(FileHeader, flatbuffer_offset), h.flatbuffer_offset);
  storeLE64(out + offsetof(FileHeader, flatbuffer_size), h.flatbuffer_size);
  storeLE64(out + offsetof(FileHeader, segments_offset), h.segments_offset);
  storeLE64(out + offsetof(FileHeader, segments_size), h.segments_size);
  storeLE64(out + offsetof(FileHeader, file_size), h.file_size);
  storeLE64(out + offsetof(FileHeader, reserved), h.reserved);
}

/// A file descriptor that writes sequentially, tracks its position, and
/// remembers the first error.
class SequentialFile {
public:
  explicit SequentialFile(int fd) : fd(fd) {}

  bool write(const void *data, uint64_t size) {
    const uint8_t *p = static_cast<const uint8_t *>(data);
    while (size > 0) {
      // Linux writes at most ~2 GiB per call; keep chunks well below that.
      size_t chunk = static_cast<size_t>(std::min<uint64_t>(size, uint64_t(1) << 30));
      ssize_t n = ::write(fd, p, chunk);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        error = std::strerror(errno);
        return false;
      }
      if (n == 0) {
        error = "write returned 0 bytes";
        return false;
      }
      p += n;
      size -= static_cast<uint64_t>(n);
      position += static_cast<uint64_t>(n);
    }
    return true;
  }

  /// Writes zero bytes up to absolute offset `target` (>= position).
  bool padTo(uint64_t target) {
    static const uint8_t zeros[kSegmentAlignment] = {};
    while (position < target) {
      uint64_t n = std::min<uint64_t>(target - position, sizeof(zeros));
      if (!write(zeros, n))
        return false;
    }
    return true;
  }

  uint64_t position = 0;
  std::string error;

private:
  int fd;
};

} // namespace

WriteResult ProgramWriter::writeToFile(const std::string &path) const {
  if (path.empty())
    return WriteResult::failure("empty output path");
  if (WriteResult r = validate(); !r.ok())
    return WriteResult::failure("invalid program: " + r.error);

  // Segment offsets, relative to the segment area, each a multiple of 64.
  std::vector<uint64_t> segmentOffsets(segments.size());
  uint64_t segmentsSize = 0;
  const uint64_t maxSize = std::numeric_limits<uint64_t>::max() / 2;
  for (size_t i = 0; i < segments.size(); ++i) {
    uint64_t offset = alignToSegment(segmentsSize);
    if (segments[i].size > maxSize - offset)
      return WriteResult::failure("constant segments exceed the maximum file size");
    segmentOffsets[i] = offset;
    segmentsSize = offset + segments[i].size;
  }

  flatbuffers::FlatBufferBuilder fbb(1 << 16);
  std::vector<flatbuffers::Offset<fb::Method>> fbMethods;
  for (const MethodSpec &m : methods) {
    std::vector<flatbuffers::Offset<fb::Value>> fbValues;
    fbValues.reserve(m.values.size());
    for (const ValueSpec &v : m.values) {
      auto name = fbb.CreateString(v.name);
      flatbuffers::Offset<flatbuffers::Vector<int64_t>> shape = 0;
      if (v.rank >= 0)
        shape = fbb.CreateVector(v.shape);
      fbValues.push_back(
          fb::CreateValue(fbb, name, v.dtype, v.rank, shape, v.kind, v.segment, v.state,
                          v.quantGroupSize, v.scalesSegment, v.scalesDType, v.arenaOffset,
                          v.quantLayout));
    }
    auto values = fbb.CreateVector(fbValues);

    std::vector<flatbuffers::Offset<fb::Instruction>> fbInsts;
    fbInsts.reserve(m.instructions.size());
    for (const InstructionSpec &inst : m.instructions) {
      std::vector<flatbuffers::Offset<fb::Attribute>> fbAttrs;
      for (const AttrSpec *a : sortedAttrs(inst)) {
        auto name = fbb.CreateString(a->name);
        int64_t i = 0;
        double f = 0.0;
        flatbuffers::Offset<flatbuffers::Vector<int64_t>> ints = 0;
        flatbuffers::Offset<flatbuffers::Vector<double>> floats = 0;
        flatbuffers::Offset<flatbuffers::String> s = 0;
        switch (a->kind) {
        case fb::AttrKind::Int:
          i = a->i;
          break;
        case fb::AttrKind::Bool:
          i = a->i != 0 ? 1 : 0;
          break;
        case fb::AttrKind::Float:
          f = a->f;
          break;
        case fb::AttrKind::Ints:
          ints = fbb.CreateVector(a->ints);
          break;
        case fb::AttrKind::Floats:
          floats = fbb.CreateVector(a->floats);
          break;
        case fb::AttrKind::String:
          s = fbb.CreateString(a->s);
          break;
        }
        fbAttrs.push_back(fb::CreateAttribute(fbb, name, a->kind, i, f, ints, floats, s));
      }
      auto op = fbb.CreateString(inst.op);
      auto inputs = fbb.CreateVector(inst.inputs);
      auto outputs = fbb.CreateVector(inst.outputs);
      auto attrs = fbb.CreateVector(fbAttrs);
      auto loc = fbb.CreateString(inst.loc);
      fbInsts.push_back(fb::CreateInstruction(fbb, op, inputs, outputs, attrs, loc));
    }
    auto instructions = fbb.CreateVector(fbInsts);
    auto name = fbb.CreateString(m.name);
    auto inputs = fbb.CreateVector(m.inputs);
    auto outputs = fbb.CreateVector(m.outputs);
    fbMethods.push_back(fb::CreateMethod(fbb, name, values, inputs, outputs, instructions,
                                         m.arenaBytes, m.arenaLowerBoundBytes, m.naiveBytes));
  }
  auto fbMethodsVec = fbb.CreateVector(fbMethods);

  std::vector<flatbuffers::Offset<fb::Segment>> fbSegments;
  fbSegments.reserve(segments.size());
  for (size_t i = 0; i < segments.size(); ++i)
    fbSegments.push_back(
        fb::CreateSegment(fbb, segmentOffsets[i], segments[i].size, segments[i].hash));
  auto fbSegmentsVec = fbb.CreateVector(fbSegments);

  std::vector<flatbuffers::Offset<fb::StateDecl>> fbStates;
  for (const StateSpec &s : states) {
    auto name = fbb.CreateString(s.name);
    auto shape = fbb.CreateVector(s.shape);
    fbStates.push_back(fb::CreateStateDecl(fbb, name, s.dtype, shape));
  }
  auto fbStatesVec = fbb.CreateVector(fbStates);

  std::vector<flatbuffers::Offset<fb::KeyValue>> fbMetadata;
  for (const auto &kv : metadata) {
    auto key = fbb.CreateString(kv.first);
    auto value = fbb.CreateString(kv.second);
    fbMetadata.push_back(fb::CreateKeyValue(fbb, key, value));
  }
  auto fbMetadataVec = fbb.CreateVector(fbMetadata);

  std::vector<flatbuffers::Offset<fb::Asset>> fbAssets;
  for (const auto &asset : assets)
    fbAssets.push_back(fb::CreateAsset(fbb, fbb.CreateString(asset.first), asset.second));
  // Absent (not an empty vector) without assets: older files read the same.
  flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<fb::Asset>>> fbAssetsVec;
  if (!fbAssets.empty())
    fbAssetsVec = fbb.CreateVector(fbAssets);

  auto program = fb::CreateProgram(fbb, kProgramFormatVersion, fbMethodsVec, fbSegmentsVec,
                                   fbStatesVec, fbMetadataVec, fbAssetsVec);
  fbb.Finish(program, kProgramFileIdentifier);

  FileHeader header = makeFileHeader();
  header.flatbuffer_size = fbb.GetSize();
  header.segments_offset = alignToSegment(header.flatbuffer_offset + header.flatbuffer_size);
  header.segments_size = segmentsSize;
  if (segmentsSize > maxSize - header.segments_offset)
    return WriteResult::failure("program exceeds the maximum file size");
  header.file_size = header.segments_offset + segmentsSize;
  uint8_t headerBytes[kProgramHeaderSize];
  encodeHeader(header, headerBytes);

  // Write to a temporary file next to `path`, then rename it over `path`.
  const std::string tmpPath = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
  int fd = ::open(tmpPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return WriteResult::failure("cannot create '" + tmpPath + "': " + std::strerror(errno));

  SequentialFile file(fd);
  bool ok = file.write(headerBytes, sizeof(headerBytes)) &&
            file.write(fbb.GetBufferPointer(), fbb.GetSize()) &&
            file.padTo(header.segments_offset);
  for (size_t i = 0; ok && i < segments.size(); ++i)
    ok = file.padTo(header.segments_offset + segmentOffsets[i]) &&
         (segments[i].size == 0 || file.write(segments[i].data, segments[i].size));
  if (ok && file.position != header.file_size) {
    ok = false;
    file.error = "wrote " + std::to_string(file.position) + " bytes, expected " +
                 std::to_string(header.file_size);
  }
  std::string error = ok ? "" : "cannot write '" + tmpPath + "': " + file.error;
  if (::close(fd) != 0 && ok) {
    ok = false;
    error = "cannot close '" + tmpPath + "': " + std::strerror(errno);
  }
  if (ok && ::rename(tmpPath.c_str(), path.c_str()) != 0) {
    ok = false;
    error = "cannot rename '" + tmpPath + "' to '" + path + "': " + std::strerror(errno);
  }
  if (!ok) {
    ::unlink(tmpPath.c_str());
    return WriteResult::failure(error);
  }
  return WriteResult::success();
}

} // namespace kiln
