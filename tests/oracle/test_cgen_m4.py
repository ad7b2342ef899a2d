"""Interpreter-free C (`tinyq verify --no-interpreter`) on the emulated Cortex-M4 (QEMU
mps2-an386): built with `arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror`, with tinyq's portable
kernels and with the vendored CMSIS-NN, its outputs equal `tinyq run` bit for bit on the shared
kws_dscnn files (50 samples) and on random graphs; it needs less RAM than TFLM needs with the
same kernels in the same harness (the TFLM figures come from `tinyq verify`).

Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm (installed by .ci/run) and
../shared; tests skip with the reason otherwise. Environment: TINYQ_CGEN_M4_RANDOM (default 6
random graphs per kernel set), TINYQ_CGEN_SEED.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import oracle_lib
from test_cgen_host import _int8_flags

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import random_graphs  # noqa: E402

TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm")
RANDOM = int(os.environ.get("TINYQ_CGEN_M4_RANDOM", "6"))
SEED = int(os.environ.get("TINYQ_CGEN_SEED", "20261207"))
KERNELS = ("portable", "cmsis-nn")


@pytest.fixture(scope="module")
def shared():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian gcc-arm-none-eabi, qemu-system-arm)")
    path = oracle_lib.shared_dir()
    if not path.is_dir():
        pytest.skip(f"../shared not present (looked at {path})")
    return path


def _verify(run_tinyq, model, data, kernels, shared, limit=50):
    args = ["verify", model, "--no-interpreter", "--kernels", kernels, "--data", data, "--limit", str(limit), "--json"]
    if kernels == "cmsis-nn":
        args += ["--tflm", shared / "vendor" / "tflm-cmsis-nn"]
    proc = run_tinyq(*args, timeout=1800)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kernels", KERNELS)
def test_kws_on_the_m4_equals_tinyq_in_less_ram_than_tflm(kernels, shared, run_tinyq):
    model = shared / "models" / "kws_dscnn" / "model_int8_tfliteconv.tflite"
    r = _verify(run_tinyq, model, shared / "data" / "kws01.npz", kernels, shared)
    assert r["kernels"] == kernels
    assert r["outputs"]["samples"] == 50 and r["outputs"]["elements"] == 600
    assert r["outputs"]["mismatches"] == 0, r["outputs"]
    assert r["main_c_ran"], "the exported main.c did not run on the target"
    # TFLM in the same harness with the same kinds of kernels, one sample.
    tree = shared / "vendor" / ("tflm-cmsis-nn" if kernels == "cmsis-nn" else "tflm-ref")
    tflm_kernels = "cmsis-nn" if kernels == "cmsis-nn" else "reference"
    proc = run_tinyq("verify", model, "--kernels", tflm_kernels, "--tflm", tree, "--data",
                     shared / "data" / "kws01.npz", "--limit", "1", "--json", timeout=1800)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    t = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["ram_bytes"] <= 0.6 * t["ram_bytes"], (r["ram_bytes"], t["ram_bytes"])
    assert r["flash_bytes"] < t["flash_bytes"], (r["flash_bytes"], t["flash_bytes"])


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("seed", range(SEED, SEED + RANDOM))
def test_random_graph_on_the_m4_equals_tinyq(seed, kernels, shared, run_tinyq, tmp_path):
    flags = _int8_flags(random_graphs.make(seed, tmp_path))
    model = tmp_path / "q.tflite"
    proc = run_tinyq("quantize", tmp_path / f"g{seed}.onnx", "--calib", tmp_path / f"g{seed}.npz", "-o", model, *flags)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    x = np.load(tmp_path / f"g{seed}.npz")["x"]
    np.savez(tmp_path / "x.npz", x=x)
    r = _verify(run_tinyq, model, tmp_path / "x.npz", kernels, shared, limit=len(x))
    assert r["outputs"]["samples"] == len(x)
    assert r["outputs"]["mismatches"] == 0, (seed, flags, r["outputs"])


def test_sketch_compiles_for_the_m4(shared, run_tinyq, tmp_path):
    """The exported sketch (C++) and the model's C build for a Cortex-M4 against stand-ins for
    the Arduino core, with no TFLM library."""
    import subprocess

    model = shared / "models" / "kws_dscnn" / "model_int8_tfliteconv.tflite"
    out = tmp_path / "kws"
    proc = run_tinyq("export", model, "--c", out, "--no-interpreter", "--name", "kws")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    cpu = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-DARDUINO=10819", f"-I{out}"]
    standin = Path(__file__).parent / "arduino_standin"
    jobs = [["arm-none-eabi-g++", *cpu, "-std=gnu++17", "-Wall", "-Wextra", "-Werror", f"-I{standin}", "-x", "c++",
             str(out / "kws.ino")]]
    jobs += [["arm-none-eabi-gcc", *cpu, "-std=c99", "-Wall", "-Wextra", "-Werror", str(c)] for c in sorted(out.glob("*.c"))]
    for i, cmd in enumerate(jobs):
        cc = subprocess.run([*cmd, "-c", "-o", str(tmp_path / f"{i}.o")], capture_output=True, text=True)
        assert cc.returncode == 0, f"{cmd[-1]}:\n{cc.stderr[-3000:]}"
    assert "kBufferSize = KWS_ARENA_SIZE" in (out / "kws.ino").read_text()
