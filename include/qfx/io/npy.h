// qfx io: NumPy .npy arrays, the format numpy users hand over for inputs, labels and outputs.
//
// Reads format versions 1.0, 2.0 and 3.0, C order, little-endian (or byte-order-free) dtypes:
// <f4 and <f8 (both give f32), <i8, <i4, |i1, |u1 (and |b1 as u8). Writes version 1.0 with
// the dtype of the tensor (f32 as <f4, i64 as <i8, ...), atomically.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qfx/core/tensor.h"

namespace qfx {
namespace io {

absl::StatusOr<Tensor> ReadNpy(const std::string& path);
// Parses an in-memory image of a file (`name` is used in error messages).
absl::StatusOr<Tensor> ParseNpy(const std::string& name, const char* data, size_t size);
absl::Status WriteNpy(const std::string& path, const Tensor& tensor);

}  // namespace io
}  // namespace qfx
