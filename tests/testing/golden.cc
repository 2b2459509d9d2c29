// qfx tests: golden fixture helpers (see golden.h).
#include "tests/testing/golden.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "qfx/models/zoo.h"

namespace qfx {
namespace testing {

io::Safetensors ReadFixture(const std::string& relative) {
  auto st = io::ReadSafetensors("tests/data/" + relative);
  EXPECT_TRUE(st.ok()) << st.status();
  return st.ok() ? *std::move(st) : io::Safetensors{};
}

Tensor Get(const io::Safetensors& st, const std::string& name) {
  for (const auto& [k, t] : st.tensors) {
    if (k == name) return t;
  }
  ADD_FAILURE() << "fixture has no tensor '" << name << "'";
  return Tensor();
}

double WithinStep(const Tensor& y, const Tensor& ref, double step) {
  if (y.shape() != ref.shape()) {
    ADD_FAILURE() << "shape " << y.ToString() << " vs " << ref.ToString();
    return 0;
  }
  int64_t ok = 0;
  for (int64_t i = 0; i < y.numel(); ++i) ok += std::fabs(y.data<float>()[i] - ref.data<float>()[i]) <= step * 1.001;
  return static_cast<double>(ok) / y.numel();
}

double OutputStep(const fx::Graph& graph) {
  double step = 0;
  for (const fx::Node* n : graph) {
    if (n->meta.qparams) step = n->meta.qparams->scale;
  }
  return step;
}

double MaxRelError(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) {
    ADD_FAILURE() << "shape " << a.ToString() << " vs " << b.ToString();
    return INFINITY;
  }
  double err = 0, ref = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    err = std::max(err, std::fabs(static_cast<double>(a.data<float>()[i]) - b.data<float>()[i]));
    ref = std::max(ref, std::fabs(static_cast<double>(b.data<float>()[i])));
  }
  return ref > 0 ? err / ref : err;
}

static uint32_t Fnv1a32(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

Shape ZooTestShape(const std::string& model, int64_t batch) {
  auto info = models::GetModelInfo(model);
  EXPECT_TRUE(info.ok()) << info.status();
  if (!info.ok()) return {};
  Shape shape = info->input_shape;
  shape[0] = batch;
  if (info->fixed_size) return shape;
  const int64_t side = std::max<int64_t>(64, info->min_size);
  if (shape.size() == 4 && shape[2] > side) shape[2] = shape[3] = side;
  return shape;
}

Tensor HashUniform(const std::string& key, Shape shape, double lo, double hi) {
  Tensor t = Tensor::Empty(std::move(shape));
  const uint64_t salt = Fnv1a32(key);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint64_t u = ((static_cast<uint64_t>(i) + 1) * 2654435761ull + salt) % (1ull << 32);
    const double v = static_cast<double>(u) / 4294967296.0;
    t.data<float>()[i] = static_cast<float>(lo + (hi - lo) * v);
  }
  return t;
}

void HashInit(nn::Module& model) {
  nn::NamedTensors dict;
  for (const auto& [key, t] : model.state_dict()) {
    if (t.dtype() != DType::kF32) {
      dict.emplace_back(key, t);
      continue;
    }
    double lo, hi;
    if (absl::EndsWith(key, "running_var")) {
      lo = 0.5;
      hi = 1.5;
    } else if (absl::EndsWith(key, "running_mean") || absl::EndsWith(key, "bias")) {
      lo = -0.1;
      hi = 0.1;
    } else if (t.dim() == 1) {
      lo = 0.5;
      hi = 1.0;
    } else {
      const double b = std::sqrt(6.0 / static_cast<double>(t.numel() / t.size(0)));
      lo = -b;
      hi = b;
    }
    dict.emplace_back(key, HashUniform(key, t.shape(), lo, hi));
  }
  const absl::Status s = model.load_state_dict(dict, /*strict=*/true);
  EXPECT_TRUE(s.ok()) << s;
}

}  // namespace testing
}  // namespace qfx
