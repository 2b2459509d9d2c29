// qfx backend: a lowered int8 model resident on an NVIDIA GPU.
//
//   auto gpu = backend::CudaModel::Load(model);   // plans, uploads the int8 weights once
//   absl::StatusOr<Tensor> y = (*gpu)->Run(x);    // bit-identical to model.forward(x) on the CPU
//
// Per input shape, the first Run builds a device plan (qfx/backend/device_plan.h), allocates its arena
// and pinned staging buffers, and captures the forward (input copy, every kernel, output copy) on one
// stream into a CUDA graph; later Runs of that shape replay the graph and synchronise once at the end.
// Without a GPU (or in a qfx built without CUDA) Load fails and says why (CudaStatus).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "qfx/backend/device_plan.h"
#include "qfx/nn/module.h"

namespace qfx {
namespace backend {

// OK when a GPU answers; otherwise why not ("qfx was built without CUDA", "no GPU: cudaGetDeviceCount ...").
absl::Status CudaStatus();
// "NVIDIA H200 (sm_90)", for reports; empty without a GPU.
std::string CudaDeviceName();

class CudaModel {
 public:
  struct Options {
    // Fill the arena with this byte at the start of every forward (inside the graph; -1: never), so a
    // kernel that reads what no kernel of this forward wrote shows up in a comparison (the tests).
    int poison = -1;
  };
  static absl::StatusOr<std::unique_ptr<CudaModel>> Load(fx::GraphModule& model, Options options);
  static absl::StatusOr<std::unique_ptr<CudaModel>> Load(fx::GraphModule& model) { return Load(model, Options()); }
  ~CudaModel();
  CudaModel(const CudaModel&) = delete;
  CudaModel& operator=(const CudaModel&) = delete;

  // x: f32 NCHW (or [N, F]); returns what the CPU backend returns for x.
  absl::StatusOr<Tensor> Run(const Tensor& x);
  // Device bytes held for weights, and for the arena of the plan of `shape` (0 before its first Run).
  int64_t weight_bytes() const { return weights_.Bytes(); }
  int64_t arena_bytes(const Shape& shape) const;

 private:
  struct Layer;
  struct Shaped;
  explicit CudaModel(fx::GraphModule& model);
  absl::Status Upload();
  absl::StatusOr<Shaped*> Prepare(const Shape& shape);
  absl::Status Enqueue(const Shaped& s);

  fx::GraphModule& model_;
  Options options_;
  DeviceWeights weights_;
  void* stream_ = nullptr;
  std::vector<std::unique_ptr<Layer>> layers_;  // device copies of weights_.layers
  std::map<Shape, std::unique_ptr<Shaped>> shaped_;
};

// A CudaModel as a module, for code that runs modules (RunModule, the CLI's run / eval / bench): forward
// runs on the GPU and throws qfx::Error with the CUDA backend's message on failure. It keeps `model` alive.
class CudaModule : public nn::Module {
 public:
  static absl::StatusOr<std::shared_ptr<CudaModule>> Load(std::shared_ptr<fx::GraphModule> model);
  std::string type_name() const override { return "CudaModule"; }
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  CudaModel& cuda() { return *cuda_; }

 private:
  std::shared_ptr<fx::GraphModule> model_;
  std::unique_ptr<CudaModel> cuda_;
};

}  // namespace backend
}  // namespace qfx
