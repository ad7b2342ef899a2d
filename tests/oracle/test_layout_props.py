"""Property tests: random small NCHW graphs, tinyq's float engine against onnxruntime.

tinyq converts every graph to NHWC on import; these graphs stress that conversion: odd kernels,
strides, dilations, explicit and automatic padding, depthwise convs, pools, BatchNorm, branches,
and heads that flatten (where the element order depends on the layout). A second family starts
from a tf2onnx-style NHWC input and Transposes in and out.

A graph is first drawn as a plain "spec" (lists and dicts, printed by hypothesis on failure) and
then built with onnx.helper. FIXED_SPECS make sure every layer kind and head runs whatever
hypothesis draws; AXIS_CASES put one op with an axis, pads or broadcast after a conv (Concat,
Softmax, ReduceMean, Pad, Transpose, Reshape, Squeeze, ...), where an NHWC importer must remap it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import oracle_lib

OPSET = 13
IR_VERSION = 7
REL_TOL = 1e-4
ABS_FLOOR = 1e-5

PROPS = settings(
    derandomize=True,
    database=None,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HEADS = ["tensor", "flatten_gemm", "reshape_gemm", "gap_gemm"]
DENSE_FORMS = ["gemm_transB1", "gemm_transB0", "matmul_add"]


# ---------------------------------------------------------------- spec drawing (shape-aware)

def _conv_out(size: int, k: int, s: int, d: int, pad_a: int, pad_b: int, auto_pad: str) -> int:
    ek = (k - 1) * d + 1
    if auto_pad == "SAME_UPPER":
        return -(-size // s)
    if auto_pad == "VALID":
        return (size - ek) // s + 1 if size >= ek else 0
    padded = size + pad_a + pad_b
    return (padded - ek) // s + 1 if padded >= ek else 0


@st.composite
def conv_layer(draw, c: int, h: int, w: int):
    depthwise = c > 1 and draw(st.booleans())
    out = c * draw(st.integers(1, 2)) if depthwise else draw(st.integers(1, 8))
    k = [draw(st.integers(1, 5)), draw(st.integers(1, 5))]
    s = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "VALID"]))
    # onnxruntime refuses dilation with SAME_* padding
    dilations = st.just(1) if auto_pad == "SAME_UPPER" else st.integers(1, 2)
    d = [draw(dilations), draw(dilations)]
    pads = [draw(st.integers(0, 2)) for _ in range(4)] if auto_pad == "NOTSET" else [0, 0, 0, 0]
    oh = _conv_out(h, k[0], s[0], d[0], pads[0], pads[2], auto_pad)
    ow = _conv_out(w, k[1], s[1], d[1], pads[1], pads[3], auto_pad)
    layer = {"op": "Conv", "out": out, "group": c if depthwise else 1, "kernel": k,
             "strides": s, "dilations": d, "auto_pad": auto_pad, "pads": pads}
    return layer, (out, oh, ow)


@st.composite
def pool_layer(draw, c: int, h: int, w: int):
    op = draw(st.sampled_from(["MaxPool", "AveragePool"]))
    k = [draw(st.integers(2, 3)), draw(st.integers(2, 3))]
    s = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
    # onnxruntime requires each pad to be smaller than the kernel
    pads = [draw(st.integers(0, min(2, k[i % 2] - 1))) for i in range(4)]
    oh = _conv_out(h, k[0], s[0], 1, pads[0], pads[2], "NOTSET")
    ow = _conv_out(w, k[1], s[1], 1, pads[1], pads[3], "NOTSET")
    return {"op": op, "kernel": k, "strides": s, "pads": pads}, (c, oh, ow)


@st.composite
def activation_layer(draw, c: int, h: int, w: int):
    op = draw(st.sampled_from(["Relu", "Clip", "LeakyRelu", "Sigmoid"]))
    alpha = draw(st.sampled_from([0.01, 0.1, 0.2, 0.3]))
    return ({"op": op, "alpha": alpha} if op == "LeakyRelu" else {"op": op}), (c, h, w)


@st.composite
def add_layer(draw, c: int, h: int, w: int):
    other = draw(st.sampled_from(["branch_conv1", "branch_conv3", "channel_const"]))
    return {"op": "Add", "other": other}, (c, h, w)


@st.composite
def graph_spec(draw, nhwc_input: bool):
    c, h, w = draw(st.integers(1, 8)), draw(st.integers(4, 20)), draw(st.integers(4, 20))
    spec = {"nhwc_input": nhwc_input, "input_chw": [c, h, w], "layers": []}
    shape = (c, h, w)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "act", "bn", "add"]))
        if kind == "bn":
            layer, new_shape = {"op": "BatchNormalization"}, shape
        else:
            strategy = {"conv": conv_layer, "pool": pool_layer, "act": activation_layer,
                        "add": add_layer}[kind]
            layer, new_shape = draw(strategy(*shape))
        if min(new_shape) < 1:  # would be empty: leave this layer out
            continue
        spec["layers"].append(layer)
        shape = new_shape
    if not spec["layers"]:
        spec["layers"].append({"op": "Relu"})
    spec["head"] = draw(st.sampled_from(HEADS))
    spec["dense"] = draw(st.sampled_from(DENSE_FORMS))
    spec["units"] = draw(st.integers(1, 10))
    spec["seed"] = draw(st.integers(0, 2**32 - 1))
    return spec


# ---------------------------------------------------------------- building the ONNX model

class Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, base: str, array: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weights(self, shape, fan_in: int) -> np.ndarray:
        return (self.rng.standard_normal(shape) / np.sqrt(max(fan_in, 1))).astype(np.float32)

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(f"n_{op}"), **attrs))
        return out

    def conv(self, x: str, c: int, layer: dict) -> str:
        group, out = layer["group"], layer["out"]
        kh, kw = layer["kernel"]
        fan_in = (c // group) * kh * kw
        w = self.const("W", self.weights([out, c // group, kh, kw], fan_in))
        b = self.const("B", self.weights([out], 1) * 0.1)
        attrs = dict(kernel_shape=[kh, kw], strides=layer["strides"],
                     dilations=layer["dilations"], group=group)
        if layer["auto_pad"] == "NOTSET":
            attrs["pads"] = layer["pads"]
        else:
            attrs["auto_pad"] = layer["auto_pad"]
        return self.node("Conv", [x, w, b], **attrs)

    def layer(self, x: str, c: int, layer: dict) -> tuple[str, int]:
        op = layer["op"]
        if op == "Conv":
            return self.conv(x, c, layer), layer["out"]
        if op in ("MaxPool", "AveragePool"):
            return self.node(op, [x], kernel_shape=layer["kernel"], strides=layer["strides"],
                             pads=layer["pads"]), c
        if op == "Relu" or op == "Sigmoid":
            return self.node(op, [x]), c
        if op == "LeakyRelu":
            return self.node(op, [x], alpha=layer["alpha"]), c
        if op == "Clip":
            lo = self.const("clip_min", np.array(0.0, np.float32))
            hi = self.const("clip_max", np.array(6.0, np.float32))
            return self.node("Clip", [x, lo, hi]), c
        if op == "BatchNormalization":
            scale = self.const("bn_scale", self.rng.uniform(0.5, 1.5, c).astype(np.float32))
            bias = self.const("bn_bias", self.rng.normal(0, 0.5, c).astype(np.float32))
            mean = self.const("bn_mean", self.rng.normal(0, 0.5, c).astype(np.float32))
            var = self.const("bn_var", self.rng.uniform(0.1, 2.0, c).astype(np.float32))
            return self.node("BatchNormalization", [x, scale, bias, mean, var], epsilon=1e-5), c
        if op == "Add":
            if layer["other"] == "channel_const":
                other = self.const("chan", self.rng.normal(0, 1, [c, 1, 1]).astype(np.float32))
            else:
                k = 1 if layer["other"] == "branch_conv1" else 3
                p = k // 2
                other = self.conv(x, c, {"group": 1, "out": c, "kernel": [k, k], "strides": [1, 1],
                                         "dilations": [1, 1], "auto_pad": "NOTSET",
                                         "pads": [p, p, p, p]})
            return self.node("Add", [x, other]), c
        raise AssertionError(f"unknown layer {op}")

    def dense(self, x: str, features: int, units: int, form: str) -> str:
        bias = self.const("fc_b", self.weights([units], 1) * 0.1)
        if form == "gemm_transB1":
            w = self.const("fc_w", self.weights([units, features], features))
            return self.node("Gemm", [x, w, bias], transB=1)
        w = self.const("fc_w", self.weights([features, units], features))
        if form == "gemm_transB0":
            return self.node("Gemm", [x, w, bias], transB=0)
        return self.node("Add", [self.node("MatMul", [x, w]), bias])


def build_model(spec: dict) -> onnx.ModelProto:
    b = Builder(spec["seed"])
    c, h, w = spec["input_chw"]
    if spec["nhwc_input"]:
        x_shape = [1, h, w, c]
        x = b.node("Transpose", ["x"], perm=[0, 3, 1, 2])
    else:
        x_shape = [1, c, h, w]
        x = "x"
    for layer in spec["layers"]:
        x, c = b.layer(x, c, layer)

    head = spec["head"]
    if head == "gap_gemm":
        x = b.node("Flatten", [b.node("GlobalAveragePool", [x])], axis=1)
        features = c
    else:
        if spec["nhwc_input"]:
            x = b.node("Transpose", [x], perm=[0, 2, 3, 1])
        if head == "flatten_gemm":
            x = b.node("Flatten", [x], axis=1)
        elif head == "reshape_gemm":
            x = b.node("Reshape", [x, b.const("shape", np.array([1, -1], np.int64))])
        features = None
    if head != "tensor":
        if features is None:
            features = c * _spatial_size(spec)
        x = b.dense(x, features, spec["units"], spec["dense"])

    b.nodes[-1].output[0] = "y"
    graph = helper.make_graph(
        b.nodes, "layout_prop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="tinyq-oracle")
    model.ir_version = IR_VERSION
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    return model


def _spatial_size(spec: dict) -> int:
    """H*W after the body, recomputed from the spec."""
    _, h, w = spec["input_chw"]
    for layer in spec["layers"]:
        if layer["op"] == "Conv":
            ap = layer["auto_pad"]
        elif layer["op"] in ("MaxPool", "AveragePool"):
            ap = "NOTSET"
        else:
            continue
        d = layer.get("dilations", [1, 1])
        k, s, p = layer["kernel"], layer["strides"], layer["pads"]
        h = _conv_out(h, k[0], s[0], d[0], p[0], p[2], ap)
        w = _conv_out(w, k[1], s[1], d[1], p[1], p[3], ap)
    return h * w


def input_array(spec: dict) -> np.ndarray:
    c, h, w = spec["input_chw"]
    shape = [1, h, w, c] if spec["nhwc_input"] else [1, c, h, w]
    return np.random.default_rng(spec["seed"] ^ 0x5EED).standard_normal(shape).astype(np.float32)


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


# ---------------------------------------------------------------- the property

def check_against_onnxruntime(binary: Path, spec: dict) -> None:
    model = build_model(spec)
    x = input_array(spec)
    ref = ort_run(model, x)
    with tempfile.TemporaryDirectory(prefix="tinyq_layout_") as tmp:
        tmp = Path(tmp)
        onnx.save(model, str(tmp / "model.onnx"))
        np.savez(tmp / "data.npz", x=x)
        proc = oracle_lib.run_tinyq(binary, "run", tmp / "model.onnx", "--data", tmp / "data.npz",
                                    "-o", tmp / "out.npz")
        assert proc.returncode == 0, f"tinyq run failed: {oracle_lib.describe_failure(proc)}\nspec={spec}"
        got = oracle_lib.load_npz(tmp / "out.npz").get("y")
    assert got is not None, "no `y` in tinyq's output"
    assert got.dtype == np.float32 and got.shape == ref.shape, (
        f"tinyq y {got.dtype}{list(got.shape)}, onnxruntime {ref.dtype}{list(ref.shape)}\nspec={spec}"
    )
    diff = float(np.max(np.abs(got.astype(np.float64) - ref)))
    scale = float(np.max(np.abs(ref)))
    assert diff <= max(REL_TOL * scale, ABS_FLOOR), (
        f"max|diff| {diff:.3g} vs max|ref| {scale:.3g} (ratio {diff / max(scale, 1e-30):.3g})\n"
        f"spec={spec}"
    )


@PROPS
@given(spec=graph_spec(nhwc_input=False))
def test_random_nchw_graph_matches_onnxruntime(tinyq_bin, spec):
    check_against_onnxruntime(tinyq_bin, spec)


@PROPS
@given(spec=graph_spec(nhwc_input=True))
def test_random_nhwc_transposed_graph_matches_onnxruntime(tinyq_bin, spec):
    check_against_onnxruntime(tinyq_bin, spec)


# ---------------------------------------------------------------- the generator itself

@pytest.mark.parametrize("nhwc_input", [False, True])
def test_generated_graphs_are_valid_onnx(nhwc_input):
    """The generator's own check (no tinyq): every drawn spec builds, checks and runs in onnxruntime."""

    @PROPS
    @given(spec=graph_spec(nhwc_input=nhwc_input))
    def build_and_run(spec):
        ref = ort_run(build_model(spec), input_array(spec))
        assert np.all(np.isfinite(ref))
        c = spec["input_chw"][0]
        for layer in spec["layers"]:
            c = layer.get("out", c)
        if spec["head"] != "tensor":
            assert ref.shape == (1, spec["units"])
        elif not spec["nhwc_input"]:
            assert ref.shape[:2] == (1, c)
        else:
            assert ref.shape[0] == 1 and ref.shape[3] == c

    build_and_run()


# ---------------------------------------------------------------- fixed coverage

def _conv(out, group=1, kernel=(3, 3), strides=(1, 1), dilations=(1, 1), auto_pad="NOTSET",
          pads=(1, 1, 1, 1)):
    return {"op": "Conv", "out": out, "group": group, "kernel": list(kernel), "strides": list(strides),
            "dilations": list(dilations), "auto_pad": auto_pad, "pads": list(pads)}


def _spec(chw, layers, head="tensor", dense="gemm_transB1", nhwc=False, units=4, seed=7):
    return {"nhwc_input": nhwc, "input_chw": list(chw), "layers": layers, "head": head,
            "dense": dense, "units": units, "seed": seed}


# Every layer kind, padding mode and head at least once, whatever hypothesis happens to draw.
FIXED_SPECS = {
    "conv_pads_asym": _spec([3, 9, 8], [_conv(5, kernel=(3, 2), pads=(0, 2, 1, 0))]),
    "conv_same_upper_s2": _spec([2, 9, 7], [_conv(4, kernel=(4, 3), strides=(2, 2), auto_pad="SAME_UPPER", pads=(0, 0, 0, 0))]),
    "conv_valid_dilated": _spec([2, 12, 11], [_conv(3, kernel=(3, 3), dilations=(2, 1), auto_pad="VALID", pads=(0, 0, 0, 0))]),
    "depthwise_mult2": _spec([4, 10, 10], [_conv(8, group=4, strides=(2, 1))]),
    "maxpool_pads": _spec([3, 11, 9], [{"op": "MaxPool", "kernel": [3, 2], "strides": [2, 2], "pads": [1, 0, 1, 1]}]),
    "avgpool_pads": _spec([3, 11, 9], [{"op": "AveragePool", "kernel": [3, 3], "strides": [2, 1], "pads": [1, 2, 0, 1]}]),
    "relu": _spec([2, 5, 6], [_conv(3), {"op": "Relu"}]),
    "clip06": _spec([2, 5, 6], [_conv(3), {"op": "Clip"}]),
    "leaky": _spec([2, 5, 6], [_conv(3), {"op": "LeakyRelu", "alpha": 0.2}]),
    "sigmoid": _spec([2, 5, 6], [_conv(3), {"op": "Sigmoid"}]),
    "bn": _spec([3, 6, 5], [{"op": "BatchNormalization"}, _conv(2)]),
    "add_branch": _spec([3, 7, 6], [{"op": "Add", "other": "branch_conv3"}]),
    "add_channel_const": _spec([3, 7, 6], [_conv(4), {"op": "Add", "other": "channel_const"}]),
    "flatten_gemm_transB1": _spec([3, 6, 5], [_conv(4)], head="flatten_gemm", dense="gemm_transB1"),
    "flatten_gemm_transB0": _spec([3, 6, 5], [_conv(4)], head="flatten_gemm", dense="gemm_transB0"),
    "reshape_gemm": _spec([3, 6, 5], [_conv(4)], head="reshape_gemm", dense="gemm_transB1"),
    "gap_gemm": _spec([3, 6, 5], [_conv(4)], head="gap_gemm", dense="gemm_transB0"),
    "flatten_matmul_add": _spec([3, 6, 5], [_conv(4)], head="flatten_gemm", dense="matmul_add"),
    "nhwc_tensor": _spec([3, 6, 5], [_conv(4, strides=(2, 1))], nhwc=True),
    "nhwc_reshape_matmul": _spec([3, 6, 5], [_conv(4)], head="reshape_gemm", dense="matmul_add", nhwc=True),
    "nhwc_flatten_gemm": _spec([3, 6, 5], [_conv(4), {"op": "Relu"}], head="flatten_gemm", nhwc=True),
    "nhwc_gap_gemm": _spec([3, 6, 5], [_conv(4)], head="gap_gemm", nhwc=True),
}


@pytest.mark.parametrize("spec", FIXED_SPECS.values(), ids=FIXED_SPECS.keys())
def test_fixed_graph_matches_onnxruntime(tinyq_bin, spec):
    check_against_onnxruntime(tinyq_bin, spec)


# ---------------------------------------------------------------- ops with axes after a conv

def _i64(v):
    return np.array(v, np.int64)


def _f32(v):
    return np.array(v, np.float32)


def _rand(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


AXIS_C, AXIS_H, AXIS_W = 3, 6, 5  # input [1,3,6,5]; the conv makes c = [1,4,6,5]


def _n(op, inputs, output, **attrs):
    return helper.make_node(op, inputs, [output], **attrs)


# name -> (nodes reading "c" and writing "y", extra initializers as {name: array}, opset)
# Each op carries an axis, pads or a broadcast that tinyq must remap when it goes NHWC.
AXIS_CASES = {
    "concat_axis1": ([_n("Relu", ["c"], "r"), _n("Concat", ["c", "r"], "y", axis=1)], {}, 13),
    "concat_axis2": ([_n("Relu", ["c"], "r"), _n("Concat", ["c", "r"], "y", axis=2)], {}, 13),
    "concat_axis_neg1": ([_n("Relu", ["c"], "r"), _n("Concat", ["c", "r"], "y", axis=-1)], {}, 13),
    "concat_const_axis1": ([_n("Concat", ["c", "k"], "y", axis=1)],
                           {"k": _rand([1, 2, AXIS_H, AXIS_W], 1)}, 13),
    "softmax_axis1": ([_n("Softmax", ["c"], "y", axis=1)], {}, 13),
    "softmax_axis2": ([_n("Softmax", ["c"], "y", axis=2)], {}, 13),
    "softmax_axis3": ([_n("Softmax", ["c"], "y", axis=3)], {}, 13),
    "reducemean_hw_keepdims": ([_n("ReduceMean", ["c"], "y", axes=[2, 3], keepdims=1)], {}, 13),
    "reducemean_hw_squeezed": ([_n("ReduceMean", ["c"], "y", axes=[2, 3], keepdims=0)], {}, 13),
    "reducemean_c": ([_n("ReduceMean", ["c"], "y", axes=[1], keepdims=1)], {}, 13),
    "reducemean_h_squeezed": ([_n("ReduceMean", ["c"], "y", axes=[2], keepdims=0)], {}, 13),
    "pad_hw": ([_n("Pad", ["c", "p"], "y")], {"p": _i64([0, 0, 1, 2, 0, 0, 2, 1])}, 13),
    "pad_c": ([_n("Pad", ["c", "p"], "y")], {"p": _i64([0, 1, 0, 0, 0, 2, 0, 0])}, 13),
    "pad_value": ([_n("Pad", ["c", "p", "v"], "y")],
                  {"p": _i64([0, 0, 1, 0, 0, 0, 0, 1]), "v": _f32(2.5)}, 13),
    "transpose_to_nhwc": ([_n("Transpose", ["c"], "y", perm=[0, 2, 3, 1])], {}, 13),
    "transpose_0312": ([_n("Transpose", ["c"], "y", perm=[0, 3, 1, 2])], {}, 13),
    "reshape_4d": ([_n("Reshape", ["c", "s"], "y")], {"s": _i64([1, 2, 2, 30])}, 13),
    "reshape_3d_softmax": ([_n("Reshape", ["c", "s"], "r"), _n("Softmax", ["r"], "y", axis=2)],
                           {"s": _i64([1, 4, 30])}, 13),
    "mul_per_channel": ([_n("Mul", ["c", "k"], "y")], {"k": _rand([4, 1, 1], 2)}, 13),
    "mul_along_w": ([_n("Mul", ["c", "k"], "y")], {"k": _rand([AXIS_W], 3)}, 13),
    "add_along_h": ([_n("Add", ["c", "k"], "y")], {"k": _rand([AXIS_H, 1], 4)}, 13),
    "sub_const_minus_tensor": ([_n("Sub", ["k", "c"], "y")], {"k": _rand([4, 1, 1], 5)}, 13),
    "div_by_channel_const": ([_n("Div", ["c", "k"], "y")],
                             {"k": np.linspace(1, 2, 4, dtype=np.float32).reshape(4, 1, 1)}, 13),
    "gap_squeeze": ([_n("GlobalAveragePool", ["c"], "g"), _n("Squeeze", ["g", "ax"], "y")],
                    {"ax": _i64([2, 3])}, 13),
    "unsqueeze_axis2": ([_n("Unsqueeze", ["c", "ax"], "y")], {"ax": _i64([2])}, 13),
    "torch_flatten_shape_gather": (
        [_n("Shape", ["c"], "s"), _n("Gather", ["s", "i0"], "g", axis=0),
         _n("Unsqueeze", ["g", "ax0"], "u"), _n("Concat", ["u", "m1"], "sh", axis=0),
         _n("Reshape", ["c", "sh"], "y")],
        {"i0": _i64(0), "ax0": _i64([0]), "m1": _i64([-1])}, 13),
    "global_max_pool": ([_n("GlobalMaxPool", ["c"], "y")], {}, 13),
    "maxpool_same_lower": ([_n("MaxPool", ["c"], "y", kernel_shape=[2, 2], strides=[2, 2],
                               auto_pad="SAME_LOWER")], {}, 13),
    "avgpool_same_lower": ([_n("AveragePool", ["c"], "y", kernel_shape=[3, 2], strides=[2, 2],
                               auto_pad="SAME_LOWER")], {}, 13),
    "avgpool_count_include_pad": ([_n("AveragePool", ["c"], "y", kernel_shape=[3, 3],
                                      pads=[1, 1, 1, 1], count_include_pad=1)], {}, 13),
    "conv_same_lower": ([_n("Conv", ["c", "w2"], "y", kernel_shape=[2, 3], strides=[2, 2],
                            auto_pad="SAME_LOWER")], {"w2": _rand([2, 4, 2, 3], 6)}, 13),
    "conv_group2": ([_n("Conv", ["c", "w2"], "y", group=2)], {"w2": _rand([6, 2, 3, 3], 7)}, 13),
    "matmul_4d_by_const": ([_n("MatMul", ["c", "mw"], "y")], {"mw": _rand([AXIS_W, 7], 8)}, 13),
    "gemm_alpha_beta": ([_n("Flatten", ["c"], "f"),
                         _n("Gemm", ["f", "gw", "gb"], "y", alpha=0.5, beta=2.0, transB=1)],
                        {"gw": _rand([3, 4 * AXIS_H * AXIS_W], 9), "gb": _rand([3], 10)}, 13),
    "gemm_no_bias": ([_n("Flatten", ["c"], "f"), _n("Gemm", ["f", "gw"], "y")],
                     {"gw": _rand([4 * AXIS_H * AXIS_W, 3], 11)}, 13),
    "gemm_bias_1xN": ([_n("Flatten", ["c"], "f"), _n("Gemm", ["f", "gw", "gb"], "y")],
                      {"gw": _rand([4 * AXIS_H * AXIS_W, 3], 12), "gb": _rand([1, 3], 13)}, 13),
    "hardswish": ([_n("HardSwish", ["c"], "y")], {}, 14),
    "tanh": ([_n("Tanh", ["c"], "y")], {}, 13),
    "clip_min_only": ([_n("Clip", ["c", "mn"], "y")], {"mn": _f32(0.1)}, 13),
    "clip_max_only": ([_n("Clip", ["c", "", "mx"], "y")], {"mx": _f32(0.1)}, 13),
}


def axis_case_model(name: str) -> onnx.ModelProto:
    nodes, inits, opset = AXIS_CASES[name]
    conv = _n("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1])
    tensors = {"w": _rand([4, AXIS_C, 3, 3], 0), "b": _rand([4], 14), **inits}

    def make(out_shape):
        graph = helper.make_graph(
            [conv, *nodes], name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, AXIS_C, AXIS_H, AXIS_W])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
            initializer=[numpy_helper.from_array(v, k) for k, v in tensors.items()],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = IR_VERSION
        return model

    # Declare the output shape onnxruntime computes, then check the finished model.
    out_shape = ort_run(make(None), _rand([1, AXIS_C, AXIS_H, AXIS_W], 15)).shape
    model = make(list(out_shape))
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.mark.parametrize("name", AXIS_CASES)
def test_axis_op_after_conv_matches_onnxruntime(tinyq_bin, tmp_path, name):
    model = axis_case_model(name)
    x = _rand([3, AXIS_C, AXIS_H, AXIS_W], 16)  # three samples
    ref = np.concatenate([ort_run(model, s[None]) for s in x])
    onnx.save(model, str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "d.npz", x=x)
    proc = oracle_lib.run_tinyq(tinyq_bin, "run", tmp_path / "m.onnx", "--data", tmp_path / "d.npz",
                                "-o", tmp_path / "o.npz")
    assert proc.returncode == 0, f"tinyq run failed: {oracle_lib.describe_failure(proc)}"
    got = oracle_lib.load_npz(tmp_path / "o.npz")["y"]
    assert got.shape == ref.shape, f"shape {got.shape}, onnxruntime {ref.shape}"
    assert oracle_lib.rel_max_diff(got, ref) <= REL_TOL
