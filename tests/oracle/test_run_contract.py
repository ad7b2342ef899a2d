"""The CLI contract of `run`, `eval`, `inspect` and `ops` on tiny models, against onnxruntime.

Sample rule of `run` (model input shape S, a dynamic batch fixed to 1):
  data.shape == S                      -> one sample, y has exactly the model's output shape
  S[0] == 1 and data.shape[1:] == S[1:] -> N samples, y is [N] + out_shape[1:]
  data.shape[1:] == S                  -> N samples stacked, y is [N] + out_shape
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import oracle_lib

RNG = np.random.default_rng(2024)


def _model(nodes, inputs, outputs, inits=(), opset=13) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "contract", inputs, outputs, initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _const(name, shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def conv_model(batch=1) -> onnx.ModelProto:
    """x [batch,3,5,4] -> Conv 3x3 pad 1 (2 out) -> y [batch,2,5,4]; batch may be a name."""
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])
    return _model([node], [_f("x", [batch, 3, 5, 4])], [_f("y", [batch, 2, 5, 4])],
                  [_const("w", [2, 3, 3, 3]), _const("b", [2])])


def dense_batch2_model() -> onnx.ModelProto:
    """x [2,3] -> Gemm (transB) -> y [2,4]: a fixed batch of 2, so S[0] != 1."""
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)
    return _model([node], [_f("x", [2, 3])], [_f("y", [2, 4])], [_const("w", [4, 3]), _const("b", [4])])


def two_output_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["first"]),
        helper.make_node("Sigmoid", ["c"], ["second"]),
    ]
    return _model(nodes, [_f("x", [1, 3, 5, 4])],
                  [_f("first", [1, 2, 5, 4]), _f("second", [1, 2, 5, 4])],
                  [_const("w", [2, 3, 3, 3]), _const("b", [2])])


def two_input_model() -> onnx.ModelProto:
    """y = Relu(a) - b: not symmetric, so swapped inputs show."""
    nodes = [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Sub", ["r", "b"], ["y"])]
    return _model(nodes, [_f("a", [1, 6]), _f("b", [1, 6])], [_f("y", [1, 6])])


def classifier_model() -> onnx.ModelProto:
    """x [N,3,5,4] (dynamic batch) -> GlobalAveragePool -> Flatten -> Gemm -> y [N,5]."""
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1),
    ]
    return _model(nodes, [_f("x", ["N", 3, 5, 4])], [_f("y", ["N", 5])],
                  [_const("w", [5, 3]), _const("b", [5])])


def ort_outputs(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feed)


def ort_per_sample(model, name, x, sample_shape) -> np.ndarray:
    return np.concatenate([ort_outputs(model, {name: s.reshape(sample_shape)})[0] for s in x])


def run_ok(run_tinyq, *args):
    proc = run_tinyq(*args)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return proc


def assert_close(got, ref):
    assert got.dtype == np.float32
    assert got.shape == ref.shape, f"shape {got.shape}, onnxruntime {ref.shape}"
    assert oracle_lib.rel_max_diff(got, ref) <= 1e-5


# ---------------------------------------------------------------- sample rule

@pytest.mark.parametrize("batch", [1, "N"], ids=["static_batch", "dynamic_batch"])
@pytest.mark.parametrize("n", [None, 1, 7], ids=["exact_shape", "n1", "n7"])
def test_sample_rule_batch1_models(run_tinyq, tmp_path, batch, n):
    model = conv_model(batch)
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = RNG.standard_normal([1 if n is None else n, 3, 5, 4]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    run_ok(run_tinyq, "run", tmp_path / "m.onnx", "--data", tmp_path / "d.npz", "-o", tmp_path / "o.npz")
    got = oracle_lib.load_npz(tmp_path / "o.npz")["y"]
    ref = ort_per_sample(model, "x", x, [1, 3, 5, 4])
    assert_close(got, ref)


@pytest.mark.parametrize("stacked", [False, True], ids=["exact_shape", "stacked"])
def test_sample_rule_fixed_batch2_model(run_tinyq, tmp_path, stacked):
    model = dense_batch2_model()
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = RNG.standard_normal([5, 2, 3] if stacked else [2, 3]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    run_ok(run_tinyq, "run", tmp_path / "m.onnx", "--data", tmp_path / "d.npz", "-o", tmp_path / "o.npz")
    got = oracle_lib.load_npz(tmp_path / "o.npz")["y"]
    if stacked:
        ref = np.stack([ort_outputs(model, {"x": s})[0] for s in x])  # [5, 2, 4]
    else:
        ref = ort_outputs(model, {"x": x})[0]  # [2, 4]
    assert_close(got, ref)


# ---------------------------------------------------------------- several outputs / inputs

def test_outputs_are_y_then_y_1(run_tinyq, tmp_path):
    model = two_output_model()
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = RNG.standard_normal([4, 3, 5, 4]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    run_ok(run_tinyq, "run", tmp_path / "m.onnx", "--data", tmp_path / "d.npz", "-o", tmp_path / "o.npz")
    out = oracle_lib.load_npz(tmp_path / "o.npz")
    refs = [np.concatenate(r) for r in zip(*[ort_outputs(model, {"x": s[None]}) for s in x])]
    assert sorted(out) == ["y", "y_1"]
    assert_close(out["y"], refs[0])
    assert_close(out["y_1"], refs[1])


@pytest.mark.parametrize("keys", [None, ("p", "q"), ("q", "p")], ids=["default_names", "pq", "qp"])
def test_multi_input_keys_in_model_input_order(run_tinyq, tmp_path, keys):
    model = two_input_model()
    onnx.save(model, str(tmp_path / "m.onnx"))
    u = RNG.standard_normal([3, 6]).astype(np.float32)
    v = RNG.standard_normal([3, 6]).astype(np.float32)
    if keys is None:
        np.savez(tmp_path / "d.npz", a=u, b=v)
        args = []
    else:
        np.savez(tmp_path / "d.npz", **{keys[0]: u, keys[1]: v})
        args = ["--x", ",".join(keys)]
    run_ok(run_tinyq, "run", tmp_path / "m.onnx", "--data", tmp_path / "d.npz", *args,
           "-o", tmp_path / "o.npz")
    got = oracle_lib.load_npz(tmp_path / "o.npz")["y"]
    ref = np.concatenate([ort_outputs(model, {"a": a[None], "b": b[None]})[0] for a, b in zip(u, v)])
    assert_close(got, ref)


def test_run_is_deterministic(run_tinyq, tmp_path):
    onnx.save(conv_model(), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "d.npz", x=RNG.standard_normal([9, 3, 5, 4]).astype(np.float32))
    outs = []
    for i in range(2):
        run_ok(run_tinyq, "run", tmp_path / "m.onnx", "--data", tmp_path / "d.npz",
               "-o", tmp_path / f"o{i}.npz")
        outs.append(oracle_lib.load_npz(tmp_path / f"o{i}.npz")["y"])
    assert outs[0].tobytes() == outs[1].tobytes()


# ---------------------------------------------------------------- eval

def test_eval_top1_matches_onnxruntime_argmax(run_tinyq, tmp_path):
    model = classifier_model()
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = RNG.standard_normal([50, 3, 5, 4]).astype(np.float32)
    logits = ort_outputs(model, {"x": x})[0]
    labels = logits.argmax(1)
    labels[::3] = (labels[::3] + 1) % 5  # 17 of 50 wrong: top-1 = 33/50
    np.savez(tmp_path / "d.npz", imgs=x, lbls=labels)
    proc = run_ok(run_tinyq, "eval", tmp_path / "m.onnx", "--data", tmp_path / "d.npz",
                  "--x", "imgs", "--y", "lbls", "--metric", "top1", "--json")
    result = json.loads(proc.stdout)
    assert result["metric"] == "top1" and result["samples"] == 50
    assert result["value"] == pytest.approx(33 / 50, abs=1e-12)


def test_eval_rmse_matches_numpy(run_tinyq, tmp_path):
    model = dense_batch2_model()
    onnx.save(model, str(tmp_path / "m.onnx"))
    x = RNG.standard_normal([6, 2, 3]).astype(np.float32)
    pred = np.stack([ort_outputs(model, {"x": s})[0] for s in x])
    y = (pred + RNG.normal(0, 0.3, pred.shape)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    proc = run_ok(run_tinyq, "eval", tmp_path / "m.onnx", "--data", tmp_path / "d.npz",
                  "--metric", "rmse", "--json")
    result = json.loads(proc.stdout)
    expected = float(np.sqrt(np.mean((pred.astype(np.float64) - y) ** 2)))
    assert result["metric"] == "rmse" and result["samples"] == 6
    assert result["value"] == pytest.approx(expected, rel=1e-4)


# ---------------------------------------------------------------- inspect / ops

def test_inspect_json_names_inputs_outputs_and_ops(run_tinyq, tmp_path):
    onnx.save(two_output_model(), str(tmp_path / "m.onnx"))
    proc = run_ok(run_tinyq, "inspect", tmp_path / "m.onnx", "--json")
    doc = json.loads(proc.stdout)
    assert {"inputs", "outputs", "ops"} <= set(doc)
    assert '"x"' in json.dumps(doc["inputs"])
    outputs = json.dumps(doc["outputs"])
    assert '"first"' in outputs and '"second"' in outputs
    ops = json.dumps(doc["ops"])
    assert "Conv" in ops or "CONV_2D" in ops.upper()


# The ops of the shared FP32 models: tinyq must import every one of them.
SHARED_MODEL_OPS = ["Add", "AveragePool", "Clip", "Constant", "Conv", "Flatten", "Gemm",
                    "GlobalAveragePool", "MatMul", "MaxPool", "Relu", "Reshape", "Softmax",
                    "Transpose"]


def test_ops_json_lists_well_formed_ranges(run_tinyq):
    proc = run_ok(run_tinyq, "ops", "--json")
    entries = json.loads(proc.stdout)["onnx"]
    names = [e["op"] for e in entries]
    assert len(names) == len(set(names)), "an op is listed twice"
    for e in entries:
        assert isinstance(e["since"], int) and isinstance(e["until"], int) and e["since"] <= e["until"], e
        assert onnx.defs.has(e["op"]), f"{e['op']} is not an ai.onnx op"
    missing = sorted(set(SHARED_MODEL_OPS) - set(names))
    assert not missing, f"ops of the shared models not listed: {missing}"
