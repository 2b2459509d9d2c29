#!/usr/bin/env bash
# qfx tests: the qfx binary's demo runs and prints the top-5; a bad command fails with a clear message.
set -euo pipefail
qfx="$1"
out=$("$qfx" demo)
echo "$out"
grep -q "top-5 logits" <<<"$out"
[ "$(grep -cE '^ +[0-9]+: [+-][0-9]+\.[0-9]+$' <<<"$out")" -eq 5 ]
grep -qE "fp32 latency: median [0-9.]+ ms" <<<"$out"
grep -qE "^int8 vs fp32 on 8 seeded images: SQNR [0-9.]+ dB, top-1 agreement [0-9]/8$" <<<"$out"
grep -qE "^int8 latency: median [0-9.]+ ms" <<<"$out"
if err=$("$qfx" run --model nosuch --input x.npy --output y.npy 2>&1); then
  echo "expected failure"; exit 1
fi
grep -q "qfx: error: unknown model 'nosuch'; known models: resnet18" <<<"$err"
bench=$("$qfx" bench --model mlp --iters 3 --json)
grep -qE '^\{"median_ms":[0-9.]+,"min_ms":[0-9.]+,"max_ms":[0-9.]+,"device":"cpu","inputs_per_s":[0-9.]+\}$' <<<"$bench"
profile=$("$qfx" bench --model mnist_cnn --iters 2 --profile)
grep -qE '^conv1 +Conv2d +[0-9.]+ +[0-9.]+%' <<<"$profile"
grep -qE '^total [0-9.]+ ms over [0-9]+ nodes' <<<"$profile"
if err=$("$qfx" bench --model mlp --device cuda 2>&1); then
  echo "expected failure"; exit 1
fi
grep -q "^qfx: error: --device cuda runs int8 .qfx files" <<<"$err"
# dump: table to stdout, json to a file, svg through Graphviz, and a clear message without it.
table=$("$qfx" dump --model mnist_cnn)
grep -qE '^call_function +flatten +flatten +\(%pool_1, 1, -1\) +\{\} +f32\[1, 1568\] +fc1$' <<<"$table"
tmp=${TEST_TMPDIR:-/tmp}
"$qfx" dump --model resnet18 --format json --out "$tmp/r18.json"
head -1 "$tmp/r18.json" | grep -q '"format": "qfx.graph", "version": 1'
if command -v dot >/dev/null; then
  "$qfx" dump --model resnet18 --format svg --out "$tmp/r18.svg"
  grep -q "<svg" "$tmp/r18.svg"
fi
if err=$(PATH=/nonexistent "$qfx" dump --model mlp --format svg --out "$tmp/x.svg" 2>&1); then
  echo "expected failure without dot"; exit 1
fi
grep -q "needs Graphviz's \`dot\`, which is not on PATH: install it with \`apt-get install graphviz\`" <<<"$err"
[ ! -e "$tmp/x.svg" ]
# dump --stage prepared: observers, and why nodes stay float.
prepared=$("$qfx" dump --model resnet18 --stage prepared --qconfig tools/qconfigs/mixed.toml)
grep -qE '^call_module +fc +fc .*float: qconfig is none$' <<<"$prepared"
grep -qE '^call_module +activation_post_process_0 +activation_post_process_0 .*HistogramObserver$' <<<"$prepared"
grep -qE '^call_module +conv1 +conv1 .*int8 conv$' <<<"$prepared"
fused=$("$qfx" dump --model mnist_cnn --stage fused --qconfig qnnpack --format code)
grep -q "    conv1 = self.conv1(x)" <<<"$fused"
! grep -q "bn1" <<<"$fused"
if err=$("$qfx" dump --model mlp --stage prepared --qconfig x68 2>&1); then echo "expected failure"; exit 1; fi
grep -q "qfx: error: --qconfig 'x68' is neither a preset" <<<"$err"
echo "PASS"
