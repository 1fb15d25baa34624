// Small helpers for runtime tests that write their programs with ProgramWriter
// (serializer/ProgramWriter.h): static-shape value specs and deterministic inputs.
#ifndef KILN_TESTS_UNIT_RUNTIME_WRITERTESTUTIL_H
#define KILN_TESTS_UNIT_RUNTIME_WRITERTESTUTIL_H

#include "serializer/ProgramWriter.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kiln {
namespace test {

/// n floats in [-2, 2) from a seeded linear congruential generator.
inline std::vector<float> randomFloats(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 12345u;
  for (float &x : v) {
    s = s * 1664525u + 1013904223u;
    x = (float)((s >> 8) * (1.0 / 16777216.0)) * 4.0f - 2.0f;
  }
  return v;
}

/// A value of static `shape`; `state` indexes Program.states for kind State.
inline ValueSpec value(fb::DType dtype, std::vector<int64_t> shape, fb::ValueKind kind,
                       const std::string &name = "", int32_t state = -1) {
  ValueSpec v;
  v.name = name;
  v.dtype = dtype;
  v.rank = (int32_t)shape.size();
  v.shape = std::move(shape);
  v.kind = kind;
  v.state = state;
  return v;
}

} // namespace test
} // namespace kiln

#endif // KILN_TESTS_UNIT_RUNTIME_WRITERTESTUTIL_H
