// qfx tests: helpers for golden fixtures written by tools/gen_golden.py (PyTorch 1.13).
#pragma once

#include <string>

#include "qfx/core/tensor.h"
#include "qfx/fx/graph.h"
#include "qfx/io/safetensors.h"
#include "qfx/nn/module.h"

namespace qfx {
namespace testing {

// Reads tests/data/<relative> (tests run with the workspace runfiles as the working directory).
io::Safetensors ReadFixture(const std::string& relative);
// The tensor named `name` in a fixture, or a test failure and an undefined tensor.
Tensor Get(const io::Safetensors& st, const std::string& name);

// max |a - b| / max |b|: the relative error measure every golden test uses (1e-4 for fp32).
double MaxRelError(const Tensor& a, const Tensor& b);
// The share of values of y within one quantization step (`step`, 0.1% slack) of ref.
double WithinStep(const Tensor& y, const Tensor& ref, double step);
// The output step of a lowered int8 graph: the scale of the last node with quantized qparams.
double OutputStep(const fx::Graph& graph);

// Deterministic "hash" weights, the mirror of gen_golden.py's hash_init: element i of tensor `key`
// is lo + (hi - lo) * u_i with u_i = ((i+1) * 2654435761 + fnv1a32(key)) mod 2^32 / 2^32.
Tensor HashUniform(const std::string& key, Shape shape, double lo, double hi);
// A zoo model's default input shape with `batch` images and images at most 64 x 64 (or the model's own
// minimum size, inception_v3's 75), the size every zoo test and fixture runs at.
Shape ZooTestShape(const std::string& model, int64_t batch);
void HashInit(nn::Module& model);

}  // namespace testing
}  // namespace qfx
