"""Guards of the default quantization on the repo's fixtures (runs anywhere, no ../shared):

* calibration data that is all zeros, or preprocessed unlike the evaluation data (scaled by 0.35
  and shifted), gives a warning in `tinyq quantize`'s summary and JSON, and the debugger's first
  finding names the clipped input;
* representative calibration data gives no warning and no finding;
* `tinyq train --lr 1e30` (weights that overflow) refuses with an error naming a tensor and writes
  no file;
* `--bias-correction` changes int32 biases only and `--adaround` int8 weights by one step at most,
  and TFLM runs both files exactly as tinyq does.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import oracle_lib

FIXTURE = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
MODEL = FIXTURE / "model.onnx"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("guards")
    arrays = np.load(FIXTURE / "mnist_test_200.npz")
    x, y, xc = arrays["x"], arrays["y"], arrays["x_calib"]
    paths = {
        "eval": tmp / "eval.npz",
        "good": tmp / "good.npz",
        "zeros": tmp / "zeros.npz",
        "shifted": tmp / "shifted.npz",
        "train": tmp / "train.npz",
    }
    np.savez(paths["eval"], x=x, y=y)
    np.savez(paths["good"], x=xc)
    np.savez(paths["zeros"], x=np.zeros_like(xc))
    np.savez(paths["shifted"], x=(xc * 0.35 + 0.3).astype(np.float32))
    np.savez(paths["train"], x=xc[:64], y=y[:64])
    paths["dir"] = tmp
    return paths


def _quantize(run_tinyq, data, calib: str, *extra):
    out = data["dir"] / f"{calib}.tflite"
    proc = run_tinyq("quantize", MODEL, "--calib", data[calib], "--data", data["eval"], "-o", out, *extra)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return proc, out


@pytest.mark.parametrize("calib, words", [("zeros", "all zeros"), ("shifted", "looks unlike --data")])
def test_degenerate_calibration_is_warned_and_is_the_debuggers_first_finding(run_tinyq, data, calib, words):
    proc, out = _quantize(run_tinyq, data, calib, "--json")
    report = json.loads(proc.stdout)
    print(f"{calib}: INT8 {report['metrics']['int8']:.3f} vs FP32 {report['metrics']['fp32']:.3f}; {report['warnings']}")
    assert len(report["warnings"]) == 1 and words in report["warnings"][0] and "`input`" in report["warnings"][0]
    text, _ = _quantize(run_tinyq, data, calib)
    assert f"warning: {report['warnings'][0]}" in text.stdout
    dbg = run_tinyq("debug", MODEL, out, "--data", data["eval"], "--limit", "50", "--json")
    assert dbg.returncode == 0, oracle_lib.describe_failure(dbg)
    findings = json.loads(dbg.stdout)["findings"]
    assert findings and "input `input`" in findings[0] and "outside the INT8 input range" in findings[0], findings
    dbg = run_tinyq("debug", MODEL, out, "--data", data["eval"], "--limit", "50")
    assert dbg.stdout.startswith("finding: input `input`"), dbg.stdout[:300]


def test_representative_calibration_gives_no_warning(run_tinyq, data):
    proc, out = _quantize(run_tinyq, data, "good", "--json")
    assert json.loads(proc.stdout)["warnings"] == []
    dbg = run_tinyq("debug", MODEL, out, "--data", data["eval"], "--limit", "50", "--json")
    assert json.loads(dbg.stdout)["findings"] == []


def test_training_that_overflows_writes_no_file(run_tinyq, data):
    out = data["dir"] / "diverged.tflite"
    proc = run_tinyq("train", MODEL, "--data", data["train"], "--epochs", "1", "--lr", "1e30", "-o", out)
    assert proc.returncode == 1, oracle_lib.describe_failure(proc)
    assert proc.stderr.startswith("error:") and "tensor `" in proc.stderr and "finite" in proc.stderr, proc.stderr
    assert not out.exists()


def test_bias_correction_changes_biases_only_and_tflm_runs_the_file_exactly(run_tinyq, data, tmp_path):
    """`--bias-correction` moves int32 biases by the layers' mean error on the calibration set,
    the file keeps its size, and TFLM computes what tinyq computes."""
    from ai_edge_litert.interpreter import Interpreter
    from test_train_cli import assert_tflm_bit_exact

    plain, corrected = tmp_path / "plain.tflite", tmp_path / "bc.tflite"
    for out, extra in ((plain, ("--no-corrections",)), (corrected, ("--no-corrections", "--bias-correction"))):
        proc = run_tinyq("quantize", MODEL, "--calib", data["good"], "-o", out, *extra)
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)

    def tensors(path):
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        found = {}
        for t in it.get_tensor_details():
            try:
                found[t["name"]] = (t["dtype"], it.get_tensor(t["index"]).copy())
            except ValueError:  # activations have no data before a run
                continue
        return found

    a, b = tensors(plain), tensors(corrected)
    moved = [n for n in a if a[n][0] == np.int32 and not np.array_equal(a[n][1], b[n][1])]
    assert moved, "some bias changed"
    assert plain.stat().st_size == corrected.stat().st_size, "only bias values change"
    x = np.load(FIXTURE / "mnist_test_200.npz")["x"]
    assert_tflm_bit_exact(run_tinyq, corrected, x, tmp_path)


def test_adaround_moves_weights_by_one_step_at_most_and_tflm_runs_the_file_exactly(run_tinyq, data, tmp_path):
    """`--adaround` rounds some int8 weights the other way (never further than one step, same
    scales, biases untouched), lowers the output error on the calibration set, and TFLM computes
    what tinyq computes."""
    from ai_edge_litert.interpreter import Interpreter
    from test_train_cli import assert_tflm_bit_exact

    plain, rounded = tmp_path / "plain.tflite", tmp_path / "ada.tflite"
    errors = {}
    for out, extra in ((plain, ()), (rounded, ("--adaround",))):
        proc = run_tinyq("quantize", MODEL, "--calib", data["good"], "-o", out, "--no-corrections", *extra)
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
        run = run_tinyq("run", out, "--data", data["good"], "-o", tmp_path / "y.npz")
        assert run.returncode == 0, oracle_lib.describe_failure(run)
        errors[out] = np.load(tmp_path / "y.npz")["y"].astype(np.int32)

    def tensors(path):
        """The constant tensors (written by no op, not an input): dtype, values, scales."""
        it = Interpreter(model_path=str(path))
        it.allocate_tensors()
        written = {o for op in it._get_ops_details() for o in op["outputs"]}
        written |= {d["index"] for d in it.get_input_details()}
        found = {}
        for t in it.get_tensor_details():
            if t["index"] in written:
                continue
            try:
                found[t["name"]] = (t["dtype"], it.get_tensor(t["index"]).copy(), t["quantization_parameters"]["scales"])
            except ValueError:
                continue
        return found

    a, b = tensors(plain), tensors(rounded)
    assert a.keys() == b.keys()
    moved = 0
    for name, (dtype, va, sa) in a.items():
        vb, sb = b[name][1], b[name][2]
        np.testing.assert_array_equal(sa, sb, err_msg=name)
        if dtype == np.int32:
            np.testing.assert_array_equal(va, vb, err_msg=f"bias {name} changed")
        elif dtype == np.int8 and va.ndim >= 2:
            step = np.abs(va.astype(np.int32) - vb.astype(np.int32))
            assert step.max() <= 1, name
            moved += int(step.sum())
    assert moved > 0, "some weight rounds the other way"
    # Closer to the float model on the calibration set than round-to-nearest.
    fp = run_tinyq("run", MODEL, "--data", data["good"], "-o", tmp_path / "f.npz")
    assert fp.returncode == 0, oracle_lib.describe_failure(fp)
    f = np.load(tmp_path / "f.npz")["y"]

    def error(q, path):
        it = Interpreter(model_path=str(path))
        scale, zero = it.get_output_details()[0]["quantization"]
        return float(np.mean(((q - zero) * scale - f) ** 2))

    assert error(errors[rounded], rounded) < error(errors[plain], plain)
    x = np.load(FIXTURE / "mnist_test_200.npz")["x"]
    assert_tflm_bit_exact(run_tinyq, rounded, x, tmp_path)
