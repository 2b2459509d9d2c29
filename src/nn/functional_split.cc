// qfx nn: F::narrow (torch.narrow) and what is built on it, F::select, F::chunk and F::split, and F::expand /
// F::expand_as. Each narrow is a copy of `length` entries of one dimension from `start` (storage is always
// contiguous), any dtype, a quantized tensor keeping its qparams. Traced, chunk and split give one narrow node per
// piece (torch.export's decomposition) instead of torch.fx's tuple and getitem nodes, so every node has one
// tensor value; they read the split dimension's size, so tracing them needs example inputs. expand copies too.
#include <cstring>
#include <vector>

#include "qfx/core/status.h"
#include "qfx/core/trace.h"
#include "qfx/nn/functional.h"
#include "src/nn/functional_internal.h"

namespace qfx {
namespace F {

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  QFX_TRACE_OP(OpId::kNarrow, x, dim, start, length);
  if (!x.defined()) ThrowInvalid("narrow: input is undefined");
  const int64_t d = NormalizeDim(dim, x.dim(), "narrow dim");
  const int64_t size = x.size(d);
  if (start < -size || start > size)
    ThrowInvalid("narrow: start ", start, " is out of range for dim ", d, " of ", x.ToString());
  if (start < 0) start += size;
  if (length < 0 || start + length > size) {
    ThrowInvalid("narrow: length ", length, " from start ", start, " must fit in the ", size, " entries of dim ", d,
                 " of ", x.ToString());
  }
  Shape out = x.shape();
  out[static_cast<size_t>(d)] = length;
  Tensor y = x.is_quantized() ? Tensor::Quantized(out, x.dtype(), x.quant()) : Tensor::Uninitialized(out, x.dtype());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.size(i);
  for (int64_t i = d + 1; i < x.dim(); ++i) inner *= x.size(i);
  const size_t es = DTypeSize(x.dtype());
  const size_t row = static_cast<size_t>(length * inner) * es;
  const char* src = static_cast<const char*>(x.raw_data()) + static_cast<size_t>(start * inner) * es;
  char* dst = static_cast<char*>(y.raw_data());
  for (int64_t o = 0; o < outer && row > 0; ++o) {
    std::memcpy(dst + static_cast<size_t>(o) * row, src + static_cast<size_t>(o * size * inner) * es, row);
  }
  return y;
}

namespace {

std::vector<Tensor> Pieces(const Tensor& x, int64_t dim, const std::vector<int64_t>& lengths) {
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t length : lengths) {
    out.push_back(narrow(x, dim, start, length));
    start += length;
  }
  return out;
}

}  // namespace

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  if (chunks <= 0) ThrowInvalid("chunk: chunks must be positive, got ", chunks);
  const int64_t size = x.size(dim);  // on a traced value: needs a trace specialised on example inputs
  std::vector<int64_t> lengths;
  if (size == 0) {  // PyTorch: `chunks` empty pieces
    if (chunks > 65536) ThrowInvalid("chunk: ", chunks, " empty pieces of ", x.ToString(), " is more than 65536");
    lengths.assign(static_cast<size_t>(chunks), 0);
  }
  const int64_t step = (size + chunks - 1) / chunks;
  for (int64_t s = 0; s < size; s += step) lengths.push_back(std::min(step, size - s));
  return Pieces(x, dim, lengths);
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  if (split_size <= 0) ThrowInvalid("split: split_size must be positive, got ", split_size);
  const int64_t size = x.size(dim);
  std::vector<int64_t> lengths;
  for (int64_t s = 0; s < size; s += split_size) lengths.push_back(std::min(split_size, size - s));
  if (lengths.empty()) lengths.push_back(0);
  return Pieces(x, dim, lengths);
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sections, int64_t dim) {
  int64_t total = 0;
  for (int64_t s : sections) {
    if (s < 0) ThrowInvalid("split: section sizes must not be negative, got ", ShapeToString(sections));
    total += s;
  }
  if (total != x.size(dim)) {
    ThrowInvalid("split: sections ", ShapeToString(sections), " sum to ", total, ", not to the ", x.size(dim),
                 " entries of dim ", dim, " of ", x.ToString());
  }
  return Pieces(x, dim, sections);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  QFX_TRACE_OP(OpId::kSelect, x, dim, index);
  if (!x.defined()) ThrowInvalid("select: input is undefined");
  const int64_t d = NormalizeDim(dim, x.dim(), "select dim");
  const int64_t size = x.size(d);
  if (index < -size || index >= size) {
    ThrowInvalid("select: index ", index, " is out of range for dim ", d, " of ", x.ToString());
  }
  Shape out = x.shape();
  out.erase(out.begin() + d);
  return narrow(x, d, index < 0 ? index + size : index, 1).Reshape(out);
}

Tensor expand(const Tensor& x, const std::vector<int64_t>& sizes) {
  QFX_TRACE_OP(OpId::kMethodExpand, x, sizes);
  if (!x.defined()) ThrowInvalid("expand: input is undefined");
  const int64_t rank = static_cast<int64_t>(sizes.size()), lead = rank - x.dim();
  if (lead < 0) {
    ThrowInvalid("expand: ", ShapeToString(sizes), " has fewer dimensions than ", x.ToString());
  }
  Shape out(sizes.begin(), sizes.end());
  std::vector<int64_t> stride(static_cast<size_t>(rank), 0);  // the input's element stride per output dim
  int64_t inner = 1;
  for (int64_t i = rank - 1; i >= 0; --i) {
    const int64_t in = i >= lead ? x.size(i - lead) : 1;
    if (out[i] == -1 && i < lead) {
      ThrowInvalid("expand: ", ShapeToString(sizes), ": -1 is not allowed in a new leading dimension (", i, ")");
    }
    if (out[i] == -1) out[i] = in;
    if (out[i] < 0 || (in != 1 && out[i] != in)) {
      ThrowInvalid("expand: ", x.ToString(), " cannot expand to ", ShapeToString(sizes), ": dimension ", i, " of size ",
                   in, " can only keep its size (or -1)", in == 1 ? "" : "; only size-1 dimensions grow");
    }
    stride[i] = in == 1 ? 0 : inner;
    inner *= in;
  }
  Tensor y = x.is_quantized() ? Tensor::Quantized(out, x.dtype(), x.quant()) : Tensor::Uninitialized(out, x.dtype());
  const size_t es = DTypeSize(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y.raw_data());
  std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
  for (int64_t o = 0, n = y.numel(); o < n; ++o) {
    int64_t from = 0;
    for (int64_t i = 0; i < rank; ++i) from += idx[i] * stride[i];
    std::memcpy(dst + static_cast<size_t>(o) * es, src + static_cast<size_t>(from) * es, es);
    for (int64_t i = rank - 1; i >= 0 && ++idx[i] == out[i]; --i) idx[i] = 0;
  }
  return y;
}

Tensor expand_as(const Tensor& x, const Tensor& other) {
  QFX_TRACE_OP(OpId::kMethodExpandAs, x, other);
  if (!other.defined()) ThrowInvalid("expand_as: other is undefined");
  return expand(x, other.shape());
}

}  // namespace F
}  // namespace qfx
