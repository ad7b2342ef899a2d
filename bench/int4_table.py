"""File size and accuracy of int8 and int4 weights on each shared model, as one JSON object.

For every shared model's FP32 ONNX source (../shared/models/*/card.json, role fp32_onnx), with
the card's calibration array (`x_calib`) and its evaluation arrays (`x`, `y`):

  int8          tinyq quantize (the default)
  int4_ptq      --weights int4 --no-corrections (round to nearest)
  int4_adaround --weights int4 (AdaRound on, as by default)
  mixed         --weights mixed --data EVAL --max-drop MAX_DROP (chosen on the evaluation set
                itself, so its figure is not held out)
  int4_qat      tinyq train --weights int4 --epochs 1 --distill on the calibration array (no
                labels: the FP32 model's own outputs), then evaluated

Each row: bytes, ratio to the int8 file, and the metric (top1 or rmse) with `tinyq eval` on the
evaluation arrays, beside the card's FP32 figure as tinyq computes it.

Usage: python bench/int4_table.py [--shared DIR] [--max-drop 1] [--out DIR]
       (TINYQ_BIN selects the binary; run with the oracle venv)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tinyq(binary, *args):
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True)


def evaluate(binary, model, data):
    p = tinyq(binary, "eval", model, "--data", data, "--json")
    if p.returncode != 0:
        return None, p.stderr.strip()[-300:]
    r = json.loads(p.stdout)
    return r, None


def main():
    ap = argparse.ArgumentParser()
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--shared", default=str(here.parent / "shared"))
    ap.add_argument("--max-drop", type=float, default=1.0)
    ap.add_argument("--out")
    a = ap.parse_args()
    binary = os.environ.get("TINYQ_BIN", str(here / "target/release/tinyq"))
    out = Path(a.out or tempfile.mkdtemp(prefix="int4-table-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for card_path in sorted(Path(a.shared).glob("models/*/card.json")):
        card = json.loads(card_path.read_text())
        src = next((card_path.parent / n for n, i in card["files"].items() if i.get("role") == "fp32_onnx"), None)
        if src is None:
            continue
        data = (card_path.parent / card["dataset"]["file"]).resolve()
        name = card_path.parent.name
        variants = {
            "int8": ["quantize", src, "--calib", data, "-o"],
            "int4_ptq": ["quantize", src, "--calib", data, "--weights", "int4", "--no-corrections", "-o"],
            "int4_adaround": ["quantize", src, "--calib", data, "--weights", "int4", "-o"],
            "mixed": ["quantize", src, "--calib", data, "--weights", "mixed", "--data", data, "--max-drop",
                      a.max_drop, "-o"],
            "int4_qat": ["train", src, "--data", data, "--x", "x_calib", "--distill", "--epochs", 1, "--weights",
                         "int4", "-o"],
        }
        row = {"model": name, "metric": card["metric"]}
        for key, args in variants.items():
            f = out / f"{name}_{key}.tflite"
            start = time.time()
            p = tinyq(binary, *args, f)
            entry = {"seconds": round(time.time() - start, 2)}
            if p.returncode != 0:
                entry["error"] = p.stderr.strip().splitlines()[-1][-300:] if p.stderr.strip() else f"exit {p.returncode}"
            else:
                r, err = evaluate(binary, f, data)
                entry["bytes"] = f.stat().st_size
                if err:
                    entry["error"] = err
                else:
                    entry["value"] = r["value"]
            row[key] = entry
        base = row["int8"].get("bytes")
        for key in variants:
            if base and "bytes" in row[key]:
                row[key]["ratio_to_int8"] = round(row[key]["bytes"] / base, 3)
        fp32, err = evaluate(binary, src, data)
        row["fp32"] = fp32["value"] if fp32 else err
        rows.append(row)
        print(f"{name}: done", file=sys.stderr)
    print(json.dumps({"max_drop": a.max_drop, "models": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
