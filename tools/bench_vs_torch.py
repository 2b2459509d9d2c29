#!/usr/bin/python3
"""Latency of qfx against PyTorch 1.13 on the same machine, in one run (a benchmark, not a test).

For each model (resnet18 and mobilenet_v2 by default) at batch 1, 3x224x224, with the same thread count:
PyTorch fp32 eager and FX int8 (prepare_fx / convert_fx, default qconfig mapping, engines onednn and
qnnpack), and qfx fp32 and int8 (`qfx quantize --qconfig x86`, then `qfx bench`). Weights are random /
seeded: latency does not depend on their values. Prints each median and the ratios (below 1: qfx faster).

  tools/setup.sh --golden && bazel build -c opt //tools:qfx && /usr/bin/python3 tools/bench_vs_torch.py

`--baseline OTHER_QFX` also times another qfx binary (say, a build of the previous commit) on the same .qfx
files, alternating with this one, and prints this one's int8 latency over the baseline's (before / after a
change, on the same machine in the same run).
"""
import argparse
import copy
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np

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


def qfx_median_ms(qfx, target, shape, threads, iters):
    """`target` is a zoo model name or a .qfx file."""
    which = [target] if target.endswith(".qfx") else ["--model", target]
    out = subprocess.run([qfx, "bench", *which, "--shape", ",".join(map(str, shape)), "--threads",
                          str(threads), "--iters", str(iters), "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]


def torch_int8_model(model, shape, engine):
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
    torch.backends.quantized.engine = engine
    x = torch.randn(*shape)
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(engine), (x,))
    with torch.no_grad():
        for _ in range(4):
            prepared(torch.randn(*shape))
    return convert_fx(prepared)


def alternating_medians(measure_a, measure_b, rounds):
    """Medians of `rounds` alternating measurements of two things, so that a slow phase of a shared
    machine falls on both rather than on whichever happened to run then."""
    a, b = [], []
    for i in range(rounds):  # ABBA: on a machine where the second of two runs is slower, both sides get it
        if i % 2 == 0:
            a.append(measure_a())
            b.append(measure_b())
        else:
            b.append(measure_b())
            a.append(measure_a())
    return statistics.median(a), statistics.median(b)


def qfx_quantize(qfx, name, shape, workdir):
    calib = os.path.join(workdir, "calib.npy")
    np.save(calib, np.random.RandomState(0).randn(4, *shape[1:]).astype(np.float32))
    out = os.path.join(workdir, name + ".qfx")
    subprocess.run([qfx, "quantize", "--model", name, "--qconfig", "x86", "--calib", calib, "--batch", "2", "--out", out],
                   check=True, capture_output=True, text=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18,mobilenet_v2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the compared pairs (median taken)")
    ap.add_argument("--qfx", default=os.path.join(ROOT, "bazel-bin", "tools", "qfx"))
    ap.add_argument("--baseline", help="another qfx binary to time on the same .qfx files, alternating")
    args = ap.parse_args()
    if not os.path.exists(args.qfx):
        raise SystemExit(f"{args.qfx} not found: run `bazel build -c opt //tools:qfx` first")
    torch.set_num_threads(args.threads)
    shape = [1, 3, 224, 224]
    print(f"threads {args.threads}, batch 1, input {shape}, median of {args.iters} runs; fp32 pairs and int8 "
          f"onednn / qfx pairs alternate over {args.rounds} rounds (median of the round medians)")
    header = ["torch fp32", "qfx fp32", "qfx/torch", "torch onednn", "torch qnnpack", "qfx int8",
              "/onednn", "/qnnpack", "/qfx fp32"]
    print(f"{'model':<14}" + "".join(f"{h:>14}" for h in header) + "   (ms; ratios are qfx / other)")
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models.split(","):
            model = getattr(torchvision.models, name)().eval()
            t, q = alternating_medians(lambda: torch_median_ms(model, shape, args.iters),
                                       lambda: qfx_median_ms(args.qfx, name, shape, args.threads, args.iters), args.rounds)
            qnnpack = torch_int8_model(model, shape, "qnnpack")
            torch.backends.quantized.engine = "qnnpack"
            t_qnnpack = torch_median_ms(qnnpack, shape, args.iters)
            onednn = torch_int8_model(model, shape, "onednn")  # leaves the engine at onednn for the runs below
            qfx_file = qfx_quantize(args.qfx, name, shape, workdir)
            t_onednn, q8 = alternating_medians(lambda: torch_median_ms(onednn, shape, args.iters),
                                               lambda: qfx_median_ms(args.qfx, qfx_file, shape, args.threads, args.iters),
                                               args.rounds)
            row = [t, q, q / t, t_onednn, t_qnnpack, q8, q8 / t_onednn, q8 / t_qnnpack, q8 / q]
            print(f"{name:<14}" + "".join(f"{v:>14.2f}" for v in row))
            if args.baseline:
                before, after = alternating_medians(
                    lambda: qfx_median_ms(args.baseline, qfx_file, shape, args.threads, args.iters),
                    lambda: qfx_median_ms(args.qfx, qfx_file, shape, args.threads, args.iters), args.rounds)
                print(f"{'':<14}int8 baseline {before:.2f} ms, this build {after:.2f} ms: {after / before:.3f}x")


if __name__ == "__main__":
    main()
