#!/usr/bin/env bash
# Writes Fashion-MNIST (Zalando, MIT; Debian's dataset-fashion-mnist, which tools/setup.sh installs) as
# .npy files under DIR, for the real-data examples (README "Training, QAT and dynamic quantization"):
#   train_x.npy  f32 [N, 1, 28, 28]  pixels in 0..1     train_y.npy  i64 [N]  labels 0..9
#   test_x.npy   f32 [M, 1, 28, 28]                      test_y.npy   i64 [M]
# The first N of the 60,000 training images and the first M of the 10,000 test images, in file order
# (defaults: all). Each file is written to a temporary name and renamed, so none is ever half-written.
#   usage: tools/fashion_mnist.sh DIR [N [M]]
set -euo pipefail
if [[ $# -lt 1 || $# -gt 3 ]]; then
  echo "usage: $0 DIR [TRAIN_COUNT [TEST_COUNT]]" >&2
  exit 2
fi
src=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  if [[ ! -f "$src/$f" ]]; then
    echo "fashion_mnist: $src/$f is missing: install Debian's dataset-fashion-mnist (tools/setup.sh does)," \
      "or point FASHION_MNIST_DIR at a directory with the four idx .gz files" >&2
    exit 1
  fi
done
mkdir -p "$1"
python3 - "$src" "$1" "${2:-60000}" "${3:-10000}" <<'PY'
import array, gzip, os, struct, sys

src, out, n_train, n_test = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def idx(path, magic, count):
    with gzip.open(path, "rb") as f:
        data = f.read()
    got, n = struct.unpack(">II", data[:8])
    if got != magic:
        sys.exit(f"fashion_mnist: {path}: magic {got} is not {magic} (not an idx file of this kind)")
    if not 0 < count <= n:
        sys.exit(f"fashion_mnist: {path} holds {n} items; asked for {count}")
    header = 16 if magic == 2051 else 8
    size = 784 if magic == 2051 else 1
    body = data[header:header + count * size]
    if len(body) != count * size:
        sys.exit(f"fashion_mnist: {path} is truncated")
    return body

def npy(path, descr, shape, payload):
    dims = ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "")
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    header += " " * ((64 - (10 + len(header) + 1) % 64) % 64) + "\n"
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(payload)
    os.replace(tmp, path)

for split, prefix, count in (("train", "train", n_train), ("test", "t10k", n_test)):
    pixels = idx(os.path.join(src, f"{prefix}-images-idx3-ubyte.gz"), 2051, count)
    labels = idx(os.path.join(src, f"{prefix}-labels-idx1-ubyte.gz"), 2049, count)
    x = array.array("f", (p / 255.0 for p in pixels))
    y = array.array("q", list(labels))  # a bytes initializer would be read as raw int64s
    if sys.byteorder != "little":
        x.byteswap()
        y.byteswap()
    npy(os.path.join(out, f"{split}_x.npy"), "<f4", (count, 1, 28, 28), x.tobytes())
    npy(os.path.join(out, f"{split}_y.npy"), "<i8", (count,), y.tobytes())
print(f"fashion_mnist: wrote train ({n_train}) and test ({n_test}) to {out}", file=sys.stderr)
PY
