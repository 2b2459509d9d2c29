#!/usr/bin/env python3
"""Writes qfx's PT2E golden fixtures into tests/data/pt2e/ from PyTorch 2.x's own PT2E flow.

PyTorch 2.x is not a Debian package: run it from a virtual environment (PyPI torch, torchvision, torchao for
prepare_pt2e / convert_pt2e / X86InductorQuantizer, and executorch for XNNPACKQuantizer, which moved there):
  python3 -m venv /tmp/pt2 && /tmp/pt2/bin/pip install torch torchvision torchao numpy
  /tmp/pt2/bin/pip install --no-deps executorch && /tmp/pt2/bin/pip install ruamel.yaml flatbuffers tabulate
  /tmp/pt2/bin/python tools/gen_golden_pt2e.py [--out tests/data]

For each model (mnist_cnn, resnet18, mobilenet_v2 with tools/gen_golden.py's hash weights) and quantizer
(xnnpack: XNNPACKQuantizer with get_symmetric_quantization_config(is_per_channel=True); x86_inductor:
X86InductorQuantizer with get_default_x86_inductor_quantization_config()), pt2e/<model>_<quantizer>.json has
  exported   [op, target, name] of every node of torch.export.export(model, (x,)).module()
  observers  per activation_post_process node of prepare_pt2e, in graph order: the observed node's key and
             its users' keys, and after calibrating on hash_uniform("calib") its dtype, quant range, scales
             and zero points. A key names a node across frameworks: "in" (the input), "out" (the output), a
             parameter's dotted path, or "<op>#<k>": the k-th call of op in the exported graph.
(X86InductorQuantizer refuses mnist_cnn, which calls one ReLU module twice: "Input partition has more than
one output node"; that case has no fixture) and pt2e/<model>_<quantizer>.safetensors holds "input" (hash_uniform("test")), "fp32" and "reference" (the
convert_pt2e Q/DQ model's output on it). pt2e/observers_pt2.json: PyTorch 2.x's HistogramObserver after each
batch of tools/gen_golden.py's observer input series.
"""
import argparse
import importlib.util
import json
import os

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("gen_golden", os.path.join(HERE, "gen_golden.py"))
gg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gg)

# PyTorch's aten ops by qfx's op names (in-place forms and decompositions included).
OPS = {
    "aten.conv2d.default": "conv2d",
    "aten.linear.default": "linear",
    "aten.batch_norm.default": "batch_norm",
    "aten._native_batch_norm_legit_no_training.default": "batch_norm",
    "aten.relu.default": "relu",
    "aten.relu_.default": "relu",
    "aten.hardtanh.default": "hardtanh",
    "aten.hardtanh_.default": "hardtanh",
    "aten.add.Tensor": "add",
    "aten.add_.Tensor": "add",
    "aten.max_pool2d.default": "max_pool2d",
    "aten.adaptive_avg_pool2d.default": "adaptive_avg_pool2d",
    "aten.flatten.using_ints": "flatten",
    "aten.dropout.default": "dropout",
    "aten.dropout_.default": "dropout",
    "aten.mean.dim": "mean",
    "aten.cat.default": "cat",
}

CASES = [("mnist_cnn", [3, 1, 28, 28]), ("resnet18", [2, 3, 64, 64]), ("mobilenet_v2", [2, 3, 64, 64])]


def quantizer_for(name):
    if name == "xnnpack":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer, get_symmetric_quantization_config)
        return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
    return xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())


def node_keys(gm):
    """Key per node name of the exported graph (see the banner)."""
    keys, count = {}, {}
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            keys[n.name] = "in"
        elif n.op == "output":
            keys[n.name] = "out"
        elif n.op == "get_attr":
            keys[n.name] = str(n.target)
        elif n.op == "call_function":
            op = OPS.get(str(n.target), str(n.target))
            keys[n.name] = f"{op}#{count.get(op, 0)}"
            count[op] = count.get(op, 0) + 1
    return keys


def observer_record(prepared, n, keys):
    obs = getattr(prepared, n.target)
    src = n.args[0]
    rec = {"input": keys.get(src.name, src.name), "users": [keys.get(u.name, u.name) for u in n.users]}
    scale, zp = obs.calculate_qparams()
    rec.update({"dtype": str(obs.dtype).replace("torch.", ""), "quant_min": int(obs.quant_min),
                "quant_max": int(obs.quant_max), "scale": [float(s) for s in scale.flatten()],
                "zero_point": [int(z) for z in zp.flatten()]})
    return rec


def users_through_observers(n):
    """The non-observer users of an observer chain (observers may follow observers)."""
    out = []
    for u in n.users:
        if u.op == "call_module" and str(u.target).startswith("activation_post_process_"):
            out += users_through_observers(u)
        else:
            out.append(u)
    return out


def write_case(out, name, shape, qname):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    torch.manual_seed(0)
    model = gg.ZOO[name][0]().eval()
    gg.hash_init(model)
    numel = int(np.prod(shape))
    calib = torch.from_numpy(gg.hash_uniform("calib", numel, -1.0, 1.0)).reshape(shape)
    x = torch.from_numpy(gg.hash_uniform("test", numel, -1.0, 1.0)).reshape(shape)
    with torch.no_grad():
        fp32 = model(x)
    exported = torch.export.export(model, (calib,)).module()
    keys = node_keys(exported)
    sequence = [[n.op, str(n.target), n.name] for n in exported.graph.nodes]
    prepared = prepare_pt2e(exported, quantizer_for(qname))
    with torch.no_grad():
        prepared(calib)
    observers = []
    for n in prepared.graph.nodes:
        if n.op == "call_module" and str(n.target).startswith("activation_post_process_"):
            rec = observer_record(prepared, n, keys)
            rec["users"] = [keys.get(u.name, u.name) for u in users_through_observers(n)]
            observers.append(rec)
    converted = convert_pt2e(prepared)
    with torch.no_grad():
        reference = converted(x)
    base = os.path.join(out, "pt2e", f"{name}_{qname}")
    with open(base + ".json", "w") as f:
        json.dump({"model": name, "quantizer": qname, "torch": torch.__version__, "shape": shape,
                   "exported": sequence, "observers": observers}, f, indent=0)
    gg.write_safetensors(base + ".safetensors", [("input", x), ("fp32", fp32), ("reference", reference)])
    print(f"{base}: {len(sequence)} nodes, {len(observers)} observers")


HISTOGRAM_CONFIGS = [
    ("quint8", {"dtype": "quint8", "qscheme": "per_tensor_affine"}),
    ("qint8_eps", {"dtype": "qint8", "qscheme": "per_tensor_affine", "quant_min": -128, "quant_max": 127,
                   "eps": 2.0 ** -12}),
    ("qint8_symmetric", {"dtype": "qint8", "qscheme": "per_tensor_symmetric"}),
]


def write_histogram_fixture(out):
    """pt2e/observers_pt2.json: torchao's HistogramObserver (PyTorch 2.x's) on tools/gen_golden.py's input
    series, in quant/observers.json's format (qparams after each batch), kind histogram_pt2."""
    from torchao.quantization.pt2e.observer import HistogramObserver
    cases = []
    for in_name, batches in gg.observer_inputs():
        if in_name == "const_channel":
            continue
        case = {"name": in_name, "shape": list(batches[0].shape),
                "batches": [[float(v) for v in b.flatten()] for b in batches], "observers": []}
        for ob_name, kw in HISTOGRAM_CONFIGS:
            args = dict(kw)
            args["dtype"] = getattr(torch, kw["dtype"])
            args["qscheme"] = getattr(torch, kw["qscheme"])
            obs = HistogramObserver(**args)
            after = []
            for b in batches:
                obs(b)
                scale, zp = obs.calculate_qparams()
                after.append({"scale": [float(v) for v in scale.flatten()],
                              "zero_point": [int(v) for v in zp.flatten()]})
            case["observers"].append({"name": ob_name, "kind": "histogram_pt2", "args": kw, "after": after})
        cases.append(case)
    with open(os.path.join(out, "pt2e", "observers_pt2.json"), "w") as f:
        json.dump(cases, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "data"))
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "pt2e"), exist_ok=True)
    write_histogram_fixture(args.out)
    for name, shape in CASES:
        for qname in ["xnnpack", "x86_inductor"]:
            try:
                write_case(args.out, name, shape, qname)
            except ValueError as e:  # mnist_cnn calls one ReLU module twice: X86InductorQuantizer refuses it
                print(f"{name} {qname}: PyTorch fails: {e} (no fixture)")


if __name__ == "__main__":
    main()
