"""Random multi-op graphs (bench/random_graphs.py: convolutions, depthwise, residual ADD/SUB,
CONCATENATION of branches with fixed-parameter activations, pools, pads, dense heads, with
random quantize flags) quantized by tinyq: TFLM accepts every file and its int8 outputs equal
`tinyq run` bit for bit.

Environment: TINYQ_RANDOM_GRAPHS (default 64 graphs), TINYQ_RANDOM_GRAPHS_SEED (default 20261207).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.python.tflite_micro import runtime

import oracle_lib

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import random_graphs  # noqa: E402

COUNT = int(os.environ.get("TINYQ_RANDOM_GRAPHS", "64"))
SEED = int(os.environ.get("TINYQ_RANDOM_GRAPHS_SEED", "20261207"))


def _quantize_like_tflite(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    v = x.astype(np.float32) / np.float32(scale)
    return np.clip(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + zero_point, -128, 127).astype(np.int8)


@pytest.mark.parametrize("seed", range(SEED, SEED + COUNT))
def test_random_graph_runs_in_tflm_like_tinyq(seed, run_tinyq, tmp_path):
    flags = random_graphs.make(seed, tmp_path)
    model = tmp_path / "q.tflite"
    proc = run_tinyq("quantize", tmp_path / f"g{seed}.onnx", "--calib", tmp_path / f"g{seed}.npz", "-o", model, *flags)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    tflm = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=8 << 20)
    inp = tflm.get_input_details(0)
    x = np.load(tmp_path / f"g{seed}.npz")["x"][:8]
    if inp["dtype"] == np.int8:
        q = inp["quantization_parameters"]
        x = _quantize_like_tflite(x, q["scales"][0], q["zero_points"][0])
    x = x.astype(inp["dtype"]).reshape((len(x), *inp["shape"][1:]))
    np.savez(tmp_path / "x.npz", x=x)
    proc = run_tinyq("run", model, "--data", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    ours = np.load(tmp_path / "y.npz")["y"].reshape(len(x), -1)
    for i in range(len(x)):
        tflm.set_input(x[i : i + 1], 0)
        tflm.invoke()
        np.testing.assert_array_equal(ours[i], tflm.get_output(0).reshape(-1), err_msg=f"graph {seed} {flags}, sample {i}")
