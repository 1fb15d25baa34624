#include "serializer/ProgramReader.h"

#include "runtime-stub/core/QuantLayout.h"

#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

namespace kiln {
namespace {

constexpr int kMaxRankInFile = 8;
// flatbuffers offsets are 32-bit: a flatbuffer cannot exceed 2 GiB.
constexpr uint64_t kMaxFlatbufferSize = 0x7fffffffULL;
// A method's activation arena (memory plan); larger is treated as corrupt.
constexpr uint64_t kMaxArenaBytes = 1ULL << 48;

std::string str(uint64_t v) { return std::to_string(v); }
std::string strs(int64_t v) { return std::to_string(v); }

bool checkedAddU64(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

bool fail(std::string *error, std::string message) {
  if (error)
    *error = std::move(message);
  return false;
}

bool validDType(fb::DType t) {
  int v = static_cast<int>(t);
  return v >= 0 && v <= static_cast<int>(fb::DType::MAX);
}

bool checkHeader(const uint8_t *bytes, size_t size, FileHeader *h, std::string *error) {
  if (size < kProgramHeaderSize)
    return fail(error, "file is " + str(size) + " bytes, smaller than the " +
                           str(kProgramHeaderSize) + "-byte header");
  std::memcpy(h, bytes, sizeof(FileHeader));
  if (std::memcmp(h->magic, kProgramMagic, sizeof(h->magic)) != 0)
    return fail(error, "header: bad magic (not a Kiln program file)");
  if (h->format_version < kMinProgramFormatVersion || h->format_version > kProgramFormatVersion)
    return fail(error, "header: format_version " + str(h->format_version) +
                           " is not supported (this reader reads versions " +
                           str(kMinProgramFormatVersion) + " to " + str(kProgramFormatVersion) +
                           ")");
  if (h->header_size != kProgramHeaderSize)
    return fail(error, "header: header_size is " + str(h->header_size) + ", expected " +
                           str(kProgramHeaderSize));
  if (h->file_size != size)
    return fail(error, "header: file_size is " + str(h->file_size) +
                           " but the file has " + str(size) + " bytes (truncated?)");
  if (h->reserved != 0)
    return fail(error, "header: reserved field is not 0");
  if (h->flatbuffer_offset != kProgramHeaderSize)
    return fail(error, "header: flatbuffer_offset is " + str(h->flatbuffer_offset) +
                           ", expected " + str(kProgramHeaderSize));
  uint64_t fbEnd;
  if (h->flatbuffer_size == 0 || h->flatbuffer_size > kMaxFlatbufferSize ||
      !checkedAddU64(h->flatbuffer_offset, h->flatbuffer_size, &fbEnd) || fbEnd > size)
    return fail(error, "header: flatbuffer_size " + str(h->flatbuffer_size) +
                           " does not fit in the file (" + str(size) + " bytes)");
  if (h->segments_offset % kSegmentAlignment != 0)
    return fail(error, "header: segments_offset " + str(h->segments_offset) +
                           " is not a multiple of " + str(kSegmentAlignment));
  if (h->segments_offset < fbEnd)
    return fail(error, "header: segments_offset " + str(h->segments_offset) +
                           " overlaps the flatbuffer (which ends at " + str(fbEnd) + ")");
  uint64_t segEnd;
  if (!checkedAddU64(h->segments_offset, h->segments_size, &segEnd) || segEnd > size)
    return fail(error, "header: segment area [" + str(h->segments_offset) + ", +" +
                           str(h->segments_size) + ") runs past the end of the file (" +
                           str(size) + " bytes)");
  return true;
}

bool checkSegments(const fb::Program *p, const FileHeader &h, const uint8_t *base,
                   const ReadOptions &options, std::string *error) {
  const auto *segs = p->segments();
  if (!segs)
    return true;
  for (uint32_t i = 0; i < segs->size(); ++i) {
    const fb::Segment *s = segs->Get(i);
    std::string where = "segment " + str(i) + ": ";
    if (s->offset() % kSegmentAlignment != 0)
      return fail(error, where + "offset " + str(s->offset()) + " is not a multiple of " +
                             str(kSegmentAlignment));
    uint64_t end;
    if (!checkedAddU64(s->offset(), s->size(), &end) || end > h.segments_size)
      return fail(error, where + "bytes [" + str(s->offset()) + ", +" + str(s->size()) +
                             ") run past the segment area (" + str(h.segments_size) +
                             " bytes)");
    if (options.verifySegmentHashes) {
      uint64_t hash = fnv1a64(base + s->offset(), s->size());
      if (hash != s->hash())
        return fail(error, where + "content hash mismatch (file corrupt): stored " +
                               str(s->hash()) + ", computed " + str(hash));
    }
  }
  return true;
}

// Checks a dims vector against a rank; `allowDynamic` admits -1 dims.
bool checkShape(int32_t rank, const flatbuffers::Vector<int64_t> *shape, bool allowDynamic,
                const std::string &where, std::string *error) {
  if (rank < -1 || rank > kMaxRankInFile)
    return fail(error, where + "rank " + strs(rank) + " is out of range [-1, " +
                           strs(kMaxRankInFile) + "]");
  uint32_t n = shape ? shape->size() : 0;
  if (rank == -1) {
    if (n != 0)
      return fail(error, where + "rank is unknown (-1) but " + str(n) + " dims are given");
    return true;
  }
  if (n != (uint32_t)rank)
    return fail(error, where + "rank " + strs(rank) + " but " + str(n) + " dims are given");
  for (uint32_t d = 0; d < n; ++d) {
    int64_t v = shape->Get(d);
    if (v < -1 || (v == -1 && !allowDynamic))
      return fail(error, where + "dim " + str(d) + " is " + strs(v) +
                             (allowDynamic ? " (must be >= 0 or -1 for dynamic)"
                                           : " (must be static, >= 0)"));
  }
  return true;
}

// numel * elemSize of a static shape, overflow-checked.
bool staticBytes(const flatbuffers::Vector<int64_t> *shape, size_t elemSize, uint64_t *out) {
  uint64_t n = elemSize;
  if (shape) {
    for (uint32_t d = 0; d < shape->size(); ++d) {
      int64_t v = shape->Get(d);
      if (v < 0 || __builtin_mul_overflow(n, (uint64_t)v, &n))
        return false;
    }
  }
  *out = n;
  return true;
}

bool checkAssets(const fb::Program *p, std::string *error) {
  const auto *assets = p->assets();
  if (!assets)
    return true;
  uint32_t nsegments = p->segments() ? p->segments()->size() : 0;
  std::unordered_set<std::string> names;
  for (uint32_t i = 0; i < assets->size(); ++i) {
    const fb::Asset *a = assets->Get(i);
    std::string where = "asset " + str(i) + " (" + a->name()->str() + "): ";
    if (a->name()->size() == 0)
      return fail(error, "asset " + str(i) + ": empty name");
    if (!names.insert(a->name()->str()).second)
      return fail(error, where + "name is used twice");
    if (a->segment() < 0 || (uint32_t)a->segment() >= nsegments)
      return fail(error, where + "segment index " + strs(a->segment()) +
                             " is out of range (the program has " + str(nsegments) +
                             " segments)");
  }
  return true;
}

bool checkStates(const fb::Program *p, std::string *error) {
  const auto *states = p->states();
  if (!states)
    return true;
  for (uint32_t i = 0; i < states->size(); ++i) {
    const fb::StateDecl *s = states->Get(i);
    std::string where = "state " + str(i) + " (" + s->name()->str() + "): ";
    if (!validDType(s->dtype()) || s->dtype() == fb::DType::Unknown)
      return fail(error, where + "dtype " + strs((int)s->dtype()) + " is not a known dtype");
    if (s->dtype() == fb::DType::Int4)
      return fail(error, where + "dtype i4 is only valid for a quantized constant");
    int32_t rank = s->shape() ? (int32_t)s->shape()->size() : 0;
    if (!checkShape(rank, s->shape(), /*allowDynamic=*/false, where, error))
      return false;
    uint64_t bytes;
    if (!staticBytes(s->shape(), dtypeByteSize(s->dtype()), &bytes) || bytes > (1ULL << 48))
      return fail(error, where + "size overflows");
  }
  return true;
}

/// A quantized weight (docs/program-format.md): Constant, dtype Int8 or Int4,
/// static [out, in], group > 0 dividing in (even for Int4), scales of dtype
/// Float16 or Float32, and both segments exactly as large as the shape says.
bool checkQuantizedConstant(const ProgramView &view, const fb::Value *v,
                            const std::string &where, std::string *error) {
  if (v->kind() != fb::ValueKind::Constant)
    return fail(error, where + "quantization fields set on a value that is not a constant");
  if (v->dtype() != fb::DType::Int8 && v->dtype() != fb::DType::Int4)
    return fail(error, where + "quantized constant has dtype " + dtypeShortName(v->dtype()) +
                           " (expected i8 or i4)");
  if (v->rank() != 2)
    return fail(error, where + "quantized constant has rank " + strs(v->rank()) +
                           " (expected 2: [out, in])");
  int64_t out = v->shape()->Get(0), in = v->shape()->Get(1);
  int64_t group = v->quant_group_size();
  if (group <= 0 || in % group != 0 || (v->dtype() == fb::DType::Int4 && group % 2 != 0))
    return fail(error, where + "quant_group_size " + strs(group) +
                           " does not divide the in-features " + strs(in) +
                           (v->dtype() == fb::DType::Int4 ? " into even groups" : ""));
  if (v->scales_dtype() != fb::DType::Float16 && v->scales_dtype() != fb::DType::Float32)
    return fail(error, where + "scales_dtype " + dtypeShortName(v->scales_dtype()) +
                           " (expected f16 or f32)");
  uint32_t nseg = view.numSegments();
  if (v->scales_segment() < 0 || (uint32_t)v->scales_segment() >= nseg)
    return fail(error, where + "scales_segment " + strs(v->scales_segment()) +
                           " is out of range (the program has " + str(nseg) + " segments)");
  uint64_t elements = 0;
  if (__builtin_mul_overflow((uint64_t)out, (uint64_t)in, &elements) || elements > (1ULL << 48))
    return fail(error, where + "quantized constant size overflows");
  uint64_t dataBytes = v->dtype() == fb::DType::Int4 ? elements / 2 : elements;
  uint64_t segSize = view.segmentSize((uint32_t)v->segment());
  if (dataBytes != segSize)
    return fail(error, where + "quantized " + dtypeShortName(v->dtype()) + " [" + strs(out) +
                           ", " + strs(in) + "] needs " + str(dataBytes) +
                           " bytes of data but segment " + strs(v->segment()) + " has " +
                           str(segSize));
  uint64_t scaleBytes = (uint64_t)out * (uint64_t)(in / group) *
                        dtypeByteSize(v->scales_dtype());
  uint64_t scalesSize = view.segmentSize((uint32_t)v->scales_segment());
  if (scaleBytes != scalesSize)
    return fail(error, where + "quantized constant needs " + str(scaleBytes) +
                           " bytes of scales (" + strs(out) + " x " + strs(in / group) + " " +
                           dtypeShortName(v->scales_dtype()) + ") but scales_segment " +
                           strs(v->scales_segment()) + " has " + str(scalesSize));
  if (v->quant_layout() == fb::QuantLayout::Int4Strip16 ||
      v->quant_layout() == fb::QuantLayout::Int8Strip16) {
    if (const char *problem = strip16::layoutProblem(
            (int)v->quant_layout(), v->dtype() == fb::DType::Int4, v->dtype() == fb::DType::Int8,
            out, in, group))
      return fail(error, where + "quant_layout " + problem + " (got " +
                             dtypeShortName(v->dtype()) + " [" + strs(out) + ", " + strs(in) +
                             "], group " + strs(group) + ")");
  } else if (v->quant_layout() != fb::QuantLayout::Rows) {
    return fail(error, where + "quant_layout " + strs((int)v->quant_layout()) +
                           " is not a known layout");
  }
  return true;
}

bool checkValue(const fb::Program *p, const ProgramView &view, const fb::Value *v,
                const std::string &where, std::string *error) {
  if (!validDType(v->dtype()))
    return fail(error, where + "dtype " + strs((int)v->dtype()) + " is not a known dtype");
  int kind = (int)v->kind();
  if (kind < 0 || kind > (int)fb::ValueKind::MAX)
    return fail(error, where + "kind " + strs(kind) + " is not a known value kind");
  bool isConst = v->kind() == fb::ValueKind::Constant;
  if (!checkShape(v->rank(), v->shape(), /*allowDynamic=*/!isConst, where, error))
    return false;
  bool quantized = v->scales_segment() != -1 || v->quant_group_size() != 0 ||
                   v->scales_dtype() != fb::DType::Unknown ||
                   v->quant_layout() != fb::QuantLayout::Rows;
  if (quantized && !isConst)
    return fail(error, where + "quantization fields set on a value that is not a constant");
  if (!quantized && v->dtype() == fb::DType::Int4)
    return fail(error, where + "dtype i4 is only valid for a quantized constant");
  if (isConst) {
    if (v->dtype() == fb::DType::Unknown)
      return fail(error, where + "constant has unknown dtype");
    if (v->rank() < 0)
      return fail(error, where + "constant has unknown rank");
    uint32_t nseg = view.numSegments();
    if (v->segment() < 0 || (uint32_t)v->segment() >= nseg)
      return fail(error, where + "segment index " + strs(v->segment()) +
                             " is out of range (the program has " + str(nseg) + " segments)");
    if (quantized)
      return checkQuantizedConstant(view, v, where, error);
    uint64_t bytes;
    if (!staticBytes(v->shape(), dtypeByteSize(v->dtype()), &bytes))
      return fail(error, where + "constant size overflows");
    uint64_t segSize = view.segmentSize((uint32_t)v->segment());
    if (bytes != segSize)
      return fail(error, where + "constant " + dtypeShortName(v->dtype()) + " needs " +
                             str(bytes) + " bytes but segment " + strs(v->segment()) +
                             " has " + str(segSize));
  } else if (v->kind() == fb::ValueKind::State) {
    uint32_t nstates = p->states() ? p->states()->size() : 0;
    if (v->state() < 0 || (uint32_t)v->state() >= nstates)
      return fail(error, where + "state index " + strs(v->state()) +
                             " is out of range (the program has " + str(nstates) + " states)");
    const fb::StateDecl *s = p->states()->Get((uint32_t)v->state());
    if (v->dtype() != fb::DType::Unknown && v->dtype() != s->dtype())
      return fail(error, where + "dtype " + dtypeShortName(v->dtype()) + " differs from state " +
                             strs(v->state()) + " dtype " + dtypeShortName(s->dtype()));
    uint32_t srank = s->shape() ? s->shape()->size() : 0;
    if (v->rank() >= 0) {
      bool same = (uint32_t)v->rank() == srank;
      for (uint32_t d = 0; same && d < srank; ++d) {
        int64_t vd = v->shape()->Get(d);
        same = vd == -1 || vd == s->shape()->Get(d);
      }
      if (!same)
        return fail(error, where + "shape differs from the shape of state " + strs(v->state()));
    }
  }
  return true;
}

std::string instrName(uint32_t i, const fb::Instruction *ins) {
  std::string s = "instruction " + str(i) + " (" + ins->op()->str();
  if (ins->loc() && ins->loc()->size())
    s += " at " + ins->loc()->str();
  return s + "): ";
}

/// The memory plan of one value: -1 (not planned), or a multiple of 64 such
/// that the value's static bytes fit in the method's arena; only intermediates
/// and outputs of known dtype and static shape are planned.
bool checkArenaOffset(const fb::Method *m, const fb::Value *v, const std::string &where,
                      std::string *error) {
  int64_t offset = v->arena_offset();
  if (offset == -1)
    return true;
  if (m->arena_bytes() > kMaxArenaBytes)
    return fail(error, where + "the method's arena_bytes " + str(m->arena_bytes()) +
                           " exceeds the limit of " + str(kMaxArenaBytes));
  if (v->kind() != fb::ValueKind::Intermediate && v->kind() != fb::ValueKind::Output)
    return fail(error, where + "arena_offset is set on a value that is not an intermediate "
                               "or output");
  if (offset < 0 || offset % 64 != 0)
    return fail(error, where + "arena_offset " + strs(offset) +
                           " is not a non-negative multiple of 64");
  size_t elemSize = dtypeByteSize(v->dtype());
  if (elemSize == 0 || v->dtype() == fb::DType::Int4)
    return fail(error, where + "a planned value needs a known dtype");
  if (v->rank() < 0)
    return fail(error, where + "a planned value needs a static shape");
  uint64_t bytes;
  if (!staticBytes(v->shape(), elemSize, &bytes))
    return fail(error, where + "a planned value needs a static shape (and a size that fits)");
  uint64_t end;
  if (__builtin_add_overflow((uint64_t)offset, bytes, &end) || end > m->arena_bytes())
    return fail(error, where + "planned at arena offset " + strs(offset) + " with " +
                           str(bytes) + " bytes, past the arena of " + str(m->arena_bytes()) +
                           " bytes");
  return true;
}

bool checkMethod(const fb::Program *p, const ProgramView &view, const fb::Method *m,
                 std::string *error) {
  std::string where = "method " + m->name()->str() + ": ";
  if (m->name()->size() == 0)
    return fail(error, "method with an empty name");
  uint32_t nvalues = m->values() ? m->values()->size() : 0;
  // defined[v]: the value has contents before the current instruction runs.
  std::vector<uint8_t> defined(nvalues, 0);
  for (uint32_t i = 0; i < nvalues; ++i) {
    const fb::Value *v = m->values()->Get(i);
    if (!checkValue(p, view, v, where + "value " + str(i) + ": ", error))
      return false;
    if (!checkArenaOffset(m, v, where + "value " + str(i) + ": ", error))
      return false;
    if (v->kind() == fb::ValueKind::Constant || v->kind() == fb::ValueKind::State)
      defined[i] = 1;
  }
  auto valueRange = [&](int32_t idx) { return idx >= 0 && (uint32_t)idx < nvalues; };
  auto rangeMsg = [&](int32_t idx) {
    return "refers to value " + strs(idx) + ", but the method has " + str(nvalues) + " values";
  };
  if (m->inputs()) {
    for (uint32_t i = 0; i < m->inputs()->size(); ++i) {
      int32_t idx = m->inputs()->Get(i);
      if (!valueRange(idx))
        return fail(error, where + "input " + str(i) + " " + rangeMsg(idx));
      if (m->values()->Get((uint32_t)idx)->kind() != fb::ValueKind::Input)
        return fail(error, where + "input " + str(i) + " refers to value " + strs(idx) +
                               ", which is not of kind Input");
      if (defined[(uint32_t)idx])
        return fail(error, where + "input " + str(i) + ": value " + strs(idx) +
                               " is listed twice");
      defined[(uint32_t)idx] = 1;
    }
  }
  if (m->instructions()) {
    for (uint32_t i = 0; i < m->instructions()->size(); ++i) {
      const fb::Instruction *ins = m->instructions()->Get(i);
      std::string iw = where + instrName(i, ins);
      if (ins->op()->size() == 0)
        return fail(error, iw + "empty op name");
      if (ins->inputs()) {
        for (uint32_t k = 0; k < ins->inputs()->size(); ++k) {
          int32_t idx = ins->inputs()->Get(k);
          if (idx == -1)
            continue; // absent optional operand
          if (!valueRange(idx))
            return fail(error, iw + "input " + str(k) + " " + rangeMsg(idx));
          if (!defined[(uint32_t)idx])
            return fail(error, iw + "input " + str(k) + " reads value " + strs(idx) +
                                   " before it is produced");
        }
      }
      if (ins->outputs()) {
        for (uint32_t k = 0; k < ins->outputs()->size(); ++k) {
          int32_t idx = ins->outputs()->Get(k);
          if (!valueRange(idx))
            return fail(error, iw + "output " + str(k) + " " + rangeMsg(idx));
          fb::ValueKind kind = m->values()->Get((uint32_t)idx)->kind();
          if (kind == fb::ValueKind::Constant || kind == fb::ValueKind::Input)
            return fail(error, iw + "output " + str(k) + " writes value " + strs(idx) +
                                   ", which is a " +
                                   (kind == fb::ValueKind::Constant ? "constant" : "method input"));
          if (kind != fb::ValueKind::State && defined[(uint32_t)idx])
            return fail(error, iw + "output " + str(k) + ": value " + strs(idx) +
                                   " is produced twice");
          defined[(uint32_t)idx] = 1;
        }
      }
      if (ins->attrs()) {
        for (uint32_t k = 0; k < ins->attrs()->size(); ++k) {
          int kind = (int)ins->attrs()->Get(k)->kind();
          if (kind < 0 || kind > (int)fb::AttrKind::MAX)
            return fail(error, iw + "attribute " + ins->attrs()->Get(k)->name()->str() +
                                   " has unknown kind " + strs(kind));
        }
      }
    }
  }
  if (m->outputs()) {
    for (uint32_t i = 0; i < m->outputs()->size(); ++i) {
      int32_t idx = m->outputs()->Get(i);
      if (!valueRange(idx))
        return fail(error, where + "output " + str(i) + " " + rangeMsg(idx));
      if (!defined[(uint32_t)idx])
        return fail(error, where + "output " + str(i) + ": value " + strs(idx) +
                               " is never produced");
    }
  }
  return true;
}

} // namespace

uint32_t ProgramView::numSegments() const {
  return program && program->segments() ? program->segments()->size() : 0;
}
const uint8_t *ProgramView::segmentData(uint32_t index) const {
  return segmentsBase + program->segments()->Get(index)->offset();
}
uint64_t ProgramView::segmentSize(uint32_t index) const {
  return program->segments()->Get(index)->size();
}

size_t dtypeByteSize(fb::DType dtype) {
  switch (dtype) {
  case fb::DType::Float32: return 4;
  case fb::DType::Int64: return 8;
  case fb::DType::Bool: return 1;
  case fb::DType::Int32: return 4;
  case fb::DType::Float16: return 2;
  case fb::DType::BFloat16: return 2;
  case fb::DType::Int8: return 1;
  case fb::DType::UInt8: return 1;
  default: return 0;
  }
}

const char *dtypeShortName(fb::DType dtype) {
  switch (dtype) {
  case fb::DType::Float32: return "f32";
  case fb::DType::Int64: return "i64";
  case fb::DType::Bool: return "i1";
  case fb::DType::Int32: return "i32";
  case fb::DType::Float16: return "f16";
  case fb::DType::BFloat16: return "bf16";
  case fb::DType::Int8: return "i8";
  case fb::DType::UInt8: return "u8";
  case fb::DType::Int4: return "i4";
  default: return "unknown";
  }
}

bool readProgram(const void *data, size_t size, const ReadOptions &options,
                 ProgramView *out, std::string *error) {
  const uint8_t *bytes = static_cast<const uint8_t *>(data);
  ProgramView view;
  if (!bytes)
    return fail(error, "no data");
  if (!checkHeader(bytes, size, &view.header, error))
    return false;
  const FileHeader &h = view.header;
  const uint8_t *fbData = bytes + h.flatbuffer_offset;
  size_t fbSize = (size_t)h.flatbuffer_size;
  if (fbSize < 8 || !flatbuffers::BufferHasIdentifier(fbData, kProgramFileIdentifier))
    return fail(error, "flatbuffer: missing file identifier \"KILN\"");
  flatbuffers::Verifier verifier(fbData, fbSize, /*max_depth=*/64, /*max_tables=*/1000000);
  if (!fb::VerifyProgramBuffer(verifier))
    return fail(error, "flatbuffer: failed the flatbuffers verifier (corrupt or not a "
                       "Kiln program)");
  view.program = fb::GetProgram(fbData);
  view.fileData = bytes;
  view.fileSize = size;
  view.segmentsBase = bytes + h.segments_offset;
  if (view.program->version() != h.format_version)
    return fail(error, "flatbuffer: Program.version " + str(view.program->version()) +
                           " differs from header format_version " + str(h.format_version));
  if (!checkSegments(view.program, h, view.segmentsBase, options, error))
    return false;
  if (!checkStates(view.program, error))
    return false;
  if (!checkAssets(view.program, error))
    return false;
  if (const auto *methods = view.program->methods()) {
    std::unordered_set<std::string> names;
    for (uint32_t i = 0; i < methods->size(); ++i) {
      const fb::Method *m = methods->Get(i);
      if (!names.insert(m->name()->str()).second)
        return fail(error, "method " + m->name()->str() + " is defined twice");
      if (!checkMethod(view.program, view, m, error))
        return false;
    }
  }
  *out = view;
  return true;
}

} // namespace kiln
