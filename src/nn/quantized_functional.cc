// qfx nn: ops on quantized tensors (see include/qfx/nn/functional.h, rules in qfx/kernels/int8.h).
// Elementwise ops use 256-entry tables (exact for every input value); add and mul requantize from the
// exact float products of dequantized values, in float32, with the shared rounding rule.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <string>

#include "qfx/core/parallel.h"
#include "qfx/core/trace.h"
#include "qfx/kernels/int8.h"
#include "qfx/nn/functional.h"
#include "qfx/nn/ops.h"

namespace qfx {
namespace F {
namespace {

#define QFX_TRACE_QOP(op, ...)                                           \
  do {                                                                   \
    Tensor qfx_traced_;                                                  \
    if (MaybeTrace(op, {__VA_ARGS__}, &qfx_traced_)) return qfx_traced_; \
  } while (0)

void CheckQ(const char* op, const Tensor& q) {
  if (!q.is_quantized() || q.dtype() != DType::kU8)
    ThrowInvalid(op, ": input ", q.ToString(), " must be a quint8 tensor");
}

QuantInfo OutQ(const char* op, double scale, int64_t zp) {
  if (!kernels::ScaleInRange(static_cast<float>(scale)) || zp < 0 || zp > 255) {
    ThrowInvalid(op, ": output scale ", scale, " must be finite and within [", kernels::kMinScale, ", ",
                 kernels::kMaxScale, "] and zero point ", zp, " within 0..255");
  }
  return QuantInfo{static_cast<float>(scale), static_cast<int32_t>(zp)};
}

float Deq(uint8_t q, const QuantInfo& qi) {
  return static_cast<float>(static_cast<int32_t>(q) - qi.zero_point) * qi.scale;
}

uint8_t Quant(float v, const QuantInfo& qi) {
  return static_cast<uint8_t>(kernels::QuantizeValue(v, 1.0f / qi.scale, qi.zero_point, 0, 255));
}

// Same-shape quint8 binary op through the SIMD kernel (qfx/kernels/int8.h QAdd / QMul).
template <typename Kernel>
Tensor BinaryQ(const char* op, const Tensor& a, const Tensor& b, QuantInfo out, bool relu, Kernel kernel) {
  CheckQ(op, a);
  CheckQ(op, b);
  Tensor y = Tensor::Quantized(a.shape(), DType::kU8, out);
  kernels::QBinaryArgs args;
  args.n = a.numel();
  args.a_scale = a.quant().scale;
  args.a_zero_point = a.quant().zero_point;
  args.b_scale = b.quant().scale;
  args.b_zero_point = b.quant().zero_point;
  args.y_scale = out.scale;
  args.y_zero_point = out.zero_point;
  args.relu = relu;
  kernel(args, a.data<uint8_t>(), b.data<uint8_t>(), y.data<uint8_t>());
  return y;
}

}  // namespace

Tensor quantize(const Tensor& x, double scale, int64_t zero_point) {
  QFX_TRACE_QOP(OpId::kQuantize, x, scale, zero_point);
  if (x.dtype() != DType::kF32) ThrowInvalid("quantize: input ", x.ToString(), " must be f32");
  const QuantInfo q = OutQ("quantize", scale, zero_point);
  Tensor y = Tensor::Quantized(x.shape(), DType::kU8, q);
  const float* px = x.data<float>();
  uint8_t* py = y.data<uint8_t>();
  ParallelFor(x.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
    kernels::QuantizeU8(px + lo, hi - lo, q.scale, q.zero_point, 255, py + lo);  // SIMD, the QuantizeValue rule
  });
  return y;
}

Tensor dequantize(const Tensor& q) {
  QFX_TRACE_QOP(OpId::kDequantize, q);
  CheckQ("dequantize", q);
  Tensor y = Tensor::Uninitialized(q.shape());
  const QuantInfo qi = q.quant();
  const uint8_t* pq = q.data<uint8_t>();
  float* py = y.data<float>();
  ParallelFor(q.numel(), 1 << 15, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) py[i] = Deq(pq[i], qi);
  });
  return y;
}

Tensor q_add(const Tensor& a, const Tensor& b, double scale, int64_t zero_point, bool relu) {
  QFX_TRACE_QOP(OpId::kQAdd, a, b, scale, zero_point, relu);
  const QuantInfo out = OutQ("q_add", scale, zero_point);
  if (a.shape() != b.shape()) {
    const Tensor s = add(dequantize(a), dequantize(b));
    return quantize(relu ? F::relu(s) : s, scale, zero_point);
  }
  return BinaryQ("q_add", a, b, out, relu, kernels::QAdd);
}

Tensor q_mul(const Tensor& a, const Tensor& b, double scale, int64_t zero_point) {
  QFX_TRACE_QOP(OpId::kQMul, a, b, scale, zero_point);
  const QuantInfo out = OutQ("q_mul", scale, zero_point);
  if (a.shape() != b.shape()) return quantize(mul(dequantize(a), dequantize(b)), scale, zero_point);
  return BinaryQ("q_mul", a, b, out, false, kernels::QMul);
}

Tensor q_matmul(const Tensor& a, const Tensor& b, double scale, int64_t zero_point) {
  QFX_TRACE_QOP(OpId::kQMatmul, a, b, scale, zero_point);
  const QuantInfo out = OutQ("q_matmul", scale, zero_point);
  CheckQ("q_matmul", a);
  CheckQ("q_matmul", b);
  if (a.dim() < 2 || b.dim() < 2 || a.size(-1) != b.size(-2)) {
    ThrowInvalid("q_matmul: ", a.ToString(), " x ", b.ToString(), " must be [..., m, k] x [..., k, n]");
  }
  const bool same_batch = a.dim() == b.dim() && std::equal(a.shape().begin(), a.shape().end() - 2, b.shape().begin());
  if (!same_batch) return quantize(matmul(dequantize(a), dequantize(b)), scale, zero_point);  // broadcast batches
  kernels::QMatmulArgs q;
  q.m = a.size(-2);
  q.k = a.size(-1);
  q.n = b.size(-1);
  q.batch = a.numel() / std::max<int64_t>(q.m * q.k, 1);
  if (q.k > kernels::kQMatmulMaxK) {
    ThrowInvalid("q_matmul: inner size ", q.k, " exceeds ", kernels::kQMatmulMaxK, " (the int32 accumulator's bound)");
  }
  q.a_zero_point = a.quant().zero_point;
  q.b_zero_point = b.quant().zero_point;
  q.y_zero_point = out.zero_point;
  q.multiplier = kernels::RequantMultiplier(a.quant().scale, b.quant().scale, out.scale);
  Shape shape = a.shape();
  shape.back() = q.n;
  Tensor y = Tensor::Quantized(shape, DType::kU8, out);
  if (q.m > 0 && q.n > 0) kernels::QMatmul(q, a.data<uint8_t>(), b.data<uint8_t>(), y.data<uint8_t>());
  if (q.k == 0) std::fill_n(y.data<uint8_t>(), y.numel(), static_cast<uint8_t>(out.zero_point));
  return y;
}

Tensor q_cat(const std::vector<Tensor>& xs, int64_t dim, double scale, int64_t zero_point) {
  QFX_TRACE_QOP(OpId::kQCat, xs, dim, scale, zero_point);
  std::vector<Tensor> floats;
  for (const Tensor& x : xs) floats.push_back(dequantize(x));
  return quantize(cat(floats, dim), scale, zero_point);
}

// The op's fp32 implementation on the 256 values a quint8 input can take.
static Tensor UnaryTable(OpId op, const QuantInfo& in, const std::vector<OpArg>& op_args) {
  if (op == OpId::kNumOps) ThrowInvalid("q_unary: no op given");
  const nn::OpSchema* schema = &nn::GetOpSchema(op);
  // add / mul with a number (x * 0.125 in attention) are elementwise too.
  const bool with_number = schema->role == nn::QuantRole::kBinary && op_args.size() == 1 &&
                           (std::holds_alternative<double>(op_args[0]) || std::holds_alternative<int64_t>(op_args[0]));
  const bool elementwise = schema->role == nn::QuantRole::kTable || schema->role == nn::QuantRole::kFixedQParams ||
                           schema->derivative || with_number || nn::IdentityInEval(op);
  if (!elementwise) ThrowInvalid("q_unary: op ", schema->name, " has no quantized table form");
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = Deq(static_cast<uint8_t>(i), in);
  const Tensor xs = Tensor::FromVector({256}, std::move(x));
  if (nn::IdentityInEval(op)) return xs;  // dropout, stochastic_depth in eval: a requantization
  std::vector<OpArg> args = {xs};
  args.insert(args.end(), op_args.begin(), op_args.end());
  return nn::RunOp(schema->id, args);
}

Tensor q_unary(const Tensor& q, OpId op, double scale, int64_t zero_point, const std::vector<OpArg>& op_args) {
  if (Tensor traced; ActiveTraceHook() != nullptr) {
    std::vector<OpArg> args = {q, op, scale, zero_point};
    args.insert(args.end(), op_args.begin(), op_args.end());
    if (MaybeTrace(OpId::kQUnary, std::move(args), &traced)) return traced;
  }
  CheckQ("q_unary", q);
  const QuantInfo out = OutQ("q_unary", scale, zero_point), in = q.quant();
  const Tensor fx = UnaryTable(op, in, op_args);
  std::array<uint8_t, 256> table{};
  for (int i = 0; i < 256; ++i) table[i] = Quant(fx.data<float>()[i], out);
  Tensor y = Tensor::Quantized(q.shape(), DType::kU8, out);
  const uint8_t* pq = q.data<uint8_t>();
  uint8_t* py = y.data<uint8_t>();
  for (int64_t i = 0, n = q.numel(); i < n; ++i) py[i] = table[pq[i]];
  return y;
}

}  // namespace F
}  // namespace qfx
