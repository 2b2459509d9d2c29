// qfx tests: the run and eval subcommands end to end on files (the binary itself: qfx_binary_test.sh).
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"
#include "qfx/backend/cuda_model.h"
#include "qfx/fx/tracer.h"
#include "qfx/io/model_file.h"
#include "qfx/io/npy.h"
#include "qfx/io/safetensors.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/functional.h"
#include "tests/testing/golden.h"
#include "tools/qfx/commands.h"

namespace qfx {
namespace {

std::string Tmp(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return std::string(d ? d : "/tmp") + "/" + name;
}

Tensor Inputs(int64_t n) {
  Tensor x = Tensor::Empty({n, 1, 28, 28});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>((i * 7919) % 255) / 255.f;
  return x;
}

TEST(Cli, RunWritesTheModelsOutputsInBatches) {
  const Tensor x = Inputs(10);
  ASSERT_TRUE(io::WriteNpy(Tmp("x.npy"), x).ok());
  cli::RunFlags f;
  f.model.model = "mnist_cnn";
  f.input = Tmp("x.npy");
  f.output = Tmp("y.npy");
  f.batch = 4;  // 4 + 4 + 2
  ASSERT_TRUE(cli::Run(f).ok());
  auto y = io::ReadNpy(f.output);
  ASSERT_TRUE(y.ok());
  auto model = models::Create("mnist_cnn");
  auto want = RunModule(**model, x);
  ASSERT_TRUE(want.ok());
  ASSERT_EQ(y->shape(), (Shape{10, 10}));
  // Linear sums in a different order at batch 4 than at batch 10 (dot products vs the blocked GEMM).
  EXPECT_LT(testing::MaxRelError(*y, *want), 1e-5);
}

TEST(Cli, EvalPrintsTop1LastAndUsesWeights) {
  const Tensor x = Inputs(8);
  ASSERT_TRUE(io::WriteNpy(Tmp("ex.npy"), x).ok());
  // Weights from another seed, saved as safetensors: labels are that model's predictions.
  auto model = models::Create("mlp", 5);
  ASSERT_TRUE(io::WriteSafetensors(Tmp("mlp.safetensors"), (*model)->state_dict()).ok());
  Tensor labels = F::argmax(*RunModule(**model, x));
  labels.data<int64_t>()[0] = (labels.data<int64_t>()[0] + 1) % 10;  // one wrong of 8
  ASSERT_TRUE(io::WriteNpy(Tmp("ey.npy"), labels).ok());
  cli::EvalFlags f;
  f.model.model = "mlp";
  f.model.weights = Tmp("mlp.safetensors");
  f.input = Tmp("ex.npy");
  f.labels = Tmp("ey.npy");
  ::testing::internal::CaptureStdout();
  const absl::Status s = cli::Eval(f);
  std::fflush(stdout);
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_NE(out.find("top1: 0.8750\n"), std::string::npos) << out;
  EXPECT_EQ(out.substr(out.size() - 13), "top1: 0.8750\n");
}

TEST(Cli, ErrorsNameTheFileAndTheRule) {
  ASSERT_TRUE(io::WriteNpy(Tmp("bad_x.npy"), Inputs(3)).ok());
  ASSERT_TRUE(io::WriteNpy(Tmp("bad_y.npy"), Tensor::Zeros({4}, DType::kI64)).ok());
  cli::EvalFlags f;
  f.model.model = "mnist_cnn";
  f.input = Tmp("bad_x.npy");
  f.labels = Tmp("bad_y.npy");
  absl::Status s = cli::Eval(f);
  EXPECT_NE(s.message().find("bad_y.npy: labels i64[4] must be [N] with N = 3"), std::string::npos) << s;
  f.model.weights = Tmp("missing.safetensors");
  s = cli::Eval(f);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  cli::RunFlags r;
  r.model.model = "resnet18";  // 3-channel model on 1-channel input
  r.input = Tmp("bad_x.npy");
  r.output = Tmp("never.npy");
  s = cli::Run(r);
  EXPECT_NE(s.message().find("batch at row 0: conv2d: input f32[3, 1, 28, 28] has 1 channels"), std::string::npos) << s;
  EXPECT_EQ(std::fopen(Tmp("never.npy").c_str(), "r"), nullptr);
}

TEST(Cli, QuantizeThenRunEvalBenchAndDumpTheQfxFile) {
  const Tensor x = Inputs(16);
  ASSERT_TRUE(io::WriteNpy(Tmp("qx.npy"), x).ok());
  cli::QuantizeFlags q;
  q.model.model = "mnist_cnn";
  q.qconfig = "qnnpack";
  q.calib = Tmp("qx.npy");
  q.batch = 8;
  q.out = Tmp("cnn.qfx");
  ::testing::internal::CaptureStdout();
  const absl::Status s = cli::Quantize(q);
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_NE(
      out.find(
          "quantized mnist_cnn with qnnpack (backend qnnpack): 7 int8 patterns, 8 observers calibrated on 16 inputs"),
      std::string::npos)
      << out;
  EXPECT_NE(out.find("every op is int8"), std::string::npos) << out;
  cli::RunFlags r;
  r.model.file = Tmp("cnn.qfx");
  r.input = Tmp("qx.npy");
  r.output = Tmp("qy.npy");
  r.batch = 5;
  ASSERT_TRUE(cli::Run(r).ok());
  auto y = io::ReadNpy(r.output);
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(y->shape(), (Shape{16, 10}));
  // Batch size does not change int8 results.
  r.batch = 16;
  r.output = Tmp("qy16.npy");
  ASSERT_TRUE(cli::Run(r).ok());
  auto y16 = io::ReadNpy(r.output);
  EXPECT_EQ(std::memcmp(y->raw_data(), y16->raw_data(), y->nbytes()), 0);
  // --device cuda: the same bytes on a GPU; elsewhere an error naming the file and why.
  r.model.device = "cuda";
  r.output = Tmp("qy_cuda.npy");
  const absl::Status on_gpu = cli::Run(r);
  if (backend::CudaStatus().ok()) {
    ASSERT_TRUE(on_gpu.ok()) << on_gpu;
    auto yg = io::ReadNpy(r.output);
    EXPECT_EQ(std::memcmp(y->raw_data(), yg->raw_data(), y->nbytes()), 0);
  } else {
    EXPECT_NE(on_gpu.message().find("cnn.qfx: --device cuda: "), std::string::npos) << on_gpu;
    EXPECT_NE(on_gpu.message().find(backend::CudaStatus().message()), std::string::npos) << on_gpu;
  }
  cli::RunFlags fp32 = r;
  fp32.model.file.clear();
  fp32.model.model = "mnist_cnn";
  EXPECT_NE(cli::Run(fp32).message().find("--device cuda runs int8 .qfx files"), std::string::npos);
  cli::BenchFlags b;
  b.model.file = Tmp("cnn.qfx");
  b.iters = 2;
  b.json = true;
  ::testing::internal::CaptureStdout();
  ASSERT_TRUE(cli::Bench(b).ok());
  EXPECT_EQ(::testing::internal::GetCapturedStdout().rfind("{\"median_ms\":", 0), 0u);
  // Rule: a .qfx file and --model together are ambiguous.
  b.model.model = "mlp";
  EXPECT_FALSE(cli::Bench(b).ok());
  q.qconfig = "x86_qat";
  EXPECT_NE(cli::Quantize(q).message().find("is for quantization-aware training"), std::string::npos);
}

// Calibration data must be finite (observers would skip NaN and saturate on Inf: a silently wrong model),
// and a batch count past the data means all of it (it once overflowed: "calibrated on -64 inputs").
TEST(Cli, CalibrationRejectsNonFiniteDataAndCountsBatchesSafely) {
  Tensor x = Inputs(16);
  cli::QuantizeFlags q;
  q.model.model = "mnist_cnn";
  q.calib = Tmp("calib.npy");
  q.batch = 8;
  q.calib_batches = std::numeric_limits<int64_t>::max();
  q.out = Tmp("calib.qfx");
  ASSERT_TRUE(io::WriteNpy(q.calib, x).ok());
  ::testing::internal::CaptureStdout();
  const absl::Status s = cli::Quantize(q);
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_NE(out.find("calibrated on 16 inputs"), std::string::npos) << out;
  x.data<float>()[784 * 3 + 17] = std::nanf("");
  ASSERT_TRUE(io::WriteNpy(q.calib, x).ok());
  EXPECT_NE(cli::Quantize(q).message().find("calib.npy: calibration data must be finite; row 3, element 17 is nan"),
            std::string::npos)
      << cli::Quantize(q);
}

// run and eval refuse non-finite inputs (the documented policy: qfx does not propagate NaN as PyTorch does).
TEST(Cli, RunRefusesNonFiniteInputs) {
  Tensor x = Inputs(4);
  x.data<float>()[784 + 5] = std::numeric_limits<float>::infinity();
  ASSERT_TRUE(io::WriteNpy(Tmp("inf.npy"), x).ok());
  cli::RunFlags r;
  r.model.model = "mnist_cnn";
  r.input = Tmp("inf.npy");
  r.output = Tmp("inf_out.npy");
  EXPECT_NE(cli::Run(r).message().find("inf.npy: input must be finite; row 1, element 5 is inf"), std::string::npos)
      << cli::Run(r);
}

// A model of one's own reaches the command line as an fp32 .qfx file (SaveModel before Prepare): it
// quantizes exactly as the same model by --model does; an int8 file is refused, naming a quantized node.
TEST(Cli, QuantizeTakesAnFp32QfxFile) {
  ASSERT_TRUE(io::WriteNpy(Tmp("fx.npy"), Inputs(8)).ok());
  auto model = models::Create("mnist_cnn");
  ASSERT_TRUE(model.ok());
  (*model)->eval();
  auto gm = fx::SymbolicTrace(*model);
  ASSERT_TRUE(gm.ok()) << gm.status();
  ASSERT_TRUE(io::SaveModel(Tmp("fp32.qfx"), **gm, {1, 1, 28, 28}, "mnist_cnn fp32").ok());
  cli::QuantizeFlags q;
  q.calib = Tmp("fx.npy");
  q.model.model = "mnist_cnn";
  q.out = Tmp("by_name.qfx");
  ASSERT_TRUE(cli::Quantize(q).ok());
  q.model = {};
  q.model.file = Tmp("fp32.qfx");
  q.out = Tmp("by_file.qfx");
  const absl::Status s = cli::Quantize(q);
  ASSERT_TRUE(s.ok()) << s;
  for (const char* f : {"by_name.qfx", "by_file.qfx"}) {
    cli::RunFlags r;
    r.model.file = Tmp(f);
    r.input = Tmp("fx.npy");
    r.output = Tmp(std::string(f) + ".npy");
    ASSERT_TRUE(cli::Run(r).ok());
  }
  auto a = io::ReadNpy(Tmp("by_name.qfx.npy")), b = io::ReadNpy(Tmp("by_file.qfx.npy"));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(std::memcmp(a->raw_data(), b->raw_data(), a->nbytes()), 0);
  q.model.file = Tmp("by_file.qfx");
  EXPECT_NE(cli::Quantize(q).message().find("by_file.qfx is already int8 (node %"), std::string::npos)
      << cli::Quantize(q);
  q.model.weights = "w.safetensors";
  EXPECT_NE(cli::Quantize(q).message().find("--weights is for --model"), std::string::npos);
}

// The PT2E flow from the command line: quantize with a backend's quantizer, run the .qfx file, and dump the
// annotated graph; the PT2E stages without a quantizer are an error saying what to add.
TEST(Cli, QuantizeWithAQuantizerThenRunAndDumpItsStages) {
  ASSERT_TRUE(io::WriteNpy(Tmp("px.npy"), Inputs(8)).ok());
  cli::QuantizeFlags q;
  q.model.model = "mnist_cnn";
  q.quantizer = "xnnpack";
  q.calib = Tmp("px.npy");
  q.out = Tmp("pt2e.qfx");
  ::testing::internal::CaptureStdout();
  const absl::Status s = cli::Quantize(q);
  const std::string out = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_NE(out.find("quantized mnist_cnn (PT2E) with xnnpack: 4 int8 conv / linear layers, 9 observers calibrated "
                     "on 8 inputs"),
            std::string::npos)
      << out;
  cli::RunFlags r;
  r.model.file = Tmp("pt2e.qfx");
  r.input = Tmp("px.npy");
  r.output = Tmp("py.npy");
  ASSERT_TRUE(cli::Run(r).ok());
  EXPECT_EQ(io::ReadNpy(r.output)->shape(), (Shape{8, 10}));

  cli::DumpFlags d;
  d.model.model = "mnist_cnn";
  d.stage = "annotated";
  d.quantizer = "x86_inductor";
  d.per_tensor = true;
  ::testing::internal::CaptureStdout();
  const absl::Status ds = cli::Dump(d);
  const std::string dump = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(ds.ok()) << ds;
  EXPECT_NE(dump.find("in %x: histogram_pt2(quint8"), std::string::npos) << dump;
  EXPECT_NE(dump.find("minmax(qint8, per_tensor_symmetric"), std::string::npos) << dump;
  EXPECT_EQ(dump.find("batch_norm"), std::string::npos) << "eval batch norms are folded before annotating";
  d.quantizer.clear();
  EXPECT_NE(cli::Dump(d).message().find("need --quantizer xnnpack or --quantizer x86_inductor"), std::string::npos);
  d.stage = "exported";
  ::testing::internal::CaptureStdout();
  ASSERT_TRUE(cli::Dump(d).ok());
  EXPECT_NE(::testing::internal::GetCapturedStdout().find("conv1.weight"), std::string::npos);
}

}  // namespace
}  // namespace qfx
