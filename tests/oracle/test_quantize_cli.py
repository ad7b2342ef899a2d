"""`tinyq quantize` on small models the tests build: bad input, fallbacks, determinism, float I/O.

Runs anywhere (no ../shared): the models are made with onnx.helper, TFLM is the `tflite-micro`
package."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tflite_micro.python.tflite_micro import runtime

import oracle_lib


def model(nodes, inits, out_shape, in_shape=(1, 3, 6, 6)):
    graph = helper.make_graph(
        nodes, "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    onnx.checker.check_model(m, full_check=True)
    return m


def conv_net(extra_nodes=(), extra_inits=None, tail="r"):
    rng = np.random.default_rng(1)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32)}
    inits.update(extra_inits or {})
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        *extra_nodes,
        helper.make_node("GlobalAveragePool", [tail], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["y"], name="flatten"),
    ]
    return model(nodes, inits, (1, 4))


@pytest.fixture
def files(tmp_path):
    def write(m, n_calib=32, x=None):
        path = tmp_path / "m.onnx"
        onnx.save(m, path)
        rng = np.random.default_rng(2)
        data = tmp_path / "calib.npz"
        xs = x if x is not None else rng.standard_normal((n_calib, 3, 6, 6)).astype(np.float32)
        np.savez(data, x=xs, y=rng.integers(0, 4, len(xs)))
        return path, data
    return write


def check_refused(proc, out, *words):
    assert proc.returncode == 1, oracle_lib.describe_failure(proc)
    assert "panicked" not in proc.stderr
    assert proc.stderr.startswith("error:"), proc.stderr
    for w in words:
        assert w.lower() in proc.stderr.lower(), f"`{w}` missing from: {proc.stderr}"
    assert not out.exists()


def test_too_small_calibration_set_is_refused(files, run_tinyq, tmp_path):
    path, data = files(conv_net(), n_calib=1)
    out = tmp_path / "q.tflite"
    check_refused(run_tinyq("quantize", path, "--calib", data, "-o", out), out, "calibration", "2 samples")


def test_op_without_int8_kernel_is_refused_naming_the_node(files, run_tinyq, tmp_path):
    lo, hi = np.array(-2.0, np.float32), np.array(3.0, np.float32)
    m = conv_net([helper.make_node("Clip", ["r", "lo", "hi"], ["k"], name="odd_clip")], {"lo": lo, "hi": hi}, tail="k")
    path, data = files(m)
    out = tmp_path / "q.tflite"
    check_refused(run_tinyq("quantize", path, "--calib", data, "-o", out), out, "odd_clip", "Clip")


def test_infinite_activations_are_refused_naming_the_tensor(files, run_tinyq, tmp_path):
    big = np.array(1e30, np.float32)
    m = conv_net([helper.make_node("Mul", ["r", "big"], ["m1"], name="scale_up"),
                  helper.make_node("Mul", ["m1", "big"], ["m2"], name="overflow")], {"big": big}, tail="m2")
    path, data = files(m, x=np.full((8, 3, 6, 6), 5.0, np.float32))
    out = tmp_path / "q.tflite"
    # the tensor is known by its layer's name (`overflow` writes `m2`)
    check_refused(run_tinyq("quantize", path, "--calib", data, "-o", out), out, "NaN/Inf", "overflow")


def test_bad_calibration_flag_and_output_are_refused(files, run_tinyq, tmp_path):
    path, data = files(conv_net())
    out = tmp_path / "q.tflite"
    check_refused(run_tinyq("quantize", path, "--calib", data, "--calibration", "kl", "-o", out), out, "--calibration")
    check_refused(run_tinyq("quantize", path, "--calib", data, "-o", tmp_path / "q.onnx"), tmp_path / "q.onnx", ".tflite")
    before = path.read_bytes()
    proc = run_tinyq("quantize", path, "--calib", data, "-o", path)
    assert proc.returncode == 1 and path.read_bytes() == before


def test_constant_zero_activation_gets_a_usable_scale(files, run_tinyq, tmp_path):
    zero = np.zeros(1, np.float32)
    m = conv_net([helper.make_node("Mul", ["r", "zero"], ["z"], name="to_zero")], {"zero": zero}, tail="z")
    path, data = files(m)
    out = tmp_path / "q.tflite"
    proc = run_tinyq("quantize", path, "--calib", data, "-o", out, "--json")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    for r in json.loads(proc.stdout)["ranges"]:
        assert r["scale"] > 0 and -128 <= r["zero_point"] <= 127, r
    z = next(r for r in json.loads(proc.stdout)["ranges"] if r["tensor"] == "to_zero")  # `z`, named after its layer
    assert (z["scale"], z["zero_point"]) == (1 / 256, -128)
    it = runtime.Interpreter.from_bytes(out.read_bytes())
    it.set_input(np.zeros((1, 3, 6, 6), np.int8), 0)
    it.invoke()
    assert (it.get_output(0) == -128).all()


def test_same_input_and_flags_give_byte_identical_files(files, run_tinyq, tmp_path):
    path, data = files(conv_net())
    outs = []
    for k, threads in enumerate(["1", "2"]):
        out = tmp_path / f"q{k}.tflite"
        proc = oracle_lib.subprocess.run(
            [str(oracle_lib.tinyq_bin()), "quantize", str(path), "--calib", str(data), "--calibration", "entropy", "-o", str(out)],
            capture_output=True, text=True, env={**oracle_lib.os.environ, "RAYON_NUM_THREADS": threads},
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_float_io_runs_in_tflm_like_the_int8_model(files, run_tinyq, tmp_path):
    path, data = files(conv_net())
    q8, qf = tmp_path / "int8.tflite", tmp_path / "float.tflite"
    for out, io in [(q8, "int8"), (qf, "float")]:
        proc = run_tinyq("quantize", path, "--calib", data, "--io", io, "-o", out)
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    x = np.load(data)["x"][:4]
    np.savez(tmp_path / "eval.npz", x=x)
    proc = run_tinyq("run", qf, "--data", tmp_path / "eval.npz", "-o", tmp_path / "yf.npz")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    ours = np.load(tmp_path / "yf.npz")["y"]
    assert ours.dtype == np.float32
    it = runtime.Interpreter.from_bytes(qf.read_bytes())
    for i in range(len(x)):
        it.set_input(x[i : i + 1], 0)
        it.invoke()
        np.testing.assert_array_equal(ours[i : i + 1], it.get_output(0))
    proc = run_tinyq("run", q8, "--data", tmp_path / "eval.npz", "-o", tmp_path / "y8.npz")
    y8 = np.load(tmp_path / "y8.npz")["y"]
    assert y8.dtype == np.int8


def test_quantize_reports_fp32_and_int8_metrics(files, run_tinyq, tmp_path):
    path, data = files(conv_net())
    proc = run_tinyq("quantize", path, "--calib", data, "--data", data, "-o", tmp_path / "q.tflite", "--json")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    m = json.loads(proc.stdout)["metrics"]
    assert m["metric"] == "top1" and 0 <= m["fp32"] <= 1 and 0 <= m["int8"] <= 1 and m["samples"] == 32
