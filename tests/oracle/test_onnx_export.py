"""`tinyq convert`: float models written out as ONNX through the IR, checked with onnx and onnxruntime.

For every source (the fixture models, small onnx.helper graphs covering every op the exporter
writes, and, when ../shared is present, every FP32 ONNX and FP32 .tflite model there):
  * the exported file passes `onnx.checker.check_model(full_check=True)` and states its opset,
    IR version and producer;
  * its inputs and outputs are the source's (names, shapes; a dynamic batch becomes 1);
  * onnxruntime on the exported file matches the source model run by its own runtime
    (onnxruntime for ONNX, LiteRT's reference kernels for .tflite): max|diff| / max|ref| <= 1e-5
    over all samples, and <= 1e-4 on every sample (a sample whose outputs are all near zero
    turns rounding noise into a large ratio);
  * `tinyq run` on the exported file matches `tinyq run` on the source at the same tolerances.
Bad requests (quantized model, -o equal to the input, wrong extension, bad opset, missing folder)
exit 1 with `error:` and leave no file behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import oracle_lib

REL_TOL = 1e-5
PER_SAMPLE_REL_TOL = 1e-4
MAX_SAMPLES = 200
FIXTURES = oracle_lib.REPO / "fixtures"


# ---------------------------------------------------------------- helpers

def convert(run_tinyq, src: Path, out: Path, *extra) -> dict:
    proc = run_tinyq("convert", src, "-o", out, "--json", *extra)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return json.loads(proc.stdout)


def check_file(path: Path, opset: int = 17) -> onnx.ModelProto:
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.producer_name == "tinyq"
    assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    expected_ir = {t[2]: t[1] for t in onnx.helper.VERSION_TABLE}[opset]
    assert model.ir_version == expected_ir
    assert all(t.raw_data for t in model.graph.initializer), "initializers are raw data"
    return model


def io_signature(sess: ort.InferenceSession) -> tuple[list, list]:
    def dims(shape):
        return [d if isinstance(d, int) and d > 0 else 1 for d in shape]
    return ([(i.name, dims(i.shape)) for i in sess.get_inputs()],
            [(o.name, dims(o.shape)) for o in sess.get_outputs()])


def ort_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def ort_per_sample(sess: ort.InferenceSession, xs: list[np.ndarray]) -> list[np.ndarray]:
    """Every output for each sample, stacked: [samples, ...] per output. One array per input."""
    inputs = sess.get_inputs()
    shapes = [[d if isinstance(d, int) and d > 0 else 1 for d in i.shape] for i in inputs]
    outs = []
    for s in range(len(xs[0])):
        feed = {i.name: x[s].reshape(shape).astype(np.float32) for i, x, shape in zip(inputs, xs, shapes)}
        outs.append(sess.run(None, feed))
    return [np.stack([o[k] for o in outs]) for k in range(len(outs[0]))]


def litert_per_sample(model: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    out = []
    for s in range(len(x)):
        it.set_tensor(inp["index"], x[s].reshape(inp["shape"]).astype(np.float32))
        it.invoke()
        out.append(it.get_tensor(outp["index"]).copy())
    return np.stack(out)


def overall_ratio(got: np.ndarray, ref: np.ndarray) -> float:
    """max|got - ref| / max|ref| over every sample."""
    return oracle_lib.rel_max_diff(got.reshape(ref.shape), ref)


def worst_ratio(got: np.ndarray, ref: np.ndarray) -> float:
    """Largest per-sample max|got - ref| / max|ref|."""
    n = ref.shape[0]
    got = got.reshape(n, -1).astype(np.float64)
    ref = ref.reshape(n, -1).astype(np.float64)
    diff = np.abs(got - ref).max(axis=1)
    scale = np.abs(ref).max(axis=1)
    ratio = np.where(scale > 0, diff / np.maximum(scale, 1e-300), np.where(diff > 0, np.inf, 0.0))
    return float(ratio.max())


def tinyq_run(run_tinyq, model: Path, data: Path, key: str, out: Path) -> np.ndarray:
    proc = run_tinyq("run", model, "--data", data, "--x", key, "--limit", MAX_SAMPLES, "-o", out)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return np.load(out)["y"]


def check_conversion(run_tinyq, src: Path, data: Path, key: str, tmp: Path, label: str) -> float:
    """Converts `src`, checks the file, compares runtimes; returns the worst ratio vs the source."""
    out = tmp / "exported.onnx"
    info = convert(run_tinyq, src, out)
    assert out.stat().st_size == info["bytes"] and info["opset"] == 17
    check_file(out)
    exported = ort_session(out)
    x = np.load(data)[key][:MAX_SAMPLES].astype(np.float32)
    got = ort_per_sample(exported, [x])[0]
    if src.suffix == ".onnx":
        source = ort_session(src)
        assert io_signature(exported) == io_signature(source), "interface changed"
        ref = ort_per_sample(source, [x])[0]
    else:
        ref = litert_per_sample(src, x)
        inspect = run_tinyq("inspect", src, "--json")
        assert inspect.returncode == 0, oracle_lib.describe_failure(inspect)
        doc = json.loads(inspect.stdout)
        ins = [(t["name"], t["shape"]) for t in doc["inputs"]]
        outs = [(t["name"], t["shape"]) for t in doc["outputs"]]
        assert io_signature(exported) == (ins, outs), "interface differs from the IR's"
    ref = ref.reshape(got.shape)
    mine, theirs = tinyq_run(run_tinyq, out, data, key, tmp / "a.npz"), tinyq_run(run_tinyq, src, data, key, tmp / "b.npz")
    ratios = {
        "onnxruntime vs source runtime": (overall_ratio(got, ref), worst_ratio(got, ref)),
        "tinyq run vs tinyq run on the source": (overall_ratio(mine, theirs), worst_ratio(mine, theirs)),
    }
    ops = sorted({n.op_type for n in onnx.load(str(out)).graph.node})
    report = "; ".join(f"{k}: {a:.2e} overall, {b:.2e} worst sample" for k, (a, b) in ratios.items())
    print(f"{label} ({len(x)} samples): {report}; ops {ops}")
    for what, (overall, worst) in ratios.items():
        assert overall <= REL_TOL, f"{label}: {what} differ by {overall:.3g} overall"
        assert worst <= PER_SAMPLE_REL_TOL, f"{label}: {what} differ by {worst:.3g} on a sample"
    return ratios["onnxruntime vs source runtime"][0]


# ---------------------------------------------------------------- fixtures and shared models

FIXTURE_CASES = {
    "mnist_dscnn": (FIXTURES / "mnist_dscnn" / "model.onnx", FIXTURES / "mnist_dscnn" / "mnist_test_200.npz", "x"),
    "hello_world": (FIXTURES / "hello_world" / "model.onnx", FIXTURES / "hello_world" / "sine.npz", "x"),
}


@pytest.mark.parametrize("case", FIXTURE_CASES.values(), ids=FIXTURE_CASES.keys())
def test_fixture_model_exports_and_matches_onnxruntime(case, run_tinyq, tmp_path):
    src, data, key = case
    check_conversion(run_tinyq, src, data, key, tmp_path, src.parent.name)


def _shared_cases():
    shared = oracle_lib.shared_dir()
    cases = []
    for card_path in sorted(shared.glob("models/*/card.json")) if shared.is_dir() else []:
        card = json.loads(card_path.read_text())
        for name, info in sorted(card["files"].items()):
            if info.get("role") in ("fp32_onnx", "fp32_onnx_dynamo", "fp32_tflite"):
                cases.append(pytest.param((card_path, name), id=f"{card_path.parent.name}/{name}"))
    return cases or [pytest.param(None, marks=pytest.mark.skip(reason="../shared not present"))]


@pytest.mark.parametrize("case", _shared_cases())
def test_shared_model_exports_and_matches_its_runtime(case, run_tinyq, tmp_path):
    card_path, name = case
    card = json.loads(card_path.read_text())
    data = (card_path.parent / card["dataset"]["file"]).resolve()
    x_key = card["dataset"]["eval_arrays"][0]
    check_conversion(run_tinyq, card_path.parent / name, data, x_key, tmp_path, f"{card_path.parent.name}/{name}")


# ---------------------------------------------------------------- every op, built with onnx.helper

class Graph:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def const(self, array) -> str:
        self.count += 1
        name = f"k{self.count}"
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def rand(self, *shape) -> str:
        return self.const((self.rng.standard_normal(shape) * 0.5).astype(np.float32))

    def op(self, op: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        self.count += 1
        out = out or f"v{self.count}"
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"{op.lower()}_{self.count}", **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k=(3, 3), group=1, **attrs) -> str:
        return self.op("Conv", [x, self.rand(cout, cin // group, *k), self.rand(cout)], kernel_shape=list(k), group=group, **attrs)

    def model(self, inputs: dict[str, list[int]], outputs: list[str], opset: int = 14) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "ops",
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
            initializer=self.inits,
        )
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tinyq-oracle")
        m.ir_version = 7
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        onnx.checker.check_model(m, full_check=True)
        return m


def conv_stack() -> onnx.ModelProto:
    """Asymmetric pads, stride, dilation, depthwise ×2, pools with pads, Clip, LeakyRelu, HardSwish, GAP, Gemm, Softmax."""
    g = Graph(1)
    c = g.conv("x", 3, 4, k=(3, 2), pads=[2, 0, 1, 1], strides=[2, 1], dilations=[1, 2])
    c = g.op("Clip", [c, g.const(np.float32(0)), g.const(np.float32(6))])
    c = g.conv(c, 4, 8, group=4, pads=[1, 1, 1, 1])
    c = g.op("LeakyRelu", [c], alpha=0.15)
    c = g.op("MaxPool", [c], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1])
    c = g.op("AveragePool", [c], kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 0, 0])
    c = g.conv(c, 8, 6, k=(1, 1))
    c = g.op("HardSwish", [c])
    c = g.op("Flatten", [g.op("GlobalAveragePool", [c])])
    c = g.op("Gemm", [c, g.rand(5, 6), g.rand(5)], transB=1)
    g.op("Softmax", [c], "y", axis=-1)
    return g.model({"x": [1, 3, 11, 9]}, ["y"])


def branches() -> onnx.ModelProto:
    """Concat on channels, Sigmoid, broadcast Mul/Sub/Add, Tanh, Pad with a value, ReduceMean keepdims 0, MatMul."""
    g = Graph(2)
    a = g.conv("x", 3, 4, pads=[1, 1, 1, 1])
    b = g.conv("x", 3, 2, k=(1, 1))
    c = g.op("Concat", [a, b], axis=1)
    c = g.op("Sigmoid", [c])
    c = g.op("Mul", [c, g.rand(6, 1, 1)])
    c = g.op("Sub", [g.const(np.float32(0.25)), c])
    c = g.op("Add", [c, g.rand(1, 6, 7, 1)])
    c = g.op("Tanh", [c])
    c = g.op("Pad", [c, g.const(np.array([0, 0, 1, 0, 0, 0, 2, 1], np.int64)), g.const(np.float32(0.5))], mode="constant")
    feat = g.op("ReduceMean", [c], axes=[2, 3], keepdims=0)
    g.op("Add", [g.op("MatMul", [feat, g.rand(6, 3)]), g.rand(3)], "y")
    g.op("Relu", [g.op("Concat", [c, c], axis=2)], "z")
    return g.model({"x": [1, 3, 7, 6]}, ["y", "z"])


def nhwc_io() -> onnx.ModelProto:
    """tf2onnx style: NHWC input transposed in, a conv map transposed out, a reshape and softmax."""
    g = Graph(3)
    t = g.op("Transpose", ["x"], perm=[0, 3, 1, 2])
    c = g.conv(t, 3, 5, pads=[0, 1, 2, 1], strides=[1, 2])
    c = g.op("Relu", [c])
    n = g.op("Transpose", [c], perm=[0, 2, 3, 1])
    g.op("Softmax", [g.op("Reshape", [n, g.const(np.array([1, -1, 5], np.int64))])], "y", axis=-1)
    m = g.op("ReduceMean", [c], axes=[1], keepdims=1)
    g.op("Mul", [c, m], "z")
    return g.model({"x": [1, 8, 7, 3]}, ["y", "z"])


def two_inputs() -> onnx.ModelProto:
    """Two inputs of different ranks, a 3-D MatMul, a broadcast Add of computed tensors."""
    g = Graph(4)
    h = g.op("Relu", [g.op("Add", [g.op("MatMul", ["seq", g.rand(6, 4)]), g.rand(4)])])
    g.op("Add", [h, g.op("Sigmoid", ["bias"])], "y")
    return g.model({"seq": [1, 5, 6], "bias": [1, 4]}, ["y"])


OP_GRAPHS = {"conv_stack": conv_stack, "branches": branches, "nhwc_io": nhwc_io, "two_inputs": two_inputs}


@pytest.mark.parametrize("opset", [14, 17, 18, 21])
@pytest.mark.parametrize("build", OP_GRAPHS.values(), ids=OP_GRAPHS.keys())
def test_every_op_exports_and_matches_onnxruntime(build, opset, run_tinyq, tmp_path):
    src = tmp_path / "source.onnx"
    onnx.save(build(), str(src))
    out = tmp_path / "exported.onnx"
    convert(run_tinyq, src, out, "--opset", opset)
    check_file(out, opset)
    source, exported = ort_session(src), ort_session(out)
    assert io_signature(exported) == io_signature(source)
    rng = np.random.default_rng(opset)
    xs = [rng.standard_normal([8, *shape]).astype(np.float32) for _, shape in io_signature(source)[0]]
    refs, gots = ort_per_sample(source, xs), ort_per_sample(exported, xs)
    worst = max(worst_ratio(g, r) for g, r in zip(gots, refs))
    print(f"{build.__name__} opset {opset}: worst per-sample ratio {worst:.2e}")
    assert worst <= REL_TOL


def test_conversion_is_deterministic_and_repeatable(run_tinyq, tmp_path):
    src = FIXTURES / "mnist_dscnn" / "model.onnx"
    a, b, again = tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "again.onnx"
    convert(run_tinyq, src, a)
    convert(run_tinyq, src, b)
    assert a.read_bytes() == b.read_bytes()
    convert(run_tinyq, a, again)
    check_file(again)
    x = np.load(FIXTURES / "mnist_dscnn" / "mnist_test_200.npz")["x"][:20]
    first, second = ort_per_sample(ort_session(a), [x])[0], ort_per_sample(ort_session(again), [x])[0]
    assert worst_ratio(second, first) <= REL_TOL


# ---------------------------------------------------------------- bad requests

def _refused(proc, *words):
    assert proc.returncode == 1, f"expected exit 1, got {proc.returncode}: {proc.stderr}"
    assert "panicked" not in proc.stderr
    assert proc.stderr.startswith("error:"), proc.stderr
    for w in words:
        assert w in proc.stderr, f"`{w}` not in: {proc.stderr}"


def test_quantized_model_is_refused(run_tinyq, tmp_path):
    q = tmp_path / "int8.tflite"
    proc = run_tinyq("quantize", FIXTURES / "hello_world" / "model.onnx", "--calib", FIXTURES / "hello_world" / "sine.npz", "-o", q)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    out = tmp_path / "out.onnx"
    _refused(run_tinyq("convert", q, "-o", out), "int8.tflite", "float")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.tflite"]


def test_output_equal_to_input_is_refused(run_tinyq, tmp_path):
    src = tmp_path / "model.onnx"
    src.write_bytes((FIXTURES / "mnist_dscnn" / "model.onnx").read_bytes())
    before = src.read_bytes()
    _refused(run_tinyq("convert", src, "-o", src), "refusing to overwrite")
    _refused(run_tinyq("convert", src, "-o", tmp_path / "." / "model.onnx"), "refusing to overwrite")
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize("args, words", [
    (["-o", "{tmp}/out.tflite"], ["out.tflite", ".onnx"]),
    (["-o", "{tmp}/out.onnx", "--opset", "9"], ["--opset 9"]),
    (["-o", "{tmp}/no/such/dir/out.onnx"], ["out.onnx"]),
])
def test_bad_requests_leave_nothing(args, words, run_tinyq, tmp_path):
    args = [a.format(tmp=tmp_path) for a in args]
    _refused(run_tinyq("convert", FIXTURES / "hello_world" / "model.onnx", *args), *words)
    assert list(tmp_path.iterdir()) == []


def test_missing_or_broken_model_is_refused(run_tinyq, tmp_path):
    _refused(run_tinyq("convert", tmp_path / "absent.onnx", "-o", tmp_path / "out.onnx"), "absent.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage")
    _refused(run_tinyq("convert", broken, "-o", tmp_path / "out.onnx"), "broken.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.onnx"]
