// The fixed binary layout of a Kiln program file (`.kiln`): the 64-byte header
// that precedes the flatbuffer and the constant segment area. Shared by the
// writer (ProgramWriter) and the reader (ProgramReader). See
// docs/program-format.md.
#ifndef KILN_SERIALIZER_PROGRAMFORMAT_H
#define KILN_SERIALIZER_PROGRAMFORMAT_H

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace kiln {

/// "KILNPRG\0": the first 8 bytes of every program file.
inline constexpr char kProgramMagic[8] = {'K', 'I', 'L', 'N', 'P', 'R', 'G', '\0'};
/// Bump when the meaning of an existing field changes (see program.fbs).
/// 2: Value.quant_layout (a version-1 reader would misread Int4Strip16 data).
inline constexpr uint32_t kProgramFormatVersion = 2;
/// The oldest version this reader still reads (version 1 = no quant_layout).
inline constexpr uint32_t kMinProgramFormatVersion = 1;
/// Size of FileHeader in bytes; also where the flatbuffer starts.
inline constexpr uint32_t kProgramHeaderSize = 64;
/// Alignment of segments_offset and of every segment offset inside the area.
inline constexpr uint64_t kSegmentAlignment = 64;
/// The flatbuffers file identifier of the embedded flatbuffer.
inline constexpr char kProgramFileIdentifier[] = "KILN";

/// The file header, all fields little-endian, exactly 64 bytes.
struct FileHeader {
  char magic[8];              // kProgramMagic
  uint32_t format_version;    // kProgramFormatVersion
  uint32_t header_size;       // kProgramHeaderSize
  uint64_t flatbuffer_offset; // kProgramHeaderSize
  uint64_t flatbuffer_size;   // bytes of the flatbuffer
  uint64_t segments_offset;   // 64-aligned, >= flatbuffer_offset + flatbuffer_size
  uint64_t segments_size;     // bytes of the segment area
  uint64_t file_size;         // total bytes; equals the real file size
  uint64_t reserved;          // 0
};

static_assert(sizeof(FileHeader) == kProgramHeaderSize, "FileHeader must be 64 bytes");
static_assert(offsetof(FileHeader, format_version) == 8, "layout");
static_assert(offsetof(FileHeader, header_size) == 12, "layout");
static_assert(offsetof(FileHeader, flatbuffer_offset) == 16, "layout");
static_assert(offsetof(FileHeader, flatbuffer_size) == 24, "layout");
static_assert(offsetof(FileHeader, segments_offset) == 32, "layout");
static_assert(offsetof(FileHeader, segments_size) == 40, "layout");
static_assert(offsetof(FileHeader, file_size) == 48, "layout");
static_assert(offsetof(FileHeader, reserved) == 56, "layout");

/// A header with magic, version and sizes filled in, offsets/sizes zero.
inline FileHeader makeFileHeader() {
  FileHeader h;
  std::memset(&h, 0, sizeof(h));
  std::memcpy(h.magic, kProgramMagic, sizeof(h.magic));
  h.format_version = kProgramFormatVersion;
  h.header_size = kProgramHeaderSize;
  h.flatbuffer_offset = kProgramHeaderSize;
  return h;
}

/// FNV-1a 64-bit hash: the segment content hash (dedup key and integrity check).
inline uint64_t fnv1a64(const void *data, size_t size) {
  const unsigned char *p = static_cast<const unsigned char *>(data);
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// Rounds `v` up to a multiple of kSegmentAlignment (caller ensures no overflow).
inline constexpr uint64_t alignToSegment(uint64_t v) {
  return (v + kSegmentAlignment - 1) / kSegmentAlignment * kSegmentAlignment;
}

} // namespace kiln

#endif // KILN_SERIALIZER_PROGRAMFORMAT_H
