// qfx fx: SubgraphMatcher and ReplacePattern (see include/qfx/fx/matcher.h).
#include "qfx/fx/matcher.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace qfx {
namespace fx {
namespace {

class Matcher {
 public:
  Matcher(const Graph& pattern, nn::Module* pattern_owner, nn::Module* graph_owner, const MatchOptions& options)
      : pattern_owner_(pattern_owner), graph_owner_(graph_owner), options_(options) {
    for (Node* n : pattern) {
      if (n->op() == Opcode::kPlaceholder) placeholders_.push_back(n);
    }
  }

  // Tries to match the pattern's anchor at graph node `gn`.
  bool MatchAt(const Node* anchor, Node* gn, SubgraphMatch* out) {
    map_.clear();
    matched_.clear();
    if (!MatchNode(anchor, gn) || !Contained(anchor)) return false;
    out->anchor = gn;
    out->nodes_map = map_;
    out->placeholder_nodes.clear();
    for (const Node* p : placeholders_) {
      auto it = map_.find(p);
      out->placeholder_nodes.push_back(it == map_.end() ? nullptr : it->second);
    }
    return true;
  }

  bool SameKind(const Node* pn, const Node* gn) const {
    if (pn->op() == Opcode::kPlaceholder && !options_.match_placeholder) return true;
    if (pn->op() != gn->op()) return false;
    switch (pn->op()) {
      case Opcode::kPlaceholder:
      case Opcode::kOutput:
      case Opcode::kGetAttr:
        return true;
      case Opcode::kCallFunction:
      case Opcode::kCallMethod:
        return pn->target().op == gn->target().op;
      case Opcode::kCallModule: {
        if (!pattern_owner_ || !graph_owner_) return pn->target().path == gn->target().path;
        const nn::Module* pm = pattern_owner_->submodule(pn->target().path);
        const nn::Module* gm = graph_owner_->submodule(gn->target().path);
        return pm && gm && typeid(*pm) == typeid(*gm) && pm->type_name() == gm->type_name();
      }
    }
    return false;
  }

 private:
  bool MatchNode(const Node* pn, Node* gn) {
    auto done = map_.find(pn);
    if (done != map_.end()) return done->second == gn;
    const bool wildcard = pn->op() == Opcode::kPlaceholder && !options_.match_placeholder;
    if (!wildcard && matched_.count(gn)) return false;  // one graph node per pattern node
    if (!SameKind(pn, gn)) return false;
    const auto saved_map = map_;
    const auto saved_matched = matched_;
    map_[pn] = gn;
    if (!wildcard) matched_.insert(gn);
    if (wildcard) return true;
    bool ok = pn->args().size() == gn->args().size() && pn->kwargs().size() == gn->kwargs().size();
    for (size_t i = 0; ok && i < pn->args().size(); ++i) ok = MatchArg(pn->args()[i], gn->args()[i]);
    for (size_t i = 0; ok && i < pn->kwargs().size(); ++i) {
      ok = pn->kwargs()[i].first == gn->kwargs()[i].first && MatchArg(pn->kwargs()[i].second, gn->kwargs()[i].second);
    }
    if (!ok) {
      map_ = saved_map;
      matched_ = saved_matched;
    }
    return ok;
  }

  bool MatchArg(const Argument& p, const Argument& g) {
    if (const auto* pn = std::get_if<Node*>(&p)) {
      const auto* gn = std::get_if<Node*>(&g);
      return gn && MatchNode(*pn, *gn);
    }
    if (const auto* plist = std::get_if<std::vector<Node*>>(&p)) {
      const auto* glist = std::get_if<std::vector<Node*>>(&g);
      if (!glist || glist->size() != plist->size()) return false;
      for (size_t i = 0; i < plist->size(); ++i) {
        if (!MatchNode((*plist)[i], (*glist)[i])) return false;
      }
      return true;
    }
    if (std::holds_alternative<Node*>(g) || std::holds_alternative<std::vector<Node*>>(g)) return false;
    return options_.ignore_literals || p == g;
  }

  // A value computed inside the match (not the anchor) must not be used outside it.
  bool Contained(const Node* anchor) const {
    for (const auto& [pn, gn] : map_) {
      if (pn == anchor || pn->op() == Opcode::kPlaceholder) continue;
      for (Node* user : gn->users()) {
        if (!matched_.count(user)) return false;
      }
    }
    return true;
  }

  nn::Module* pattern_owner_;
  nn::Module* graph_owner_;
  const MatchOptions& options_;
  std::vector<const Node*> placeholders_;
  std::unordered_map<const Node*, Node*> map_;
  std::set<const Node*> matched_;
};

absl::StatusOr<const Node*> Anchor(const Graph& pattern) {
  const Node* out = pattern.output_node();
  if (out == nullptr || out->args().empty()) return absl::InvalidArgumentError("pattern has no output node");
  const auto* anchor = std::get_if<Node*>(&out->args()[0]);
  if (anchor == nullptr || *anchor == nullptr) {
    return absl::UnimplementedError("pattern must return a single node (multi-output patterns are not supported)");
  }
  if ((*anchor)->op() == Opcode::kPlaceholder) return absl::InvalidArgumentError("pattern returns a bare placeholder");
  return *anchor;
}

}  // namespace

std::vector<Node*> MatchChain(const std::vector<std::function<bool(const Node&)>>& ops, Node* last) {
  std::vector<Node*> chain;
  Node* n = last;
  for (size_t i = ops.size(); i-- > 0;) {
    if (n == nullptr || !ops[i](*n) || (n != last && n->users().size() != 1)) return {};
    chain.push_back(n);
    n = i > 0 && !n->args().empty() && std::holds_alternative<Node*>(n->args()[0]) ? std::get<Node*>(n->args()[0])
                                                                                   : nullptr;
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

absl::StatusOr<std::vector<SubgraphMatch>> FindMatches(const Graph& pattern, nn::Module* pattern_owner, Graph& graph,
                                                       nn::Module* graph_owner, const MatchOptions& options) {
  QFX_RETURN_IF_ERROR(pattern.Lint(pattern_owner));
  QFX_ASSIGN_OR_RETURN(const Node* anchor, Anchor(pattern));
  Matcher matcher(pattern, pattern_owner, graph_owner, options);
  std::vector<SubgraphMatch> matches;
  std::set<const Node*> taken;
  for (Node* gn : graph) {
    SubgraphMatch m;
    if (!matcher.SameKind(anchor, gn) || !matcher.MatchAt(anchor, gn, &m)) continue;
    if (options.remove_overlapping) {
      bool overlaps = false;
      for (const auto& [pn, g] : m.nodes_map) {
        if (pn->op() != Opcode::kPlaceholder && taken.count(g)) overlaps = true;
      }
      if (overlaps) continue;
      for (const auto& [pn, g] : m.nodes_map) {
        if (pn->op() != Opcode::kPlaceholder) taken.insert(g);
      }
    }
    matches.push_back(std::move(m));
  }
  return matches;
}

namespace {

// Copies `replacement` before `at`, binding its placeholders to `inputs`; returns the copied output value.
absl::StatusOr<Node*> InsertCopy(Graph& graph, const Graph& replacement, const std::vector<Node*>& inputs, Node* at) {
  std::unordered_map<const Node*, Node*> copy;
  size_t next_input = 0;
  auto map_arg = [&](const Argument& a) -> Argument {
    if (const auto* n = std::get_if<Node*>(&a)) return copy.at(*n);
    if (const auto* list = std::get_if<std::vector<Node*>>(&a)) {
      std::vector<Node*> out;
      for (Node* n : *list) out.push_back(copy.at(n));
      return out;
    }
    return a;
  };
  auto point = graph.InsertingBefore(at);
  for (Node* rn : replacement) {
    if (rn->op() == Opcode::kPlaceholder) {
      if (next_input >= inputs.size() || inputs[next_input] == nullptr) {
        return absl::InvalidArgumentError("replacement has more placeholders than the pattern binds");
      }
      copy[rn] = inputs[next_input++];
      continue;
    }
    if (rn->op() == Opcode::kOutput) {
      const auto* result = std::get_if<Node*>(&rn->args()[0]);
      if (!result) return absl::UnimplementedError("replacement must return a single node");
      return copy.at(*result);
    }
    std::vector<Argument> args;
    for (const Argument& a : rn->args()) args.push_back(map_arg(a));
    std::vector<std::pair<std::string, Argument>> kwargs;
    for (const auto& [k, a] : rn->kwargs()) kwargs.emplace_back(k, map_arg(a));
    copy[rn] = graph.CreateNode(rn->op(), rn->target(), std::move(args), std::move(kwargs), rn->name());
  }
  return absl::InvalidArgumentError("replacement has no output node");
}

}  // namespace

absl::StatusOr<std::vector<SubgraphMatch>> ReplacePattern(GraphModule& module, const Graph& pattern,
                                                          nn::Module* pattern_owner, const Graph& replacement) {
  QFX_ASSIGN_OR_RETURN(std::vector<SubgraphMatch> matches,
                       FindMatches(pattern, pattern_owner, module.graph(), &module));
  Graph& graph = module.graph();
  // An earlier replacement may have replaced the value a later match binds: follow it.
  std::unordered_map<const Node*, Node*> replaced;
  for (const SubgraphMatch& m : matches) {
    std::vector<Node*> inputs = m.placeholder_nodes;
    for (Node*& in : inputs) {
      for (auto it = replaced.find(in); it != replaced.end(); it = replaced.find(in)) in = it->second;
    }
    QFX_ASSIGN_OR_RETURN(Node * value, InsertCopy(graph, replacement, inputs, m.anchor));
    m.anchor->ReplaceAllUsesWith(value);
    replaced[m.anchor] = value;
    // Erase the matched nodes, users before producers (reverse graph order).
    std::set<const Node*> doomed;
    for (const auto& [pn, gn] : m.nodes_map) {
      if (pn->op() != Opcode::kPlaceholder) doomed.insert(gn);
    }
    const std::vector<Node*> order = graph.nodes();
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      if (doomed.count(*it)) QFX_RETURN_IF_ERROR(graph.EraseNode(*it));
    }
  }
  QFX_RETURN_IF_ERROR(module.Lint());
  return matches;
}

}  // namespace fx
}  // namespace qfx
