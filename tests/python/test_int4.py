"""int4 weights from Python: `tinyq.quantize(..., weights="int4"|"mixed")` and
`tinyq.train(..., weights="int4")` write the bytes the CLI writes with `--weights`."""

from __future__ import annotations

import numpy as np
import pytest

import tinyq
from conftest import REPO, cli_json

DEMO = REPO / "fixtures" / "mnist_dscnn"
DATA = DEMO / "mnist_test_200.npz"


def test_quantize_int4_writes_the_clis_file(cli, tmp_path):
    cli("quantize", DEMO / "model.onnx", "--calib", DATA, "--weights", "int4", "-o", tmp_path / "cli.tflite")
    expected = (tmp_path / "cli.tflite").read_bytes()
    arrays = np.load(DATA)
    got = tinyq.quantize(DEMO / "model.onnx", calib=arrays["x_calib"], weights="int4", progress=False)
    assert got.to_bytes() == expected
    int8 = tinyq.quantize(DEMO / "model.onnx", calib=arrays["x_calib"], progress=False)
    # Not the int8 file: the weights are packed two to a byte.
    assert len(expected) < 0.8 * len(int8.to_bytes())
    off = tinyq.quantize(DEMO / "model.onnx", calib=DATA, weights="int4", corrections=False, progress=False)
    cli("quantize", DEMO / "model.onnx", "--calib", DATA, "--weights", "int4", "--no-corrections", "-o", tmp_path / "off.tflite")
    assert off.to_bytes() == (tmp_path / "off.tflite").read_bytes()


def test_quantize_mixed_writes_the_clis_file(cli, tmp_path):
    arrays = np.load(DATA)
    flags = ["--data", DATA, "--weights", "mixed", "--max-drop", "1"]
    expected = cli_json(cli, "quantize", DEMO / "model.onnx", "--calib", DATA, *flags, "-o", tmp_path / "cli.tflite")
    got = tinyq.quantize(
        DEMO / "model.onnx", calib=arrays["x_calib"], data=arrays["x"], y=arrays["y"], weights="mixed", max_drop=1,
        progress=False,
    )
    assert got.to_bytes() == (tmp_path / "cli.tflite").read_bytes()
    assert got.outcome["budget"] == expected["budget"] and got.metrics == expected["metrics"]


def test_train_int4_writes_the_clis_file(cli, tmp_path):
    arrays = np.load(DATA)
    x, y = arrays["x"][:96], arrays["y"][:96]
    np.savez(tmp_path / "train.npz", x=x, y=y)
    flags = ["--epochs", "1", "--batch-size", "16", "--calib-samples", "32", "--seed", "5", "--weights", "int4"]
    cli("train", DEMO / "model.onnx", "--data", tmp_path / "train.npz", *flags, "-o", tmp_path / "cli.tflite")
    got = tinyq.train(
        DEMO / "model.onnx", x, y, epochs=1, batch_size=16, calib_samples=32, seed=5, weights="int4", progress=False
    )
    assert got.to_bytes() == (tmp_path / "cli.tflite").read_bytes()
    int8 = tinyq.train(DEMO / "model.onnx", x, y, epochs=1, batch_size=16, calib_samples=32, seed=5, progress=False)
    assert len(got.to_bytes()) < len(int8.to_bytes())


def test_weights_errors_raise_tinyq_error():
    x = np.load(DATA)["x"]
    with pytest.raises(tinyq.TinyqError, match="int2"):
        tinyq.quantize(DEMO / "model.onnx", calib=x, weights="int2", progress=False)
    with pytest.raises(tinyq.TinyqError, match="mixed"):
        tinyq.quantize(DEMO / "model.onnx", calib=x, weights="mixed", progress=False)
    with pytest.raises(tinyq.TinyqError, match="--allow-float does not go with --weights mixed"):
        tinyq.quantize(DEMO / "model.onnx", calib=x, data=x, y=np.load(DATA)["y"], weights="mixed", max_drop=1,
                       allow_float=True, progress=False)
    with pytest.raises(tinyq.TinyqError, match="mixed"):
        tinyq.train(DEMO / "model.onnx", x[:32], np.zeros(32, np.int64), epochs=1, weights="mixed", progress=False)


def test_quantize_kernels_is_the_clis_flag(cli, tmp_path):
    cli("quantize", DEMO / "model.onnx", "--calib", DATA, "--weights", "int4", "--kernels", "reference",
        "-o", tmp_path / "cli.tflite")
    got = tinyq.quantize(DEMO / "model.onnx", calib=DATA, weights="int4", kernels="reference", progress=False)
    assert got.to_bytes() == (tmp_path / "cli.tflite").read_bytes()
    with pytest.raises(tinyq.TinyqError, match="cmsis-nn"):
        tinyq.quantize(DEMO / "model.onnx", calib=DATA, weights="int4", kernels="arm", progress=False)
