"""The exporter forms of fixtures/exporters (built by fixtures/exporters/make_fixtures.py):

* the Keras → TFLite model with a dynamic batch, whose Flatten and Reshape are run-time shape
  subgraphs (SHAPE, STRIDED_SLICE, PACK, GATHER, CONCATENATION): its FP32 and FP16 files equal
  LiteRT, its INT8 file and tinyq's quantization of the FP32 file equal TFLM bit for bit;
* the PyTorch TorchScript (opset 13) model whose Hardswish is HardSigmoid + Mul and whose
  Hardsigmoid stands alone: equal to onnxruntime, quantized with a HARD_SWISH op, equal to TFLM;
* `--input-shape` fixing dynamic axes of ONNX and TFLite inputs, and the error naming the input
  and the axis when one is left open.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

import oracle_lib
from test_max_drop import assert_bit_exact_in_tflm, ok

FIX = oracle_lib.REPO / "fixtures" / "exporters"
DATA = FIX / "data.npz"
REL = 1e-5


def litert_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], [1, *x.shape[1:]])
    it.allocate_tensors()
    outs = []
    for xi in x:
        it.set_tensor(inp["index"], xi[None])
        it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"])[0].copy())
    return np.stack(outs)


def tinyq_outputs(run_tinyq, model: Path, data: Path, key: str, tmp: Path, *extra) -> np.ndarray:
    out = tmp / f"{model.stem}_{key}.npz"
    ok(run_tinyq("run", model, "--data", data, "--x", key, "-o", out, *extra))
    return np.load(out)["y"]


def file_ops(run_tinyq, model: Path) -> dict:
    return json.loads(ok(run_tinyq("inspect", model, "--json")).stdout)["ops"]


@pytest.mark.parametrize("mode", ["fp32", "fp16"])
def test_keras_shape_subgraph_folds_and_matches_litert(run_tinyq, tmp_path, mode):
    model = FIX / f"keras_flatten_{mode}.tflite"
    ops = file_ops(run_tinyq, model)
    assert ops == {"Conv2D": 1, "MaxPool2D": 1, "Reshape": 2, "FullyConnected": 1, "Softmax": 1}, ops
    x = np.load(DATA)["x_keras"]
    ours = tinyq_outputs(run_tinyq, model, DATA, "x_keras", tmp_path)
    theirs = litert_outputs(model, x)
    assert oracle_lib.rel_max_diff(ours.reshape(theirs.shape), theirs) <= REL


def test_keras_int8_file_with_shape_subgraph_equals_tflm(run_tinyq, tmp_path):
    model = FIX / "keras_flatten_int8.tflite"
    assert "Quantize" in file_ops(run_tinyq, model)
    assert assert_bit_exact_in_tflm(run_tinyq, model, DATA, key="x_keras", tmp=tmp_path) == 32 * 10


def test_keras_fp32_quantizes_and_equals_tflm(run_tinyq, tmp_path):
    out = tmp_path / "keras_int8.tflite"
    ok(run_tinyq("quantize", FIX / "keras_flatten_fp32.tflite", "--calib", DATA, "--x", "x_keras_calib", "-o", out))
    assert assert_bit_exact_in_tflm(run_tinyq, out, DATA, key="x_keras", tmp=tmp_path) == 32 * 10


def onnxruntime_outputs(model: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: xi[None]})[0] for xi in x])


def test_torch_hardswish_imports_as_hard_swish_and_matches_onnxruntime(run_tinyq, tmp_path):
    model = FIX / "torch_hardswish.onnx"
    summary = json.loads(ok(run_tinyq("inspect", model, "--json")).stdout)
    assert summary["ops"].get("HardSwish") == 1, summary["ops"]
    x = np.load(DATA)["x_torch"]
    ours = tinyq_outputs(run_tinyq, model, DATA, "x_torch", tmp_path)
    theirs = onnxruntime_outputs(model, x)
    assert oracle_lib.rel_max_diff(ours.reshape(theirs.shape), theirs) <= REL


def test_torch_hardswish_quantizes_to_hard_swish_and_equals_tflm(run_tinyq, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    out = tmp_path / "hs_int8.tflite"
    ok(run_tinyq("quantize", FIX / "torch_hardswish.onnx", "--calib", DATA, "--x", "x_torch_calib", "-o", out))
    it = Interpreter(model_content=out.read_bytes())
    it.allocate_tensors()
    names = [op["op_name"] for op in it._get_ops_details()]
    assert names.count("HARD_SWISH") == 1, names
    assert assert_bit_exact_in_tflm(run_tinyq, out, DATA, key="x_torch", tmp=tmp_path) == 32 * 5


# ----------------------------------------------------------------------------------------------
# --input-shape
# ----------------------------------------------------------------------------------------------


def dynamic_onnx(path: Path) -> None:
    """Conv 3x3 (pads 1) → Relu → GlobalAveragePool, input [N, 2, H, W] with symbolic H and W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["y"]),
    ]
    g = helper.make_graph(nodes, "dyn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, "H", "W"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 1, 1])], initializer=[w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.save(m, path)


def dynamic_tflite(path: Path) -> None:
    """CONV_2D 3x3 SAME → MEAN over H, W, input shape [1, 1, 1, 2] with signature [-1, -1, -1, 2]
    (as the converter writes a model with dynamic height and width)."""
    sys.path.insert(0, str(FIX))
    from make_fixtures import B, O, T, Tfl, opts, s

    rng = np.random.default_rng(4)
    f = Tfl()
    x = f.tensor("x", [1, 1, 1, 2], T.FLOAT32, sig=[-1, -1, -1, 2])
    w = f.tensor("w", [4, 3, 3, 2], T.FLOAT32, rng.standard_normal((4, 3, 3, 2)).astype(np.float32))
    b = f.tensor("b", [4], T.FLOAT32, rng.standard_normal(4).astype(np.float32))
    c = f.tensor("c", [1, 1, 1, 4], T.FLOAT32, sig=[-1, -1, -1, 4])
    f.op(B.CONV_2D, [x, w, b], [c], O.Conv2DOptions, opts(s.Conv2DOptionsT, padding=s.Padding.SAME, strideW=1, strideH=1))
    axes = f.i32("axes", [1, 2])
    y = f.tensor("y", [1, 4], T.FLOAT32, sig=[-1, 4])
    f.op(B.MEAN, [c, axes], [y], O.ReducerOptions, opts(s.ReducerOptionsT, keepDims=False))
    f.g.inputs, f.g.outputs = [x], [y]
    path.write_bytes(f.bytes())


def test_input_shape_fixes_dynamic_onnx_axes(run_tinyq, tmp_path):
    model = tmp_path / "dyn.onnx"
    dynamic_onnx(model)
    proc = run_tinyq("inspect", model)
    assert proc.returncode == 1 and "input `x`" in proc.stderr and "dimension 2" in proc.stderr
    assert "--input-shape x=" in proc.stderr, proc.stderr
    x = np.random.default_rng(5).standard_normal((6, 2, 7, 5)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    ours = tinyq_outputs(run_tinyq, model, tmp_path / "d.npz", "x", tmp_path, "--input-shape", "x=1,2,7,5")
    theirs = onnxruntime_outputs(model, x)
    assert oracle_lib.rel_max_diff(ours.reshape(theirs.shape), theirs) <= REL
    for bad, msg in [("x=1,2,7", "3 dimensions"), ("z=1,2,7,5", "not a graph input"), ("x=1,3,7,5", "dimension 1"),
                     ("x=1,2,0,5", "positive")]:
        proc = run_tinyq("inspect", model, "--input-shape", bad)
        assert proc.returncode == 1 and msg in proc.stderr, (bad, proc.stderr)


def test_input_shape_fixes_dynamic_tflite_axes(run_tinyq, tmp_path):
    model = tmp_path / "dyn.tflite"
    dynamic_tflite(model)
    proc = run_tinyq("inspect", model)
    assert proc.returncode == 1 and "`x`" in proc.stderr and "dimension 1 is dynamic" in proc.stderr, proc.stderr
    x = np.random.default_rng(6).standard_normal((5, 6, 9, 2)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    ours = tinyq_outputs(run_tinyq, model, tmp_path / "d.npz", "x", tmp_path, "--input-shape", "x=1,6,9,2")
    theirs = litert_outputs(model, x)
    assert oracle_lib.rel_max_diff(ours.reshape(theirs.shape), theirs) <= REL
    summary = json.loads(ok(run_tinyq("inspect", model, "--json", "--input-shape", "x=1,6,9,2")).stdout)
    assert summary["layers"][0]["output_shape"] == [1, 6, 9, 4]
    assert summary["macs"] == 6 * 9 * 4 * 3 * 3 * 2


# ----------------------------------------------------------------------------------------------
# One name per layer
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture,key", [("mnist_dscnn/model.onnx", "x"), ("exporters/torch_hardswish.onnx", "x_torch")])
def test_one_name_per_layer_across_inspect_debug_report_and_the_file(run_tinyq, tmp_path, fixture, key):
    """A layer has the same name in `inspect` of the ONNX model, in the written .tflite (its
    output tensor), in `inspect` and `report` of that file and in `debug`; a layer writing a graph
    output is known by the output's name in the file."""
    model = oracle_lib.REPO / "fixtures" / fixture
    data = model.parent / ("mnist_test_200.npz" if "mnist" in fixture else "data.npz")
    calib = ["--x", key] if key != "x" else []
    out = tmp_path / "m.tflite"
    ok(run_tinyq("quantize", model, "--calib", data, *calib, "-o", out))
    src = json.loads(ok(run_tinyq("inspect", model, "--json")).stdout)
    outputs = {o["name"] for o in src["outputs"]}
    onnx_names = [l["name"] for l in src["layers"]]
    file_layers = json.loads(ok(run_tinyq("inspect", out, "--json")).stdout)["layers"]
    file_names = [l["name"] for l in file_layers if l["op"].split(" ")[0] not in ("Quantize", "Dequantize")]
    # the writer lowers explicit padding to a PAD named after its layer
    file_names = [n for n in file_names if not n.endswith("/pad")]
    assert file_names[:-1] == onnx_names[:-1], (onnx_names, file_names)
    assert file_names[-1] in outputs
    report = json.loads(ok(run_tinyq("report", out, "--json")).stdout)
    assert [l["name"] for l in report["layers"]] == [l["name"] for l in file_layers]
    dbg = json.loads(ok(run_tinyq("debug", model, out, "--data", data, "--x", key, "--limit", "8", "--json")).stdout)
    assert {l["tensor"] for l in dbg["layers"]} <= set(onnx_names) | outputs, [l["tensor"] for l in dbg["layers"]]
    assert len(dbg["layers"]) >= len(onnx_names) - 2


def test_conv1d_relu_fuses_through_its_reshapes(run_tinyq, tmp_path):
    """PyTorch Conv1d + ReLU (NCL): the ReLU fuses into the conv, so the conv's int8 output range
    starts at 0 (no RELU op left), and the quantized file equals TFLM."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(11)
    inits = [numpy_helper.from_array((rng.standard_normal((6, 4, 3)) * 0.5).astype(np.float32), "w"),
             numpy_helper.from_array((rng.standard_normal(6) * 0.3).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="/conv/Conv", kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="/relu/Relu"),
             helper.make_node("MaxPool", ["r"], ["y"], name="/pool/MaxPool", kernel_shape=[2], strides=[2])]
    g = helper.make_graph(nodes, "conv1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6, 8])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    model = tmp_path / "conv1d.onnx"
    onnx.save(m, model)
    layers = json.loads(ok(run_tinyq("inspect", model, "--json")).stdout)["layers"]
    ops = [l["op"] for l in layers]
    assert "Relu" not in ops and any(l["op"] == "Conv2D" and l["activation"] == "RELU" for l in layers), layers
    x = rng.standard_normal((40, 4, 16)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x)
    out = tmp_path / "conv1d.tflite"
    ok(run_tinyq("quantize", model, "--calib", tmp_path / "d.npz", "-o", out))
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=out.read_bytes())
    conv_out = [t for t in it.get_tensor_details() if t["name"] == "/conv/Conv"]
    assert conv_out and conv_out[0]["quantization"][1] == -128, conv_out  # range [0, max]: zero point −128
    assert assert_bit_exact_in_tflm(run_tinyq, out, tmp_path / "d.npz", tmp=tmp_path) == 40 * 6 * 8
