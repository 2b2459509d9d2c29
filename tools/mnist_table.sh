#!/usr/bin/env bash
# qfx: the README's Fashion-MNIST accuracy table, from scratch and in qfx only. For mnist_cnn, mlp and
# vit_fmnist (a 4-layer vision transformer): fp32 training (Adam 1e-3, batch 64, 5 epochs, seed 0), then PTQ int8 with the x86 preset (256 calibration
# images), QAT int8 with x86_qat (1 epoch, Adam 1e-4), and the harder setting of 2-bit weights
# (tools/qconfigs/x86_w2.toml for PTQ, x86_qat_w2.toml for QAT, 2 epochs): trained on the first 12,000
# Fashion-MNIST training images, top-1 on the first 2,000 test images (tools/fashion_mnist.sh DIR 12000 2000).
# Prints a Markdown table on stdout, progress on stderr.
#   usage: tools/mnist_table.sh [DATA_DIR]    (default /tmp/qfx-fashion; written there when missing)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
data=${1:-/tmp/qfx-fashion}
[ -f "$data/test_y.npy" ] || tools/fashion_mnist.sh "$data" 12000 2000
bazel build -c opt //tools:qfx >&2
qfx="$root/bazel-bin/tools/qfx"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
train=(--train-x "$data/train_x.npy" --train-y "$data/train_y.npy")
top1() { "$qfx" eval "$@" --input "$data/test_x.npy" --labels "$data/test_y.npy" | sed -n 's/^top1: //p'; }
ptq() {  # model weights qconfig out
  "$qfx" quantize --model "$1" --weights "$2" --qconfig "$3" --calib "$data/train_x.npy" --calib-batches 8 --out "$4" >&2
  top1 "$4"
}
qat() {  # model weights qconfig epochs out
  "$qfx" qat --model "$1" --weights "$2" --qconfig "$3" "${train[@]}" --epochs "$4" --lr 1e-4 --seed 0 --out "$5" >&2
  top1 "$5"
}
echo "| model | fp32 | PTQ int8 (x86) | QAT int8 (x86_qat) | PTQ, 2-bit weights | QAT, 2-bit weights |"
echo "|---|---|---|---|---|---|"
for model in mnist_cnn mlp vit_fmnist; do
  echo "== $model" >&2
  w="$work/$model.safetensors"
  "$qfx" train --model "$model" "${train[@]}" --epochs 5 --batch 64 --lr 1e-3 --seed 0 --out "$w" >&2
  fp32=$(top1 --model "$model" --weights "$w")
  ptq8=$(ptq "$model" "$w" x86 "$work/ptq8.qfx")
  qat8=$(qat "$model" "$w" x86_qat 1 "$work/qat8.qfx")
  ptq2=$(ptq "$model" "$w" tools/qconfigs/x86_w2.toml "$work/ptq2.qfx")
  qat2=$(qat "$model" "$w" tools/qconfigs/x86_qat_w2.toml 2 "$work/qat2.qfx")
  echo "| $model | $fp32 | $ptq8 | $qat8 | $ptq2 | $qat2 |"
done
