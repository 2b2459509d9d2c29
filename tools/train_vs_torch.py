#!/usr/bin/python3
"""qfx: fp32 training of mnist_cnn in qfx against PyTorch 1.13 with the same recipe, on the same machine.

For each seed, PyTorch initialises a MnistCnn (torch.manual_seed(seed)); both trainers start from those
weights (saved as safetensors for `qfx train --weights`) and train with Adam 1e-3, batch 64, 5 epochs, 2 threads,
on the first 12,000 Fashion-MNIST training images (tools/fashion_mnist.sh), then report top-1 on the first
2,000 test images and the seconds per epoch. Shuffling and floating-point order differ, so accuracies are compared as a mean over seeds.

Run by hand with Debian's python (`tools/setup.sh --golden` installs PyTorch):
  /usr/bin/python3 tools/train_vs_torch.py [--data DIR] [--seeds 3] [--epochs 5]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_golden import MnistCnn, train_adam, write_safetensors  # noqa: E402


def qfx_train(qfx, init, data, epochs, seed, out):
    cmd = [qfx, "train", "--model", "mnist_cnn", "--weights", init, "--seed", str(seed),
           "--train-x", f"{data}/train_x.npy", "--train-y", f"{data}/train_y.npy",
           "--test-x", f"{data}/test_x.npy", "--test-y", f"{data}/test_y.npy",
           "--epochs", str(epochs), "--batch", "64", "--lr", "1e-3", "--out", out]
    text = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    seconds = [float(s) for s in re.findall(r"\(([0-9.]+) s\)", text)]
    top1 = float(re.search(r"fp32 test top1: ([0-9.]+)", text).group(1))
    return top1, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/tmp/qfx-fashion")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=5)
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.exists(f"{args.data}/test_y.npy"):
        subprocess.run([f"{root}/tools/fashion_mnist.sh", args.data, "12000", "2000"], check=True)
    build = subprocess.run(["bazel", "build", "-c", "opt", "//tools:qfx"], cwd=root, capture_output=True, text=True)
    if build.returncode != 0:
        sys.exit("bazel build //tools:qfx failed:\n" + build.stderr[-4000:])
    qfx = f"{root}/bazel-bin/tools/qfx"
    torch.set_num_threads(2)
    x = torch.from_numpy(np.load(f"{args.data}/train_x.npy"))
    y = torch.from_numpy(np.load(f"{args.data}/train_y.npy"))
    tx = torch.from_numpy(np.load(f"{args.data}/test_x.npy"))
    ty = torch.from_numpy(np.load(f"{args.data}/test_y.npy"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            model = MnistCnn()
            init = os.path.join(tmp, f"init{seed}.safetensors")
            write_safetensors(init, list(model.state_dict().items()))
            torch.manual_seed(seed + 1000)
            t_sec = train_adam(model, x, y, args.epochs)
            model.eval()
            with torch.no_grad():
                t_top1 = float((model(tx).argmax(1) == ty).float().mean())
            q_top1, q_sec = qfx_train(qfx, init, args.data, args.epochs, seed, os.path.join(tmp, "out.safetensors"))
            rows.append((seed, t_top1, q_top1, np.median(t_sec), np.median(q_sec)))
            print(f"seed {seed}: top-1 PyTorch {t_top1:.4f} qfx {q_top1:.4f}; s/epoch PyTorch {np.median(t_sec):.2f} "
                  f"qfx {np.median(q_sec):.2f}", flush=True)
    t = np.array([r[1] for r in rows]), np.array([r[2] for r in rows])
    ts, qs = np.median([r[3] for r in rows]), np.median([r[4] for r in rows])
    print(f"mean top-1 over {len(rows)} seeds: PyTorch {t[0].mean():.4f}, qfx {t[1].mean():.4f} "
          f"(difference {100 * (t[1].mean() - t[0].mean()):+.2f} points)")
    print(f"seconds per epoch (median): PyTorch {ts:.2f}, qfx {qs:.2f} -> qfx/PyTorch = {qs / ts:.2f}")


if __name__ == "__main__":
    main()
