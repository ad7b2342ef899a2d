"""The arena never comes out short when a kernel's Prepare is the peak.

Per-channel FULLY_CONNECTED allocates its multipliers and shifts from the tail while its
temporary input, weight, bias and output tensors are still held; the allocator lets them land on
those tensors, but the kernel then reads the output's parameters from overwritten memory and
Prepare fails. In a small dense model that moment is the arena's peak. Each model here is checked
against TFLM's Python interpreter: the predicted arena works, and is at most one 16-byte step
above the smallest that does (the part of the output tensor the kernel no longer reads).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "crates/arena/tests"))
import tflm_min_arena  # noqa: E402


def dense_model(folder: Path, units: int, rng) -> Path:
    w = numpy_helper.from_array(rng.standard_normal((8, units)).astype(np.float32), "w")
    b = numpy_helper.from_array((0.1 * rng.standard_normal(units)).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"])], "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, units])], [w, b])
    path = folder / f"dense{units}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def smallest_working(model: Path, predicted: int) -> int:
    """The smallest arena from which every larger one works, searched below the prediction."""
    size = predicted
    while size > 0 and all(tflm_min_arena.probe(str(model), s)[0] for s in range(size - 16, size)):
        size -= 16
    return size


@pytest.mark.parametrize("units", [3, 4, 8, 16])
def test_per_channel_dense_prepare_peak_is_not_short(tmp_path, tinyq_bin, units):
    rng = np.random.default_rng(units)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((16, 8)).astype(np.float32))
    q = tmp_path / f"dense{units}.tflite"
    subprocess.run([str(tinyq_bin), "quantize", str(dense_model(tmp_path, units, rng)), "--calib",
                    str(tmp_path / "calib.npz"), "-o", str(q)], check=True, capture_output=True)
    report = subprocess.run([str(tinyq_bin), "report", str(q), "--pointer-width", "64", "--json"],
                            check=True, capture_output=True, text=True)
    predicted = json.loads(report.stdout)["arena_bytes"]
    ok, log = tflm_min_arena.probe(str(q), predicted)
    assert ok, f"TFLM fails at the predicted {predicted} bytes:\n{log[-1500:]}"
    assert predicted - smallest_working(q, predicted) <= 16
