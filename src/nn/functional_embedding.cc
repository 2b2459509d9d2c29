// qfx nn: F::embedding, rows of a weight table picked by integer indices (PyTorch's F.embedding without
// max_norm); see qfx/nn/functional.h.
#include <algorithm>
#include <vector>

#include "qfx/core/status.h"
#include "qfx/core/trace.h"
#include "qfx/nn/functional.h"
#include "src/nn/functional_internal.h"

namespace qfx {
namespace F {

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx) {
  QFX_TRACE_OP(OpId::kEmbedding, indices, weight, padding_idx ? OpArg(*padding_idx) : OpArg());
  if (indices.dtype() != DType::kI64 && indices.dtype() != DType::kI32) {
    ThrowInvalid("embedding: indices ", indices.ToString(), " must be i64 or i32");
  }
  if (weight.dtype() != DType::kF32 || weight.dim() != 2) {
    ThrowInvalid("embedding: weight ", weight.ToString(), " must be f32 [num_embeddings, embedding_dim]");
  }
  const int64_t rows = weight.size(0), dim = weight.size(1), n = indices.numel();
  Shape ys = indices.shape();
  ys.push_back(dim);
  Tensor y = Tensor::Uninitialized(ys);
  const float* pw = weight.data<float>();
  float* py = y.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = indices.dtype() == DType::kI64 ? indices.data<int64_t>()[i] : indices.data<int32_t>()[i];
    if (r < 0 || r >= rows) {
      ThrowInvalid("embedding: index ", r, " (element ", i, " of ", indices.ToString(), ") is out of range for ", rows,
                   " embeddings");
    }
    std::copy(pw + r * dim, pw + (r + 1) * dim, py + i * dim);
  }
  return y;
}

}  // namespace F
}  // namespace qfx
