// qfx core: Tensor and Storage (see include/qfx/core/tensor.h).
#include "qfx/core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/str_join.h"
#include "qfx/core/trace.h"

namespace qfx {

size_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 4;
    case DType::kI8:
      return 1;
    case DType::kU8:
      return 1;
    case DType::kI32:
      return 4;
    case DType::kI64:
      return 8;
  }
  return 0;
}

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return "f32";
    case DType::kI8:
      return "i8";
    case DType::kU8:
      return "u8";
    case DType::kI32:
      return "i32";
    case DType::kI64:
      return "i64";
  }
  return "?";
}

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

int64_t NumElements(absl::Span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

bool CheckedNumElements(absl::Span<const int64_t> shape, int64_t item_bytes, int64_t* numel) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) n = 0;
    if (n != 0 && d > kMaxTensorBytes / item_bytes / n) return false;
    n *= d;
  }
  *numel = n;
  return true;
}

int64_t NormalizeDim(int64_t dim, int64_t rank, const char* what) {
  const int64_t d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank) {
    ThrowInvalid(what, ": dim ", dim, " is out of range for a tensor of rank ", rank, " (use -", rank, "..", rank - 1,
                 ")");
  }
  return d;
}

namespace {

// Freed owned blocks, keyed by rounded size, reused by later allocations of the same size.
class BlockCache {
 public:
  static BlockCache& Get() {
    static BlockCache* cache = new BlockCache();  // never destroyed: storages may outlive statics
    return *cache;
  }
  void* Take(size_t rounded) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(rounded);
    if (it == free_.end()) return nullptr;
    void* p = it->second;
    free_.erase(it);
    cached_ -= rounded;
    return p;
  }
  void Give(void* p, size_t rounded) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (cached_ + rounded <= kMaxCached) {
        free_.emplace(rounded, p);
        cached_ += rounded;
        return;
      }
    }
    std::free(p);
  }

 private:
  static constexpr size_t kMaxCached = size_t{1} << 30;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  size_t cached_ = 0;
};

size_t RoundedSize(size_t nbytes) { return nbytes == 0 ? 64 : (nbytes + 63) / 64 * 64; }

}  // namespace

Storage::Storage(size_t nbytes, bool zero) : nbytes_(nbytes), owned_(true) {
  const size_t rounded = RoundedSize(nbytes);
  data_ = BlockCache::Get().Take(rounded);
  if (data_ == nullptr) data_ = std::aligned_alloc(64, rounded);
  if (data_ == nullptr) throw Error(absl::ResourceExhaustedError(absl::StrCat("cannot allocate ", nbytes, " bytes")));
  if (zero) std::memset(data_, 0, rounded);
}

Storage::Storage(void* data, size_t nbytes, std::shared_ptr<const void> owner)
    : data_(data), nbytes_(nbytes), owned_(false), owner_(std::move(owner)) {}

Storage::~Storage() {
  if (owned_) BlockCache::Get().Give(data_, RoundedSize(nbytes_));
}

static void CheckShape(const Shape& shape, DType dtype) {
  for (int64_t d : shape) {
    if (d < 0) ThrowInvalid("tensor shape ", ShapeToString(shape), " has a negative dimension");
  }
  int64_t numel;
  if (!CheckedNumElements(shape, static_cast<int64_t>(DTypeSize(dtype)), &numel)) {
    throw Error(
        absl::ResourceExhaustedError(absl::StrCat("tensor shape ", ShapeToString(shape), " of ", DTypeName(dtype),
                                                  " exceeds ", kMaxTensorBytes, " bytes (kMaxTensorBytes)")));
  }
}

Tensor Tensor::Allocate(Shape shape, DType dtype, bool zero) {
  CheckShape(shape, dtype);
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::make_shared<Storage>(t.nbytes(), zero);
  return t;
}

Tensor Tensor::Empty(Shape shape, DType dtype) { return Allocate(std::move(shape), dtype, /*zero=*/true); }

Tensor Tensor::Uninitialized(Shape shape, DType dtype) { return Allocate(std::move(shape), dtype, /*zero=*/false); }

Tensor Tensor::Full(Shape shape, float value) {
  Tensor t = Empty(std::move(shape));
  t.Fill(value);
  return t;
}

Tensor Tensor::FromVector(Shape shape, const std::vector<float>& values) {
  Tensor t = Empty(std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel()) {
    ThrowInvalid("Tensor::FromVector: ", values.size(), " values do not fill shape ", ShapeToString(t.shape_), " (",
                 t.numel(), " elements)");
  }
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::Borrow(Shape shape, DType dtype, void* data, std::shared_ptr<const void> owner) {
  CheckShape(shape, dtype);
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.storage_ = std::make_shared<Storage>(data, t.nbytes(), std::move(owner));
  return t;
}

Tensor Tensor::Quantized(Shape shape, DType dtype, QuantInfo q) {
  Tensor t = Allocate(std::move(shape), dtype, /*zero=*/false);
  t.quant_ = std::make_shared<const QuantInfo>(q);
  return t;
}

const QuantInfo& Tensor::quant() const {
  if (!quant_) ThrowInvalid("tensor ", ToString(), " is not quantized");
  return *quant_;
}

Tensor Tensor::WithQuant(QuantInfo q) const {
  Tensor t = *this;
  t.quant_ = std::make_shared<const QuantInfo>(q);
  return t;
}

Tensor Tensor::Proxy(std::shared_ptr<const void> handle) {
  Tensor t;
  t.proxy_ = std::move(handle);
  return t;
}

Tensor Tensor::Proxy(std::shared_ptr<const void> handle, Shape shape, DType dtype) {
  Tensor t = Proxy(std::move(handle));
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  t.proxy_shaped_ = true;
  return t;
}

void Tensor::ReadProxyShape(int64_t what) const {
  TraceHook* hook = ActiveTraceHook();
  if (!proxy_shaped_ && hook != nullptr)
    hook->ConcreteValueRequired("the shape of a traced value", TraceHook::Needed::kShape);
  if (!proxy_shaped_) RequireConcrete("the shape");
  if (hook == nullptr) throw TraceError("TraceError: the shape of a traced value was used outside of its trace");
  hook->ShapeRead(proxy_.get(), what);
}

void Tensor::RequireConcrete(const char* what) const {
  const std::string message = absl::StrCat(what, " of a traced value");
  if (TraceHook* hook = ActiveTraceHook()) hook->ConcreteValueRequired(message, TraceHook::Needed::kTensorValue);
  throw TraceError(absl::StrCat("TraceError: ", message, " was used outside of its trace"));
}

int64_t Tensor::size(int64_t d) const {
  const int64_t i = NormalizeDim(d, dim(), "Tensor::size");
  if (proxy_) ReadProxyShape(i);
  return shape_[static_cast<size_t>(i)];
}

std::string Tensor::ToString() const {
  if (proxy_)
    return proxy_shaped_ ? absl::StrCat("traced value ", DTypeName(dtype_), ShapeToString(shape_)) : "traced value";
  if (!defined()) return "undefined";
  if (quant_)
    return absl::StrCat("q", DTypeName(dtype_), ShapeToString(shape_), "(scale=", quant_->scale,
                        ", zp=", quant_->zero_point, ")");
  return absl::StrCat(DTypeName(dtype_), ShapeToString(shape_));
}

void* Tensor::raw_data() const {
  if (proxy_) RequireConcrete("the data");
  if (!defined()) ThrowInvalid("access to an undefined tensor");
  return static_cast<char*>(storage_->data()) + offset_;
}

void Tensor::CheckDType(DType want) const {
  if (proxy_) RequireConcrete("the data");
  if (!defined()) ThrowInvalid("access to an undefined tensor");
  if (want != dtype_) {
    ThrowInvalid("tensor ", ToString(), " read as ", DTypeName(want), ": dtypes must match");
  }
}

int64_t Tensor::FlatIndex(std::initializer_list<int64_t> index) const {
  if (static_cast<int64_t>(index.size()) != dim()) {
    ThrowInvalid("tensor ", ToString(), " indexed with ", index.size(), " indices; need ", dim());
  }
  int64_t flat = 0, d = 0;
  for (int64_t i : index) {
    if (i < 0 || i >= shape_[d]) {
      ThrowInvalid("index ", i, " out of range for dim ", d, " of tensor ", ToString());
    }
    flat = flat * shape_[d] + i;
    ++d;
  }
  return flat;
}

Tensor Tensor::View(Shape shape) const {
  Tensor traced;
  if (MaybeTrace(OpId::kMethodView, {*this, shape}, &traced)) return traced;
  return Reshape(std::move(shape));
}

Tensor Tensor::Reshape(Shape shape) const {
  Tensor traced;
  if (MaybeTrace(OpId::kMethodReshape, {*this, shape}, &traced)) return traced;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) ThrowInvalid("reshape of ", ToString(), " to ", ShapeToString(shape), ": only one -1 allowed");
      infer = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      ThrowInvalid("reshape of ", ToString(), " to ", ShapeToString(shape), ": negative size");
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || numel() % known != 0) {
      ThrowInvalid("reshape of ", ToString(), " to ", ShapeToString(shape), ": cannot infer -1");
    }
    shape[infer] = numel() / known;
  }
  if (NumElements(shape) != numel()) {
    ThrowInvalid("reshape of ", ToString(), " to ", ShapeToString(shape), ": element counts differ (", numel(), " vs ",
                 NumElements(shape), ")");
  }
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::Transpose(int64_t dim0, int64_t dim1) const {
  Tensor traced;
  if (MaybeTrace(OpId::kMethodTranspose, {*this, dim0, dim1}, &traced)) return traced;
  std::vector<int64_t> order(static_cast<size_t>(dim()));
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  std::swap(order[NormalizeDim(dim0, dim(), "transpose dim0")], order[NormalizeDim(dim1, dim(), "transpose dim1")]);
  return PermutedCopy(order);
}

Tensor Tensor::Permute(std::vector<int64_t> dims) const {
  Tensor traced;
  if (MaybeTrace(OpId::kMethodPermute, {*this, dims}, &traced)) return traced;
  std::vector<bool> seen(static_cast<size_t>(dim()), false);
  bool ok = static_cast<int64_t>(dims.size()) == dim();
  for (int64_t& d : dims) {
    if (!ok) break;
    if (d < -dim() || d >= dim() || seen[d < 0 ? d + dim() : d]) {
      ok = false;
      break;
    }
    d = d < 0 ? d + dim() : d;
    seen[d] = true;
  }
  if (!ok) {
    ThrowInvalid("permute of ", ToString(), " by ", ShapeToString(dims), ": dims must name each of the ", dim(),
                 " dimensions once");
  }
  return PermutedCopy(dims);
}

Tensor Tensor::PermutedCopy(const std::vector<int64_t>& order) const {
  const int64_t n = dim();
  Shape out(static_cast<size_t>(n));
  std::vector<int64_t> in_stride(static_cast<size_t>(n), 1), src_stride(static_cast<size_t>(n));
  for (int64_t d = n - 2; d >= 0; --d) in_stride[d] = in_stride[d + 1] * shape_[d + 1];
  for (int64_t d = 0; d < n; ++d) {
    out[d] = shape_[order[d]];
    src_stride[d] = in_stride[order[d]];
  }
  Tensor y = is_quantized() ? Quantized(out, dtype_, quant()) : Allocate(out, dtype_, false);
  const size_t es = DTypeSize(dtype_);
  const char* src = static_cast<const char*>(raw_data());
  char* dst = static_cast<char*>(y.raw_data());
  std::vector<int64_t> idx(static_cast<size_t>(n), 0);
  int64_t offset = 0;  // elements into the source
  for (int64_t i = 0, total = numel(); i < total; ++i) {
    std::memcpy(dst + i * es, src + offset * es, es);
    for (int64_t d = n - 1; d >= 0; --d) {
      offset += src_stride[d];
      if (++idx[d] < out[d]) break;
      offset -= src_stride[d] * out[d];
      idx[d] = 0;
    }
  }
  return y;
}

Tensor Tensor::Flatten(int64_t start_dim, int64_t end_dim) const {
  Tensor traced;
  if (MaybeTrace(OpId::kMethodFlatten, {*this, start_dim, end_dim}, &traced)) return traced;
  if (dim() == 0) return Reshape({1});
  const int64_t s = NormalizeDim(start_dim, dim(), "flatten start_dim");
  const int64_t e = NormalizeDim(end_dim, dim(), "flatten end_dim");
  if (s > e) ThrowInvalid("flatten of ", ToString(), ": start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape out(shape_.begin(), shape_.begin() + s);
  int64_t merged = 1;
  for (int64_t i = s; i <= e; ++i) merged *= shape_[i];
  out.push_back(merged);
  out.insert(out.end(), shape_.begin() + e + 1, shape_.end());
  return Reshape(std::move(out));
}

Tensor Tensor::Narrow0(int64_t start, int64_t length) const {
  if (proxy_) RequireConcrete("Narrow0");
  if (dim() == 0 || start < 0 || length < 0 || start + length > shape_[0]) {
    ThrowInvalid("Narrow0(", start, ", ", length, ") out of range for tensor ", ToString());
  }
  Tensor t = *this;
  t.shape_[0] = length;
  t.offset_ += static_cast<size_t>(start) * (shape_[0] == 0 ? 0 : nbytes() / shape_[0]);
  return t;
}

Tensor Tensor::Clone() const {
  if (proxy_) RequireConcrete("Clone");
  Tensor t = Empty(shape_, dtype_);
  if (nbytes() > 0) std::memcpy(t.raw_data(), raw_data(), nbytes());
  t.quant_ = quant_;
  return t;
}

void Tensor::CopyFrom(const Tensor& src) const {
  if (src.dtype_ != dtype_ || src.numel() != numel()) {
    ThrowInvalid("copy of ", src.ToString(), " into ", ToString(), ": dtype and element count must match");
  }
  if (nbytes() > 0) std::memmove(raw_data(), src.raw_data(), nbytes());
}

void Tensor::Fill(float value) const {
  float* p = data<float>();
  for (int64_t i = 0, n = numel(); i < n; ++i) p[i] = value;
}

}  // namespace qfx
