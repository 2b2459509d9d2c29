// qfx fx: GraphModule (a module whose forward is a graph) and the Interpreter that runs graphs.
//
// A GraphModule shares the module tree it was traced from (submodules, parameters and buffers by the
// same paths), owns its Graph, and runs it with an Interpreter. The Interpreter executes node by node,
// frees each value after its last use, and wraps any error with the node that raised it:
//   "while executing %conv1 : call_module[target=conv1]: conv2d: input f32[1, 4, 8, 8] has 4 channels ..."
// Its per-opcode steps are virtual, so passes can observe or replace execution (shape propagation,
// calibration, later quantization).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "qfx/fx/graph.h"
#include "qfx/nn/module.h"

namespace qfx {
namespace fx {

class GraphModule : public nn::Module {
 public:
  // Adopts root's children, parameters and buffers (shared) and takes the graph.
  GraphModule(std::shared_ptr<nn::Module> root, std::unique_ptr<Graph> graph, std::string class_name = "");
  std::string type_name() const override { return class_name_; }
  Tensor forward(const Tensor& x) override;
  Tensor forward_args(const nn::ForwardArgs& args) override;
  std::vector<std::string> forward_arg_names() const override;

  Graph& graph() { return *graph_; }
  const Graph& graph() const { return *graph_; }
  nn::Module& root() { return *root_; }
  std::shared_ptr<nn::Module> shared_root() const { return root_; }
  // Graph::Lint with this module as the owner of every target.
  absl::Status Lint() { return graph_->Lint(this); }
  // Puts `module` at `path` in this GraphModule's tree only: the parents along the path are replaced by
  // copies owned here (sharing their other children and parameters), so the traced root and other
  // GraphModules built from it keep their modules, as torch.fx's GraphModule keeps its own hierarchy.
  // A null `module` removes the submodule (again only from this GraphModule's tree).
  absl::Status ReplaceSubmodule(const std::string& path, std::shared_ptr<nn::Module> module);
  // Removes submodules that no call_module or get_attr node needs, as torch.fx's
  // delete_all_unused_submodules (so train()/eval() and state_dict see only what the graph uses).
  absl::Status DeleteUnusedSubmodules();

 private:
  std::shared_ptr<nn::Module> root_;
  std::unique_ptr<Graph> graph_;
  std::string class_name_;
  std::vector<const nn::Module*> owned_parents_;
};

class Interpreter {
 public:
  explicit Interpreter(GraphModule& module) : module_(module) {}
  virtual ~Interpreter() = default;

  absl::StatusOr<Tensor> Run(const nn::ForwardArgs& inputs);
  absl::StatusOr<Tensor> Run(const Tensor& x);

 protected:
  // One step per opcode. `args` are the node's args with every node replaced by its value.
  virtual OpArg Placeholder(const Node& n, const nn::ForwardArgs& inputs);
  virtual Tensor GetAttr(const Node& n);
  virtual Tensor CallFunction(const Node& n, const std::vector<OpArg>& args);
  virtual Tensor CallMethod(const Node& n, const std::vector<OpArg>& args);
  virtual Tensor CallModule(const Node& n, const std::vector<OpArg>& args);
  // Called after each node with the value it produced (the output node included).
  virtual void OnValue(Node& /*n*/, const OpArg& /*value*/) {}

  GraphModule& module_;

 private:
  OpArg Execute(const Node& n, const nn::ForwardArgs& inputs, const std::unordered_map<const Node*, OpArg>& env);
};

// Runs `module` in eval mode on zero inputs of the given shapes and records every node's output shape
// and dtype in node.meta.tensor (like torch.fx's ShapeProp). `shapes` follows forward_arg_names().
absl::Status PropagateShapes(GraphModule& module, const std::vector<Shape>& shapes);

}  // namespace fx
}  // namespace qfx
