"""Every FP32 model in ../shared quantized with `tinyq quantize --weights int4`: the file holds
int4 weights in every conv, depthwise conv and fully connected layer, is smaller than the int8
file, and TFLM (the `tflite-micro` interpreter) runs it on every sample of the model's dataset
with int8 outputs equal to `tinyq run` on the same file, bit for bit. The metric of the int4 file
is printed beside the int8 file's (not asserted: accuracy is the bench's table).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

import oracle_lib
from test_shared_ptq import _sources, quantize_like_tflite

INT4 = 17  # TensorType.INT4
WEIGHT_OPS = {3, 4, 9}  # CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED


def _int4_layers(blob: bytes) -> tuple[int, int]:
    """(layers with weights, of which int4)."""
    m = runtime.convert_bytearray_to_object(bytearray(blob))
    sg = m.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    layers = [op for op in sg.operators if codes[op.opcodeIndex] in WEIGHT_OPS]
    return len(layers), sum(sg.tensors[op.inputs[1]].type == INT4 for op in layers)


def _run_both(run_tinyq, model, x, tmp, with_tflm=True):
    """tinyq's int8 outputs on `x`, and TFLM's (None unless `with_tflm`), with the output's scale
    and zero point."""
    tflm = runtime.Interpreter.from_bytes(model.read_bytes())
    inp, out = tflm.get_input_details(0), tflm.get_output_details(0)
    qi, qo = inp["quantization_parameters"], out["quantization_parameters"]
    xq = quantize_like_tflite(x, qi["scales"][0], qi["zero_points"][0]).reshape((len(x), *inp["shape"][1:]))
    np.savez(tmp / "xq.npz", x=xq)
    proc = run_tinyq("run", model, "--data", tmp / "xq.npz", "-o", tmp / "y.npz", timeout=900)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    mine = np.load(tmp / "y.npz")["y"].reshape(len(x), -1)
    ref = np.empty_like(mine) if with_tflm else None
    for i in range(len(xq) if with_tflm else 0):
        tflm.set_input(xq[i : i + 1], 0)
        tflm.invoke()
        ref[i] = tflm.get_output(0).reshape(-1)
    return mine, ref, float(qo["scales"][0]), int(qo["zero_points"][0])


def _metric(card, q, scale, zp, y) -> float:
    real = (q.astype(np.float64) - zp) * scale
    if card["metric"] == "top1":
        return float((real.argmax(1) == y.reshape(-1)).mean())
    return float(np.sqrt(((real.reshape(y.shape) - y) ** 2).mean()))


@pytest.mark.parametrize("case", _sources())
def test_int4_file_runs_bit_exactly_in_tflm(case, run_tinyq, tmp_path):
    card_path, name = case
    card = json.loads(card_path.read_text())
    data = (card_path.parent / card["dataset"]["file"]).resolve()
    x_key, y_key = card["dataset"]["eval_arrays"]
    arrays = np.load(data)
    x, y = arrays[x_key], arrays[y_key]
    sizes, metrics = {}, {}
    for weights in ("int8", "int4"):
        model = tmp_path / f"{weights}.tflite"
        proc = run_tinyq("quantize", card_path.parent / name, "--calib", data, "--weights", weights, "-o", model,
                         timeout=1800)
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
        sizes[weights] = model.stat().st_size
        # (the int8 file's equality with TFLM is test_shared_ptq's)
        mine, ref, scale, zp = _run_both(run_tinyq, model, x, tmp_path, with_tflm=weights == "int4")
        if ref is not None:
            np.testing.assert_array_equal(mine, ref, err_msg=f"{weights}: tinyq and TFLM differ")
        metrics[weights] = _metric(card, mine, scale, zp, y)
    layers, int4 = _int4_layers((tmp_path / "int4.tflite").read_bytes())
    print(f"\n{card_path.parent.name}/{name}: {int4}/{layers} layers int4, {len(x)} samples bit-exact with TFLM; "
          f"file {sizes['int4']} B vs int8 {sizes['int8']} B ({sizes['int4'] / sizes['int8']:.2f}x); "
          f"{card['metric']} int8 {metrics['int8']:.4f} int4 {metrics['int4']:.4f}")
    assert layers > 0 and int4 == layers
    assert sizes["int4"] < sizes["int8"]


def test_weights_flag_errors_name_the_flag(run_tinyq, tmp_path):
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    model, data = fixture / "model.onnx", fixture / "mnist_test_200.npz"
    out = tmp_path / "m.tflite"
    proc = run_tinyq("quantize", model, "--calib", data, "--weights", "int3", "-o", out)
    assert proc.returncode == 1 and "--weights int3" in proc.stderr and "int4" in proc.stderr, proc.stderr
    proc = run_tinyq("quantize", model, "--calib", data, "--weights", "int4", "--data", data, "--max-drop", "1",
                     "-o", out)
    assert proc.returncode == 1 and "--weights int4" in proc.stderr and "--max-drop" in proc.stderr, proc.stderr
    assert not out.exists()
    # TFLM has no int4 kernel with int16 activations: layers run in int16 keep int8 weights
    proc = run_tinyq("quantize", model, "--calib", data, "--weights", "int4", "--int16", "all", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert _int4_layers(out.read_bytes())[1] == 0


def test_report_shows_flash_saved_and_the_reference_kernels_unpack_buffers(run_tinyq, tmp_path):
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    files = {}
    for weights in ("int8", "int4"):
        files[weights] = tmp_path / f"{weights}.tflite"
        proc = run_tinyq("quantize", fixture / "model.onnx", "--calib", fixture / "mnist_test_200.npz", "--weights",
                         weights, "-o", files[weights])
        assert proc.returncode == 0, proc.stderr
    reports = {}
    for kernels in ("reference", "cmsis-nn"):
        for weights, path in files.items():
            proc = run_tinyq("report", path, "--kernels", kernels, "--json")
            assert proc.returncode == 0, proc.stderr
            reports[weights, kernels] = json.loads(proc.stdout)
    assert reports["int8", "reference"]["int4"] is None
    ref, cmsis = reports["int4", "reference"]["int4"], reports["int4", "cmsis-nn"]["int4"]
    layers, int4 = _int4_layers(files["int4"].read_bytes())
    assert ref["layers"] == int4 == layers
    # every weight is a layer's: the saving is the int8 file's weight bytes less the int4 file's
    saved = reports["int8", "reference"]["flash"]["weights"] - reports["int4", "reference"]["flash"]["weights"]
    assert ref["flash_saved_bytes"] == saved > 0 and ref["weight_bytes"] == reports["int4", "reference"]["flash"]["weights"]
    # reference kernels: one byte per weight of each layer; CMSIS-NN: none
    per_layer = [l["unpack_scratch_bytes"] for l in reports["int4", "reference"]["layers"]]
    assert ref["unpack_scratch_largest_bytes"] == max(per_layer) > 0
    assert ref["unpack_scratch_total_bytes"] == sum(per_layer) == saved + ref["weight_bytes"]
    assert cmsis["unpack_scratch_total_bytes"] == 0 and cmsis["flash_saved_bytes"] == saved
    proc = run_tinyq("report", files["int4"], "--kernels", "reference")
    assert f"int4 weights: {layers} layers" in proc.stdout and "unpack them into arena buffers" in proc.stdout


def _weight_types(blob: bytes) -> list[int]:
    """The weights' tensor type of each conv / depthwise / fully connected layer, in order."""
    m = runtime.convert_bytearray_to_object(bytearray(blob))
    sg = m.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    return [sg.tensors[op.inputs[1]].type for op in sg.operators if codes[op.opcodeIndex] in WEIGHT_OPS]


@pytest.mark.parametrize("max_drop", [100.0, 0.0])
def test_mixed_keeps_the_ends_int8_and_moves_sensitive_layers_back_until_the_budget_holds(run_tinyq, tmp_path,
                                                                                          max_drop):
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    data = fixture / "mnist_test_200.npz"
    out = tmp_path / "m.tflite"
    proc = run_tinyq("quantize", fixture / "model.onnx", "--calib", data, "--weights", "mixed", "--data", data,
                     "--max-drop", max_drop, "-o", out, "--json")
    report = json.loads(proc.stdout)["budget"] if proc.stdout.strip() else None
    assert report is not None, proc.stderr
    types = _weight_types(out.read_bytes()) if out.exists() else None
    steps = report["steps"]
    assert all(s["kind"] == "int8-weights" for s in steps)
    if max_drop == 100.0:
        # met at once: every layer but the first and last int4
        assert proc.returncode == 0 and not steps
        assert types[0] == types[-1] == 9 and all(t == INT4 for t in types[1:-1]) and len(types) > 2
    else:
        # one layer back to int8 per step, the most sensitive first (as the debugger ranks them)
        assert len({s["target"] for s in steps}) == len(steps) <= len(report["ranking"])
        if report["met"]:
            assert proc.returncode == 0 and report["final_drop"] <= 0
            assert types[0] == types[-1] == 9 and sum(t == INT4 for t in types) == len(types) - 2 - len(steps)
        else:
            assert proc.returncode == 1 and not out.exists()
            assert len(steps) == len(types) - 2
    if types is not None:
        mine, ref, _, _ = _run_both(run_tinyq, out, np.load(data)["x"][:50], tmp_path)
        np.testing.assert_array_equal(mine, ref)


def test_mixed_refusal_names_what_would_help(run_tinyq, tmp_path):
    """Labelled with the FP32 model's own outputs, FP32 scores an RMSE of 0: no choice of weights
    meets --max-drop 0, not even int8 weights in every layer."""
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    data = fixture / "mnist_test_200.npz"
    x = np.load(data)["x"][:64]
    np.savez(tmp_path / "x.npz", x=x)
    assert run_tinyq("run", fixture / "model.onnx", "--data", tmp_path / "x.npz", "-o", tmp_path / "y.npz").returncode == 0
    np.savez(tmp_path / "own.npz", x=x, y=np.load(tmp_path / "y.npz")["y"])
    out = tmp_path / "m.tflite"
    args = ("quantize", fixture / "model.onnx", "--calib", data, "--weights", "mixed", "--data", tmp_path / "own.npz",
            "--metric", "rmse", "--max-drop", 0, "-o", out)
    proc = run_tinyq(*args)
    assert proc.returncode == 1 and not out.exists(), proc.stderr
    assert "cannot be met with --weights mixed" in proc.stderr and "with int8 weights in every layer" in proc.stderr
    assert "a larger --max-drop" in proc.stderr and "--weights int8 with --max-drop" in proc.stderr, proc.stderr
    assert "try --allow-float" not in proc.stderr and "panicked" not in proc.stderr
    proc = run_tinyq(*args, "--allow-float")
    assert proc.returncode == 1 and not out.exists()
    assert "--allow-float does not go with --weights mixed" in proc.stderr, proc.stderr


def test_mixed_needs_a_budget(run_tinyq, tmp_path):
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    proc = run_tinyq("quantize", fixture / "model.onnx", "--calib", fixture / "mnist_test_200.npz", "--weights",
                     "mixed", "-o", tmp_path / "m.tflite")
    assert proc.returncode == 1 and "--weights mixed" in proc.stderr and "--max-drop" in proc.stderr, proc.stderr


@pytest.mark.parametrize("max_drop,met", [(60.0, True), (5.0, False)])
def test_mixed_moves_the_sensitive_layer_back_to_int8(shared_dir, run_tinyq, tmp_path, max_drop, met):
    """hello_world: three dense layers, the middle one the only int4 candidate; int4 costs
    several times the FP32 RMSE, int8 about half of it more."""
    card_dir = shared_dir / "models" / "hello_world"
    data = (card_dir / json.loads((card_dir / "card.json").read_text())["dataset"]["file"]).resolve()
    out = tmp_path / "m.tflite"
    proc = run_tinyq("quantize", card_dir / "model.onnx", "--calib", data, "--weights", "mixed", "--data", data,
                     "--max-drop", max_drop, "-o", out, "--json")
    report = json.loads(proc.stdout)["budget"]
    assert report["plain_drop"] > 100 and [s["kind"] for s in report["steps"]] == ["int8-weights"]
    assert report["met"] == met and report["final_drop"] < 60
    if met:
        assert proc.returncode == 0 and _weight_types(out.read_bytes()) == [9, 9, 9]
    else:
        assert proc.returncode == 1 and not out.exists() and "cannot be met with --weights mixed" in proc.stderr
        assert "--weights int8 with --max-drop" in proc.stderr and "try --allow-float" not in proc.stderr


def test_train_int4_starts_from_adarounds_rounding(run_tinyq, tmp_path):
    """With a learning rate too small to move any weight, `train --weights int4` writes the file it
    starts from: the very file `quantize --weights int4` writes (AdaRound and the corrections its
    choice keeps; with min/max ranges, AdaRound alone), not the round-to-nearest one."""
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    arrays = np.load(fixture / "mnist_test_200.npz")
    np.savez(tmp_path / "calib.npz", x=arrays["x_calib"])
    np.savez(tmp_path / "train.npz", x=arrays["x"][:64], y=arrays["y"][:64])
    for calibration in (("--calibration", "auto"), ("--calibration", "minmax")):
        common = ("--calib", tmp_path / "calib.npz", *calibration, "--weights", "int4")
        files = {}
        for name, args in {
            "ptq": ("quantize", fixture / "model.onnx", *common),
            "nearest": ("quantize", fixture / "model.onnx", *common, "--no-corrections"),
            "qat": ("train", fixture / "model.onnx", "--data", tmp_path / "train.npz", *common, "--lr", "1e-30",
                    "--epochs", 1),
        }.items():
            proc = run_tinyq(*args, "-o", tmp_path / f"{name}.tflite")
            assert proc.returncode == 0, proc.stderr
            files[name] = (tmp_path / f"{name}.tflite").read_bytes()
        assert files["ptq"] != files["nearest"], calibration
        assert files["qat"] == files["ptq"], calibration


def test_train_int4_writes_int4_weights_that_run_bit_exactly(run_tinyq, tmp_path):
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    data = fixture / "mnist_test_200.npz"
    out = tmp_path / "t.tflite"
    proc = run_tinyq("train", fixture / "model.onnx", "--data", data, "--epochs", 1, "--weights", "int4", "-o", out)
    assert proc.returncode == 0, proc.stderr
    layers, int4 = _int4_layers(out.read_bytes())
    assert layers > 0 and int4 == layers
    mine, ref, _, _ = _run_both(run_tinyq, out, np.load(data)["x"][:50], tmp_path)
    np.testing.assert_array_equal(mine, ref)
    bad = run_tinyq("train", fixture / "model.onnx", "--data", data, "--epochs", 1, "--weights", "mixed", "-o",
                    tmp_path / "m.tflite")
    assert bad.returncode == 1 and "--weights mixed" in bad.stderr and not (tmp_path / "m.tflite").exists()
