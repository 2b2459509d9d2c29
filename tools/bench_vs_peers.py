#!/usr/bin/env python3
"""Latency and throughput of qfx against the runtimes its users would pick instead, in one run.

A benchmark, not a test: it needs PyPI's torch (2.x), torchvision, torchao, onnx and onnxruntime, which
qfx itself never uses. For each model, batch and thread count it times, alternating in one run:

  ort-fp32     ONNX Runtime on the model exported with torch.onnx.export (opset 17, all graph optimisations)
  ort-int8     ONNX Runtime on the same model after its own quantize_static (QDQ, per-channel s8 weights,
               u8 activations, MinMax calibration on 8 random images: the path its users take)
  torch2-fp32  PyTorch 2.x torch.compile (Inductor, freezing on)
  torch2-int8  PyTorch 2.x PT2E: X86InductorQuantizer, prepare_pt2e / convert_pt2e, torch.compile (the path
               PyTorch recommends on x86)
  torch113-int8 PyTorch 1.13 FX int8, onednn engine (Debian's python3-torch, from `tools/setup.sh --golden`;
               run in a worker process under /usr/bin/python3, skipped when it is missing)
  qfx-fp32     `qfx bench --model M`
  qfx-int8     `qfx quantize --qconfig x86`, then `qfx bench M.qfx`

Weights are torchvision's random initialisation, qfx's its own (latency does not depend on their values).
Every peer measures `--iters` runs per round; rounds rotate the order of the peers (ABC, CBA, ...) so that a
slow phase of a shared machine falls on all of them, and each figure is the median of the round medians.
Batch 1 prints ms, larger batches images/s; ratios are qfx's time over the peer's (below 1: qfx faster).

  tools/setup.sh && bazel build -c opt //tools:qfx
  python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch torchvision torchao onnx onnxruntime onnxscript
  /tmp/peers/bin/python tools/bench_vs_peers.py --models resnet18,mobilenet_v2 --batches 1 --threads 2

`--json F` also writes every figure; `--baseline OTHER_QFX` adds another qfx binary (before / after a change).
"""
import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small"]
PEERS = ["ort-fp32", "ort-int8", "torch2-fp32", "torch2-int8", "torch113-int8", "qfx-fp32", "qfx-int8"]


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "").split()
                    isa = [i for i in ("avx2", "avx512f", "avx512_vnni", "amx_int8") if i in flags]
                    return f"{name} ({', '.join(isa)})"
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def images(batch, seed):
    return np.random.RandomState(seed).randn(batch, 3, 224, 224).astype(np.float32)


def timed(fn, iters):
    """Median ms of `iters` calls of fn (after two warm-up calls)."""
    fn()
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


class TorchPeers:
    """Everything that runs in this process: ONNX Runtime and PyTorch 2.x."""

    def __init__(self, name, batch, threads, workdir):
        import torch
        import torchvision
        torch.manual_seed(0)
        torch.set_num_threads(threads)
        self.torch, self.batch, self.threads = torch, batch, threads
        self.model = getattr(torchvision.models, name)().eval()
        self.x = torch.from_numpy(images(batch, 1))
        self.onnx = os.path.join(workdir, f"{name}.onnx")
        self.onnx_int8 = os.path.join(workdir, f"{name}.int8.onnx")
        self.name = name

    def _export_onnx(self):
        if os.path.exists(self.onnx):
            return
        self.torch.onnx.export(self.model, (self.x[:1],), self.onnx, input_names=["x"], output_names=["y"],
                               dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)

    def _ort_session(self, path):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        x = self.x.numpy()
        return lambda: sess.run(None, {"x": x})

    def ort_fp32(self):
        self._export_onnx()
        return self._ort_session(self.onnx)

    def ort_int8(self):
        from onnxruntime import quantization as oq
        self._export_onnx()
        if not os.path.exists(self.onnx_int8):
            class Reader(oq.CalibrationDataReader):
                def __init__(self):
                    self.rows = iter([{"x": images(1, 100 + i)} for i in range(8)])

                def get_next(self):
                    return next(self.rows, None)

            pre = self.onnx + ".pre.onnx"
            oq.quant_pre_process(self.onnx, pre)
            oq.quantize_static(pre, self.onnx_int8, Reader(), quant_format=oq.QuantFormat.QDQ, per_channel=True,
                               activation_type=oq.QuantType.QUInt8, weight_type=oq.QuantType.QInt8)
        return self._ort_session(self.onnx_int8)

    def _compiled(self, module):
        import torch._inductor.config as ic
        ic.freezing = True
        compiled = self.torch.compile(module)
        x = self.x

        def run():
            with self.torch.no_grad():
                compiled(x)
        run()  # compiles now, so that a failure skips the peer here rather than stopping the run
        return run

    def torch2_fp32(self):
        return self._compiled(copy.deepcopy(self.model))

    def torch2_int8(self):
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        torch = self.torch
        # strict: the non-strict export of torch 2.15 gives source partitions X86InductorQuantizer refuses
        exported = torch.export.export(copy.deepcopy(self.model), (self.x,), strict=True).module()
        quantizer = xiq.X86InductorQuantizer()
        quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
        prepared = prepare_pt2e(exported, quantizer)
        with torch.no_grad():
            for i in range(2):
                prepared(torch.from_numpy(images(self.batch, 100 + i)))
        return self._compiled(convert_pt2e(prepared))


class Torch113Worker:
    """PyTorch 1.13 FX int8 (onednn) in a /usr/bin/python3 worker: `run N` on stdin, a median ms back."""

    def __init__(self, name, batch, threads):
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.abspath(__file__), "--worker", name, "--batch",
                                      str(batch), "--threads", str(threads)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().strip()
        if ready != "ready":
            raise RuntimeError(f"PyTorch 1.13 worker did not start ({ready!r})")

    def measure(self, iters):
        self.proc.stdin.write(f"run {iters}\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def torch113_worker(name, batch, threads):
    import torch
    import torchvision
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    torch.set_num_threads(threads)
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)().eval()
    x = torch.from_numpy(images(batch, 1))
    prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("onednn"), (x,))
    with torch.no_grad():
        for i in range(2):
            prepared(torch.from_numpy(images(batch, 100 + i)))
        quantized = convert_fx(prepared)
        print("ready", flush=True)
        for line in sys.stdin:
            iters = int(line.split()[1])
            print(timed(lambda: quantized(x), iters), flush=True)


def qfx_bench(qfx, target, batch, threads, iters):
    which = [target] if target.endswith(".qfx") else ["--model", target]
    out = subprocess.run([qfx, "bench", *which, "--shape", f"{batch},3,224,224", "--threads", str(threads), "--iters",
                          str(iters), "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["median_ms"]


def qfx_quantize(qfx, name, workdir):
    calib = os.path.join(workdir, "calib.npy")
    np.save(calib, images(8, 100))
    out = os.path.join(workdir, f"{name}.qfx")
    if not os.path.exists(out):
        subprocess.run([qfx, "quantize", "--model", name, "--qconfig", "x86", "--calib", calib, "--batch", "4",
                        "--out", out], check=True, capture_output=True, text=True)
    return out


def measurers(args, name, batch, threads, workdir, notes):
    """Peer name -> a function of iters returning median ms, for the peers asked for and available."""
    out, closers = {}, []
    wanted = args.peers.split(",")
    qfx_file = None
    if "qfx-int8" in wanted or args.baseline:
        qfx_file = qfx_quantize(args.qfx, name, workdir)
    torch_peers = None
    for peer in wanted:
        try:
            if peer.startswith(("ort-", "torch2-")):
                torch_peers = torch_peers or TorchPeers(name, batch, threads, workdir)
                fn = getattr(torch_peers, peer.replace("-", "_"))()
                out[peer] = lambda iters, fn=fn: timed(fn, iters)
            elif peer == "torch113-int8":
                worker = Torch113Worker(name, batch, threads)
                closers.append(worker.close)
                out[peer] = worker.measure
            elif peer == "qfx-fp32":
                out[peer] = lambda iters: qfx_bench(args.qfx, name, batch, threads, iters)
            elif peer == "qfx-int8":
                out[peer] = lambda iters: qfx_bench(args.qfx, qfx_file, batch, threads, iters)
            else:
                raise SystemExit(f"--peers: unknown peer {peer!r} (known: {', '.join(PEERS)})")
        except (ImportError, RuntimeError, ValueError, OSError, subprocess.CalledProcessError) as e:
            notes.append(f"{peer} skipped for {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    if args.baseline:
        out["qfx-int8-baseline"] = lambda iters: qfx_bench(args.baseline, qfx_file, batch, threads, iters)
    return out, closers


def rotating_medians(fns, iters, rounds):
    """Median over rounds of each peer's median; round r runs the peers in order rotated by r, reversed
    every other round."""
    names = list(fns)
    results = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        if r % 2:
            order.reverse()
        for n in order:
            results[n].append(fns[n](iters))
    return {n: statistics.median(v) for n, v in results.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--iters", type=int, default=20, help="runs per peer per round at batch 1 (fewer at larger)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--qfx", default=os.path.join(ROOT, "bazel-bin", "tools", "qfx"))
    ap.add_argument("--baseline", help="another qfx binary, timed on the same int8 .qfx files")
    ap.add_argument("--json", help="write all figures to this file")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return torch113_worker(args.worker, args.batch, int(args.threads))
    if not os.path.exists(args.qfx):
        raise SystemExit(f"{args.qfx} not found: run `bazel build -c opt //tools:qfx` first")
    print(f"CPU: {cpu_name()}; {args.rounds} rounds, peers rotating; medians of round medians")
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models.split(","):
            for batch in map(int, args.batches.split(",")):
                for threads in map(int, args.threads.split(",")):
                    fns, closers = measurers(args, name, batch, threads, workdir, notes)
                    iters = max(3, args.iters // batch) if batch > 1 else args.iters
                    ms = rotating_medians(fns, iters, args.rounds)
                    for close in closers:
                        close()
                    rows.append({"model": name, "batch": batch, "threads": threads, "ms": ms})
                    print_row(rows[-1])
    for n in notes:
        print("note:", n)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_name(), "rows": rows, "notes": notes}, f, indent=1)


def print_row(row):
    ms, batch = row["ms"], row["batch"]
    unit = "ms" if batch == 1 else "img/s"
    fig = {p: (v if batch == 1 else batch * 1e3 / v) for p, v in ms.items()}
    cells = "  ".join(f"{p} {fig[p]:.2f}" if batch == 1 else f"{p} {fig[p]:.1f}" for p in ms)
    print(f"{row['model']} batch {batch} threads {row['threads']} ({unit}): {cells}")
    ratios = []
    for mine, peers in (("qfx-int8", ("ort-int8", "torch2-int8", "torch113-int8", "qfx-int8-baseline")),
                        ("qfx-fp32", ("ort-fp32", "torch2-fp32"))):
        if mine in ms:
            ratios += [f"{mine}/{p} {ms[mine] / ms[p]:.2f}x" for p in peers if p in ms]
    if ratios:
        print("    time ratios: " + ", ".join(ratios), flush=True)


if __name__ == "__main__":
    main()
