// qfx quant: Export, the PT2E flow's op-level graph (see include/qfx/quant/pt2e.h).
//
// The model is traced as usual (leaf modules become call_module nodes); then every call_module whose
// module computes a registered op (qfx/nn/ops.h ModuleOp: Conv2d -> conv2d, BatchNorm2d -> batch_norm, ReLU
// -> relu, ...) is replaced by a call_function of that op whose tensor arguments are get_attr nodes of the
// module's parameters and buffers ("conv1.weight") and whose other arguments are the module's constants.
// Every node the module became records it in meta.scope (path and type), PyTorch's nn_module_stack[-1].
// Modules with no op (a user's own leaf module) stay call_module nodes and stay float. Export then names the
// nodes as torch.export does (conv2d, conv2d_1, relu, ...; get_attr nodes by path: conv1_weight).
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "qfx/fx/tracer.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/pt2e.h"

namespace qfx {
namespace quant {
namespace {

// The dotted names of a module's own parameters and buffers, by their storage.
std::unordered_map<const void*, std::string> TensorNames(const nn::Module& m) {
  std::unordered_map<const void*, std::string> names;
  for (const auto& [name, t] : m.named_parameters()) {
    if (t.defined()) names.emplace(t.raw_data(), name);
  }
  for (const auto& [name, t] : m.named_buffers()) {
    if (t.defined()) names.emplace(t.raw_data(), name);
  }
  return names;
}

// One argument of the module's op as a graph argument: a get_attr of the named tensor, or the constant.
absl::StatusOr<fx::Argument> ToArgument(fx::Graph& g, const fx::Node& call, const OpArg& a,
                                        const std::unordered_map<const void*, std::string>& names) {
  const auto* t = std::get_if<Tensor>(&a);
  if (t == nullptr) return ConstantAs<fx::Argument>(a);
  if (!t->defined()) return fx::Argument();
  auto it = names.find(t->raw_data());
  if (it == names.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Export: %", call.name(), " (", call.target().path,
                     "): its op reads a tensor that is not one of the module's parameters or buffers; register it "
                     "with register_parameter or register_buffer"));
  }
  fx::Node* attr = g.GetAttr(absl::StrCat(call.target().path, ".", it->second));
  attr->meta.scope = call.meta.scope;
  return fx::Argument(attr);
}

absl::Status Inline(fx::GraphModule& gm, fx::Node* n) {
  nn::Module* m = gm.submodule(n->target().path);
  if (m == nullptr) return absl::InternalError(absl::StrCat("Export: no module at '", n->target().path, "'"));
  std::vector<OpArg> op_args;
  const OpId op = nn::ModuleOp(*m, &op_args);
  if (op == OpId::kNumOps) return absl::OkStatus();
  if (n->args().size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("Export: %", n->name(), " calls ", m->type_name(), " with ",
                                                   n->args().size(), " arguments; its op takes one input"));
  }
  n->meta.scope = fx::ModuleScope{n->target().path, m->type_name()};
  const auto names = TensorNames(*m);
  std::vector<fx::Argument> args = {n->args()[0]};
  fx::Node* call;
  {
    auto point = gm.graph().InsertingBefore(n);
    for (const OpArg& a : op_args) {
      QFX_ASSIGN_OR_RETURN(fx::Argument arg, ToArgument(gm.graph(), *n, a, names));
      args.push_back(std::move(arg));
    }
    const nn::OpSchema& schema = nn::GetOpSchema(op);
    call = schema.is_method ? gm.graph().CallMethod(op, std::move(args)) : gm.graph().CallFunction(op, std::move(args));
  }
  call->meta.scope = n->meta.scope;
  call->meta.tensor = n->meta.tensor;
  call->meta.specialized = n->meta.specialized;
  n->ReplaceAllUsesWith(call);
  return gm.graph().EraseNode(n);
}

fx::Argument Remap(const fx::Argument& a, const std::unordered_map<const fx::Node*, fx::Node*>& map) {
  if (const auto* n = std::get_if<fx::Node*>(&a)) return fx::Argument(map.at(*n));
  if (const auto* list = std::get_if<std::vector<fx::Node*>>(&a)) {
    std::vector<fx::Node*> out;
    for (const fx::Node* n : *list) out.push_back(map.at(n));
    return fx::Argument(out);
  }
  return a;
}

// The graph again with torch.export's node names: each op node named after its op in order ("conv2d",
// "conv2d_1", "relu", ...), get_attr nodes after their path ("conv1_weight").
std::unique_ptr<fx::Graph> Renamed(const fx::Graph& g) {
  auto out = std::make_unique<fx::Graph>();
  std::unordered_map<const fx::Node*, fx::Node*> map;
  for (const fx::Node* n : g) {
    std::vector<fx::Argument> args;
    for (const fx::Argument& a : n->args()) args.push_back(Remap(a, map));
    std::vector<std::pair<std::string, fx::Argument>> kwargs;
    for (const auto& [k, a] : n->kwargs()) kwargs.emplace_back(k, Remap(a, map));
    std::string hint = n->name();
    if (n->op() == fx::Opcode::kCallFunction || n->op() == fx::Opcode::kCallMethod) {
      hint = nn::GetOpSchema(n->target().op).name;
    } else if (n->op() == fx::Opcode::kGetAttr) {
      hint = n->target().path;
    }
    fx::Node* c = out->CreateNode(n->op(), n->target(), std::move(args), std::move(kwargs), hint);
    c->meta = n->meta;
    map[n] = c;
  }
  return out;
}

}  // namespace

absl::Status InlineModules(fx::GraphModule& gm) {
  for (fx::Node* n : gm.graph().nodes()) {
    if (n->op() == fx::Opcode::kCallModule) QFX_RETURN_IF_ERROR(Inline(gm, n));
  }
  return gm.Lint();
}

absl::StatusOr<std::shared_ptr<fx::GraphModule>> Export(std::shared_ptr<nn::Module> model,
                                                        const std::vector<Shape>& example_input_shapes) {
  model->train(false);
  fx::TracerOptions options;  // specialised on the example shapes: forward may read sizes, as torch.export allows
  for (const Shape& s : example_input_shapes) {
    QFX_RETURN_IF_ERROR(CatchErrors([&] { options.example_inputs.push_back(Tensor::Zeros(s)); }));
  }
  QFX_ASSIGN_OR_RETURN(std::shared_ptr<fx::GraphModule> traced, fx::SymbolicTrace(model, options));
  QFX_RETURN_IF_ERROR(InlineModules(*traced));
  auto gm = std::make_shared<fx::GraphModule>(model, Renamed(traced->graph()), traced->type_name());
  QFX_RETURN_IF_ERROR(gm->Lint());
  if (!example_input_shapes.empty()) QFX_RETURN_IF_ERROR(fx::PropagateShapes(*gm, example_input_shapes));
  return gm;
}

}  // namespace quant
}  // namespace qfx
