// qfx io: safetensors files (https://github.com/huggingface/safetensors format), the carrier for
// weights (PyTorch state_dict names) and, later, .qfx models.
//
// Layout: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {string: string}}, then the data. Supported dtypes: F32, I64, I32, I8, U8.
// Reading validates the header fully (sizes, offsets inside the file, no overlap, byte counts that fit
// dtype x shape) and returns errors naming the file and the tensor.
#pragma once

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qfx/io/file.h"
#include "qfx/nn/module.h"

namespace qfx {
namespace io {

struct Safetensors {
  nn::NamedTensors tensors;  // in file order
  std::map<std::string, std::string> metadata;
};

// Reads a file through a memory mapping: tensors whose data is aligned for their dtype borrow the
// mapping (no copy); the rest are copied.
absl::StatusOr<Safetensors> ReadSafetensors(const std::string& path);
// Parses an in-memory image of a file (`name` is used in error messages).
absl::StatusOr<Safetensors> ParseSafetensors(const std::string& name, const char* data, size_t size);

// Writes atomically; data offsets are 64-byte aligned. `check`, when given, reads what was written (from
// a path it is handed) before it replaces `path`; its error leaves `path` as it was.
absl::Status WriteSafetensors(const std::string& path, const nn::NamedTensors& tensors,
                              const std::map<std::string, std::string>& metadata = {},
                              const WriteCheck& check = nullptr);

// Reads `path` and loads it into `module` (see Module::load_state_dict).
absl::Status LoadWeights(nn::Module& module, const std::string& path, bool strict = true);

}  // namespace io
}  // namespace qfx
