// qfx fx: the versioned JSON graph format, writer and strict reader (see include/qfx/fx/formats.h).
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "qfx/fx/formats.h"
#include "qfx/nn/ops.h"

namespace qfx {
namespace fx {
namespace {

using json = nlohmann::ordered_json;

json ArgToJson(const Argument& a) {
  struct Visitor {
    json operator()(std::monostate) const { return nullptr; }
    json operator()(Node* n) const { return json{{"node", n->name()}}; }
    json operator()(int64_t v) const { return v; }
    json operator()(double v) const { return v; }
    json operator()(bool v) const { return v; }
    json operator()(OpId op) const { return nn::GetOpSchema(op).name; }
    json operator()(const std::vector<int64_t>& v) const { return v; }
    json operator()(const std::vector<Node*>& v) const {
      json list = json::array();
      for (Node* n : v) list.push_back(json{{"node", n->name()}});
      return list;
    }
  };
  return std::visit(Visitor{}, a);
}

// Parses JSON values back into Arguments; `where` prefixes errors.
class Reader {
 public:
  Reader(std::string source, const std::map<std::string, Node*>& defined)
      : source_(std::move(source)), defined_(defined) {}

  absl::StatusOr<Argument> Arg(const json& v, const std::string& where) const {
    if (v.is_null()) return Argument(std::monostate());
    if (v.is_boolean()) return Argument(v.get<bool>());
    if (v.is_number_integer()) return Argument(v.get<int64_t>());
    if (v.is_number_float()) return Argument(v.get<double>());
    if (v.is_object()) {
      QFX_ASSIGN_OR_RETURN(Node * n, NodeRef(v, where));
      return Argument(n);
    }
    if (v.is_array()) return List(v, where);
    if (v.is_string()) {
      const nn::OpSchema* schema = nn::FindOp(v.get<std::string>(), /*is_method=*/false);
      if (schema == nullptr) return Error(where, absl::StrCat("unknown op '", v.get<std::string>(), "'"));
      return Argument(schema->id);
    }
    return Error(where, "must be null, a bool, a number, an op name, {\"node\": NAME} or a list");
  }

  absl::Status Error(const std::string& where, const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", where, ": ", what));
  }

 private:
  absl::StatusOr<Node*> NodeRef(const json& v, const std::string& where) const {
    if (v.size() != 1 || !v.contains("node") || !v["node"].is_string()) {
      return Error(where, "a node reference must be {\"node\": NAME}");
    }
    const std::string name = v["node"].get<std::string>();
    auto it = defined_.find(name);
    if (it == defined_.end())
      return Error(where, absl::StrCat("refers to %", name, ", which is not defined before this node"));
    return it->second;
  }

  absl::StatusOr<Argument> List(const json& v, const std::string& where) const {
    if (v.empty() || v[0].is_number_integer()) {
      std::vector<int64_t> ints;
      for (const json& e : v) {
        if (!e.is_number_integer()) return Error(where, "a list must hold only integers or only node references");
        ints.push_back(e.get<int64_t>());
      }
      return Argument(ints);
    }
    std::vector<Node*> nodes;
    for (const json& e : v) {
      if (!e.is_object()) return Error(where, "a list must hold only integers or only node references");
      QFX_ASSIGN_OR_RETURN(Node * n, NodeRef(e, where));
      nodes.push_back(n);
    }
    return Argument(nodes);
  }

  std::string source_;
  const std::map<std::string, Node*>& defined_;
};

absl::StatusOr<Target> ParseTarget(const Reader& r, Opcode op, const std::string& target, const std::string& where) {
  if (op != Opcode::kCallFunction && op != Opcode::kCallMethod) return Target{OpId::kNumOps, target};
  const nn::OpSchema* schema = nn::FindOp(target, op == Opcode::kCallMethod);
  if (schema == nullptr) {
    return r.Error(where, absl::StrCat("unknown ", op == Opcode::kCallMethod ? "method" : "function", " '", target,
                                       "' (see qfx/nn/ops.h for the ops qfx knows)"));
  }
  return Target{schema->id, ""};
}

// "specialized": the sizes a traced graph holds to (-1 for a size it does not).
absl::Status ReadSpecialized(const Reader& r, const json& v, const std::string& where, Node* n) {
  if (!v.contains("specialized")) return absl::OkStatus();
  const char* rule = "'specialized' must be a list of sizes, each -1 (not specialised) or at least 0";
  if (!v["specialized"].is_array()) return r.Error(where, rule);
  std::vector<int64_t> sizes;
  for (const json& d : v["specialized"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < -1) return r.Error(where, rule);
    sizes.push_back(d.get<int64_t>());
  }
  n->meta.specialized = std::move(sizes);
  return absl::OkStatus();
}

absl::Status ReadMeta(const Reader& r, const json& v, const std::string& where, Node* n) {
  QFX_RETURN_IF_ERROR(ReadSpecialized(r, v, where, n));
  if (!v.contains("shape")) return absl::OkStatus();
  TensorMeta meta;
  if (!v["shape"].is_array()) return r.Error(where, "'shape' must be a list of integers");
  for (const json& d : v["shape"]) {
    if (!d.is_number_integer()) return r.Error(where, "'shape' must be a list of integers");
    meta.shape.push_back(d.get<int64_t>());
  }
  if (v.contains("dtype") && !v["dtype"].is_string()) return r.Error(where, "'dtype' must be a string");
  const std::string dtype = v.value("dtype", "f32");
  bool known = false;
  for (DType d : {DType::kF32, DType::kI8, DType::kU8, DType::kI32, DType::kI64}) {
    if (dtype == DTypeName(d)) {
      meta.dtype = d;
      known = true;
    }
  }
  if (!known) return r.Error(where, absl::StrCat("unknown dtype '", dtype, "'"));
  n->meta.tensor = meta;
  return absl::OkStatus();
}

absl::Status ReadNode(const Reader& r, Graph& g, const json& v, size_t index, std::map<std::string, Node*>& defined) {
  std::string where = absl::StrCat("node ", index);
  static const std::set<std::string> kKeys = {"name",   "op",    "target", "args",
                                              "kwargs", "shape", "dtype",  "specialized"};
  if (!v.is_object()) return r.Error(where, "must be an object");
  for (const auto& [k, unused] : v.items()) {
    if (!kKeys.count(k)) return r.Error(where, absl::StrCat("unknown key '", k, "'"));
  }
  for (const char* k : {"name", "op", "target"}) {
    if (!v.contains(k) || !v[k].is_string()) return r.Error(where, absl::StrCat("'", k, "' must be a string"));
  }
  const std::string name = v["name"].get<std::string>();
  where = absl::StrCat("node ", index, " (%", name, ")");
  Opcode op;
  if (!ParseOpcode(v["op"].get<std::string>(), &op)) {
    return r.Error(where,
                   absl::StrCat("op '", v["op"].get<std::string>(),
                                "' must be placeholder, get_attr, call_function, call_method, call_module or output"));
  }
  QFX_ASSIGN_OR_RETURN(Target target, ParseTarget(r, op, v["target"].get<std::string>(), where));
  std::vector<Argument> args;
  const json empty_list = json::array(), empty_obj = json::object();
  const json& jargs = v.contains("args") ? v["args"] : empty_list;
  const json& jkwargs = v.contains("kwargs") ? v["kwargs"] : empty_obj;
  if (!jargs.is_array()) return r.Error(where, "'args' must be a list");
  if (!jkwargs.is_object()) return r.Error(where, "'kwargs' must be an object");
  for (size_t i = 0; i < jargs.size(); ++i) {
    QFX_ASSIGN_OR_RETURN(Argument a, r.Arg(jargs[i], absl::StrCat(where, " arg ", i)));
    args.push_back(std::move(a));
  }
  std::vector<std::pair<std::string, Argument>> kwargs;
  for (const auto& [k, jv] : jkwargs.items()) {
    QFX_ASSIGN_OR_RETURN(Argument a, r.Arg(jv, absl::StrCat(where, " kwarg '", k, "'")));
    kwargs.emplace_back(k, std::move(a));
  }
  if (defined.count(name)) return r.Error(where, "name is used by an earlier node");
  Node* n = g.CreateNode(op, std::move(target), std::move(args), std::move(kwargs), name);
  if (n->name() != name) return r.Error(where, "name must be a valid identifier (letters, digits, '_')");
  defined[name] = n;
  return ReadMeta(r, v, where, n);
}

}  // namespace

std::string GraphToJson(const Graph& graph) {
  json nodes = json::array();
  for (const Node* n : graph) {
    json args = json::array();
    for (const Argument& a : n->args()) args.push_back(ArgToJson(a));
    json kwargs = json::object();
    for (const auto& [k, a] : n->kwargs()) kwargs[k] = ArgToJson(a);
    json node = {{"name", n->name()},
                 {"op", OpcodeName(n->op())},
                 {"target", n->target_string()},
                 {"args", args},
                 {"kwargs", kwargs}};
    if (n->meta.tensor) {
      node["shape"] = n->meta.tensor->shape;
      node["dtype"] = DTypeName(n->meta.tensor->dtype);
    }
    if (n->meta.specialized) node["specialized"] = *n->meta.specialized;
    nodes.push_back(std::move(node));
  }
  // One node per line: readable, and diffs of two graphs line up by node.
  std::string out = absl::StrCat("{\"format\": \"qfx.graph\", \"version\": ", kGraphJsonVersion, ", \"nodes\": [\n");
  for (size_t i = 0; i < nodes.size(); ++i) {
    absl::StrAppend(&out, "  ", nodes[i].dump(), i + 1 < nodes.size() ? ",\n" : "\n");
  }
  return out + "]}\n";
}

absl::StatusOr<std::unique_ptr<Graph>> GraphFromJson(const std::string& text, const std::string& source) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON: ", e.what()));
  }
  if (!doc.is_object() || !doc.contains("format") || doc["format"] != "qfx.graph") {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a qfx graph (\"format\": \"qfx.graph\" is missing)"));
  }
  if (!doc.contains("version") || !doc["version"].is_number_integer() ||
      doc["version"].get<int>() != kGraphJsonVersion) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": graph version ", doc.value("version", json()).dump(),
                                                   " is not supported (this qfx reads version ", kGraphJsonVersion,
                                                   ")"));
  }
  if (!doc.contains("nodes") || !doc["nodes"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": \"nodes\" must be a list"));
  }
  auto graph = std::make_unique<Graph>();
  std::map<std::string, Node*> defined;
  Reader reader(source, defined);
  try {  // every field is type-checked before it is read; this only keeps a missed case from aborting
    for (size_t i = 0; i < doc["nodes"].size(); ++i) {
      QFX_RETURN_IF_ERROR(ReadNode(reader, *graph, doc["nodes"][i], i, defined));
    }
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", e.what()));
  }
  absl::Status lint = graph->Lint();
  if (!lint.ok()) return absl::InvalidArgumentError(absl::StrCat(source, ": ", lint.message()));
  return graph;
}

}  // namespace fx
}  // namespace qfx
