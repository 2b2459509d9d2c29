#!/usr/bin/env bash
# qfx set-up: installs every Debian package that the build, the tests and the tools need (and
# dataset-fashion-mnist, the real data of the README's examples: tools/fashion_mnist.sh; clang and its
# runtimes for tools/fuzz.sh's libFuzzer targets and the ASan/UBSan build).
# Idempotent; run as root on Debian 12. Runs `apt-get update` at most once per call, and only when a
# package is missing. `tools/setup.sh --golden` also installs PyTorch 1.13 (python3-torch, torchvision),
# needed only to regenerate test fixtures with tools/gen_golden.py by hand.
set -euo pipefail

packages=(
  bazel-bootstrap g++ python3
  libabsl-dev libfmt-dev libhwy-dev libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libtomlplusplus-dev libcli11-dev libre2-dev
  clang libclang-rt-dev
  graphviz
  dataset-fashion-mnist
)
if [[ "${1:-}" == "--golden" ]]; then
  packages+=(python3-torch python3-torchvision python3-numpy)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "setup: all packages present" >&2
