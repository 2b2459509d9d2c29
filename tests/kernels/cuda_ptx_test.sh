#!/usr/bin/env bash
# qfx tests: the CUDA kernels' PTX (src/kernels/cuda:kernels_ptx) keeps the requantization rule exact and
# uses the instructions the backend is built on: no fma.* (nvcc -fmad=false), rint rounding, mma.sync
# m16n8k32 u8 x s8 and dp4a.u32.s32.
set -euo pipefail
ptx=$1
if grep -qE '\bfma\.' "$ptx"; then
  echo "FAIL: $ptx contracts into fused multiply-adds:"; grep -m5 -nE '\bfma\.' "$ptx"; exit 1
fi
grep -q 'mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32' "$ptx"
grep -q 'dp4a.u32.s32' "$ptx"
grep -q 'cvt.rni.f32.f32' "$ptx"
echo "PASS"
