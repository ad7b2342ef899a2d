#!/usr/bin/env python3
"""Training throughput of `tinyq train` (quantization-aware, one epoch) on the shared MNIST
models, next to inference in the same run: tinyq's float engine and onnxruntime batch-1.

Prints ONE JSON object on stdout; progress goes to stderr. Nothing is asserted.

    .venv/bin/python bench/train_throughput.py [--samples 5000] [--repeat 2] [--out FILE]
        [--threads 1] [--baseline-bin OLD_TINYQ]

A training sample costs a fake-quantized forward pass, a backward pass and its share of the
optimizer step; `ratio_train_vs_*` says how many inference passes of the same model one
training sample costs in time (train samples/s ÷ inference samples/s; below 1).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
MODELS = ("mnist_cnn_torch/model.onnx", "mnist_dscnn_torch/model.onnx")


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


def tinyq(binary: Path, *args) -> dict:
    proc = subprocess.run([str(binary), *map(str, args), "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"tinyq {' '.join(map(str, args[:2]))} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def ort_batch1(model: Path, x: np.ndarray, threads: int) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    sess.run(None, {name: x[:1]})
    start = time.perf_counter()
    for i in range(len(x)):
        sess.run(None, {name: x[i : i + 1]})
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--threads", type=int, default=None,
                    help="thread budget of both engines (RAYON_NUM_THREADS, intra_op_num_threads); default: the cores available")
    ap.add_argument("--baseline-bin", type=Path, default=None,
                    help="another tinyq binary (e.g. an older build) run in the same rounds: before/after in one run")
    a = ap.parse_args()
    binary = Path(os.environ.get("TINYQ_BIN", REPO / "target/release/tinyq"))
    threads = a.threads or len(os.sched_getaffinity(0))
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    load_start = os.getloadavg()[0]
    images = idx(a.shared / "data/mnist_idx/train-images-idx3-ubyte.gz")[: a.samples]
    labels = idx(a.shared / "data/mnist_idx/train-labels-idx1-ubyte.gz")[: a.samples].astype(np.int64)
    x = ((((images.astype(np.float32) / 255.0) - 0.1307) / 0.3081)[:, None]).copy()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.npz"
        np.savez(data, x=x, y=labels)
        for name in MODELS:
            model = a.shared / "models" / name
            rows = {"train": [], "tinyq_float": [], "ort_batch1": []}
            if a.baseline_bin:
                rows.update({"baseline_train": [], "baseline_float": []})
            for r in range(a.repeat):
                note(f"{name}: round {r + 1}/{a.repeat}")
                for key, b in [("", binary)] + ([("baseline_", a.baseline_bin)] if a.baseline_bin else []):
                    rep = tinyq(b, "train", model, "--data", data, "--epochs", "1", "--batch-size", a.batch_size, "-o", Path(tmp) / "q.tflite")
                    rows[key + "train"].append(rep["report"]["epochs"][0]["samples_per_second"])
                    rows[(key or "tinyq_") + "float"].append(tinyq(b, "eval", model, "--data", data)["samples_per_second"])
                rows["ort_batch1"].append(ort_batch1(model, x, threads))
            best = {k: max(v) for k, v in rows.items()}
            baseline = {}
            if a.baseline_bin:
                baseline = {
                    "baseline_train_samples_per_s": best["baseline_train"],
                    "baseline_float_inference_samples_per_s": best["baseline_float"],
                    "baseline_ratio_train_vs_own_inference": best["baseline_train"] / best["baseline_float"],
                    "train_speedup_vs_baseline": best["train"] / best["baseline_train"],
                }
            results.append({
                "model": name,
                "samples": a.samples,
                "batch_size": a.batch_size,
                "train_samples_per_s": best["train"],
                "tinyq_float_inference_samples_per_s": best["tinyq_float"],
                "ort_batch1_inference_samples_per_s": best["ort_batch1"],
                "ratio_train_vs_tinyq_inference": best["train"] / best["tinyq_float"],
                "ratio_train_vs_ort_batch1_inference": best["train"] / best["ort_batch1"],
                **baseline,
                "rounds": rows,
            })
    out = {"threads": threads, "loadavg_start": load_start, "loadavg": os.getloadavg()[0],
           "tinyq_bin": str(binary), "baseline_bin": str(a.baseline_bin) if a.baseline_bin else None, "models": results}
    text = json.dumps(out, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text)


if __name__ == "__main__":
    main()
