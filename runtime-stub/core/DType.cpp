#include "runtime-stub/core/DType.h"

#include <cmath>
#include <cstring>

namespace kiln {
namespace rt {

size_t dtypeSize(DType t) {
  switch (t) {
  case DType::Float32: return 4;
  case DType::Int64: return 8;
  case DType::Bool: return 1;
  case DType::Int32: return 4;
  case DType::Float16: return 2;
  case DType::BFloat16: return 2;
  case DType::Int8: return 1;
  case DType::UInt8: return 1;
  case DType::Int4: return 0;
  case DType::Unknown: return 0;
  }
  return 0;
}

const char *dtypeName(DType t) {
  switch (t) {
  case DType::Float32: return "f32";
  case DType::Int64: return "i64";
  case DType::Bool: return "i1";
  case DType::Int32: return "i32";
  case DType::Float16: return "f16";
  case DType::BFloat16: return "bf16";
  case DType::Int8: return "i8";
  case DType::UInt8: return "u8";
  case DType::Int4: return "i4";
  case DType::Unknown: return "unknown";
  }
  return "invalid";
}

bool parseDType(const std::string &s, DType *out) {
  struct Entry { const char *name; DType type; };
  static const Entry kEntries[] = {
      {"f32", DType::Float32}, {"float32", DType::Float32},
      {"i64", DType::Int64},   {"int64", DType::Int64},
      {"i1", DType::Bool},     {"bool", DType::Bool},
      {"i32", DType::Int32},   {"int32", DType::Int32},
      {"f16", DType::Float16}, {"float16", DType::Float16},
      {"bf16", DType::BFloat16}, {"bfloat16", DType::BFloat16},
      {"i8", DType::Int8},     {"int8", DType::Int8},
      {"u8", DType::UInt8},    {"ui8", DType::UInt8}, {"uint8", DType::UInt8},
  };
  for (const Entry &e : kEntries) {
    if (s == e.name) {
      *out = e.type;
      return true;
    }
  }
  return false;
}

DType promoteTypes(DType a, DType b) {
  if (a == b)
    return a;
  if (a == DType::Unknown || b == DType::Unknown)
    return DType::Unknown;
  if (isFloating(a) || isFloating(b)) {
    if (a == DType::Float32 || b == DType::Float32)
      return DType::Float32;
    if (isFloating(a) && isFloating(b))
      return DType::Float32; // f16 with bf16
    return isFloating(a) ? a : b;
  }
  if (a == DType::Bool)
    return b;
  if (b == DType::Bool)
    return a;
  // Two different integer types (docs/dialect.md: i64).
  return DType::Int64;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      mant &= 0x3ff;
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) // inf or nan
    return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
  if (absx >= 0x477ff000u) // rounds to >= 65520: overflow to inf
    return (uint16_t)(sign | 0x7c00);
  if (absx < 0x38800000u) { // below the smallest normal half: subnormal or zero
    float a;
    std::memcpy(&a, &absx, 4);
    // Scale so that one half-subnormal ulp (2^-24) becomes 1, round to nearest even.
    float scaled = a * 16777216.0f;
    uint32_t m = (uint32_t)std::nearbyint(scaled);
    return (uint16_t)(sign | m);
  }
  // Normal: round mantissa to 10 bits, nearest even.
  uint32_t mant = absx & 0x7fffff;
  uint32_t exp = (absx >> 23) - 127 + 15;
  uint32_t half = (exp << 10) | (mant >> 13);
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
    ++half; // may carry into the exponent, which is correct
  return (uint16_t)(sign | half);
}

float bfloat16ToFloat(uint16_t b) {
  uint32_t bits = (uint32_t)b << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t floatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) // nan
    return (uint16_t)((x >> 16) | 0x40);
  uint32_t rounding = 0x7fff + ((x >> 16) & 1);
  return (uint16_t)((x + rounding) >> 16);
}

} // namespace rt
} // namespace kiln
