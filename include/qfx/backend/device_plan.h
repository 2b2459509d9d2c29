// qfx backend: a lowered int8 GraphModule as a device plan, the program the CUDA backend runs.
//
// BuildDeviceWeights reads every int8 layer once (weights in the device layout, bias' and multipliers of
// qfx/kernels/device_ops.h); BuildDevicePlan walks the graph for one input shape into
// steps on activations in the device layout (NHWC u8, channels padded to 16), each with its params, and
// places every activation in one arena by liveness (activations whose lifetimes do not overlap share
// bytes). The graph must be what convert and Lower produce: a float input, quantize, int8 ops, dequantize
// (or a quint8 output); any other op is an error naming the node and its op.
//
// RunPlanOnHost executes a plan on the CPU with the same per-output functions the CUDA kernels call:
// the tests compare it byte for byte with the CPU backend, which checks the plan, the layouts, the arena
// and the rules without a GPU.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/kernels/device_ops.h"

namespace qfx {
namespace backend {

// One int8 convolution or linear layer in the device layout.
struct DeviceLayer {
  std::string node;
  int32_t in_channels = 0, out_channels = 0, kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
  int32_t groups = 1;
  int32_t weight_icp = 0;  // the weight's innermost extent: in_channels / groups rounded up to 4, or to 32
                           // for the tensor-core kernel (UsesTensorCores)
  int32_t x_zero_point = 0, y_zero_point = 0, lo = 0, hi = 255;
  float x_scale = 1.f, y_scale = 1.f;
  std::vector<int8_t> weight;  // [out][kh][kw][weight_icp], zeros past in_channels / groups
  std::vector<int32_t> bias;   // bias'
  std::vector<float> multiplier;
};

// What a model needs on the device whatever the input shape: its int8 layers, by node name.
struct DeviceWeights {
  std::vector<DeviceLayer> layers;
  std::map<std::string, int> layer_of;  // node name -> index
  int64_t Bytes() const;
};

absl::StatusOr<DeviceWeights> BuildDeviceWeights(fx::GraphModule& model);

// The one place a convolution's device kernel is chosen: the tensor-core implicit GEMM (mma.sync) when the
// layer has one group, else the per-output dp4a / scalar kernel.
bool UsesTensorCores(const DeviceLayer& layer);

enum class StepKind { kQuantize, kDequantize, kConv, kMaxPool, kAvgPool, kBinary, kRequantCopy, kTable, kFlatten };
const char* StepKindName(StepKind kind);

// One kernel launch. Activations are value indices; the params' pointers stay null in the plan (an executor
// fills in the arena and weight addresses).
struct Step {
  StepKind kind = StepKind::kConv;
  std::string node;
  std::vector<int> inputs;  // kQuantize: none (it reads the plan's float input)
  int output = -1;          // kDequantize: none (it writes the plan's output)
  int weights = -1;         // kConv: DeviceWeights::layers index; kTable: DevicePlan::tables index
  bool mma = false;         // kConv: the tensor-core kernel (UsesTensorCores)
  kernels::device::ConvParams conv;
  kernels::device::PoolParams pool;
  kernels::device::BinaryParams binary;
  kernels::device::RequantCopyParams copy;
  kernels::device::QuantizeParams quantize;
  kernels::device::DequantizeParams dequantize;
  kernels::device::FlattenParams flatten;
};

struct DeviceValue {
  std::string node;
  kernels::device::Act act;
  int64_t offset = 0;  // in the arena
};

struct DevicePlan {
  Shape input_shape;         // NCHW or [N, F], float
  Shape output_shape;        // the logical (NCHW / [N, F]) shape of the result
  bool output_float = true;  // false: the quint8 bytes, with output_qparams
  QuantInfo output_qparams;
  std::vector<DeviceValue> values;
  std::vector<Step> steps;
  // Elementwise ops as lookup tables, computed by the CPU op itself on the 256 values of its input.
  std::vector<std::array<uint8_t, 256>> tables;
  int64_t arena_bytes = 0;
  int64_t unshared_bytes = 0;  // what the activations would take without sharing (reports, tests)
};

// `shape` is the model's input shape (batch included).
absl::StatusOr<DevicePlan> BuildDevicePlan(fx::GraphModule& model, const Shape& shape, const DeviceWeights& weights);

// Runs `plan` on the CPU. The arena is filled with `poison` first, so a value read before it is written,
// or overwritten while still live, shows up as a wrong result.
absl::StatusOr<Tensor> RunPlanOnHost(const DevicePlan& plan, const DeviceWeights& weights, const Tensor& x,
                                     uint8_t poison = 0xa5);

// One line per step (kind, node, output layout, arena offset), for `qfx dump`-style reports and errors.
std::string FormatPlan(const DevicePlan& plan);

}  // namespace backend
}  // namespace qfx
