"""Helpers for the interpreter-free C tests and bench: export a model with `--no-interpreter`,
build it with a C compiler and a small harness that runs every sample of a raw int8 file, and
compare the outputs with `tinyq run` on the same int8 inputs.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

import oracle_lib

CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2"]

HARNESS = r"""
#include <stdio.h>
#include "{name}.h"

int main(int argc, char **argv) {{
  static int8_t x[{up}_INPUT_SIZE];
  static int8_t y[{up}_OUTPUT_SIZE];
  FILE *in, *out;
  if (argc != 3) return 2;
  in = fopen(argv[1], "rb");
  out = fopen(argv[2], "wb");
  if (!in || !out) return 3;
  while (fread(x, 1, sizeof x, in) == sizeof x) {{
    {name}_invoke(x, y);
    fwrite(y, 1, sizeof y, out);
  }}
  fclose(in);
  return fclose(out) ? 4 : 0;
}}
"""


def quantize_like_tflite(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    v = x.astype(np.float32) / np.float32(scale)
    return np.clip(np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + zero_point, -128, 127).astype(np.int8)


def input_qparams(model: Path) -> tuple[float, int, list[int], str]:
    """Scale, zero point, shape and dtype of the model's first input (from TFLM's interpreter)."""
    from tflite_micro.python.tflite_micro import runtime

    d = runtime.Interpreter.from_bytes(model.read_bytes(), arena_size=8 << 20).get_input_details(0)
    q = d["quantization_parameters"]
    scale = float(q["scales"][0]) if len(q["scales"]) else 1.0
    zp = int(q["zero_points"][0]) if len(q["zero_points"]) else 0
    return scale, zp, [int(v) for v in d["shape"]], np.dtype(d["dtype"]).name


def export(binary: Path, model: Path, out: Path, name: str = "net") -> subprocess.CompletedProcess:
    return oracle_lib.run_tinyq(binary, "export", model, "--c", out, "--no-interpreter", "--name", name)


def build_host(src: Path, name: str = "net", cc: str = "gcc") -> Path:
    """Compiles the exported folder with the harness; fails with the compiler's messages on any
    warning."""
    (src / "harness_main.c").write_text(HARNESS.format(name=name, up=name.upper()))
    exe = src / "net.bin"
    sources = sorted(str(p) for p in src.glob("*.c") if p.name != "main.c")
    proc = subprocess.run([cc, *CFLAGS, "-o", str(exe), *sources], capture_output=True, text=True)
    assert proc.returncode == 0, f"{cc} {' '.join(CFLAGS)} failed:\n{proc.stderr[-3000:]}"
    return exe


def compare(binary: Path, model: Path, x_q: np.ndarray, work: Path, name: str = "net") -> tuple[int, int]:
    """Exports, builds and runs `model` on the int8 samples `x_q` ([n, ...]); returns
    (mismatching elements, total elements) against `tinyq run`."""
    proc = export(binary, model, work / "c", name)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    exe = build_host(work / "c", name)
    x_q = np.ascontiguousarray(x_q.astype(np.int8))
    (work / "x.bin").write_bytes(x_q.tobytes())
    subprocess.run([str(exe), str(work / "x.bin"), str(work / "y.bin")], check=True, timeout=600)
    ours = np.frombuffer((work / "y.bin").read_bytes(), dtype=np.int8).reshape(len(x_q), -1)
    np.savez(work / "xq.npz", x=x_q)
    proc = oracle_lib.run_tinyq(binary, "run", model, "--data", work / "xq.npz", "-o", work / "ref.npz")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    ref = np.load(work / "ref.npz")
    ref = ref[ref.files[0]].reshape(len(x_q), -1)
    assert ref.dtype == np.int8, ref.dtype
    return int((ours != ref).sum()), int(ref.size)


def output_shape(src: Path) -> list[int]:
    """The output shape the exported header's accessor returns, read from the generated source."""
    import re

    text = next(src.glob("*.c"), None)
    for f in src.glob("*.c"):
        m = re.search(r"_output_dims\[\d+\] = \{([^}]*)\}", f.read_text())
        if m:
            return [int(v) for v in m.group(1).split(",")]
    raise AssertionError(f"no output shape in {src} ({text})")
