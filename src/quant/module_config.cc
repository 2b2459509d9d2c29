// qfx quant: module configs for .qfx files (see include/qfx/quant/model_file.h): one place that knows how
// to describe and rebuild each module type a converted graph can call.
#include "absl/strings/str_cat.h"
#include "qfx/quant/fused_modules.h"
#include "qfx/quant/model_file.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace quant {
namespace {

using json = nlohmann::json;

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

}  // namespace

absl::StatusOr<json> ModuleConfig(const nn::Module& m) {
  if (auto* q = dynamic_cast<const QuantizedWeighted*>(&m)) return q->Config();
  if (auto* d = dynamic_cast<const DynamicQuantizedLinear*>(&m)) return d->Config();
  if (auto* c = dynamic_cast<const nn::Conv2d*>(&m)) {
    return json{
        {"in", c->in_channels},           {"out", c->out_channels},           {"kernel", c->kernel_size},
        {"stride", c->options.stride[0]}, {"padding", c->options.padding[0]}, {"dilation", c->options.dilation[0]},
        {"groups", c->options.groups},    {"bias", c->bias.defined()}};
  }
  if (auto* l = dynamic_cast<const nn::Linear*>(&m))
    return json{{"in", l->in_features}, {"out", l->out_features}, {"bias", l->bias.defined()}};
  if (auto* b = dynamic_cast<const nn::BatchNormBase*>(&m))
    return json{{"num_features", b->num_features}, {"eps", b->eps}, {"momentum", b->momentum}};
  if (auto* h = dynamic_cast<const nn::Hardtanh*>(&m)) return json{{"min_val", h->min_val}, {"max_val", h->max_val}};
  if (auto* s = dynamic_cast<const nn::Softmax*>(&m)) return json{{"dim", s->dim}};
  if (auto* p = dynamic_cast<const nn::MaxPool2d*>(&m)) return PoolConfig(p->options);
  if (auto* p = dynamic_cast<const nn::AvgPool2d*>(&m)) return PoolConfig(p->options);
  if (auto* p = dynamic_cast<const nn::AdaptiveAvgPool2d*>(&m)) return json{{"output_size", p->output_size}};
  if (auto* f = dynamic_cast<const nn::Flatten*>(&m)) return json{{"start_dim", f->start_dim}, {"end_dim", f->end_dim}};
  if (auto* d = dynamic_cast<const nn::Dropout*>(&m)) return json{{"p", d->p}};
  if (auto* fs = dynamic_cast<const FusedSequential*>(&m)) {
    json parts = json::array();
    for (const auto& [name, child] : fs->named_children()) {
      QFX_ASSIGN_OR_RETURN(json c, ModuleConfig(*child));
      parts.push_back({{"type", child->type_name()}, {"config", c}});
    }
    return json{{"parts", parts}};
  }
  static const char* kStateless[] = {"ReLU",    "ReLU6", "Hardswish", "Hardsigmoid",
                                     "Sigmoid", "Tanh",  "SiLU",      "Identity"};
  for (const char* t : kStateless) {
    if (m.type_name() == t) return json::object();
  }
  return absl::UnimplementedError(absl::StrCat("module type ", m.type_name(), " cannot be saved in a .qfx file"));
}

absl::StatusOr<std::shared_ptr<nn::Module>> MakeModule(const std::string& type, const json& c) {
  std::shared_ptr<nn::Module> m;
  const absl::Status s = CatchErrors([&] {
    try {
      if (type == "DynamicQuantizedLinear") {
        m = ValueOrThrow(DynamicQuantizedLinear::FromConfig(c));
      } else if (type.rfind("Quantized", 0) == 0) {
        m = ValueOrThrow(QuantizedWeighted::FromConfig(c));
      } else if (type == "Conv2d") {
        m = std::make_shared<nn::Conv2d>(
            c.at("in").get<int64_t>(), c.at("out").get<int64_t>(), c.at("kernel").get<int64_t>(),
            nn::Conv2dArgs{c.at("stride").get<int64_t>(), c.at("padding").get<int64_t>(),
                           c.at("dilation").get<int64_t>(), c.at("groups").get<int64_t>(), c.at("bias").get<bool>()});
      } else if (type == "Linear") {
        m = std::make_shared<nn::Linear>(c.at("in").get<int64_t>(), c.at("out").get<int64_t>(),
                                         c.at("bias").get<bool>());
      } else if (type == "BatchNorm2d" || type == "BatchNorm1d") {
        const int64_t n = c.at("num_features").get<int64_t>();
        const double eps = c.at("eps").get<double>(), mom = c.at("momentum").get<double>();
        m = type == "BatchNorm2d" ? std::shared_ptr<nn::Module>(std::make_shared<nn::BatchNorm2d>(n, eps, mom))
                                  : std::shared_ptr<nn::Module>(std::make_shared<nn::BatchNorm1d>(n, eps, mom));
      } else if (type == "Hardtanh") {
        m = std::make_shared<nn::Hardtanh>(c.at("min_val").get<float>(), c.at("max_val").get<float>());
      } else if (type == "Softmax") {
        m = std::make_shared<nn::Softmax>(c.at("dim").get<int64_t>());
      } else if (type == "MaxPool2d" || type == "AvgPool2d") {
        auto p = type == "MaxPool2d" ? std::shared_ptr<nn::Module>(std::make_shared<nn::MaxPool2d>(1))
                                     : std::shared_ptr<nn::Module>(std::make_shared<nn::AvgPool2d>(1));
        if (auto* mp = dynamic_cast<nn::MaxPool2d*>(p.get())) mp->options = PoolFrom(c);
        if (auto* ap = dynamic_cast<nn::AvgPool2d*>(p.get())) ap->options = PoolFrom(c);
        m = p;
      } else if (type == "AdaptiveAvgPool2d") {
        const auto size = c.at("output_size").get<std::vector<int64_t>>();
        if (size.size() != 2) ThrowInvalid("output_size must have 2 values");
        m = std::make_shared<nn::AdaptiveAvgPool2d>(size[0], size[1]);
      } else if (type == "Flatten") {
        m = std::make_shared<nn::Flatten>(c.at("start_dim").get<int64_t>(), c.at("end_dim").get<int64_t>());
      } else if (type == "Dropout") {
        m = std::make_shared<nn::Dropout>(c.at("p").get<double>());
      } else if (type == "ConvReLU2d" || type == "LinearReLU" || type == "BNReLU2d") {
        const json& parts = c.at("parts");
        if (!parts.is_array() || parts.size() != 2) ThrowInvalid("a fused module has two parts");
        auto first = ValueOrThrow(MakeModule(parts[0].at("type").get<std::string>(), parts[0].at("config")));
        auto second = ValueOrThrow(MakeModule(parts[1].at("type").get<std::string>(), parts[1].at("config")));
        m = MakeFused(type, first, second);
      } else if (type == "ReLU") {
        m = std::make_shared<nn::ReLU>();
      } else if (type == "ReLU6") {
        m = std::make_shared<nn::ReLU6>();
      } else if (type == "Hardswish") {
        m = std::make_shared<nn::Hardswish>();
      } else if (type == "Hardsigmoid") {
        m = std::make_shared<nn::Hardsigmoid>();
      } else if (type == "Sigmoid") {
        m = std::make_shared<nn::Sigmoid>();
      } else if (type == "Tanh") {
        m = std::make_shared<nn::Tanh>();
      } else if (type == "SiLU") {
        m = std::make_shared<nn::SiLU>();
      } else if (type == "Identity") {
        m = std::make_shared<nn::Identity>();
      } else {
        throw Error(absl::UnimplementedError(absl::StrCat("unknown module type '", type, "'")));
      }
    } catch (const json::exception& e) {
      ThrowInvalid("config of ", type, ": ", e.what());
    }
  });
  if (!s.ok()) return s;
  m->eval();
  return m;
}

}  // namespace quant
}  // namespace qfx
