// qfx command line: the subcommands, each a function from parsed options to a Status.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "qfx/core/tensor.h"
#include "qfx/fx/graph_module.h"
#include "qfx/io/model_file.h"
#include "qfx/nn/module.h"

namespace qfx {
namespace cli {

struct ModelFlags {
  std::string file;     // a .qfx model file instead of --model (fp32 for quantize, train and qat)
  std::string model;    // zoo name
  std::string weights;  // optional safetensors file
  uint64_t seed = 0;
  std::string device = "cpu";  // run, eval, bench: cpu | cuda (int8 .qfx files)
};

struct RunFlags {
  ModelFlags model;
  std::string input, output;
  int64_t batch = 64;
};

struct EvalFlags {
  ModelFlags model;
  std::string input, labels;
  int64_t batch = 64;
};

struct BenchFlags {
  ModelFlags model;
  std::string shape;  // "1,3,224,224"; empty: the model's default
  int threads = 0;    // 0: all cores
  int iters = 20;
  bool json = false;
  bool profile = false;  // a graph model on the CPU: time per node, slowest first
};

struct DumpFlags {
  ModelFlags model;
  std::string format = "table";  // table | code | json | dot | svg | png
  std::string out;               // empty: stdout (not for png)
  std::string shape;             // input shape for the shape column; empty: the model's default
  std::string stage = "traced";  // traced | fused | prepared | converted; PT2E: exported | annotated too
  std::string quantizer;         // PT2E stages: xnnpack | x86_inductor
  bool per_tensor = false;
  std::string qconfig = "x86";  // preset or rule file, for fused / prepared
  std::string calib;            // optional .npy to calibrate the prepared model with
  int64_t batch = 32;           // calibration batch size
};

struct QuantizeFlags {
  ModelFlags model;
  std::string flow = "fx";  // fx | eager (eager: a zoo model marked up with stubs, e.g. quantizable_resnet18)
  std::string quantizer;    // PT2E: xnnpack | x86_inductor (instead of --qconfig)
  bool per_tensor = false;  // PT2E: per-tensor weights
  std::string qconfig = "x86";
  std::string calib;          // .npy calibration inputs
  int64_t calib_batches = 0;  // 0: all
  int64_t batch = 32;
  std::string out;
};

struct TrainFlags {
  ModelFlags model;
  std::string train_x, train_y;  // .npy inputs [N, ...] and integer labels [N]
  std::string test_x, test_y;    // optional: report test top-1 at the end
  int64_t epochs = 5, batch = 64;
  std::string optimizer = "adam";  // adam | sgd
  double lr = 1e-3, momentum = 0.9, weight_decay = 0;
  std::string schedule = "constant";  // constant | step | cosine
  int64_t step_size = 1;
  double gamma = 0.1;
  std::string qconfig = "x86_qat";                            // qat only
  std::string flow = "fx";                                    // qat only: fx | eager
  std::string quantizer;                                      // qat only: PT2E with xnnpack | x86_inductor
  bool per_tensor = false;                                    // qat only: PT2E per-tensor weights
  int64_t freeze_bn_after = -1, freeze_observers_after = -1;  // qat only; -1: never
  std::string out;
};

absl::Status Demo();
absl::Status Train(const TrainFlags& flags);
absl::Status Qat(const TrainFlags& flags);
absl::Status Quantize(const QuantizeFlags& flags);
absl::Status Dump(const DumpFlags& flags);
absl::Status Run(const RunFlags& flags);
absl::Status Eval(const EvalFlags& flags);
absl::Status Bench(const BenchFlags& flags);

// Shared by the subcommands: the .qfx file, or the zoo model with --weights loaded (strict), in eval
// mode, with the input shape it records in *input_shape when given (the file's, maybe empty; the zoo
// model's default); and a parsed --shape ("1,3,224,224").
absl::StatusOr<std::shared_ptr<nn::Module>> OpenModel(const ModelFlags& flags, Shape* input_shape = nullptr);
// The model OpenModel opened, on flags.device: itself on the CPU; for cuda, the int8 graph of a .qfx file
// on the GPU (backend::CudaModule), or an error saying why it cannot run there.
absl::StatusOr<std::shared_ptr<nn::Module>> OnDevice(const ModelFlags& flags, std::shared_ptr<nn::Module> model);
// The model as a graph to fuse, prepare or train: a .qfx file's graph as it is, a zoo model traced.
// `fp32_only`: a .qfx file that is already int8 is an error (quantize, train, qat).
absl::StatusOr<std::shared_ptr<fx::GraphModule>> ModelGraph(const ModelFlags& flags, std::shared_ptr<nn::Module> model,
                                                            bool fp32_only);
// The model's name in messages and in the source of files written from it: the zoo name or the file.
std::string ModelName(const ModelFlags& flags);
absl::StatusOr<Shape> ParseShape(const std::string& text);
// --shape when given, else the shape OpenModel recorded (an error naming the model when there is none).
absl::StatusOr<Shape> InputShape(const ModelFlags& model, const std::string& shape_flag, const Shape& recorded);
// Bytes of the module's state_dict (parameters and buffers).
int64_t StateBytes(nn::Module& m);
// Top-1 accuracy of `model` (eval mode) on x against integer labels y [N].
absl::StatusOr<double> Top1(nn::Module& model, const Tensor& x, const Tensor& labels, int64_t batch);
// An error naming the row and element of the first NaN or Inf in an f32 [N, ...] array (the policy for
// calibration data and for run / eval inputs: int8 models would read NaN as 0, fp32 ReLU and max-pool drop
// it, so neither propagates NaN as PyTorch does; qfx refuses such input instead).
absl::Status CheckFinite(const Tensor& x, const std::string& path, const char* what);
// --calib: an f32 .npy of [N, ...] finite inputs with N > 0.
absl::StatusOr<Tensor> ReadCalibration(const std::string& path);
// --flow: "fx" or "eager" (an error naming the flag otherwise).
absl::Status CheckFlow(const std::string& flow);
// Eager mode: the zoo model (not a .qfx file: it needs the C++ class with its stubs), fused by its
// fuse_model lists when it has them; an error when it has no QuantStub.
absl::StatusOr<std::shared_ptr<nn::Module>> OpenEagerModel(const ModelFlags& flags, bool qat);
// Runs the first max_batches batches (0: all) of x through a prepared model so its observers see them,
// with a progress bar on a terminal; errors name `path`. Returns how many inputs it used.
absl::StatusOr<int64_t> Calibrate(nn::Module& model, const Tensor& x, const std::string& path, int64_t batch,
                                  int64_t max_batches);
// What `qfx quantize` checks of the file it writes, beyond LoadModel's rules: the model read back gives
// the outputs of the model in memory, bit for bit, on `x`.
io::ModelCheck SameOutputs(fx::GraphModule& gm, const Tensor& x);
// A dump note for an observer or fake-quant module: its type and, once calibrated, its qparams (with the
// dtype and, per channel, "(channel 0)" when `with_dtype`: the PT2E stages, whose activations may be qint8).
std::string ObserverNote(nn::Module& m, bool calibrated, bool with_dtype);
// "size: fp32 .. MB -> int8 .. MB (..%), wrote OUT".
void PrintSizes(int64_t fp32_bytes, const std::string& out);
// The PT2E flow (tools/qfx/pt2e.cc): quantize with --quantizer, and dump's PT2E stages (the graph made
// in place, notes per node).
absl::Status QuantizePt2e(const QuantizeFlags& flags);
absl::Status DumpPt2e(const DumpFlags& flags, fx::GraphModule& gm, std::map<const fx::Node*, std::string>* notes);

}  // namespace cli
}  // namespace qfx
