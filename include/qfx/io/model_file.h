// qfx io: .qfx model files — a converted (or any traced) GraphModule saved so that `qfx run` can load
// and run it without the model's C++ class.
//
// Format (safetensors carrier): tensors = the GraphModule's state_dict (int8 weights, per-channel weight
// scales, biases, float parameters of float layers); __metadata__:
//   "format": "qfx.model", "version": "2",
//   "graph":   the graph in the JSON schema of qfx/fx/formats.h; the op of a q_unary node (its second
//              argument) is the op's registered name ("hardswish"); version 1 files, which stored the
//              OpId number of their day there, still load,
//   "modules": {"conv1": {"type": "QuantizedConvReLU2d", "config": {...}}, ...} for every called module,
//              by its registered kind (qfx/nn/ops.h ModuleKind; user-defined leaf modules can register one),
//   "input_shape": "[1, 3, 224, 224]" (the shape the model was quantized for), "source": free text.
//   "checksum": "fnv1a64:<hex>" over the tensors' names, shapes, dtypes and bytes (absent in older files).
// Loading validates everything (format and version, module types and configs, graph lint against the
// modules, every tensor present with its dtype and shape, nothing extra, finite biases and weight scales,
// the checksum) and names the file and the problem. Writing is atomic.
#pragma once

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"

namespace qfx {
namespace io {

struct ModelFile {
  std::shared_ptr<fx::GraphModule> module;
  Shape input_shape;  // may be empty
  std::string source;
};

// A check of the model read back from what SaveModel wrote (for example: it gives the same outputs).
using ModelCheck = std::function<absl::Status(fx::GraphModule& reloaded)>;

// Saves atomically. Before the file replaces `path` it is read back with LoadModel (every rule of
// loading) and `check` runs on what loaded; either failing leaves `path` as it was.
absl::Status SaveModel(const std::string& path, fx::GraphModule& module, const Shape& input_shape,
                       const std::string& source, const ModelCheck& check = nullptr);
absl::StatusOr<ModelFile> LoadModel(const std::string& path);

}  // namespace io
}  // namespace qfx
