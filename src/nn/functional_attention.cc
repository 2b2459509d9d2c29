// qfx nn: the transformer ops layer_norm, matmul, bmm and multi_head_attention in fp32 (see
// qfx/nn/functional.h), through the fp32 GEMM of qfx/kernels for every batch of a matmul.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "qfx/core/status.h"
#include "qfx/core/trace.h"
#include "qfx/kernels/f32.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/geometry.h"
#include "src/nn/functional_internal.h"

namespace qfx {
namespace F {
namespace {

// The broadcast batch shape of a [..., n, k] and b [..., k, m], after checking ranks and k.
Shape MatmulBatch(const char* op, const Tensor& a, const Tensor& b) {
  CheckF32(op, a, "input");
  CheckF32(op, b, "other");
  if (a.dim() < 2 || b.dim() < 2) {
    ThrowInvalid(op, ": operands ", a.ToString(), " and ", b.ToString(),
                 " must have rank 2 or more (unsqueeze a vector to a matrix)");
  }
  if (a.size(-1) != b.size(-2)) {
    ThrowInvalid(op, ": ", a.ToString(), " x ", b.ToString(), ": the input's last size ", a.size(-1),
                 " must equal the other's second-to-last ", b.size(-2));
  }
  const Shape ab(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  return nn::BroadcastShape(op, ab, bb);
}

}  // namespace

Tensor layer_norm(const Tensor& x, const std::vector<int64_t>& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  QFX_TRACE_OP(OpId::kLayerNorm, x, normalized_shape, Optional(weight), Optional(bias), eps);
  CheckF32("layer_norm", x, "input");
  const int64_t nd = static_cast<int64_t>(normalized_shape.size());
  bool ok = nd >= 1 && nd <= x.dim();
  for (int64_t i = 0; ok && i < nd; ++i) ok = x.size(x.dim() - nd + i) == normalized_shape[i];
  if (!ok) {
    ThrowInvalid("layer_norm: input ", x.ToString(), " must end in normalized_shape ", ShapeToString(normalized_shape));
  }
  for (const auto& [t, what] : {std::pair<const Tensor&, const char*>{weight, "weight"}, {bias, "bias"}}) {
    if (!t.defined()) continue;
    CheckF32("layer_norm", t, what);
    if (t.shape() != normalized_shape) {
      ThrowInvalid("layer_norm: ", what, " ", t.ToString(), " must have normalized_shape ",
                   ShapeToString(normalized_shape));
    }
  }
  if (!(eps >= 0)) ThrowInvalid("layer_norm: eps ", eps, " must be non-negative");
  const int64_t len = NumElements(normalized_shape), rows = x.numel() / std::max<int64_t>(len, 1);
  Tensor y = Tensor::Uninitialized(x.shape());
  const float *px = x.data<float>(), *pw = weight.defined() ? weight.data<float>() : nullptr,
              *pb = bias.defined() ? bias.data<float>() : nullptr;
  float* py = y.data<float>();
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = px + r * len;
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < len; ++i) sum += row[i];
    const double mean = sum / static_cast<double>(len);
    for (int64_t i = 0; i < len; ++i) sq += (row[i] - mean) * (row[i] - mean);
    const float m = static_cast<float>(mean),
                rstd = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(len) + eps));
    for (int64_t i = 0; i < len; ++i) {
      float v = (row[i] - m) * rstd;
      if (pw != nullptr) v *= pw[i];
      if (pb != nullptr) v += pb[i];
      py[r * len + i] = v;
    }
  }
  return y;
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  QFX_TRACE_OP(OpId::kMatmul, a, b);
  const Shape batch = MatmulBatch("matmul", a, b);
  const int64_t n = a.size(-2), k = a.size(-1), m = b.size(-1);
  Shape ys = batch;
  ys.push_back(n);
  ys.push_back(m);
  Tensor y = Tensor::Uninitialized(ys);
  // Batch i of each operand: its offset through the broadcast (a matrix's stride along each batch dim).
  const Shape ab(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  const std::vector<int64_t> sa = nn::BroadcastStrides(ab, batch), sb = nn::BroadcastStrides(bb, batch);
  const float *pa = a.data<float>(), *pb = b.data<float>();
  float* py = y.data<float>();
  nn::ForEachBroadcast(batch, sa, sb, [&](int64_t i, int64_t ia, int64_t ib) {
    if (n == 0 || m == 0) return;
    kernels::GemmArgs g;
    g.m = n;
    g.n = m;
    g.k = k;
    g.a = pa + ia * n * k;
    g.lda = k;
    g.b = pb + ib * k * m;
    g.b_row_stride = m;
    g.b_col_stride = 1;
    g.c = py + i * n * m;
    g.ldc = m;
    if (k == 0) {
      std::fill(g.c, g.c + n * m, 0.f);
    } else {
      kernels::GemmF32(g);
    }
  });
  return y;
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  QFX_TRACE_OP(OpId::kBmm, a, b);
  CheckF32("bmm", a, "input");
  CheckF32("bmm", b, "mat2");
  if (a.dim() != 3 || b.dim() != 3 || a.size(0) != b.size(0)) {
    ThrowInvalid("bmm: ", a.ToString(), " x ", b.ToString(), ": both must be 3-d [B, n, k] and [B, k, m] with one B");
  }
  return matmul(a, b);
}

namespace {

void CheckParameter(const Tensor& t, const char* what, const Shape& want, bool optional) {
  if (optional && !t.defined()) return;
  CheckF32("multi_head_attention", t, what);
  if (t.shape() != want) {
    ThrowInvalid("multi_head_attention: ", what, " ", t.ToString(), " must have shape ", ShapeToString(want));
  }
}

// [B, L, E] as [B * H, L, D] for the heads, and back.
Tensor SplitHeads(const Tensor& t, int64_t b, int64_t l, int64_t h, int64_t d) {
  return t.Reshape({b, l, h, d}).Permute({0, 2, 1, 3}).Reshape({b * h, l, d});
}

}  // namespace

SelfAttentionParts SelfAttention(const Tensor& x, const Tensor& in_w, const Tensor& in_b, const Tensor& out_w,
                                 const Tensor& out_b, int64_t num_heads, bool batch_first) {
  CheckF32("multi_head_attention", x, "input");
  if (x.dim() != 3) {
    ThrowInvalid("multi_head_attention: input ", x.ToString(), " must be 3-d, ",
                 batch_first ? "[B, L, E]" : "[L, B, E]", " (unsqueeze an unbatched input)");
  }
  SelfAttentionParts s;
  s.x = batch_first ? x : x.Transpose(0, 1);
  s.batch = s.x.size(0);
  s.length = s.x.size(1);
  s.embed = s.x.size(2);
  s.heads = num_heads;
  const int64_t e = s.embed;
  if (e <= 0 || num_heads <= 0 || e % num_heads != 0) {
    ThrowInvalid("multi_head_attention: num_heads ", num_heads, " must be positive and divide the embedding size ", e);
  }
  CheckParameter(in_w, "in_proj_weight", {3 * e, e}, false);
  CheckParameter(in_b, "in_proj_bias", {3 * e}, true);
  CheckParameter(out_w, "out_proj_weight", {e, e}, false);
  CheckParameter(out_b, "out_proj_bias", {e}, true);
  const int64_t b = s.batch, l = s.length, d = e / num_heads;
  s.qkv = linear(s.x, in_w, in_b);
  s.q = SplitHeads(narrow(s.qkv, 2, 0, e), b, l, num_heads, d);
  s.k = SplitHeads(narrow(s.qkv, 2, e, e), b, l, num_heads, d);
  s.v = SplitHeads(narrow(s.qkv, 2, 2 * e, e), b, l, num_heads, d);
  // q / sqrt(D), as PyTorch divides (not a multiply by the reciprocal).
  const float root = static_cast<float>(std::sqrt(static_cast<double>(d)));
  float* pq = s.q.data<float>();
  for (int64_t i = 0, n = s.q.numel(); i < n; ++i) pq[i] /= root;
  s.p = softmax(bmm(s.q, s.k.Transpose(1, 2)), -1);
  s.heads_out = bmm(s.p, s.v);
  s.o = s.heads_out.Reshape({b, num_heads, l, d}).Permute({0, 2, 1, 3}).Reshape({b, l, e});
  s.y = linear(s.o, out_w, out_b);
  return s;
}

Tensor multi_head_attention(const Tensor& x, const Tensor& in_w, const Tensor& in_b, const Tensor& out_w,
                            const Tensor& out_b, int64_t num_heads, bool batch_first) {
  QFX_TRACE_OP(OpId::kMultiheadAttention, x, in_w, Optional(in_b), out_w, Optional(out_b), num_heads, batch_first);
  const SelfAttentionParts s = SelfAttention(x, in_w, in_b, out_w, out_b, num_heads, batch_first);
  return batch_first ? s.y : s.y.Transpose(0, 1);
}

}  // namespace F
}  // namespace qfx
