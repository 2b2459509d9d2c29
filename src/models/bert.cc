// qfx models: Hugging Face transformers' BertModel (4.x), with its parameter names (embeddings.word_embeddings,
// encoder.layer.N.attention.self.query, ..., pooler.dense), so a BERT checkpoint's model.safetensors (e.g.
// all-MiniLM-L6-v2's) loads with strict=true. Traced through: embeddings, LayerNorm, Linear, matmul, softmax
// and GELU as HF's BertSelfAttention computes them. forward takes input_ids (i64 [B, L]) and optionally an
// attention_mask ([B, L], 1 for tokens, 0 for padding) and returns the last hidden state [B, L, hidden]; the
// pooler is built for its parameters (HF's second output) but not run. It reads the sequence length (not the
// batch size), so tracing needs example inputs. Scores are multiplied by 1 / sqrt(head size) where HF divides
// (within an ulp).
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "qfx/models/zoo.h"
#include "src/models/common.h"

namespace qfx {
namespace models {
namespace {

using nn::Module;
using ModulePtr = std::shared_ptr<Module>;

std::shared_ptr<nn::LayerNorm> Norm(const BertOptions& o) {
  return std::make_shared<nn::LayerNorm>(std::vector<int64_t>{o.hidden_size}, o.layer_norm_eps);
}

// HF's _init_weights: Linear and Embedding weights N(0, 0.02), biases 0, LayerNorm weight 1 and bias 0.
void InitLikeHuggingFace(Module& model) {
  for (auto& [name, m] : model.named_modules()) {
    if (auto* fc = dynamic_cast<nn::Linear*>(m)) {
      nn::NormalInit(fc->weight, 0.f, 0.02f);
      if (fc->bias.defined()) fc->bias.Fill(0.f);
    } else if (auto* e = dynamic_cast<nn::Embedding*>(m)) {
      nn::NormalInit(e->weight, 0.f, 0.02f);
      if (e->padding_idx)
        std::fill_n(e->weight.data<float>() + *e->padding_idx * e->embedding_dim, e->embedding_dim, 0.f);
    }
  }
}

class BertEmbeddings : public Module {
 public:
  explicit BertEmbeddings(const BertOptions& o) {
    word_ = register_module("word_embeddings", std::make_shared<nn::Embedding>(o.vocab_size, o.hidden_size, 0));
    position_ = register_module("position_embeddings",
                                std::make_shared<nn::Embedding>(o.max_position_embeddings, o.hidden_size));
    token_type_ =
        register_module("token_type_embeddings", std::make_shared<nn::Embedding>(o.type_vocab_size, o.hidden_size));
    norm_ = register_module("LayerNorm", Norm(o));
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(o.hidden_dropout_prob));
    Tensor ids = register_buffer("position_ids", Tensor::Empty({1, o.max_position_embeddings}, DType::kI64));
    for (int64_t i = 0; i < o.max_position_embeddings; ++i) ids.data<int64_t>()[i] = i;
  }
  std::string type_name() const override { return "BertEmbeddings"; }
  Tensor forward(const Tensor& input_ids) override {
    const int64_t length = input_ids.size(1);
    if (length > position_->num_embeddings) {
      ThrowInvalid("BertEmbeddings: sequence length ", length, " exceeds max_position_embeddings ",
                   position_->num_embeddings);
    }
    // token_type_ids are all 0 (HF's default): row 0 of the table, broadcast; positions 0 .. L-1: the first L rows.
    Tensor x = F::add((*word_)(input_ids), F::narrow(token_type_->weight, 0, 0, 1));
    x = F::add(x, F::narrow(position_->weight, 0, 0, length));
    return (*dropout_)((*norm_)(x));
  }

 private:
  std::shared_ptr<nn::Embedding> word_, position_, token_type_;
  ModulePtr norm_, dropout_;
};

class BertSelfAttention : public Module {
 public:
  explicit BertSelfAttention(const BertOptions& o) : heads_(o.num_attention_heads), hidden_(o.hidden_size) {
    if (o.num_attention_heads <= 0 || o.hidden_size % o.num_attention_heads != 0) {
      ThrowInvalid("Bert: hidden_size ", o.hidden_size, " must be a multiple of num_attention_heads ",
                   o.num_attention_heads);
    }
    query_ = register_module("query", std::make_shared<nn::Linear>(o.hidden_size, o.hidden_size));
    key_ = register_module("key", std::make_shared<nn::Linear>(o.hidden_size, o.hidden_size));
    value_ = register_module("value", std::make_shared<nn::Linear>(o.hidden_size, o.hidden_size));
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(o.attention_probs_dropout_prob));
  }
  std::string type_name() const override { return "BertSelfAttention"; }
  std::vector<std::string> forward_arg_names() const override { return {"hidden_states", "attention_mask"}; }
  Tensor forward_args(const nn::ForwardArgs& args) override {
    const Tensor h = args.tensor("hidden_states");
    const int64_t l = h.size(1), d = hidden_ / heads_;  // the batch size is never read: -1 in the reshapes
    auto heads = [&](const Tensor& t) { return t.Reshape({-1, l, heads_, d}).Permute({0, 2, 1, 3}); };
    const Tensor q = heads((*query_)(h)), k = heads((*key_)(h)), v = heads((*value_)(h));
    Tensor scores =
        F::mul(F::matmul(q, k.Transpose(-1, -2)), static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))));
    if (args.values.size() > 1) scores = F::add(scores, args.tensor("attention_mask"));
    const Tensor probs = (*dropout_)(F::softmax(scores, -1));
    return F::matmul(probs, v).Permute({0, 2, 1, 3}).Reshape({-1, l, hidden_});
  }

 private:
  int64_t heads_, hidden_;
  ModulePtr query_, key_, value_, dropout_;
};

// dense, dropout, LayerNorm(x + residual): HF's BertSelfOutput and BertOutput.
class BertOutput : public Module {
 public:
  BertOutput(const BertOptions& o, int64_t in, std::string type) : type_(std::move(type)) {
    dense_ = register_module("dense", std::make_shared<nn::Linear>(in, o.hidden_size));
    norm_ = register_module("LayerNorm", Norm(o));
    dropout_ = register_module("dropout", std::make_shared<nn::Dropout>(o.hidden_dropout_prob));
  }
  std::string type_name() const override { return type_; }
  std::vector<std::string> forward_arg_names() const override { return {"hidden_states", "input_tensor"}; }
  Tensor forward_args(const nn::ForwardArgs& args) override {
    const Tensor x = (*dropout_)((*dense_)(args.tensor("hidden_states")));
    return (*norm_)(F::add(x, args.tensor("input_tensor")));
  }

 private:
  std::string type_;
  ModulePtr dense_, norm_, dropout_;
};

class BertAttention : public Module {
 public:
  explicit BertAttention(const BertOptions& o) {
    self_ = register_module("self", std::make_shared<BertSelfAttention>(o));
    output_ = register_module("output", std::make_shared<BertOutput>(o, o.hidden_size, "BertSelfOutput"));
  }
  std::string type_name() const override { return "BertAttention"; }
  std::vector<std::string> forward_arg_names() const override { return {"hidden_states", "attention_mask"}; }
  Tensor forward_args(const nn::ForwardArgs& args) override {
    const Tensor h = args.tensor("hidden_states");
    const Tensor a = (*self_)(args);
    return (*output_)(nn::ForwardArgs{{{"hidden_states", a}, {"input_tensor", h}}});
  }

 private:
  ModulePtr self_, output_;
};

class BertIntermediate : public Module {
 public:
  explicit BertIntermediate(const BertOptions& o) {
    dense_ = register_module("dense", std::make_shared<nn::Linear>(o.hidden_size, o.intermediate_size));
    act_ = register_module("intermediate_act_fn", std::make_shared<nn::GELU>());
  }
  std::string type_name() const override { return "BertIntermediate"; }
  Tensor forward(const Tensor& x) override { return (*act_)((*dense_)(x)); }

 private:
  ModulePtr dense_, act_;
};

class BertLayer : public Module {
 public:
  explicit BertLayer(const BertOptions& o) {
    attention_ = register_module("attention", std::make_shared<BertAttention>(o));
    intermediate_ = register_module("intermediate", std::make_shared<BertIntermediate>(o));
    output_ = register_module("output", std::make_shared<BertOutput>(o, o.intermediate_size, "BertOutput"));
  }
  std::string type_name() const override { return "BertLayer"; }
  std::vector<std::string> forward_arg_names() const override { return {"hidden_states", "attention_mask"}; }
  Tensor forward_args(const nn::ForwardArgs& args) override {
    const Tensor a = (*attention_)(args);
    return (*output_)(nn::ForwardArgs{{{"hidden_states", (*intermediate_)(a)}, {"input_tensor", a}}});
  }

 private:
  ModulePtr attention_, intermediate_, output_;
};

class BertPooler : public Module {
 public:
  explicit BertPooler(const BertOptions& o) {
    dense_ = register_module("dense", std::make_shared<nn::Linear>(o.hidden_size, o.hidden_size));
    activation_ = register_module("activation", std::make_shared<nn::Tanh>());
  }
  std::string type_name() const override { return "BertPooler"; }
  Tensor forward(const Tensor& h) override { return (*activation_)((*dense_)(F::select(h, 1, 0))); }

 private:
  ModulePtr dense_, activation_;
};

class BertModel : public Module {
 public:
  explicit BertModel(const BertOptions& o) {
    for (int64_t size : {o.vocab_size, o.hidden_size, o.num_hidden_layers, o.num_attention_heads, o.intermediate_size,
                         o.max_position_embeddings, o.type_vocab_size}) {
      if (size <= 0) ThrowInvalid("Bert: every size in BertOptions must be positive, got ", size);
    }
    embeddings_ = register_module("embeddings", std::make_shared<BertEmbeddings>(o));
    auto encoder = std::make_shared<nn::ModuleList>();
    for (int64_t i = 0; i < o.num_hidden_layers; ++i) {
      layers_.push_back(std::make_shared<BertLayer>(o));
      encoder->push_back(layers_.back());
    }
    auto wrapper = std::make_shared<BertEncoder>();
    wrapper->Add(encoder);
    register_module("encoder", wrapper);
    register_module("pooler", std::make_shared<BertPooler>(o));
    InitLikeHuggingFace(*this);
  }
  std::string type_name() const override { return "BertModel"; }
  std::vector<std::string> forward_arg_names() const override { return {"input_ids", "attention_mask"}; }
  Tensor forward(const Tensor& input_ids) override { return forward_args(nn::ForwardArgs{{{"input_ids", input_ids}}}); }
  Tensor forward_args(const nn::ForwardArgs& args) override {
    const Tensor ids = args.tensor("input_ids");
    if (ids.dim() != 2) ThrowInvalid("BertModel: input_ids ", ids.ToString(), " must be [batch, sequence length]");
    Tensor h = (*embeddings_)(ids);
    nn::ForwardArgs layer_args{{{"hidden_states", h}}};
    bool masked = false;
    for (const auto& [name, value] : args.values) masked = masked || name == "attention_mask";
    if (masked) {  // HF's extended mask: (1 - mask) * float min, as [B, 1, 1, L]
      const Tensor mask = args.tensor("attention_mask");
      const Tensor open = F::add(F::mul(mask, -1.f), 1.f);
      const Tensor ext = F::mul(open, std::numeric_limits<float>::lowest());
      layer_args.values.emplace_back("attention_mask", ext.Reshape({-1, 1, 1, ids.size(1)}));
    }
    for (const auto& layer : layers_) {
      layer_args.values[0].second = (*layer)(layer_args);
    }
    return std::get<Tensor>(layer_args.values[0].second);
  }

 private:
  // HF's BertEncoder: the layers in a ModuleList named "layer".
  class BertEncoder : public Module {
   public:
    void Add(std::shared_ptr<nn::ModuleList> layers) { register_module("layer", std::move(layers)); }
    std::string type_name() const override { return "BertEncoder"; }
  };
  ModulePtr embeddings_;
  std::vector<ModulePtr> layers_;
};

}  // namespace

std::shared_ptr<nn::Module> MakeBert(const BertOptions& options) { return std::make_shared<BertModel>(options); }

std::shared_ptr<nn::Module> MakeBertMiniLm() { return MakeBert(BertOptions{}); }

}  // namespace models
}  // namespace qfx
