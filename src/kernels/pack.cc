// qfx kernels: PackQConv2d / PackQLinear (qfx/kernels/qconv.h). A pack call asks the path rules (path.cc)
// once, then copies the layer's requantization and lays the weights out for that path: the GEMM's packed
// tiles (every non-depthwise path, so a layer can still run if the dispatcher's target is changed later),
// plus the tap-major copy for the implicit paths or the windowed copy for the windowed paths.
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "qfx/kernels/qconv.h"
#include "src/kernels/packed.h"

namespace qfx {
namespace kernels {

namespace {

[[noreturn]] void BadPath(const char* what, const char* path) {
  std::fprintf(stderr, "qfx: internal error: Pack%s: path %s %s\n", what, path, "does not fit this layer or CPU");
  std::abort();
}

std::vector<int32_t> Corrections(const std::vector<int32_t>& bias, const std::vector<int32_t>& sums, int32_t x_zp) {
  std::vector<int32_t> c(sums.size());
  for (size_t o = 0; o < sums.size(); ++o) c[o] = bias[o] - x_zp * sums[o];
  return c;
}

}  // namespace

QConvArgs PackedQConv2dState::Args(const Conv2dGeometry& g) const {
  return QConvArgs{g, x_zero_point, weight.data(), bias.data(), multiplier.data(), y_zero_point, lo, hi};
}

QRequantValues RequantFromScales(int64_t out, float x_scale, const float* w_scale, const float* bias, float y_scale) {
  QRequantValues v;
  v.bias.resize(static_cast<size_t>(out));
  v.multiplier.resize(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    v.bias[o] = QuantizeBias(bias ? bias[o] : 0.f, x_scale, w_scale[o]);
    v.multiplier[o] = RequantMultiplier(x_scale, w_scale[o], y_scale);
  }
  return v;
}

PackedQConv2d PackQConv2d(const QConv2dShape& shape, const int8_t* weight, const QRequant& rq,
                          std::optional<QConvPath> path) {
  const Int8Isa isa = Int8Isa::Current();
  const QConvPath p = path.value_or(SelectQConvPath(shape, isa));
  if (!PathFits(p, shape) || !PathRuns(p, isa)) BadPath("QConv2d", PathName(p));
  auto s = std::make_shared<PackedQConv2dState>();
  const int64_t out = shape.out_channels, cin_g = shape.in_channels / shape.groups;
  const int64_t per_row = cin_g * shape.kernel_h * shape.kernel_w;
  s->shape = shape;
  s->path = p;
  s->weight.assign(weight, weight + out * per_row);
  s->bias = rq.bias ? std::vector<int32_t>(rq.bias, rq.bias + out) : std::vector<int32_t>(static_cast<size_t>(out), 0);
  s->multiplier.assign(rq.multiplier, rq.multiplier + out);
  s->x_zero_point = rq.x_zero_point;
  s->y_zero_point = rq.y_zero_point;
  s->lo = rq.lo;
  s->hi = rq.hi;
  std::vector<int32_t> sums(static_cast<size_t>(out));
  ComputeWeightSums(weight, out, per_row, sums.data());
  s->correction = Corrections(s->bias, sums, rq.x_zero_point);
  if (!IsDepthwisePath(p)) s->gemm = PackGroups(weight, shape.groups, out / shape.groups, per_row, &s->max_pair);
  if (p == QConvPath::kImplicitMaddubs) {
    s->tap_major = PackTapMajor4(weight, out, shape.in_channels, shape.kernel_h, shape.kernel_w);
  } else if (IsImplicitPath(p)) {
    s->tap_major = PackTapMajor(weight, out, shape.in_channels, shape.kernel_h, shape.kernel_w);
  }
  if (IsWindowedPath(p)) s->windowed = PackWindowed(weight, out, shape.in_channels, shape.kernel_h, shape.kernel_w);
  return PackedQConv2d(std::move(s));
}

QConvPath PackedQConv2d::path() const { return state_->path; }
const QConv2dShape& PackedQConv2d::shape() const { return state_->shape; }

namespace {

std::shared_ptr<PackedQLinearState> PackLinearWeights(int64_t in, int64_t out, const int8_t* weight,
                                                      std::optional<QLinearPath> path) {
  const Int8Isa isa = Int8Isa::Current();
  const QLinearPath p = path.value_or(SelectQLinearPath(isa));
  if (!PathRuns(p, isa)) BadPath("QLinear", PathName(p));
  auto s = std::make_shared<PackedQLinearState>();
  s->in = in;
  s->out = out;
  s->path = p;
  s->weight.assign(weight, weight + in * out);
  s->weight_sum.resize(static_cast<size_t>(out));
  ComputeWeightSums(weight, out, in, s->weight_sum.data());
  s->gemm = PackGroups(weight, 1, out, in, &s->max_pair);
  return s;
}

}  // namespace

PackedQLinear PackQLinear(int64_t in, int64_t out, const int8_t* weight, const QRequant& rq,
                          std::optional<QLinearPath> path) {
  auto s = PackLinearWeights(in, out, weight, path);
  const std::vector<int32_t> bias =
      rq.bias ? std::vector<int32_t>(rq.bias, rq.bias + out) : std::vector<int32_t>(static_cast<size_t>(out), 0);
  s->correction = Corrections(bias, s->weight_sum, rq.x_zero_point);
  s->multiplier.assign(rq.multiplier, rq.multiplier + out);
  s->y_zero_point = rq.y_zero_point;
  s->lo = rq.lo;
  s->hi = rq.hi;
  return PackedQLinear(std::move(s));
}

PackedQLinear PackQLinearDynamic(int64_t in, int64_t out, const int8_t* weight, const float* w_scale, const float* bias,
                                 std::optional<QLinearPath> path) {
  auto s = PackLinearWeights(in, out, weight, path);
  s->w_scale.assign(w_scale, w_scale + out);
  s->bias = bias ? std::vector<float>(bias, bias + out) : std::vector<float>(static_cast<size_t>(out), 0.f);
  return PackedQLinear(std::move(s));
}

QLinearPath PackedQLinear::path() const { return state_->path; }
int64_t PackedQLinear::in_features() const { return state_->in; }
int64_t PackedQLinear::out_features() const { return state_->out; }

}  // namespace kernels
}  // namespace qfx
