#!/usr/bin/env bash
# qfx: every test under AddressSanitizer + UBSan (clang, --config=asan in .bazelrc), then every test of
# the ordinary build again with MALLOC_PERTURB_ set (glibc fills fresh and freed memory with a byte, so a
# read of uninitialised or freed memory shows up as a wrong result). Exits non-zero on any failure.
# The ASan build lives in its own output base (~/.cache/qfx-asan/<checkout>) so the gcc build's cache stays.
#   tools/sanitize.sh            both
#   tools/sanitize.sh asan       only the ASan + UBSan run
#   tools/sanitize.sh perturb    only the MALLOC_PERTURB_ run
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
ob="$HOME/.cache/qfx-asan/$(printf %s "$PWD" | md5sum | cut -c1-16)"  # one per checkout
flags=(--curses=no --color=no --show_progress_rate_limit=60 --test_output=errors)
rc=0
if [[ $what == all || $what == asan ]]; then
  # Packages named rather than //...: the ordinary build's bazel-<dir> link points into another output
  # base, which this Bazel would walk as if it were source.
  echo "sanitize: bazel test --config=asan (clang, AddressSanitizer + UBSan) on every package"
  bazel --output_base="$ob" test --config=asan //:all //src/... //tests/... //tools/... "${flags[@]}" || rc=1
  bazel --output_base="$ob" shutdown || true  # its server would hold memory
fi
if [[ $what == all || $what == perturb ]]; then
  echo "sanitize: bazel test //... with MALLOC_PERTURB_=165"
  bazel test //... --test_env=MALLOC_PERTURB_=165 "${flags[@]}" || rc=1
fi
exit "$rc"
