// The int4 "strips of 16" weight layout (docs/program-format.md, "Quantized
// weight layouts"): how the compiler repacks a group-wise int4 weight for the
// decode kernel and how every reader finds an element in it. Header-only and
// dependency-free: the lowering (which writes it), the runtime kernels and the
// tests share these definitions.
//
// Rows (layout 0): row-major, two signed nibbles per byte (column 2k low).
// Int4Strip16 (layout 1), for [out, in] with out % 16 == 0, in % 32 == 0 and
// group % 32 == 0:
//   data   [out / 16 strips][in / 32 blocks][4 vectors][16 channels][4 bytes]
//          byte j of (strip s, block b, vector v, channel l) holds, for row
//          o = 16 s + l, column 32 b + 8 v + j in its low nibble and column
//          32 b + 8 v + 4 + j in its high nibble, each stored unsigned as q + 8;
//   scales [out / 16 strips][in / group groups][16 channels].
// One 64-byte vector thus holds 8 columns of 16 output channels: the decode
// kernel multiplies it with 2 broadcast dwords of x and needs no horizontal sums.
// Int8Strip16 (layout 2), same conditions, int8 weights:
//   data   [out / 16 strips][in / 4 quads][16 channels][4 bytes]
//          byte j of (strip s, quad k, channel l) is column 4 k + j of row
//          o = 16 s + l, the signed byte unchanged;
//   scales as Int4Strip16 (a per-row scale, group = in, is one per strip row).
// One 64-byte vector holds 4 columns of 16 output channels (one broadcast
// dword of x); a 32-column block (one x block scale) is 8 such vectors.
#ifndef KILN_RUNTIME_CORE_QUANTLAYOUT_H
#define KILN_RUNTIME_CORE_QUANTLAYOUT_H

#include <cstdint>

namespace kiln {

/// Values of program.fbs's QuantLayout (Value.quant_layout).
enum class QuantLayout : uint8_t { Rows = 0, Int4Strip16 = 1, Int8Strip16 = 2 };

namespace strip16 {

constexpr int64_t kChannels = 16;  // output channels per strip
constexpr int64_t kBlockCols = 32; // columns per block (4 vectors of 64 bytes)

/// Whether an int4 (int8) [out, in] weight with this group size can use
/// Int4Strip16 (Int8Strip16).
inline bool applies(int64_t out, int64_t in, int64_t group) {
  return out > 0 && in > 0 && out % kChannels == 0 && in % kBlockCols == 0 && group > 0 &&
         group % kBlockCols == 0 && in % group == 0;
}

/// Why a weight cannot be stored in `layout` (a QuantLayout value: 1
/// Int4Strip16, 2 Int8Strip16), or nullptr when it can or the layout is not a
/// strip layout. `int4` / `int8` give the weight's dtype. The program writer
/// and reader both check a strip layout with it, so the two agree.
inline const char *layoutProblem(int layout, bool int4, bool int8, int64_t out, int64_t in,
                                 int64_t group) {
  if (layout == static_cast<int>(QuantLayout::Int4Strip16) && !(int4 && applies(out, in, group)))
    return "Int4Strip16 needs an i4 [out, in] weight with out % 16 == 0, in % 32 == 0 and a "
           "group size that is a multiple of 32";
  if (layout == static_cast<int>(QuantLayout::Int8Strip16) && !(int8 && applies(out, in, group)))
    return "Int8Strip16 needs an i8 [out, in] weight with out % 16 == 0, in % 32 == 0 and a "
           "group size that is a multiple of 32";
  return nullptr;
}

/// Byte holding element (o, c) and whether it is the high nibble.
inline int64_t byteOffset(int64_t in, int64_t o, int64_t c, bool *high) {
  const int64_t s = o / kChannels, l = o % kChannels, b = c / kBlockCols;
  const int64_t v = (c % kBlockCols) / 8, j = c % 4;
  *high = (c % 8) >= 4;
  return s * kChannels * (in / 2) + ((b * 4 + v) * kChannels + l) * 4 + j;
}

/// Signed value of element (o, c).
inline int value(const uint8_t *data, int64_t in, int64_t o, int64_t c) {
  bool high = false;
  const uint8_t byte = data[byteOffset(in, o, c, &high)];
  return static_cast<int>(high ? byte >> 4 : byte & 0x0F) - 8;
}

/// Int8Strip16: byte holding element (o, c).
inline int64_t byteOffset8(int64_t in, int64_t o, int64_t c) {
  return (o / kChannels) * kChannels * in + ((c / 4) * kChannels + o % kChannels) * 4 + c % 4;
}

/// Signed value of element (o, c) of an Int4Strip16 (bits 4) or Int8Strip16
/// (bits 8) weight.
inline int value(int bits, const uint8_t *data, int64_t in, int64_t o, int64_t c) {
  if (bits == 8)
    return static_cast<int8_t>(data[byteOffset8(in, o, c)]);
  return value(data, in, o, c);
}

/// Index of the scale of row o, group g (groups = in / group).
inline int64_t scaleIndex(int64_t groups, int64_t o, int64_t g) {
  return ((o / kChannels) * groups + g) * kChannels + o % kChannels;
}

/// out[k] = element (o, col0 + k) as f32 for k < len (element by element: the
/// reference and embedding-row path) of an Int4Strip16 (bits 4) or Int8Strip16
/// (bits 8) weight; scale(i) returns scale i of the strip-ordered scales as f32
/// (f16 or f32 storage is the caller's business).
template <class Scale>
inline void dequantize(int bits, const uint8_t *data, int64_t in, int64_t group, int64_t o,
                       int64_t col0, int64_t len, Scale scale, float *out) {
  const int64_t groups = in / group;
  for (int64_t c = col0; c < col0 + len; ++c)
    *out++ = static_cast<float>(value(bits, data, in, o, c)) *
             scale(scaleIndex(groups, o, c / group));
}

/// Repacks row-layout int4 data (two signed nibbles per byte, column 2k low)
/// of [out, in] into Int4Strip16 `dst` (out * in / 2 bytes).
inline void packData(const uint8_t *rows, int64_t out, int64_t in, uint8_t *dst) {
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < in; c += 8)
      for (int64_t j = 0; j < 4; ++j) {
        const uint8_t lo = rows[o * (in / 2) + (c + j) / 2], hi = rows[o * (in / 2) + (c + j + 4) / 2];
        const int nlo = ((c + j) % 2 ? lo >> 4 : lo & 0x0F), nhi = ((c + j + 4) % 2 ? hi >> 4 : hi & 0x0F);
        // n ^ 8 maps the signed nibble n (two's complement) to n + 8 in [0, 15].
        bool high = false;
        dst[byteOffset(in, o, c + j, &high)] =
            static_cast<uint8_t>((nlo ^ 8) | ((nhi ^ 8) << 4));
      }
}

/// Repacks row-major int8 data [out, in] into Int8Strip16 `dst` (out * in bytes).
inline void packData8(const uint8_t *rows, int64_t out, int64_t in, uint8_t *dst) {
  for (int64_t o = 0; o < out; ++o)
    for (int64_t c = 0; c < in; ++c)
      dst[byteOffset8(in, o, c)] = rows[o * in + c];
}

/// Reorders row-major scales [out, groups] (elements of `elemBytes` bytes)
/// into the strip order of Int4Strip16 and Int8Strip16.
inline void packScales(const uint8_t *rows, int64_t out, int64_t groups, int64_t elemBytes,
                       uint8_t *dst) {
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t k = 0; k < elemBytes; ++k)
        dst[scaleIndex(groups, o, g) * elemBytes + k] = rows[(o * groups + g) * elemBytes + k];
}

} // namespace strip16
} // namespace kiln

#endif // KILN_RUNTIME_CORE_QUANTLAYOUT_H
