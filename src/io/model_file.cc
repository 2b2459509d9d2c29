// qfx io: .qfx model files (see include/qfx/io/model_file.h).
#include "qfx/io/model_file.h"

#include <algorithm>
#include <iterator>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "qfx/fx/formats.h"
#include "qfx/io/safetensors.h"
#include "qfx/nn/ops.h"
#include "qfx/quant/quantized_modules.h"

namespace qfx {
namespace io {
namespace {

using json = nlohmann::json;
constexpr const char* kFormat = "qfx.model";
constexpr const char* kVersion = "2";  // 2: q_unary nodes name their op; 1 (still read): an OpId ordinal

// The op names of version 1's OpId ordinals (q_unary stored its op as one), frozen here so that a
// reordered enum cannot change what an old file means.
constexpr const char* kV1Ops[] = {"add",         "mul",
                                  "cat",         "flatten",
                                  "reshape",     "mean",
                                  "relu",        "relu6",
                                  "hardtanh",    "hardswish",
                                  "hardsigmoid", "sigmoid",
                                  "tanh",        "silu",
                                  "softmax",     "dropout",
                                  "conv2d",      "linear",
                                  "batch_norm",  "max_pool2d",
                                  "avg_pool2d",  "adaptive_avg_pool2d",
                                  "quantize",    "dequantize",
                                  "q_add",       "q_mul",
                                  "q_cat",       "q_unary"};

// A plain parent in a loaded model's module tree; holds attributes that get_attr nodes read.
class Container : public nn::Module {
 public:
  std::string type_name() const override { return "QfxModel"; }
  Tensor AddBuffer(const std::string& name, Tensor t) { return register_buffer(name, t); }
};

absl::Status Bad(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

// The container at `path` in the tree under `root`, creating missing ones.
absl::StatusOr<Container*> ContainerAt(Container& root, const std::string& path) {
  Container* c = &root;
  if (path.empty()) return c;
  std::string prefix;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    prefix = prefix.empty() ? std::string(part) : absl::StrCat(prefix, ".", part);
    nn::Module* next = root.submodule(prefix);
    if (next == nullptr) {
      auto created = std::make_shared<Container>();
      QFX_RETURN_IF_ERROR(root.SetSubmodule(prefix, created));
      next = created.get();
    }
    c = dynamic_cast<Container*>(next);
    if (c == nullptr) return absl::InvalidArgumentError(absl::StrCat("'", prefix, "' is a module, not a parent"));
  }
  return c;
}

std::string Parent(const std::string& p) { return p.rfind('.') == std::string::npos ? "" : p.substr(0, p.rfind('.')); }
std::string Leaf(const std::string& p) { return p.rfind('.') == std::string::npos ? p : p.substr(p.rfind('.') + 1); }

// A string field of a JSON object, or `fallback` when it is missing or not a string.
std::string StringField(const json& o, const char* key, const char* fallback) {
  return o.is_object() && o.contains(key) && o[key].is_string() ? o[key].get<std::string>() : fallback;
}

// The op argument (args[1]) of each q_unary node in a graph's JSON, with `fn(node, arg)` rewriting it.
template <typename Fn>
absl::Status ForEachUnaryOp(json& graph, Fn fn) {
  if (!graph.is_object() || !graph.contains("nodes") || !graph["nodes"].is_array()) return absl::OkStatus();
  for (json& node : graph["nodes"]) {
    if (StringField(node, "op", "") != "call_function" || StringField(node, "target", "") != "q_unary") continue;
    if (!node.contains("args") || !node["args"].is_array() || node["args"].size() < 2) continue;  // lint names it
    QFX_RETURN_IF_ERROR(fn(node, node["args"][1]));
  }
  return absl::OkStatus();
}

// A file's graph JSON with each q_unary op checked to be a registered function name (version 2) or turned
// from a version-1 ordinal into one; anything else is an error naming the node and the op.
absl::StatusOr<std::string> GraphJsonFromFile(const std::string& path, const std::string& text, int version) {
  json graph;
  try {
    graph = json::parse(text);
  } catch (const json::exception&) {
    return text;  // GraphFromJson reports it with its position
  }
  QFX_RETURN_IF_ERROR(ForEachUnaryOp(graph, [&](const json& node, json& op) -> absl::Status {
    const std::string where = absl::StrCat(path, ": node %", StringField(node, "name", "?"), " (q_unary): ");
    std::string name;
    if (version == 1 && op.is_number_integer() && op.get<int64_t>() >= 0 &&
        op.get<int64_t>() < static_cast<int64_t>(std::size(kV1Ops))) {
      name = kV1Ops[op.get<int64_t>()];
    } else if (version >= 2 && op.is_string()) {
      name = op.get<std::string>();
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, "op ", op.dump(), " must be ",
                                                     version == 1 ? "an op number of version 1" : "an op name"));
    }
    const nn::OpSchema* schema = nn::FindOp(name, /*is_method=*/false);
    if (schema == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, "unknown op '", name, "'"));
    op = name;
    return absl::OkStatus();
  }));
  return graph.dump();
}

// "fnv1a64:<16 hex digits>" over every tensor's name, shape, dtype and bytes, in name order: catches a
// damaged or shifted file (bytes inserted into the header move every tensor), not deliberate tampering.
std::string Checksum(const nn::NamedTensors& tensors) {
  std::vector<const std::pair<std::string, Tensor>*> sorted;
  for (const auto& e : tensors) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return a->first < b->first; });
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const auto* e : sorted) {
    const std::string head = absl::StrCat(e->first, ShapeToString(e->second.shape()), DTypeName(e->second.dtype()));
    mix(head.data(), head.size() + 1);
    mix(e->second.raw_data(), e->second.nbytes());
  }
  return absl::StrCat("fnv1a64:", absl::Hex(h, absl::kZeroPad16));
}

}  // namespace

absl::Status SaveModel(const std::string& path, fx::GraphModule& gm, const Shape& input_shape,
                       const std::string& source, const ModelCheck& check) {
  QFX_RETURN_IF_ERROR(quant::RegisterModuleKinds());
  json modules = json::object();
  nn::NamedTensors tensors;
  std::set<std::string> seen;
  for (fx::Node* n : gm.graph()) {
    const std::string& target = n->target().path;
    if (!seen.insert(target).second) continue;
    if (n->op() == fx::Opcode::kCallModule) {
      nn::Module* m = gm.submodule(target);
      if (m == nullptr) return absl::InternalError(absl::StrCat("SaveModel: module '", target, "' is missing"));
      absl::StatusOr<json> config = nn::ModuleConfig(*m);
      if (!config.ok()) return Bad(path, absl::StrCat("module '", target, "': ", config.status().message()));
      modules[target] = {{"type", nn::KindOf(*m)->type}, {"config", *config}};  // the name it loads by
      for (auto& [name, t] : m->state_dict(target)) tensors.emplace_back(name, t);
    } else if (n->op() == fx::Opcode::kGetAttr) {
      tensors.emplace_back(target, gm.tensor_at(target));
    }
  }
  const std::string graph = fx::GraphToJson(gm.graph());
  std::map<std::string, std::string> meta = {{"format", kFormat},
                                             {"version", kVersion},
                                             {"graph", graph},
                                             {"modules", modules.dump()},
                                             {"source", source},
                                             {"input_shape", ShapeToString(input_shape)},
                                             {"checksum", Checksum(tensors)}};
  return io::WriteSafetensors(path, tensors, meta, [&](const std::string& written) -> absl::Status {
    QFX_ASSIGN_OR_RETURN(ModelFile reloaded, LoadModel(written));
    return check ? check(*reloaded.module) : absl::OkStatus();
  });
}

namespace {

absl::Status BuildModules(const std::string& path, const json& modules, Container& root) {
  if (!modules.is_object()) return Bad(path, "metadata 'modules' must be a JSON object");
  for (const auto& [target, entry] : modules.items()) {
    if (!entry.is_object() || !entry.contains("type") || !entry["type"].is_string() || !entry.contains("config")) {
      return Bad(path, absl::StrCat("module '", target, "' needs a type and a config"));
    }
    absl::StatusOr<std::shared_ptr<nn::Module>> m = nn::MakeModule(entry["type"].get<std::string>(), entry["config"]);
    if (!m.ok()) return Bad(path, absl::StrCat("module '", target, "': ", m.status().message()));
    absl::StatusOr<Container*> parent = ContainerAt(root, Parent(target));
    if (!parent.ok()) return Bad(path, absl::StrCat("module '", target, "': ", parent.status().message()));
    QFX_RETURN_IF_ERROR((*parent)->SetSubmodule(Leaf(target), *m));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelFile> LoadModel(const std::string& path) {
  QFX_RETURN_IF_ERROR(quant::RegisterModuleKinds());
  QFX_ASSIGN_OR_RETURN(io::Safetensors st, io::ReadSafetensors(path));
  auto meta = [&](const char* key) -> const std::string* {
    auto it = st.metadata.find(key);
    return it == st.metadata.end() ? nullptr : &it->second;
  };
  if (!meta("format") || *meta("format") != kFormat)
    return Bad(path, "not a qfx model file (metadata 'format' is not 'qfx.model')");
  int version = 0;
  if (!meta("version") || !absl::SimpleAtoi(*meta("version"), &version) || version < 1 || version > 2) {
    return Bad(path, absl::StrCat("model file version ", meta("version") ? *meta("version") : "?",
                                  " is not supported (this qfx reads 1 to ", kVersion, ")"));
  }
  for (const char* key : {"graph", "modules"}) {
    if (!meta(key)) return Bad(path, absl::StrCat("metadata '", key, "' is missing"));
  }
  json modules;
  try {
    modules = json::parse(*meta("modules"));
  } catch (const json::exception& e) {
    return Bad(path, absl::StrCat("metadata 'modules' is not valid JSON: ", e.what()));
  }
  auto root = std::make_shared<Container>();
  QFX_RETURN_IF_ERROR(BuildModules(path, modules, *root));
  QFX_ASSIGN_OR_RETURN(const std::string graph_json, GraphJsonFromFile(path, *meta("graph"), version));
  QFX_ASSIGN_OR_RETURN(std::unique_ptr<fx::Graph> graph, fx::GraphFromJson(graph_json, path + " (graph)"));
  std::map<std::string, Tensor> by_name(st.tensors.begin(), st.tensors.end());
  for (fx::Node* n : *graph) {
    if (n->op() != fx::Opcode::kGetAttr) continue;
    auto it = by_name.find(n->target().path);
    if (it == by_name.end())
      return Bad(path, absl::StrCat("attribute '", n->target().path, "' read by %", n->name(), " is missing"));
    QFX_ASSIGN_OR_RETURN(Container * parent, ContainerAt(*root, Parent(n->target().path)));
    parent->AddBuffer(Leaf(n->target().path), it->second.Clone());
  }
  auto gm = std::make_shared<fx::GraphModule>(root, std::move(graph), "QfxModel");
  gm->eval();
  absl::Status s = gm->load_state_dict(st.tensors, /*strict=*/true);
  if (!s.ok()) return Bad(path, std::string(s.message()));
  // After the structural checks, which name what is missing or mistyped. Files written before the
  // checksum (version 1 and early version 2) have none.
  if (const std::string* sum = meta("checksum"); sum && *sum != Checksum(st.tensors)) {
    return Bad(path, absl::StrCat("tensor data do not match the file's checksum ", *sum,
                                  " (the file is damaged, or was edited; write it again)"));
  }
  for (const auto& [name, m] : gm->named_modules()) {
    if (auto* q = dynamic_cast<quant::QuantizedWeighted*>(m)) {
      s = q->CheckWeights();
      if (!s.ok()) return Bad(path, absl::StrCat("module '", name, "': ", s.message()));
      s = CatchErrors([&] { q->Prepack(); });  // its requantization values are checked there
      if (!s.ok()) return Bad(path, absl::StrCat("module '", name, "': ", s.message()));
    }
    if (auto* d = dynamic_cast<quant::DynamicQuantizedLinear*>(m)) d->Prepack();
  }
  s = gm->Lint();
  if (!s.ok()) return Bad(path, std::string(s.message()));
  ModelFile out;
  out.module = gm;
  out.source = meta("source") ? *meta("source") : "";
  if (const std::string* shape = meta("input_shape"); shape && shape->size() > 2) {
    for (absl::string_view d : absl::StrSplit(shape->substr(1, shape->size() - 2), ", ")) {
      int64_t v;
      if (!absl::SimpleAtoi(d, &v))
        return Bad(path, absl::StrCat("metadata 'input_shape' ", *shape, " is not a shape"));
      out.input_shape.push_back(v);
    }
  }
  return out;
}

}  // namespace io
}  // namespace qfx
