// qfx nn: F::channel_shuffle (torch.channel_shuffle, ShuffleNet's): [N, C, ...] seen as [N, g, C/g, ...]
// with its two channel dimensions swapped; any dtype, a quantized tensor keeping its qparams.
#include <cstring>

#include "qfx/core/status.h"
#include "qfx/core/trace.h"
#include "qfx/nn/functional.h"
#include "src/nn/functional_internal.h"

namespace qfx {
namespace F {

Tensor channel_shuffle(const Tensor& x, int64_t groups) {
  QFX_TRACE_OP(OpId::kChannelShuffle, x, groups);
  if (x.dim() < 3) ThrowInvalid("channel_shuffle: input ", x.ToString(), " must be [N, C, *] with at least 3 dims");
  if (groups <= 0 || x.size(1) % groups != 0) {
    ThrowInvalid("channel_shuffle: groups ", groups, " must be positive and divide the ", x.size(1), " channels of ",
                 x.ToString());
  }
  // Output channel c * groups + g is input channel g * (C / groups) + c: one contiguous plane copy each.
  const int64_t channels = x.size(1), per_group = channels / groups;
  int64_t plane = 1;
  for (int64_t d = 2; d < x.dim(); ++d) plane *= x.size(d);
  Tensor y = x.is_quantized() ? Tensor::Quantized(x.shape(), x.dtype(), x.quant())
                              : Tensor::Uninitialized(x.shape(), x.dtype());
  const size_t bytes = static_cast<size_t>(plane) * DTypeSize(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(y.raw_data());
  for (int64_t n = 0; n < x.size(0); ++n) {
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t c = 0; c < per_group; ++c) {
        std::memcpy(dst + static_cast<size_t>(n * channels + c * groups + g) * bytes,
                    src + static_cast<size_t>(n * channels + g * per_group + c) * bytes, bytes);
      }
    }
  }
  return y;
}

}  // namespace F
}  // namespace qfx
