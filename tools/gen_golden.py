#!/usr/bin/python3
"""Writes qfx's golden test fixtures into tests/data/ from PyTorch 1.13 and torchvision 0.14.

Run by hand with Debian's python (`tools/setup.sh --golden` installs python3-torch and
python3-torchvision):  /usr/bin/python3 tools/gen_golden.py [--out tests/data]

Fixtures (all safetensors, written by the small writer below; PyTorch is never a qfx dependency):
  modules/<case>.safetensors  one nn module (or functional op) case: "input", "output" (and "input2" for
                              binary ops), the module's state_dict under "module.<key>", and for batch
                              norm in train mode the running statistics after the step. Metadata
                              "config" describes the case.
  models/<name>.safetensors   a zoo model with deterministic "hash" weights (see HashInit, mirrored in
                              tests/testing/golden.cc): "input" and PyTorch's "output"; metadata
                              "state_dict" lists PyTorch's own state_dict keys, dtypes and shapes in order.
  fx/<name>.json              torch.fx.symbolic_trace's node sequence for each zoo model: [opcode,
                              qualified target, node name] per node.
  quant/observers.json        every observer kind on skewed / positive / negative / constant / zero / tiny /
                              huge / growing / per-channel-constant inputs: PyTorch's scale and zero point
                              after each batch.
  quant/prepare_<model>_<preset>.json   PyTorch prepare_fx's observer placement and calibrated qparams for
                              mnist_cnn, resnet18, mobilenet_v2, mobilenet_v3_small, regnet_x_400mf, efficientnet_b0,
                              inception_v3 under qnnpack and x86.
  quant/prepare_qat_<model>_<preset>.json  prepare_qat_fx's fake-quant placement and module types; for
                              mnist_cnn the output of the second train-mode forward.
  mnist/                       a mnist_cnn trained by PyTorch on real MNIST (tools/fetch_mnist.sh), 200
                              calibration and 400 test images, and PyTorch's fp32 and FX int8 logits on them.
  quant/eager_<model>_<engine>.json  PyTorch eager-mode prepare / convert (stub_cnn, quantizable_resnet18, quantizable_mobilenet_v2;
                              onednn, qnnpack): observed modules, qparams, float and int8 outputs; and
                              eager_qat_stub_cnn_<engine>.json for prepare_qat;
                              eager_qat_steps.safetensors: 3 SGD steps of eager QAT.
  quant/resnet18_int8.safetensors  resnet18 (hash weights) fp32 and PyTorch FX int8 outputs (qnnpack, onednn).
  quant/<model>_int8.safetensors  the same for the zoo models of the coverage issue (regnet_x_400mf, efficientnet_b0, inception_v3).
  models/mnist_cnn_state_dict.safetensors  a PyTorch-initialised mnist_cnn state_dict exactly as PyTorch
                              exports it, with "__input__"/"__output__" to check the loaded model.
"""
import argparse
import copy
import json
import os
import struct
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.fx
import torchvision

DTYPES = {torch.float32: "F32", torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8"}


def write_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer: tensors is a list of (name, torch.Tensor)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors:
        t = t.detach().contiguous().cpu()
        data = t.numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def fnv1a32(s):
    h = 2166136261
    for c in s.encode():
        h = ((h ^ c) * 16777619) % 2**32
    return h


def hash_uniform(key, n, lo, hi):
    """Element i of tensor `key`: lo + (hi - lo) * u_i, u_i = ((i+1)*2654435761 + fnv1a32(key)) mod 2^32 / 2^32."""
    i = np.arange(n, dtype=np.uint64)
    u = ((i + np.uint64(1)) * np.uint64(2654435761) + np.uint64(fnv1a32(key))) % np.uint64(2**32)
    v = u.astype(np.float64) / float(2**32)
    return (lo + (hi - lo) * v).astype(np.float32)


def hash_range(key, shape):
    """The (lo, hi) range HashInit uses for a state_dict entry (must match tests/testing/golden.cc)."""
    if key.endswith("running_var"):
        return 0.5, 1.5
    if key.endswith("running_mean") or key.endswith("bias"):
        return -0.1, 0.1
    if len(shape) == 1:  # batch-norm weight
        return 0.5, 1.0
    fan_in = int(np.prod(shape[1:]))
    b = float(np.sqrt(6.0 / fan_in))
    return -b, b


def hash_init(model):
    sd = model.state_dict()
    for key, t in sd.items():
        if t.dtype != torch.float32:
            continue
        lo, hi = hash_range(key, list(t.shape))
        t.copy_(torch.from_numpy(hash_uniform(key, t.numel(), lo, hi)).reshape(t.shape))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 256)
        self.fc2 = nn.Linear(256, 128)
        self.fc3 = nn.Linear(128, 10)
        self.relu = nn.ReLU()

    def forward(self, x):
        x = self.relu(self.fc1(torch.flatten(x, 1)))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


class MnistCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(self.relu(self.bn1(self.conv1(x))))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def vit_fmnist():
    """qfx's vit_fmnist: torchvision's VisionTransformer at image 28, patch 7, 4 layers, 4 heads, hidden 64, MLP 128,
    10 classes, with a one-channel conv_proj (torchvision's always takes 3)."""
    m = torchvision.models.VisionTransformer(image_size=28, patch_size=7, num_layers=4, num_heads=4, hidden_dim=64,
                                             mlp_dim=128, num_classes=10)
    m.conv_proj = nn.Conv2d(1, 64, kernel_size=7, stride=7)
    return m


ZOO = {
    "resnet18": (lambda: torchvision.models.resnet18(), [2, 3, 64, 64]),
    "resnet50": (lambda: torchvision.models.resnet50(), [1, 3, 64, 64]),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(), [2, 3, 64, 64]),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(), [2, 3, 64, 64]),
    "shufflenet_v2_x1_0": (lambda: torchvision.models.shufflenet_v2_x1_0(), [2, 3, 64, 64]),
    "regnet_x_400mf": (lambda: torchvision.models.regnet_x_400mf(), [2, 3, 64, 64]),
    "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(), [2, 3, 64, 64]),
    "inception_v3": (lambda: torchvision.models.inception_v3(init_weights=False), [2, 3, 75, 75]),
    "vit_b_16": (lambda: torchvision.models.vit_b_16(), [1, 3, 224, 224]),
    "vit_fmnist": (vit_fmnist, [3, 1, 28, 28]),
    "mlp": (Mlp, [3, 1, 28, 28]),
    "mnist_cnn": (MnistCnn, [3, 1, 28, 28]),
}


def module_cases():
    """(name, module or None, inputs, functional) for every module and functional-op fixture."""
    torch.manual_seed(0)  # module initialisation draws from the global generator
    g = torch.Generator().manual_seed(0)

    def rand(*shape, scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    bn_train = nn.BatchNorm2d(6)
    bn_eval = nn.BatchNorm2d(6)
    bn1d = nn.BatchNorm1d(5)
    for bn in (bn_train, bn_eval, bn1d):
        bn.weight.data = rand(bn.num_features) * 0.3 + 1
        bn.bias.data = rand(bn.num_features) * 0.2
        bn.running_mean.data = rand(bn.num_features) * 0.5
        bn.running_var.data = rand(bn.num_features).abs() + 0.5
        bn.num_batches_tracked.fill_(3)
    bn_eval.eval()
    bn1d.eval()
    act_in = rand(2, 5, 4, 3, scale=4.0)
    return [
        ("conv2d_basic", nn.Conv2d(3, 8, 3, padding=1), [rand(2, 3, 9, 9)]),
        ("conv2d_stride_dilation", nn.Conv2d(4, 6, 3, stride=2, padding=2, dilation=2, bias=False), [rand(1, 4, 11, 10)]),
        ("conv2d_groups", nn.Conv2d(8, 12, 3, padding=1, groups=4), [rand(2, 8, 7, 7)]),
        ("conv2d_depthwise", nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), [rand(1, 8, 10, 10)]),
        ("conv2d_depthwise_mult", nn.Conv2d(4, 8, 5, padding=2, groups=4), [rand(1, 4, 9, 9)]),
        ("conv2d_1x1", nn.Conv2d(16, 24, 1), [rand(1, 16, 5, 5)]),
        ("conv2d_large", nn.Conv2d(32, 40, 3, padding=1), [rand(1, 32, 20, 19)]),
        ("linear", nn.Linear(20, 7), [rand(3, 20)]),
        ("linear_nobias_3d", nn.Linear(5, 4, bias=False), [rand(2, 3, 5)]),
        ("batchnorm2d_eval", bn_eval, [rand(2, 6, 4, 4)]),
        ("batchnorm2d_train", bn_train, [rand(4, 6, 3, 3)]),
        ("batchnorm1d_eval", bn1d, [rand(4, 5)]),
        ("relu", nn.ReLU(), [act_in]),
        ("relu6", nn.ReLU6(), [act_in]),
        ("hardtanh", nn.Hardtanh(-2.0, 1.5), [act_in]),
        ("hardswish", nn.Hardswish(), [act_in]),
        ("hardsigmoid", nn.Hardsigmoid(), [act_in]),
        ("sigmoid", nn.Sigmoid(), [act_in]),
        ("tanh", nn.Tanh(), [act_in]),
        ("silu", nn.SiLU(), [act_in]),
        ("softmax", nn.Softmax(dim=1), [act_in]),
        ("maxpool2d", nn.MaxPool2d(3, 2, 1), [rand(1, 3, 10, 10)]),
        ("maxpool2d_ceil", nn.MaxPool2d(2, 2, ceil_mode=True), [rand(1, 2, 7, 7)]),
        ("avgpool2d", nn.AvgPool2d(3, 2, 1), [rand(1, 3, 10, 10)]),
        ("avgpool2d_ceil_nopad", nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), [rand(1, 2, 8, 8)]),
        ("adaptive_avg_pool2d", nn.AdaptiveAvgPool2d((3, 2)), [rand(1, 2, 7, 5)]),
        ("adaptive_avg_pool2d_1", nn.AdaptiveAvgPool2d(1), [rand(2, 3, 5, 6)]),
        ("flatten", nn.Flatten(), [rand(2, 3, 4, 5)]),
        ("dropout_eval", nn.Dropout(0.5).eval(), [rand(2, 3)]),
        ("identity", nn.Identity(), [rand(2, 3)]),
        ("f_add_broadcast", torch.add, [rand(2, 3, 4, 1), rand(3, 1, 5)]),
        ("f_mul_broadcast", torch.mul, [rand(2, 3, 4, 5), rand(2, 3, 1, 1)]),
        ("f_cat_dim1", lambda a, b: torch.cat([a, b], 1), [rand(2, 3, 4), rand(2, 5, 4)]),
        ("f_mean_23_keepdim", lambda a: a.mean((2, 3), keepdim=True), [rand(2, 3, 4, 5)]),
        ("f_mean_1", lambda a: a.mean(1), [rand(2, 3, 4)]),
        ("f_softmax_last", lambda a: F.softmax(a, -1), [rand(3, 7, scale=3.0)]),
        ("f_flatten_1", lambda a: torch.flatten(a, 1), [rand(2, 3, 2, 2)]),
        # Non-square kernels, strides, padding and dilation (after the others: their draws come last).
        ("conv2d_1x7", nn.Conv2d(6, 8, (1, 7), padding=(0, 3)), [rand(2, 6, 9, 11)]),
        ("conv2d_7x1_stride", nn.Conv2d(4, 6, (7, 1), stride=(2, 1), padding=(3, 0)), [rand(1, 4, 13, 8)]),
        ("conv2d_3x2_dilation_groups", nn.Conv2d(4, 8, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2),
         [rand(1, 4, 10, 12)]),
        ("conv2d_depthwise_1x5", nn.Conv2d(6, 6, (1, 5), stride=(1, 2), padding=(0, 2), groups=6), [rand(1, 6, 7, 40)]),
        ("maxpool2d_3x2", nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)), [rand(1, 3, 11, 10)]),
        ("avgpool2d_2x3", nn.AvgPool2d((2, 3), stride=(1, 2), padding=(1, 1), count_include_pad=False),
         [rand(1, 3, 9, 10)]),
        ("upsample_nearest_2x", nn.Upsample(scale_factor=2, mode="nearest"), [rand(1, 2, 5, 4)]),
        ("upsample_nearest_size", nn.Upsample(size=(7, 5), mode="nearest"), [rand(1, 2, 4, 3)]),
        ("upsample_bilinear_1_5", nn.Upsample(scale_factor=1.5, mode="bilinear"), [rand(1, 2, 5, 6)]),
        ("upsample_bilinear_align", nn.Upsample(size=(9, 7), mode="bilinear", align_corners=True), [rand(2, 3, 4, 5)]),
        ("conv_transpose2d_basic", nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), [rand(2, 4, 5, 4)]),
        ("conv_transpose2d_groups", nn.ConvTranspose2d(4, 8, (2, 3), stride=(2, 1), padding=(0, 1), groups=2, bias=False,
                                                       dilation=(1, 2)), [rand(1, 4, 4, 5)]),
    ]


def write_module_cases(out):
    os.makedirs(os.path.join(out, "modules"), exist_ok=True)
    for name, mod, inputs in module_cases():
        before = []
        if isinstance(mod, nn.Module):
            before = [("module." + k, v.clone()) for k, v in mod.state_dict().items()]
        with torch.no_grad():
            y = mod(*inputs)
        tensors = [("input", inputs[0])] + ([("input2", inputs[1])] if len(inputs) > 1 else [])
        tensors.append(("output", y))
        tensors += before
        if name == "batchnorm2d_train":
            tensors += [("running_mean_after", mod.running_mean), ("running_var_after", mod.running_var)]
        config = repr(mod) if isinstance(mod, nn.Module) else name
        write_safetensors(os.path.join(out, "modules", name + ".safetensors"), tensors, {"config": config})


def write_models(out):
    os.makedirs(os.path.join(out, "models"), exist_ok=True)
    for name, (make, shape) in ZOO.items():
        torch.manual_seed(0)
        model = make().eval()
        hash_init(model)
        x = torch.from_numpy(hash_uniform("input", int(np.prod(shape)), -1.0, 1.0)).reshape(shape)
        with torch.no_grad():
            y = model(x)
        keys = [[k, DTYPES[v.dtype], list(v.shape)] for k, v in model.state_dict().items()]
        write_safetensors(os.path.join(out, "models", name + ".safetensors"), [("input", x), ("output", y)],
                          {"state_dict": json.dumps(keys), "input": "hash_uniform('input', n, -1, 1)"})
    torch.manual_seed(0)
    model = MnistCnn().eval()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x)
    tensors = list(model.state_dict().items()) + [("__input__", x), ("__output__", y)]
    write_safetensors(os.path.join(out, "models", "mnist_cnn_state_dict.safetensors"), tensors,
                      {"format": "pt", "note": "torch.manual_seed(0); MnistCnn() state_dict"})


# Zoo models whose qfx graph differs from torch.fx's by design: shufflenet's chunk traces to narrow nodes
# (torch.export's decomposition) and its channel_shuffle to the channel_shuffle op, not view / transpose.
# torch.fx cannot trace the vision transformers at all (`n, c, h, w = x.shape` in _process_input).
FX_DIFFERS = {"shufflenet_v2_x1_0", "vit_b_16", "vit_fmnist"}


def write_fx_sequences(out):
    """fx/<name>.json: torch.fx.symbolic_trace's node sequence [[opcode, qualified target, name], ...]."""
    from torch.fx.node import _get_qualified_name
    os.makedirs(os.path.join(out, "fx"), exist_ok=True)
    for name, (make, _) in ZOO.items():
        if name in FX_DIFFERS:
            continue
        gm = torch.fx.symbolic_trace(make().eval())
        seq = []
        for n in gm.graph.nodes:
            target = n.target if isinstance(n.target, str) else _get_qualified_name(n.target)
            seq.append([n.op, target, n.name])
        with open(os.path.join(out, "fx", name + ".json"), "w") as f:
            f.write("[\n" + ",\n".join(json.dumps(e) for e in seq) + "\n]\n")


OBSERVER_CONFIGS = [
    # (name, kind, kwargs) — kind names and keys as qfx's rule files spell them
    ("minmax_u8", "minmax", dict(dtype="quint8", qscheme="per_tensor_affine")),
    ("minmax_s8_sym", "minmax", dict(dtype="qint8", qscheme="per_tensor_symmetric")),
    ("minmax_u8_reduce", "minmax", dict(dtype="quint8", qscheme="per_tensor_affine", reduce_range=True)),
    ("minmax_u8_sym", "minmax", dict(dtype="quint8", qscheme="per_tensor_symmetric")),
    ("minmax_u4_custom", "minmax", dict(dtype="quint8", qscheme="per_tensor_affine", quant_min=0, quant_max=15)),
    ("minmax_s4_sym_custom", "minmax", dict(dtype="qint8", qscheme="per_tensor_symmetric", quant_min=-8, quant_max=7)),
    ("minmax_u8_sym_custom", "minmax", dict(dtype="quint8", qscheme="per_tensor_symmetric", quant_min=0, quant_max=100)),
    ("moving_avg_u8", "moving_average_minmax", dict(dtype="quint8", qscheme="per_tensor_affine")),
    ("moving_avg_u8_reduce", "moving_average_minmax", dict(dtype="quint8", qscheme="per_tensor_affine", reduce_range=True, averaging_constant=0.1)),
    ("per_channel_s8_sym", "per_channel_minmax", dict(dtype="qint8", qscheme="per_channel_symmetric", ch_axis=0)),
    ("per_channel_u8_affine_axis1", "per_channel_minmax", dict(dtype="quint8", qscheme="per_channel_affine", ch_axis=1)),
    ("moving_avg_per_channel_s8", "moving_average_per_channel_minmax", dict(dtype="qint8", qscheme="per_channel_symmetric", ch_axis=0)),
    ("histogram_u8_reduce", "histogram", dict(dtype="quint8", qscheme="per_tensor_affine", reduce_range=True)),
    ("histogram_u8", "histogram", dict(dtype="quint8", qscheme="per_tensor_affine")),
    ("histogram_s8_sym", "histogram", dict(dtype="qint8", qscheme="per_tensor_symmetric")),
]


def make_observer(kind, kw):
    from torch.ao.quantization import observer as O
    cls = {"minmax": O.MinMaxObserver, "moving_average_minmax": O.MovingAverageMinMaxObserver,
           "per_channel_minmax": O.PerChannelMinMaxObserver,
           "moving_average_per_channel_minmax": O.MovingAveragePerChannelMinMaxObserver,
           "histogram": O.HistogramObserver}[kind]
    args = dict(kw)
    args["dtype"] = getattr(torch, args["dtype"])
    args["qscheme"] = getattr(torch, args["qscheme"])
    return cls(**args)


def observer_inputs():
    """(name, [batch tensors]) covering skewed, positive, negative, constant, tiny, huge, growing, per-channel."""
    g = torch.Generator().manual_seed(3)
    shape = (4, 5, 16)

    def randn(scale=1.0):
        return torch.randn(*shape, generator=g) * scale

    const_channel = [randn() for _ in range(3)]
    for t in const_channel:
        t[2] = 3.0
    return [
        ("skewed", [torch.exp(randn()) - 0.5 for _ in range(3)]),
        ("positive", [torch.rand(*shape, generator=g) + 1.0 for _ in range(3)]),
        ("negative", [-(torch.rand(*shape, generator=g) * 2 + 0.25) for _ in range(3)]),
        ("constant", [torch.full(shape, 0.5) for _ in range(3)]),
        ("zeros", [torch.zeros(shape) for _ in range(2)]),
        ("tiny", [randn(1e-6) for _ in range(3)]),
        ("huge", [randn(1e4) for _ in range(3)]),
        ("growing", [randn(1.0 + 2.0 * i) + 0.3 * i for i in range(4)]),
        ("shrinking", [randn(3.0 / (1 + i)) for i in range(3)]),
        ("const_channel", const_channel),
    ]


def write_observer_fixture(out):
    """quant/observers.json: for each input series and observer config, PyTorch's qparams after each batch."""
    os.makedirs(os.path.join(out, "quant"), exist_ok=True)
    cases = []
    for in_name, batches in observer_inputs():
        case = {"name": in_name, "shape": list(batches[0].shape),
                "batches": [[float(v) for v in b.flatten()] for b in batches], "observers": []}
        for ob_name, kind, kw in OBSERVER_CONFIGS:
            obs = make_observer(kind, kw)
            after = []
            for b in batches:
                obs(b)
                scale, zp = obs.calculate_qparams()
                after.append({"scale": [float(v) for v in scale.flatten()], "zero_point": [int(v) for v in zp.flatten()]})
            case["observers"].append({"name": ob_name, "kind": kind, "args": kw, "after": after})
        cases.append(case)
    with open(os.path.join(out, "quant", "observers.json"), "w") as f:
        json.dump(cases, f)


def qconfig_mapping_for(preset):
    """A preset, or "minmax": qnnpack's mapping with MinMaxObserver activations (tests/data/quant/minmax.toml)."""
    from torch.ao.quantization import get_default_qconfig_mapping, QConfigMapping, QConfig
    from torch.ao.quantization.observer import MinMaxObserver, FixedQParamsObserver, ReuseInputObserver
    if preset != "minmax":
        return get_default_qconfig_mapping(preset)
    base = get_default_qconfig_mapping("qnnpack")
    mapping = QConfigMapping().set_global(QConfig(activation=MinMaxObserver.with_args(dtype=torch.quint8),
                                                  weight=base.global_qconfig.weight))
    for k, v in base.object_type_qconfigs.items():
        act = v.activation()
        if isinstance(act, (FixedQParamsObserver, ReuseInputObserver)):
            mapping.set_object_type(k, v)
    return mapping


PREPARE_CASES = [("mnist_cnn", [4, 1, 28, 28]), ("resnet18", [2, 3, 64, 64]), ("mobilenet_v2", [2, 3, 64, 64]),
                 ("mobilenet_v3_small", [2, 3, 64, 64]), ("regnet_x_400mf", [2, 3, 64, 64]),
                 ("efficientnet_b0", [2, 3, 64, 64]), ("inception_v3", [2, 3, 75, 75]), ("vit_fmnist", [4, 1, 28, 28])]
# Models whose torchvision forward torch.fx cannot trace: the same ops written traceably.
FX_TRACEABLE = {"vit_fmnist": lambda: vit_fmnist_fx_traceable()}


def write_prepare_fixture(out):
    """quant/prepare_<model>_<preset>.json: PyTorch prepare_fx's observer placement (the node each
    activation_post_process observes, in graph order) and, after calibrating on hash_uniform('calib') data,
    each observer's scale and zero point keyed by the observed node."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx
    os.makedirs(os.path.join(out, "quant"), exist_ok=True)
    for name, shape in PREPARE_CASES:
        for preset in ["qnnpack", "x86", "minmax"]:
            torch.manual_seed(0)
            model = FX_TRACEABLE.get(name, ZOO[name][0])().eval()
            hash_init(model)
            x = torch.from_numpy(hash_uniform("calib", int(np.prod(shape)), -1.0, 1.0)).reshape(shape)
            prepared = prepare_fx(model, qconfig_mapping_for(preset), (x,))
            observed, qparams = [], {}
            with torch.no_grad():
                prepared(x)
            for n in prepared.graph.nodes:
                if n.op == "call_module" and n.target.startswith("activation_post_process_"):
                    src = n.args[0].name
                    observed.append(src)
                    scale, zp = getattr(prepared, n.target).calculate_qparams()
                    qparams[src] = {"scale": float(scale.flatten()[0]), "zero_point": int(zp.flatten()[0])}
            with open(os.path.join(out, "quant", f"prepare_{name}_{preset}.json"), "w") as f:
                json.dump({"model": name, "preset": preset, "calib_shape": shape, "observed": observed,
                           "qparams": qparams}, f, indent=0)


def write_prepare_qat_fixture(out):
    """quant/prepare_qat_<model>_<preset>.json: prepare_qat_fx's fake-quant placement; for mnist_cnn also
    the prepared model's output on its second train-mode forward and the BN running stats after it."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx
    for name, shape in [("mnist_cnn", [4, 1, 28, 28]), ("resnet18", [2, 3, 64, 64])]:
        for preset in ["x86", "qnnpack"]:
            torch.manual_seed(0)
            model = ZOO[name][0]().eval()
            hash_init(model)
            model.train()
            x = torch.from_numpy(hash_uniform("calib", int(np.prod(shape)), -1.0, 1.0)).reshape(shape)
            prepared = prepare_qat_fx(model, get_default_qat_qconfig_mapping(preset), (x,))
            observed = [n.args[0].name for n in prepared.graph.nodes
                        if n.op == "call_module" and n.target.startswith("activation_post_process_")]
            record = {"model": name, "preset": preset + "_qat", "calib_shape": shape, "observed": observed,
                      "modules": {k: type(m).__name__ for k, m in prepared.named_modules() if k and "." not in k
                                  and not k.startswith("activation_post_process")}}
            if name == "mnist_cnn":
                with torch.no_grad():
                    prepared(x)
                    y = prepared(x * 0.5)
                record["output"] = [float(v) for v in y.flatten()]
                record["conv1_bn_running_mean"] = [float(v) for v in prepared.conv1.bn.running_mean]
            with open(os.path.join(out, "quant", f"prepare_qat_{name}_{preset}.json"), "w") as f:
                json.dump(record, f, indent=0)


def train_adam(model, x, y, epochs, lr=1e-3, batch=64):
    """Adam with cross-entropy over shuffled mini-batches (torch.randperm each epoch); seconds per epoch."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    seconds = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def write_mnist_fixture(out):
    """mnist/: a mnist_cnn trained with PyTorch on the fetch_mnist.sh train split (Adam 1e-3, batch 64, 3 epochs,
    seed 0), 200 calibration and 400 test images, and PyTorch FX int8 logits on those (qnnpack and onednn,
    default mappings, calibrated on the 200 images in batches of 50)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
    d = os.path.join(out, "mnist")
    os.makedirs(d, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "fetch_mnist.sh"), tmp], check=True)
        train_x = torch.from_numpy(np.load(os.path.join(tmp, "train_x.npy")))
        train_y = torch.from_numpy(np.load(os.path.join(tmp, "train_y.npy")))
        test_x = torch.from_numpy(np.load(os.path.join(tmp, "test_x.npy")))[:400]
        test_y = torch.from_numpy(np.load(os.path.join(tmp, "test_y.npy")))[:400]
    torch.manual_seed(0)
    model = MnistCnn()
    train_adam(model, train_x, train_y, epochs=3)
    model.eval()
    calib = train_x[:200]
    write_safetensors(os.path.join(d, "mnist_cnn_trained.safetensors"), list(model.state_dict().items()))
    np.save(os.path.join(d, "calib200_x.npy"), calib.numpy())
    np.save(os.path.join(d, "test400_x.npy"), test_x.numpy())
    np.save(os.path.join(d, "test400_y.npy"), test_y.numpy())
    tensors = []
    with torch.no_grad():
        tensors.append(("fp32", model(test_x)))
        for engine in ["qnnpack", "onednn"]:
            torch.backends.quantized.engine = engine
            prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(engine), (calib[:1],))
            for i in range(0, len(calib), 50):
                prepared(calib[i:i + 50])
            tensors.append((engine, convert_fx(prepared)(test_x)))
    write_safetensors(os.path.join(d, "torch_logits.safetensors"), tensors)
    for name, logits in tensors:
        print(f"mnist_cnn {name}: top-1 {float((logits.argmax(1) == test_y).float().mean()):.4f} on 400 test images")


def grad_cases():
    """(name, fn, inputs) for train/grads.safetensors: fn maps the input tensors to one output tensor."""
    def u(key, shape, lo=-1.0, hi=1.0):
        return torch.from_numpy(hash_uniform(key, int(np.prod(shape)), lo, hi)).reshape(shape)
    labels = torch.tensor([3, 0, 4, 1], dtype=torch.int64)
    return [
        ("conv2d", lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1), [u("cx", [2, 3, 7, 6]), u("cw", [4, 3, 3, 3]), u("cb", [4])]),
        ("conv2d_groups_dilation", lambda x, w: F.conv2d(x, w, None, padding=2, dilation=2, groups=2),
         [u("gx", [1, 4, 8, 7]), u("gw", [6, 2, 3, 3])]),
        ("conv2d_depthwise", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1, groups=4),
         [u("dx", [2, 4, 9, 9]), u("dw", [4, 1, 3, 3]), u("db", [4])]),
        ("linear", lambda x, w, b: F.linear(x, w, b), [u("lx", [3, 2, 5]), u("lw", [4, 5]), u("lb", [4])]),
        ("batch_norm_train", lambda x, w, b: F.batch_norm(x, None, None, w, b, True, 0.1, 1e-5),
         [u("bx", [3, 4, 3, 2], -2, 2), u("bw", [4], 0.5, 1.5), u("bb", [4])]),
        ("relu", F.relu, [u("a", [64], -4, 4)]),
        ("relu6", F.relu6, [u("a", [64], -2, 8)]),
        ("hardtanh", lambda x: F.hardtanh(x, -0.5, 0.7), [u("a", [64], -1, 1)]),
        ("hardswish", F.hardswish, [u("a", [64], -5, 5)]),
        ("hardsigmoid", F.hardsigmoid, [u("a", [64], -5, 5)]),
        ("sigmoid", torch.sigmoid, [u("a", [64], -5, 5)]),
        ("tanh", torch.tanh, [u("a", [64], -3, 3)]),
        ("silu", F.silu, [u("a", [64], -5, 5)]),
        ("softmax", lambda x: F.softmax(x, 1), [u("s", [2, 5, 3], -2, 2)]),
        ("max_pool2d", lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [u("m", [2, 2, 7, 6])]),
        ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [u("p", [1, 3, 7, 6])]),
        ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [u("q", [2, 2, 7, 5])]),
        ("add_broadcast", lambda a, b: a + b, [u("aa", [2, 3, 4, 4]), u("ab", [1, 3, 1, 1])]),
        ("mul_broadcast", lambda a, b: a * b, [u("ma", [2, 3, 4, 4]), u("mb", [2, 3, 1, 1])]),
        ("cat", lambda a, b: torch.cat([a, b], 1), [u("ca", [2, 3, 2]), u("cb2", [2, 1, 2])]),
        ("mean_23", lambda x: x.mean([2, 3], keepdim=True), [u("me", [2, 3, 4, 2])]),
        ("cross_entropy", lambda x: F.cross_entropy(x, labels).reshape(1), [u("ce", [4, 5], -3, 3)]),
    ]


def grad_case_tensors(cases):
    """For each (name, fn, inputs): the inputs (`name/in<i>`), the output, the weights r of the loss mean(out * r)
    and the gradient of that loss for each input (`name/grad<i>`)."""
    tensors = []
    for name, fn, inputs in cases:
        xs = [t.clone().requires_grad_(True) for t in inputs]
        y = fn(*xs)
        r = torch.from_numpy(hash_uniform(name + "/r", y.numel(), -1.0, 1.0)).reshape(y.shape)
        (y * r).mean().backward()
        for i, x in enumerate(xs):
            tensors += [(f"{name}/in{i}", inputs[i]), (f"{name}/grad{i}", x.grad)]
        tensors += [(f"{name}/out", y.detach()), (f"{name}/r", r)]
    return tensors


def write_grad_fixture(out):
    """train/grads.safetensors: for each case of grad_cases(), the inputs (`case/in<i>`), the output, the weights r
    of the loss mean(out * r) and the gradient of that loss for each input (`case/grad<i>`); then mnist_cnn with hash
    weights in train mode (batch norm on batch statistics) and the same after prepare_qat_fx (x86): the gradient of
    cross_entropy(model(x), y) for every parameter (`mnist_cnn/grad/<name>`, `qat_mnist_cnn/grad/<name>`), and the
    parameters after 3 Adam and 3 SGD (momentum 0.9, weight decay 1e-4) steps on fixed batches (fc1.weight: its first
    8 rows)."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx
    d = os.path.join(out, "train")
    os.makedirs(d, exist_ok=True)
    tensors = grad_case_tensors(grad_cases())
    x = torch.from_numpy(hash_uniform("train_x", 8 * 784, 0.0, 1.0)).reshape(8, 1, 28, 28)
    y = torch.tensor([i * 7 % 10 for i in range(8)], dtype=torch.int64)
    tensors += [("batch/x", x), ("batch/y", y)]
    for prefix, qat in [("mnist_cnn", False), ("qat_mnist_cnn", True)]:
        torch.manual_seed(0)
        model = MnistCnn()
        hash_init(model)
        model.train()
        if qat:
            model = prepare_qat_fx(model, get_default_qat_qconfig_mapping("x86"), (x,))
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        tensors.append((f"{prefix}/loss", loss.detach().reshape(1)))
        for pname, p in model.named_parameters():
            tensors.append((f"{prefix}/grad/{pname}", p.grad))
    for opt_name in ["adam", "sgd"]:
        torch.manual_seed(0)
        model = MnistCnn()
        hash_init(model)
        model.train()
        opt = (torch.optim.Adam(model.parameters(), lr=1e-3) if opt_name == "adam" else
               torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4))
        for step in range(3):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        for pname, p in model.named_parameters():  # fc1.weight: its first 8 rows (keeps the fixture small)
            tensors.append((f"{opt_name}/param/{pname}", p.detach()[:8] if pname == "fc1.weight" else p.detach()))
    write_safetensors(os.path.join(d, "grads.safetensors"), tensors)


def write_dynamic_fixture(out):
    """quant/mlp_dynamic.safetensors: mlp with hash weights, dynamically quantized by prepare_fx/convert_fx with
    per_channel_dynamic_qconfig on its Linear layers (onednn engine: Debian's PyTorch has no fbgemm); its fp32 and
    int8 outputs on hash_uniform('dyn_x') [4, 1, 28, 28] in [0, 1] and on the first image alone."""
    from torch.ao.quantization import QConfigMapping, per_channel_dynamic_qconfig
    from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
    torch.backends.quantized.engine = "onednn"
    torch.manual_seed(0)
    model = Mlp().eval()
    hash_init(model)
    x = torch.from_numpy(hash_uniform("dyn_x", 4 * 784, 0.0, 1.0)).reshape(4, 1, 28, 28)
    mapping = (QConfigMapping().set_object_type(nn.Linear, per_channel_dynamic_qconfig)
               .set_object_type(nn.ReLU, per_channel_dynamic_qconfig))  # prepare_fx fuses Linear+ReLU
    quantized = convert_fx(prepare_fx(copy.deepcopy(model), mapping, (x,)))
    with torch.no_grad():
        tensors = [("x", x), ("fp32", model(x)), ("dynamic", quantized(x)), ("x1", x[:1]), ("dynamic1", quantized(x[:1]))]
    write_safetensors(os.path.join(out, "quant", "mlp_dynamic.safetensors"), tensors)


class NonSquareCnn(nn.Module):
    """Inception's 1x7 / 7x1 kernels and asymmetric strides, padding and dilation (tests/quant/coverage_test.cc)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, (1, 7), padding=(0, 3))
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 16, (7, 1), stride=(2, 1), padding=(3, 0))
        self.relu2 = nn.ReLU()
        self.dw = nn.Conv2d(16, 16, (1, 5), stride=(1, 2), padding=(0, 4), dilation=(1, 2), groups=16)
        self.conv3 = nn.Conv2d(16, 24, (3, 2), padding=(1, 1), dilation=(2, 1))
        self.pool = nn.MaxPool2d((3, 2), stride=(2, 1), padding=(1, 0))
        self.avg = nn.AvgPool2d((2, 3), stride=(1, 2), padding=(1, 1), count_include_pad=False)
        self.fc = nn.Linear(24 * 5 * 5, 10)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.conv2(x))
        x = self.avg(self.pool(self.conv3(self.dw(x))))
        return self.fc(torch.flatten(x, 1))


class UpsampleCnn(nn.Module):
    """A decoder-style CNN with nearest and bilinear upsampling (tests/quant/coverage_test.cc, same names)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.relu1 = nn.ReLU()
        self.up1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.up2 = nn.Upsample(size=(15, 13), mode="bilinear")
        self.conv3 = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.up1(self.relu1(self.conv1(x)))
        x = self.up2(self.relu2(self.conv2(x)))
        return self.conv3(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=True))


def write_upsample_cnn_int8_fixture(out):
    """quant/upsample_cnn_int8.safetensors: UpsampleCnn as write_nonsquare_cnn_int8_fixture does NonSquareCnn."""
    write_int8_fixture(out, UpsampleCnn, [4, 3, 12, 10], "upsample_cnn_int8")


def write_int8_fixture(out, make, shape, name):
    """quant/<name>.safetensors: make() with hash weights, calibrated on hash_uniform('calib', shape); its fp32
    output and PyTorch FX int8 (qnnpack, onednn) outputs on hash_uniform('test', shape)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
    torch.manual_seed(0)
    model = make().eval()
    hash_init(model)
    calib = torch.from_numpy(hash_uniform("calib", int(np.prod(shape)), -1.0, 1.0)).reshape(shape)
    x = torch.from_numpy(hash_uniform("test", int(np.prod(shape)), -1.0, 1.0)).reshape(shape)
    tensors = []
    with torch.no_grad():
        tensors.append(("fp32", model(x)))
        for engine in ["qnnpack", "onednn"]:
            torch.backends.quantized.engine = engine
            prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping(engine), (calib,))
            prepared(calib)
            tensors.append((engine, convert_fx(prepared)(x)))
    write_safetensors(os.path.join(out, "quant", name + ".safetensors"), tensors)


def vit_fmnist_fx_traceable():
    """vit_fmnist as qfx traces it, written so that torch.fx can trace it (torchvision's _process_input unpacks
    x.shape): conv_proj, reshape to (-1, hidden, 16), permute, the class token expanded as a narrow of the patches
    (qfx never reads the batch size), cat, encoder, x[:, 0], heads. Checked equal to torchvision's forward."""
    model = vit_fmnist()

    def forward(self, x):
        y = self.conv_proj(x).reshape(-1, self.hidden_dim, 16).permute(0, 2, 1)
        y = torch.cat([self.class_token.expand_as(torch.narrow(y, 1, 0, 1)), y], 1)
        return self.heads(self.encoder(y)[:, 0])

    def block_forward(self, input):  # torch.fx on Python 3.11 cannot unpack `x, _ = self.self_attention(...)`
        h = self.ln_1(input)
        x = self.dropout(self.self_attention(h, h, h, need_weights=False)[0]) + input
        return x + self.mlp(self.ln_2(x))

    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
        model.__class__ = type("VisionTransformer", (type(model),), {"forward": forward})  # torch.fx reads the class
        for block in model.encoder.layers:
            block.__class__ = type("EncoderBlock", (type(block),), {"forward": block_forward})
        assert torch.equal(model(x), want)
    return model


def write_vit_int8_fixture(out):
    """quant/vit_fmnist_int8.safetensors: vit_fmnist (vit_fmnist_fx_traceable) with hash weights on 16 images, as
    write_int8_fixture: fp32 and PyTorch FX int8 (qnnpack, onednn) outputs."""
    write_int8_fixture(out, vit_fmnist_fx_traceable, [16, 1, 28, 28], "vit_fmnist_int8")


def write_bert_fixture(out):
    """models/bert.safetensors: Hugging Face transformers' BertModel at all-MiniLM-L6-v2's config with hash weights,
    on input_ids [2, 8] and an attention_mask whose second row pads its last 3 tokens; the last hidden state and the
    state_dict's keys. Needs `transformers` (PyPI), e.g. in a venv made with --system-site-packages over Debian's
    PyTorch 1.13: `pip install --no-deps transformers==4.30.2 tokenizers==0.13.3 huggingface_hub==0.16.4`."""
    import transformers
    config = transformers.BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                     intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2,
                                     layer_norm_eps=1e-12)
    torch.manual_seed(0)
    model = transformers.BertModel(config).eval()
    hash_init(model)
    ids = torch.from_numpy((hash_uniform("ids", 16, 0.0, 30522.0)).astype(np.int64)).reshape(2, 8)
    mask = torch.ones(2, 8)
    mask[1, 5:] = 0
    with torch.no_grad():
        y = model(input_ids=ids, attention_mask=mask).last_hidden_state
    keys = [[k, DTYPES[v.dtype], list(v.shape)] for k, v in model.state_dict().items()]
    write_safetensors(os.path.join(out, "models", "bert.safetensors"),
                      [("input_ids", ids), ("attention_mask", mask), ("output", y)],
                      {"state_dict": json.dumps(keys), "transformers": transformers.__version__})


def shufflenet_fx_traceable():
    """torchvision's shufflenet_v2_x1_0 with InvertedResidual.forward rewritten so that torch.fx traces it (on Python
    3.11 torch.fx cannot unpack x.size() nor x.chunk(...) into names): the same ops in the same order, sizes read one
    by one and chunks indexed. Checked equal to the original on a random input."""
    import types

    def channel_shuffle(x, groups):
        n, c, h, w = x.size(0), x.size(1), x.size(2), x.size(3)
        x = x.view(n, groups, c // groups, h, w)
        return torch.transpose(x, 1, 2).contiguous().view(n, -1, h, w)

    def forward(self, x):
        if self.stride == 1:
            halves = x.chunk(2, dim=1)
            out = torch.cat((halves[0], self.branch2(halves[1])), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)

    model = torchvision.models.shufflenet_v2_x1_0()
    original = copy.deepcopy(model).eval()
    for m in model.modules():
        if type(m).__name__ == "InvertedResidual":
            m.forward = types.MethodType(forward, m)
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(original(x), model.eval()(x))
    return model


def write_shufflenet_v2_int8_fixture(out):
    """quant/shufflenet_v2_int8.safetensors: torchvision's shufflenet_v2_x1_0 (made traceable by
    shufflenet_fx_traceable) as write_nonsquare_cnn_int8_fixture does NonSquareCnn, on [2, 3, 64, 64]."""
    write_int8_fixture(out, shufflenet_fx_traceable, [2, 3, 64, 64], "shufflenet_v2_int8")


def write_zoo_int8_fixture(out):
    """quant/<model>_int8.safetensors for the zoo models added with the coverage issue (regnet_x_400mf, ...): as
    write_nonsquare_cnn_int8_fixture does NonSquareCnn, on 16 images of the model's ZOO size (the SQNR of two
    varies by more than the tests' 0.5 dB margin from one input to the next, and of eight by up to 0.5 dB)."""
    for name in ["regnet_x_400mf", "efficientnet_b0", "inception_v3"]:
        write_int8_fixture(out, ZOO[name][0], [16] + ZOO[name][1][1:], name + "_int8")


def write_nonsquare_cnn_int8_fixture(out):
    """quant/nonsquare_cnn_int8.safetensors: NonSquareCnn with hash weights, calibrated on hash_uniform('calib')
    [4, 3, 20, 20]; fp32 and PyTorch FX int8 (qnnpack, onednn) outputs on hash_uniform('test')."""
    write_int8_fixture(out, NonSquareCnn, [4, 3, 20, 20], "nonsquare_cnn_int8")


class TinyAttention(nn.Module):
    """One pre-norm self-attention block on [2, 5, 16], 2 heads (tests/quant/coverage_test.cc, same names):
    LayerNorm, matmul and bmm between activations, transpose and permute, softmax on the last dim, GELU."""

    def __init__(self):
        super().__init__()
        self.norm1 = nn.LayerNorm(16)
        self.q = nn.Linear(16, 16)
        self.k = nn.Linear(16, 16)
        self.v = nn.Linear(16, 16)
        self.proj = nn.Linear(16, 16)
        self.norm2 = nn.LayerNorm(16, eps=1e-6)
        self.fc1 = nn.Linear(16, 32)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(32, 16)

    def forward(self, x):
        h = self.norm1(x)
        q = self.q(h).reshape(2, 5, 2, 8).permute(0, 2, 1, 3)
        k = self.k(h).reshape(2, 5, 2, 8).permute(0, 2, 1, 3)
        v = self.v(h).reshape(2, 5, 2, 8).permute(0, 2, 1, 3)
        a = F.softmax(torch.matmul(q, k.transpose(-2, -1)) * 0.35355339, -1)
        x = x + self.proj(torch.matmul(a, v).permute(0, 2, 1, 3).reshape(2, 5, 16))
        y = self.norm2(x)
        x = x + torch.bmm(F.softmax(torch.bmm(y, y.transpose(1, 2)), -1), y)
        return x + self.fc2(self.act(self.fc1(y)))


def channel_shuffle_by_view(x, groups=3):
    n, c, h, w = x.shape
    y = x.reshape(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)
    assert torch.equal(y, torch.channel_shuffle(x.detach(), groups))
    return y


def self_attention(x, wi, bi, wo, bo, heads, batch_first):
    """nn.MultiheadAttention's self-attention through F.multi_head_attention_forward (which takes [L, B, E])."""
    q = x.transpose(0, 1) if batch_first else x
    y = F.multi_head_attention_forward(q, q, q, q.shape[-1], heads, wi, bi, None, None, False, 0.0, wo, bo,
                                       training=False, need_weights=False)[0]
    return y.transpose(0, 1) if batch_first else y


def coverage_grad_cases():
    """(name, fn, inputs) for coverage/grads.safetensors (the transformer ops' backward)."""
    def u(key, shape, lo=-1.0, hi=1.0):
        return torch.from_numpy(hash_uniform(key, int(np.prod(shape)), lo, hi)).reshape(shape)
    return [
        ("layer_norm", lambda x, w, b: F.layer_norm(x, (6,), w, b, 1e-5),
         [u("lnx", [3, 4, 6], -2, 2), u("lnw", [6], 0.5, 1.5), u("lnb", [6])]),
        ("layer_norm_2d_plain", lambda x: F.layer_norm(x, (3, 4), None, None, 1e-3), [u("lnp", [2, 3, 4], -2, 2)]),
        ("matmul_broadcast", torch.matmul, [u("ma", [2, 3, 4, 5]), u("mb", [3, 5, 2])]),
        ("matmul_2d", torch.matmul, [u("m2a", [4, 3]), u("m2b", [3, 6])]),
        ("bmm", torch.bmm, [u("ba", [2, 3, 4]), u("bb", [2, 4, 5])]),
        ("transpose", lambda x: x.transpose(0, 2), [u("tr", [2, 3, 4])]),
        ("permute", lambda x: x.permute(2, 0, 3, 1), [u("pe", [2, 3, 4, 5])]),
        ("interpolate_nearest", lambda x: F.interpolate(x, size=(7, 5), mode="nearest"), [u("in", [1, 2, 4, 3])]),
        ("interpolate_bilinear", lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear"), [u("ib", [1, 2, 5, 6])]),
        ("interpolate_bilinear_align", lambda x: F.interpolate(x, size=(9, 7), mode="bilinear", align_corners=True),
         [u("ia", [2, 1, 4, 5])]),
        ("embedding_padding", lambda w: F.embedding(torch.tensor([[0, 2, 1], [4, 1, 2]]), w, padding_idx=1),
         [u("ew", [5, 3])]),
        # PyTorch 1.13 has no backward for torch.channel_shuffle: its view / transpose definition (checked equal).
        ("channel_shuffle", channel_shuffle_by_view, [u("cs", [2, 6, 2, 3])]),
        ("narrow", lambda x: torch.narrow(x, 1, 1, 3), [u("na", [2, 5, 3])]),
        ("narrow_last_dim_negative_start", lambda x: torch.narrow(x, -1, -3, 2), [u("nl", [2, 3, 4])]),
        ("multi_head_attention", lambda x, wi, bi, wo, bo: self_attention(x, wi, bi, wo, bo, 2, True),
         [u("mhx", [2, 5, 8], -2, 2), u("mhwi", [24, 8]), u("mhbi", [24]), u("mhwo", [8, 8]), u("mhbo", [8])]),
        ("multi_head_attention_seq_first_no_bias", lambda x, wi, wo: self_attention(x, wi, None, wo, None, 4, False),
         [u("msx", [3, 2, 8], -2, 2), u("mswi", [24, 8]), u("mswo", [8, 8])]),
        ("select", lambda x: x[:, 1], [u("se", [2, 3, 4])]),
        ("select_negative", lambda x: torch.select(x, -1, -2), [u("sn", [2, 3, 4])]),
        ("expand", lambda x: x.expand(2, 3, -1, 4), [u("ex", [3, 1, 1])]),
        ("conv_transpose2d", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
         [u("ctx", [2, 4, 4, 3]), u("ctw", [4, 3, 3, 3]), u("ctb", [3])]),
        ("conv_transpose2d_groups_dilation",
         lambda x, w: F.conv_transpose2d(x, w, None, stride=(1, 2), padding=(1, 0), groups=2, dilation=(2, 1)),
         [u("cgx", [1, 4, 5, 4]), u("cgw", [4, 2, 2, 3])]),
    ]


def write_coverage_fixture(out):
    """coverage/tiny_attention.safetensors: TinyAttention with hash weights: input hash_uniform('x') [2, 5, 16],
    fp32 output, PyTorch FX onednn int8 output (calibrated on hash_uniform('calib')), torch.fx's node sequence in the
    metadata; coverage/grads.safetensors: coverage_grad_cases() as train/grads.safetensors has its cases."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
    from torch.fx.node import _get_qualified_name
    d = os.path.join(out, "coverage")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    model = TinyAttention().eval()
    hash_init(model)
    x = torch.from_numpy(hash_uniform("x", 160, -1.0, 1.0)).reshape(2, 5, 16)
    calib = torch.from_numpy(hash_uniform("calib", 160, -1.0, 1.0)).reshape(2, 5, 16)
    seq = []
    for n in torch.fx.symbolic_trace(model).graph.nodes:
        seq.append([n.op, n.target if isinstance(n.target, str) else _get_qualified_name(n.target), n.name])
    with torch.no_grad():
        tensors = [("input", x), ("fp32", model(x))]
        torch.backends.quantized.engine = "onednn"  # Debian's PyTorch 1.13 has no x86 engine
        prepared = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("onednn"), (calib,))
        prepared(calib)
        converted = convert_fx(prepared)
        tensors.append(("onednn", converted(x)))
    int8_nodes = [[n.op, n.target if isinstance(n.target, str) else _get_qualified_name(n.target)]
                  for n in converted.graph.nodes if n.op in ("call_function", "call_method")]
    print("tiny_attention onednn int8 graph:", int8_nodes)
    write_safetensors(os.path.join(d, "tiny_attention.safetensors"), tensors, {"fx_nodes": json.dumps(seq)})
    write_safetensors(os.path.join(d, "grads.safetensors"), grad_case_tensors(coverage_grad_cases()))


def write_resnet18_int8_fixture(out):
    """quant/resnet18_int8.safetensors: resnet18 with hash weights, calibrated on hash_uniform('calib')
    [4, 3, 64, 64]; fp32 and PyTorch FX int8 (qnnpack, onednn) outputs on hash_uniform('test') [4, 3, 64, 64]."""
    write_int8_fixture(out, torchvision.models.resnet18, [4, 3, 64, 64], "resnet18_int8")


class StubCnn(nn.Module):
    """The eager quantization tutorial's model: quant -> conv -> bn -> relu -> dequant (qfx's stub_cnn)."""

    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.relu(self.bn(self.conv(self.quant(x)))))


class StubClassifier(nn.Module):
    """quant -> conv -> bn -> relu -> maxpool -> flatten -> fc -> dequant on 28x28 (tests/quant/eager_test.cc)."""

    def __init__(self):
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 14 * 14, 10)
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(self.quant(x)))))
        return self.dequant(self.fc(torch.flatten(x, 1)))


def write_eager_qat_steps_fixture(out):
    """quant/eager_qat_steps.safetensors: StubClassifier (hash weights) fused with fuse_modules_qat, prepared
    with prepare_qat and get_default_qat_qconfig('onednn'), then 3 SGD steps (lr 0.05, momentum 0.9) of
    cross-entropy on one fixed batch: the loss of each step, the parameters and every fake-quant's scale and
    zero point after them, and the converted int8 model's output on the batch."""
    from torch.ao.quantization import get_default_qat_qconfig, prepare_qat, convert
    torch.backends.quantized.engine = "onednn"
    x = torch.from_numpy(hash_uniform("train_x", 8 * 784, 0.0, 1.0)).reshape(8, 1, 28, 28)
    y = torch.tensor([i * 7 % 10 for i in range(8)], dtype=torch.int64)
    torch.manual_seed(0)
    model = StubClassifier()
    hash_init(model)
    model.train()
    torch.ao.quantization.fuse_modules_qat(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = get_default_qat_qconfig("onednn")
    model = prepare_qat(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tensors = [("x", x), ("y", y)]
    losses = []
    for step in range(3):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    tensors.append(("loss", torch.tensor(losses)))
    for pname, p in model.named_parameters():
        tensors.append(("param/" + pname, p.detach()))
    for name, m in model.named_modules():
        if isinstance(m, torch.ao.quantization.FakeQuantizeBase):
            tensors.append(("scale/" + name, m.scale.detach().float().reshape(-1)))
            tensors.append(("zero_point/" + name, m.zero_point.detach().to(torch.int64).reshape(-1)))
    model.eval()
    converted = convert(model)
    with torch.no_grad():
        tensors.append(("int8_output", converted(x)))
    write_safetensors(os.path.join(out, "quant", "eager_qat_steps.safetensors"), tensors)


def _stub_cnn_fuse(model, is_qat):
    fuse = torch.ao.quantization.fuse_modules_qat if is_qat else torch.ao.quantization.fuse_modules
    fuse(model, [["conv", "bn", "relu"]], inplace=True)


EAGER_CASES = [
    ("stub_cnn", StubCnn, _stub_cnn_fuse, [4, 3, 16, 16]),
    ("quantizable_resnet18", lambda: torchvision.models.quantization.resnet18(quantize=False),
     lambda m, is_qat: m.fuse_model(is_qat), [2, 3, 64, 64]),
    ("quantizable_mobilenet_v2", lambda: torchvision.models.quantization.mobilenet_v2(quantize=False),
     lambda m, is_qat: m.fuse_model(is_qat), [2, 3, 64, 64]),
]


def _observed_modules(prepared):
    """Module names carrying an observer / fake-quant (activation_post_process), with their qparams."""
    observed, qparams = [], {}
    kinds = (torch.ao.quantization.ObserverBase, torch.ao.quantization.FakeQuantizeBase)
    for name, m in prepared.named_modules():
        app = getattr(m, "activation_post_process", None)
        if isinstance(m, kinds) or app is None:
            continue
        if not isinstance(app, kinds):
            continue
        observed.append(name)
        scale, zp = app.calculate_qparams()
        qparams[name] = {"scale": float(scale.flatten()[0]), "zero_point": int(zp.flatten()[0])}
    return observed, qparams


def write_eager_fixture(out):
    """quant/eager_<model>_<engine>.json: PyTorch 1.13 eager prepare / convert on the onednn and qnnpack
    engines (model.qconfig = get_default_qconfig(engine), fuse_model, prepare, calibrate on
    hash_uniform('calib'), convert): the modules that carry observers with their calibrated qparams, and the
    float and int8 outputs on hash_uniform('test'). eager_qat_<model>_<engine>.json: prepare_qat's fake-quant
    placement, module types and the output of the second train-mode forward."""
    from torch.ao.quantization import get_default_qconfig, get_default_qat_qconfig, prepare, prepare_qat, convert
    os.makedirs(os.path.join(out, "quant"), exist_ok=True)
    for name, make, fuse, shape in EAGER_CASES:
        n = int(np.prod(shape))
        x = torch.from_numpy(hash_uniform("calib", n, -1.0, 1.0)).reshape(shape)
        xt = torch.from_numpy(hash_uniform("test", n, -1.0, 1.0)).reshape(shape)
        for engine in ["onednn", "qnnpack"]:
            torch.backends.quantized.engine = engine
            torch.manual_seed(0)
            model = make().eval()
            hash_init(model)
            with torch.no_grad():
                y_float = model(xt)
            fuse(model, False)
            model.qconfig = get_default_qconfig(engine)
            prepared = prepare(model)
            with torch.no_grad():
                prepared(x)
            observed, qparams = _observed_modules(prepared)
            converted = convert(prepared)
            with torch.no_grad():
                y_int8 = converted(xt)
            modules = {k: type(m).__name__ for k, m in converted.named_modules() if k}
            with open(os.path.join(out, "quant", f"eager_{name}_{engine}.json"), "w") as f:
                json.dump({"model": name, "engine": engine, "calib_shape": shape, "observed": observed,
                           "qparams": qparams, "modules": modules,
                           "float_output": [float(v) for v in y_float.flatten()],
                           "int8_output": [float(v) for v in y_int8.flatten()]}, f, indent=0)
            if name != "stub_cnn":
                continue
            torch.manual_seed(0)
            model = make().eval()
            hash_init(model)
            model.train()
            fuse(model, True)
            model.qconfig = get_default_qat_qconfig(engine)
            prepared = prepare_qat(model)
            with torch.no_grad():
                prepared(x)
                y = prepared(x * 0.5)
            observed, qparams = _observed_modules(prepared)
            modules = {k: type(m).__name__ for k, m in prepared.named_modules() if k and "." not in k}
            with open(os.path.join(out, "quant", f"eager_qat_{name}_{engine}.json"), "w") as f:
                json.dump({"model": name, "engine": engine, "observed": observed, "qparams": qparams,
                           "modules": modules, "output": [float(v) for v in y.flatten()],
                           "bn_running_mean": [float(v) for v in prepared.conv.bn.running_mean]}, f, indent=0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data"))
    ap.add_argument("--only", help="write only this fixture group (a write_* function name without write_)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.only:
        globals()["write_" + args.only](args.out)
        return
    write_module_cases(args.out)
    write_models(args.out)
    write_fx_sequences(args.out)
    write_observer_fixture(args.out)
    write_prepare_fixture(args.out)
    write_prepare_qat_fixture(args.out)
    write_mnist_fixture(args.out)
    write_resnet18_int8_fixture(args.out)
    write_nonsquare_cnn_int8_fixture(args.out)
    write_upsample_cnn_int8_fixture(args.out)
    write_shufflenet_v2_int8_fixture(args.out)
    write_zoo_int8_fixture(args.out)
    write_vit_int8_fixture(args.out)
    write_coverage_fixture(args.out)
    write_grad_fixture(args.out)
    write_dynamic_fixture(args.out)
    write_eager_fixture(args.out)
    write_eager_qat_steps_fixture(args.out)
    print("wrote fixtures under", os.path.normpath(args.out))


if __name__ == "__main__":
    main()
