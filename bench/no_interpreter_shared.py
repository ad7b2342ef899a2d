"""Interpreter-free C against TFLM on the emulated Cortex-M4, per shared model.

For every shared model's INT8 files (tinyq's quantization of model.onnx, and the converter's /
MLPerf's / TFLM's files in the shared folder) runs

  tinyq verify MODEL --no-interpreter --data D --limit 50 --json          (tinyq's C)
  tinyq verify MODEL --kernels K --tflm TREE --data D --limit N --json     (TFLM, same harness)

and prints one JSON object per run, then a Markdown table: outputs against tinyq run, RAM
(static + painted stack; TFLM: statics + arena + stack), flash (whole program), instructions per
inference, and the ratios no-interpreter / TFLM.

Usage: python bench/no_interpreter_shared.py [--shared ../shared] [--out DIR] [--samples 50]
       [--tflm-samples 5] [--kernels reference] [--models a,b]
(TINYQ_BIN selects the binary; default target/release/tinyq.)
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from verify_shared import DATA, shared_cases  # noqa: E402  (the shared models, files and data)

TREES = {"reference": "tflm-ref", "cmsis-nn": "tflm-cmsis-nn"}


def verify(binary, model, data, limit, extra):
    cmd = [binary, "verify", str(model), "--data", str(data), "--limit", str(limit), "--json", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": p.stderr.strip()[-400:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[1] / ".." / "shared"))
    ap.add_argument("--out", default="no-interpreter-shared")
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--tflm-samples", type=int, default=5)
    ap.add_argument("--kernels", default="reference")
    ap.add_argument("--models", default=",".join(DATA))
    a = ap.parse_args()
    shared, out = Path(a.shared), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    binary = os.environ.get("TINYQ_BIN", "target/release/tinyq")
    cases = shared_cases(binary, shared, out, a.models.split(","))
    rows = []
    tree = shared / "vendor" / TREES[a.kernels]
    for label, model, data in cases:
        ours = ["--no-interpreter", "--kernels", "portable" if a.kernels == "reference" else a.kernels]
        c = verify(binary, model, data, a.samples, ours + (["--tflm", str(tree)] if a.kernels == "cmsis-nn" else []))
        t = verify(binary, model, data, a.tflm_samples, ["--kernels", a.kernels, "--tflm", str(tree)])
        r = {"case": label, "no_interpreter": c, "tflm": t}
        print(json.dumps(r), flush=True)
        rows.append(r)
    print(f"\n| model | outputs (mismatches / elements) | RAM B no-interp / TFLM ({a.kernels} kernels) | ratio "
          "| flash B no-interp / TFLM | ratio | instructions / inference no-interp / TFLM | ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c, t = r["no_interpreter"], r["tflm"]
        if "error" in c or "error" in t:
            print(f"| {r['case']} | error: {(c.get('error') or t.get('error'))[:100]} |")
            continue
        o = c.get("outputs") or {}
        ci, ti = c["instructions_per_inference"] or 0, t["instructions_per_inference"] or 1
        print(f"| {r['case']} | {o.get('mismatches')} / {o.get('elements')} | {c['ram_bytes']:,} / {t['ram_bytes']:,} "
              f"| {c['ram_bytes'] / t['ram_bytes']:.2f} | {c['flash_bytes']:,} / {t['flash_bytes']:,} "
              f"| {c['flash_bytes'] / t['flash_bytes']:.2f} | {ci:,.0f} / {ti:,.0f} | {ci / ti:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
