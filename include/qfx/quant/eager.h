// qfx quant: eager-mode quantization on the module tree, PyTorch 1.13's torch.ao.quantization eager API
// (for models that SymbolicTrace cannot take: data-dependent control flow, shape-dependent code).
//
// The model marks itself up with QuantStub / DeQuantStub / FloatFunctional (qfx/nn/quant_stubs.h). Then:
//   FuseModules(model, {{"conv1", "bn1", "relu"}, ...})       fuse_modules (eval) / FuseModulesQat (train)
//   PrepareEager(model, &mapping)        propagate_qconfig_ + an observer on the output of every leaf module
//                                        with a qconfig (its child `activation_post_process`, run by a
//                                        forward hook), and on each FloatFunctional
//   ... run calibration data through model ...
//   ConvertEager(model)                  module swap: QuantStub -> Quantize, DeQuantStub -> DeQuantize,
//                                        Conv2d / ConvReLU2d / Linear / LinearReLU / QAT modules -> int8
//                                        modules on the same kernels as the FX flow, Hardswish -> a table op,
//                                        FloatFunctional -> QFunctional; observers removed
// PrepareQatEager swaps in QAT modules (fake-quant weights) first and inserts fake-quant modules.
// All calls work in place: the C++ model keeps its class and its forward, and a module that was swapped
// is reached through the parent that holds it (nn::Module::SwapSubmodule redirects the parent's calls).
// Quantized modules read their input's qparams at run time (as PyTorch's do) and pack once per qparams.
//
// Differences from PyTorch, on purpose: a float module given a quantized tensor fails naming the module
// and the stub to add (PyTorch: "Could not run 'aten::...' with arguments from the 'QuantizedCPU'
// backend"); a quantized module given a float tensor fails naming the QuantStub to add; a prepare that
// gives no module a qconfig is an error (PyTorch warns); an observer that saw no data is reported.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/nn/quant_stubs.h"
#include "qfx/quant/observer.h"
#include "qfx/quant/qconfig_mapping.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace quant {

// ----- qconfigs on modules (PyTorch's module.qconfig attribute) -----
// A qconfig set on a module (std::nullopt: "none", keep it float) wins over every rule and its parent's.
void SetQConfig(nn::Module& module, MaybeQConfig qconfig);
// The module's qconfig, or null when none was set or propagated.
const MaybeQConfig* GetQConfig(const nn::Module& module);
// propagate_qconfig_: each module takes, in increasing precedence, its parent's qconfig, the mapping's
// global (for the root), object_type rules (module type names), module_name_regex rules, module_name rules
// (which cover the submodules), and a qconfig set on it. Returns warnings for user rules that matched no
// module; module_name_object_type_order rules need a graph and are an error here.
absl::StatusOr<std::vector<std::string>> PropagateQConfig(nn::Module& model, const QConfigMapping& mapping);

// ----- fusion (fuse_modules / fuse_modules_qat) -----
// Each list names modules by path, in call order; supported lists (by type): Conv2d+BatchNorm2d(+ReLU),
// Conv2d+ReLU, Linear+BatchNorm1d, Linear+ReLU, BatchNorm2d+ReLU. The first module becomes the fused
// module and the others Identity. FuseModules folds batch norm and needs eval mode; FuseModulesQat keeps it
// (ConvBn2d / ConvBnReLU2d) and needs training mode. Errors name the list and what is wrong.
absl::Status FuseModules(nn::Module& model, const std::vector<std::vector<std::string>>& lists);
absl::Status FuseModulesQat(nn::Module& model, const std::vector<std::vector<std::string>>& lists);

// ----- prepare and convert -----
struct EagerReport {
  std::vector<std::string> observed;           // module paths that got an observer / fake-quant, in tree order
  std::map<std::string, std::string> swapped;  // path -> the type it became
  std::vector<std::string> warnings;
};

// With `mapping` null the qconfigs already on the modules are used (SetQConfig or an earlier propagate).
absl::StatusOr<EagerReport> PrepareEager(nn::Module& model, const QConfigMapping* mapping = nullptr);
// The model must be in training mode; qconfigs must have fake-quant specs (the *_qat presets).
absl::StatusOr<EagerReport> PrepareQatEager(nn::Module& model, const QConfigMapping* mapping = nullptr);

// What a swap function gets: the module's path, its qconfig and its observer's qparams (null when the
// module has no observer).
struct EagerSwapContext {
  std::string path;
  QConfig qconfig;
  const QParams* output = nullptr;
};
using EagerSwapFn = std::function<absl::StatusOr<std::shared_ptr<nn::Module>>(nn::Module&, const EagerSwapContext&)>;

// Module type name -> how convert swaps it (PyTorch's mapping argument). Users add their own types.
class EagerMapping {
 public:
  EagerMapping& Set(const std::string& type, EagerSwapFn fn);
  const EagerSwapFn* Find(const std::string& type) const;

 private:
  std::map<std::string, EagerSwapFn> swaps_;
};
const EagerMapping& DefaultEagerMapping();

absl::StatusOr<EagerReport> ConvertEager(nn::Module& model, const EagerMapping& mapping = DefaultEagerMapping());

// A converted eager model as a graph of the FX flow's int8 ops, so that it saves as a .qfx file
// (io::SaveModel) and runs without its C++ class: traces `model` (which must be traceable) after running
// `example` through it, then puts, in the graph module's own tree, each EagerQuantizedWeighted's int8
// module for the input qparams it saw. The eager model itself is unchanged.
absl::StatusOr<std::shared_ptr<fx::GraphModule>> TraceConverted(std::shared_ptr<nn::Module> model,
                                                                const Tensor& example);

// quantize_dynamic: every module whose type is in `types` becomes a DynamicQuantizedLinear with its weight
// quantized by `qconfig.weight` (the `dynamic` preset's when not given); nothing needs calibration.
absl::StatusOr<EagerReport> QuantizeDynamicEager(nn::Module& model, const std::set<std::string>& types = {"Linear"},
                                                 const QConfig* qconfig = nullptr);

// The QAT switches, on any module tree (eager or traced).
void FreezeBnStatsIn(nn::Module& model, bool freeze = true);
void EnableObserversIn(nn::Module& model, bool on);
void EnableFakeQuantIn(nn::Module& model, bool on);

// ----- the converted modules -----
// Quantize (QuantStub's int8 form): float -> quint8 with its `scale` / `zero_point` buffers.
class Quantize : public nn::Module {
 public:
  explicit Quantize(QuantInfo q);
  std::string type_name() const override { return "Quantize"; }
  Tensor forward(const Tensor& x) override;

 private:
  Tensor scale_, zero_point_;
};

// DeQuantize (DeQuantStub's int8 form): quint8 -> float.
class DeQuantize : public nn::Module {
 public:
  std::string type_name() const override { return "DeQuantize"; }
  Tensor forward(const Tensor& x) override;
};

// FloatFunctional's int8 form: add / add_relu / mul / cat requantized to its `scale` / `zero_point`.
class QFunctional : public nn::FloatFunctional {
 public:
  explicit QFunctional(QuantInfo q);
  std::string type_name() const override { return "QFunctional"; }
  Tensor add(const Tensor& a, const Tensor& b) override;
  Tensor add_relu(const Tensor& a, const Tensor& b) override;
  Tensor mul(const Tensor& a, const Tensor& b) override;
  Tensor add_scalar(const Tensor& a, double b) override;
  Tensor mul_scalar(const Tensor& a, double b) override;
  Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0) override;

 private:
  QuantInfo Out() const;
  Tensor scale_, zero_point_;
};

// A converted Conv2d / Linear (plain, fused with ReLU, or QAT with batch norm folded): int8 weights, float
// bias, output qparams as buffers (weight, weight_scale, bias, scale, zero_point); runs a QuantizedConv2d /
// QuantizedLinear built for the qparams of the input it gets (rebuilt when they change or the state is
// loaded).
class EagerQuantizedWeighted : public nn::Module {
 public:
  EagerQuantizedWeighted(QuantizedLayer layer, QuantInfo output, std::string path);
  std::string type_name() const override;
  bool is_leaf() const override { return true; }
  Tensor forward(const Tensor& x) override;
  void StateLoaded() override;
  // The int8 module built for the last input's qparams, or null before the first forward.
  std::shared_ptr<QuantizedWeighted> built() const;

 private:
  QuantizedLayer layer_;
  Tensor scale_, zero_point_;
  std::string path_;
  mutable std::mutex mu_;
  std::shared_ptr<QuantizedWeighted> built_;
};

// A converted elementwise module with its own output qparams (Hardswish, ...): a q_unary table op.
class EagerQuantizedUnary : public nn::Module {
 public:
  EagerQuantizedUnary(std::string type, OpId op, QuantInfo output);
  std::string type_name() const override { return type_; }
  Tensor forward(const Tensor& x) override;

 private:
  std::string type_;
  OpId op_;
  Tensor scale_, zero_point_;
};

}  // namespace quant
}  // namespace qfx
