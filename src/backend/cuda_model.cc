// qfx backend: a device plan on the GPU through the CUDA backend's plain functions (qfx/kernels/cuda.h);
// see qfx/backend/cuda_model.h.
#include "qfx/backend/cuda_model.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "qfx/kernels/cuda.h"

namespace qfx {
namespace backend {
namespace {

namespace cu = kernels::cuda;
namespace dev = kernels::device;

absl::Status CudaError(int code, const std::string& what) {
  if (code == 0) return absl::OkStatus();
  if (code == cu::kNotBuilt) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": qfx was built without CUDA (no nvcc at build time; install the CUDA toolkit under",
                     " /usr/local/cuda or set QFX_CUDA_PATH, and build again)"));
  }
  return absl::InternalError(absl::StrCat(what, ": ", cu::ErrorName(code), " (", code, "): ", cu::ErrorText(code)));
}

#define QFX_CUDA(call) QFX_RETURN_IF_ERROR(CudaError(call, #call))

// A device allocation freed on destruction.
struct DeviceBuffer {
  void* p = nullptr;
  bool pinned_host = false;
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (p != nullptr) pinned_host ? cu::FreeHost(p) : cu::Free(p);
  }
  absl::Status Alloc(size_t bytes) {
    QFX_CUDA(cu::Malloc(&p, bytes < 256 ? 256 : bytes));
    return absl::OkStatus();
  }
  absl::Status AllocHost(size_t bytes) {
    pinned_host = true;
    QFX_CUDA(cu::MallocHost(&p, bytes < 256 ? 256 : bytes));
    return absl::OkStatus();
  }
  template <typename T>
  absl::Status Upload(const std::vector<T>& v, void* stream) {
    QFX_RETURN_IF_ERROR(Alloc(v.size() * sizeof(T)));
    QFX_CUDA(cu::CopyToDeviceAsync(p, v.data(), v.size() * sizeof(T), stream));
    return absl::OkStatus();
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

}  // namespace

absl::Status CudaStatus() {
  int count = 0;
  const int e = cu::DeviceCount(&count);
  if (e == cu::kNotBuilt) return CudaError(e, "CUDA backend");
  if (e != 0) {
    return absl::UnavailableError(
        absl::StrCat("no GPU: cudaGetDeviceCount answered ", cu::ErrorName(e), " (", e, "): ", cu::ErrorText(e)));
  }
  if (count == 0) return absl::UnavailableError("no GPU: cudaGetDeviceCount found no device");
  return absl::OkStatus();
}

std::string CudaDeviceName() {
  char name[256];
  int major = 0, minor = 0;
  if (!CudaStatus().ok() || cu::DeviceInfo(name, sizeof(name), &major, &minor) != 0) return "";
  return absl::StrCat(name, " (sm_", major, minor, ")");
}

struct CudaModel::Layer {
  DeviceBuffer weight, bias, multiplier;
};

struct CudaModel::Shaped {
  DevicePlan plan;
  DeviceBuffer arena, tables, input, output;  // device
  DeviceBuffer input_host, output_host;       // pinned host staging
  size_t input_bytes = 0, output_bytes = 0;
  void* graph = nullptr;
  ~Shaped() {
    if (graph != nullptr) cu::GraphDestroy(graph);
  }
};

absl::StatusOr<std::unique_ptr<CudaModel>> CudaModel::Load(fx::GraphModule& model, Options options) {
  QFX_RETURN_IF_ERROR(CudaStatus());
  std::unique_ptr<CudaModel> m(new CudaModel(model));
  m->options_ = options;
  QFX_ASSIGN_OR_RETURN(m->weights_, BuildDeviceWeights(model));
  QFX_RETURN_IF_ERROR(m->Upload());
  return m;
}

CudaModel::CudaModel(fx::GraphModule& model) : model_(model) {}

CudaModel::~CudaModel() {
  shaped_.clear();
  layers_.clear();
  if (stream_ != nullptr) cu::StreamDestroy(stream_);
}

absl::Status CudaModel::Upload() {
  QFX_CUDA(cu::SetDevice(0));
  QFX_CUDA(cu::StreamCreate(&stream_));
  for (const DeviceLayer& l : weights_.layers) {
    auto d = std::make_unique<Layer>();
    QFX_RETURN_IF_ERROR(d->weight.Upload(l.weight, stream_));
    QFX_RETURN_IF_ERROR(d->bias.Upload(l.bias, stream_));
    QFX_RETURN_IF_ERROR(d->multiplier.Upload(l.multiplier, stream_));
    layers_.push_back(std::move(d));
  }
  QFX_CUDA(cu::StreamSynchronize(stream_));  // the host vectors may go after this
  return absl::OkStatus();
}

int64_t CudaModel::arena_bytes(const Shape& shape) const {
  auto it = shaped_.find(shape);
  return it == shaped_.end() ? 0 : it->second->plan.arena_bytes;
}

absl::StatusOr<CudaModel::Shaped*> CudaModel::Prepare(const Shape& shape) {
  auto it = shaped_.find(shape);
  if (it != shaped_.end()) return it->second.get();
  auto s = std::make_unique<Shaped>();
  QFX_ASSIGN_OR_RETURN(s->plan, BuildDevicePlan(model_, shape, weights_));
  const DevicePlan& plan = s->plan;
  s->input_bytes = static_cast<size_t>(NumElements(plan.input_shape)) * sizeof(float);
  s->output_bytes = static_cast<size_t>(NumElements(plan.output_shape)) * (plan.output_float ? sizeof(float) : 1);
  QFX_RETURN_IF_ERROR(s->arena.Alloc(static_cast<size_t>(plan.arena_bytes)));
  QFX_RETURN_IF_ERROR(s->input.Alloc(s->input_bytes));
  QFX_RETURN_IF_ERROR(s->output.Alloc(s->output_bytes));
  QFX_RETURN_IF_ERROR(s->input_host.AllocHost(s->input_bytes));
  QFX_RETURN_IF_ERROR(s->output_host.AllocHost(s->output_bytes));
  std::vector<uint8_t> tables;
  for (const auto& t : plan.tables) tables.insert(tables.end(), t.begin(), t.end());
  QFX_RETURN_IF_ERROR(s->tables.Upload(tables, stream_));
  QFX_CUDA(cu::StreamSynchronize(stream_));
  // One forward captured as a graph: replaying it costs one launch.
  QFX_CUDA(cu::BeginCapture(stream_));
  const absl::Status enqueued = Enqueue(*s);
  void* graph = nullptr;
  const int ended = cu::EndCapture(stream_, &graph);
  QFX_RETURN_IF_ERROR(enqueued);
  QFX_CUDA(ended);
  s->graph = graph;
  Shaped* p = s.get();
  shaped_[shape] = std::move(s);
  return p;
}

absl::Status CudaModel::Enqueue(const Shaped& s) {
  const DevicePlan& plan = s.plan;
  uint8_t* arena = s.arena.as<uint8_t>();
  auto at = [&](int v) { return arena + plan.values[v].offset; };
  if (options_.poison >= 0) QFX_CUDA(cu::MemsetAsync(arena, options_.poison, plan.arena_bytes, stream_));
  QFX_CUDA(cu::CopyToDeviceAsync(s.input.p, s.input_host.p, s.input_bytes, stream_));
  for (const Step& st : plan.steps) {
    uint8_t* y = st.output >= 0 ? at(st.output) : nullptr;
    int e = 0;
    switch (st.kind) {
      case StepKind::kQuantize:
        e = cu::Quantize(st.quantize, s.input.as<float>(), y, stream_);
        break;
      case StepKind::kDequantize:
        e = cu::Dequantize(st.dequantize, at(st.inputs[0]), s.output.p, stream_);
        break;
      case StepKind::kConv: {
        dev::ConvParams p = st.conv;
        const Layer& l = *layers_[st.weights];
        p.weight = l.weight.as<int8_t>();
        p.bias = l.bias.as<int32_t>();
        p.multiplier = l.multiplier.as<float>();
        if (p.add.enabled) p.residual = at(st.inputs[1]);
        e = st.mma ? cu::ConvMma(p, l.weight.as<int8_t>(), weights_.layers[st.weights].weight_icp, at(st.inputs[0]), y,
                                 stream_)
                   : cu::Conv(p, at(st.inputs[0]), y, stream_);
        break;
      }
      case StepKind::kMaxPool:
        e = cu::MaxPool(st.pool, at(st.inputs[0]), y, stream_);
        break;
      case StepKind::kAvgPool:
        e = cu::AvgPool(st.pool, at(st.inputs[0]), y, stream_);
        break;
      case StepKind::kBinary:
        e = cu::Binary(st.binary, at(st.inputs[0]), at(st.inputs[1]), y, stream_);
        break;
      case StepKind::kRequantCopy:
        e = cu::RequantCopy(st.copy, at(st.inputs[0]), y, stream_);
        break;
      case StepKind::kTable:
        e = cu::Table(s.tables.as<uint8_t>() + 256 * st.weights, plan.values[st.output].act.Bytes(), at(st.inputs[0]),
                      y, stream_);
        break;
      case StepKind::kFlatten:
        e = cu::Flatten(st.flatten, at(st.inputs[0]), y, stream_);
        break;
    }
    QFX_RETURN_IF_ERROR(CudaError(e, absl::StrCat(StepKindName(st.kind), " kernel of node %", st.node)));
  }
  QFX_CUDA(cu::CopyToHostAsync(s.output_host.p, s.output.p, s.output_bytes, stream_));
  return absl::OkStatus();
}

absl::StatusOr<Tensor> CudaModel::Run(const Tensor& x) {
  if (x.dtype() != DType::kF32 || x.is_quantized()) {
    return absl::InvalidArgumentError(absl::StrCat("CudaModel::Run: input ", x.ToString(), " must be f32"));
  }
  QFX_ASSIGN_OR_RETURN(Shaped * s, Prepare(x.shape()));
  std::memcpy(s->input_host.p, x.data<float>(), s->input_bytes);
  QFX_CUDA(cu::GraphLaunch(s->graph, stream_));
  QFX_CUDA(cu::StreamSynchronize(stream_));
  const DevicePlan& plan = s->plan;
  Tensor y = plan.output_float ? Tensor::Uninitialized(plan.output_shape)
                               : Tensor::Quantized(plan.output_shape, DType::kU8, plan.output_qparams);
  std::memcpy(plan.output_float ? static_cast<void*>(y.data<float>()) : static_cast<void*>(y.data<uint8_t>()),
              s->output_host.p, s->output_bytes);
  return y;
}

absl::StatusOr<std::shared_ptr<CudaModule>> CudaModule::Load(std::shared_ptr<fx::GraphModule> model) {
  auto m = std::make_shared<CudaModule>();
  QFX_ASSIGN_OR_RETURN(m->cuda_, CudaModel::Load(*model));
  m->model_ = std::move(model);
  return m;
}

Tensor CudaModule::forward(const Tensor& x) {
  absl::StatusOr<Tensor> y = cuda_->Run(x);
  if (!y.ok()) throw Error(y.status());
  return *std::move(y);
}

}  // namespace backend
}  // namespace qfx
