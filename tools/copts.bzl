# qfx: the compiler flags that qfx's correctness depends on. They are set on every qfx library and binary
# (so a project that depends on qfx compiles qfx right whatever its own flags), and a project compiling
# its own code against qfx's headers adds them too (see README "Use qfx in your project").
#   -std=c++17          qfx's headers are C++17 (Bazel 4's default is -std=c++0x)
#   -ffp-contract=off   no implicit a*b+c -> fma contraction: the SIMD kernels must round exactly as the
#                       scalar oracle (kernels that want an FMA say so with MulAdd)
QFX_COPTS = [
    "-std=c++17",
    "-ffp-contract=off",
]
