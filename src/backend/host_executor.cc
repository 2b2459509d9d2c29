// qfx backend: a device plan run on the CPU with the CUDA kernels' per-output functions
// (qfx/kernels/device_ops.h), the oracle the CUDA backend is tested against (see qfx/backend/device_plan.h).
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "qfx/backend/device_plan.h"
#include "qfx/core/parallel.h"

namespace qfx {
namespace backend {
namespace {

namespace dev = kernels::device;

// Calls fn(i, pos) for every value of `over`, in parallel.
template <typename Fn>
void ForEach(const dev::Act& over, Fn fn) {
  ParallelFor(over.Values(), 1 << 12, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) fn(i, dev::PosOf(over, i));
  });
}

// mma.sync m16n8k32 as the hardware computes it, for one warp: the A (16 x 32) and B (32 x 8) matrices
// the lanes' fragments hold (by the layouts of qfx/kernels/device_ops.h), multiplied into each lane's
// accumulators (int32, wrapping).
void EmulatedMma(int32_t (&d)[32][4], const uint32_t (&a)[32][4], const uint32_t (&b)[32][2]) {
  uint8_t ma[16][32];
  int8_t mb[32][8];
  for (int lane = 0; lane < 32; ++lane) {
    for (int reg = 0; reg < 4; ++reg) {
      int row, k;
      dev::MmaA(lane, reg, &row, &k);
      for (int i = 0; i < 4; ++i) ma[row][k + i] = static_cast<uint8_t>(a[lane][reg] >> (8 * i));
    }
    for (int reg = 0; reg < 2; ++reg) {
      int col, k;
      dev::MmaB(lane, reg, &col, &k);
      for (int i = 0; i < 4; ++i) mb[k + i][col] = static_cast<int8_t>(static_cast<uint8_t>(b[lane][reg] >> (8 * i)));
    }
  }
  for (int lane = 0; lane < 32; ++lane) {
    for (int reg = 0; reg < 4; ++reg) {
      int row, col;
      dev::MmaC(lane, reg, &row, &col);
      uint32_t sum = static_cast<uint32_t>(d[lane][reg]);
      for (int k = 0; k < 32; ++k) sum += static_cast<uint32_t>(int32_t{ma[row][k]} * int32_t{mb[k][col]});
      d[lane][reg] = static_cast<int32_t>(sum);
    }
  }
}

// The tensor-core convolution as the GPU's ConvMmaKernel runs it, warp tile by warp tile, with the same
// per-lane loads and stores.
void ConvMmaOnHost(const dev::ConvParams& p, const int8_t* w32, int32_t icp32, const uint8_t* x, uint8_t* y) {
  constexpr int kM = dev::kMmaWarpM / 16, kN = dev::kMmaWarpN / 8;
  const int64_t tiles_m = (dev::GemmRows(p) + dev::kMmaWarpM - 1) / dev::kMmaWarpM;
  const int64_t tiles_n = (p.y.c + dev::kMmaWarpN - 1) / dev::kMmaWarpN;
  ParallelFor(tiles_m * tiles_n, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t tile = lo; tile < hi; ++tile) {
      const int64_t m0 = (tile / tiles_n) * dev::kMmaWarpM;
      const int32_t n0 = static_cast<int32_t>(tile % tiles_n) * dev::kMmaWarpN;
      static thread_local int32_t acc[kM][kN][32][4];
      static thread_local uint32_t a[kM][32][4], b[kN][32][2];
      std::memset(acc, 0, sizeof(acc));
      dev::GemmRow rows[32][kM][2];  // as the kernel: each lane's rows g and g + 8, decoded once
      for (int lane = 0; lane < 32; ++lane) {
        for (int mi = 0; mi < kM; ++mi) {
          for (int half = 0; half < 2; ++half) {
            int row, k;
            dev::MmaA(lane, half, &row, &k);
            rows[lane][mi][half] = dev::GemmRowAt(p, m0 + 16 * mi + row);
          }
        }
      }
      for (int32_t tap = 0; tap < p.kh * p.kw; ++tap) {
        for (int32_t c0 = 0; c0 < icp32; c0 += 32) {
          for (int lane = 0; lane < 32; ++lane) {
            for (int mi = 0; mi < kM; ++mi) {
              for (int reg = 0; reg < 4; ++reg) {
                int row, k;
                dev::MmaA(lane, reg, &row, &k);
                a[mi][lane][reg] = dev::GemmAWord(p, x, rows[lane][mi][reg & 1], tap / p.kw, tap % p.kw, c0 + k);
              }
            }
            for (int ni = 0; ni < kN; ++ni) {
              for (int reg = 0; reg < 2; ++reg) {
                int col, k;
                dev::MmaB(lane, reg, &col, &k);
                b[ni][lane][reg] = dev::GemmBWord(p, w32, icp32, n0 + 8 * ni + col, tap, c0 + k);
              }
            }
          }
          for (int mi = 0; mi < kM; ++mi) {
            for (int ni = 0; ni < kN; ++ni) EmulatedMma(acc[mi][ni], a[mi], b[ni]);
          }
        }
      }
      for (int lane = 0; lane < 32; ++lane) {
        for (int mi = 0; mi < kM; ++mi) {
          for (int ni = 0; ni < kN; ++ni) {
            for (int reg = 0; reg < 4; ++reg) {
              int row, col;
              dev::MmaC(lane, reg, &row, &col);
              dev::GemmStore(p, y, m0 + 16 * mi + row, n0 + 8 * ni + col, acc[mi][ni][lane][reg]);
            }
          }
        }
      }
    }
  });
}

}  // namespace

absl::StatusOr<Tensor> RunPlanOnHost(const DevicePlan& plan, const DeviceWeights& weights, const Tensor& x,
                                     uint8_t poison) {
  if (x.dtype() != DType::kF32 || x.is_quantized() || x.shape() != plan.input_shape) {
    return absl::InvalidArgumentError(absl::StrCat("device plan: input ", x.ToString(), " must be f32",
                                                   ShapeToString(plan.input_shape), " (the shape it was planned for)"));
  }
  std::vector<uint8_t> arena(static_cast<size_t>(plan.arena_bytes), poison);
  auto at = [&](int v) { return arena.data() + plan.values[v].offset; };
  Tensor out = plan.output_float ? Tensor::Uninitialized(plan.output_shape)
                                 : Tensor::Quantized(plan.output_shape, DType::kU8, plan.output_qparams);
  for (const Step& s : plan.steps) {
    uint8_t* y = s.output >= 0 ? at(s.output) : nullptr;
    switch (s.kind) {
      case StepKind::kQuantize: {
        const float* px = x.data<float>();
        ForEach(s.quantize.y, [&](int64_t, const dev::Pos& o) {
          y[s.quantize.y.Offset(o.b, o.y, o.x, o.ch)] = dev::QuantizeOutput(s.quantize, px, o);
        });
        break;
      }
      case StepKind::kDequantize: {
        const uint8_t* px = at(s.inputs[0]);
        const dev::DequantizeParams& p = s.dequantize;
        ForEach(p.x, [&](int64_t, const dev::Pos& o) {
          const uint8_t q = px[p.x.Offset(o.b, o.y, o.x, o.ch)];
          if (p.to_float) {
            out.data<float>()[dev::NchwOffset(p.x, o)] = dev::Deq(q, p.scale, p.zero_point);
          } else {
            out.data<uint8_t>()[dev::NchwOffset(p.x, o)] = q;
          }
        });
        break;
      }
      case StepKind::kConv: {
        const DeviceLayer& l = weights.layers[s.weights];
        dev::ConvParams p = s.conv;
        p.weight = l.weight.data();
        p.bias = l.bias.data();
        p.multiplier = l.multiplier.data();
        if (p.add.enabled) p.residual = at(s.inputs[1]);
        const uint8_t* px = at(s.inputs[0]);
        if (s.mma) {
          ConvMmaOnHost(p, l.weight.data(), l.weight_icp, px, y);
          break;
        }
        ForEach(p.y,
                [&](int64_t, const dev::Pos& o) { y[p.y.Offset(o.b, o.y, o.x, o.ch)] = dev::ConvOutput(p, px, o); });
        break;
      }
      case StepKind::kMaxPool:
      case StepKind::kAvgPool: {
        const uint8_t* px = at(s.inputs[0]);
        const dev::PoolParams& p = s.pool;
        const bool max = s.kind == StepKind::kMaxPool;
        ForEach(p.y, [&](int64_t, const dev::Pos& o) {
          y[p.y.Offset(o.b, o.y, o.x, o.ch)] = max ? dev::MaxPoolOutput(p, px, o) : dev::AvgPoolOutput(p, px, o);
        });
        break;
      }
      case StepKind::kBinary: {
        const uint8_t* pa = at(s.inputs[0]);
        const uint8_t* pb = at(s.inputs[1]);
        const dev::BinaryParams& p = s.binary;
        ForEach(p.y, [&](int64_t, const dev::Pos& o) {
          y[p.y.Offset(o.b, o.y, o.x, o.ch)] = dev::BinaryOutput(p, pa, pb, o);
        });
        break;
      }
      case StepKind::kRequantCopy: {
        const uint8_t* px = at(s.inputs[0]);
        const dev::RequantCopyParams& p = s.copy;
        ForEach(p.x, [&](int64_t, const dev::Pos& o) {
          y[p.y.Offset(o.b, o.y, o.x, p.channel_offset + o.ch)] = dev::RequantCopyOutput(p, px, o);
        });
        break;
      }
      case StepKind::kTable: {
        const uint8_t* px = at(s.inputs[0]);
        const std::array<uint8_t, 256>& table = plan.tables[s.weights];
        const int64_t n = plan.values[s.output].act.Bytes();
        for (int64_t i = 0; i < n; ++i) y[i] = table[px[i]];
        break;
      }
      case StepKind::kFlatten: {
        const uint8_t* px = at(s.inputs[0]);
        const dev::FlattenParams& p = s.flatten;
        ForEach(p.y,
                [&](int64_t, const dev::Pos& o) { y[p.y.Offset(o.b, 0, 0, o.ch)] = dev::FlattenOutput(p, px, o); });
        break;
      }
    }
  }
  return out;
}

}  // namespace backend
}  // namespace qfx
