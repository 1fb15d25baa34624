// NumPy .npy files (format 1.0/2.0/3.0, little-endian, C order): '<f4', '<i8',
// '|b1', '<i4', '<f2', '|i1', '|u1'. Anything else is a clear error.
#ifndef KILN_RUNTIME_IO_NPY_H
#define KILN_RUNTIME_IO_NPY_H

#include "runtime-stub/core/Tensor.h"

#include <string>
#include <vector>

namespace kiln {
namespace rt {

/// Parses .npy bytes (copies the data into an owned tensor).
Result<Tensor> parseNpy(const void *data, size_t size);
/// Reads a .npy file.
Result<Tensor> readNpy(const std::string &path);
/// Serialises a tensor as .npy (version 1.0 header padded to 64 bytes).
Result<std::vector<uint8_t>> encodeNpy(const Tensor &t);
/// Writes a .npy file atomically (PATH.tmp.<pid> then rename).
Error writeNpy(const std::string &path, const Tensor &t);

} // namespace rt
} // namespace kiln

#endif // KILN_RUNTIME_IO_NPY_H
