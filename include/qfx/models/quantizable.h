// qfx models: models marked up for eager-mode quantization (qfx/quant/eager.h), with torchvision's
// structures and parameter names (torchvision.models.quantization), so the same state_dict loads:
//   stub_cnn              QuantStub -> Conv2d(3, 8, 3, padding 1) -> BatchNorm2d -> ReLU -> DeQuantStub, the
//                         eager quantization tutorial's model (input [1, 3, 16, 16])
//   quantizable_resnet18  QuantizableResNet: quant / dequant stubs, each BasicBlock's residual add as
//                         FloatFunctional add_relu (input [1, 3, 224, 224])
//   quantizable_mobilenet_v2  QuantizableMobileNetV2: stubs, ReLU in place of ReLU6 (torchvision's
//                         _replace_relu), each block's residual add as FloatFunctional skip_add
// They are kept apart from the FX zoo (zoo.h), whose every model has FX fixtures.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/module.h"

namespace qfx {
namespace models {

const std::vector<ModelInfo>& ListQuantizableModels();
absl::StatusOr<std::shared_ptr<nn::Module>> CreateQuantizable(const std::string& name, uint64_t seed = 0);
// The module lists the model's fuse_model() fuses (torchvision's), for quant::FuseModules / FuseModulesQat.
absl::StatusOr<std::vector<std::vector<std::string>>> FusionLists(const std::string& name, nn::Module& model);

}  // namespace models
}  // namespace qfx
