#!/usr/bin/env bash
# qfx tests: the qfx binary's demo runs and prints the top-5; a bad command fails with a clear message.
set -euo pipefail
qfx="$1"
out=$("$qfx" demo)
echo "$out"
grep -q "top-5 logits" <<<"$out"
[ "$(grep -cE '^ +[0-9]+: [+-][0-9]+\.[0-9]+$' <<<"$out")" -eq 5 ]
grep -qE "fp32 latency: median [0-9.]+ ms" <<<"$out"
if err=$("$qfx" run --model nosuch --input x.npy --output y.npy 2>&1); then
  echo "expected failure"; exit 1
fi
grep -q "qfx: error: unknown model 'nosuch'; known models: resnet18" <<<"$err"
bench=$("$qfx" bench --model mlp --iters 3 --json)
grep -qE '^\{"median_ms":[0-9.]+,"min_ms":[0-9.]+,"max_ms":[0-9.]+\}$' <<<"$bench"
echo "PASS"
