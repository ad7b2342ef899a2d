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


def export(binary: Path, model: Path, out: Path, name: str = "net",
           kernels: str | None = None) -> subprocess.CompletedProcess:
    extra = ["--kernels", kernels] if kernels else []
    return oracle_lib.run_tinyq(binary, "export", model, "--c", out, "--no-interpreter", "--name", name, *extra)


def build_host(src: Path, name: str = "net", cc: str = "gcc", extra: tuple = ()) -> Path:
    """Compiles the exported folder with the harness (and `extra` arguments after the sources:
    include paths, libraries); fails with the compiler's messages on any warning."""
    (src / "harness_main.c").write_text(HARNESS.format(name=name, up=name.upper()))
    exe = src / "net.bin"
    sources = sorted(str(p) for p in src.glob("*.c") if p.name != "main.c")
    proc = subprocess.run([cc, *CFLAGS, "-o", str(exe), *sources, *map(str, extra)], capture_output=True, text=True)
    assert proc.returncode == 0, f"{cc} {' '.join(CFLAGS)} failed:\n{proc.stderr[-3000:]}"
    return exe


def compare(binary: Path, model: Path, x_q: np.ndarray, work: Path, name: str = "net", kernels: str | None = None,
            extra: tuple = ()) -> tuple[int, int]:
    """Exports (with `kernels`, default portable), builds (with `extra`, see build_host) and runs
    `model` on the int8 samples `x_q` ([n, ...]); returns (mismatching elements, total elements)
    against `tinyq run`."""
    proc = export(binary, model, work / "c", name, kernels)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    exe = build_host(work / "c", name, extra=extra)
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


def dense_head(nodes: list, const, x: str, features: int, r, rng) -> str:
    """Appends Flatten and a dense layer of 3 or 10 units over `features` inputs to the float
    graph `nodes` (`const(name, array)` adds an initializer); returns the output's name."""
    from onnx import helper

    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    units = r.choice([3, 10])
    wm = const("wd", rng.standard_normal((features, units)) / np.sqrt(features))
    nodes.append(helper.make_node("Gemm", ["flat", wm, const("bd", rng.standard_normal(units) * 0.1)], ["y"]))
    return "y"


def save_float_model(nodes: list, inits: list, output: str, shape: list[int], folder: Path, name: str,
                     calib: np.ndarray) -> Path:
    """Writes the float graph (input `x` of `shape`) as folder/m.onnx and `calib` as
    folder/calib.npz; returns the ONNX path."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), folder / "m.onnx")
    np.savez(folder / "calib.npz", x=calib.astype(np.float32))
    return folder / "m.onnx"


def quantize_minmax(binary: Path, onnx_path: Path) -> Path:
    """`tinyq quantize` with min/max calibration on the calib.npz beside the model: q.tflite."""
    folder = onnx_path.parent
    model = folder / "q.tflite"
    proc = oracle_lib.run_tinyq(binary, "quantize", onnx_path, "--calib", folder / "calib.npz", "-o", model,
                                "--calibration", "minmax")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return model
