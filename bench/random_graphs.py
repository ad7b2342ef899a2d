"""Random float ONNX graphs for arena sweeps: convolution stacks with branches and residual
adds, depthwise and 1x1 convolutions, pooling, padding, activations, concatenation, dense
layers and softmax, in varied shapes and channel counts, with calibration data.

`make(seed, folder)` writes `g<seed>.onnx` and `g<seed>.npz` (`x`) and returns the quantize
flags to use (per-tensor or per-channel weights, int8 or float I/O, some layers in int16, some
left in float) and the node names they refer to.
"""
import random

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, rng):
        self.rng = rng
        self.nodes, self.inits, self.n = [], [], 0
        self.layers = []  # conv / dense node names (for --int16 / --keep-float)

    def name(self, kind):
        self.n += 1
        return f"{kind}{self.n}"

    def const(self, arr):
        name = self.name("w")
        self.inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def const_int(self, values):
        name = self.name("i")
        self.inits.append(numpy_helper.from_array(np.array(values, dtype=np.int64), name))
        return name

    def node(self, op, inputs, **attrs):
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, stride, pad, group=1):
        w = self.const(self.rng.standard_normal((cout, cin // group, k, k)) * (1.0 / np.sqrt(k * k * cin / group)))
        b = self.const(self.rng.standard_normal(cout) * 0.1)
        y = self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=group)
        self.layers.append(y)
        return y

    def act(self, x):
        kind = self.rng.choice(["Relu", "Relu", "Clip6", "Sigmoid", "Tanh", "LeakyRelu", "HardSwish", "none"])
        if kind == "Clip6":
            return self.node("Clip", [x, self.const(np.array(0.0)), self.const(np.array(6.0))])
        if kind == "LeakyRelu":
            return self.node("LeakyRelu", [x], alpha=0.1)
        if kind == "none":
            return x
        return self.node(kind, [x])


def out_size(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def make(seed, folder):
    rng = np.random.default_rng(seed)
    r = random.Random(seed)
    b = Builder(rng)
    h = w = r.choice([6, 8, 10, 12, 16, 20])
    c = r.choice([1, 2, 3, 4, 8])
    x = "x"
    for _ in range(r.randint(1, 4)):
        kind = r.choice(["conv", "dw", "pw", "res", "concat", "pool", "pad", "mul"])
        if kind == "conv":
            k, s = r.choice([(3, 1), (3, 2), (5, 1), (1, 1), (2, 2)])
            p = r.choice([0, k // 2])
            if out_size(h, k, s, p) < 1:
                continue
            cout = r.choice([2, 4, 6, 8, 12, 16, 24])
            x = b.act(b.conv(x, c, cout, k, s, p))
            h = w = out_size(h, k, s, p)
            c = cout
        elif kind == "dw":
            k, s = r.choice([(3, 1), (3, 2), (5, 1)])
            p = r.choice([0, k // 2, 2]) if k == 5 else r.choice([0, 1])
            if out_size(h, k, s, p) < 1:
                continue
            x = b.act(b.conv(x, c, c, k, s, p, group=c))
            h = w = out_size(h, k, s, p)
        elif kind == "pw":
            cout = r.choice([4, 8, 16, 32])
            x = b.act(b.conv(x, c, cout, 1, 1, 0))
            c = cout
        elif kind == "res":
            y = b.act(b.conv(x, c, c, 3, 1, 1))
            y = b.conv(y, c, c, 1, 1, 0)
            x = b.node(r.choice(["Add", "Add", "Sub"]), [x, y])
        elif kind == "concat":
            n1, n2 = r.choice([2, 4, 8]), r.choice([2, 4])
            y1 = b.act(b.conv(x, c, n1, 1, 1, 0))
            y2 = b.act(b.conv(x, c, n2, 3, 1, 1))
            x = b.node("Concat", [y1, y2], axis=1)
            c = n1 + n2
        elif kind == "pool":
            op = r.choice(["MaxPool", "AveragePool"])
            if h < 2:
                continue
            x = b.node(op, [x], kernel_shape=[2, 2], strides=[2, 2])
            h = w = h // 2
        elif kind == "pad":
            x = b.node("Pad", [x, b.const_int([0, 0, 1, 1, 0, 0, 1, 1])])
            h = w = h + 2
        elif kind == "mul":
            y = b.node("Sigmoid", [x])
            x = b.node("Mul", [x, y])
    head = r.choice(["gap_dense", "flatten_dense", "gap"])
    if head != "flatten_dense":
        x = b.node(r.choice(["GlobalAveragePool", "GlobalAveragePool", "GlobalMaxPool"]), [x])
        feat = c
    else:
        feat = c * h * w
    x = b.node("Flatten", [x], axis=1)
    for _ in range(r.randint(0 if head == "gap" else 1, 2)):
        units = r.choice([3, 5, 8, 10, 16, 32])
        wm = b.const(rng.standard_normal((feat, units)) / np.sqrt(feat))
        bias = b.const(rng.standard_normal(units) * 0.1)
        x = b.node("Gemm", [x, wm, bias], transB=0)
        b.layers.append(x)
        feat = units
        if r.random() < 0.5:
            x = b.act(x)
    if r.random() < 0.6:
        x = b.node("Softmax", [x], axis=1)
    graph = helper.make_graph(b.nodes, f"g{seed}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c0(seed), h0(seed), h0(seed)])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.save(model, f"{folder}/g{seed}.onnx")
    np.savez(f"{folder}/g{seed}.npz", x=rng.standard_normal((8, 1, c0(seed), h0(seed), h0(seed))).astype(np.float32)[:, 0])
    flags = []
    if r.random() < 0.3:
        flags.append("--per-tensor")
    if r.random() < 0.25:
        flags += ["--io", "float"]
    picked = [n for n in b.layers if r.random() < 0.3]
    if picked and r.random() < 0.5:
        flags += ["--int16", ",".join(picked)]
    elif picked and r.random() < 0.4:
        flags += ["--keep-float", picked[0]]
    return flags


def c0(seed):
    r = random.Random(seed)
    r.choice([6, 8, 10, 12, 16, 20])
    return r.choice([1, 2, 3, 4, 8])


def h0(seed):
    return random.Random(seed).choice([6, 8, 10, 12, 16, 20])
