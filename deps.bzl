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
#     tools/setup.sh installs, under /usr, each with its BUILD file from third_party/.
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
