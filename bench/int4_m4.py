"""int4 files on the Cortex-M4 under QEMU, outputs and arena, with both TFLM kernel sets.

Builds `--per-kind` random single-operator models of each kind whose weights may be int4 (conv,
depthwise conv, fully connected; the generators of tests/oracle/tflm_lib.py) and, with `--shared`,
every shared model, quantizes each with `tinyq quantize --weights int4`, and runs
`tinyq verify MODEL --data CALIB --limit N --tflm TREE --kernels K --json` for the reference and
the CMSIS-NN tree: every output compared with tinyq bit for bit, the arena bisected on the target
against the prediction. Prints one JSON object: per kernel set the models run, output mismatches,
arenas exact / over / under, and the failures.

Usage: TINYQ_BIN=target/release/tinyq .venv/bin/python bench/int4_m4.py --tflm-ref DIR
       --tflm-cmsis-nn DIR [--per-kind 10] [--seed 8000] [--limit 3] [--shared DIR] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INT4_KINDS = ("conv", "depthwise_conv", "fully_connected")
SHARED = {  # model folder -> calibration / evaluation array in shared/data
    "hello_world": "sine.npz",
    "mnist_cnn_torch": "mnist.npz",
    "mnist_dscnn_torch": "mnist.npz",
    "kws_dscnn": "kws01.npz",
    "ic_resnet8": "ic01.npz",
}


def tinyq(binary, *args):
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True)


def models(binary, out, per_kind, seed, shared):
    os.environ["TINYQ_TFLM_SEED"] = str(seed)
    sys.path.insert(0, str(ROOT / "tests/oracle"))
    import tflm_lib  # noqa: E402  (needs numpy and onnx: run with the oracle venv)

    found = []
    for kind in INT4_KINDS:
        for i in range(per_kind):
            case = tflm_lib.build_case(kind, i, out / "single")
            q = case.dir / "m_int4.tflite"
            calib = case.dir / "calib.npz"
            p = tinyq(binary, "quantize", case.dir / "model.onnx", "--calib", calib, "-o", q,
                      *case.quantize_args, "--weights", "int4")
            x = ["--x", ",".join(f"{n}_calib" for n in case.input_names)]
            found.append({"name": f"{kind}-{i}", "model": q, "data": calib, "x": x, "error": p.stderr.strip()[-300:]}
                         if p.returncode else {"name": f"{kind}-{i}", "model": q, "data": calib, "x": x})
    for name, data in SHARED.items() if shared else ():
        q = out / f"{name}_int4.tflite"
        data = shared / "data" / data
        p = tinyq(binary, "quantize", shared / "models" / name / "model.onnx", "--calib", data, "-o", q,
                  "--weights", "int4")
        found.append({"name": name, "model": q, "data": data, "error": p.stderr.strip()[-300:]}
                     if p.returncode else {"name": name, "model": q, "data": data})
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tflm-ref", required=True)
    ap.add_argument("--tflm-cmsis-nn", required=True)
    ap.add_argument("--per-kind", type=int, default=10)
    ap.add_argument("--seed", type=int, default=8000)
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--shared")
    ap.add_argument("--out")
    a = ap.parse_args()
    binary = os.environ.get("TINYQ_BIN", str(ROOT / "target/release/tinyq"))
    out = Path(a.out or tempfile.mkdtemp(prefix="int4-m4-"))
    out.mkdir(parents=True, exist_ok=True)
    cases = models(binary, out, a.per_kind, a.seed, Path(a.shared) if a.shared else None)
    result = {"seed": a.seed, "per_kind": a.per_kind, "limit": a.limit,
              "not_quantized": [c for c in cases if "error" in c]}
    for kernels, tree in (("reference", a.tflm_ref), ("cmsis-nn", a.tflm_cmsis_nn)):
        row = {"models": 0, "samples": 0, "mismatches": 0, "arena_exact": 0, "arena_over": 0,
               "arena_under": 0, "failures": []}
        for c in cases:
            if "error" in c:
                continue
            p = tinyq(binary, "verify", c["model"], "--data", c["data"], *c.get("x", []), "--limit", a.limit, "--tflm", tree,
                      "--kernels", kernels, "--json")
            try:
                r = json.loads(p.stdout)
            except json.JSONDecodeError:
                row["failures"].append({"model": c["name"], "error": p.stderr.strip()[-300:]})
                continue
            row["models"] += 1
            row["samples"] += r["outputs"]["samples"]
            row["mismatches"] += r["outputs"]["mismatches"]
            d = r["arena_predicted"] - r["arena_minimum"]
            row["arena_exact" if d == 0 else "arena_over" if d > 0 else "arena_under"] += 1
            if r["outputs"]["mismatches"] or d:
                row["failures"].append({"model": c["name"], "mismatches": r["outputs"]["mismatches"],
                                        "arena_predicted": r["arena_predicted"], "arena_minimum": r["arena_minimum"]})
        result[kernels] = row
    print(json.dumps(result, default=str, indent=1))


if __name__ == "__main__":
    main()
