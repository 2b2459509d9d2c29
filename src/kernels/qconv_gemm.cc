// qfx kernels: the im2col + GEMM convolution driver (the kGemm* and kWindowed* paths; see path.cc for when
// each runs). Per image and group it builds the GEMM's B operand, then runs the path's GEMM:
//   kWindowedAmx / kWindowedVnni  WindowPanels writes im2col by 4-tap windows straight into 32-column panels
//                                 (against the windowed weights); AMX or VNNI GEMM.
//   kGemmAmx                      Im2ColPanels writes im2col straight into the AMX panel layout.
//   kGemmVnni / kGemmMaddubs      plain im2col (1x1 stride-1 unpadded layers read the input planes) and the
//                                 register-tile GEMM, which packs its own panels.
//   kGemmPortable                 plain im2col, the portable loop, then a requantization pass.
// Padded taps take the input zero point, so they contribute nothing after the correction
// bias - x_zp * sum(w). Every path but kGemmPortable requantizes each tile as it leaves the GEMM.
#include <algorithm>
#include <cstring>
#include <vector>

#include "qfx/core/parallel.h"
#include "src/kernels/im2col.h"
#include "src/kernels/packed.h"
#include "src/kernels/scratch.h"
#include "src/kernels/x86/u8_shuffle_sse2.h"

namespace qfx {
namespace kernels {
namespace {

// The im2col matrix of one group built straight in the AMX GEMM's panel layout (U8S8GemmArgs::packed_b):
// panels of 32 columns, each [kp/4][32 columns][4 k] bytes; k rows past kdim and columns past n are zero.
// `direct`: 1x1 stride-1 unpadded, whose im2col rows are the input planes themselves.
void Im2ColPanels(const Conv2dGeometry& g, const uint8_t* x, int64_t kdim, int64_t kp, bool direct, uint8_t pad,
                  uint8_t* panels) {
  const int64_t n = g.out_h() * g.out_w(), npanels = (n + 31) / 32, groups = kp / 4;
  // Item i is k-group q = i / 2 for even i and groups - 1 - i / 2 for odd i, so that every thread's range
  // mixes real rows with the cheap zero rows past kdim (contiguous ranges left one thread most of the zeros).
  ParallelFor(groups, 4, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<uint8_t> rows;
    GrowScratch(rows, static_cast<size_t>(4 * npanels * 32));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t q = i % 2 == 0 ? i / 2 : groups - 1 - i / 2;
      const uint8_t* r[4];
      for (int64_t j = 0; j < 4; ++j) {
        const int64_t k = q * 4 + j;
        uint8_t* tmp = rows.data() + j * npanels * 32;
        if (k < kdim && direct) {
          r[j] = x + k * n;
          continue;
        }
        if (k < kdim) {
          Im2ColRow<uint8_t>(g, x, k, pad, tmp);
        } else {
          std::fill(tmp, tmp + n, uint8_t{0});
        }
        r[j] = tmp;
      }
      for (int64_t p = 0; p < npanels; ++p) {  // panel p's row q: its 32 columns of the 4 rows, interleaved
        const int64_t c0 = p * 32, cols = std::min<int64_t>(32, n - c0);
        const uint8_t* shifted[4] = {r[0] + c0, r[1] + c0, r[2] + c0, r[3] + c0};
        uint8_t* dst = panels + p * kp * 32 + q * 128;
        Interleave4(shifted, cols, dst);
        std::memset(dst + cols * 4, 0, static_cast<size_t>((32 - cols) * 4));
      }
    }
  });
}

// How an im2col + GEMM convolution runs, from its path, decided once per call.
struct GemmPlan {
  int64_t ohw, cin_g, cout_g, kdim;
  bool direct;         // 1x1 stride 1 unpadded: the input planes are the im2col matrix
  bool panels;         // AMX: im2col straight into the GEMM's panel layout
  bool fused;          // the GEMM requantizes each finished tile itself
  bool windowed;       // im2col by 4-tap windows (WindowPanels) against the windowed weights
  int64_t gemm_k, kp;  // the GEMM's k (grows to KW rounded up to 4 when windowed) and its panel depth
};

GemmPlan PlanGemm(const Conv2dGeometry& g, QConvPath path) {
  GemmPlan p;
  p.ohw = g.out_h() * g.out_w();
  p.cin_g = g.in_channels / g.groups;
  p.cout_g = g.out_channels / g.groups;
  p.kdim = p.cin_g * g.kernel_h * g.kernel_w;
  p.direct = g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  p.windowed = IsWindowedPath(path);
  p.panels = GemmIsaOf(path) == QLinearPath::kAmx;
  p.fused = GemmIsaOf(path) != QLinearPath::kPortable;
  p.gemm_k = p.windowed ? WindowedK(p.cin_g, g.kernel_h, g.kernel_w) : p.kdim;
  p.kp = AmxPaddedK(p.gemm_k);
  return p;
}

// The GEMM's B operand for one image and group (xg): built into col, or xg itself when direct.
const uint8_t* Columns(const Conv2dGeometry& g, const GemmPlan& p, uint8_t pad, const uint8_t* xg, uint8_t* col) {
  if (p.windowed) {
    WindowPanels(g, xg, p.kp, pad, col);
  } else if (p.panels) {
    Im2ColPanels(g, xg, p.kdim, p.kp, p.direct, pad, col);
  } else if (p.direct) {
    return xg;
  } else {
    Im2Col(g, xg, p.cin_g, pad, col);
  }
  return col;
}

// The requantization pass of the portable path: acc [cout_g, ohw] of one group into yg.
void Epilogue(const PackedQConv2dState& s, const GemmPlan& p, int64_t grp, const int32_t* acc, uint8_t* yg) {
  ParallelFor(p.cout_g, 4, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o) {
      const int64_t co = grp * p.cout_g + o;
      RequantizeRow(acc + o * p.ohw, p.ohw, s.correction[co], s.multiplier[co], s.y_zero_point, s.lo, s.hi,
                    yg + o * p.ohw);
    }
  });
}

}  // namespace

void RunGemmConv(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x, uint8_t* y) {
  const GemmPlan p = PlanGemm(g, path);
  thread_local AlignedVector<uint8_t> col_buffer;
  thread_local std::vector<int32_t> acc_buffer;
  const bool packed_b = p.panels || p.windowed;
  const int64_t col_bytes = packed_b ? (p.ohw + 31) / 32 * 32 * p.kp : p.direct ? 0 : p.kdim * p.ohw;
  uint8_t* const col = GrowScratch(col_buffer, static_cast<size_t>(col_bytes));
  // Pointers: workers must not name the thread_locals themselves.
  int32_t* const acc = p.fused ? nullptr : GrowScratch(acc_buffer, static_cast<size_t>(p.cout_g * p.ohw));
  // The bound of the vpmaddubsw path (the others are exact for any input and do not need it).
  const int32_t b_max = path != QConvPath::kGemmMaddubs
                            ? 255
                            : std::max<int32_t>(MaxOfU8(x, g.batch * g.in_channels * g.in_h * g.in_w), s.x_zero_point);
  const uint8_t pad = static_cast<uint8_t>(s.x_zero_point);
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      const uint8_t* b = Columns(g, p, pad, x + (n * g.in_channels + grp * p.cin_g) * g.in_h * g.in_w, col);
      U8S8GemmArgs gemm = U8S8GemmArgs::Of(p.cout_g, p.ohw, p.kdim, s.weight.data() + grp * p.cout_g * p.kdim, p.kdim,
                                           b, p.ohw, acc, p.ohw);
      gemm.b_max = b_max;
      gemm.packed_a = s.gemm.data() + grp * PackedU8S8Size(p.cout_g, p.kdim);
      gemm.a_max_pair = s.max_pair;
      if (packed_b) gemm.packed_b = col;
      if (p.windowed) {
        gemm.k = p.gemm_k;
        gemm.packed_a = s.windowed.data();
      }
      uint8_t* const yg = y + (n * g.out_channels + grp * p.cout_g) * p.ohw;
      U8S8GemmArgs::Requant q;
      if (p.fused) {  // each block is requantized as it leaves the tiles or registers
        q.correction = s.correction.data() + grp * p.cout_g;
        q.multiplier = s.multiplier.data() + grp * p.cout_g;
        q.zero_point = s.y_zero_point;
        q.lo = s.lo;
        q.hi = s.hi;
        q.y = yg;
        q.ldy = p.ohw;
        gemm.requant = &q;
      }
      GemmU8S8On(GemmIsaOf(path), gemm);
      if (!p.fused) Epilogue(s, p, grp, acc, yg);
    }
  }
}

}  // namespace kernels
}  // namespace qfx
