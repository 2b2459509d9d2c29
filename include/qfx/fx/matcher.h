// qfx fx: pattern matching and rewriting, after torch.fx's SubgraphMatcher and replace_pattern. This is
// the engine fusion and quantization patterns run on: MatchChain matches the backends' linear patterns
// (quant/backend.h: conv -> bn -> relu, add -> relu, ...) for Fuse, Prepare and PrepareQat; FindMatches and
// ReplacePattern match and rewrite general subgraph patterns.
//
// MatchChain: `ops` are predicates in execution order; the chain ends at `last` and runs back through
// each node's args[0]; every node but `last` must have no other user (fusing it would lose its value).
//
// A pattern is a Graph (traced from a small pattern module, or built with the Graph API) whose
// placeholders are wildcards for any value and whose output names the value the pattern produces (its
// anchor). Nodes match by use-def structure: same opcode; same op for call_function / call_method;
// same module type for call_module (resolved through the owners; by path when no owners are given);
// equal literal arguments. A match is rejected when a value computed inside it, other than the anchor,
// is also used outside it: replacing the match would lose that value.
#pragma once

#include <functional>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph_module.h"

namespace qfx {
namespace fx {

struct MatchOptions {
  bool match_placeholder = false;  // placeholders match only graph placeholders
  bool remove_overlapping = true;  // keep the earliest of overlapping matches
  bool ignore_literals = false;    // constants in args match any constant
};

struct SubgraphMatch {
  Node* anchor = nullptr;                            // graph node matched to the pattern's output value
  std::vector<Node*> placeholder_nodes;              // graph values bound to the pattern's placeholders, in order
  std::unordered_map<const Node*, Node*> nodes_map;  // pattern node -> graph node
};

// The chain of nodes matching `ops` that ends at `last`, in execution order, or an empty vector.
std::vector<Node*> MatchChain(const std::vector<std::function<bool(const Node&)>>& ops, Node* last);

// Every match of `pattern` in `graph`, in graph order of their anchors. Owners resolve module types
// of call_module nodes and may be null (then call_module targets are compared as paths).
absl::StatusOr<std::vector<SubgraphMatch>> FindMatches(const Graph& pattern, nn::Module* pattern_owner, Graph& graph,
                                                       nn::Module* graph_owner, const MatchOptions& options = {});

// Replaces every match of `pattern` in `module`'s graph with a copy of `replacement` (its placeholders
// bound, in order, to the match's placeholder values; its call_module targets must exist in `module`),
// erases the matched nodes and lints. Returns the matches replaced.
absl::StatusOr<std::vector<SubgraphMatch>> ReplacePattern(GraphModule& module, const Graph& pattern,
                                                          nn::Module* pattern_owner, const Graph& replacement);

}  // namespace fx
}  // namespace qfx
