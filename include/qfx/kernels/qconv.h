// qfx kernels: quantized convolution and linear layers, packed once and run many times.
//
// The one entry point per op: Pack* takes a layer's int8 weights and its requantization (THE RULES in
// qfx/kernels/int8.h) and returns an opaque packed layer; Run executes it. The pack call chooses the
// kernel path for this CPU, once, in one function (src/kernels/path.cc, SelectQConvPath), and lays the
// weights out as that path needs; nothing after it decides again. The layouts, tiles and ISAs stay
// behind this header; the path is visible only as a name, for people (qfx bench) and for tests.
//
// Activations are quint8 NCHW (convolution) or [rows, in] (linear), per-tensor qparams; weights qint8,
// zero point 0, per output channel. Callers validate shapes at their edge (the quantized modules do);
// Run only asserts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "qfx/kernels/f32.h"   // Conv2dGeometry
#include "qfx/kernels/int8.h"  // THE RULES

namespace qfx {
namespace kernels {

// What a quantized convolution is, fixed at convert time: a Conv2dGeometry whose batch and input size
// are not used (they come with each Run).
struct QConv2dShape : Conv2dGeometry {
  // A square kernel with the same stride, padding and dilation along both axes.
  static QConv2dShape Square(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t pad,
                             int64_t dilation, int64_t groups) {
    QConv2dShape s;
    static_cast<Conv2dGeometry&>(s) =
        Conv2dGeometry::Square(1, in_channels, 0, 0, out_channels, kernel, stride, pad, dilation, groups);
    return s;
  }
  // The full geometry for an input of batch x in_h x in_w.
  Conv2dGeometry Geometry(int64_t batch, int64_t in_h, int64_t in_w) const {
    Conv2dGeometry g = *this;
    g.batch = batch;
    g.in_h = in_h;
    g.in_w = in_w;
    return g;
  }
  bool depthwise() const { return groups == in_channels && groups > 1 && out_channels % in_channels == 0; }
};

// A layer's requantization, per THE RULES: acc = sum (x - x_zero_point) * w + bias[c] (int32), then
// y = clamp(nearbyint(float(acc) * multiplier[c]) + y_zero_point, lo, hi). Pack copies the arrays.
struct QRequant {
  int32_t x_zero_point = 0;
  const int32_t* bias = nullptr;      // [out] (null: zero)
  const float* multiplier = nullptr;  // [out]
  int32_t y_zero_point = 0;
  int32_t lo = 0, hi = 255;  // output clamp (a fused ReLU: lo = y_zero_point)
};

// The per-channel int32 bias and multipliers of a layer from its scales (QuantizeBias, RequantMultiplier).
struct QRequantValues {
  std::vector<int32_t> bias;
  std::vector<float> multiplier;
};
QRequantValues RequantFromScales(int64_t out, float x_scale, const float* w_scale, const float* bias, float y_scale);

// The kernel paths. Which one a layer takes depends on its shape and on the CPU (SelectQConvPath); a test
// pins the choice for every zoo layer on every target.
enum class QConvPath {
  kDepthwiseVnni,    // depthwise, AVX-512 VNNI strips (x86/qu8_dwconv_avx512vnni-inl.h)
  kDepthwiseMaddwd,  // depthwise, AVX2 vpmaddwd on tap pairs (x86/qu8_dwconv_avx2-inl.h)
  kDepthwise,        // depthwise, portable Highway (hwy/qu8_dwconv-inl.h)
  kImplicitAmx,      // implicit GEMM on AMX tiles (x86/qu8_conv_implicit_amx-inl.h)
  kImplicitVnni,     // implicit GEMM in AVX-512 VNNI registers (x86/qu8_conv_implicit_avx512vnni-inl.h)
  kImplicitMaddubs,  // implicit GEMM in vpmaddubsw registers, strides <= 4 (x86/qu8_conv_implicit_avx2-inl.h)
  kWindowedAmx,      // 4-tap windowed im2col (AVX-512 VBMI) + AMX GEMM
  kWindowedVnni,     // 4-tap windowed im2col (AVX-512 VBMI) + AVX-512 VNNI GEMM
  kGemmAmx,          // im2col into tile panels + AMX GEMM
  kGemmVnni,         // im2col + AVX-512 VNNI 4x32 GEMM, tiles requantized in L1
  kGemmMaddubs,      // im2col + vpmaddubsw 4x16 GEMM (AVX2, AVX-512 without VNNI), tiles requantized in L1
  kGemmPortable,     // im2col + the exact portable loop (other targets), then a requantization pass
};
enum class QLinearPath { kAmx, kVnni, kMaddubs, kPortable };  // the GEMM's (and the few-rows dot's) ISA
const char* PathName(QConvPath path);
const char* PathName(QLinearPath path);

// What the int8 kernels can use right now: the Highway target they dispatch to (HWY_AVX2, ...) and whether
// AMX tiles are usable (CPU, kernel permission, QFX_DISABLE_AMX unset).
struct Int8Isa {
  int64_t target = 0;
  bool amx = false;
  static Int8Isa Current();
};

// The path rules, in one place: the best path for a layer of this shape on this ISA.
QConvPath SelectQConvPath(const QConv2dShape& shape, const Int8Isa& isa);
QLinearPath SelectQLinearPath(const Int8Isa& isa);
// Whether `path` computes a layer of this shape (any ISA), and whether this ISA has its kernels.
bool PathFits(QConvPath path, const QConv2dShape& shape);
bool PathRuns(QConvPath path, const Int8Isa& isa);
bool PathRuns(QLinearPath path, const Int8Isa& isa);

struct PackedQConv2dState;
struct PackedQLinearState;

class PackedQConv2d {
 public:
  PackedQConv2d() = default;
  QConvPath path() const;
  const QConv2dShape& shape() const;
  bool empty() const { return state_ == nullptr; }

 private:
  explicit PackedQConv2d(std::shared_ptr<const PackedQConv2dState> s) : state_(std::move(s)) {}
  friend PackedQConv2d PackQConv2d(const QConv2dShape&, const int8_t*, const QRequant&, std::optional<QConvPath>);
  friend void Run(const PackedQConv2d&, int64_t, int64_t, int64_t, const uint8_t*, uint8_t*);
  std::shared_ptr<const PackedQConv2dState> state_;
};

class PackedQLinear {
 public:
  PackedQLinear() = default;
  QLinearPath path() const;
  int64_t in_features() const;
  int64_t out_features() const;
  bool empty() const { return state_ == nullptr; }

 private:
  explicit PackedQLinear(std::shared_ptr<const PackedQLinearState> s) : state_(std::move(s)) {}
  friend PackedQLinear PackQLinear(int64_t, int64_t, const int8_t*, const QRequant&, std::optional<QLinearPath>);
  friend PackedQLinear PackQLinearDynamic(int64_t, int64_t, const int8_t*, const float*, const float*,
                                          std::optional<QLinearPath>);
  friend void Run(const PackedQLinear&, int64_t, const uint8_t*, uint8_t*);
  friend void RunDynamic(const PackedQLinear&, int64_t, float, int32_t, const uint8_t*, float*);
  std::shared_ptr<const PackedQLinearState> state_;
};

// Packs a convolution's weights ([C_out, C_in / groups, KH, KW]) for SelectQConvPath's path on the current
// ISA, or for `path` where given (tests and benchmarks; it must fit the shape and run here: PathFits,
// PathRuns).
PackedQConv2d PackQConv2d(const QConv2dShape& shape, const int8_t* weight, const QRequant& requant,
                          std::optional<QConvPath> path = std::nullopt);
// y [batch, C_out, OH, OW] from x [batch, C_in, in_h, in_w].
void Run(const PackedQConv2d& conv, int64_t batch, int64_t in_h, int64_t in_w, const uint8_t* x, uint8_t* y);

// A linear layer's weights [out, in]; y [rows, out] from x [rows, in].
PackedQLinear PackQLinear(int64_t in, int64_t out, const int8_t* weight, const QRequant& requant,
                          std::optional<QLinearPath> path = std::nullopt);
void Run(const PackedQLinear& linear, int64_t rows, const uint8_t* x, uint8_t* y);
// Dynamic quantization's linear layer (float out): x quantized per call by the caller with (x_scale,
// x_zero_point); y[r, o] = float(acc) * (x_scale * w_scale[o]) + bias[o] (bias may be null).
PackedQLinear PackQLinearDynamic(int64_t in, int64_t out, const int8_t* weight, const float* w_scale, const float* bias,
                                 std::optional<QLinearPath> path = std::nullopt);
void RunDynamic(const PackedQLinear& linear, int64_t rows, float x_scale, int32_t x_zero_point, const uint8_t* x,
                float* y);

// What the int8 convolutions and GEMM run on now, for people: "AMX", "AVX-512 VNNI", or the target name.
const char* Int8PathName();

}  // namespace kernels
}  // namespace qfx
