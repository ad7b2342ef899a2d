"""Interpreter-free C with CMSIS-NN kernels runs 1x1 convolutions on tinyq's pointwise kernel
(`tq_pointwise.c`: int16 weights in its own layout, the input offset's share folded into the
bias at export) and still equals `tinyq run` bit for bit.

The random models stress what the kernel and its layout depend on: input channels that are and
are not multiples of 4 (the 4-column steps and the tail), odd and even output channel counts (the
last block of one row), odd and even pixel counts (the last pixel alone), stride 1 (one run of
pixels, called whole or in bands when the output overlaps the input) and stride 2 (row by row),
a 1x1 convolution fused with the pool that alone reads it, residual blocks of two 1x1
convolutions, depthwise layers between them (the keyword-spotting shape), ReLU or not, a dense
head or not, and input/weight ranges with large zero points.

Host gcc builds the export with the vendored CMSIS-NN compiled for the host, which has no DSP
extension: the kernel's plain C lanes (TINYQ_CGEN_PW, default 40 models). The emulated Cortex-M4
runs the DSP path (SXTB16/SMLAD) through `tinyq verify --no-interpreter --kernels cmsis-nn`
(TINYQ_CGEN_PW_M4, default 10 models). Both skip with the reason where ../shared (CMSIS-NN), gcc,
the cross compiler or QEMU is missing.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper

import cgen_lib
import oracle_lib

HOST = int(os.environ.get("TINYQ_CGEN_PW", "40"))
M4 = int(os.environ.get("TINYQ_CGEN_PW_M4", "10"))
SEED = int(os.environ.get("TINYQ_CGEN_PW_SEED", "17001"))


def _cmsis_nn() -> Path:
    return oracle_lib.shared_dir() / "vendor" / "tflm-cmsis-nn" / "third_party" / "cmsis_nn"


def make_model(seed: int, folder: Path) -> Path:
    """A random float model rich in 1x1 convolutions; writes `m.onnx` and `calib.npz`."""
    r = random.Random(seed)
    rng = np.random.default_rng(seed)
    c = r.choice([1, 2, 3, 4, 5, 7, 8, 12, 16, 20, 33])
    h, w = r.randint(1, 16), r.randint(1, 12)
    shape = [1, c, h, w]
    nodes, inits = [], []
    x = "x"

    def const(name, arr):
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    def conv(name, x, cin, cout, k=1, s=1, p=0, group=1):
        wt = const(f"{name}w", rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(k * k * cin / group))
        # Biases far from zero sometimes, so the folded bias is far from the plain one.
        bias = const(f"{name}b", rng.standard_normal(cout) * r.choice([0.1, 2.0]))
        nodes.append(helper.make_node("Conv", [x, wt, bias], [name], kernel_shape=[k, k], strides=[s, s],
                                      pads=[p] * 4, group=group))
        return name

    for b in range(r.randint(1, 5)):
        kind = r.choice(["pw", "pw", "pw", "pw2", "dw", "pool", "res"])
        if kind in ("pw", "pw2"):
            s = 2 if kind == "pw2" else 1
            cout = r.choice([1, 2, 3, 5, 8, 9, 16, 24, 33, 64])
            x, c = conv(f"l{b}", x, c, cout, s=s), cout
            h, w = (h - 1) // s + 1, (w - 1) // s + 1
        elif kind == "dw":
            x = conv(f"l{b}", x, c, c, k=3, p=1, group=c)
        elif kind == "pool" and h >= 2 and w >= 2:
            op = r.choice(["MaxPool", "AveragePool"])
            nodes.append(helper.make_node(op, [x], [f"l{b}"], kernel_shape=[2, 2], strides=[2, 2]))
            x, h, w = f"l{b}", h // 2, w // 2
        elif kind == "res":
            mid = r.choice([c, 2 * c, 5])
            y = conv(f"l{b}a", x, c, mid)
            if r.random() < 0.6:
                nodes.append(helper.make_node("Relu", [y], [f"l{b}ar"]))
                y = f"l{b}ar"
            y = conv(f"l{b}b", y, mid, c)
            nodes.append(helper.make_node("Add", [x, y] if r.random() < 0.5 else [y, x], [f"l{b}"]))
            x = f"l{b}"
        if r.random() < 0.6:
            nodes.append(helper.make_node("Relu", [x], [f"l{b}r"]))
            x = f"l{b}r"
    if r.random() < 0.5 or x == "x":
        x = cgen_lib.dense_head(nodes, const, x, c * h * w, r, rng)
    # Inputs offset from zero sometimes, so the input zero point (the folded offset) is large.
    calib = rng.standard_normal((8, *shape[1:])) + r.choice([0.0, 0.0, 3.0, -2.0])
    return cgen_lib.save_float_model(nodes, inits, x, shape, folder, f"pw{seed}", calib)


def _quantize(tinyq_bin, seed, folder: Path) -> Path:
    return cgen_lib.quantize_minmax(tinyq_bin, make_model(seed, folder))


def _export(tinyq_bin, model: Path, out: Path) -> str:
    proc = cgen_lib.export(tinyq_bin, model, out, kernels="cmsis-nn")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return (out / "net.c").read_text()


@pytest.fixture(scope="module")
def host_cmsis_nn(tmp_path_factory) -> tuple[Path, Path]:
    """The vendored CMSIS-NN compiled with the host gcc (no DSP extension): (archive, include)."""
    if shutil.which("gcc") is None or shutil.which("ar") is None:
        pytest.skip("gcc or ar not installed (Debian packages gcc, binutils)")
    root = _cmsis_nn()
    if not root.is_dir():
        pytest.skip(f"../shared (CMSIS-NN) not present (looked at {root})")
    out = tmp_path_factory.mktemp("cmsis-nn-host")
    objects = []
    for i, src in enumerate(sorted((root / "Source").rglob("*.c"))):
        obj = out / f"{i:03d}_{src.stem}.o"
        subprocess.run(["gcc", "-std=c99", "-O2", "-w", "-I", str(root / "Include"), "-c", str(src), "-o", str(obj)],
                       check=True, capture_output=True)
        objects.append(str(obj))
    archive = out / "libcmsis-nn.a"
    subprocess.run(["ar", "rcs", str(archive), *objects], check=True)
    return archive, root / "Include"


@pytest.mark.parametrize("seed", range(SEED, SEED + HOST))
def test_pointwise_model_host_cmsis_nn_equals_tinyq(seed, tinyq_bin, host_cmsis_nn, tmp_path):
    archive, include = host_cmsis_nn
    model = _quantize(tinyq_bin, seed, tmp_path)
    _, _, shape, _ = cgen_lib.input_qparams(model)
    x_q = np.random.default_rng(seed).integers(-128, 128, size=(6, *shape[1:])).astype(np.int8)
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path, kernels="cmsis-nn", extra=("-I", include, archive))
    assert bad == 0, f"model {seed}: {bad} of {total} output elements differ"


def test_random_models_reach_every_pointwise_path(tinyq_bin, tmp_path):
    """The first 40 seeds (the host test's default) reach the kernel called whole, in bands (the
    output overlapping its input), fused with a pool, inside a residual block, and with a stride."""
    whole = banded = fused = residual = strided = 0
    for seed in range(SEED, SEED + 40):
        folder = tmp_path / str(seed)
        folder.mkdir()
        text = _export(tinyq_bin, _quantize(tinyq_bin, seed, folder), folder / "c")
        whole += "tq_pointwise_s8(&ctx" in text
        banded += "tq_pointwise_rows(&ctx" in text
        fused += "tq_pointwise_rows(&cc" in text
        residual += "tq_pointwise_rows_from(" in text
        stride2 = re.findall(r"(\w+_cp) = \{-?\d+, -?\d+, \{2, 2\}", text)
        strided += any(re.search(rf"tq_pointwise_(s8|rows)[^;]*&{cp},", text) for cp in stride2)
    assert whole >= 5 and banded >= 3 and fused >= 1 and residual >= 1 and strided >= 2, (
        whole, banded, fused, residual, strided)


@pytest.mark.parametrize("seed", range(SEED + 500, SEED + 500 + M4))
def test_pointwise_model_on_the_m4_equals_tinyq(seed, run_tinyq, tmp_path):
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian gcc-arm-none-eabi, qemu-system-arm)")
    shared = oracle_lib.shared_dir()
    if not shared.is_dir():
        pytest.skip(f"../shared (CMSIS-NN) not present (looked at {shared})")
    model = _quantize(oracle_lib.tinyq_bin(), seed, tmp_path)
    x = np.load(tmp_path / "calib.npz")["x"]
    proc = run_tinyq("verify", model, "--no-interpreter", "--kernels", "cmsis-nn", "--data", tmp_path / "calib.npz",
                     "--limit", str(len(x)), "--json", "--tflm", shared / "vendor" / "tflm-cmsis-nn", timeout=1800)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["outputs"]["samples"] == len(x)
    assert r["outputs"]["mismatches"] == 0, (seed, r["outputs"])
