// qfx fx: the table and code formats (see include/qfx/fx/formats.h).
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "qfx/fx/formats.h"
#include "qfx/nn/ops.h"

namespace qfx {
namespace fx {
namespace {

std::string ArgList(const Node& n) {
  std::vector<std::string> parts;
  for (const Argument& a : n.args()) parts.push_back(FormatArgument(a));
  return absl::StrCat("(", absl::StrJoin(parts, ", "), ")");
}

std::string KwargList(const Node& n) {
  std::vector<std::string> parts;
  for (const auto& [k, a] : n.kwargs()) parts.push_back(absl::StrCat(k, ": ", FormatArgument(a)));
  return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
}

// The propagated shape, and the sizes a specialised trace holds the value to.
std::string ShapeOf(const Node& n) {
  std::string out;
  if (n.meta.tensor) out = absl::StrCat(DTypeName(n.meta.tensor->dtype), ShapeToString(n.meta.tensor->shape));
  if (n.meta.specialized) {
    absl::StrAppend(&out, out.empty() ? "" : " ", "specialised ", SpecializedToString(*n.meta.specialized));
  }
  return out;
}

// Code uses plain names: "%x" in FormatArgument becomes "x".
std::string Plain(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '%'), s.end());
  return s;
}

}  // namespace

std::string FormatTable(const Graph& graph, const std::map<const Node*, std::string>* notes) {
  std::vector<std::vector<std::string>> rows = {{"opcode", "name", "target", "args", "kwargs", "shape", "users"}};
  if (notes) rows[0].push_back("quantization");
  for (const Node* n : graph) {
    std::vector<std::string> users;
    for (const Node* u : n->users()) users.push_back(u->name());
    rows.push_back({OpcodeName(n->op()), n->name(), n->target_string(), ArgList(*n), KwargList(*n), ShapeOf(*n),
                    absl::StrJoin(users, ", ")});
    if (notes) {
      auto it = notes->find(n);
      rows.back().push_back(it == notes->end() ? "" : it->second);
    }
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string line;
    for (size_t c = 0; c < rows[r].size(); ++c) {
      absl::StrAppend(&line, rows[r][c], std::string(width[c] - rows[r][c].size() + 2, ' '));
    }
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
    if (r == 0) {
      std::string rule;
      for (size_t c = 0; c < width.size(); ++c) absl::StrAppend(&rule, std::string(width[c], '-'), "  ");
      rule.erase(rule.find_last_not_of(' ') + 1);
      absl::StrAppend(&out, rule, "\n");
    }
  }
  return out;
}

std::string FormatCode(const Graph& graph) {
  std::vector<std::string> inputs;
  for (const Node* n : graph) {
    if (n->op() == Opcode::kPlaceholder) inputs.push_back(n->name());
  }
  std::string out = absl::StrCat("def forward(self, ", absl::StrJoin(inputs, ", "), "):\n");
  for (const Node* n : graph) {
    std::vector<std::string> args;
    for (const Argument& a : n->args()) args.push_back(Plain(FormatArgument(a)));
    for (const auto& [k, a] : n->kwargs()) args.push_back(absl::StrCat(k, "=", Plain(FormatArgument(a))));
    switch (n->op()) {
      case Opcode::kPlaceholder:
        break;
      case Opcode::kGetAttr:
        absl::StrAppend(&out, "    ", n->name(), " = self.", n->target().path, "\n");
        break;
      case Opcode::kCallModule:
        absl::StrAppend(&out, "    ", n->name(), " = self.", n->target().path, "(", absl::StrJoin(args, ", "), ")\n");
        break;
      case Opcode::kCallFunction:
        absl::StrAppend(&out, "    ", n->name(), " = F.", n->target_string(), "(", absl::StrJoin(args, ", "), ")\n");
        break;
      case Opcode::kCallMethod: {
        const std::string self = args.empty() ? "?" : args.front();
        if (!args.empty()) args.erase(args.begin());
        absl::StrAppend(&out, "    ", n->name(), " = ", self, ".", n->target_string(), "(", absl::StrJoin(args, ", "),
                        ")\n");
        break;
      }
      case Opcode::kOutput:
        absl::StrAppend(&out, "    return ", args.empty() ? "None" : args[0], "\n");
        break;
    }
  }
  return out;
}

}  // namespace fx
}  // namespace qfx
