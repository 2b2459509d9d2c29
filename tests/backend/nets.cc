// qfx tests: lowered int8 models for the device backend's tests (see tests/backend/nets.h).
#include "tests/backend/nets.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "qfx/fx/tracer.h"
#include "qfx/models/zoo.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/modules.h"
#include "qfx/quant/passes.h"
#include "tests/testing/golden.h"

namespace qfx {
namespace testing {
namespace {

class Net : public nn::Module {
 public:
  explicit Net(const OpsNet::Geometry& g) {
    conv_ = register_module("conv",
                            std::make_shared<nn::Conv2d>(g.cin, g.cout, g.kernel,
                                                         nn::Conv2dArgs{g.stride, g.padding, g.dilation, g.groups}));
    dw_ = register_module("dw", std::make_shared<nn::Conv2d>(g.cout, g.cout, 3, nn::Conv2dArgs{1, 1, 1, g.cout}));
    se_ = register_module("se", std::make_shared<nn::Conv2d>(g.cout, g.cout, 1));
    fc_ = register_module("fc", std::make_shared<nn::Linear>(2 * g.cout * 4, 10));
  }
  std::string type_name() const override { return "OpsNet"; }
  Tensor forward(const Tensor& x) override {
    const Tensor y = F::relu((*conv_)(x));
    Tensor z = F::relu(F::add((*dw_)(y), y));
    const Tensor s = F::sigmoid((*se_)(F::adaptive_avg_pool2d(z, {1, 1})));
    z = F::hardswish(F::mul(z, s));
    F::Pool2dOptions o;
    o.kernel_size = {3, 3};
    o.stride = {2, 2};
    o.padding = {1, 1};
    o.count_include_pad = false;
    const Tensor c = F::cat({F::max_pool2d(z, o), F::avg_pool2d(z, o)}, 1);
    return (*fc_)(F::flatten(F::adaptive_avg_pool2d(c, {2, 2}), 1, -1));
  }

 private:
  std::shared_ptr<nn::Conv2d> conv_, dw_, se_;
  std::shared_ptr<nn::Linear> fc_;
};

std::shared_ptr<fx::GraphModule> Lowered(std::shared_ptr<nn::Module> model, const Tensor& calib) {
  fx::TracerOptions trace;
  trace.example_inputs = {calib};  // shufflenet's chunk reads the channel count
  auto gm = fx::SymbolicTrace(model, trace);
  EXPECT_TRUE(gm.ok()) << gm.status();
  if (!gm.ok()) return nullptr;
  quant::PrepareOptions opt;
  opt.config = *quant::LoadQuantConfig("x86");
  auto report = quant::Prepare(**gm, opt);
  EXPECT_TRUE(report.ok()) << report.status();
  if (!report.ok()) return nullptr;
  const absl::Status calibrated = RunModule(**gm, calib).status();
  EXPECT_TRUE(calibrated.ok()) << calibrated;
  const absl::Status converted = quant::ConvertToReference(**gm, *report);
  EXPECT_TRUE(converted.ok()) << converted;
  const absl::Status lowered = quant::Lower(**gm, *report);
  EXPECT_TRUE(lowered.ok()) << lowered;
  if (!calibrated.ok() || !converted.ok() || !lowered.ok()) return nullptr;
  return *gm;
}

}  // namespace

OpsNet::Geometry RandomGeometry(std::mt19937& rng, const OpsNet::Range& range) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  OpsNet::Geometry g;
  g.cin = pick(1, range.max_cin);
  const int kind = pick(0, 3);  // plain, two groups, three groups, depthwise
  g.groups = kind == 1 && g.cin % 2 == 0 ? 2 : kind == 2 && g.cin % 3 == 0 ? 3 : kind == 3 ? g.cin : 1;
  g.cout = g.groups * pick(1, range.max_cout / static_cast<int>(g.groups) + 1);
  g.kernel = range.kernels[pick(0, static_cast<int>(range.kernels.size()) - 1)];
  g.stride = pick(1, 3);
  g.dilation = pick(1, range.max_dilation);
  g.padding = pick(0, static_cast<int>(g.dilation * (g.kernel - 1)));
  const int reach = static_cast<int>(g.dilation * (g.kernel - 1) + 1);
  g.h = pick(reach, range.max_h);
  g.w = pick(reach, range.max_w);
  return g;
}

std::string Describe(const OpsNet::Geometry& g) {
  return absl::StrCat("cin ", g.cin, " cout ", g.cout, " k ", g.kernel, " s ", g.stride, " p ", g.padding, " d ",
                      g.dilation, " g ", g.groups, " in ", g.h, "x", g.w);
}

std::shared_ptr<fx::GraphModule> Int8OpsNet(const OpsNet::Geometry& g, int64_t batch, int seed, Tensor* x) {
  auto model = std::make_shared<Net>(g);
  model->eval();
  HashInit(*model);
  const Shape shape = {batch, g.cin, g.h, g.w};
  *x = HashUniform(absl::StrCat("test", seed), shape, -1, 1);
  return Lowered(model, HashUniform(absl::StrCat("calib", seed), {4, g.cin, g.h, g.w}, -1, 1));
}

std::shared_ptr<fx::GraphModule> Int8ZooModel(const std::string& name, int64_t batch, Tensor* x) {
  auto model = *models::Create(name);
  HashInit(*model);
  Shape shape = ZooTestShape(name, 2);
  const Tensor calib = HashUniform("calib", shape, -1, 1);
  shape[0] = batch;
  *x = HashUniform("test", shape, -1, 1);
  return Lowered(model, calib);
}

}  // namespace testing
}  // namespace qfx
