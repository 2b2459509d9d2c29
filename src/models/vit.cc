// qfx models: torchvision 0.14's VisionTransformer: a patchifying conv_proj, a class token, an encoder of
// pre-norm blocks (LayerNorm, nn.MultiheadAttention, LayerNorm, MLP with GELU) over learned position
// embeddings, and a linear head on the class token; torchvision's parameter names
// (encoder.layers.encoder_layer_0.self_attention.in_proj_weight) and initialisation. Like torchvision's, it
// reads the input's shape, so tracing it needs example inputs (a specialised trace).
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "qfx/models/zoo.h"
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using nn::Module;
using ModulePtr = std::shared_ptr<Module>;

// torchvision.models.vision_transformer.MLPBlock: Linear, GELU, Dropout, Linear, Dropout (names 0 to 4),
// xavier-uniform weights and N(0, 1e-6) biases.
std::shared_ptr<nn::Sequential> MlpBlock(int64_t dim, int64_t mlp_dim, double dropout) {
  auto mlp = std::make_shared<nn::Sequential>();
  auto fc1 = std::make_shared<nn::Linear>(dim, mlp_dim), fc2 = std::make_shared<nn::Linear>(mlp_dim, dim);
  for (const auto& fc : {fc1, fc2}) {
    const float bound = std::sqrt(6.f / static_cast<float>(fc->in_features + fc->out_features));
    nn::UniformInit(fc->weight, -bound, bound);
    nn::NormalInit(fc->bias, 0.f, 1e-6f);
  }
  mlp->push_back(fc1);
  mlp->push_back(std::make_shared<nn::GELU>());
  mlp->push_back(std::make_shared<nn::Dropout>(dropout));
  mlp->push_back(fc2);
  mlp->push_back(std::make_shared<nn::Dropout>(dropout));
  return mlp;
}

class EncoderBlock : public Module {
 public:
  explicit EncoderBlock(const VisionTransformerOptions& o) {
    ln_1_ = register_module("ln_1", std::make_shared<nn::LayerNorm>(std::vector<int64_t>{o.hidden_dim}, 1e-6));
    self_attention_ = register_module(
        "self_attention",
        std::make_shared<nn::MultiheadAttention>(o.hidden_dim, o.num_heads, o.attention_dropout, true, true));
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(o.dropout));
    ln_2_ = register_module("ln_2", std::make_shared<nn::LayerNorm>(std::vector<int64_t>{o.hidden_dim}, 1e-6));
    mlp_ = register_module("mlp", MlpBlock(o.hidden_dim, o.mlp_dim, o.dropout));
  }
  std::string type_name() const override { return "EncoderBlock"; }
  Tensor forward(const Tensor& input) override {
    const Tensor x = F::add((*dropout_)((*self_attention_)((*ln_1_)(input))), input);
    return F::add(x, (*mlp_)((*ln_2_)(x)));
  }

 private:
  ModulePtr ln_1_, self_attention_, dropout_, ln_2_, mlp_;
};

class Encoder : public Module {
 public:
  Encoder(const VisionTransformerOptions& o, int64_t seq_length) {
    pos_embedding_ = register_parameter("pos_embedding", Tensor::Empty({1, seq_length, o.hidden_dim}));
    nn::NormalInit(pos_embedding_, 0.f, 0.02f);
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(o.dropout));
    auto layers = std::make_shared<nn::Sequential>();
    for (int64_t i = 0; i < o.num_layers; ++i) {
      layers->push_back(absl::StrCat("encoder_layer_", i), std::make_shared<EncoderBlock>(o));
    }
    layers_ = register_module("layers", layers);
    ln_ = register_module("ln", std::make_shared<nn::LayerNorm>(std::vector<int64_t>{o.hidden_dim}, 1e-6));
  }
  std::string type_name() const override { return "Encoder"; }
  Tensor forward(const Tensor& x) override { return (*ln_)((*layers_)((*dropout_)(F::add(x, pos_embedding_)))); }

 private:
  Tensor pos_embedding_;
  ModulePtr dropout_, layers_, ln_;
};

class VisionTransformer : public Module {
 public:
  explicit VisionTransformer(const VisionTransformerOptions& o) : o_(o) {
    if (o.image_size <= 0 || o.patch_size <= 0 || o.image_size % o.patch_size != 0) {
      ThrowInvalid("VisionTransformer: image_size ", o.image_size, " must be a positive multiple of patch_size ",
                   o.patch_size);
    }
    if (o.num_layers <= 0 || o.mlp_dim <= 0 || o.num_classes <= 0 || o.in_channels <= 0) {
      ThrowInvalid("VisionTransformer: num_layers, mlp_dim, num_classes and in_channels must be positive");
    }
    nn::Conv2dArgs conv;
    conv.stride = o.patch_size;
    auto proj = std::make_shared<nn::Conv2d>(o.in_channels, o.hidden_dim, o.patch_size, conv);
    nn::NormalInit(proj->weight, 0.f, std::sqrt(1.f / static_cast<float>(o.in_channels * o.patch_size * o.patch_size)));
    proj->bias.Fill(0.f);
    conv_proj_ = register_module("conv_proj", proj);
    class_token_ = register_parameter("class_token", Tensor::Zeros({1, 1, o.hidden_dim}));
    const int64_t side = o.image_size / o.patch_size;
    encoder_ = register_module("encoder", std::make_shared<Encoder>(o, side * side + 1));
    auto heads = std::make_shared<nn::Sequential>();
    auto head = std::make_shared<nn::Linear>(o.hidden_dim, o.num_classes);
    head->weight.Fill(0.f);
    head->bias.Fill(0.f);
    heads->push_back("head", head);
    heads_ = register_module("heads", heads);
  }
  std::string type_name() const override { return "VisionTransformer"; }
  Tensor forward(const Tensor& x) override {
    if (x.dim() != 4 || x.size(1) != o_.in_channels || x.size(2) != o_.image_size || x.size(3) != o_.image_size) {
      ThrowInvalid("VisionTransformer: input ", x.ToString(), " must be [N, ", o_.in_channels, ", ", o_.image_size,
                   ", ", o_.image_size, "] (the image_size it was built for)");
    }
    // torchvision reshapes to (n, hidden, -1) and expands the class token to (n, -1, -1) with n = x.shape[0];
    // here the batch size is never read, so a trace specialised on example inputs takes any batch.
    const int64_t side = o_.image_size / o_.patch_size;
    Tensor y = (*conv_proj_)(x).Reshape({-1, o_.hidden_dim, side * side}).Permute({0, 2, 1});
    y = F::cat({F::expand_as(class_token_, F::narrow(y, 1, 0, 1)), y}, 1);
    return (*heads_)(F::select((*encoder_)(y), 1, 0));
  }

 private:
  VisionTransformerOptions o_;
  ModulePtr conv_proj_, encoder_, heads_;
  Tensor class_token_;
};

}  // namespace

std::shared_ptr<nn::Module> MakeVisionTransformer(const VisionTransformerOptions& options) {
  return std::make_shared<VisionTransformer>(options);
}

std::shared_ptr<nn::Module> MakeVitB16() { return MakeVisionTransformer(VisionTransformerOptions{}); }

std::shared_ptr<nn::Module> MakeVitFashion() {
  VisionTransformerOptions o;
  o.image_size = 28;
  o.patch_size = 7;
  o.num_layers = 4;
  o.num_heads = 4;
  o.hidden_dim = 64;
  o.mlp_dim = 128;
  o.in_channels = 1;
  o.num_classes = 10;
  return MakeVisionTransformer(o);
}

}  // namespace models
}  // namespace qfx
