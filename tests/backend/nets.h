// qfx tests: lowered int8 models for the device backend's tests: a small net through every device op at a
// given convolution geometry, and the zoo models at small inputs; each comes with a seeded input.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "qfx/fx/graph_module.h"

namespace qfx {
namespace testing {

struct OpsNet {
  // The first convolution's geometry and the input's spatial size.
  struct Geometry {
    int64_t cin = 3, cout = 8, kernel = 3, stride = 1, padding = 1, dilation = 1, groups = 1, h = 8, w = 8;
  };
  // What RandomGeometry draws from: C_in in 1..max_cin, one group, two, three (where they divide C_in) or
  // depthwise, C_out up to about max_cout, a kernel from `kernels`, stride 1..3, dilation 1..max_dilation,
  // padding up to dilation x (kernel - 1), and an input at least the kernel's reach, up to max_h x max_w.
  struct Range {
    int max_cin = 19, max_cout = 24, max_dilation = 2, max_h = 21, max_w = 23;
    std::vector<int64_t> kernels = {1, 2, 3, 5};
  };
};

OpsNet::Geometry RandomGeometry(std::mt19937& rng, const OpsNet::Range& range);
// "cin 3 cout 8 k 3 s 1 p 1 d 1 g 1 in 8x8", for test traces.
std::string Describe(const OpsNet::Geometry& g);

// conv(geometry)-relu, a depthwise conv with a residual add-relu, a squeeze-excite q_mul (broadcast), a
// hardswish table, max and average pools concatenated, adaptive average pooling, flatten and a linear layer;
// prepared with the x86 qconfig, calibrated on a seeded batch, converted and lowered. Null on failure
// (with a test failure recorded).
std::shared_ptr<fx::GraphModule> Int8OpsNet(const OpsNet::Geometry& g, int64_t batch, int seed, Tensor* x);

// A zoo model, hash-initialised, at `batch` and at most 64 x 64 pixels, lowered to int8 as above.
std::shared_ptr<fx::GraphModule> Int8ZooModel(const std::string& name, int64_t batch, Tensor* x);
// For a zoo model with ops the device backend has no kernel for yet, the start of the error its device plan
// gives (shufflenet's channel_shuffle; the vision transformers' [N, C, L] reshape before their float
// LayerNorm and attention); nullptr for the others.
inline const char* DeviceGap(const std::string& name) {
  if (name == "shufflenet_v2_x1_0") {
    return "node %channel_shuffle (call_function channel_shuffle): op channel_shuffle has no device kernel";
  }
  if (name == "vit_b_16" || name == "vit_fmnist") return "node %reshape (call_method reshape): reshape of ";
  return nullptr;
}
inline bool LacksDeviceKernels(const std::string& name) { return DeviceGap(name) != nullptr; }

}  // namespace testing
}  // namespace qfx
