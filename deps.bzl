# qfx: what a workspace that builds qfx needs, for qfx's own WORKSPACE and for a project that depends on it.
# A project's WORKSPACE is three lines (see README "Use qfx in your project"):
#
#   local_repository(name = "qfx", path = "path/to/qfx")
#   load("@qfx//:deps.bzl", "qfx_dependencies")
#   qfx_dependencies()
#
# qfx_dependencies() declares, unless the workspace already has a repository of that name:
#   - rules_cc, rules_java, remote_coverage_tools: the small local stand-ins under third_party/ (Bazel's own
#     C++ and Java tool BUILD files load them, and Bazel 4 would otherwise download them);
#   - absl, benchmark, cli11, fmt, gtest, hwy, nlohmann_json, re2, tomlplusplus: the Debian packages that
#     tools/setup.sh installs, under /usr, each with its BUILD file from third_party/;
#   - qfx_cuda: the CUDA toolkit if this machine has one (see _cuda_impl), else an empty stand-in, so the
#     CUDA backend is compiled where nvcc exists and reports "built without CUDA" elsewhere.
load("//tools:copts.bzl", _QFX_COPTS = "QFX_COPTS")

# The flags qfx's correctness depends on (tools/copts.bzl), for a project's own targets.
QFX_COPTS = _QFX_COPTS

SYSTEM_LIBRARIES = ["absl", "benchmark", "cli11", "fmt", "gtest", "hwy", "nlohmann_json", "re2", "tomlplusplus"]

STAND_INS = ["rules_cc", "rules_java", "remote_coverage_tools"]

def _stand_in_impl(ctx):
    # The directory third_party/<name> of this qfx checkout, wherever it is: found through a file of its
    # root package, so a path relative to the depending workspace is never needed.
    src = ctx.path(Label("//:WORKSPACE")).dirname.get_child("third_party").get_child(ctx.attr.dir)
    if not src.exists:
        fail("qfx: %s is missing from the qfx checkout" % src)
    for entry in src.readdir():
        ctx.symlink(entry, entry.basename)

_stand_in = repository_rule(
    implementation = _stand_in_impl,
    attrs = {"dir": attr.string(mandatory = True)},
    local = True,
)

# The CUDA toolkit: $QFX_CUDA_PATH, else /usr/local/cuda, used when it has bin/nvcc, include/cuda_runtime.h
# and lib64/libcudart_static.a (QFX_DISABLE_CUDA=1 builds without it). The repository holds
#   defs.bzl   CUDA_ENABLED (bool) and NVCC (the compiler's absolute path, "" without CUDA)
#   BUILD      :cudart_static (the static runtime and the system libraries it needs; an empty library
#              without CUDA, so targets may depend on it unconditionally). Only nvcc reads the toolkit's
#              headers: qfx's C++ code calls the CUDA backend through plain functions (src/kernels/cuda).
def _cuda_impl(ctx):
    root = ctx.os.environ.get("QFX_CUDA_PATH", "/usr/local/cuda")
    disabled = ctx.os.environ.get("QFX_DISABLE_CUDA", "") not in ["", "0"]
    needed = [root + "/bin/nvcc", root + "/include/cuda_runtime.h", root + "/lib64/libcudart_static.a"]
    enabled = not disabled and all([ctx.path(f).exists for f in needed])
    if enabled:
        ctx.symlink(root + "/lib64/libcudart_static.a", "lib/libcudart_static.a")
        build = """package(default_visibility = ["//visibility:public"])
cc_library(name = "cudart_static", srcs = ["lib/libcudart_static.a"], linkopts = ["-ldl", "-lpthread", "-lrt"],
           linkstatic = True)
"""
    else:
        build = """package(default_visibility = ["//visibility:public"])
cc_library(name = "cudart_static")
"""
    ctx.file("BUILD", build)
    ctx.file("defs.bzl", "CUDA_ENABLED = %s\nNVCC = \"%s\"\n" % (enabled, root + "/bin/nvcc" if enabled else ""))

_cuda = repository_rule(
    implementation = _cuda_impl,
    environ = ["QFX_CUDA_PATH", "QFX_DISABLE_CUDA"],
    local = True,
)

def qfx_dependencies():
    """Declares the repositories qfx needs (see the top of this file)."""
    existing = native.existing_rules()
    for name in STAND_INS:
        if name not in existing:
            _stand_in(name = name, dir = name)
    for name in SYSTEM_LIBRARIES:
        if name not in existing:
            native.new_local_repository(
                name = name,
                build_file = str(Label("//third_party:%s.BUILD" % name)),
                path = "/usr",
            )
    if "qfx_cuda" not in existing:
        _cuda(name = "qfx_cuda")
