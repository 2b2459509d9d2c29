// qfx quant: the fused modules that Fuse produces (torch.ao.nn.intrinsic's ConvReLU2d, LinearReLU,
// BNReLU2d), and batch-norm folding for eval-mode fusion (PyTorch's fuse_conv_bn_weights).
//
// A fused module is a Sequential of its parts, named "0", "1" as in PyTorch, and a leaf for tracing, so a
// later pass sees one call_module node. Folding computes in float32 in PyTorch's order:
//   w' = w * (gamma * rsqrt(var + eps)),  b' = (b - mean) * rsqrt(var + eps) * gamma + beta.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "qfx/nn/modules.h"

namespace qfx {
namespace quant {

class FusedSequential : public nn::Sequential {
 public:
  FusedSequential(std::string type, std::shared_ptr<nn::Module> first, std::shared_ptr<nn::Module> second);
  // Three or more parts: the float ConvBnReLU2d that FuseModulesQat builds (conv, bn, relu).
  FusedSequential(std::string type, const std::vector<std::shared_ptr<nn::Module>>& parts);
  std::string type_name() const override { return type_; }
  bool is_leaf() const override { return true; }
  // Runs the parts only: an eager-mode observer added as a child (activation_post_process) runs from its
  // forward hook, once.
  Tensor forward(const Tensor& x) override;
  size_t parts() const { return parts_; }

 private:
  std::string type_;
  size_t parts_;
};

// "ConvReLU2d", "LinearReLU", "BNReLU2d".
std::shared_ptr<FusedSequential> MakeFused(const std::string& type, std::shared_ptr<nn::Module> first,
                                           std::shared_ptr<nn::Module> second);

// A new Conv2d (or Linear) equal to `conv` followed by eval-mode `bn`.
std::shared_ptr<nn::Conv2d> FoldBatchNorm(const nn::Conv2d& conv, const nn::BatchNormBase& bn);
std::shared_ptr<nn::Linear> FoldBatchNorm(const nn::Linear& linear, const nn::BatchNormBase& bn);

}  // namespace quant
}  // namespace qfx
