#!/usr/bin/python3
"""Latency of qfx against PyTorch 1.13 on the same machine, in one run (a benchmark, not a test).

For each model (resnet18 and mobilenet_v2 by default) at batch 1, 3x224x224, with the same thread count:
PyTorch fp32 eager (torchvision model, random weights) and `qfx bench` fp32 (seeded weights; latency
does not depend on weight values). Prints each median and the ratio qfx / PyTorch (below 1: qfx faster).

  tools/setup.sh --golden && bazel build -c opt //tools:qfx && /usr/bin/python3 tools/bench_vs_torch.py
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
import torchvision

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def torch_median_ms(model, shape, iters):
    x = torch.randn(*shape)
    with torch.no_grad():
        for _ in range(3):
            model(x)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def qfx_median_ms(qfx, name, shape, threads, iters):
    out = subprocess.run([qfx, "bench", "--model", name, "--shape", ",".join(map(str, shape)), "--threads",
                          str(threads), "--iters", str(iters), "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--qfx", default=os.path.join(ROOT, "bazel-bin", "tools", "qfx"))
    args = ap.parse_args()
    if not os.path.exists(args.qfx):
        raise SystemExit(f"{args.qfx} not found: run `bazel build -c opt //tools:qfx` first")
    torch.set_num_threads(args.threads)
    shape = [1, 3, 224, 224]
    print(f"threads {args.threads}, batch 1, input {shape}, median of {args.iters} runs")
    print(f"{'model':<14} {'torch fp32 ms':>14} {'qfx fp32 ms':>12} {'qfx/torch':>10}")
    for name in args.models.split(","):
        model = getattr(torchvision.models, name)().eval()
        t = torch_median_ms(model, shape, args.iters)
        q = qfx_median_ms(args.qfx, name, shape, args.threads, args.iters)
        print(f"{name:<14} {t:>14.2f} {q:>12.2f} {q / t:>10.2f}")


if __name__ == "__main__":
    main()
