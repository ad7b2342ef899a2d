"""Interpreter-free C (`tinyq export --c DIR --no-interpreter`) of files with int4 weights, built
with the host C compiler (`gcc -std=c99 -Wall -Wextra -Werror`), equals `tinyq run` on the same
file bit for bit:

* the demo MNIST model quantized with `--weights int4` (AdaRound on, and round to nearest);
* every shared model's model.onnx quantized with `--weights int4`, on 50 samples of its data;
* random multi-op graphs (bench/random_graphs.py) and random conv, depthwise conv and fully
  connected models (tests/oracle/tflm_lib.py) quantized with `--weights int4`, on random int8
  inputs over the whole range;
* the demo model and the random graphs also with `--kernels cmsis-nn`, against the vendored
  CMSIS-NN compiled for the host (its plain C lanes).

Environment: TINYQ_CGEN_INT4_RANDOM (default 12 graphs), TINYQ_CGEN_SEED (default 20261207).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import cgen_lib
import oracle_lib
import tflm_lib
from test_cgen_host import DATA, SAMPLES, _int8_flags
from test_cgen_pointwise import host_cmsis_nn  # noqa: F401 (a fixture)
from test_int4_shared import _int4_layers

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import random_graphs  # noqa: E402

RANDOM = int(os.environ.get("TINYQ_CGEN_INT4_RANDOM", "12"))
SEED = int(os.environ.get("TINYQ_CGEN_SEED", "20261207"))
KINDS = ("conv", "depthwise_conv", "fully_connected")
DEMO = oracle_lib.REPO / "fixtures" / "mnist_dscnn"

if shutil.which("gcc") is None:
    pytest.skip("gcc not installed (Debian package gcc)", allow_module_level=True)


def _quantize_int4(binary: Path, src: Path, calib: Path, out: Path, *flags) -> None:
    # The C holds int4 weights unpacked and never calls CMSIS-NN's int4 depthwise kernel, so every
    # layer may be int4 (by default quantize keeps the layers that kernel reads wrongly int8).
    proc = oracle_lib.run_tinyq(binary, "quantize", src, "--calib", calib, "--weights", "int4", "--kernels", "reference",
                                "-o", out, *flags)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    layers, int4 = _int4_layers(out.read_bytes())
    assert int4 > 0, f"{out}: no int4 layer among {layers}"


def _compare_on_data(binary: Path, model: Path, x: np.ndarray, work: Path) -> None:
    scale, zp, shape, dtype = cgen_lib.input_qparams(model)
    assert dtype == "int8", dtype
    x_q = cgen_lib.quantize_like_tflite(x, scale, zp).reshape(len(x), *shape[1:])
    bad, total = cgen_lib.compare(binary, model, x_q, work)
    assert total == len(x) * int(np.prod(cgen_lib.output_shape(work / "c")))
    assert bad == 0, f"{bad} of {total} output elements differ"


@pytest.mark.parametrize("flags", [(), ("--no-corrections",)], ids=["adaround", "nearest"])
def test_demo_int4_host_c_equals_tinyq(flags, tinyq_bin, tmp_path):
    data = DEMO / "mnist_test_200.npz"
    model = tmp_path / "q.tflite"
    _quantize_int4(tinyq_bin, DEMO / "model.onnx", data, model, *flags)
    _compare_on_data(tinyq_bin, model, np.load(data)["x"][:SAMPLES], tmp_path)


@pytest.mark.parametrize("name", sorted(DATA))
def test_shared_int4_host_c_equals_tinyq(name, shared_dir, tinyq_bin, tmp_path):
    data = shared_dir / "data" / DATA[name]
    model = tmp_path / "q.tflite"
    _quantize_int4(tinyq_bin, shared_dir / "models" / name / "model.onnx", data, model)
    _compare_on_data(tinyq_bin, model, np.load(data)["x"][:SAMPLES], tmp_path)


def _random_graph(seed: int, binary: Path, tmp: Path) -> tuple[Path, np.ndarray, list[str]]:
    """Random graph `seed` quantized with int4 weights (min/max ranges), 8 random int8 inputs and
    its quantize flags."""
    flags = _int8_flags(random_graphs.make(seed, tmp))
    model = tmp / "q.tflite"
    proc = oracle_lib.run_tinyq(binary, "quantize", tmp / f"g{seed}.onnx", "--calib", tmp / f"g{seed}.npz", "-o",
                                model, "--calibration", "minmax", "--weights", "int4", *flags)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    _, _, shape, _ = cgen_lib.input_qparams(model)
    return model, np.random.default_rng(seed).integers(-128, 128, size=(8, *shape[1:])).astype(np.int8), flags


@pytest.mark.parametrize("seed", range(SEED, SEED + RANDOM))
def test_random_graph_int4_host_c_equals_tinyq(seed, tinyq_bin, tmp_path):
    model, x_q, flags = _random_graph(seed, tinyq_bin, tmp_path)
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path)
    assert bad == 0, f"graph {seed} {flags}: {bad} of {total} output elements differ"


@pytest.mark.parametrize("kind,index", [(k, i) for k in KINDS for i in range(3)])
def test_single_op_int4_host_c_equals_tinyq(kind, index, tinyq_bin, tmp_path):
    case = tflm_lib.build_case(kind, index, tmp_path)
    model = case.dir / "m.tflite"
    _quantize_int4(tinyq_bin, case.dir / "model.onnx", case.dir / "calib.npz", model, *case.quantize_args)
    _, _, shape, _ = cgen_lib.input_qparams(model)
    sample = shape[1:] if shape[0] == 1 else shape
    x_q = np.random.default_rng(index).integers(-128, 128, size=(6, *sample)).astype(np.int8)
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path)
    assert bad == 0, f"{case.id} {case.params}: {bad} of {total} output elements differ"


def test_demo_int4_host_cmsis_nn_equals_tinyq(tinyq_bin, host_cmsis_nn, tmp_path):  # noqa: F811
    archive, include = host_cmsis_nn
    data = DEMO / "mnist_test_200.npz"
    model = tmp_path / "q.tflite"
    _quantize_int4(tinyq_bin, DEMO / "model.onnx", data, model)
    scale, zp, shape, _ = cgen_lib.input_qparams(model)
    x_q = cgen_lib.quantize_like_tflite(np.load(data)["x"][:SAMPLES], scale, zp).reshape(SAMPLES, *shape[1:])
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path, kernels="cmsis-nn", extra=("-I", include, archive))
    assert bad == 0, f"{bad} of {total} output elements differ"


@pytest.mark.parametrize("seed", range(SEED, SEED + RANDOM))
def test_random_graph_int4_host_cmsis_nn_equals_tinyq(seed, tinyq_bin, host_cmsis_nn, tmp_path):  # noqa: F811
    archive, include = host_cmsis_nn
    model, x_q, flags = _random_graph(seed, tinyq_bin, tmp_path)
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path, kernels="cmsis-nn", extra=("-I", include, archive))
    assert bad == 0, f"graph {seed} {flags}: {bad} of {total} output elements differ"
