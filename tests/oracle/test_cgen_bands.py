"""Interpreter-free C that computes in bands of rows equals `tinyq run` bit for bit.

The C generator fuses a CONV_2D with the pool that alone reads it (the convolution's rows go
through a small ring of rows, the pool reads each band), so band boundaries, the padding each
banded call still needs, rows the pool never reads and the ring's place in the arena all matter.
A convolution, depthwise convolution or pool on one image may also write its output overlapping
its input, top-down with the output starting below the input or bottom-up with it starting above,
when the planner finds that smaller. These random models cover both: a third of the seeds have one or two
convolution → pool blocks with random sizes, kernels, strides, padding and dilation, max or
average pools whose windows tile the height (fusable) or overlap (not fusable), a ReLU or not;
others have chains of two to five convolutions, depthwise convolutions (depth multiplier 1 or 2)
and pools, or residual blocks `x ± conv(conv(x))` (random kernels, dilation, a ReLU between or
not, the operands in either order), which the generator runs as one banded step (a's rows in a
sliding window, b's band added to x's rows and written over them) where that lowers the arena;
then a dense head, or the last layer as the model's output.

Host gcc with the portable kernels (TINYQ_CGEN_BANDS, default 40 models), and on the emulated
Cortex-M4 with CMSIS-NN and portable kernels (TINYQ_CGEN_BANDS_M4, default 6 per kernel set;
skipped with the reason where QEMU, the cross compiler or ../shared is missing).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper

import cgen_lib
import oracle_lib

HOST = int(os.environ.get("TINYQ_CGEN_BANDS", "40"))
M4 = int(os.environ.get("TINYQ_CGEN_BANDS_M4", "6"))
SEED = int(os.environ.get("TINYQ_CGEN_SEED", "20261207"))


def _out(h, k, s, p, d=1):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


def make_model(seed: int, folder: Path) -> Path:
    """A random float model of convolution → pool blocks; writes `m.onnx` and `calib.npz`."""
    r = random.Random(seed)
    rng = np.random.default_rng(seed)
    c = r.choice([1, 2, 3, 4])
    h, w = r.randint(5, 20), r.randint(4, 20)
    shape = [1, c, h, w]
    nodes, inits = [], []
    x = "x"

    def const(name, arr):
        inits.append(numpy_helper.from_array(arr.astype(np.float32), name))
        return name

    family = seed % 3
    blocks = r.choice([1, 1, 2]) if family == 0 else 0
    for b in range(blocks):
        k = r.choice([1, 2, 3, 5])
        s = r.choice([1, 1, 2])
        d = r.choice([1, 1, 2]) if k > 1 else 1
        p = r.choice([0, (d * (k - 1)) // 2])
        oh, ow = _out(h, k, s, p, d), _out(w, k, s, p, d)
        if oh < 2 or ow < 1:
            break
        cout = r.choice([2, 4, 8, 12, 16])
        wt = const(f"w{b}", rng.standard_normal((cout, c, k, k)) / np.sqrt(k * k * c))
        bias = const(f"b{b}", rng.standard_normal(cout) * 0.1)
        nodes.append(helper.make_node("Conv", [x, wt, bias], [f"conv{b}"], kernel_shape=[k, k], strides=[s, s],
                                      pads=[p] * 4, dilations=[d, d]))
        x, h, w, c = f"conv{b}", oh, ow, cout
        if r.random() < 0.6:
            nodes.append(helper.make_node("Relu", [x], [f"relu{b}"]))
            x = f"relu{b}"
        # Windows that tile the height (fusable), or overlap it (not fusable).
        kh, sh = r.choice([(2, 2), (2, 2), (1, 2), (3, 3), (2, 3), (3, 2)])
        kw, sw = r.choice([(2, 2), (1, 1), (3, 2), (2, 3)])
        if kh > h or kw > w:
            break
        op = r.choice(["MaxPool", "AveragePool"])
        nodes.append(helper.make_node(op, [x], [f"pool{b}"], kernel_shape=[kh, kw], strides=[sh, sw]))
        x = f"pool{b}"
        h, w = _out(h, kh, sh, 0), _out(w, kw, sw, 0)
    # Odd seeds: a chain of row-wise layers each reading only the one before (their outputs may
    # overlap their inputs, top-down or bottom-up).
    for b in range(r.randint(2, 5) if family == 1 else 0):
        kind = r.choice(["conv", "conv", "dw", "dw", "pool"])
        k = r.choice([1, 3, 3, 5]) if kind != "pool" else r.choice([2, 3])
        s = r.choice([1, 1, 2])
        d = r.choice([1, 1, 2]) if k > 1 and kind != "pool" else 1
        p = r.choice([0, (d * (k - 1)) // 2, d * (k - 1)]) if kind != "pool" else 0
        oh, ow = _out(h, k, s, p, d), _out(w, k, s, p, d)
        if oh < 1 or ow < 1:
            break
        if kind == "pool":
            op = r.choice(["MaxPool", "AveragePool"])
            nodes.append(helper.make_node(op, [x], [f"l{b}"], kernel_shape=[k, k], strides=[s, s]))
        else:
            group = c if kind == "dw" else 1
            cout = c * r.choice([1, 1, 2]) if kind == "dw" else r.choice([2, 4, 8, 16])
            wt = const(f"w{b}", rng.standard_normal((cout, c // group, k, k)) / np.sqrt(k * k * c / group))
            bias = const(f"b{b}", rng.standard_normal(cout) * 0.1)
            nodes.append(helper.make_node("Conv", [x, wt, bias], [f"l{b}"], kernel_shape=[k, k], strides=[s, s],
                                          pads=[p] * 4, dilations=[d, d], group=group))
            c = cout
        x, h, w = f"l{b}", oh, ow
    if family == 2:
        # A stem convolution, then residual blocks x + conv(conv(x)) keeping the shape.
        cout = r.choice([4, 8, 16])
        nodes.append(helper.make_node("Conv", [x, const("ws", rng.standard_normal((cout, c, 3, 3)) / np.sqrt(9 * c)),
                                              const("bs", rng.standard_normal(cout) * 0.1)], ["stem"],
                                      kernel_shape=[3, 3], pads=[1] * 4))
        x, c = "stem", cout
        for b in range(r.randint(1, 2)):
            y = x
            for half in range(2):
                k = r.choice([1, 3, 3, 5])
                d = r.choice([1, 1, 2]) if k > 1 else 1
                p = d * (k - 1) // 2
                wt = const(f"w{b}{half}", rng.standard_normal((c, c, k, k)) / np.sqrt(k * k * c))
                nodes.append(helper.make_node("Conv", [y, wt, const(f"b{b}{half}", rng.standard_normal(c) * 0.1)],
                                              [f"r{b}{half}"], kernel_shape=[k, k], pads=[p] * 4, dilations=[d, d]))
                y = f"r{b}{half}"
                if half == 0 and r.random() < 0.7:
                    nodes.append(helper.make_node("Relu", [y], [f"r{b}relu"]))
                    y = f"r{b}relu"
            pair = [x, y] if r.random() < 0.5 else [y, x]
            nodes.append(helper.make_node(r.choice(["Add", "Add", "Sub"]), pair, [f"res{b}"]))
            x = f"res{b}"
            if r.random() < 0.5:
                nodes.append(helper.make_node("Relu", [x], [f"res{b}relu"]))
                x = f"res{b}relu"
    if r.random() < 0.6 or x == "x":
        x = cgen_lib.dense_head(nodes, const, x, c * h * w, r, rng)
    calib = rng.standard_normal((8, *shape[1:]))
    return cgen_lib.save_float_model(nodes, inits, x, shape, folder, f"bands{seed}", calib)


def _quantize(tinyq_bin, seed, folder: Path) -> Path:
    return cgen_lib.quantize_minmax(tinyq_bin, make_model(seed, folder))


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed (Debian package gcc)")
@pytest.mark.parametrize("seed", range(SEED, SEED + HOST))
def test_banded_model_host_c_equals_tinyq(seed, tinyq_bin, tmp_path):
    model = _quantize(tinyq_bin, seed, tmp_path)
    _, _, shape, _ = cgen_lib.input_qparams(model)
    x_q = np.random.default_rng(seed).integers(-128, 128, size=(6, *shape[1:])).astype(np.int8)
    bad, total = cgen_lib.compare(tinyq_bin, model, x_q, tmp_path)
    assert bad == 0, f"model {seed}: {bad} of {total} output elements differ"


def test_random_models_reach_every_banded_path(tinyq_bin, tmp_path):
    """The generator reaches the fused paths and both overlap directions (portable kernels: a fused
    pool calls tq_pool_rows_s8, a fused residual block tq_conv_rows_from_s8, a bottom-up overlap
    loops `r >= 0`)."""
    fused = reverse = residual = 0
    for seed in range(SEED, SEED + 18):
        folder = tmp_path / str(seed)
        folder.mkdir()
        model = _quantize(tinyq_bin, seed, folder)
        proc = cgen_lib.export(tinyq_bin, model, folder / "c")
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
        text = (folder / "c" / "net.c").read_text()
        fused += "tq_pool_rows_s8(" in text
        reverse += "r >= 0" in text
        residual += "tq_conv_rows_from_s8(" in text
    assert fused >= 3 and reverse >= 2 and residual >= 2, (fused, reverse, residual)


@pytest.mark.parametrize("kernels", ("portable", "cmsis-nn"))
@pytest.mark.parametrize("seed", range(SEED + 1000, SEED + 1000 + M4))
def test_banded_model_on_the_m4_equals_tinyq(seed, kernels, run_tinyq, tmp_path):
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian gcc-arm-none-eabi, qemu-system-arm)")
    shared = oracle_lib.shared_dir()
    if kernels == "cmsis-nn" and not shared.is_dir():
        pytest.skip(f"../shared (CMSIS-NN) not present (looked at {shared})")
    model = _quantize(oracle_lib.tinyq_bin(), seed, tmp_path)
    x = np.load(tmp_path / "calib.npz")["x"]
    args = ["verify", model, "--no-interpreter", "--kernels", kernels, "--data", tmp_path / "calib.npz",
            "--limit", str(len(x)), "--json"]
    if kernels == "cmsis-nn":
        args += ["--tflm", shared / "vendor" / "tflm-cmsis-nn"]
    proc = run_tinyq(*args, timeout=1800)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["outputs"]["samples"] == len(x)
    assert r["outputs"]["mismatches"] == 0, (seed, r["outputs"])
