"""`tinyq debug`: a planted bad layer ranks first; the output SQNR equals the one computed from
`tinyq run` outputs of the two models (fixtures anywhere, every shared model where ../shared exists)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import oracle_lib

REPO = Path(__file__).resolve().parents[2]


def planted_model(path: Path):
    """conv → relu → conv `planted` (one output channel offset by +400: a range far too wide for
    the other channels) → relu → conv → GlobalAveragePool → Flatten."""
    rng = np.random.default_rng(5)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    w2 = rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.1
    b2 = np.zeros(8, np.float32)
    b2[3] = 400.0
    w3 = rng.standard_normal((6, 8, 1, 1)).astype(np.float32) * 0.2
    w3[:, 3] = 0.0
    inits = {"w1": w1, "b1": np.zeros(8, np.float32), "w2": w2, "b2": b2, "w3": w3, "b3": np.zeros(6, np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="planted", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], name="conv3"),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes, "planted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.save(m, path)


def sqnr_from_runs(run_tinyq, fp32: Path, int8: Path, data: Path, x_key: str, limit: int, tmp: Path) -> float:
    outs = []
    for k, model in enumerate([fp32, int8]):
        out = tmp / f"y{k}.npz"
        proc = run_tinyq("run", model, "--data", data, "--x", x_key, "--limit", str(limit), "-o", out)
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
        outs.append(np.load(out)["y"])
    f, q = outs[0].astype(np.float64), outs[1]
    if q.dtype == np.int8:
        from tflite_micro.python.tflite_micro import runtime

        it = runtime.Interpreter.from_bytes(int8.read_bytes())
        qp = it.get_output_details(0)["quantization_parameters"]
        q = (q.astype(np.float64) - qp["zero_points"][0]) * qp["scales"][0]
    q = q.reshape(f.shape)
    return float(10 * np.log10((f**2).sum() / ((f - q) ** 2).sum()))


def quantize(run_tinyq, model: Path, calib: Path, out: Path):
    proc = run_tinyq("quantize", model, "--calib", calib, "-o", out)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)


def debug_json(run_tinyq, fp32, int8, data, x_key="x", limit=300):
    proc = run_tinyq("debug", fp32, int8, "--data", data, "--x", x_key, "--limit", str(limit), "--json")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return json.loads(proc.stdout)


def test_the_planted_layer_ranks_first(run_tinyq, tmp_path):
    model = tmp_path / "planted.onnx"
    planted_model(model)
    rng = np.random.default_rng(6)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.standard_normal((64, 3, 8, 8)).astype(np.float32))
    int8 = tmp_path / "planted.tflite"
    quantize(run_tinyq, model, data, int8)
    r = debug_json(run_tinyq, model, int8, data)
    assert r["ranking"][0] == "planted", r["ranking"]
    planted = next(l for l in r["layers"] if l["tensor"] == "planted")
    assert planted["suggestion"] and "range" in planted["suggestion"], planted
    others = [l["own_sqnr_db"] for l in r["layers"] if l["tensor"] != "planted" and l["own_sqnr_db"] is not None]
    assert planted["own_sqnr_db"] < min(others) - 6, r["layers"]


def test_output_sqnr_matches_the_run_outputs_on_the_fixture(run_tinyq, tmp_path):
    fx = REPO / "fixtures" / "mnist_dscnn"
    int8 = tmp_path / "q.tflite"
    quantize(run_tinyq, fx / "model.onnx", fx / "mnist_test_200.npz", int8)
    r = debug_json(run_tinyq, fx / "model.onnx", int8, fx / "mnist_test_200.npz", limit=200)
    direct = sqnr_from_runs(run_tinyq, fx / "model.onnx", int8, fx / "mnist_test_200.npz", "x", 200, tmp_path)
    assert abs(r["output_sqnr_db"] - direct) < 0.01, (r["output_sqnr_db"], direct)


def _shared_onnx():
    shared = oracle_lib.shared_dir()
    found = [
        pytest.param((card, name), id=f"{card.parent.name}/{name}")
        for card in sorted(shared.glob("models/*/card.json"))
        for name, info in sorted(json.loads(card.read_text())["files"].items())
        if info.get("role") in ("fp32_onnx", "fp32_onnx_dynamo")
    ]
    return found or [pytest.param(None, marks=pytest.mark.skip(reason="../shared not present"))]


@pytest.mark.parametrize("case", _shared_onnx())
def test_output_sqnr_matches_the_run_outputs_on_shared_models(case, run_tinyq, tmp_path):
    card_path, name = case
    card = json.loads(card_path.read_text())
    data = (card_path.parent / card["dataset"]["file"]).resolve()
    x_key = card["dataset"]["eval_arrays"][0]
    fp32, int8 = card_path.parent / name, tmp_path / "q.tflite"
    quantize(run_tinyq, fp32, data, int8)
    r = debug_json(run_tinyq, fp32, int8, data, x_key)
    direct = sqnr_from_runs(run_tinyq, fp32, int8, data, x_key, 300, tmp_path)
    print(f"{card_path.parent.name}/{name}: output SQNR {r['output_sqnr_db']:.2f} dB (direct {direct:.2f}); worst layer {r['ranking'][0]}")
    assert abs(r["output_sqnr_db"] - direct) < 0.01


def test_int16_layers_are_debugged_too(run_tinyq, tmp_path):
    """The fixture with every layer that has an int16 kernel run in int16: each gets a row typed
    int16, with its own-error figure (the layer run alone on int16 inputs), and int16 activations
    lose less than int8 ones on the same tensors."""
    fx = REPO / "fixtures" / "mnist_dscnn"
    data = fx / "mnist_test_200.npz"
    layers = json.loads(run_tinyq("inspect", fx / "model.onnx", "--json").stdout)["layers"]
    wide_ops = ("Conv2D", "DepthwiseConv2D", "FullyConnected", "Add", "Concat", "MaxPool2D", "AvgPool2D", "Mean", "Reshape")
    names = [l["name"] for l in layers if l["op"].split(" ")[0] in wide_ops]
    int16, int8 = tmp_path / "q16.tflite", tmp_path / "q8.tflite"
    proc = run_tinyq("quantize", fx / "model.onnx", "--calib", data, "--int16", ",".join(names), "-o", int16)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    quantize(run_tinyq, fx / "model.onnx", data, int8)
    r16 = debug_json(run_tinyq, fx / "model.onnx", int16, data, limit=200)
    r8 = {l["tensor"]: l for l in debug_json(run_tinyq, fx / "model.onnx", int8, data, limit=200)["layers"]}
    wide = [l for l in r16["layers"] if l["dtype"] == "int16" and l["op"] != "Quantize"]
    assert len(wide) >= len(names), [(l["tensor"], l["op"], l["dtype"]) for l in r16["layers"]]
    assert all(l["own_sqnr_db"] is not None for l in wide), wide
    paired = [(l["sqnr_db"], r8[l["tensor"]]["sqnr_db"]) for l in wide if l["tensor"] in r8]
    print(f"\n{len(wide)} int16 layers; SQNR int16 vs int8 on the same tensors: {[(round(a, 1), round(b, 1)) for a, b in paired]}")
    # The first layer's error is its weights' (its input is the int8 model input either way).
    assert paired and all(a >= b - 0.05 for a, b in paired), paired
    assert sum(a > b + 1.0 for a, b in paired) >= len(paired) // 2, paired
    direct = sqnr_from_runs(run_tinyq, fx / "model.onnx", int16, data, "x", 200, tmp_path)
    assert abs(r16["output_sqnr_db"] - direct) < 0.01, (r16["output_sqnr_db"], direct)
