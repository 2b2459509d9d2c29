// qfx kernels, internal: what a packed layer holds (the state behind PackedQConv2d / PackedQLinear), and
// the drivers that run each path over it. pack.cc fills a state for one path; run.cc dispatches on it.
#pragma once

#include <cstdint>
#include <vector>

#include "qfx/kernels/qconv.h"
#include "src/kernels/qu8_dispatch.h"

namespace qfx {
namespace kernels {

struct PackedQConv2dState {
  QConv2dShape shape;
  QConvPath path = QConvPath::kGemmPortable;
  std::vector<int8_t> weight;       // as given: [C_out, C_in / groups, KH, KW] (depthwise, portable, oracle)
  std::vector<int32_t> bias;        // [C_out] int32
  std::vector<float> multiplier;    // [C_out]
  std::vector<int32_t> correction;  // [C_out]: bias - x_zero_point * sum(w), for kernels that requantize
  int32_t x_zero_point = 0, y_zero_point = 0, lo = 0, hi = 255;
  AlignedVector<int32_t> gemm;      // GEMM paths: PackGroups (every non-depthwise path keeps it)
  int32_t max_pair = -1;            // MaxPairAbsSum of the weights (vpmaddubsw's bound)
  AlignedVector<int8_t> tap_major;  // implicit paths: PackTapMajor
  AlignedVector<int32_t> windowed;  // windowed paths: PackWindowed
  // The oracle's view of this layer for an input geometry.
  QConvArgs Args(const Conv2dGeometry& g) const;
};

struct PackedQLinearState {
  int64_t in = 0, out = 0;
  QLinearPath path = QLinearPath::kPortable;
  std::vector<int8_t> weight;       // [out, in]
  std::vector<int32_t> weight_sum;  // [out]
  AlignedVector<int32_t> gemm;      // PackGroups, one group
  int32_t max_pair = -1;
  // Static: y = Requantize(acc + correction[o], multiplier[o], ...).
  std::vector<int32_t> correction;  // [out]: bias - x_zero_point * sum(w)
  std::vector<float> multiplier;
  int32_t y_zero_point = 0, lo = 0, hi = 255;
  // Dynamic: y = float(acc - x_zp * sum(w)) * (x_scale * w_scale[o]) + bias[o].
  std::vector<float> w_scale, bias;
};

// Path families, for the pack (which layouts a path needs) and the drivers (what they build and call).
bool IsDepthwisePath(QConvPath path);
bool IsImplicitPath(QConvPath path);
bool IsWindowedPath(QConvPath path);
// The GEMM an im2col + GEMM path runs, named by the linear path of the same ISA (kVnni stands for the
// register tiles, which are the dispatched target's: vpdpbusd or vpmaddubsw).
QLinearPath GemmIsaOf(QConvPath path);

// The path a packed layer runs on the current ISA: its own, unless the dispatcher's target has changed
// since it was packed (tests force targets); then the best path of the current ISA that the packed
// layouts allow (path.cc, next to the rules).
QConvPath RunnablePath(QConvPath packed, const QConv2dShape& shape, const Int8Isa& isa);
QLinearPath RunnablePath(QLinearPath packed, const Int8Isa& isa);

// The drivers, one per path family (x and y are whole NCHW batches).
void RunDepthwise(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x, uint8_t* y);
void RunImplicit(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x, uint8_t* y);
void RunGemmConv(const PackedQConv2dState& s, QConvPath path, const Conv2dGeometry& g, const uint8_t* x, uint8_t* y);
// The GEMM of an ISA, named by the linear path that uses it (kVnni and kMaddubs both run the register
// tiles, which are the dispatched target's).
void GemmU8S8On(QLinearPath isa, const U8S8GemmArgs& g);
// acc[out, rows] = W x X^T, exact int32 (the zero-point correction is the caller's).
void LinearAcc(const PackedQLinearState& s, QLinearPath path, const uint8_t* x, int64_t rows, int32_t* acc);

}  // namespace kernels
}  // namespace qfx
