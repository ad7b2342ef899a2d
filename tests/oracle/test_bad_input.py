"""Bad user input: tinyq must refuse it cleanly.

Every case: non-zero exit, a stderr line starting with `error:` that names what is wrong (file,
node, array key or flag), no Rust panic, and no output file left behind.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

INPUT_SHAPE = [1, 3, 8, 8]
N_CLASSES = 5


def small_model(opset: int = 13) -> onnx.ModelProto:
    """A 4-class classifier: x [1,3,8,8] -> Conv 3x3 -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal([4, 3, 3, 3]).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal([4]).astype(np.float32), "b"),
        numpy_helper.from_array(rng.standard_normal([N_CLASSES, 4]).astype(np.float32), "fc_w"),
        numpy_helper.from_array(rng.standard_normal([N_CLASSES]).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv0", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu0"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap0"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten0"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc0", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, INPUT_SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N_CLASSES])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def unsupported_op_model(op: str) -> onnx.ModelProto:
    """A valid model whose only node, named "weird_node", is `op` at opset 17."""
    if op == "Det":
        node = helper.make_node("Det", ["x"], ["y"], name="weird_node")
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 3])]
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]
    else:  # NonMaxSuppression
        node = helper.make_node("NonMaxSuppression", ["x", "scores"], ["y"], name="weird_node")
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 4]),
                  helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 6])]
        outputs = [helper.make_tensor_value_info("y", TensorProto.INT64, [None, 3])]
    graph = helper.make_graph([node], "weird", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.fixture
def model_file(tmp_path) -> Path:
    path = tmp_path / "small.onnx"
    onnx.save(small_model(), str(path))
    return path


@pytest.fixture
def data_file(tmp_path) -> Path:
    path = tmp_path / "data.npz"
    rng = np.random.default_rng(1)
    np.savez(path, x=rng.standard_normal([5] + INPUT_SHAPE[1:]).astype(np.float32),
             labels=np.arange(5, dtype=np.int64) % 4)
    return path


def assert_clean_error(proc: subprocess.CompletedProcess, *must_mention: str,
                       out: Path | None = None, hide: tuple[Path, ...] = ()) -> str:
    """The common contract; returns stderr with the `hide` paths removed (for number checks)."""
    stderr = proc.stderr
    assert proc.returncode != 0, f"exit 0 on bad input; stdout={proc.stdout[:500]!r}"
    assert "panicked" not in stderr and proc.returncode != 101, f"Rust panic:\n{stderr}"
    assert any(line.startswith("error:") for line in stderr.splitlines()), (
        f"no line starting with 'error:' on stderr:\n{stderr}"
    )
    if out is not None:
        assert not out.exists(), f"output file {out.name} left behind"
        if out.parent.is_dir():
            leftovers = [p.name for p in out.parent.iterdir() if out.name in p.name]
            assert not leftovers, f"temporary output files left behind: {leftovers}"
    for word in must_mention:
        assert word.lower() in stderr.lower(), f"error does not mention {word!r}:\n{stderr}"
    for path in hide:
        stderr = stderr.replace(str(path), "<path>")
    return stderr


# ---------------------------------------------------------------- broken model files

def _truncated(path: Path) -> None:
    data = small_model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(np.random.default_rng(42).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _empty(path: Path) -> None:
    path.write_bytes(b"")


BROKEN_MODELS = {"truncated": _truncated, "garbage": _garbage, "empty": _empty}


@pytest.mark.parametrize("command", ["run", "inspect"])
@pytest.mark.parametrize("kind", BROKEN_MODELS)
def test_broken_model_file(run_tinyq, tmp_path, data_file, kind, command):
    model = tmp_path / f"broken_{kind}.onnx"
    BROKEN_MODELS[kind](model)
    out = tmp_path / "out.npz"
    if command == "run":
        proc = run_tinyq("run", model, "--data", data_file, "-o", out)
    else:
        proc = run_tinyq("inspect", model, "--json")
    assert_clean_error(proc, model.name, out=out)


@pytest.mark.parametrize("command", ["run", "inspect"])
def test_nonexistent_model_file(run_tinyq, tmp_path, data_file, command):
    model = tmp_path / "no_such_model.onnx"
    out = tmp_path / "out.npz"
    args = ["--data", data_file, "-o", out] if command == "run" else ["--json"]
    proc = run_tinyq(command, model, *args)
    assert_clean_error(proc, model.name, out=out)


def test_model_over_2gb_is_refused_by_size(run_tinyq, tmp_path, data_file):
    model = tmp_path / "huge.onnx"
    with open(model, "wb") as f:
        f.truncate(2**31 + 10)  # sparse: instant, takes no disk
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", model, "--data", data_file, "-o", out)
    stderr = assert_clean_error(proc, model.name, out=out, hide=(model,))
    assert re.search(r"2\s*Gi?B|2147483\d{3}|2\.0+\d*\s*Gi?B", stderr, re.IGNORECASE), (
        f"error does not state the size or the 2 GB limit:\n{proc.stderr}"
    )


@pytest.mark.parametrize("op", ["Det", "NonMaxSuppression"])
def test_unsupported_op_names_node_op_and_opset(run_tinyq, tmp_path, op):
    model = tmp_path / "unsupported.onnx"
    onnx.save(unsupported_op_model(op), str(model))
    data = tmp_path / "d.npz"
    inputs = {vi.name: np.ones([d.dim_value for d in vi.type.tensor_type.shape.dim], np.float32)
              for vi in unsupported_op_model(op).graph.input}
    np.savez(data, **inputs)
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", model, "--data", data, "--x", ",".join(inputs), "-o", out)
    stderr = assert_clean_error(proc, "weird_node", op, out=out, hide=(model, data, out, tmp_path))
    assert "17" in stderr, f"error does not name the opset (17):\n{proc.stderr}"


# ---------------------------------------------------------------- bad data

def _shape_pattern(shape) -> str:
    """Matches the shape written as [4, 3, 9, 9], (4,3,9,9), 4x3x9x9, ..."""
    return r"\D{1,3}".join(str(d) for d in shape)


@pytest.mark.parametrize(
    "array, detail",
    [
        pytest.param(np.zeros([4, 3, 9, 9], np.float32), _shape_pattern([4, 3, 9, 9]),
                     id="wrong_spatial_shape"),
        pytest.param(np.zeros([4, 8, 8, 3], np.float32), _shape_pattern([4, 8, 8, 3]),
                     id="nhwc_instead_of_nchw"),
        pytest.param(np.zeros([4, 2, 8, 8], np.int32), _shape_pattern([4, 2, 8, 8]) + "|int32",
                     id="int_wrong_shape"),
        pytest.param(np.zeros([4, 3, 8, 8], bool), "bool", id="bool_dtype"),
    ],
)
def test_bad_data_array(run_tinyq, tmp_path, model_file, array, detail):
    data = tmp_path / "bad.npz"
    np.savez(data, pixels=array)
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", model_file, "--data", data, "--x", "pixels", "-o", out)
    stderr = assert_clean_error(proc, "pixels", out=out, hide=(tmp_path,))
    assert re.search(detail, stderr), f"error does not say what is wrong ({detail!r}):\n{proc.stderr}"


def test_nan_in_data_names_the_array(run_tinyq, tmp_path, model_file):
    x = np.zeros([3, 3, 8, 8], np.float32)
    x[1, 2, 3, 4] = np.nan
    data = tmp_path / "nan.npz"
    np.savez(data, images=x)
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", model_file, "--data", data, "--x", "images", "-o", out)
    assert_clean_error(proc, "images", out=out)


def test_missing_key_lists_available_keys(run_tinyq, tmp_path, model_file):
    data = tmp_path / "keys.npz"
    np.savez(data, alpha_arr=np.zeros([2, 3, 8, 8], np.float32), beta_arr=np.zeros(2, np.int64))
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", model_file, "--data", data, "--x", "gamma_arr", "-o", out)
    assert_clean_error(proc, "gamma_arr", "alpha_arr", "beta_arr", out=out)


def test_default_key_missing(run_tinyq, tmp_path, model_file):
    data = tmp_path / "nokey.npz"
    np.savez(data, inputs=np.zeros([2, 3, 8, 8], np.float32))
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", model_file, "--data", data, "-o", out)
    assert_clean_error(proc, "inputs", out=out)


def test_nonexistent_data_file(run_tinyq, tmp_path, model_file):
    data = tmp_path / "missing_data.npz"
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", model_file, "--data", data, "-o", out)
    assert_clean_error(proc, data.name, out=out)


def test_eval_label_count_mismatch(run_tinyq, tmp_path, model_file):
    data = tmp_path / "labels.npz"
    np.savez(data, imgs=np.zeros([7, 3, 8, 8], np.float32), lbls=np.zeros([6], np.int64))
    proc = run_tinyq("eval", model_file, "--data", data, "--x", "imgs", "--y", "lbls",
                     "--metric", "top1", "--json")
    stderr = assert_clean_error(proc, "lbls", hide=(tmp_path,))
    assert "7" in stderr and "6" in stderr, f"error does not give both counts (7, 6):\n{proc.stderr}"


def test_eval_labels_outside_the_class_range(run_tinyq, tmp_path, model_file):
    """Labels 0..N_CLASSES-1 are the only ones a top-1 can match; 99 means the wrong array."""
    data = tmp_path / "labels.npz"
    np.savez(data, x=np.zeros([4, 3, 8, 8], np.float32), lbls=np.array([0, 1, 99, 2], np.int64))
    proc = run_tinyq("eval", model_file, "--data", data, "--y", "lbls", "--metric", "top1", "--json")
    assert_clean_error(proc, "lbls", "99")


# ---------------------------------------------------------------- output path

def test_output_into_missing_directory_names_the_given_path(run_tinyq, tmp_path, model_file, data_file):
    out = tmp_path / "no_such_dir" / "out.npz"
    proc = run_tinyq("run", model_file, "--data", data_file, "-o", out)
    assert_clean_error(proc, str(out), out=out)


@pytest.mark.parametrize("spelling", ["same", "via_subdir", "data_file"])
def test_output_onto_an_input_is_refused(run_tinyq, tmp_path, model_file, data_file, spelling):
    (tmp_path / "sub").mkdir()
    target = {
        "same": model_file,
        "via_subdir": tmp_path / "sub" / ".." / model_file.name,
        "data_file": data_file,
    }[spelling]
    victim = data_file if spelling == "data_file" else model_file
    before = victim.read_bytes()
    proc = run_tinyq("run", model_file, "--data", data_file, "-o", target)
    assert_clean_error(proc)
    assert victim.read_bytes() == before, f"{victim.name} was modified"


def test_valid_inputs_succeed(run_tinyq, tmp_path, model_file, data_file):
    """Control: the fixtures are fine on their own, so the failures above come from the defect."""
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", model_file, "--data", data_file, "-o", out)
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as z:
        assert z["y"].shape == (5, N_CLASSES)
    proc = run_tinyq("eval", model_file, "--data", data_file, "--y", "labels", "--metric", "top1",
                     "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["samples"] == 5
