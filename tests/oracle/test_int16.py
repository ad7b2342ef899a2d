"""Int16 activations with int8 weights (TFLM's 16x8 kernels), checked bit for bit against TFLM.

- Randomized single-layer models (conv, depthwise conv, fully connected, and the int16 ADD,
  CONCATENATION, max/average pool, MEAN and RESHAPE; the generators of `tflm_lib`, so random shapes, strides,
  dilations, paddings, broadcasts, constant operands, fused ReLU, per-tensor weights and data
  ranges) quantized with the layer in int16 (`tinyq quantize --int16 LAYER`): the file holds
  int8 → QUANTIZE → int16 layer → QUANTIZE → int8. The int16 output of the layer is
  added to the model's outputs (the flatbuffer's output list is edited), so the int16 values
  themselves are compared, not only the int8 values after the requantize.
- A planted model where one activation needs more than 8 bits: the accuracy-budget search finds
  that int16 activations meet the budget that neither plain PTQ nor per-tensor calibration
  meets, and the mixed int8/int16 file equals TFLM on every sample.

Environment: TINYQ_INT16_CASES_PER_KIND (default 100 for the three layers with weights, two
fifths of it for the other six kinds: 540 cases).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import flatbuffers
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tflite_micro.python.tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

import oracle_lib
import tflm_lib
from test_max_drop import assert_bit_exact_in_tflm, file_ops_and_dtypes, ok

CASES_PER_KIND = int(os.environ.get("TINYQ_INT16_CASES_PER_KIND", "100"))
# Case indices start here so the models differ from the int8 single-op oracle's.
INDEX_BASE = 5000
MAX_REFUSED_FRACTION = 0.10
# The ops that run with int16 activations, as `tinyq inspect` names them, and their builtin codes.
LAYER_OPS = ("Conv2D", "DepthwiseConv2D", "FullyConnected", "Add", "Concat", "MaxPool2D", "AvgPool2D", "Mean", "Reshape")
# CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, CONCATENATION, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, RESHAPE
LAYER_CODES = {3, 4, 9, 0, 2, 17, 1, 40, 22}
INT16 = 7  # TensorType.INT16 in the TFLite schema
# Fewer cases for the ops without weights: their arithmetic has fewer parameters.
CASES_PER_PLAIN_KIND = max(1, CASES_PER_KIND * 2 // 5)


def with_int16_outputs(src: Path, dst: Path) -> list[str]:
    """Copies the model with every int16 tensor an op of LAYER_CODES writes appended to the
    subgraph outputs; returns their names."""
    model = runtime.convert_bytearray_to_object(bytearray(src.read_bytes()))
    sg = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    layer_codes = LAYER_CODES
    extra = [int(op.outputs[0]) for op in sg.operators if codes[op.opcodeIndex] in layer_codes and sg.tensors[op.outputs[0]].type == INT16]
    sg.outputs = np.array(list(sg.outputs) + extra, dtype=np.int32)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(bytes(b.Output()))
    return [sg.tensors[i].name.decode() for i in extra]


def run_tflm_all_outputs(tflite: Path, xq: list[np.ndarray]) -> list[np.ndarray]:
    """Every output of the model on every sample; `xq` holds one array per model input."""
    it = runtime.Interpreter.from_bytes(tflite.read_bytes(), arena_size=tflm_lib.TFLM_ARENA_BYTES)
    n_out = len(runtime.convert_bytearray_to_object(bytearray(tflite.read_bytes())).subgraphs[0].outputs)
    outs: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    for i in range(len(xq[0])):
        for k, x in enumerate(xq):
            it.set_input(x[i], k)
        it.invoke()
        for k in range(n_out):
            outs[k].append(np.array(it.get_output(k), copy=True))
    return [np.stack(o) for o in outs]



def assert_every_output_matches_tflm(run_tinyq, model: Path, x: np.ndarray, tmp: Path) -> list[np.ndarray]:
    """Quantizes float `x` for the model's (single, int8) input as TFLite does, runs it through
    `tinyq run` and TFLM, and asserts every output equal in dtype and value; returns TFLM's."""
    det = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=tflm_lib.TFLM_ARENA_BYTES).get_input_details(0)
    qp = det["quantization_parameters"]
    xq = tflm_lib.quantize_like_tflite(x, float(qp["scales"][0]), int(qp["zero_points"][0]))
    xq = xq.reshape((len(x), *[int(d) for d in det["shape"]]))
    np.savez(tmp / "xq.npz", x=xq)
    ok(run_tinyq("run", model, "--data", tmp / "xq.npz", "-o", tmp / "ours.npz"))
    ours = np.load(tmp / "ours.npz")
    theirs = run_tflm_all_outputs(model, [xq])
    for k, ref in enumerate(theirs):
        got = ours["y" if k == 0 else f"y_{k}"]
        assert got.dtype == ref.dtype, (k, got.dtype, ref.dtype)
        np.testing.assert_array_equal(got.reshape(ref.shape), ref)
    return theirs

def check_case(run_tinyq, kind: str, index: int, root: Path) -> dict:
    case = tflm_lib.build_case(kind, INDEX_BASE + index, root)
    layers = json.loads(ok(run_tinyq("inspect", case.dir / "model.onnx", "--json")).stdout)["layers"]
    names = [l["name"] for l in layers if l["op"].split(" ")[0] in LAYER_OPS]
    assert names, (case.id, layers)
    plain = case.dir / "m.tflite"
    proc = run_tinyq("quantize", case.dir / "model.onnx", "--calib", case.dir / "calib.npz", "--int16", ",".join(names), *case.quantize_args, "-o", plain)
    if proc.returncode != 0:
        assert proc.returncode == 1 and proc.stderr.startswith("error:") and "panicked" not in proc.stderr, oracle_lib.describe_failure(proc)
        return {"status": "refused", "error": proc.stderr.strip().splitlines()[0], "params": case.params}
    model = case.dir / "m16.tflite"
    wide = with_int16_outputs(plain, model)
    assert wide, f"{case.id}: no int16 layer output in the file"
    ev = np.load(case.dir / "eval_float.npz")
    it = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=tflm_lib.TFLM_ARENA_BYTES)
    xq = []
    for k, name in enumerate(case.input_names):
        det = it.get_input_details(k)
        qp = det["quantization_parameters"]
        assert np.dtype(det["dtype"]) == np.int8
        x = ev[name]
        xq.append(tflm_lib.quantize_like_tflite(x, float(qp["scales"][0]), int(qp["zero_points"][0])).reshape((len(x), *[int(d) for d in det["shape"]])))
    np.savez(case.dir / "eval_q.npz", **dict(zip(case.input_names, xq)))
    theirs = run_tflm_all_outputs(model, xq)
    out = case.dir / "tinyq.npz"
    ok(run_tinyq("run", model, "--data", case.dir / "eval_q.npz", "--x", ",".join(case.input_names), "-o", out))
    ours = np.load(out)
    keys = ["y"] + [f"y_{k}" for k in range(1, len(theirs))]
    compared = mismatched = int16_values = 0
    for key, ref in zip(keys, theirs):
        got = ours[key]
        assert got.dtype == ref.dtype, (case.id, key, got.dtype, ref.dtype)
        got = got.reshape(ref.shape)
        compared += ref.size
        mismatched += int((got != ref).sum())
        if ref.dtype == np.int16:
            int16_values += ref.size
    status = "ok" if mismatched == 0 else "mismatch"
    return {"status": status, "compared": compared, "int16": int16_values, "mismatched": mismatched, "params": case.params, "dir": str(case.dir)}


@pytest.mark.parametrize("kind", ["conv", "depthwise_conv", "fully_connected", "add", "concat", "max_pool", "avg_pool", "mean", "reshape"])
def test_random_16x8_layers_match_tflm(kind, run_tinyq, tmp_path):
    cases = CASES_PER_KIND if kind in ("conv", "depthwise_conv", "fully_connected") else CASES_PER_PLAIN_KIND
    results = {i: check_case(run_tinyq, kind, i, tmp_path) for i in range(cases)}
    refused = {i: r for i, r in results.items() if r["status"] == "refused"}
    bad = {i: r for i, r in results.items() if r["status"] == "mismatch"}
    done = [r for r in results.values() if r["status"] != "refused"]
    print(f"\n16x8 {kind}: {len(results)} cases, {len(bad)} mismatching, {len(refused)} refused; "
          f"{sum(r['compared'] for r in done)} values compared ({sum(r['int16'] for r in done)} of them int16), "
          f"{sum(r['mismatched'] for r in done)} differ from TFLM")
    for i, r in refused.items():
        print(f"  refused {kind}-{INDEX_BASE + i}: {r['error']}  params {json.dumps(r['params'])}")
    assert not bad, "\n".join(f"{kind}-{INDEX_BASE + i}: {r['mismatched']}/{r['compared']} differ; params {json.dumps(r['params'])}; {r['dir']}" for i, r in bad.items())
    assert len(refused) <= MAX_REFUSED_FRACTION * len(results), refused
    assert sum(r["int16"] for r in done) > 0


# ----------------------------------------------------------------------------------------------
# A planted model whose hidden activation needs more than 8 bits
# ----------------------------------------------------------------------------------------------

IN, HID, OUT = 16, 32, 10
SPIKE = 1000.0


def wide_range_model(path: Path, seed: int = 7, residual: bool = False) -> None:
    """x [1, 16] → Gemm → h [1, 32] → Gemm → logits [1, 10]. Unit 0 of h is always SPIKE (its
    weights are 0, its bias SPIKE) and the second layer cancels it exactly with its bias, with a
    different weight per class: FP32 does not see it, but it stretches h's range ~300x. With an
    int8 h (scale ~4) the other units, of size ~1, are lost; clipping h instead (what a narrower
    calibration range does) shifts every logit by a different amount. An int16 h (scale ~0.03)
    keeps both. With `residual`, the spike comes from a second branch (a layer with zero weights
    and bias SPIKE on unit 0) added to the first layer's output (h = Add(a, b)), so int16 h needs
    an int16 ADD."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((HID, IN)) * 0.4).astype(np.float32)
    b1 = (rng.standard_normal(HID) * 0.2).astype(np.float32)
    w1[0] = 0.0
    b1[0] = 0.0 if residual else SPIKE
    # Per-tensor int8 weights of scale max|w2| / 127 = 0.01: the cancelling weights are whole
    # multiples of it, so their quantization error (times SPIKE) does not decide the test.
    w2 = np.clip(rng.standard_normal((OUT, HID)) * 0.5, -1.2, 1.2).astype(np.float32)
    w2[1, 1] = 1.27
    w2[:, 0] = np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], np.float32) / 100
    b2 = (-SPIKE * w2[:, 0]).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["a" if residual else "h"], transB=1, name="fc1"),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["logits"], transB=1, name="fc2"),
    ]
    if residual:
        spike = np.zeros(HID, np.float32)
        spike[0] = SPIKE
        inits += [numpy_helper.from_array(np.zeros((HID, IN), np.float32), "wb"), numpy_helper.from_array(spike, "bb")]
        nodes[1:1] = [
            helper.make_node("Gemm", ["x", "wb", "bb"], ["b"], transB=1, name="spike_branch"),
            helper.make_node("Add", ["a", "b"], ["h"], name="spike_add"),
        ]
    graph = helper.make_graph(nodes, "wide_range", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, IN])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, OUT])], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)


def reference_logits(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": xi[None]})[0] for xi in x])


def plant_data(model: Path, path: Path) -> int:
    """Calibration and evaluation data for a wide-range plant, labelled with the FP32 classes;
    returns the number of evaluation samples."""
    rng = np.random.default_rng(11)
    x_calib = rng.standard_normal((200, IN)).astype(np.float32)
    x = rng.standard_normal((1000, IN)).astype(np.float32)
    # Labels: the FP32 model's own classes, so FP32 top-1 is 1 and every flipped class counts;
    # samples whose two best logits are within 0.5 are left out (rounding the int8 logits alone
    # could flip them, whatever h's type).
    logits = np.sort(reference_logits(model, x), axis=1)
    x = x[logits[:, -1] - logits[:, -2] > 0.5][:400]
    y = reference_logits(model, x).argmax(1).astype(np.int64)
    np.savez(path, x=x, y=y, x_calib=x_calib)
    return len(x)


def test_int16_step_meets_a_budget_plain_ptq_and_calibration_miss(run_tinyq, tmp_path):
    model = tmp_path / "wide.onnx"
    wide_range_model(model)
    data = tmp_path / "data.npz"
    plant_data(model, data)
    x = np.load(data)["x"]
    budget = 0.5

    # Without int16 the search cannot meet the budget (and says what it tried).
    out = tmp_path / "wide.tflite"
    proc = run_tinyq("quantize", model, "--calib", data, "--data", data, "--max-drop", budget, "--no-int16", "-o", out, "--json")
    assert proc.returncode == 1 and "cannot be met" in proc.stderr and not out.exists(), oracle_lib.describe_failure(proc)
    no_int16 = json.loads(proc.stdout)["budget"]
    assert no_int16["plain_drop"] > budget and no_int16["final_drop"] > budget
    assert no_int16["calibration_candidates"] > 0 and no_int16["int16_candidates"] == 0

    proc = ok(run_tinyq("quantize", model, "--calib", data, "--data", data, "--max-drop", budget, "-o", out, "--json"))
    report = json.loads(proc.stdout)
    b = report["budget"]
    print(f"\nwide-range plant: FP32 {b['fp32']:.4f}, plain PTQ drop {b['plain_drop']:.2f} pt, "
          f"best without int16 {no_int16['final_drop']:.2f} pt, with int16 {b['final_drop']:.2f} pt; steps {b['steps']}; "
          f"candidates {b['calibration_candidates']} calibration, {b['int16_candidates']} int16")
    assert b["met"] and b["final_drop"] <= budget
    assert b["steps"][-1]["kind"] == "int16", b["steps"]
    assert sorted(b["int16_layers"]) == ["fc1", "fc2"], b["int16_layers"]
    assert "fc1" in b["steps"][-1]["change"]  # tensor h, known by its layer's name
    ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
    assert ops.get("Quantize") == 2 and "int16" in dtypes and "int64" in dtypes, (ops, dtypes)
    # The metric the search reports is the file's, and the file is TFLM's to the bit.
    after = json.loads(ok(run_tinyq("eval", out, "--data", data, "--json")).stdout)["value"]
    assert after == pytest.approx(b["final_metric"])
    assert assert_bit_exact_in_tflm(run_tinyq, out, data, tmp=tmp_path) == len(x) * OUT
    # The int16 tensors themselves too (h, named fc1 after its layer, shared by the two 16x8 layers,
    # and fc2's int16 output).
    patched = tmp_path / "wide_h.tflite"
    assert with_int16_outputs(out, patched) == ["fc1", "logits_int16"]
    theirs = assert_every_output_matches_tflm(run_tinyq, patched, x, tmp_path)
    assert len(theirs) == 3 and theirs[1].dtype == theirs[2].dtype == np.int16

    # Text mode names the step.
    text = ok(run_tinyq("quantize", model, "--calib", data, "--data", data, "--max-drop", budget, "-o", tmp_path / "t.tflite")).stdout
    assert "int16" in text and "met" in text


def test_int16_step_reaches_through_a_residual_add(run_tinyq, tmp_path):
    """The wide-range plant with its spike added by an ADD: int16 h needs the ADD in int16 too.
    The search runs the ADD and the layer reading h with int16 activations and meets the budget;
    the file (int16 ADD with an int16 constant operand) equals TFLM on every sample."""
    model = tmp_path / "residual.onnx"
    wide_range_model(model, residual=True)
    layers = json.loads(ok(run_tinyq("inspect", model, "--json")).stdout)["layers"]
    assert [l["op"].split(" ")[0] for l in layers] == ["FullyConnected"] * 2 + ["Add", "FullyConnected"], layers
    data = tmp_path / "data.npz"
    n = plant_data(model, data)
    budget = 0.5
    out = tmp_path / "residual.tflite"
    proc = run_tinyq("quantize", model, "--calib", data, "--data", data, "--max-drop", budget, "--no-int16", "-o", out, "--json")
    assert proc.returncode == 1 and not out.exists(), oracle_lib.describe_failure(proc)
    b = json.loads(ok(run_tinyq("quantize", model, "--calib", data, "--data", data, "--max-drop", budget, "-o", out, "--json")).stdout)["budget"]
    print(f"\nresidual plant: plain PTQ drop {b['plain_drop']:.2f} pt, with int16 {b['final_drop']:.2f} pt; steps {b['steps']}")
    assert b["met"] and b["plain_drop"] > budget and b["steps"][-1]["kind"] == "int16", b
    assert "spike_add" in b["int16_layers"] and "fc2" in b["int16_layers"], b["int16_layers"]
    ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
    assert "int16" in dtypes, dtypes
    assert assert_bit_exact_in_tflm(run_tinyq, out, data, tmp=tmp_path) == n * OUT


def test_int16_flag_errors(run_tinyq, tmp_path):
    model = tmp_path / "wide.onnx"
    wide_range_model(model)
    data = tmp_path / "d.npz"
    np.savez(data, x_calib=np.random.default_rng(0).standard_normal((8, IN)).astype(np.float32))
    out = tmp_path / "q.tflite"
    for extra, words in [(["--int16", "nope"], ["--int16", "nope"]), (["--no-int16"], ["--no-int16", "--max-drop"]),
                         (["--int16", "fc1", "--keep-float", "fc1"], ["fc1", "both"]),
                         (["--int16", "all,fc1"], ["--int16 all", "alone"])]:
        proc = run_tinyq("quantize", model, "--calib", data, *extra, "-o", out)
        assert proc.returncode == 1 and proc.stderr.startswith("error") and "panicked" not in proc.stderr, (extra, proc.stderr)
        for w in words:
            assert w in proc.stderr, (extra, w, proc.stderr)
        assert not out.exists()
    # `all` leaves out the layers kept in float instead of clashing with them.
    ok(run_tinyq("quantize", model, "--calib", data, "--int16", "all", "--keep-float", "fc1", "-o", out))
    ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
    assert {"float32", "int16"} <= dtypes and ops.get("Dequantize") == 1, (ops, dtypes)


def test_mnist_fixture_with_16x8_layers_runs_bit_exactly_in_tflm(run_tinyq, tmp_path):
    """The MNIST fixture with its layers as 16x8 layers by name (explicit padding becomes an int16
    PAD): every sample's output, and every int16 tensor a layer writes, equal to TFLM."""
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    data = fixture / "mnist_test_200.npz"
    layers = ["/net/net.0/Conv", "/net/net.3/Conv", "/net/net.6/Conv", "/net/net.9/Conv", "/net/net.12/Conv", "/net/net.17/Gemm"]
    for k, chosen in enumerate([layers, layers[:3] + layers[5:]]):
        out = tmp_path / f"m{k}.tflite"
        ok(run_tinyq("quantize", fixture / "model.onnx", "--calib", data, "--int16", ",".join(chosen), "-o", out))
        ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
        assert "int16" in dtypes and ops.get("Quantize", 0) >= 2, ops
        assert assert_bit_exact_in_tflm(run_tinyq, out, data, tmp=tmp_path) == 200 * 10
        patched = tmp_path / f"m{k}_wide.tflite"
        wide = with_int16_outputs(out, patched)
        assert len(wide) == len(chosen), wide
        assert_every_output_matches_tflm(run_tinyq, patched, np.load(data)["x"][:50], tmp_path)
        top1 = json.loads(ok(run_tinyq("eval", out, "--data", data, "--json")).stdout)["value"]
        assert top1 >= 0.97, top1


def test_16x8_float_and_int8_layers_mix_with_float_io(run_tinyq, tmp_path):
    """16x8 layers next to a float layer, with float model input and output: the float output of
    every sample equals TFLM's."""
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    data = fixture / "mnist_test_200.npz"
    out = tmp_path / "mixed.tflite"
    ok(run_tinyq("quantize", fixture / "model.onnx", "--calib", data, "--io", "float", "--int16", "/net/net.0/Conv,/net/net.17/Gemm",
                 "--keep-float", "/net/net.6/Conv", "-o", out))
    ops, dtypes = file_ops_and_dtypes(run_tinyq, out)
    assert {"int16", "int8", "float32", "int64"} <= dtypes and ops.get("Dequantize", 0) >= 2, (ops, dtypes)
    assert assert_bit_exact_in_tflm(run_tinyq, out, data, tmp=tmp_path) == 200 * 10


def test_a_16x8_output_with_an_int8_reader_too(run_tinyq, tmp_path):
    """h = fc1(x) is read by the 16x8 layer fc2 and by a ReLU: fc2 gets the int16 tensor, the ReLU
    an int8 copy (QUANTIZE int16 → int8); the sum runs in int8. Every sample equal to TFLM."""
    rng = np.random.default_rng(3)
    w1, b1 = rng.standard_normal((24, 12)).astype(np.float32) * 0.5, rng.standard_normal(24).astype(np.float32)
    w2, b2 = rng.standard_normal((24, 24)).astype(np.float32) * 0.3, rng.standard_normal(24).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1, name="fc1"),
        helper.make_node("Gemm", ["h", "w2", "b2"], ["a"], transB=1, name="fc2"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Add", ["a", "r"], ["y"], name="sum"),
    ]
    graph = helper.make_graph(nodes, "branch", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24])], initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    model = tmp_path / "branch.onnx"
    onnx.save(m, model)
    data = tmp_path / "d.npz"
    np.savez(data, x=rng.standard_normal((100, 12)).astype(np.float32) * 2, x_calib=rng.standard_normal((50, 12)).astype(np.float32) * 2)
    out = tmp_path / "branch.tflite"
    ok(run_tinyq("quantize", model, "--calib", data, "--int16", "fc1,fc2", "-o", out))
    layers = json.loads(ok(run_tinyq("inspect", out, "--json")).stdout)["layers"]
    assert [l["op"].split(" ")[0] for l in layers].count("Quantize") == 3, layers
    assert assert_bit_exact_in_tflm(run_tinyq, out, data, tmp=tmp_path) == 100 * 24


def _shared_onnx_models():
    shared = oracle_lib.shared_dir()
    found = [pytest.param(p, id=p.parent.name) for p in sorted(shared.glob("models/*/model.onnx"))]
    return found or [pytest.param(None, marks=pytest.mark.skip(reason="../shared not present"))]


@pytest.mark.parametrize("onnx_path", _shared_onnx_models())
def test_shared_models_with_every_layer_in_int16_run_bit_exactly_in_tflm(onnx_path, run_tinyq, tmp_path):
    """Each shared model with every layer that has an int16 kernel run in int16 (residual ADDs,
    pools, reshapes and the layers between them): the output and every int16 tensor those layers
    write equal TFLM's on 100 samples, and the INT8-file metric stays within 1 point of plain PTQ."""
    card = json.loads((onnx_path.parent / "card.json").read_text())
    data = (onnx_path.parent / card["dataset"]["file"]).resolve()
    x_key, y_key = card["dataset"]["eval_arrays"]
    layers = json.loads(ok(run_tinyq("inspect", onnx_path, "--json")).stdout)["layers"]
    names = [l["name"] for l in layers if l["op"].split(" ")[0] in LAYER_OPS]
    out = tmp_path / "all16.tflite"
    report = json.loads(ok(run_tinyq("quantize", onnx_path, "--calib", data, "--int16", ",".join(names), "--data", data,
                                     "--eval-x", x_key, "--y", y_key, "-o", out, "--json")).stdout)
    plain = json.loads(ok(run_tinyq("quantize", onnx_path, "--calib", data, "--data", data, "--eval-x", x_key, "--y", y_key,
                                    "-o", tmp_path / "plain.tflite", "--json")).stdout)
    # `--int16 all` names the same layers.
    ok(run_tinyq("quantize", onnx_path, "--calib", data, "--int16", "all", "-o", tmp_path / "all.tflite"))
    assert (tmp_path / "all.tflite").read_bytes() == out.read_bytes()
    patched = tmp_path / "all16_wide.tflite"
    wide = with_int16_outputs(out, patched)
    assert wide, "no int16 tensor in the file"
    theirs = assert_every_output_matches_tflm(run_tinyq, patched, np.load(data)[x_key][:100], tmp_path)
    assert len(theirs) == 1 + len(wide)
    compared = sum(ref.size for ref in theirs)
    m16, m8 = report["metrics"], plain["metrics"]
    print(f"\n{onnx_path.parent.name}: {len(names)} layers in int16, {len(wide)} int16 tensors, {compared} values equal to TFLM; "
          f"{m16['metric']} FP32 {m16['fp32']:.4f}, plain PTQ {m8['int8']:.4f}, all-int16 {m16['int8']:.4f}; "
          f"file {report['int8_file_bytes']} B (plain {plain['int8_file_bytes']} B)")
    worse = (m16["int8"] - m8["int8"]) if m16["metric"] == "rmse" else (m8["int8"] - m16["int8"])
    assert worse <= (0.01 * m8["int8"] if m16["metric"] == "rmse" else 0.01), (m16, m8)


def test_int16_model_inputs_and_outputs_take_float_or_int16_data(run_tinyq, tmp_path):
    """The fixture with every layer in int16 and its edge QUANTIZEs cut off, so the model takes
    and gives int16 (what the TFLite converter's 16x8 mode writes with int16 I/O): `tinyq run`
    quantizes float data with the input's parameters like TFLite, takes int16 data as-is, and
    gives TFLM's int16 outputs; `tinyq eval` dequantizes them."""
    fixture = oracle_lib.REPO / "fixtures" / "mnist_dscnn"
    data = fixture / "mnist_test_200.npz"
    q = tmp_path / "all16.tflite"
    ok(run_tinyq("quantize", fixture / "model.onnx", "--calib", data, "--int16", "all", "-o", q))
    model = runtime.convert_bytearray_to_object(bytearray(q.read_bytes()))
    sg = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    quantize = 114  # QUANTIZE
    first = next(op for op in sg.operators if codes[op.opcodeIndex] == quantize and op.inputs[0] == sg.inputs[0])
    last = next(op for op in sg.operators if codes[op.opcodeIndex] == quantize and op.outputs[0] == sg.outputs[0])
    sg.inputs = np.array([first.outputs[0]], dtype=np.int32)
    sg.outputs = np.array([last.inputs[0]], dtype=np.int32)
    sg.operators = [op for op in sg.operators if op is not first and op is not last]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    wide = tmp_path / "io16.tflite"
    wide.write_bytes(bytes(b.Output()))

    x = np.load(data)["x"]
    it = runtime.Interpreter.from_bytes(wide.read_bytes(), arena_size=tflm_lib.TFLM_ARENA_BYTES)
    det = it.get_input_details(0)
    assert np.dtype(det["dtype"]) == np.int16
    scale, zp = float(det["quantization_parameters"]["scales"][0]), int(det["quantization_parameters"]["zero_points"][0])
    v = x.astype(np.float32) / np.float32(scale)
    xq = np.clip(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + zp, -32768, 32767).astype(np.int16)
    xq = xq.reshape((len(x), *[int(d) for d in det["shape"]]))
    theirs = run_tflm_all_outputs(wide, [xq])[0]
    assert theirs.dtype == np.int16
    np.savez(tmp_path / "x16.npz", x=xq)
    for src in (data, tmp_path / "x16.npz"):
        ok(run_tinyq("run", wide, "--data", src, "-o", tmp_path / "y.npz"))
        ours = np.load(tmp_path / "y.npz")["y"]
        assert ours.dtype == np.int16
        np.testing.assert_array_equal(ours.reshape(theirs.shape), theirs)
    top1 = json.loads(ok(run_tinyq("eval", wide, "--data", data, "--json")).stdout)["value"]
    assert top1 >= 0.97, top1
    # Data of another integer type is refused, naming the input and what it takes.
    np.savez(tmp_path / "x8.npz", x=xq.astype(np.int8))
    proc = run_tinyq("run", wide, "--data", tmp_path / "x8.npz", "-o", tmp_path / "z.npz")
    assert proc.returncode == 1 and "int16" in proc.stderr and "int8" in proc.stderr and not (tmp_path / "z.npz").exists()
