"""Randomized single-op models for the TFLM bit-exactness oracle (test_tflm_single_ops.py).

Every case is a tiny FP32 ONNX model holding one op under test (conv, depthwise conv, fully
connected, add, mul, max/average pool, mean, softmax, logistic, tanh, hardswish, concat, pad,
reshape, prelu, resize, reduce_max, elu, abs, reduce_sum, batch_norm, max, min, slice, split, gather, log_softmax, mirror_pad, resize_bilinear) with random shapes, strides, paddings, dilations, weights and data ranges. It is built
from a seeded RNG, so a case id always names the same model.

Pipeline of one case (the driver in the test module runs all cases in bulk):
  1. `build_case` writes model.onnx, calib.npz (float) and eval_float.npz (float).
  2. `tinyq quantize` writes m.tflite (int8 I/O).
  3. `tflm_worker_main` (a child process, so that a TFLM crash costs one case, not the session)
     quantizes the float evaluation inputs with the file's input parameters exactly as TFLite does,
     writes them as eval_q.npz, runs them through TFLM (tflm.npz) and through LiteRT's reference
     kernels (only the largest |difference| from TFLM is kept, for the report).
  4. `tinyq run m.tflite --data eval_q.npz` gives tinyq's int8 outputs, compared bit for bit.

Script mode (no pytest): `python tests/oracle/tflm_lib.py --tflm-worker manifest.json out.jsonl`
is the child process of step 3.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The op kinds, in report order.
KINDS = (
    "conv",
    "depthwise_conv",
    "fully_connected",
    "add",
    "mul",
    "max_pool",
    "avg_pool",
    "mean",
    "softmax",
    "logistic",
    "tanh",
    "hardswish",
    "concat",
    "pad",
    "reshape",
    "fully_connected_per_unit",
    "prelu",
    "resize",
    "reduce_max",
    "elu",
    "abs",
    "reduce_sum",
    "batch_norm",
    "max",
    "min",
    "slice",
    "split",
    "gather",
    "log_softmax",
    "mirror_pad",
    "resize_bilinear",
)

BASE_SEED = int(os.environ.get("TINYQ_TFLM_SEED", "20261127"))
CALIB_SAMPLES = 24
TFLM_ARENA_BYTES = 1 << 20


@dataclass
class Case:
    """One generated case: where its files are and what it is made of."""

    id: str
    kind: str
    dir: Path
    input_names: list[str]
    params: dict = field(default_factory=dict)
    quantize_args: list[str] = field(default_factory=list)

    def manifest(self) -> dict:
        return {"id": self.id, "kind": self.kind, "dir": str(self.dir), "inputs": self.input_names}


# ----------------------------------------------------------------------------------------------
# Data: asymmetric random ranges, different per input
# ----------------------------------------------------------------------------------------------


class Dist:
    """A random input distribution: normal(a, b), uniform(lo, hi) or a non-negative one."""

    def __init__(self, rng: np.random.Generator):
        self.kind = str(rng.choice(["normal", "uniform", "positive"], p=[0.5, 0.35, 0.15]))
        # mostly ordinary ranges; now and then extreme ones (tiny or huge scales stress the
        # fixed-point multipliers and shifts)
        spread = _logu(rng, 0.05, 8.0) if rng.random() < 0.85 else _logu(rng, 1e-4, 1e3)
        offset = float(rng.uniform(-2.0, 2.0)) * spread
        if self.kind == "normal":
            self.a, self.b = offset, spread
        elif self.kind == "uniform":
            self.a, self.b = offset - spread * rng.uniform(0.2, 2.0), offset + spread * rng.uniform(0.2, 2.0)
        else:  # like a ReLU output: starts at 0
            self.a, self.b = 0.0, spread * rng.uniform(0.5, 3.0)

    def sample(self, rng: np.random.Generator, shape) -> np.ndarray:
        if self.kind == "normal":
            x = self.a + self.b * rng.standard_normal(shape)
        else:
            x = rng.uniform(self.a, self.b, shape)
        return x.astype(np.float32)

    def out_of_range(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Values well outside what calibration saw, both sides, to exercise saturation."""
        if self.kind == "normal":
            lo, hi, width = self.a - 6 * self.b, self.a + 6 * self.b, self.b
        else:
            lo, hi, width = self.a, self.b, self.b - self.a
        side = rng.random(n) < 0.5
        excess = width * rng.uniform(0.5, 4.0, n)
        return np.where(side, lo - excess, hi + excess).astype(np.float32)

    def describe(self) -> str:
        return f"{self.kind}({self.a:.3g},{self.b:.3g})"


def _calib_and_eval(rng, shape, dist: Dist, n_eval: int):
    calib = dist.sample(rng, (CALIB_SAMPLES, *shape))
    ev = dist.sample(rng, (n_eval, *shape))
    flat = ev.reshape(-1)
    k = max(1, flat.size // 20)
    idx = rng.choice(flat.size, size=k, replace=False)
    flat[idx] = dist.out_of_range(rng, k)
    return calib, flat.reshape(ev.shape)


# ----------------------------------------------------------------------------------------------
# ONNX building
# ----------------------------------------------------------------------------------------------


def _model(nodes, inputs, output, inits=(), opset=13):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        nodes,
        "single_op",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
        initializer=list(inits),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    out_shape = _output_shape(model, inputs)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape))
    onnx.checker.check_model(model, full_check=True)
    return model, out_shape


def _output_shape(model, inputs) -> list[int]:
    """The output shape, from one onnxruntime run on zeros (shape inference leaves graph outputs
    without a declared shape unfilled)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = {n: np.zeros(s, np.float32) for n, s in inputs}
    return [int(d) for d in sess.run(None, feeds)[0].shape]


def _init(name, arr):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.asarray(arr), name)


def _logu(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _weights(rng, shape, per_channel_axis=0, spread=(0.1, 3.0)):
    """Random weights with a random overall scale and different magnitudes per output channel
    (a factor in `spread` each); now and then one channel is all zero (a zero per-channel range)."""
    w = rng.standard_normal(shape) * (_logu(rng, 0.01, 2.0) if rng.random() < 0.85 else _logu(rng, 1e-5, 50.0))
    n = shape[per_channel_axis]
    ch = np.exp(rng.uniform(np.log(spread[0]), np.log(spread[1]), n))
    if n > 1 and rng.random() < 0.05:
        ch[rng.integers(n)] = 0.0
    bshape = [1] * len(shape)
    bshape[per_channel_axis] = n
    return (w * ch.reshape(bshape)).astype(np.float32)


def _bias(rng, n):
    return (rng.standard_normal(n) * _logu(rng, 0.01, 3.0)).astype(np.float32)


def _nchw(rng, cmax=8, hmin=1, hmax=12, cmin=1):
    return [1, int(rng.integers(cmin, cmax + 1)), int(rng.integers(hmin, hmax + 1)), int(rng.integers(hmin, hmax + 1))]


def _pads_2d(rng, size_hw, kernel_eff, stride, allow_auto=True):
    """A padding choice for a 2-D window op: (attrs, description). Chosen so the output is not
    empty. Modes: VALID, auto_pad SAME_UPPER, explicit pads equal to TF SAME, explicit random."""
    mode = str(rng.choice(["valid", "same_upper", "explicit_same", "explicit_random"]))
    h, w = size_hw
    if mode == "valid" and (h < kernel_eff[0] or w < kernel_eff[1]):
        mode = "same_upper"
    # onnxruntime: no auto_pad with dilation, and a negative SAME padding (stride > window) is
    # an error there rather than 0
    raw = [(-(-n // st) - 1) * st + k - n for n, k, st in zip((h, w), kernel_eff, stride)]
    if mode == "same_upper" and (not allow_auto or min(raw) < 0):
        mode = "explicit_same"
    if mode == "valid":
        return {"pads": [0, 0, 0, 0]}, mode
    if mode == "same_upper":
        return {"auto_pad": "SAME_UPPER"}, mode
    if mode == "explicit_same":
        pads = []
        for size, k, s in zip((h, w), kernel_eff, stride):
            out = -(-size // s)
            total = max((out - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        return {"pads": [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]}, mode
    while True:
        p = [int(rng.integers(0, k)) for k in (kernel_eff[0], kernel_eff[1], kernel_eff[0], kernel_eff[1])]
        if h + p[0] + p[2] >= kernel_eff[0] and w + p[1] + p[3] >= kernel_eff[1]:
            return {"pads": p}, mode


# ----------------------------------------------------------------------------------------------
# Case builders: each returns (nodes, inputs [(name, shape)], inits, opset, params)
# ----------------------------------------------------------------------------------------------


def _maybe_relu(rng, nodes, out, params, p=0.15):
    """Sometimes follow the op with Relu (exercises the fused activation range)."""
    from onnx import helper

    if rng.random() < p:
        nodes[-1].output[0] = "pre_act"
        nodes.append(helper.make_node("Relu", ["pre_act"], [out]))
        params["relu"] = True


def _conv_common(rng, depthwise: bool):
    from onnx import helper

    # (a 1-channel depthwise conv is a plain conv; tinyq exports it as CONV_2D)
    shape = _nchw(rng, cmin=2, cmax=8) if depthwise else _nchw(rng)
    c = shape[1]
    k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    s = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    d = (int(rng.integers(1, 3)) if k[0] > 1 else 1, int(rng.integers(1, 3)) if k[1] > 1 else 1)
    # dilation only where the dilated window still fits (with the largest padding a mode allows)
    keff = tuple((kk - 1) * dd + 1 for kk, dd in zip(k, d))
    for axis in (0, 1):
        if keff[axis] > 2 * shape[2 + axis]:
            d = (1, d[1]) if axis == 0 else (d[0], 1)
    keff = tuple((kk - 1) * dd + 1 for kk, dd in zip(k, d))
    # make the input at least as large as the window half the time so VALID is possible
    if rng.random() < 0.5:
        shape[2] = max(shape[2], keff[0])
        shape[3] = max(shape[3], keff[1])
    pad_attrs, pad_mode = _pads_2d(rng, (shape[2], shape[3]), keff, s, allow_auto=d == (1, 1))
    if depthwise:
        mult = int(rng.integers(1, 3))
        cout, group = c * mult, c
        wshape = [cout, 1, *k]
    else:
        cout, group = int(rng.integers(1, 9)), 1
        wshape = [cout, c, *k]
    inits = [_init("W", _weights(rng, wshape))]
    ins = ["x", "W"]
    has_bias = bool(rng.random() < 0.8)
    if has_bias:
        inits.append(_init("B", _bias(rng, cout)))
        ins.append("B")
    attrs = dict(kernel_shape=list(k), strides=list(s), dilations=list(d), **pad_attrs)
    if group != 1:
        attrs["group"] = group
    nodes = [helper.make_node("Conv", ins, ["y"], **attrs)]
    params = dict(x=shape, cout=cout, k=k, s=s, d=d, pad=pad_mode, bias=has_bias)
    params.update({kk: v for kk, v in pad_attrs.items() if kk == "pads"})
    if group != 1:
        params["group"] = group
    _maybe_relu(rng, nodes, "y", params)
    return nodes, [("x", shape)], inits, 13, params


def _build_conv(rng):
    return _conv_common(rng, depthwise=False)


def _build_depthwise_conv(rng):
    return _conv_common(rng, depthwise=True)


def _build_fully_connected(rng, edge_spread=None):
    from onnx import helper

    m = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
    kdim, n = int(rng.integers(1, 65)), int(rng.integers(1, 33))
    shape = [m, kdim]
    op = str(rng.choice(["Gemm", "MatMul"]))
    # A third of the cases (all with edge_spread) spread the units' scales over six decades:
    # per-unit multipliers and shifts far apart, some far below 2^-31 relative to the output scale.
    if edge_spread is None:
        edge_spread = rng.random() < 0.33
    spread = (1e-4, 1e2) if edge_spread else (0.1, 3.0)
    params = dict(op=op, x=shape, n=n, spread=spread)
    if op == "Gemm":
        trans_b = int(rng.integers(0, 2))
        w = _weights(rng, [n, kdim], spread=spread)
        inits = [_init("W", w if trans_b else np.ascontiguousarray(w.T))]
        ins = ["x", "W"]
        if rng.random() < 0.8:
            inits.append(_init("B", _bias(rng, n)))
            ins.append("B")
        nodes = [helper.make_node("Gemm", ins, ["y"], transB=trans_b)]
        params.update(transB=trans_b, bias=len(ins) == 3)
    else:
        w = _weights(rng, [n, kdim], spread=spread)
        inits = [_init("W", np.ascontiguousarray(w.T))]
        nodes = [helper.make_node("MatMul", ["x", "W"], ["y"])]
    _maybe_relu(rng, nodes, "y", params)
    return nodes, [("x", shape)], inits, 13, params


def _build_fully_connected_per_unit(rng):
    """Dense layers quantized with one weight scale per unit (tinyq's default), the units'
    magnitudes six decades apart, at least two units."""
    while True:
        nodes, inputs, inits, opset, params = _build_fully_connected(rng, edge_spread=True)
        if params["n"] > 1:
            return nodes, inputs, inits, opset, params


def _broadcast_shape(rng, shape):
    """A shape that broadcasts against `shape` (NCHW): same, per-channel, per-row, scalar-ish."""
    choice = str(rng.choice(["same", "channel", "hw", "w", "scalar"], p=[0.5, 0.2, 0.1, 0.1, 0.1]))
    if choice == "same":
        return list(shape), choice
    if choice == "channel":
        return [1, shape[1], 1, 1], choice
    if choice == "hw":
        return [1, 1, shape[2], shape[3]], choice
    if choice == "w":
        return [1, 1, 1, shape[3]], choice
    return [1, 1, 1, 1], choice


def _build_binary(rng, op):
    from onnx import helper

    rank4 = rng.random() < 0.8
    shape = _nchw(rng) if rank4 else [1, int(rng.integers(1, 33))]
    other, bmode = _broadcast_shape(rng, shape) if rank4 else (list(shape), "same")
    const = bool(rng.random() < 0.3)
    swap = bool(rng.random() < 0.3)
    params = dict(x=shape, other=other, broadcast=bmode, const=const)
    if const:
        c = Dist(rng).sample(rng, other)
        inits = [_init("c", c)]
        ins = ["c", "a"] if swap else ["a", "c"]
        inputs = [("a", shape)]
    else:
        inits = []
        ins = ["b", "a"] if swap else ["a", "b"]
        inputs = [("a", shape), ("b", other)]
    params["swapped"] = swap
    nodes = [helper.make_node(op, ins, ["y"])]
    if op == "Add":
        _maybe_relu(rng, nodes, "y", params, p=0.1)
    return nodes, inputs, inits, 13, params


def _build_add(rng):
    return _build_binary(rng, "Add")


def _build_mul(rng):
    return _build_binary(rng, "Mul")


def _build_pool(rng, op):
    from onnx import helper

    shape = _nchw(rng)
    if op == "MaxPool" and rng.random() < 0.1:
        return [helper.make_node("GlobalMaxPool", ["x"], ["y"])], [("x", shape)], [], 13, dict(op="GlobalMaxPool", x=shape)
    k = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    if rng.random() < 0.6:
        shape[2], shape[3] = max(shape[2], k[0]), max(shape[3], k[1])
    pad_attrs, pad_mode = _pads_2d(rng, (shape[2], shape[3]), k, s)
    attrs = dict(kernel_shape=list(k), strides=list(s), **pad_attrs)
    params = dict(op=op, x=shape, k=k, s=s, pad=pad_mode)
    params.update({kk: v for kk, v in pad_attrs.items() if kk == "pads"})
    if op == "AveragePool":
        # count_include_pad=1 only matters with padding; TFLite's SAME excludes the padding
        # (TFLite cannot exclude arbitrary pads from the divisor: count_include_pad=0 with such
        # pads is a legitimate refusal, kept rare)
        cip = int(rng.random() < 0.85) if pad_mode == "explicit_random" else 0
        attrs["count_include_pad"] = cip
        params["count_include_pad"] = cip
    return [helper.make_node(op, ["x"], ["y"], **attrs)], [("x", shape)], [], 13, params


def _build_max_pool(rng):
    return _build_pool(rng, "MaxPool")


def _build_avg_pool(rng):
    return _build_pool(rng, "AveragePool")


def _build_mean(rng):
    from onnx import helper

    shape = _nchw(rng)
    if rng.random() < 0.3:
        return [helper.make_node("GlobalAveragePool", ["x"], ["y"])], [("x", shape)], [], 13, dict(op="GlobalAveragePool", x=shape)
    subsets = [[2, 3], [2, 3], [2, 3], [1], [2], [3], [1, 2], [1, 3], [1, 2, 3]]
    axes = subsets[int(rng.integers(len(subsets)))]
    keep = int(rng.integers(0, 2))
    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=axes, keepdims=keep)
    return [node], [("x", shape)], [], 13, dict(op="ReduceMean", x=shape, axes=axes, keepdims=keep)


def _elementwise_shape(rng):
    r = rng.random()
    if r < 0.6:
        return _nchw(rng)
    if r < 0.8:
        return [1, int(rng.integers(1, 65))]
    return [1, int(rng.integers(1, 9)), int(rng.integers(1, 17))]


def _build_unary(rng, op, opset=13):
    from onnx import helper

    shape = _elementwise_shape(rng)
    return [helper.make_node(op, ["x"], ["y"])], [("x", shape)], [], opset, dict(x=shape)


def _build_softmax(rng):
    from onnx import helper

    shape = _elementwise_shape(rng)
    shape[-1] = max(shape[-1], 2)  # a softmax over one element is the constant 1
    return [helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [("x", shape)], [], 13, dict(x=shape, axis=-1)


def _build_logistic(rng):
    return _build_unary(rng, "Sigmoid")


def _build_tanh(rng):
    return _build_unary(rng, "Tanh")


def _build_hardswish(rng):
    return _build_unary(rng, "HardSwish", opset=14)


def _build_concat(rng):
    from onnx import helper

    shape = _nchw(rng)
    n_in = 2 if rng.random() < 0.8 else 3
    inputs = [("a", shape)]
    for name in "bc"[: n_in - 1]:
        s = list(shape)
        s[1] = int(rng.integers(1, 9))
        inputs.append((name, s))
    node = helper.make_node("Concat", [n for n, _ in inputs], ["y"], axis=1)
    return [node], inputs, [], 13, dict(inputs=[s for _, s in inputs], axis=1)


def _build_pad(rng):
    from onnx import helper

    shape = _nchw(rng)
    pads = [0, 0, 0, 0, 0, 0, 0, 0]
    for axis in (2, 3):
        pads[axis], pads[axis + 4] = int(rng.integers(0, 4)), int(rng.integers(0, 4))
    if rng.random() < 0.25:
        pads[1], pads[5] = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    if not any(pads):
        pads[2] = 1
    ins = ["x", "pads"]
    inits = [_init("pads", np.array(pads, dtype=np.int64))]
    if rng.random() < 0.5:
        inits.append(_init("value", np.array(0.0, dtype=np.float32)))
        ins.append("value")
    return [helper.make_node("Pad", ins, ["y"], mode="constant")], [("x", shape)], inits, 13, dict(x=shape, pads=pads)


def _build_reshape(rng):
    from onnx import helper

    shape = _nchw(rng)
    c, h, w = shape[1:]
    total = c * h * w
    options = [[1, total], [1, c, h * w], [1, c * h, w], [1, h, w, c], [1, -1], [1, w, h, c], [total]]
    # a random factorization of the element count into up to 3 dims
    f1 = [d for d in range(1, total + 1) if total % d == 0]
    a = int(rng.choice(f1))
    f2 = [d for d in range(1, total // a + 1) if (total // a) % d == 0]
    b = int(rng.choice(f2))
    options.append([1, a, b, total // a // b])
    target = options[int(rng.integers(len(options)))]
    inits = [_init("shape", np.array(target, dtype=np.int64))]
    return [helper.make_node("Reshape", ["x", "shape"], ["y"])], [("x", shape)], inits, 13, dict(x=shape, to=target)


def _build_prelu(rng):
    """PRelu with a constant slope: per channel as PyTorch's nn.PReLU(C) exports it ([C, 1, 1]),
    one shared slope ([1]), or one per element; slopes of either sign, some above 1."""
    from onnx import helper

    shape = _nchw(rng)
    mode = str(rng.choice(["channel", "shared", "full", "row"], p=[0.5, 0.2, 0.15, 0.15]))
    sshape = {"channel": [shape[1], 1, 1], "shared": [1], "full": shape[1:], "row": [shape[3]]}[mode]
    spread = _logu(rng, 0.01, 2.0)
    slope = (rng.uniform(-0.5, 1.0, sshape) * spread).astype(np.float32)
    return ([helper.make_node("PRelu", ["x", "slope"], ["y"])], [("x", shape)], [_init("slope", slope)], 13,
            dict(x=shape, slope=sshape, mode=mode))


def _build_resize(rng):
    """Nearest Resize in PyTorch's form (asymmetric + floor, `scales`), with half-pixel or
    align-corners coordinates (`sizes`), downsampling by a whole factor, or opset-9 Upsample."""
    from onnx import helper

    shape = _nchw(rng, hmax=8)
    form = str(rng.choice(["torch", "half_pixel", "align_corners", "down", "upsample"], p=[0.35, 0.2, 0.15, 0.15, 0.15]))
    fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    out = [shape[0], shape[1], shape[2] * fh, shape[3] * fw]
    if form == "down":
        shape[2], shape[3] = shape[2] * fh, shape[3] * fw
        out = [shape[0], shape[1], shape[2] // fh, shape[3] // fw]
    params = dict(x=shape, out=out, form=form)
    if form == "upsample":
        scales = _init("scales", np.array([1, 1, fh, fw], np.float32))
        return [helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")], [("x", shape)], [scales], 9, params
    if form == "torch":
        scales = _init("scales", np.array([1, 1, fh, fw], np.float32))
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest",
                                coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        return [node], [("x", shape)], [scales], 13, params
    coord, rounding = {"half_pixel": ("half_pixel", "round_prefer_ceil"), "align_corners": ("align_corners", "round_prefer_ceil"),
                       "down": ("asymmetric", "floor")}[form]
    sizes = _init("sizes", np.array(out, np.int64))
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                            coordinate_transformation_mode=coord, nearest_mode=rounding)
    return [node], [("x", shape)], [sizes], 13, params


def _build_reduce(rng, op, subsets, p_input, input_opset, attr_opset):
    """One reduction over a random axes subset, with and without keepdims; the axes as an input
    (probability p_input, at input_opset) or an attribute (at attr_opset)."""
    from onnx import helper

    shape = _nchw(rng)
    axes = subsets[int(rng.integers(len(subsets)))]
    keep = int(rng.integers(0, 2))
    params = dict(x=shape, axes=axes, keepdims=keep)
    if rng.random() < p_input:
        node = helper.make_node(op, ["x", "axes"], ["y"], keepdims=keep)
        return [node], [("x", shape)], [_init("axes", np.array(axes, np.int64))], input_opset, params
    return [helper.make_node(op, ["x"], ["y"], axes=axes, keepdims=keep)], [("x", shape)], [], attr_opset, params


def _build_reduce_max(rng):
    """ReduceMax over the axes exporters use (spatial for a global max, channels, one spatial
    axis, all), axes as an attribute (opset 13) or input (opset 18)."""
    return _build_reduce(rng, "ReduceMax", [[2, 3], [2, 3], [1], [2], [3], [-1], [1, 2, 3]], 0.3, 18, 13)


def _build_elu(rng):
    return _build_unary(rng, "Elu")


def _build_abs(rng):
    return _build_unary(rng, "Abs")


def _build_batch_norm(rng):
    """A BatchNormalization with no layer before it to fold into (PyTorch's BatchNorm2d on an
    input or after an Add): it becomes a per-channel multiply and add (MUL and ADD with constant
    operands)."""
    from onnx import helper

    shape = _nchw(rng)
    c = shape[1]
    scale = rng.uniform(0.2, 2.0, c) * rng.choice([-1.0, 1.0], c)
    bias = rng.normal(0.0, 1.0, c)
    mean = rng.normal(0.0, 1.0, c)
    var = rng.uniform(0.1, 3.0, c)
    inits = [_init(n, a.astype(np.float32)) for n, a in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var))]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], epsilon=1e-5)
    return [node], [("x", shape)], inits, 13, dict(x=shape)


def _build_reduce_sum(rng):
    """ReduceSum over spatial, channel, single or all axes (batch too); axes as an attribute
    (opset 11) or an input (opset 13, where ReduceSum's axes became an input)."""
    return _build_reduce(rng, "ReduceSum", [[2, 3], [1], [2], [3], [-1], [1, 2, 3], [0, 1]], 0.5, 13, 11)


def _build_extremum(rng, op):
    """ONNX Max/Min (TFLite MAXIMUM/MINIMUM) in the forms exporters write: two activations or an
    activation and a constant (broadcast either way), a clamp against a scalar (`max(x, 0)`,
    `min(x, 6)`), one operand from a Sigmoid (fixed int8 parameters, so the int8 graph requantizes
    it onto the shared scale), or three inputs (opset 8's variadic form)."""
    from onnx import helper

    form = str(rng.choice(["binary", "scalar", "sigmoid", "three"], p=[0.55, 0.15, 0.15, 0.15]))
    if form == "binary":
        nodes, inputs, inits, opset, params = _build_binary(rng, op)
        params["form"] = form
        return nodes, inputs, inits, opset, params
    shape = _nchw(rng)
    params = dict(form=form, x=shape)
    if form == "scalar":
        bound = float(rng.choice([0.0, 6.0, -1.0, 1.0])) * (1 if rng.random() < 0.7 else _logu(rng, 0.1, 10.0))
        params["bound"] = bound
        ins = ["c", "a"] if rng.random() < 0.3 else ["a", "c"]
        return ([helper.make_node(op, ins, ["y"])], [("a", shape)],
                [_init("c", np.array([bound], np.float32))], 13, params)
    other, bmode = _broadcast_shape(rng, shape)
    params["other"], params["broadcast"] = other, bmode
    if form == "sigmoid":
        nodes = [helper.make_node("Sigmoid", ["b"], ["s"]), helper.make_node(op, ["a", "s"], ["y"])]
        return nodes, [("a", shape), ("b", other)], [], 13, params
    third, _ = _broadcast_shape(rng, shape)
    params["third"] = third
    return [helper.make_node(op, ["a", "b", "c"], ["y"])], [("a", shape), ("b", other), ("c", third)], [], 13, params


def _build_max(rng):
    return _build_extremum(rng, "Max")


def _build_min(rng):
    return _build_extremum(rng, "Min")


def _data_shape(rng):
    """NCHW mostly; now and then a [1, C, L] sequence (Conv1d) or a [1, F] feature vector."""
    kind = str(rng.choice(["nchw", "ncl", "nf"], p=[0.7, 0.2, 0.1]))
    if kind == "nchw":
        return _nchw(rng)
    if kind == "ncl":
        return [1, int(rng.integers(1, 9)), int(rng.integers(1, 25))]
    return [1, int(rng.integers(1, 49))]


def _build_slice(rng):
    """ONNX Slice on an activation (opset 13: starts/ends/axes/steps inputs, axes and steps
    sometimes left out; opset 9: attributes), with negative and out-of-range indices, INT64 ends
    and steps of either sign."""
    from onnx import helper

    shape = _data_shape(rng)
    rank = len(shape)
    axes = sorted(int(a) for a in rng.choice(range(1, rank), size=int(rng.integers(1, rank)), replace=False))
    old = bool(rng.random() < 0.15)
    starts, ends, steps = [], [], []
    for a in axes:
        d = shape[a]
        step = 1 if old else int(rng.choice([1, 1, 2, 3, -1, -2]))
        lo = int(rng.integers(0, d))
        hi = int(rng.integers(lo + 1, d + 1))
        if step > 0:
            s, e = lo, hi
            if rng.random() < 0.2:
                e = int(np.iinfo(np.int64).max)
        else:
            s, e = hi - 1, lo - 1
            if e < 0:  # down to the first element: an end before it (-1 would be the last)
                e = -d - 5 if rng.random() < 0.5 else int(np.iinfo(np.int64).min)
        if rng.random() < 0.25:
            s = s - d if s < d else s
        if e >= 0 and e <= d and rng.random() < 0.2 and e - d < 0:
            e = e - d if (e - d) != 0 else e
        starts.append(s)
        ends.append(e)
        steps.append(step)
    params = dict(x=shape, axes=axes, starts=starts, ends=ends, steps=steps, old=old)
    if old:
        node = helper.make_node("Slice", ["x"], ["y"], starts=starts, ends=ends, axes=axes)
        return [node], [("x", shape)], [], 9, params
    inits = [_init("starts", np.array(starts, np.int64)), _init("ends", np.array(ends, np.int64))]
    ins = ["x", "starts", "ends"]
    full = axes == list(range(len(axes))) and all(st == 1 for st in steps)
    if not (full and rng.random() < 0.5):
        inits.append(_init("axes", np.array(axes, np.int64)))
        ins.append("axes")
        if any(st != 1 for st in steps) or rng.random() < 0.5:
            inits.append(_init("steps", np.array(steps, np.int64)))
            ins.append("steps")
    return [helper.make_node("Slice", ins, ["y"])], [("x", shape)], inits, 13, params


def _build_split(rng):
    """ONNX Split of an activation (sizes as opset 13's input, opset 11's attribute, or equal
    parts); one of its outputs is the model's."""
    from onnx import helper

    shape = _data_shape(rng)
    rank = len(shape)
    axis = int(rng.integers(1, rank))
    d = shape[axis]
    if d < 2:
        shape[axis] = d = int(rng.integers(2, 9))
    n = int(rng.integers(2, min(d, 4) + 1))
    form = str(rng.choice(["input", "attribute", "equal"]))
    if form == "equal":
        shape[axis] = d = d - d % n
        sizes = [d // n] * n
    else:
        cuts = sorted(int(c) for c in rng.choice(range(1, d), size=n - 1, replace=False))
        sizes = [b - a for a, b in zip([0] + cuts, cuts + [d])]
    k = int(rng.integers(0, n))
    outs = [f"part{i}" if i != k else "y" for i in range(n)]
    neg = bool(rng.random() < 0.3)
    attrs = dict(axis=axis - rank if neg else axis)
    params = dict(x=shape, axis=axis, sizes=sizes, taken=k, form=form)
    if form == "input":
        return ([helper.make_node("Split", ["x", "split"], outs, **attrs)], [("x", shape)],
                [_init("split", np.array(sizes, np.int64))], 13, params)
    if form == "attribute":
        return [helper.make_node("Split", ["x"], outs, split=sizes, **attrs)], [("x", shape)], [], 11, params
    return [helper.make_node("Split", ["x"], outs, **attrs)], [("x", shape)], [], 13, params


def _build_gather(rng):
    """ONNX Gather of an activation on constant indices: one index (the axis goes away, as
    `x[:, 3]` exports) or an evenly spaced run (`x[:, 1:7:2]`, reversed runs, negative indices)."""
    from onnx import helper

    shape = _data_shape(rng)
    rank = len(shape)
    axis = int(rng.integers(1, rank))
    d = shape[axis]
    if rng.random() < 0.5:
        i = int(rng.integers(0, d))
        idx = np.array(i - d if rng.random() < 0.3 else i, np.int64)
    else:
        step = int(rng.choice([1, 1, 2, -1]))
        count = int(rng.integers(1, max(1, (d - 1) // abs(step) + 1) + 1))
        first = int(rng.integers(0, d - (count - 1) * abs(step)))
        run = [first + k * abs(step) for k in range(count)]
        idx = np.array(run[::-1] if step < 0 else run, np.int64)
        if rng.random() < 0.2:
            idx = idx - d
    params = dict(x=shape, axis=axis, indices=idx.tolist())
    return ([helper.make_node("Gather", ["x", "idx"], ["y"], axis=axis)], [("x", shape)],
            [_init("idx", idx)], 13, params)


def _build_log_softmax(rng):
    """ONNX LogSoftmax over the last axis (opset 13), over the channels of an NCHW tensor (stored
    last in NHWC), or opset 11's form on a [1, F] vector, as classifier heads export it."""
    from onnx import helper

    form = str(rng.choice(["last", "channels", "opset11"], p=[0.5, 0.3, 0.2]))
    if form == "channels":
        shape = _nchw(rng, hmax=6)
        shape[1] = max(shape[1], 2)
        return [helper.make_node("LogSoftmax", ["x"], ["y"], axis=1)], [("x", shape)], [], 13, dict(x=shape, form=form)
    if form == "opset11":
        shape = [1, int(rng.integers(2, 65))]
        return [helper.make_node("LogSoftmax", ["x"], ["y"], axis=1)], [("x", shape)], [], 11, dict(x=shape, form=form)
    shape = _elementwise_shape(rng)
    shape[-1] = max(shape[-1], 2)
    return [helper.make_node("LogSoftmax", ["x"], ["y"], axis=-1)], [("x", shape)], [], 13, dict(x=shape, form=form)


def _build_mirror_pad(rng):
    """ONNX Pad with mode reflect (PyTorch's ReflectionPad1d/2d export it): pads of up to
    `dim - 1` on height and width (NCHW) or the length ([1, C, L]), now and then the channels."""
    from onnx import helper

    shape = _nchw(rng) if rng.random() < 0.75 else [1, int(rng.integers(1, 9)), int(rng.integers(2, 25))]
    rank = len(shape)
    for a in range(2, rank):
        shape[a] = max(shape[a], 2)
    pads = [0] * (2 * rank)
    for a in range(2, rank):
        pads[a], pads[a + rank] = int(rng.integers(0, shape[a])), int(rng.integers(0, shape[a]))
    if shape[1] > 1 and rng.random() < 0.2:
        pads[1], pads[1 + rank] = int(rng.integers(0, shape[1])), int(rng.integers(0, shape[1]))
    if not any(pads):
        pads[rank - 1] = 1
    node = helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect")
    return [node], [("x", shape)], [_init("pads", np.array(pads, np.int64))], 13, dict(x=shape, pads=pads)


def _build_resize_bilinear(rng):
    """Linear Resize in PyTorch's form (`pytorch_half_pixel` + scales, `align_corners=False`),
    half-pixel, align-corners and asymmetric coordinates with sizes, downsampling by a whole
    factor, any output size, or opset-9 Upsample (linear, asymmetric)."""
    from onnx import helper

    shape = _nchw(rng, hmax=8)
    form = str(rng.choice(["torch", "half_pixel", "align_corners", "asymmetric", "down", "upsample", "any"],
                          p=[0.25, 0.2, 0.15, 0.1, 0.1, 0.1, 0.1]))
    fh, fw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    shape[2], shape[3] = max(shape[2], 2), max(shape[3], 2)
    out = [shape[0], shape[1], shape[2] * fh, shape[3] * fw]
    if form == "down":
        shape[2], shape[3] = shape[2] * fh, shape[3] * fw
        out = [shape[0], shape[1], shape[2] // fh, shape[3] // fw]
    if form == "any":  # any output size (sizes), half-pixel or align-corners positions
        out = [shape[0], shape[1], int(rng.integers(1, 17)), int(rng.integers(1, 17))]
    params = dict(x=shape, out=out, form=form)
    if form == "upsample":
        scales = _init("scales", np.array([1, 1, fh, fw], np.float32))
        return [helper.make_node("Upsample", ["x", "scales"], ["y"], mode="linear")], [("x", shape)], [scales], 9, params
    if form == "torch":
        scales = _init("scales", np.array([1, 1, fh, fw], np.float32))
        node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear",
                                coordinate_transformation_mode="pytorch_half_pixel")
        return [node], [("x", shape)], [scales], 13, params
    coord = {"half_pixel": "half_pixel", "align_corners": "align_corners", "asymmetric": "asymmetric",
             "down": "half_pixel", "any": str(rng.choice(["half_pixel", "align_corners"]))}[form]
    sizes = _init("sizes", np.array(out, np.int64))
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear", coordinate_transformation_mode=coord)
    return [node], [("x", shape)], [sizes], 13, params


BUILDERS = {
    "conv": _build_conv,
    "depthwise_conv": _build_depthwise_conv,
    "fully_connected": _build_fully_connected,
    "add": _build_add,
    "mul": _build_mul,
    "max_pool": _build_max_pool,
    "avg_pool": _build_avg_pool,
    "mean": _build_mean,
    "softmax": _build_softmax,
    "logistic": _build_logistic,
    "tanh": _build_tanh,
    "hardswish": _build_hardswish,
    "concat": _build_concat,
    "pad": _build_pad,
    "reshape": _build_reshape,
    "fully_connected_per_unit": _build_fully_connected_per_unit,
    "prelu": _build_prelu,
    "resize": _build_resize,
    "reduce_max": _build_reduce_max,
    "elu": _build_elu,
    "abs": _build_abs,
    "reduce_sum": _build_reduce_sum,
    "batch_norm": _build_batch_norm,
    "max": _build_max,
    "min": _build_min,
    "slice": _build_slice,
    "split": _build_split,
    "gather": _build_gather,
    "log_softmax": _build_log_softmax,
    "mirror_pad": _build_mirror_pad,
    "resize_bilinear": _build_resize_bilinear,
}
assert tuple(BUILDERS) == KINDS


def case_rng(kind: str, index: int) -> np.random.Generator:
    return np.random.default_rng([BASE_SEED, KINDS.index(kind), index])


def build_case(kind: str, index: int, root: Path) -> Case:
    """Write model.onnx, calib.npz and eval_float.npz of case (kind, index) under root."""
    import onnx

    rng = case_rng(kind, index)
    nodes, inputs, inits, opset, params = BUILDERS[kind](rng)
    model, out_shape = _model(nodes, inputs, "y", inits, opset)
    case = Case(id=f"{kind}-{index:03d}", kind=kind, dir=root / f"{kind}-{index:03d}",
                input_names=[n for n, _ in inputs], params=params)
    case.dir.mkdir(parents=True, exist_ok=True)
    onnx.save(model, case.dir / "model.onnx")
    n_eval = int(rng.integers(4, 9))
    calib, ev, dists = {}, {}, []
    for name, shape in inputs:
        dist = Dist(rng)
        dists.append(dist.describe())
        calib[name], ev[name] = _calib_and_eval(rng, shape, dist, n_eval)
    params["data"] = dists
    params["out"] = out_shape
    if kind in ("conv", "depthwise_conv", "fully_connected") and rng.random() < 0.2:
        case.quantize_args.append("--per-tensor")
        params["per_tensor"] = True
    elif kind == "fully_connected" and rng.random() < 0.1:
        case.quantize_args.append("--per-tensor=dense")
        params["per_tensor"] = "dense"
    if len(inputs) == 1:
        np.savez(case.dir / "calib.npz", x_calib=calib[inputs[0][0]])
    else:
        np.savez(case.dir / "calib.npz", **calib)
    np.savez(case.dir / "eval_float.npz", **ev)
    return case


# ----------------------------------------------------------------------------------------------
# TFLite's input quantization and the TFLM / LiteRT runs (child process)
# ----------------------------------------------------------------------------------------------


def quantize_like_tflite(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """q = clip(round_half_away_from_zero(x / scale) + zp, -128, 127), the division in float32."""
    v = np.asarray(x, dtype=np.float32) / np.float32(scale)
    r = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    return np.clip(r.astype(np.int64) + int(zero_point), -128, 127).astype(np.int8)


def _tflm_case(entry: dict) -> dict:
    """Run one case through TFLM and LiteRT; writes eval_q.npz, tflm.npz, litert.npz."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro import runtime

    cdir = Path(entry["dir"])
    blob = (cdir / "m.tflite").read_bytes()
    result: dict = {"id": entry["id"]}
    ev = np.load(cdir / "eval_float.npz")
    floats = [ev[name] for name in entry["inputs"]]
    try:
        it = runtime.Interpreter.from_bytes(blob, arena_size=TFLM_ARENA_BYTES)
        details = [it.get_input_details(i) for i in range(len(floats))]
        out_detail = it.get_output_details(0)
    except Exception as exc:  # noqa: BLE001 - any rejection of the file is the finding
        result.update(status="tflm_error", error=f"TFLM load: {type(exc).__name__}: {exc}")
        return result
    qs = []
    for x, det in zip(floats, details):
        if np.dtype(det["dtype"]) != np.int8:
            result.update(status="tflm_error", error=f"model input dtype {det['dtype']}, expected int8")
            return result
        qp = det["quantization_parameters"]
        q = quantize_like_tflite(x, float(qp["scales"][0]), int(qp["zero_points"][0]))
        qs.append(q.reshape((len(x), *[int(d) for d in det["shape"]])))
    np.savez(cdir / "eval_q.npz", **{name: q for name, q in zip(entry["inputs"], qs)})
    outs = []
    try:
        for i in range(len(qs[0])):
            for j, q in enumerate(qs):
                it.set_input(q[i], j)
            it.invoke()
            outs.append(np.array(it.get_output(0), copy=True))
    except Exception as exc:  # noqa: BLE001
        result.update(status="tflm_error", error=f"TFLM invoke: {type(exc).__name__}: {exc}")
        return result
    ref = np.stack(outs)
    np.savez(cdir / "tflm.npz", y=ref)
    result.update(status="ok", out_dtype=str(ref.dtype), out_shape=[int(d) for d in out_detail["shape"]])
    # LiteRT reference kernels: reported, never asserted
    try:
        lit = Interpreter(model_content=blob, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        lit.allocate_tensors()
        result["ops"] = [op["op_name"] for op in lit._get_ops_details()]
        ind, outd = lit.get_input_details(), lit.get_output_details()[0]
        louts = []
        for i in range(len(qs[0])):
            for d, q in zip(ind, qs):
                lit.set_tensor(d["index"], q[i].reshape(d["shape"]))
            lit.invoke()
            louts.append(lit.get_tensor(outd["index"]).copy())
        lref = np.stack(louts)
        result["litert_max_diff"] = int(np.abs(lref.astype(np.int32) - ref.astype(np.int32).reshape(lref.shape)).max())
    except Exception as exc:  # noqa: BLE001
        result["litert_error"] = f"{type(exc).__name__}: {exc}"
    return result


def tflm_worker_main(manifest_path: str, out_path: str) -> None:
    """Child process: every case of the manifest not yet in out_path. Writes a `started` line
    before each case, so a parent can tell which case crashed the process."""
    entries = json.loads(Path(manifest_path).read_text())
    done = set()
    out = Path(out_path)
    if out.exists():
        for line in out.read_text().splitlines():
            rec = json.loads(line) if line.strip() else None
            if rec and rec["status"] != "started":
                done.add(rec["id"])
    with out.open("a") as f:
        for entry in entries:
            if entry["id"] in done:
                continue
            f.write(json.dumps({"id": entry["id"], "status": "started"}) + "\n")
            f.flush()
            try:
                res = _tflm_case(entry)
            except Exception:  # noqa: BLE001
                res = {"id": entry["id"], "status": "tflm_error", "error": traceback.format_exc(limit=3)}
            f.write(json.dumps(res) + "\n")
            f.flush()


def read_worker_results(out_path: Path) -> tuple[dict[str, dict], str | None]:
    """Results by id, and the id of a case that started without finishing (a crash), if any."""
    results: dict[str, dict] = {}
    started = None
    if not out_path.exists():
        return results, None
    for line in out_path.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec["status"] == "started":
            started = rec["id"]
        else:
            results[rec["id"]] = rec
            if started == rec["id"]:
                started = None
    return results, started


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--tflm-worker":
        tflm_worker_main(sys.argv[2], sys.argv[3])
    else:
        print(__doc__)
        sys.exit(2)
