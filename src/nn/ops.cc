// qfx nn: the op registry (see include/qfx/nn/ops.h). Each entry decodes positional OpArgs and calls
// the functional op in qfx::F, so eager code, traced graphs and loaded graphs run the same kernels; the
// same entry says how training differentiates the op, how quantization treats it and which modules
// compute it.
#include "qfx/nn/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/modules.h"
#include "qfx/nn/quant_stubs.h"
#include "src/nn/op_gradients.h"

namespace qfx {
namespace nn {
namespace {

using json = nlohmann::json;
using QR = QuantRole;

const char* Kind(const OpArg& a) {
  switch (a.index()) {
    case 0:
      return "None";
    case 1:
      return "a tensor";
    case 2:
      return "an integer";
    case 3:
      return "a number";
    case 4:
      return "a bool";
    case 5:
      return "a list of integers";
    case 6:
      return "a list of tensors";
    default:
      return "an op";
  }
}

// Typed access to argument i of op `op` with an error naming both.
struct Args {
  const char* op;
  const std::vector<OpArg>& v;

  template <typename T>
  const T& Get(size_t i, const char* want) const {
    if (i < v.size()) {
      if (const T* x = std::get_if<T>(&v[i])) return *x;
    }
    ThrowInvalid(op, ": argument ", i, " must be ", want, ", got ", i < v.size() ? Kind(v[i]) : "nothing");
  }
  Tensor T(size_t i) const { return Get<Tensor>(i, "a tensor"); }
  Tensor OptT(size_t i) const { return i < v.size() && std::holds_alternative<std::monostate>(v[i]) ? Tensor() : T(i); }
  int64_t I(size_t i) const { return Get<int64_t>(i, "an integer"); }
  bool B(size_t i) const { return Get<bool>(i, "a bool"); }
  double D(size_t i) const {
    if (i < v.size() && std::holds_alternative<int64_t>(v[i])) return static_cast<double>(std::get<int64_t>(v[i]));
    return Get<double>(i, "a number");
  }
  float F32(size_t i) const { return static_cast<float>(D(i)); }
  std::vector<int64_t> Ints(size_t i) const { return Get<std::vector<int64_t>>(i, "a list of integers"); }
  bool IsTensor(size_t i) const { return i < v.size() && std::holds_alternative<Tensor>(v[i]); }
};

// ----- fp32 implementations that decode more than a tensor -----

Tensor RunAdd(const std::vector<OpArg>& v) {
  Args a{"add", v};
  return a.IsTensor(1) ? F::add(a.T(0), a.T(1)) : F::add(a.T(0), a.F32(1));
}
Tensor RunMul(const std::vector<OpArg>& v) {
  Args a{"mul", v};
  return a.IsTensor(1) ? F::mul(a.T(0), a.T(1)) : F::mul(a.T(0), a.F32(1));
}
Tensor RunConv2d(const std::vector<OpArg>& v) {
  Args a{"conv2d", v};
  return F::conv2d(a.T(0), a.T(1), a.OptT(2), Conv2dOptionsOf(v));
}
Tensor RunBatchNorm(const std::vector<OpArg>& v) {
  Args a{"batch_norm", v};
  return F::batch_norm(a.T(0), a.OptT(1), a.OptT(2), a.OptT(3), a.OptT(4), a.B(5), a.D(6), a.D(7));
}
Tensor RunMaxPool(const std::vector<OpArg>& v) {
  return F::max_pool2d(Args{"max_pool2d", v}.T(0), MaxPool2dOptionsOf(v));
}
Tensor RunAvgPool(const std::vector<OpArg>& v) {
  return F::avg_pool2d(Args{"avg_pool2d", v}.T(0), AvgPool2dOptionsOf(v));
}

#define QFX_UNARY(fn) [](const std::vector<OpArg>& v) { return F::fn(Args{#fn, v}.T(0)); }
#define QFX_RUN(fn, ...)            \
  [](const std::vector<OpArg>& v) { \
    const Args a{#fn, v};           \
    return F::fn(__VA_ARGS__);      \
  }

// ----- derivatives of elementwise ops (PyTorch's rules, including which side of a kink gets 1) -----

// dx[i] = d(x[i], y[i]) * dy[i] for one op's derivative d.
template <typename D>
void Chain(D d, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = d(x[i], y[i]) * dy[i];
}
using A = std::vector<OpArg>;

void DReLU(const A&, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  Chain([](float, float v) { return v > 0.f ? 1.f : 0.f; }, x, y, dy, dx, n);
}
void DClamp(float lo, float hi, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  Chain([lo, hi](float v, float) { return v > lo && v < hi ? 1.f : 0.f; }, x, y, dy, dx, n);
}
void DReLU6(const A&, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  DClamp(0.f, 6.f, x, y, dy, dx, n);
}
void DHardtanh(const A& v, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  const Args a{"hardtanh", v};
  DClamp(a.F32(0), a.F32(1), x, y, dy, dx, n);
}
void DHardswish(const A&, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  const auto d = [](float v, float) {
    if (v < -3.f) return 0.f;
    return v <= 3.f ? v / 3.f + 0.5f : 1.f;
  };
  Chain(d, x, y, dy, dx, n);
}
void DHardsigmoid(const A&, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  Chain([](float v, float) { return v > -3.f && v < 3.f ? 1.f / 6.f : 0.f; }, x, y, dy, dx, n);
}
void DSigmoid(const A&, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  Chain([](float, float v) { return (1.f - v) * v; }, x, y, dy, dx, n);
}
void DTanh(const A&, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  Chain([](float, float v) { return 1.f - v * v; }, x, y, dy, dx, n);
}
void DSilu(const A&, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  const auto d = [](float v, float) {
    const float s = 1.f / (1.f + std::exp(-v));
    return s * (1.f + v * (1.f - s));
  };
  Chain(d, x, y, dy, dx, n);
}
// PyTorch's GeluBackward (approximate='none'): Phi(x) + x * phi(x).
void DGelu(const A&, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  const auto d = [](float v, float) {
    const float cdf = 0.5f * (1.f + std::erf(v * static_cast<float>(M_SQRT1_2)));
    const float pdf = std::exp(-0.5f * v * v) * static_cast<float>(0.5 * M_2_SQRTPI * M_SQRT1_2);
    return cdf + v * pdf;
  };
  Chain(d, x, y, dy, dx, n);
}
// PyTorch's leaky_relu_backward: slope where x <= 0.
void DLeakyRelu(const A& v, const float* x, const float* y, const float* dy, float* dx, int64_t n) {
  const float slope = Args{"leaky_relu", v}.F32(0);
  Chain([slope](float u, float) { return u > 0.f ? 1.f : slope; }, x, y, dy, dx, n);
}

// ----- clamp bounds -----

bool ClampReLU(const std::vector<OpArg>&, float* lo, float* hi) {
  *lo = 0.f;
  *hi = std::numeric_limits<float>::infinity();
  return true;
}
bool ClampReLU6(const std::vector<OpArg>&, float* lo, float* hi) {
  *lo = 0.f;
  *hi = 6.f;
  return true;
}
bool ClampHardtanh(const std::vector<OpArg>& v, float* lo, float* hi) {
  const Args a{"hardtanh", v};
  *lo = a.F32(0);
  *hi = a.F32(1);
  return true;
}

// ----- module kinds -----

template <typename M>
const M& As(const Module& m) {
  return static_cast<const M&>(m);
}

template <typename M>
ModuleKind KindWith(std::string type, std::function<std::vector<OpArg>(const M&)> args,
                    std::function<json(const M&)> config, std::function<std::shared_ptr<Module>(const json&)> make) {
  ModuleKind k;
  k.type = std::move(type);
  k.cpp_type = typeid(M);
  k.op_args = [args](const Module& m) { return args(As<M>(m)); };
  k.config = [config](const Module& m) { return config(As<M>(m)); };
  k.make = std::move(make);
  return k;
}

OpArg OptTensor(const Tensor& t) { return t.defined() ? OpArg(t) : OpArg(); }

ModuleKind Conv2dKind() {
  return KindWith<Conv2d>(
      "Conv2d",
      [](const Conv2d& c) {
        return std::vector<OpArg>{c.weight,          OptTensor(c.bias),  c.options.stride,
                                  c.options.padding, c.options.dilation, c.options.groups};
      },
      [](const Conv2d& c) {
        const Conv2dArgs a = c.args();
        return json{{"in", c.in_channels},
                    {"out", c.out_channels},
                    {"kernel", Size2ToJson(c.kernel_size)},
                    {"stride", Size2ToJson(a.stride)},
                    {"padding", Size2ToJson(a.padding)},
                    {"dilation", Size2ToJson(a.dilation)},
                    {"groups", a.groups},
                    {"bias", a.bias}};
      },
      [](const json& c) {
        const auto size = [&c](const char* field) {
          absl::StatusOr<Size2> s = Size2FromJson(c, field);
          if (!s.ok()) ThrowInvalid(s.status().message());
          return *s;
        };
        return std::make_shared<Conv2d>(c.at("in").get<int64_t>(), c.at("out").get<int64_t>(), size("kernel"),
                                        Conv2dArgs{size("stride"), size("padding"), size("dilation"),
                                                   c.at("groups").get<int64_t>(), c.at("bias").get<bool>()});
      });
}

ModuleKind ConvTranspose2dKind() {
  return KindWith<ConvTranspose2d>(
      "ConvTranspose2d",
      [](const ConvTranspose2d& c) {
        const F::ConvTranspose2dOptions& o = c.options;
        return std::vector<OpArg>{c.weight,         OptTensor(c.bias), o.stride,  o.padding,
                                  o.output_padding, o.groups,          o.dilation};
      },
      [](const ConvTranspose2d& c) {
        const F::ConvTranspose2dOptions& o = c.options;
        const auto size = [](const std::vector<int64_t>& v) { return Size2ToJson(Size2(v.at(0), v.at(1))); };
        return json{
            {"in", c.in_channels},          {"out", c.out_channels},      {"kernel", Size2ToJson(c.kernel_size)},
            {"stride", size(o.stride)},     {"padding", size(o.padding)}, {"output_padding", size(o.output_padding)},
            {"dilation", size(o.dilation)}, {"groups", o.groups},         {"bias", c.bias.defined()}};
      },
      [](const json& c) {
        const auto size = [&c](const char* field) {
          absl::StatusOr<Size2> s = Size2FromJson(c, field);
          if (!s.ok()) ThrowInvalid(s.status().message());
          return *s;
        };
        ConvTranspose2dArgs a;
        a.stride = size("stride");
        a.padding = size("padding");
        a.output_padding = size("output_padding");
        a.dilation = size("dilation");
        a.groups = c.at("groups").get<int64_t>();
        a.bias = c.at("bias").get<bool>();
        return std::make_shared<ConvTranspose2d>(c.at("in").get<int64_t>(), c.at("out").get<int64_t>(), size("kernel"),
                                                 a);
      });
}

Tensor RunConvTranspose2d(const std::vector<OpArg>& v) {
  const Args a{"conv_transpose2d", v};
  F::ConvTranspose2dOptions o;
  o.stride = a.Ints(3);
  o.padding = a.Ints(4);
  o.output_padding = a.Ints(5);
  o.groups = a.I(6);
  o.dilation = a.Ints(7);
  return F::conv_transpose2d(a.T(0), a.T(1), a.OptT(2), o);
}

ModuleKind LinearKind() {
  return KindWith<Linear>(
      "Linear",
      [](const Linear& l) {
        return std::vector<OpArg>{l.weight, OptTensor(l.bias)};
      },
      [](const Linear& l) {
        return json{{"in", l.in_features}, {"out", l.out_features}, {"bias", l.bias.defined()}};
      },
      [](const json& c) {
        return std::make_shared<Linear>(c.at("in").get<int64_t>(), c.at("out").get<int64_t>(),
                                        c.at("bias").get<bool>());
      });
}

template <typename BN>
ModuleKind BatchNormKind(std::string type) {
  return KindWith<BN>(
      std::move(type),
      [](const BN& b) {
        return std::vector<OpArg>{b.running_mean, b.running_var, b.weight, b.bias, b.is_training(), b.momentum, b.eps};
      },
      [](const BN& b) {
        return json{{"num_features", b.num_features}, {"eps", b.eps}, {"momentum", b.momentum}};
      },
      [](const json& c) {
        return std::make_shared<BN>(c.at("num_features").get<int64_t>(), c.at("eps").get<double>(),
                                    c.at("momentum").get<double>());
      });
}

json PoolConfig(const F::Pool2dOptions& o) {
  return {{"kernel_size", o.kernel_size}, {"stride", o.stride},       {"padding", o.padding},
          {"dilation", o.dilation},       {"ceil_mode", o.ceil_mode}, {"count_include_pad", o.count_include_pad}};
}

F::Pool2dOptions PoolFrom(const json& c) {
  F::Pool2dOptions o;
  o.kernel_size = c.at("kernel_size").get<std::vector<int64_t>>();
  o.stride = c.at("stride").get<std::vector<int64_t>>();
  o.padding = c.at("padding").get<std::vector<int64_t>>();
  o.dilation = c.at("dilation").get<std::vector<int64_t>>();
  o.ceil_mode = c.at("ceil_mode").get<bool>();
  o.count_include_pad = c.at("count_include_pad").get<bool>();
  return o;
}

template <typename Pool>
std::shared_ptr<Module> MakePool(const json& c) {
  auto p = std::make_shared<Pool>(1);
  p->options = PoolFrom(c);
  return p;
}

ModuleKind MaxPoolKind() {
  return KindWith<MaxPool2d>(
      "MaxPool2d",
      [](const MaxPool2d& p) {
        const F::Pool2dOptions& o = p.options;
        return std::vector<OpArg>{o.kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode};
      },
      [](const MaxPool2d& p) { return PoolConfig(p.options); }, MakePool<MaxPool2d>);
}

ModuleKind AvgPoolKind() {
  return KindWith<AvgPool2d>(
      "AvgPool2d",
      [](const AvgPool2d& p) {
        const F::Pool2dOptions& o = p.options;
        return std::vector<OpArg>{o.kernel_size, o.stride, o.padding, o.ceil_mode, o.count_include_pad};
      },
      [](const AvgPool2d& p) { return PoolConfig(p.options); }, MakePool<AvgPool2d>);
}

ModuleKind AdaptiveAvgPoolKind() {
  return KindWith<AdaptiveAvgPool2d>(
      "AdaptiveAvgPool2d", [](const AdaptiveAvgPool2d& p) { return std::vector<OpArg>{p.output_size}; },
      [](const AdaptiveAvgPool2d& p) {
        return json{{"output_size", p.output_size}};
      },
      [](const json& c) {
        const auto size = c.at("output_size").get<std::vector<int64_t>>();
        if (size.size() != 2) ThrowInvalid("output_size must have 2 values");
        return std::make_shared<AdaptiveAvgPool2d>(size[0], size[1]);
      });
}

ModuleKind UpsampleKind() {
  using Mode = F::InterpolateOptions::Mode;
  return KindWith<Upsample>(
      "Upsample",
      [](const Upsample& u) {
        const F::InterpolateOptions& o = u.options;
        return std::vector<OpArg>{o.size, o.scale_factor.empty() ? 0.0 : o.scale_factor[0],
                                  o.scale_factor.empty() ? 0.0 : o.scale_factor.back(), static_cast<int64_t>(o.mode),
                                  o.align_corners};
      },
      [](const Upsample& u) {
        const F::InterpolateOptions& o = u.options;
        return json{{"size", o.size},
                    {"scale_factor", o.scale_factor},
                    {"mode", o.mode == Mode::kNearest ? "nearest" : "bilinear"},
                    {"align_corners", o.align_corners}};
      },
      [](const json& c) {
        F::InterpolateOptions o;
        o.size = c.at("size").get<std::vector<int64_t>>();
        o.scale_factor = c.at("scale_factor").get<std::vector<double>>();
        const std::string mode = c.at("mode").get<std::string>();
        if (mode != "nearest" && mode != "bilinear") {
          ThrowInvalid("mode '", mode, "' must be 'nearest' or 'bilinear'");
        }
        o.mode = mode == "nearest" ? Mode::kNearest : Mode::kBilinear;
        o.align_corners = c.at("align_corners").get<bool>();
        return std::make_shared<Upsample>(std::move(o));
      });
}

Tensor RunInterpolate(const std::vector<OpArg>& v) {
  const Args a{"interpolate", v};
  F::InterpolateOptions o;
  o.size = a.Ints(1);
  for (double s : {a.D(2), a.D(3)}) {
    if (o.size.empty()) o.scale_factor.push_back(s);
  }
  const int64_t mode = a.I(4);
  if (mode != 0 && mode != 1) ThrowInvalid("interpolate: mode ", mode, " must be 0 (nearest) or 1 (bilinear)");
  o.mode = static_cast<F::InterpolateOptions::Mode>(mode);
  o.align_corners = a.B(5);
  return F::interpolate(a.T(0), o);
}

ModuleKind EmbeddingKind() {
  return KindWith<Embedding>(
      "Embedding",
      [](const Embedding& e) {
        return std::vector<OpArg>{e.weight, e.padding_idx ? OpArg(*e.padding_idx) : OpArg()};
      },
      [](const Embedding& e) {
        return json{{"num_embeddings", e.num_embeddings},
                    {"embedding_dim", e.embedding_dim},
                    {"padding_idx", e.padding_idx ? json(*e.padding_idx) : json(nullptr)}};
      },
      [](const json& c) {
        const json& pad = c.at("padding_idx");
        return std::make_shared<Embedding>(c.at("num_embeddings").get<int64_t>(), c.at("embedding_dim").get<int64_t>(),
                                           pad.is_null() ? std::nullopt : std::optional<int64_t>(pad.get<int64_t>()));
      });
}

Tensor RunEmbedding(const std::vector<OpArg>& v) {
  const Args a{"embedding", v};
  std::optional<int64_t> pad;
  if (v.size() > 2 && !std::holds_alternative<std::monostate>(v[2])) pad = a.I(2);
  return F::embedding(a.T(0), a.T(1), pad);
}

ModuleKind ChannelShuffleKind() {
  return KindWith<ChannelShuffle>(
      "ChannelShuffle", [](const ChannelShuffle& c) { return std::vector<OpArg>{c.groups}; },
      [](const ChannelShuffle& c) {
        return json{{"groups", c.groups}};
      },
      [](const json& c) { return std::make_shared<ChannelShuffle>(c.at("groups").get<int64_t>()); });
}

ModuleKind HardtanhKind() {
  return KindWith<Hardtanh>(
      "Hardtanh",
      [](const Hardtanh& h) {
        return std::vector<OpArg>{double{h.min_val}, double{h.max_val}};
      },
      [](const Hardtanh& h) {
        return json{{"min_val", h.min_val}, {"max_val", h.max_val}};
      },
      [](const json& c) {
        return std::make_shared<Hardtanh>(c.at("min_val").get<float>(), c.at("max_val").get<float>());
      });
}

ModuleKind LeakyReLUKind() {
  return KindWith<LeakyReLU>(
      "LeakyReLU", [](const LeakyReLU& l) { return std::vector<OpArg>{l.negative_slope}; },
      [](const LeakyReLU& l) {
        return json{{"negative_slope", l.negative_slope}};
      },
      [](const json& c) { return std::make_shared<LeakyReLU>(c.at("negative_slope").get<double>()); });
}

ModuleKind GELUKind() {
  return KindWith<GELU>(
      "GELU", [](const GELU&) { return std::vector<OpArg>{}; },
      [](const GELU&) {
        return json{{"approximate", "none"}};
      },
      [](const json& c) {
        if (c.value("approximate", "none") != "none") ThrowInvalid("GELU: only approximate='none' is supported");
        return std::make_shared<GELU>();
      });
}

ModuleKind SoftmaxKind() {
  return KindWith<Softmax>(
      "Softmax", [](const Softmax& s) { return std::vector<OpArg>{s.dim}; },
      [](const Softmax& s) {
        return json{{"dim", s.dim}};
      },
      [](const json& c) { return std::make_shared<Softmax>(c.at("dim").get<int64_t>()); });
}

ModuleKind FlattenKind() {
  return KindWith<Flatten>(
      "Flatten",
      [](const Flatten& f) {
        return std::vector<OpArg>{f.start_dim, f.end_dim};
      },
      [](const Flatten& f) {
        return json{{"start_dim", f.start_dim}, {"end_dim", f.end_dim}};
      },
      [](const json& c) {
        return std::make_shared<Flatten>(c.at("start_dim").get<int64_t>(), c.at("end_dim").get<int64_t>());
      });
}

ModuleKind DropoutKind() {
  return KindWith<Dropout>(
      "Dropout",
      [](const Dropout& d) {
        return std::vector<OpArg>{d.p, d.is_training()};
      },
      [](const Dropout& d) {
        return json{{"p", d.p}};
      },
      [](const json& c) { return std::make_shared<Dropout>(c.at("p").get<double>()); });
}

ModuleKind LayerNormKind() {
  return KindWith<LayerNorm>(
      "LayerNorm",
      [](const LayerNorm& l) {
        return std::vector<OpArg>{l.normalized_shape, OptTensor(l.weight), OptTensor(l.bias), l.eps};
      },
      [](const LayerNorm& l) {
        return json{
            {"normalized_shape", l.normalized_shape}, {"eps", l.eps}, {"elementwise_affine", l.weight.defined()}};
      },
      [](const json& c) {
        return std::make_shared<LayerNorm>(c.at("normalized_shape").get<std::vector<int64_t>>(),
                                           c.at("eps").get<double>(), c.at("elementwise_affine").get<bool>());
      });
}

ModuleKind MultiheadAttentionKind() {
  return KindWith<MultiheadAttention>(
      "MultiheadAttention",
      [](const MultiheadAttention& m) {  // no dropout argument: training refuses dropout > 0 (graph_tape.cc)
        return std::vector<OpArg>{m.in_proj_weight,   OptTensor(m.in_proj_bias),
                                  m.out_proj->weight, OptTensor(m.out_proj->bias),
                                  m.num_heads,        m.batch_first};
      },
      [](const MultiheadAttention& m) {
        return json{{"embed_dim", m.embed_dim},
                    {"num_heads", m.num_heads},
                    {"dropout", m.dropout},
                    {"bias", m.in_proj_bias.defined()},
                    {"batch_first", m.batch_first}};
      },
      [](const json& c) {
        return std::make_shared<MultiheadAttention>(c.at("embed_dim").get<int64_t>(), c.at("num_heads").get<int64_t>(),
                                                    c.at("dropout").get<double>(), c.at("bias").get<bool>(),
                                                    c.at("batch_first").get<bool>());
      });
}

Tensor RunMultiheadAttention(const std::vector<OpArg>& v) {
  const Args a{"multi_head_attention", v};
  return F::multi_head_attention(a.T(0), a.T(1), a.OptT(2), a.T(3), a.OptT(4), a.I(5), a.B(6));
}

// One registry entry, built field by field: Op(id, name, ...).Role(...).Derivative(...).Module(...).
class Op {
 public:
  Op(OpId id, const char* name, bool is_method, const char* torch_name, int min_args, int max_args,
     Tensor (*run)(const std::vector<OpArg>&)) {
    s_.id = id;
    s_.name = name;
    s_.is_method = is_method;
    s_.torch_name = torch_name;
    s_.min_args = min_args;
    s_.max_args = max_args;
    s_.run = run;
  }
  Op& Role(QR role) {
    s_.role = role;
    return *this;
  }
  Op& Derivative(OpSchema::DerivativeFn d) {
    s_.derivative = d;
    return *this;
  }
  Op& Vjp(OpSchema::VjpFn f) {
    s_.vjp = f;
    return *this;
  }
  Op& Clamp(bool (*c)(const std::vector<OpArg>&, float*, float*)) {
    s_.clamp = c;
    return *this;
  }
  Op& Module(ModuleKind kind) {
    s_.modules.push_back(std::move(kind));
    return *this;
  }
  Op& Fixed(FixedRange range) {
    s_.fixed_range = range;
    return *this;
  }
  Op& IdentityInEval() {
    s_.identity_in_eval = true;
    return *this;
  }
  Op& SelectsValues() {
    s_.selects_values = true;
    return *this;
  }
  operator OpSchema() const { return s_; }  // NOLINT: the table lists Ops

 private:
  OpSchema s_;
};

Tensor MethodReshape(const std::vector<OpArg>& v) {
  const Args a{"reshape", v};
  return a.T(0).Reshape(a.Ints(1));
}
Tensor MethodView(const std::vector<OpArg>& v) {
  const Args a{"view", v};
  return a.T(0).View(a.Ints(1));
}
Tensor MethodFlatten(const std::vector<OpArg>& v) {
  const Args a{"flatten", v};
  return a.T(0).Flatten(a.I(1), a.I(2));
}
Tensor MethodTranspose(const std::vector<OpArg>& v) {
  const Args a{"transpose", v};
  return a.T(0).Transpose(a.I(1), a.I(2));
}
Tensor MethodPermute(const std::vector<OpArg>& v) {
  const Args a{"permute", v};
  return a.T(0).Permute(a.Ints(1));
}
Tensor RunStochasticDepth(const std::vector<OpArg>& v) {
  const Args a{"stochastic_depth", v};
  return F::stochastic_depth(a.T(0), a.D(1), static_cast<F::StochasticDepthMode>(a.I(2)), a.B(3));
}
Tensor RunLayerNorm(const std::vector<OpArg>& v) {
  const Args a{"layer_norm", v};
  return F::layer_norm(a.T(0), a.Ints(1), a.OptT(2), a.OptT(3), a.D(4));
}

std::vector<OpSchema> MakeRegistry() {
  return {
      Op(OpId::kAdd, "add", false, "_operator.add", 2, 2, RunAdd).Role(QR::kBinary).Vjp(VjpAdd),
      Op(OpId::kMul, "mul", false, "_operator.mul", 2, 2, RunMul).Role(QR::kBinary).Vjp(VjpMul),
      Op(OpId::kCat, "cat", false, "torch.cat", 2, 2,
         [](const std::vector<OpArg>& v) {
           const Args a{"cat", v};
           return F::cat(a.Get<std::vector<Tensor>>(0, "a list of tensors"), a.I(1));
         })
          .Role(QR::kCat)
          .Vjp(VjpCat),
      Op(OpId::kFlatten, "flatten", false, "torch.flatten", 3, 3, QFX_RUN(flatten, a.T(0), a.I(1), a.I(2)))
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpReshape)
          .Module(FlattenKind()),
      Op(OpId::kReshape, "reshape", false, "torch.reshape", 2, 2, QFX_RUN(reshape, a.T(0), a.Ints(1)))
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpReshape),
      // Share-qparams, as torch.mean in PyTorch's x86 and qnnpack backends (and XNNPACK's PT2E quantizer).
      Op(OpId::kMean, "mean", false, "torch.mean", 3, 3, QFX_RUN(mean, a.T(0), a.Ints(1), a.B(2)))
          .Role(QR::kShareQParams)
          .Vjp(VjpMean),
      Op(OpId::kRelu, "relu", false, "torch.nn.functional.relu", 1, 1, QFX_UNARY(relu))
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Derivative(DReLU)
          .Clamp(ClampReLU)
          .Module(StatelessKind<ReLU>("ReLU")),
      Op(OpId::kRelu6, "relu6", false, "torch.nn.functional.relu6", 1, 1, QFX_UNARY(relu6))
          .Role(QR::kShareQParams)
          .Derivative(DReLU6)
          .Clamp(ClampReLU6)
          .Module(StatelessKind<ReLU6>("ReLU6")),
      Op(OpId::kHardtanh, "hardtanh", false, "torch.nn.functional.hardtanh", 3, 3,
         QFX_RUN(hardtanh, a.T(0), a.F32(1), a.F32(2)))
          .Role(QR::kShareQParams)
          .Derivative(DHardtanh)
          .Clamp(ClampHardtanh)
          .Module(HardtanhKind()),
      Op(OpId::kHardswish, "hardswish", false, "torch.nn.functional.hardswish", 1, 1, QFX_UNARY(hardswish))
          .Role(QR::kTable)
          .Derivative(DHardswish)
          .Module(StatelessKind<Hardswish>("Hardswish")),
      Op(OpId::kHardsigmoid, "hardsigmoid", false, "torch.nn.functional.hardsigmoid", 1, 1, QFX_UNARY(hardsigmoid))
          .Role(QR::kFixedQParams)
          .Fixed(FixedRange::kUnit)
          .Derivative(DHardsigmoid)
          .Module(StatelessKind<Hardsigmoid>("Hardsigmoid")),
      Op(OpId::kSigmoid, "sigmoid", false, "torch.sigmoid", 1, 1, QFX_UNARY(sigmoid))
          .Role(QR::kFixedQParams)
          .Fixed(FixedRange::kUnit)
          .Derivative(DSigmoid)
          .Module(StatelessKind<Sigmoid>("Sigmoid")),
      Op(OpId::kTanh, "tanh", false, "torch.tanh", 1, 1, QFX_UNARY(tanh))
          .Role(QR::kFixedQParams)
          .Fixed(FixedRange::kSymmetric)
          .Derivative(DTanh)
          .Module(StatelessKind<Tanh>("Tanh")),
      Op(OpId::kSilu, "silu", false, "torch.nn.functional.silu", 1, 1, QFX_UNARY(silu))
          .Derivative(DSilu)
          .Module(StatelessKind<SiLU>("SiLU")),
      Op(OpId::kGelu, "gelu", false, "torch._C._nn.gelu", 1, 1, QFX_UNARY(gelu)).Derivative(DGelu).Module(GELUKind()),
      Op(OpId::kLeakyRelu, "leaky_relu", false, "torch.nn.functional.leaky_relu", 2, 2,
         QFX_RUN(leaky_relu, a.T(0), a.D(1)))
          .Role(QR::kTable)
          .Derivative(DLeakyRelu)
          .Module(LeakyReLUKind()),
      Op(OpId::kSoftmax, "softmax", false, "torch.nn.functional.softmax", 2, 2, QFX_RUN(softmax, a.T(0), a.I(1)))
          .Vjp(VjpSoftmax)
          .Fixed(FixedRange::kUnit)
          .Module(SoftmaxKind()),
      Op(OpId::kDropout, "dropout", false, "torch.nn.functional.dropout", 3, 3,
         QFX_RUN(dropout, a.T(0), a.D(1), a.B(2)))
          .Role(QR::kTable)
          .IdentityInEval()
          .Module(DropoutKind()),
      Op(OpId::kConv2d, "conv2d", false, "torch.conv2d", 7, 7, RunConv2d)
          .Role(QR::kWeighted)
          .Vjp(VjpConv2d)
          .Module(Conv2dKind()),
      Op(OpId::kLinear, "linear", false, "torch._C._nn.linear", 3, 3, QFX_RUN(linear, a.T(0), a.T(1), a.OptT(2)))
          .Role(QR::kWeighted)
          .Vjp(VjpLinear)
          .Module(LinearKind()),
      Op(OpId::kBatchNorm, "batch_norm", false, "torch.nn.functional.batch_norm", 8, 8, RunBatchNorm)
          .Module(BatchNormKind<BatchNorm2d>("BatchNorm2d"))
          .Module(BatchNormKind<BatchNorm1d>("BatchNorm1d")),
      Op(OpId::kMaxPool2d, "max_pool2d", false, "torch.nn.functional.max_pool2d", 6, 6, RunMaxPool)
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpMaxPool2d)
          .Module(MaxPoolKind()),
      Op(OpId::kAvgPool2d, "avg_pool2d", false, "torch._C._nn.avg_pool2d", 6, 6, RunAvgPool)
          .Role(QR::kShareQParams)
          .Vjp(VjpAvgPool2d)
          .Module(AvgPoolKind()),
      Op(OpId::kAdaptiveAvgPool2d, "adaptive_avg_pool2d", false, "torch.nn.functional.adaptive_avg_pool2d", 2, 2,
         QFX_RUN(adaptive_avg_pool2d, a.T(0), a.Ints(1)))
          .Role(QR::kShareQParams)
          .Vjp(VjpAdaptiveAvgPool2d)
          .Module(AdaptiveAvgPoolKind()),
      // PyTorch 1.13's native backend config (prepare_fx's default, which its x86 / qnnpack / onednn qconfig
      // mappings run with) quantizes layer_norm on quint8 with float weights: observed input, own output
      // observer, its fp32 math between.
      Op(OpId::kLayerNorm, "layer_norm", false, "torch.nn.functional.layer_norm", 5, 5, RunLayerNorm)
          .Role(QR::kObservedFloat)
          .Vjp(VjpLayerNorm)
          .Module(LayerNormKind()),
      // Quantized as PyTorch 1.13's native backend config does (a binary op: own output observer), lowered to
      // q_matmul. bmm is in no backend list: float.
      Op(OpId::kMatmul, "matmul", false, "torch.matmul", 2, 2, QFX_RUN(matmul, a.T(0), a.T(1)))
          .Role(QR::kBinary)
          .Vjp(VjpMatmul),
      Op(OpId::kBmm, "bmm", false, "torch.bmm", 2, 2, QFX_RUN(bmm, a.T(0), a.T(1))).Vjp(VjpMatmul),
      // interpolate(x, size, scale_h, scale_w, mode, align_corners): size [] when scales are given, scales 0
      // when a size is; mode 0 nearest, 1 bilinear. Share-qparams, as in PyTorch's backends.
      Op(OpId::kInterpolate, "interpolate", false, "torch.nn.functional.interpolate", 6, 6, RunInterpolate)
          .Role(QR::kShareQParams)
          .Vjp(VjpInterpolate)
          .Module(UpsampleKind()),
      // PyTorch's static backends keep embedding float (its int8 form is weight-only, float_qparams).
      Op(OpId::kEmbedding, "embedding", false, "torch.nn.functional.embedding", 2, 3, RunEmbedding)
          .Vjp(VjpEmbedding)
          .Module(EmbeddingKind()),
      Op(OpId::kChannelShuffle, "channel_shuffle", false, "torch.channel_shuffle", 2, 2,
         QFX_RUN(channel_shuffle, a.T(0), a.I(1)))
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpChannelShuffle)
          .Module(ChannelShuffleKind()),
      // PyTorch's x86 backend quantizes it; qfx has no int8 kernel for it yet (float, with that reason).
      Op(OpId::kConvTranspose2d, "conv_transpose2d", false, "torch.conv_transpose2d", 8, 8, RunConvTranspose2d)
          .Vjp(VjpConvTranspose2d)
          .Module(ConvTranspose2dKind()),
      // narrow(x, dim, start, length): chunk and split trace to it. Share-qparams, as in PyTorch's backends.
      Op(OpId::kNarrow, "narrow", false, "torch.narrow", 4, 4, QFX_RUN(narrow, a.T(0), a.I(1), a.I(2), a.I(3)))
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpNarrow),
      // stochastic_depth(x, p, mode, training), mode 0 batch, 1 row: torchvision's torch.fx-wrapped function.
      // PyTorch's backends have no pattern for it, so it stays float (in eval the identity); its backward is
      // training's, with the noise of the forward (src/train/graph_tape.cc).
      Op(OpId::kStochasticDepth, "stochastic_depth", false, "torchvision.ops.stochastic_depth.stochastic_depth", 4, 4,
         RunStochasticDepth)
          .IdentityInEval(),
      // nn.MultiheadAttention's self-attention (the module is a leaf, as in torch.fx). PyTorch's FX backends have
      // no pattern for it: float.
      Op(OpId::kMultiheadAttention, "multi_head_attention", false, "torch.nn.functional.multi_head_attention_forward",
         7, 7, RunMultiheadAttention)
          .Vjp(VjpMultiheadAttention)
          .Module(MultiheadAttentionKind()),
      // select(x, dim, index): x[:, i] and the like (torch.fx's getitem). Not in PyTorch's backend lists: float.
      Op(OpId::kSelect, "select", false, "torch.select", 3, 3, QFX_RUN(select, a.T(0), a.I(1), a.I(2))).Vjp(VjpSelect),
      Op(OpId::kQuantize, "quantize", false, "torch.quantize_per_tensor", 3, 3,
         QFX_RUN(quantize, a.T(0), a.D(1), a.I(2)))
          .Role(QR::kQuantized),
      Op(OpId::kDequantize, "dequantize", false, "torch.dequantize", 1, 1, QFX_UNARY(dequantize)).Role(QR::kQuantized),
      Op(OpId::kQAdd, "q_add", false, "torch.ops.quantized.add", 5, 5,
         QFX_RUN(q_add, a.T(0), a.T(1), a.D(2), a.I(3), a.B(4)))
          .Role(QR::kQuantized),
      Op(OpId::kQMul, "q_mul", false, "torch.ops.quantized.mul", 4, 4, QFX_RUN(q_mul, a.T(0), a.T(1), a.D(2), a.I(3)))
          .Role(QR::kQuantized),
      Op(OpId::kQCat, "q_cat", false, "torch.ops.quantized.cat", 4, 4,
         [](const std::vector<OpArg>& v) {
           const Args a{"q_cat", v};
           return F::q_cat(a.Get<std::vector<Tensor>>(0, "a list of tensors"), a.I(1), a.D(2), a.I(3));
         })
          .Role(QR::kQuantized),
      Op(OpId::kQUnary, "q_unary", false, "torch.ops.quantized.unary", 4, 8,
         [](const std::vector<OpArg>& v) {
           const Args a{"q_unary", v};
           return F::q_unary(a.T(0), a.Get<OpId>(1, "an op"), a.D(2), a.I(3),
                             std::vector<OpArg>(v.begin() + 4, v.end()));
         })
          .Role(QR::kQuantized),
      Op(OpId::kQMatmul, "q_matmul", false, "torch.ops.quantized.matmul", 4, 4,
         QFX_RUN(q_matmul, a.T(0), a.T(1), a.D(2), a.I(3)))
          .Role(QR::kQuantized),
      Op(OpId::kMethodReshape, "reshape", true, "reshape", 2, 2, MethodReshape)
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpReshape),
      Op(OpId::kMethodView, "view", true, "view", 2, 2, MethodView)
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpReshape),
      // Float, as in PyTorch 1.13's x86 / qnnpack backends, which list torch.flatten as share-qparams but not the
      // Tensor method (RegNet's x.flatten(start_dim=1)): the next int8 op observes its output on its own.
      Op(OpId::kMethodFlatten, "flatten", true, "flatten", 3, 3, MethodFlatten).Vjp(VjpReshape),
      Op(OpId::kMethodTranspose, "transpose", true, "transpose", 3, 3, MethodTranspose)
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpTranspose),
      Op(OpId::kMethodPermute, "permute", true, "permute", 2, 2, MethodPermute)
          .Role(QR::kShareQParams)
          .SelectsValues()
          .Vjp(VjpPermute),
      // x.expand(sizes): ViT's class token per batch entry. Not in PyTorch's backend lists: float.
      Op(OpId::kMethodExpand, "expand", true, "expand", 2, 2, QFX_RUN(expand, a.T(0), a.Ints(1))).Vjp(VjpExpand),
      Op(OpId::kMethodExpandAs, "expand_as", true, "expand_as", 2, 2, QFX_RUN(expand_as, a.T(0), a.T(1)))
          .Vjp(VjpExpand),
  };
}

// Kinds of modules that compute no registered op; RegisterModuleKind adds to them.
std::vector<ModuleKind> OtherKinds() {
  ModuleKind identity = StatelessKind<Identity>("Identity");
  identity.role = QR::kShareQParams;
  // The eager flow's stubs: identity in float; the FX flow leaves them float.
  return {identity, StatelessKind<QuantStub>("QuantStub"), StatelessKind<DeQuantStub>("DeQuantStub")};
}

struct Kinds {
  std::mutex mu;
  std::vector<std::unique_ptr<ModuleKind>> all;  // stable addresses
  std::map<std::string, const ModuleKind*, std::less<>> by_name;
  std::multimap<std::type_index, const ModuleKind*> by_type;
};

absl::Status AddKind(Kinds& k, ModuleKind kind) {
  if (kind.type.empty() || !kind.config || !kind.make) {
    return absl::InvalidArgumentError(
        absl::StrCat("RegisterModuleKind: kind '", kind.type, "' needs a name, a config and a make function"));
  }
  if (k.by_name.count(kind.type)) {
    return absl::AlreadyExistsError(absl::StrCat("RegisterModuleKind: module type '", kind.type, "' is registered"));
  }
  k.all.push_back(std::make_unique<ModuleKind>(std::move(kind)));
  const ModuleKind* p = k.all.back().get();
  k.by_name.emplace(p->type, p);
  k.by_type.emplace(p->cpp_type, p);
  return absl::OkStatus();
}

const std::vector<OpSchema>& Registry() {
  static const auto* ops = new std::vector<OpSchema>(MakeRegistry());
  return *ops;
}

Kinds& AllKinds() {
  static Kinds* kinds = [] {
    auto* k = new Kinds;
    for (const OpSchema& op : Registry()) {
      for (ModuleKind kind : op.modules) {
        kind.op = op.id;
        kind.role = op.role;
        absl::Status s = AddKind(*k, std::move(kind));
        if (!s.ok()) throw Error(absl::InternalError(s.message()));
      }
    }
    for (ModuleKind& kind : OtherKinds()) {
      absl::Status s = AddKind(*k, std::move(kind));
      if (!s.ok()) throw Error(absl::InternalError(s.message()));
    }
    return k;
  }();
  return *kinds;
}

}  // namespace

const std::vector<OpSchema>& AllOps() { return Registry(); }

const OpSchema& GetOpSchema(OpId id) {
  const auto& ops = Registry();
  const size_t i = static_cast<size_t>(id);
  if (i >= ops.size() || ops[i].id != id) {
    throw Error(absl::InternalError(absl::StrCat("op registry out of order at id ", i)));
  }
  return ops[i];
}

const OpSchema* FindOp(absl::string_view name, bool is_method) {
  for (const OpSchema& op : Registry()) {
    if (op.name == name && op.is_method == is_method) return &op;
  }
  return nullptr;
}

Tensor RunOp(OpId id, const std::vector<OpArg>& args) {
  const OpSchema& op = GetOpSchema(id);
  const int n = static_cast<int>(args.size());
  if (n < op.min_args || n > op.max_args) {
    ThrowInvalid(op.name, ": takes ", op.min_args, op.max_args == op.min_args ? "" : absl::StrCat("..", op.max_args),
                 " arguments, got ", n);
  }
  return op.run(args);
}

absl::Status RegisterModuleKind(ModuleKind kind) {
  Kinds& k = AllKinds();
  std::lock_guard<std::mutex> lock(k.mu);
  kind.op = OpId::kNumOps;
  return AddKind(k, std::move(kind));
}

const ModuleKind* FindModuleKind(absl::string_view type) {
  Kinds& k = AllKinds();
  std::lock_guard<std::mutex> lock(k.mu);
  auto it = k.by_name.find(type);
  return it == k.by_name.end() ? nullptr : it->second;
}

const ModuleKind* KindOf(const Module& m) {
  Kinds& k = AllKinds();
  std::lock_guard<std::mutex> lock(k.mu);
  auto [lo, hi] = k.by_type.equal_range(std::type_index(typeid(m)));
  if (lo == hi) return nullptr;
  if (std::next(lo) == hi) return lo->second;
  const std::string name = m.type_name();  // one C++ class under several names (QuantizedConv2d / ...ReLU2d)
  for (auto it = lo; it != hi; ++it) {
    if (it->second->type == name) return it->second;
  }
  return lo->second;
}

OpId ModuleOp(const Module& m, std::vector<OpArg>* args) {
  const ModuleKind* kind = KindOf(m);
  if (kind == nullptr || kind->op == OpId::kNumOps) return OpId::kNumOps;
  if (args != nullptr) *args = kind->op_args(m);
  return kind->op;
}

QuantRole ModuleRole(const Module& m) {
  const ModuleKind* kind = KindOf(m);
  return kind == nullptr ? QuantRole::kFloat : kind->role;
}

std::vector<std::string> ModuleKindNames() {
  Kinds& k = AllKinds();
  std::lock_guard<std::mutex> lock(k.mu);
  std::vector<std::string> names;
  for (const auto& [name, kind] : k.by_name) names.push_back(name);
  return names;
}

absl::StatusOr<std::shared_ptr<Module>> MakeModule(const std::string& type, const json& config) {
  const ModuleKind* kind = FindModuleKind(type);
  if (kind == nullptr) return absl::UnimplementedError(absl::StrCat("unknown module type '", type, "'"));
  std::shared_ptr<Module> m;
  const absl::Status s = CatchErrors([&] {
    try {
      m = kind->make(config);
    } catch (const json::exception& e) {
      ThrowInvalid("config of ", type, ": ", e.what());
    }
  });
  if (!s.ok()) return s;
  if (m == nullptr) return absl::InternalError(absl::StrCat("the make function of module type ", type, " gave null"));
  m->eval();
  return m;
}

json Size2ToJson(Size2 s) { return s.square() ? json(s.h) : json(s.vec()); }

absl::StatusOr<Size2> Size2FromJson(const json& config, const char* field) {
  const auto it = config.find(field);
  if (it != config.end() && it->is_number_integer()) return Size2(it->get<int64_t>());
  if (it != config.end() && it->is_array() && it->size() == 2 && (*it)[0].is_number_integer() &&
      (*it)[1].is_number_integer()) {
    return Size2((*it)[0].get<int64_t>(), (*it)[1].get<int64_t>());
  }
  return absl::InvalidArgumentError(absl::StrCat("'", field, "' is ", it == config.end() ? "missing" : it->dump(),
                                                 "; it must be an integer or a list [h, w] of two integers"));
}

absl::StatusOr<json> ModuleConfig(const Module& m) {
  const ModuleKind* kind = KindOf(m);
  if (kind == nullptr) {
    return absl::UnimplementedError(absl::StrCat("module type ", m.type_name(),
                                                 " cannot be saved in a .qfx file (register it with "
                                                 "qfx::nn::RegisterModuleKind: its name, config and make function)"));
  }
  json config;
  const absl::Status s = CatchErrors([&] { config = kind->config(m); });
  if (!s.ok()) return s;
  return config;
}

}  // namespace nn
}  // namespace qfx
