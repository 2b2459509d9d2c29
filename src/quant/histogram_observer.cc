// qfx quant: HistogramObserver, a line-by-line port of PyTorch 1.13's (torch/ao/quantization/observer.py),
// including its quirks, so that qparams agree: torch.histc is called with int()-truncated bounds; histograms
// of later batches are merged by upsampling and re-binning; and qparams come from the L2 search over
// quantile-trimmed ranges (_non_linear_param_search). float32 tensor arithmetic is done in float, Python
// float arithmetic in double, in PyTorch's order.
// kHistogramPt2 is PyTorch 2.x's (torchao.quantization.pt2e.observer, what the PT2E quantizers use): histc
// takes the exact float bounds, a constant first batch is not re-initialised, and a wider later batch
// re-bins the old histogram by bucketizing the mid-points of its 16x upsampled bins; the search is the same.
#include <algorithm>
#include <cmath>
#include <limits>

#include "src/quant/observers_internal.h"

namespace qfx {
namespace quant {
namespace internal {
namespace {

// torch.histc(x, bins, min, max) on float input: bounds as doubles; min == max falls back to the data's
// extrema, then to +-1; bins by (x - lo) * bins / (hi - lo) in float; the right edge goes to the last bin.
std::vector<float> Histc(const Tensor& x, int64_t bins, double lo, double hi) {
  if (lo == hi && x.numel() > 0) {
    const auto [a, b] = AminMax(x);
    lo = a;
    hi = b;
  }
  if (lo == hi) {
    lo -= 1;
    hi += 1;
  }
  const float left = static_cast<float>(lo), right = static_cast<float>(hi);
  std::vector<float> hist(bins, 0.f);
  const float* p = x.data<float>();
  for (int64_t i = 0, n = x.numel(); i < n; ++i) {
    const float e = p[i];
    if (!(e >= left && e <= right)) continue;
    int64_t pos = static_cast<int64_t>((e - left) * static_cast<float>(bins) / (right - left));
    if (pos == bins) pos -= 1;
    hist[pos] += 1.f;
  }
  return hist;
}

// Python's int() of a float: truncation toward zero.
double PyInt(float v) { return std::trunc(static_cast<double>(v)); }

class HistogramObserver : public Observer {
 public:
  explicit HistogramObserver(const ObserverSpec& s)
      : Observer(s), histogram_(s.bins, 0.f), dst_nbins_(s.dtype == QDType::kQInt32 ? (int64_t{1} << 32) : 256) {}
  std::string type_name() const override { return "HistogramObserver"; }

  Tensor forward(const Tensor& x) override {
    if (x.dtype() != DType::kF32) ThrowInvalid("HistogramObserver: observes f32 values, got ", x.ToString());
    if (x.numel() == 0) return x;
    if (spec_.kind == ObserverKind::kHistogramPt2) {
      ForwardPt2(x);
      return x;
    }
    const bool uninitialized = min_val_ == INFINITY && max_val_ == -INFINITY;
    if (uninitialized || min_val_ == max_val_) {
      std::tie(min_val_, max_val_) = AminMax(x);
      histogram_ = Histc(x, spec_.bins, PyInt(min_val_), PyInt(max_val_));
      return x;
    }
    const auto [new_min, new_max] = AminMax(x);
    float combined_min = std::min(new_min, min_val_), combined_max = std::max(new_max, max_val_);
    int64_t downsample_rate, start_idx;
    AdjustMinMax(&combined_min, &combined_max, &downsample_rate, &start_idx);
    std::vector<float> combined = Histc(x, spec_.bins, PyInt(combined_min), PyInt(combined_max));
    if (combined_min == min_val_ && combined_max == max_val_) {
      for (int64_t i = 0; i < spec_.bins; ++i) combined[i] += histogram_[i];
    } else {
      CombineHistograms(&combined, downsample_rate, start_idx);
    }
    histogram_ = std::move(combined);
    min_val_ = combined_min;
    max_val_ = combined_max;
    return x;
  }

  bool GetMinMax(std::vector<float>* lo, std::vector<float>* hi) const override {
    *lo = {min_val_};
    *hi = {max_val_};
    return true;
  }

  QParams CalculateQParams() const override {
    if (min_val_ == INFINITY && max_val_ == -INFINITY) return FromMinMax({}, {});
    const auto [lo, hi] = NonLinearParamSearch();
    return FromMinMax({lo}, {hi});
  }

 private:
  void AdjustMinMax(float* combined_min, float* combined_max, int64_t* downsample_rate, int64_t* start_idx) const {
    const float hist_bin_width = (max_val_ - min_val_) / static_cast<float>(spec_.bins * spec_.upsample_rate);
    const float width = static_cast<float>(spec_.bins) * hist_bin_width;
    *downsample_rate = static_cast<int64_t>(std::ceil((*combined_max - *combined_min) / width));
    const float e = static_cast<float>(*downsample_rate) * width - (*combined_max - *combined_min);
    *combined_max = *combined_max + e;
    *start_idx = static_cast<int64_t>(std::nearbyint((min_val_ - *combined_min) / hist_bin_width));
  }

  void CombineHistograms(std::vector<float>* orig, int64_t downsample_rate, int64_t start_idx) const {
    const int64_t bins = spec_.bins, up = spec_.upsample_rate;
    std::vector<float> ranged(bins * downsample_rate, 0.f);
    for (int64_t i = 0; i < bins * up; ++i) {
      const int64_t j = start_idx + i;
      if (j >= 0 && j < static_cast<int64_t>(ranged.size())) ranged[j] = histogram_[i / up];
    }
    std::vector<double> integral(bins);
    double cum = 0;
    for (int64_t i = 0, k = 0; i < static_cast<int64_t>(ranged.size()); ++i) {
      cum += ranged[i];
      if (i % downsample_rate == downsample_rate - 1) integral[k++] = cum;
    }
    for (int64_t i = 0; i < bins; ++i) {
      const double shifted = i == 0 ? 0.0 : static_cast<double>(static_cast<float>(integral[i - 1]));
      (*orig)[i] = (*orig)[i] + static_cast<float>((integral[i] - shifted) / static_cast<double>(up));
    }
  }

  // PyTorch 2.x's forward (for inputs without infinities: qfx refuses non-finite calibration data).
  void ForwardPt2(const Tensor& x) {
    const auto [x_min, x_max] = AminMax(x);
    if (min_val_ == INFINITY || max_val_ == -INFINITY) {
      min_val_ = x_min;
      max_val_ = x_max;
      histogram_ = Histc(x, spec_.bins, x_min, x_max);
      return;
    }
    const float new_min = std::min(min_val_, x_min), new_max = std::max(max_val_, x_max);
    std::vector<float> update = Histc(x, spec_.bins, new_min, new_max);
    if (new_min == min_val_ && new_max == max_val_) {
      for (int64_t i = 0; i < spec_.bins; ++i) update[i] = histogram_[i] + update[i];
    } else if (min_val_ == max_val_) {
      float total = 0.f;
      for (float h : histogram_) total += h;
      const std::vector<float> one = Histc(Tensor::Full({1}, min_val_), spec_.bins, new_min, new_max);
      for (int64_t i = 0; i < spec_.bins; ++i) update[i] = one[i] * total + update[i];
    } else {
      const std::vector<float> moved = Upscale(new_min, new_max);
      for (int64_t i = 0; i < spec_.bins; ++i) update[i] = update[i] + moved[i];
    }
    histogram_ = std::move(update);
    min_val_ = new_min;
    max_val_ = new_max;
  }

  // torch.linspace(start, end, steps) in float32, as ATen's CPU kernel computes it (from both ends).
  static float Linspace(float start, float end, int64_t steps, int64_t i) {
    const float step = (end - start) / static_cast<float>(steps - 1);
    return i < steps / 2 ? start + step * static_cast<float>(i) : end - step * static_cast<float>(steps - i - 1);
  }

  // _upscale_histogram: the old histogram in [new_min, new_max]'s bins.
  std::vector<float> Upscale(float new_min, float new_max) const {
    constexpr int64_t kUp = 16;  // torchao's upsample_rate
    const int64_t bins = spec_.bins, fine = bins * kUp;
    const float bin_size = (max_val_ - min_val_) / static_cast<float>(fine);
    std::vector<float> edges(bins + 1);
    for (int64_t i = 0; i <= bins; ++i) edges[i] = Linspace(new_min, new_max, bins + 1, i);
    std::vector<float> out(bins, 0.f);
    for (int64_t i = 0; i < fine; ++i) {
      const float mid = Linspace(min_val_, max_val_, fine + 1, i) + 0.5f * bin_size;
      // bucketize(right=True) - 1: the last edge <= mid.
      int64_t b = static_cast<int64_t>(std::upper_bound(edges.begin(), edges.end(), mid) - edges.begin()) - 1;
      b = std::min(std::max(b, int64_t{0}), bins - 1);
      out[b] += histogram_[i / kUp] / static_cast<float>(kUp);
    }
    return out;
  }

  // _get_norm: density * (end^3 - begin^3) / 3, in float.
  static float Norm(float begin, float end, float density) {
    return density * ((end * end * end - begin * begin * begin) / 3.f);
  }

  double QuantizationError(int64_t next_start_bin, int64_t next_end_bin) const {
    const double bin_width = (static_cast<double>(max_val_) - static_cast<double>(min_val_)) / spec_.bins;
    const double dst_bin_width = bin_width * (next_end_bin - next_start_bin + 1) / dst_nbins_;
    if (dst_bin_width == 0.0) return 0.0;
    const float bw = static_cast<float>(bin_width), dbw = static_cast<float>(dst_bin_width);
    const float half = static_cast<float>(dst_bin_width / 2), neg_half = static_cast<float>(-dst_bin_width / 2);
    const float top = static_cast<float>(dst_nbins_ - 1);
    double sum = 0.0;
    for (int64_t i = 0; i < spec_.bins; ++i) {
      const float begin = static_cast<float>(i - next_start_bin) * bw;
      const float end = begin + bw;
      const float dst_begin = std::min(std::max(std::floor(begin / dbw), 0.f), top);
      const float dst_begin_center = (dst_begin + 0.5f) * dbw;
      const float dst_end = std::min(std::max(std::floor(end / dbw), 0.f), top);
      const float density = histogram_[i] / bw;
      float norm = 0.f;
      norm += Norm(begin - dst_begin_center, half, density);
      norm += (dst_end - dst_begin - 1.f) * Norm(neg_half, half, density);
      const float dst_end_center = dst_end * dbw + half;
      norm += Norm(neg_half, end - dst_end_center, density);
      sum += norm;
    }
    return sum;  // PyTorch sums in float with a cascade; a double accumulator stays within its rounding
  }

  std::pair<float, float> NonLinearParamSearch() const {
    const int64_t bins = spec_.bins;
    const float bin_width = (max_val_ - min_val_) / static_cast<float>(bins);
    double sum = 0;
    for (float h : histogram_) sum += h;
    const double total = static_cast<float>(sum);  // torch.sum(...).item(): a float32 sum
    std::vector<float> csum(bins);
    double acc = 0;
    for (int64_t i = 0; i < bins; ++i) csum[i] = static_cast<float>(acc += histogram_[i]);
    const double stepsize = 1e-5;
    double alpha = 0.0, beta = 1.0, norm_min = INFINITY;
    int64_t start_bin = 0, end_bin = bins - 1;
    while (alpha < beta) {
      const double next_alpha = alpha + stepsize, next_beta = beta - stepsize;
      int64_t l = start_bin, r = end_bin;
      while (l < end_bin && csum[l] < static_cast<float>(next_alpha * total)) ++l;
      while (r > start_bin && csum[r] > static_cast<float>(next_beta * total)) --r;
      int64_t next_start = start_bin, next_end = end_bin;
      if ((l - start_bin) > (end_bin - r)) {
        next_start = l;
        alpha = next_alpha;
      } else {
        next_end = r;
        beta = next_beta;
      }
      if (next_start == start_bin && next_end == end_bin) continue;
      const double norm = QuantizationError(next_start, next_end);
      if (norm > norm_min) break;
      norm_min = norm;
      start_bin = next_start;
      end_bin = next_end;
    }
    return {min_val_ + bin_width * static_cast<float>(start_bin),
            min_val_ + bin_width * static_cast<float>(end_bin + 1)};
  }

  std::vector<float> histogram_;
  float min_val_ = INFINITY, max_val_ = -INFINITY;
  int64_t dst_nbins_;
};

}  // namespace

std::shared_ptr<Observer> MakeHistogramObserver(const ObserverSpec& spec) {
  return std::make_shared<HistogramObserver>(spec);
}

}  // namespace internal
}  // namespace quant
}  // namespace qfx
