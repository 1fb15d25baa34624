// Reads and verifies a Kiln program file held in memory (usually mmapped).
// Nothing in the file is trusted: the header, the flatbuffer (flatbuffers
// Verifier with identifier "KILN"), every segment, value, instruction and method
// index is checked before a ProgramView is handed out. No exceptions; errors are
// returned as messages naming what is wrong. See docs/program-format.md.
#ifndef KILN_SERIALIZER_PROGRAMREADER_H
#define KILN_SERIALIZER_PROGRAMREADER_H

#include "serializer/ProgramFormat.h"
#include "kiln/program_generated.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {

struct ReadOptions {
  /// Recompute FNV-1a 64 of every segment and compare with Segment.hash
  /// (reads all constant bytes once; turn off for fast loads of trusted files).
  bool verifySegmentHashes = true;
};

/// A verified program: pointers into the caller's buffer, valid while it lives.
struct ProgramView {
  FileHeader header{};                 // a copy (the buffer may be unaligned)
  const fb::Program *program = nullptr;
  const uint8_t *fileData = nullptr;
  size_t fileSize = 0;
  const uint8_t *segmentsBase = nullptr; // fileData + header.segments_offset

  uint32_t numSegments() const;
  /// Bytes of segment `index` (verified in range by readProgram).
  const uint8_t *segmentData(uint32_t index) const;
  uint64_t segmentSize(uint32_t index) const;
};

/// Verifies `size` bytes at `data` as a program file. On success fills `out`
/// and returns true; otherwise sets `*error` (e.g. "segment 3: offset 100 is not
/// a multiple of 64") and returns false.
bool readProgram(const void *data, size_t size, const ReadOptions &options,
                 ProgramView *out, std::string *error);

/// Bytes per element of a dtype; 0 for Unknown or an out-of-range value.
size_t dtypeByteSize(fb::DType dtype);
/// Short dialect name ("f32", "i64", "i1", ...) or "unknown".
const char *dtypeShortName(fb::DType dtype);

} // namespace kiln

#endif // KILN_SERIALIZER_PROGRAMREADER_H
