// qfx kernels, Highway (every target): what each target reports, and stand-ins for the x86 kernels on the
// targets that do not compile them. The path rules (path.cc) never pick a kernel the dispatched target
// lacks, so a stand-in that runs is a broken invariant: it says which kernel and target, and aborts.
//
// Included by hwy/qu8_dispatch.cc once per Highway target, inside qfx::kernels::HWY_NAMESPACE (which
// also brings the includes).

inline int64_t Int8TargetImpl() { return HWY_TARGET; }

[[noreturn]] inline void Unavailable(const char* kernel) {
  std::fprintf(stderr, "qfx: internal error: int8 kernel %s is not compiled for target %s (path rules broken)\n",
               kernel, hwy::TargetName(HWY_TARGET));
  std::abort();
}

#if !(HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL)
inline void GemmU8S8TileImpl(const U8S8GemmArgs&) { Unavailable("GemmU8S8Tile"); }
#endif

#if !(HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3)
inline void ImplicitConvMaddubsImpl(const ImplicitConvArgs&) { Unavailable("ImplicitConvMaddubs"); }
inline void DepthwiseQConvMaddwdImpl(const QConvArgs&, const int32_t*, const uint8_t*, uint8_t*) {
  Unavailable("DepthwiseQConvMaddwd");
}
#endif

#if HWY_TARGET != HWY_AVX3_DL
inline void GemmU8S8AmxImpl(const U8S8GemmArgs&) { Unavailable("GemmU8S8Amx"); }
inline void ImplicitConvAmxImpl(const ImplicitConvArgs&) { Unavailable("ImplicitConvAmx"); }
inline void ImplicitConvVnniImpl(const ImplicitConvArgs&) { Unavailable("ImplicitConvVnni"); }
inline void DepthwiseQConvVnniImpl(const QConvArgs&, const int32_t*, const uint8_t*, uint8_t*) {
  Unavailable("DepthwiseQConvVnni");
}
inline void WindowPanelsImpl(const Conv2dGeometry&, const uint8_t*, int64_t, uint8_t, uint8_t*) {
  Unavailable("WindowPanels");
}
#endif
