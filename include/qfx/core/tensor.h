// qfx core: Tensor, the value every layer of qfx passes around.
//
// A Tensor is a shared handle to a 64-byte aligned, contiguous, row-major buffer plus a dtype and a
// shape. Copying a Tensor copies the handle (like torch.Tensor); views (Reshape, Flatten, Narrow0)
// share storage; Clone() copies data. Storage may also wrap memory owned elsewhere (a memory-mapped
// file) through a keep-alive handle. Errors in shapes or dtypes throw qfx::Error (see status.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "qfx/core/status.h"

namespace qfx {

enum class DType : uint8_t { kF32, kI8, kU8, kI32, kI64 };

size_t DTypeSize(DType dtype);
const char* DTypeName(DType dtype);  // "f32", "i8", "u8", "i32", "i64"

template <typename T>
constexpr DType DTypeOf();
template <>
constexpr DType DTypeOf<float>() {
  return DType::kF32;
}
template <>
constexpr DType DTypeOf<int8_t>() {
  return DType::kI8;
}
template <>
constexpr DType DTypeOf<uint8_t>() {
  return DType::kU8;
}
template <>
constexpr DType DTypeOf<int32_t>() {
  return DType::kI32;
}
template <>
constexpr DType DTypeOf<int64_t>() {
  return DType::kI64;
}

using Shape = std::vector<int64_t>;

// Per-tensor affine quantization of a u8 / i8 / i32 tensor: real = (q - zero_point) * scale.
struct QuantInfo {
  float scale = 1.f;
  int32_t zero_point = 0;
};
std::string ShapeToString(absl::Span<const int64_t> shape);  // "[1, 3, 224, 224]"
int64_t NumElements(absl::Span<const int64_t> shape);
// The element count of a shape from outside (a file, a config), or false when a dimension is negative or
// the count times `item_bytes` passes kMaxTensorBytes (so neither it nor the byte count can overflow).
constexpr int64_t kMaxTensorBytes = int64_t{1} << 40;  // 1 TiB: more than any machine here, far from 2^63
bool CheckedNumElements(absl::Span<const int64_t> shape, int64_t item_bytes, int64_t* numel);

// A byte buffer. Owned buffers are 64-byte aligned and come from a process-wide cache of freed
// blocks (exact size reuse, bounded), so running a model again allocates no fresh pages; borrowed
// buffers keep their owner alive.
class Storage {
 public:
  Storage(size_t nbytes, bool zero);                                      // owned
  Storage(void* data, size_t nbytes, std::shared_ptr<const void> owner);  // borrowed
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }

 private:
  void* data_;
  size_t nbytes_;
  bool owned_;
  std::shared_ptr<const void> owner_;
};

class Tensor {
 public:
  Tensor() = default;  // undefined tensor (defined() == false)

  static Tensor Empty(Shape shape, DType dtype = DType::kF32);  // zero-filled
  // Contents unspecified: for outputs that the caller overwrites completely.
  static Tensor Uninitialized(Shape shape, DType dtype = DType::kF32);
  static Tensor Zeros(Shape shape, DType dtype = DType::kF32) { return Empty(std::move(shape), dtype); }
  static Tensor Full(Shape shape, float value);
  static Tensor FromVector(Shape shape, const std::vector<float>& values);
  // Wraps external memory (no copy); owner keeps it alive.
  static Tensor Borrow(Shape shape, DType dtype, void* data, std::shared_ptr<const void> owner);

  // A quantized tensor: integer data plus per-tensor qparams (views keep them).
  static Tensor Quantized(Shape shape, DType dtype, QuantInfo q);
  bool is_quantized() const { return quant_ != nullptr; }
  const QuantInfo& quant() const;       // throws when not quantized
  Tensor WithQuant(QuantInfo q) const;  // same storage, these qparams

  // A proxy stands for a value during symbolic tracing (see trace.h): `handle` belongs to the tracer. A
  // shaped proxy (a trace specialised on example inputs) also knows the value's shape and dtype: reading
  // its shape is allowed and tells the tracer what was read (TraceHook::ShapeRead).
  static Tensor Proxy(std::shared_ptr<const void> handle);
  static Tensor Proxy(std::shared_ptr<const void> handle, Shape shape, DType dtype);
  bool is_proxy() const { return proxy_ != nullptr; }
  const void* proxy_handle() const { return proxy_.get(); }

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  // Shape accessors need a concrete tensor or a shaped proxy: on another proxy they throw TraceError.
  const Shape& shape() const {
    if (proxy_) ReadProxyShape(kAllDims);
    return shape_;
  }
  int64_t dim() const {
    if (proxy_) ReadProxyShape(kRankOnly);
    return static_cast<int64_t>(shape_.size());
  }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return NumElements(shape()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * DTypeSize(dtype_); }
  std::string ToString() const;  // "f32[1, 3, 224, 224]"

  void* raw_data() const;
  template <typename T>
  T* data() const {
    CheckDType(DTypeOf<T>());
    return static_cast<T*>(raw_data());
  }

  // Element access by full index, bounds-checked (for tests and small code, not hot loops).
  template <typename T = float>
  T& at(std::initializer_list<int64_t> index) const {
    return data<T>()[FlatIndex(index)];
  }

  // Views sharing storage. Reshape and View (the same here: storage is always contiguous) accept one
  // -1. Reshape, View and Flatten are traced as call_method nodes.
  Tensor Reshape(Shape shape) const;
  Tensor View(Shape shape) const;
  Tensor Flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor Narrow0(int64_t start, int64_t length) const;  // rows [start, start+length) of dim 0
  // Copies (storage is always contiguous) with dimensions dim0 and dim1 swapped, or in the order `dims`
  // (PyTorch's transpose and permute; negative dims count from the end). Any dtype; a quantized tensor
  // keeps its qparams. Traced as call_method nodes.
  Tensor Transpose(int64_t dim0, int64_t dim1) const;
  Tensor Permute(std::vector<int64_t> dims) const;

  Tensor Clone() const;
  // Copies src's elements into this tensor's storage; dtypes and element counts must match.
  void CopyFrom(const Tensor& src) const;
  void Fill(float value) const;
  bool SharesStorage(const Tensor& other) const { return storage_ == other.storage_; }

 private:
  static Tensor Allocate(Shape shape, DType dtype, bool zero);
  [[noreturn]] void RequireConcrete(const char* what) const;
  static constexpr int64_t kAllDims = -1, kRankOnly = -2;
  void ReadProxyShape(int64_t what) const;  // what: a dimension, kAllDims or kRankOnly
  void CheckDType(DType want) const;
  int64_t FlatIndex(std::initializer_list<int64_t> index) const;
  Tensor PermutedCopy(const std::vector<int64_t>& order) const;  // output dim i is input dim order[i]

  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;  // bytes
  Shape shape_;
  DType dtype_ = DType::kF32;
  std::shared_ptr<const void> proxy_;
  bool proxy_shaped_ = false;  // shape_ and dtype_ hold a shaped proxy's shape and dtype
  std::shared_ptr<const QuantInfo> quant_;
};

// Normalises a possibly negative dimension index; throws naming `what` when out of range.
int64_t NormalizeDim(int64_t dim, int64_t rank, const char* what);

}  // namespace qfx
