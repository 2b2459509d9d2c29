// qfx nn: F::channel_shuffle (torch.channel_shuffle, ShuffleNet's): [N, C, ...] seen as [N, g, C/g, ...]
// with its two channel dimensions swapped; any dtype, a quantized tensor keeping its qparams.
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
  Shape split = x.shape();
  split[1] = x.size(1) / groups;
  split.insert(split.begin() + 1, groups);
  return x.Reshape(split).Transpose(1, 2).Reshape(x.shape());
}

}  // namespace F
}  // namespace qfx
