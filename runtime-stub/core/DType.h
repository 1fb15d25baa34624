// Element types of runtime tensors. The numeric values equal kiln::fb::DType so
// that a verified program's dtype converts with a cast.
#ifndef KILN_RUNTIME_CORE_DTYPE_H
#define KILN_RUNTIME_CORE_DTYPE_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace kiln {
namespace rt {

enum class DType : uint8_t {
  Unknown = 0,
  Float32 = 1,
  Int64 = 2,
  Bool = 3, // one byte, 0 or 1
  Int32 = 4,
  Float16 = 5,
  BFloat16 = 6,
  Int8 = 7,
  UInt8 = 8,
  Int4 = 9, // signed 4-bit packed two per byte; only in quantized weights
};

inline constexpr int kMaxDTypeValue = 9;

/// Bytes per element; 0 for Unknown and for Int4 (two per byte).
size_t dtypeSize(DType t);
/// Short name used in messages and in the dialect: "f32", "i64", "i1", ...
const char *dtypeName(DType t);
/// Parses a dialect dtype string ("f32", "i64", "i1"/"bool", "i32", "f16", "bf16",
/// "i8", "u8"). Returns false if unknown.
bool parseDType(const std::string &s, DType *out);

inline bool isFloating(DType t) {
  return t == DType::Float32 || t == DType::Float16 || t == DType::BFloat16;
}
inline bool isIntegral(DType t) { // excluding bool
  return t == DType::Int64 || t == DType::Int32 || t == DType::Int8 || t == DType::UInt8;
}

/// PyTorch-style promotion for the supported types (docs/dialect.md):
/// bool < integer < float; two different integer types give i64; f32 wins over
/// f16/bf16; f16 with bf16 gives f32.
DType promoteTypes(DType a, DType b);

float halfToFloat(uint16_t h);
uint16_t floatToHalf(float f);
float bfloat16ToFloat(uint16_t b);
uint16_t floatToBFloat16(float f);

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_CORE_DTYPE_H
