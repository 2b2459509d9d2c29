// qfx models: the model zoo, defined in C++ with torchvision's module structure and parameter names,
// so a torchvision state_dict saved as safetensors loads with strict=true.
//
//   resnet18, resnet50, mobilenet_v2, mobilenet_v3_small,
//   shufflenet_v2_x1_0, regnet_x_400mf, efficientnet_b0,
//   inception_v3 (H, W >= 75)                             : [N, 3, H, W] -> [N, 1000]
//   vit_b_16 (224 x 224 only)                             : [N, 3, 224, 224] -> [N, 1000]
//   vit_fmnist (a small ViT for Fashion-MNIST)            : [N, 1, 28, 28] -> [N, 10]
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
  int64_t min_size = 1;     // the smallest height and width it takes (torchvision's meta "min_size")
  bool fixed_size = false;  // takes only input_shape's height and width (vision transformers)
};

// torchvision's VisionTransformer settings (the defaults are vit_b_16's). in_channels is qfx's addition
// (torchvision's conv_proj always takes 3) for one-channel data such as Fashion-MNIST.
struct VisionTransformerOptions {
  int64_t image_size = 224, patch_size = 16, num_layers = 12, num_heads = 12, hidden_dim = 768, mlp_dim = 3072;
  double dropout = 0.0, attention_dropout = 0.0;
  int64_t num_classes = 1000, in_channels = 3;
};
// A VisionTransformer of any size (e.g. image 28, patch 7, 4 layers, 4 heads, hidden 64 for fast tests),
// initialised as torchvision does (zero head), in training mode as constructed.
std::shared_ptr<nn::Module> MakeVisionTransformer(const VisionTransformerOptions& options);

// Hugging Face's BertConfig (the defaults are all-MiniLM-L6-v2's: 6 layers, hidden 384, 12 heads).
struct BertOptions {
  int64_t vocab_size = 30522, hidden_size = 384, num_hidden_layers = 6, num_attention_heads = 12,
          intermediate_size = 1536, max_position_embeddings = 512, type_vocab_size = 2;
  double layer_norm_eps = 1e-12, hidden_dropout_prob = 0.1, attention_probs_dropout_prob = 0.1;
};
// HF's BertModel with its parameter names (src/models/bert.cc): forward_args takes input_ids (i64 [B, L]) and
// optionally attention_mask (f32 [B, L], 1 for tokens, 0 for padding); it returns the last hidden state
// [B, L, hidden]. Initialised as HF does; in training mode as constructed.
std::shared_ptr<nn::Module> MakeBert(const BertOptions& options);

// Every registered model, in a stable order.
const std::vector<ModelInfo>& ListModels();
absl::StatusOr<ModelInfo> GetModelInfo(const std::string& name);

// Builds a model by name with seeded, PyTorch-like initialisation (torchvision's rules: Kaiming normal
// fan_out for convolutions, batch norm weight 1 and bias 0, the model's own rule for Linear layers).
// The model is in eval mode. Unknown names give kNotFound listing the known ones.
absl::StatusOr<std::shared_ptr<nn::Module>> Create(const std::string& name, uint64_t seed = 0);

}  // namespace models
}  // namespace qfx
