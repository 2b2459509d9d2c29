// qfx models: the model zoo, defined in C++ with torchvision's module structure and parameter names,
// so a torchvision state_dict saved as safetensors loads with strict=true.
//
//   resnet18, resnet50, mobilenet_v2, mobilenet_v3_small,
//   shufflenet_v2_x1_0, regnet_x_400mf, efficientnet_b0,
//   inception_v3 (H, W >= 75)                             : [N, 3, H, W] -> [N, 1000]
//   mlp (784-256-128-10), mnist_cnn                       : [N, 1, 28, 28] -> [N, 10]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/nn/module.h"

namespace qfx {
namespace models {

struct ModelInfo {
  std::string name;
  std::vector<int64_t> input_shape;  // the default input, batch 1
  std::string description;
  int64_t min_size = 1;  // the smallest height and width it takes (torchvision's meta "min_size")
};

// Every registered model, in a stable order.
const std::vector<ModelInfo>& ListModels();
absl::StatusOr<ModelInfo> GetModelInfo(const std::string& name);

// Builds a model by name with seeded, PyTorch-like initialisation (torchvision's rules: Kaiming normal
// fan_out for convolutions, batch norm weight 1 and bias 0, the model's own rule for Linear layers).
// The model is in eval mode. Unknown names give kNotFound listing the known ones.
absl::StatusOr<std::shared_ptr<nn::Module>> Create(const std::string& name, uint64_t seed = 0);

}  // namespace models
}  // namespace qfx
