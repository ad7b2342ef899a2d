"""Every shared model's INT8 files on the emulated Cortex-M4, with both kernel sets.

Quantizes the shared ONNX models with tinyq (INT8, and every int16-capable layer in int16 for
two of them), adds the converter's / MLPerf's / TFLM's INT8 files from the shared folder, and
runs `tinyq verify` on each with TFLM's reference and CMSIS-NN trees: outputs against tinyq on
50 samples, the arena tinyq predicts against the smallest one TFLM accepts on the target, flash,
RAM and instructions per inference. Prints one JSON object per run, then a Markdown table.

Usage: python bench/verify_shared.py [--shared ../shared] [--out DIR] [--samples 50]
(TINYQ_BIN selects the binary; default target/release/tinyq.)
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DATA = {"hello_world": "sine.npz", "mnist_cnn_torch": "mnist.npz", "mnist_dscnn_torch": "mnist.npz",
        "kws_dscnn": "kws01.npz", "ic_resnet8": "ic01.npz"}
INT16_ALL = ("kws_dscnn", "ic_resnet8")


def shared_cases(binary, shared, out, models, int16_models=()):
    """(label, model file, data) for every shared model: tinyq's quantization of model.onnx (also
    with `--int16 all` for `int16_models`), then the INT8 files in the shared folder."""
    cases = []
    for name in models:
        data = shared / "data" / DATA[name]
        onnx = shared / "models" / name / "model.onnx"
        for int16 in (False, True) if name in int16_models else (False,):
            q = out / f"{name}_tinyq{'_int16' if int16 else ''}.tflite"
            if not q.exists():
                cmd = [binary, "quantize", str(onnx), "--calib", str(data), "-o", str(q)]
                subprocess.run(cmd + (["--int16", "all"] if int16 else []), check=True, capture_output=True)
            cases.append((f"{name}/tinyq{' int16' if int16 else ''}", q, data))
        for f in sorted((shared / "models" / name).glob("model_int8_*.tflite")):
            cases.append((f"{name}/{f.stem[len('model_int8_'):]}", f, data))
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1] / ".." / "shared"))
    ap.add_argument("--out", default="verify-shared")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--models", default=",".join(DATA))
    a = ap.parse_args()
    shared, out = Path(a.shared), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = os.environ.get("TINYQ_BIN", "target/release/tinyq")
    cases = shared_cases(binary, shared, out, a.models.split(","), INT16_ALL)
    rows = []
    for label, model, data in cases:
        for kernels, tree in (("reference", "tflm-ref"), ("cmsis-nn", "tflm-cmsis-nn")):
            cmd = [binary, "verify", str(model), "--data", str(data), "--limit", str(a.samples),
                   "--tflm", str(shared / "vendor" / tree), "--kernels", kernels, "--json"]
            p = subprocess.run(cmd, capture_output=True, text=True)
            try:
                r = json.loads(p.stdout.strip().splitlines()[-1])
            except (IndexError, json.JSONDecodeError):
                r = {"error": p.stderr.strip()[-400:]}
            r["case"], r["exit"] = label, p.returncode
            print(json.dumps(r), flush=True)
            rows.append(r)
    print("\n| model | kernels | arena predicted | arena needed (M4) | outputs (mismatches / elements, max LSB) "
          "| flash | RAM | instructions / inference | build s | run s |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        if "error" in r:
            print(f"| {r['case']} | | error: {r['error'][:80]} |")
            continue
        o = r.get("outputs") or {}
        print(f"| {r['case']} | {r['kernels']} | {r['arena_predicted']} | {r['arena_minimum']} | "
              f"{o.get('mismatches')} / {o.get('elements')}, {o.get('max_lsb')} | {r['flash_bytes']} | {r['ram_bytes']} | "
              f"{round(r['instructions_per_inference'] or 0)} | {r['build_seconds']:.1f} | {r['run_seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
