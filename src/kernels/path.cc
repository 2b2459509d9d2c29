// qfx kernels: which kernel path a quantized layer takes, decided here and nowhere else (as ruy's path
// selection). PackQConv2d / PackQLinear call SelectQConvPath / SelectQLinearPath once per layer and lay the
// weights out for the answer; the run functions follow the packed path. The rules, best first:
//
//   depthwise (groups = C_in > 1, C_out a multiple of C_in):
//     AVX3_DL, no dilation, kernel <= 8 wide and <= 16 tall, stride_w 1 or 2  -> kDepthwiseVnni
//     AVX2 / AVX3, no dilation, stride_w 1 or 2, at most 128 taps              -> kDepthwiseMaddwd
//     otherwise                                                                -> kDepthwise
//   one group, C_in a multiple of 64, stride 1, no dilation, kernel > 1x1:
//     AVX3_DL with AMX -> kImplicitAmx;  AVX3_DL -> kImplicitVnni
//   one group, no dilation, strides <= 4:
//     AVX2 / AVX3 -> kImplicitMaddubs
//   one group, kernel 2..8 wide, no dilation, stride_w <= 4 (the permute reaches 64 bytes):
//     AVX3_DL with AMX -> kWindowedAmx;  AVX3_DL -> kWindowedVnni
//   everything else, im2col + GEMM by ISA:
//     AVX3_DL with AMX -> kGemmAmx;  AVX3_DL -> kGemmVnni;  AVX2 / AVX3 -> kGemmMaddubs;  else kGemmPortable
//
// Linear layers take the GEMM (and the few-rows dot product) of the ISA: kAmx, kVnni, kMaddubs, kPortable.
#include <cstdlib>

#include "hwy/targets.h"
#include "qfx/kernels/qconv.h"
#include "src/kernels/packed.h"
#include "src/kernels/qu8_dispatch.h"

namespace qfx {
namespace kernels {

namespace {

bool Vnni(const Int8Isa& isa) { return isa.target == HWY_AVX3_DL; }
bool Amx(const Int8Isa& isa) { return Vnni(isa) && isa.amx; }
bool Maddubs(const Int8Isa& isa) { return isa.target == HWY_AVX2 || isa.target == HWY_AVX3; }

bool NoDilation(const QConv2dShape& s) { return s.dilation_h == 1 && s.dilation_w == 1; }

bool DepthwiseVnniFits(const QConv2dShape& s) {
  return s.depthwise() && NoDilation(s) && s.kernel_w <= 8 && s.kernel_h <= 16 && (s.stride_w == 1 || s.stride_w == 2);
}

bool DepthwiseMaddwdFits(const QConv2dShape& s) {
  return s.depthwise() && NoDilation(s) && s.stride_w <= 2 && s.kernel_h * s.kernel_w <= 128;  // DepthwiseTapPairs
}

bool ImplicitFits(const QConv2dShape& s) {
  return s.groups == 1 && s.in_channels % 64 == 0 && s.stride_h == 1 && s.stride_w == 1 && NoDilation(s) &&
         s.kernel_h * s.kernel_w > 1;
}

// kImplicitMaddubs also takes any C_in (padded to a group of 4), strides up to 4 (phase sub-planes) and
// 1x1 layers.
bool ImplicitMaddubsFits(const QConv2dShape& s) {
  return s.groups == 1 && NoDilation(s) && s.stride_h <= 4 && s.stride_w <= 4;
}

bool WindowedFits(const QConv2dShape& s) {
  return s.groups == 1 && NoDilation(s) && s.kernel_w >= 2 && s.kernel_w <= 8 && s.stride_w <= 4;
}

// The im2col + GEMM path of an ISA.
QConvPath GemmPath(const Int8Isa& isa) {
  if (Amx(isa)) return QConvPath::kGemmAmx;
  if (Vnni(isa)) return QConvPath::kGemmVnni;
  if (Maddubs(isa)) return QConvPath::kGemmMaddubs;
  return QConvPath::kGemmPortable;
}

}  // namespace

Int8Isa Int8Isa::Current() {
  Int8Isa isa;
  isa.target = Int8Target();
  isa.amx = isa.target == HWY_AVX3_DL && AmxEnabled();
  return isa;
}

QConvPath SelectQConvPath(const QConv2dShape& s, const Int8Isa& isa) {
  if (s.depthwise()) {
    if (Vnni(isa) && DepthwiseVnniFits(s)) return QConvPath::kDepthwiseVnni;
    return Maddubs(isa) && DepthwiseMaddwdFits(s) ? QConvPath::kDepthwiseMaddwd : QConvPath::kDepthwise;
  }
  if (Vnni(isa) && ImplicitFits(s)) return isa.amx ? QConvPath::kImplicitAmx : QConvPath::kImplicitVnni;
  if (Maddubs(isa) && ImplicitMaddubsFits(s)) return QConvPath::kImplicitMaddubs;
  if (Vnni(isa) && WindowedFits(s)) return isa.amx ? QConvPath::kWindowedAmx : QConvPath::kWindowedVnni;
  return GemmPath(isa);
}

QLinearPath SelectQLinearPath(const Int8Isa& isa) {
  if (Amx(isa)) return QLinearPath::kAmx;
  if (Vnni(isa)) return QLinearPath::kVnni;
  if (Maddubs(isa)) return QLinearPath::kMaddubs;
  return QLinearPath::kPortable;
}

bool PathFits(QConvPath path, const QConv2dShape& s) {
  switch (path) {
    case QConvPath::kDepthwiseVnni:
      return DepthwiseVnniFits(s);
    case QConvPath::kDepthwiseMaddwd:
      return DepthwiseMaddwdFits(s);
    case QConvPath::kDepthwise:
      return s.depthwise();
    case QConvPath::kImplicitAmx:
    case QConvPath::kImplicitVnni:
      return ImplicitFits(s);
    case QConvPath::kImplicitMaddubs:
      return ImplicitMaddubsFits(s);
    case QConvPath::kWindowedAmx:
    case QConvPath::kWindowedVnni:
      return WindowedFits(s);
    default:
      return true;  // im2col + GEMM computes any grouped convolution
  }
}

bool PathRuns(QConvPath path, const Int8Isa& isa) {
  switch (path) {
    case QConvPath::kImplicitAmx:
    case QConvPath::kWindowedAmx:
    case QConvPath::kGemmAmx:
      return Amx(isa);
    case QConvPath::kDepthwiseVnni:
    case QConvPath::kImplicitVnni:
    case QConvPath::kWindowedVnni:
    case QConvPath::kGemmVnni:
      return Vnni(isa);
    case QConvPath::kDepthwiseMaddwd:
    case QConvPath::kImplicitMaddubs:
    case QConvPath::kGemmMaddubs:
      return Maddubs(isa);
    default:
      return true;  // kDepthwise, kGemmPortable: compiled for every target
  }
}

bool PathRuns(QLinearPath path, const Int8Isa& isa) {
  switch (path) {
    case QLinearPath::kAmx:
      return Amx(isa);
    case QLinearPath::kVnni:
      return Vnni(isa);
    case QLinearPath::kMaddubs:
      return Maddubs(isa);
    default:
      return true;
  }
}

bool IsDepthwisePath(QConvPath p) {
  return p == QConvPath::kDepthwiseVnni || p == QConvPath::kDepthwiseMaddwd || p == QConvPath::kDepthwise;
}
bool IsImplicitPath(QConvPath p) {
  return p == QConvPath::kImplicitAmx || p == QConvPath::kImplicitVnni || p == QConvPath::kImplicitMaddubs;
}
bool IsWindowedPath(QConvPath p) { return p == QConvPath::kWindowedAmx || p == QConvPath::kWindowedVnni; }

QLinearPath GemmIsaOf(QConvPath p) {
  if (p == QConvPath::kGemmAmx || p == QConvPath::kWindowedAmx) return QLinearPath::kAmx;
  return p == QConvPath::kGemmPortable ? QLinearPath::kPortable : QLinearPath::kVnni;
}

QConvPath RunnablePath(QConvPath packed, const QConv2dShape& s, const Int8Isa& isa) {
  if (PathRuns(packed, isa)) return packed;
  const QConvPath best = SelectQConvPath(s, isa);
  // The implicit and windowed layouts exist only where the pack chose those paths.
  return IsImplicitPath(best) || IsWindowedPath(best) ? GemmPath(isa) : best;
}

QLinearPath RunnablePath(QLinearPath packed, const Int8Isa& isa) {
  return PathRuns(packed, isa) ? packed : SelectQLinearPath(isa);
}

const char* PathName(QConvPath path) {
  switch (path) {
    case QConvPath::kDepthwiseVnni:
      return "depthwise_avx512vnni";
    case QConvPath::kDepthwiseMaddwd:
      return "depthwise_maddwd";
    case QConvPath::kDepthwise:
      return "depthwise_hwy";
    case QConvPath::kImplicitAmx:
      return "implicit_amx";
    case QConvPath::kImplicitVnni:
      return "implicit_avx512vnni";
    case QConvPath::kImplicitMaddubs:
      return "implicit_maddubs";
    case QConvPath::kWindowedAmx:
      return "windowed_amx";
    case QConvPath::kWindowedVnni:
      return "windowed_avx512vnni";
    case QConvPath::kGemmAmx:
      return "gemm_amx";
    case QConvPath::kGemmVnni:
      return "gemm_avx512vnni";
    case QConvPath::kGemmMaddubs:
      return "gemm_maddubs";
    case QConvPath::kGemmPortable:
      return "gemm_portable";
  }
  return "?";
}

const char* PathName(QLinearPath path) {
  switch (path) {
    case QLinearPath::kAmx:
      return "linear_amx";
    case QLinearPath::kVnni:
      return "linear_avx512vnni";
    case QLinearPath::kMaddubs:
      return "linear_maddubs";
    case QLinearPath::kPortable:
      return "linear_portable";
  }
  return "?";
}

const char* Int8PathName() {
  const Int8Isa isa = Int8Isa::Current();
  if (Amx(isa)) return "AMX";
  if (Vnni(isa)) return "AVX-512 VNNI";
  return hwy::TargetName(isa.target);
}

}  // namespace kernels
}  // namespace qfx
