#!/usr/bin/env bash
# qfx tests: `qfx train` and `qfx qat` end to end on the 400 MNIST test images of tests/data/mnist: the
# per-epoch lines, the written weights and .qfx files (which `qfx eval` then reads), and clear errors.
set -euo pipefail
qfx="$1"
data=tests/data/mnist
tmp=${TEST_TMPDIR:-/tmp}
out=$("$qfx" train --model mnist_cnn --train-x $data/test400_x.npy --train-y $data/test400_y.npy --epochs 2 \
  --batch 32 --schedule cosine --test-x $data/test400_x.npy --test-y $data/test400_y.npy --out "$tmp/w.safetensors")
echo "$out"
grep -qE '^epoch 1/2: loss [0-9.]+ train-acc [0-9.]+ lr 0.001 \([0-9.]+ s\)$' <<<"$out"
grep -qE '^epoch 2/2: loss [0-9.]+ train-acc [0-9.]+ lr 0.0005 ' <<<"$out"
grep -qE '^fp32 test top1: 0\.[0-9]{4} \(400 images\)$' <<<"$out"
[ -s "$tmp/w.safetensors" ]
"$qfx" eval --model mnist_cnn --weights "$tmp/w.safetensors" --input $data/test400_x.npy --labels $data/test400_y.npy \
  | grep -qE '^top1: 0\.[0-9]{4}$'
out=$("$qfx" qat --model mnist_cnn --weights "$tmp/w.safetensors" --train-x $data/test400_x.npy \
  --train-y $data/test400_y.npy --epochs 2 --freeze-bn-after 1 --freeze-observers-after 1 --optimizer sgd --lr 0.01 \
  --test-x $data/test400_x.npy --test-y $data/test400_y.npy --out "$tmp/m.qfx")
echo "$out"
grep -qE '^QAT of mnist_cnn with x86_qat on 400 images: 2 epochs, batch 64, sgd lr 0.01$' <<<"$out"
grep -qE '^fake-quant test top1: 0\.[0-9]{4}' <<<"$out"
grep -qE '^int8 test top1: 0\.[0-9]{4}' <<<"$out"
"$qfx" eval "$tmp/m.qfx" --input $data/test400_x.npy --labels $data/test400_y.npy | grep -qE '^top1: 0\.[0-9]{4}$'
# Errors: a PTQ qconfig for qat, labels that do not match, an untrainable model file.
if err=$("$qfx" qat --model mnist_cnn --qconfig x86 --train-x $data/test400_x.npy --train-y $data/test400_y.npy \
  --out "$tmp/bad.qfx" 2>&1); then echo "expected failure"; exit 1; fi
grep -q "qfx: error: --qconfig x86 is for post-training quantization (no fake-quant); use a \*_qat preset" <<<"$err"
[ ! -e "$tmp/bad.qfx" ]
if err=$("$qfx" train --model mnist_cnn --train-x $data/test400_x.npy --train-y $data/calib200_x.npy \
  --out "$tmp/bad.safetensors" 2>&1); then echo "expected failure"; exit 1; fi
grep -q "qfx: error: $data/calib200_x.npy: labels f32\[200, 1, 28, 28\] must be \[400\], one per row of" <<<"$err"
[ ! -e "$tmp/bad.safetensors" ]
if err=$("$qfx" train --model mnist_cnn --train-x $data/test400_x.npy --train-y $data/test400_y.npy --schedule linear \
  --out "$tmp/bad.safetensors" 2>&1); then echo "expected failure"; exit 1; fi
grep -q "schedule" <<<"$err"
# Dynamic quantization: no calibration; a static preset without --calib is a clear error.
out=$("$qfx" quantize --model mlp --qconfig dynamic --out "$tmp/mlp_dyn.qfx")
echo "$out"
grep -qE '^quantized mlp with dynamic \(dynamic\): 3 Linear layers int8, activations quantized per call$' <<<"$out"
grep -qE '^size: fp32 0\.94 MB -> int8 0\.2[0-9] MB' <<<"$out"
"$qfx" run "$tmp/mlp_dyn.qfx" --input $data/test400_x.npy --output "$tmp/y.npy"
[ -s "$tmp/y.npy" ]
if err=$("$qfx" quantize --model mlp --qconfig x86 --out "$tmp/bad.qfx" 2>&1); then echo "expected failure"; exit 1; fi
grep -q "qfx: error: --qconfig x86 is static: give --calib X.npy" <<<"$err"
echo "PASS"
