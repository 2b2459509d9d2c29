// qfx fx: the Graphviz DOT format (see include/qfx/fx/formats.h).
#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "qfx/fx/formats.h"

namespace qfx {
namespace fx {
namespace {

std::string Quote(const std::string& s) {
  return absl::StrCat("\"", absl::StrReplaceAll(s, {{"\\", "\\\\"}, {"\"", "\\\""}}), "\"");
}

// The top-level submodule a node belongs to ("layer1" for layer1.0.conv1), or "" for none. Function
// and method nodes join the cluster of their first input when all their inputs are in it.
std::string Cluster(const Node& n, const std::map<const Node*, std::string>& assigned) {
  if (n.op() == Opcode::kCallModule || n.op() == Opcode::kGetAttr) {
    const std::string& path = n.target().path;
    const size_t dot = path.find('.');
    return dot == std::string::npos ? "" : path.substr(0, dot);
  }
  if (n.op() != Opcode::kCallFunction && n.op() != Opcode::kCallMethod) return "";
  std::string cluster;
  for (const Node* in : n.inputs()) {
    auto it = assigned.find(in);
    const std::string c = it == assigned.end() ? "" : it->second;
    if (c.empty()) continue;
    if (!cluster.empty() && c != cluster) return "";
    cluster = c;
  }
  return cluster;
}

const char* Fill(Opcode op) {
  switch (op) {
    case Opcode::kPlaceholder:
      return "#d9ead3";
    case Opcode::kGetAttr:
      return "#fff2cc";
    case Opcode::kCallFunction:
      return "#cfe2f3";
    case Opcode::kCallMethod:
      return "#d9d2e9";
    case Opcode::kCallModule:
      return "#ffffff";
    case Opcode::kOutput:
      return "#f4cccc";
  }
  return "#ffffff";
}

std::string Label(const Node& n) {
  std::string label = absl::StrCat(n.name(), "\\n", OpcodeName(n.op()), "[", n.target_string(), "]");
  if (n.meta.tensor)
    absl::StrAppend(&label, "\\n", DTypeName(n.meta.tensor->dtype), ShapeToString(n.meta.tensor->shape));
  return label;
}

}  // namespace

std::string FormatDot(const Graph& graph, const std::string& title) {
  std::map<const Node*, std::string> assigned;
  std::vector<std::pair<std::string, std::vector<const Node*>>> clusters;  // in order of first appearance
  for (const Node* n : graph) {
    const std::string c = assigned[n] = Cluster(*n, assigned);
    auto it = std::find_if(clusters.begin(), clusters.end(), [&](const auto& e) { return e.first == c; });
    if (it == clusters.end()) it = clusters.insert(clusters.end(), {c, {}});
    it->second.push_back(n);
  }
  std::string out =
      absl::StrCat("digraph ", Quote(title), " {\n  rankdir=TB;\n  label=", Quote(title),
                   ";\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=10];\n");
  for (const auto& [cluster, nodes] : clusters) {
    const std::string indent = cluster.empty() ? "  " : "    ";
    if (!cluster.empty()) {
      absl::StrAppend(&out, "  subgraph ", Quote("cluster_" + cluster), " {\n    label=", Quote(cluster),
                      ";\n    style=dashed;\n");
    }
    for (const Node* n : nodes) {
      absl::StrAppend(&out, indent, Quote(n->name()), " [label=\"", absl::StrReplaceAll(Label(*n), {{"\"", "\\\""}}),
                      "\", fillcolor=\"", Fill(n->op()), "\"];\n");
    }
    if (!cluster.empty()) absl::StrAppend(&out, "  }\n");
  }
  for (const Node* n : graph) {
    for (const Node* in : n->inputs()) absl::StrAppend(&out, "  ", Quote(in->name()), " -> ", Quote(n->name()), ";\n");
  }
  absl::StrAppend(&out, "}\n");
  return out;
}

}  // namespace fx
}  // namespace qfx
