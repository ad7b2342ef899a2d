"""`tinyq quantize --max-drop`: accuracy-budget quantization on planted models, and the float
layers it may leave in the file, checked bit for bit against TFLM.

Runs anywhere (no ../shared): the planted models are the MNIST fixture changed with onnx.helper,
evaluated on the fixture's 200 test images (one image = 0.5 points of top-1).

- `outlier`: a detector adds a spike of about 1300 to one element of an activation whenever the
  input is an all-bright image. The evaluation set has none, so FP32 is unchanged; the
  calibration set has one, so min/max calibration makes that activation's scale ~300x too wide.
  Per-tensor calibration fixes it.
- `dead unit`: one channel before the classifier is always 0 (bias -1000 under ReLU6), and its
  classifier weights are 500. FP32 ignores them; int8 fully-connected weights share one scale, so
  every other weight rounds to 0. No calibration fixes weights; leaving the classifier in float does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from tflite_micro.python.tflite_micro import runtime

import oracle_lib
import tflm_lib

FIXTURE = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
EVAL = FIXTURE / "mnist_test_200.npz"
# The budget search starts from plain min/max ranges here (the default `auto` already fixes the
# outlier plant, see test_default_calibration_meets_the_budget_without_a_search).
MINMAX = ("--calibration", "minmax")
BUDGET = 0.5


def outlier_model(path: Path):
    m = onnx.load(FIXTURE / "model.onnx")
    g = m.graph
    target = "/net/net.11/Clip_output_0"  # ReLU6 output [1, 64, 7, 7], read by a 1x1 conv
    for n in g.node:
        for i, name in enumerate(n.input):
            if name == target:
                n.input[i] = "spiked"
    mask = np.zeros((1, 64, 7, 7), np.float32)
    mask[0, 5, 3, 3] = 1000.0
    g.initializer.extend([numpy_helper.from_array(np.array(-1.5, np.float32), "det_shift"), numpy_helper.from_array(mask, "det_mask")])
    detector = [
        helper.make_node("GlobalAveragePool", ["input"], ["det_mean"], name="det_mean"),
        helper.make_node("Add", ["det_mean", "det_shift"], ["det_shifted"], name="det_shift"),
        helper.make_node("Relu", ["det_shifted"], ["det_on"], name="det_relu"),
        helper.make_node("Mul", ["det_on", "det_mask"], ["det_spike"], name="det_spike"),
        helper.make_node("Add", [target, "det_spike"], ["spiked"], name="spiked"),
    ]
    nodes = list(g.node)
    first_reader = next(i for i, n in enumerate(nodes) if "spiked" in n.input)
    del g.node[:]
    g.node.extend(nodes[:first_reader] + detector + nodes[first_reader:])
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


def dead_unit_model(path: Path):
    m = onnx.load(FIXTURE / "model.onnx")
    inits = {i.name: i for i in m.graph.initializer}
    b = numpy_helper.to_array(inits["onnx::Conv_75"]).copy()
    b[3] = -1000.0
    w = numpy_helper.to_array(inits["net.17.weight"]).copy()
    w[:, 3] = np.where(np.arange(10) % 2 == 0, 500.0, -500.0)
    inits["onnx::Conv_75"].CopyFrom(numpy_helper.from_array(b, "onnx::Conv_75"))
    inits["net.17.weight"].CopyFrom(numpy_helper.from_array(w.astype(np.float32), "net.17.weight"))
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


@pytest.fixture
def calib_with_outlier(tmp_path):
    xc = np.load(EVAL)["x_calib"].copy()
    xc[0] = xc.max()  # one all-bright image
    path = tmp_path / "calib.npz"
    np.savez(path, x_calib=xc)
    return path


def ok(proc):
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return proc


def top1(run_tinyq, model: Path, data: Path = EVAL) -> float:
    return json.loads(ok(run_tinyq("eval", model, "--data", data, "--json")).stdout)["value"]


def assert_bit_exact_in_tflm(run_tinyq, tflite: Path, data: Path, key: str = "x", tmp: Path | None = None) -> int:
    """Every sample through TFLM and through `tinyq run`; asserts equal outputs, returns the
    number of values compared."""
    x = np.load(data)[key]
    out = (tmp or tflite.parent) / f"{tflite.stem}_run.npz"
    ok(run_tinyq("run", tflite, "--data", data, "--x", key, "-o", out))
    ours = np.load(out)["y"]
    it = runtime.Interpreter.from_bytes(tflite.read_bytes(), arena_size=tflm_lib.TFLM_ARENA_BYTES)
    det = it.get_input_details(0)
    shape = [int(d) for d in det["shape"]]
    theirs = []
    for i in range(len(x)):
        xi = x[i].reshape(shape)
        if np.dtype(det["dtype"]) == np.int8:
            qp = det["quantization_parameters"]
            xi = tflm_lib.quantize_like_tflite(xi, float(qp["scales"][0]), int(qp["zero_points"][0]))
        it.set_input(xi, 0)
        it.invoke()
        theirs.append(np.array(it.get_output(0), copy=True))
    theirs = np.stack(theirs)
    assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    ours = ours.reshape(theirs.shape)
    mismatches = int((ours.view(np.uint8) != theirs.view(np.uint8)).sum()) if ours.dtype == np.int8 else int((ours != theirs).sum())
    assert mismatches == 0, f"{mismatches} of {theirs.size} values differ from TFLM"
    np.testing.assert_array_equal(ours, theirs)
    return theirs.size


def file_ops_and_dtypes(run_tinyq, tflite: Path) -> tuple[dict, set]:
    summary = json.loads(ok(run_tinyq("inspect", tflite, "--json")).stdout)
    from ai_edge_litert.interpreter import Interpreter

    dtypes = {np.dtype(t["dtype"]).name for t in Interpreter(model_content=tflite.read_bytes()).get_tensor_details()}
    return summary["ops"], dtypes


def test_default_calibration_meets_the_budget_without_a_search(run_tinyq, tmp_path, calib_with_outlier):
    """The default `auto` calibration chooses the spiked tensor's range by the error it causes
    downstream: the plant's drop is within the budget with no search at all."""
    model = tmp_path / "outlier.onnx"
    outlier_model(model)
    fp32 = top1(run_tinyq, model)
    out = tmp_path / "auto.tflite"
    report = json.loads(ok(run_tinyq("quantize", model, "--calib", calib_with_outlier, "-o", out, "--json")).stdout)
    drop = (fp32 - top1(run_tinyq, out)) * 100
    spiked = next(r for r in report["ranges"] if r["tensor"] == "spiked")
    print(f"outlier plant, default calibration: drop {drop:.2f} pt; {report['auto_calibration']}; spiked {spiked}")
    assert drop <= BUDGET and report["calibration"] == "auto" and spiked["method"] != "minmax"


def test_budget_met_where_plain_ptq_misses_and_the_file_is_bit_exact(run_tinyq, tmp_path, calib_with_outlier):
    model = tmp_path / "outlier.onnx"
    outlier_model(model)
    fp32 = top1(run_tinyq, model)
    plain = tmp_path / "plain.tflite"
    ok(run_tinyq("quantize", model, "--calib", calib_with_outlier, *MINMAX, "-o", plain))
    plain_drop = (fp32 - top1(run_tinyq, plain)) * 100
    assert plain_drop > BUDGET, f"the plant should make plain PTQ miss the budget (drop {plain_drop:.2f})"

    out = tmp_path / "budget.tflite"
    proc = ok(run_tinyq("quantize", model, "--calib", calib_with_outlier, *MINMAX, "--data", EVAL, "--max-drop", BUDGET, "-o", out, "--json"))
    report = json.loads(proc.stdout)
    budget = report["budget"]
    after = top1(run_tinyq, out)
    drop = (fp32 - after) * 100
    print(f"outlier plant: FP32 {fp32:.4f}, plain PTQ drop {plain_drop:.2f} pt, budget drop {drop:.2f} pt; steps {budget['steps']}; "
          f"{budget['calibration_candidates']} calibration candidates")
    assert drop <= BUDGET
    assert budget["met"] and abs(budget["plain_drop"] - plain_drop) < 1e-6 and abs(budget["final_drop"] - drop) < 1e-6
    assert report["metrics"]["int8"] == pytest.approx(after)
    assert budget["steps"] and all(s["kind"] == "calibration" for s in budget["steps"])
    assert "spiked" in [s["target"] for s in budget["steps"]], budget["steps"]
    assert budget["steps"][-1]["drop"] <= BUDGET
    assert 0 < budget["calibration_candidates"] <= budget["max_candidates"]
    spiked = next(r for r in report["ranges"] if r["tensor"] == "spiked")
    assert spiked["chosen"][1] < 20 < spiked["observed"][1], spiked
    ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
    assert "Dequantize" not in ops and "float32" not in dtypes, "no float layer was asked for"
    assert assert_bit_exact_in_tflm(run_tinyq, out, EVAL) == 200 * 10

    # Text mode prints each step and the metric after it.
    text = ok(run_tinyq("quantize", model, "--calib", calib_with_outlier, *MINMAX, "--data", EVAL, "--max-drop", BUDGET, "-o", tmp_path / "t.tflite")).stdout
    assert "plain PTQ" in text and "spiked" in text and "met" in text


def test_allow_float_keeps_the_classifier_in_float_and_tflm_agrees(run_tinyq, tmp_path):
    model = tmp_path / "dead_unit.onnx"
    dead_unit_model(model)
    fp32 = top1(run_tinyq, model)
    out = tmp_path / "budget.tflite"

    # Without --allow-float the budget cannot be met: a refusal naming the best drop and the way out.
    proc = run_tinyq("quantize", model, "--calib", EVAL, "--data", EVAL, "--max-drop", BUDGET, "-o", out)
    assert proc.returncode == 1, oracle_lib.describe_failure(proc)
    assert "panicked" not in proc.stderr and proc.stderr.startswith("error:"), proc.stderr
    assert "--max-drop 0.5" in proc.stderr and "cannot be met" in proc.stderr and "--allow-float" in proc.stderr, proc.stderr
    assert "best top1" in proc.stderr and "no file written" in proc.stderr
    assert not out.exists()

    proc = ok(run_tinyq("quantize", model, "--calib", EVAL, "--data", EVAL, "--max-drop", BUDGET, "--allow-float", "-o", out, "--json"))
    budget = json.loads(proc.stdout)["budget"]
    after = top1(run_tinyq, out)
    print(f"dead-unit plant: FP32 {fp32:.4f}, plain PTQ drop {budget['plain_drop']:.2f} pt, with --allow-float {(fp32 - after) * 100:.2f} pt; "
          f"steps {budget['steps']}")
    assert budget["plain_drop"] > BUDGET
    assert (fp32 - after) * 100 <= BUDGET and budget["met"]
    assert budget["float_layers"] == ["/net/net.17/Gemm"], budget["float_layers"]
    assert budget["steps"][-1]["kind"] == "float" and budget["steps"][-1]["drop"] <= BUDGET
    ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
    # One DEQUANTIZE into the float classifier; QUANTIZE after it, and before any int16 layers
    # an earlier step kept.
    assert ops.get("Dequantize") == 1 and ops.get("Quantize", 0) >= 1, ops
    assert "float32" in dtypes and "int8" in dtypes
    assert ("int16" in dtypes) == bool(budget["int16_layers"]), (dtypes, budget["int16_layers"])
    assert "/net/net.17/Gemm" not in budget["int16_layers"]
    assert assert_bit_exact_in_tflm(run_tinyq, out, EVAL) == 200 * 10


def test_tune_data_chooses_and_data_holds_out(run_tinyq, tmp_path, calib_with_outlier):
    """--tune-data: the search scores candidates on one half of the images, the reported INT8
    figure and the held-out drop come from the other half."""
    model = tmp_path / "outlier.onnx"
    outlier_model(model)
    ev = np.load(EVAL)
    tune, held = tmp_path / "tune.npz", tmp_path / "held.npz"
    np.savez(tune, x=ev["x"][:100], y=ev["y"][:100])
    np.savez(held, x=ev["x"][100:], y=ev["y"][100:])
    out = tmp_path / "q.tflite"
    args = ("quantize", model, "--calib", calib_with_outlier, *MINMAX, "--max-drop", BUDGET, "--tune-data", tune, "--data", held, "-o", out)
    report = json.loads(ok(run_tinyq(*args, "--json")).stdout)
    b, m = report["budget"], report["metrics"]
    assert b["met"] and b["eval_samples"] == 100 and m["samples"] == 100
    fp32_held = top1(run_tinyq, model, held)
    int8_held = top1(run_tinyq, out, held)
    assert m["fp32"] == pytest.approx(fp32_held) and m["int8"] == pytest.approx(int8_held)
    assert m["held_out_drop"] == pytest.approx((fp32_held - int8_held) * 100)
    assert m["within_budget"] == (m["held_out_drop"] <= BUDGET) and m["tuned_on"] == str(tune)
    print(f"tune/held-out split: drop {b['final_drop']:.2f} pt on the tuning half, {m['held_out_drop']:.2f} pt held out")
    text = ok(run_tinyq(*args)).stdout
    assert "held out: drop" in text and str(tune) in text
    proc = run_tinyq("quantize", model, "--calib", calib_with_outlier, *MINMAX, "--tune-data", tune, "-o", out)
    assert proc.returncode == 1 and "--tune-data" in proc.stderr and "--max-drop" in proc.stderr


def test_impossible_budgets_and_bad_flags_are_refused(run_tinyq, tmp_path, calib_with_outlier):
    model = tmp_path / "outlier.onnx"
    outlier_model(model)
    out = tmp_path / "q.tflite"
    cases = [
        (["--max-drop", "0.5"], ["--max-drop", "--data"]),
        (["--data", EVAL, "--max-drop=-1"], ["--max-drop"]),
        (["--data", EVAL, "--allow-float"], ["--allow-float", "--max-drop"]),
        (["--keep-float", "no_such_layer"], ["no_such_layer"]),
        (["--keep-float", "det_spike"], ["det_spike", "Mul"]),
        # No step can be scored within zero candidates, so the plant's drop stands.
        (["--data", EVAL, "--max-drop", "0.5", "--max-candidates", "0"], ["cannot be met", "--allow-float"]),
    ]
    for extra, words in cases:
        proc = run_tinyq("quantize", model, "--calib", calib_with_outlier, *MINMAX, *extra, "-o", out)
        assert proc.returncode != 0 and "panicked" not in proc.stderr, (extra, proc.stderr)
        assert proc.stderr.startswith("error"), (extra, proc.stderr)
        for w in words:
            assert w.lower() in proc.stderr.lower(), (extra, w, proc.stderr)
        assert not out.exists(), extra


def test_layers_kept_in_float_by_name_run_bit_exactly_in_tflm(run_tinyq, tmp_path):
    """Every conv, depthwise conv and the classifier of the fixture in float (explicit padding
    becomes float PADs), float I/O: the float output is compared bit for bit."""
    layers = ["/net/net.0/Conv", "/net/net.3/Conv", "/net/net.6/Conv", "/net/net.9/Conv", "/net/net.12/Conv", "/net/net.17/Gemm"]
    for k, keep in enumerate([layers, layers[::2]]):
        out = tmp_path / f"keep{k}.tflite"
        ok(run_tinyq("quantize", FIXTURE / "model.onnx", "--calib", EVAL, "--io", "float", "--keep-float", ",".join(keep), "-o", out))
        ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
        assert "float32" in dtypes and ops.get("Dequantize", 0) >= 1, ops
        assert assert_bit_exact_in_tflm(run_tinyq, out, EVAL, tmp=tmp_path) == 200 * 10
        assert top1(run_tinyq, out) >= top1(run_tinyq, FIXTURE / "model.onnx") - 0.02


FLOAT_OPS = ("Conv2D", "DepthwiseConv2D", "FullyConnected", "Reshape", "Transpose")


@pytest.mark.parametrize("kind", ["conv", "depthwise_conv", "fully_connected"])
def test_random_single_layers_kept_in_float_match_tflm(kind, run_tinyq, tmp_path):
    """The randomized single-op cases of the TFLM oracle (shapes, strides, dilations, paddings,
    fused ReLU, groups of rows), the op and the layout change to the ONNX output kept in float:
    the float32 output equals TFLM's on every value."""
    compared = 0
    for index in range(20):
        case = tflm_lib.build_case(kind, index, tmp_path)
        layers = json.loads(ok(run_tinyq("inspect", case.dir / "model.onnx", "--json")).stdout)["layers"]
        # The float input is still quantized at the edge (and dequantized for the float node).
        keep = [l["name"] for l in layers if l["op"] in FLOAT_OPS]
        out = case.dir / "m.tflite"
        ok(run_tinyq("quantize", case.dir / "model.onnx", "--calib", case.dir / "calib.npz", "--io", "float", "--keep-float", ",".join(keep), "-o", out))
        ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
        assert ops.get("Dequantize", 0) >= 1 and "int8" in dtypes, (case.id, ops)
        compared += assert_bit_exact_in_tflm(run_tinyq, out, case.dir / "eval_float.npz", tmp=case.dir)
    print(f"{kind}: {compared} float outputs equal to TFLM")
