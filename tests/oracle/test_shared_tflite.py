"""The FP32 .tflite models of ../shared (Keras-converted, role fp32_tflite): read into the IR and
run by tinyq's float engine, against the card's LiteRT metric and LiteRT's outputs per sample.
The dynamic-range (hybrid) file too, as its dequantized float model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

import oracle_lib

PER_SAMPLE_REL_TOL = 1e-4


def _cases(role: str):
    shared = oracle_lib.shared_dir()
    cases = [
        pytest.param((card_path, name), id=f"{card_path.parent.name}/{name}")
        for card_path in sorted(shared.glob("models/*/card.json"))
        for name, info in sorted(json.loads(card_path.read_text())["files"].items())
        if info.get("role") == role
    ]
    return cases or [pytest.param(None, marks=pytest.mark.skip(reason="../shared not present"))]


def worst_ratio_against_litert(model, got: np.ndarray, x: np.ndarray) -> float:
    """Largest per-sample max|tinyq − LiteRT| / max|LiteRT| over the samples, LiteRT's reference
    kernels running `model` one sample at a time."""
    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    worst = 0.0
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i : i + 1].reshape(inp["shape"]))
        it.invoke()
        ref = it.get_tensor(outp["index"]).reshape(got[i].shape)
        worst = max(worst, float(np.abs(got[i] - ref).max() / max(np.abs(ref).max(), 1e-12)))
    return worst


@pytest.mark.parametrize("case", _cases("fp32_tflite"))
def test_fp32_tflite_matches_litert(case, run_tinyq, tmp_path):
    card_path, name = case
    card = json.loads(card_path.read_text())
    model = card_path.parent / name
    data = (card_path.parent / card["dataset"]["file"]).resolve()
    x_key, y_key = card["dataset"]["eval_arrays"]

    proc = run_tinyq("eval", model, "--data", data, "--x", x_key, "--y", y_key, "--metric", card["metric"], "--json")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    value = json.loads(proc.stdout)["value"]
    expected = card["fp32"][f"{name} @ litert_builtin"]
    assert round(value, 3) == round(expected, 3), f"tinyq {value} vs LiteRT {expected}"

    out = tmp_path / "y.npz"
    proc = run_tinyq("run", model, "--data", data, "--x", x_key, "-o", out)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    worst = worst_ratio_against_litert(model, np.load(out)["y"], np.load(data)[x_key].astype(np.float32))
    print(f"{card_path.parent.name}/{name}: {value} (LiteRT {expected}), worst per-sample ratio {worst:.2e}")
    assert worst <= PER_SAMPLE_REL_TOL


def dequantized_copy(src, dst) -> int:
    """Writes `src` with every int8 weight of a float CONV_2D / DEPTHWISE_CONV_2D /
    FULLY_CONNECTED (a dynamic-range layer) turned into float32 `(q - zp) * scale` per channel:
    the float model LiteRT then runs with its float kernels. Returns how many it converted."""
    import flatbuffers
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = runtime.convert_bytearray_to_object(bytearray(src.read_bytes()))
    sg = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    done = set()
    for op in sg.operators:
        if codes[op.opcodeIndex] not in (3, 4, 9) or len(op.inputs) < 2:
            continue
        x, w = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]]
        if x.type != schema.TensorType.FLOAT32 or w.type != schema.TensorType.INT8 or op.inputs[1] in done:
            continue
        q = np.frombuffer(bytes(model.buffers[w.buffer].data), dtype=np.int8).reshape(w.shape).astype(np.float32)
        scale = np.asarray(w.quantization.scale, dtype=np.float32)
        zp = np.asarray(w.quantization.zeroPoint, dtype=np.float32)
        shape = [1] * q.ndim
        if len(scale) > 1:
            shape[w.quantization.quantizedDimension] = len(scale)
        f = ((q - zp.reshape(shape)) * scale.reshape(shape)).astype(np.float32)
        model.buffers[w.buffer].data = np.frombuffer(f.tobytes(), dtype=np.uint8)
        w.type = schema.TensorType.FLOAT32
        w.quantization = None
        done.add(op.inputs[1])
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(bytes(b.Output()))
    return len(done)


@pytest.mark.parametrize("case", _cases("hybrid_tflite"))
def test_hybrid_tflite_imports_as_its_dequantized_float_model(case, run_tinyq, tmp_path):
    """A dynamic-range ("hybrid") .tflite: int8 weights under float activations. tinyq reads it as
    the float model with dequantized weights: its outputs equal LiteRT's on a copy with those
    weights written as float32; its metric is within a point of LiteRT's hybrid kernels (which
    also quantize the activations on the fly); and quantizing it gives a file equal to TFLM."""
    from test_max_drop import assert_bit_exact_in_tflm

    card_path, name = case
    card = json.loads(card_path.read_text())
    model = card_path.parent / name
    data = (card_path.parent / card["dataset"]["file"]).resolve()
    x_key, y_key = card["dataset"]["eval_arrays"]
    float_copy = tmp_path / "dequantized.tflite"
    converted = dequantized_copy(model, float_copy)
    assert converted > 0, "no dynamic-range layer in the file"

    out = tmp_path / "y.npz"
    proc = run_tinyq("run", model, "--data", data, "--x", x_key, "-o", out)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    worst = worst_ratio_against_litert(float_copy, np.load(out)["y"], np.load(data)[x_key].astype(np.float32))

    value = json.loads(run_tinyq("eval", model, "--data", data, "--x", x_key, "--y", y_key, "--json").stdout)["value"]
    hybrid = card["published_hybrid_float32_file"][f"{name} @ litert_builtin"]
    q = tmp_path / "q.tflite"
    report = json.loads(run_tinyq("quantize", model, "--calib", data, "--data", data, "--eval-x", x_key, "--y", y_key, "-o", q, "--json").stdout)
    print(f"{card_path.parent.name}/{name}: {converted} dynamic-range layers; worst per-sample ratio {worst:.2e} against the "
          f"dequantized float file; top-1 {value} (LiteRT hybrid kernels {hybrid}); INT8 {report['metrics']['int8']}")
    assert worst <= PER_SAMPLE_REL_TOL
    assert abs(value - hybrid) <= 0.01
    assert report["metrics"]["int8"] >= value - 0.01
    assert assert_bit_exact_in_tflm(run_tinyq, q, data, key=x_key, tmp=tmp_path) > 0
