"""Interpreter-free C (`tinyq export --c DIR --no-interpreter`) built with the host C compiler
(`gcc -std=c99 -Wall -Wextra -Werror`) equals `tinyq run` bit for bit:

* every shared model's INT8 files (the converter's, MLPerf's and TFLM's, and tinyq's own
  quantization of model.onnx) on 50 samples of the shared data;
* random multi-op graphs (bench/random_graphs.py, int8 I/O, tinyq's int8 layers) on 8 random
  int8 inputs each, covering the whole int8 range;
* random single-op models of every single-input kind of tests/oracle/tflm_lib.py.

Environment: TINYQ_CGEN_RANDOM (default 60 graphs), TINYQ_CGEN_SINGLE (default 3 per kind),
TINYQ_CGEN_SEED (default 20261207).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import random_graphs  # noqa: E402

RANDOM = int(os.environ.get("TINYQ_CGEN_RANDOM", "60"))
SINGLE = int(os.environ.get("TINYQ_CGEN_SINGLE", "3"))
SEED = int(os.environ.get("TINYQ_CGEN_SEED", "20261207"))
SAMPLES = 50
DATA = {"hello_world": "sine.npz", "mnist_cnn_torch": "mnist.npz", "mnist_dscnn_torch": "mnist.npz",
        "kws_dscnn": "kws01.npz", "ic_resnet8": "ic01.npz"}
# Kinds of tflm_lib with one input and an interpreter-free kernel.
SINGLE_KINDS = ("conv", "depthwise_conv", "fully_connected", "max_pool", "avg_pool", "mean", "softmax",
                "logistic", "tanh", "hardswish", "pad", "reshape", "fully_connected_per_unit", "elu")

if shutil.which("gcc") is None:
    pytest.skip("gcc not installed (Debian package gcc)", allow_module_level=True)


def _int8_flags(flags: list[str]) -> list[str]:
    """The random graph's quantize flags without float I/O, int16 or float layers."""
    out, skip = [], False
    for f in flags:
        if skip:
            skip = False
            continue
        if f in ("--io", "--int16", "--keep-float"):
            skip = True
            continue
        out.append(f)
    return out


def _shared_cases():
    shared = oracle_lib.shared_dir()
    if not shared.is_dir():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"../shared not present (looked at {shared})"))]
    cases = []
    for name in DATA:
        cases.append(pytest.param(name, "tinyq", id=f"{name}-tinyq"))
        for f in sorted((shared / "models" / name).glob("model_int8_*.tflite")):
            cases.append(pytest.param(name, f.name, id=f"{name}-{f.stem}"))
    return cases


@pytest.mark.parametrize("name,file", _shared_cases())
def test_shared_model_host_c_equals_tinyq(name, file, tinyq_bin, tmp_path):
    shared = oracle_lib.shared_dir()
    data = shared / "data" / DATA[name]
    if file == "tinyq":
        model = tmp_path / "q.tflite"
        proc = oracle_lib.run_tinyq(tinyq_bin, "quantize", shared / "models" / name / "model.onnx",
                                    "--calib", data, "-o", model)
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    else:
        model = shared / "models" / name / file
    scale, zp, shape, dtype = cgen_lib.input_qparams(model)
    assert dtype == "int8", dtype
    x = np.load(data)["x"][:SAMPLES]
    x_q = cgen_lib.quantize_like_tflite(x, scale, zp).reshape(len(x), *shape[1:])
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path)
    assert total == len(x) * int(np.prod(cgen_lib.output_shape(tmp_path / "c")))
    assert bad == 0, f"{bad} of {total} output elements differ"


@pytest.mark.parametrize("seed", range(SEED, SEED + RANDOM))
def test_random_graph_host_c_equals_tinyq(seed, tinyq_bin, tmp_path):
    flags = _int8_flags(random_graphs.make(seed, tmp_path))
    model = tmp_path / "q.tflite"
    # min/max ranges: the quantization method does not matter here, and auto is 5x slower.
    proc = oracle_lib.run_tinyq(tinyq_bin, "quantize", tmp_path / f"g{seed}.onnx", "--calib",
                                tmp_path / f"g{seed}.npz", "-o", model, "--calibration", "minmax", *flags)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    _, _, shape, _ = cgen_lib.input_qparams(model)
    x_q = np.random.default_rng(seed).integers(-128, 128, size=(8, *shape[1:])).astype(np.int8)
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path)
    assert bad == 0, f"graph {seed} {flags}: {bad} of {total} output elements differ"


@pytest.mark.parametrize("kind,index", [(k, i) for k in SINGLE_KINDS for i in range(SINGLE)])
def test_single_op_host_c_equals_tinyq(kind, index, tinyq_bin, tmp_path):
    case = tflm_lib.build_case(kind, index, tmp_path)
    assert len(case.input_names) == 1, case.input_names
    model = case.dir / "m.tflite"
    proc = oracle_lib.run_tinyq(tinyq_bin, "quantize", case.dir / "model.onnx", "--calib",
                                case.dir / "calib.npz", "-o", model, *case.quantize_args)
    if proc.returncode == 1 and "error:" in proc.stderr:
        pytest.skip(f"tinyq quantize refuses this case: {proc.stderr.strip().splitlines()[0]}")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    _, _, shape, _ = cgen_lib.input_qparams(model)
    sample = shape[1:] if shape[0] == 1 else shape  # a batch dimension other than 1 is part of a sample
    x_q = np.random.default_rng(index).integers(-128, 128, size=(6, *sample)).astype(np.int8)
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path)
    assert bad == 0, f"{case.id} {case.params}: {bad} of {total} output elements differ"


def test_unsupported_layers_are_refused_naming_the_node(tinyq_bin, tmp_path):
    """A model with a float layer cannot be written without an interpreter: exit 1, an error
    naming the node, no folder left."""
    seed = next(s for s in range(SEED, SEED + 200) if "--keep-float" in random_graphs.make(s, tmp_path))
    flags = random_graphs.make(seed, tmp_path)
    model = tmp_path / "q.tflite"
    proc = oracle_lib.run_tinyq(tinyq_bin, "quantize", tmp_path / f"g{seed}.onnx", "--calib",
                                tmp_path / f"g{seed}.npz", "-o", model, *[f for f in flags if f != "float"
                                                                          and f != "--io"])
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    proc = cgen_lib.export(tinyq_bin, model, tmp_path / "c")
    assert proc.returncode == 1, oracle_lib.describe_failure(proc)
    assert proc.stderr.startswith("error:") and "node `" in proc.stderr and "no interpreter-free C kernel" in proc.stderr, proc.stderr
    assert not (tmp_path / "c").exists()


def test_example_main_c_builds_warning_free_and_runs(tinyq_bin, tmp_path):
    """The exported main.c with the model's sources is a complete C99 program."""
    case = tflm_lib.build_case("conv", 0, tmp_path)
    model = case.dir / "m.tflite"
    proc = oracle_lib.run_tinyq(tinyq_bin, "quantize", case.dir / "model.onnx", "--calib", case.dir / "calib.npz", "-o", model)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    proc = cgen_lib.export(tinyq_bin, model, tmp_path / "c", "net")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    out = tmp_path / "c"
    assert (out / "main.c").is_file() and (out / "net.ino").is_file()
    import subprocess

    exe = tmp_path / "main.bin"
    cc = subprocess.run(["gcc", *cgen_lib.CFLAGS, "-o", str(exe), *sorted(str(p) for p in out.glob("*.c"))],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("largest output element"), run.stdout + run.stderr
    arena = int(next(l for l in (out / "net.h").read_text().splitlines() if "NET_ARENA_SIZE" in l and "#define" in l).split()[-1])
    assert f"arena {arena} bytes" in run.stdout
