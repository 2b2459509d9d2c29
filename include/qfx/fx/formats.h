// qfx fx: the graph formats behind `qfx dump`.
//
//   table  one row per node: opcode, name, target, args, kwargs, shape, users (like FX's print_tabular)
//   code   straight-line code, one statement per node (like FX's generated forward)
//   json   the versioned schema below, which GraphFromJson reads back to an identical graph
//   dot    a Graphviz digraph, one cluster per top-level submodule, labels with op and shape
//
// JSON schema, version 1:
//   {"format": "qfx.graph", "version": 1,
//    "nodes": [{"name": "conv1", "op": "call_module", "target": "conv1",
//               "args": [{"node": "x"}], "kwargs": {}, "shape": [1, 64, 112, 112], "dtype": "f32"}, ...]}
//   op: torch.fx's opcode spelling. target: the op name (call_function / call_method, see
//   qfx/nn/ops.h), the dotted module path (call_module), the attribute path (get_attr), the argument
//   name (placeholder), "output". Arguments: {"node": NAME} for a node, [{"node": ...}, ...] for a list of
//   nodes, null for None, JSON booleans, integers, floats (always written with a decimal point or
//   exponent), integer lists ([] is an empty integer list), and strings for an op argument (q_unary's table
//   op), which name a registered function op ("hardswish"). "shape"/"dtype" appear when known.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "qfx/fx/graph.h"

namespace qfx {
namespace fx {

constexpr int kGraphJsonVersion = 1;

// `notes`, when given, adds a last column (for example how each node is quantized, or why not).
std::string FormatTable(const Graph& graph, const std::map<const Node*, std::string>* notes = nullptr);
std::string FormatCode(const Graph& graph);
std::string GraphToJson(const Graph& graph);
// Parses and lints (without an owner); errors name `source`, the node index and name, and the field.
absl::StatusOr<std::unique_ptr<Graph>> GraphFromJson(const std::string& text, const std::string& source = "graph.json");
std::string FormatDot(const Graph& graph, const std::string& title);

}  // namespace fx
}  // namespace qfx
