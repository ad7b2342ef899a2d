#!/usr/bin/env python3
"""Float-engine throughput of tinyq next to onnxruntime, on the shared reference models.

Prints ONE JSON object on stdout; progress and notes go to stderr. Nothing here is asserted:
the numbers are for reading, and speed is never a test criterion.

    .venv/bin/python bench/float_throughput.py [--repeat 3] [--models kws_dscnn,hello_world] [--out FILE]
        [--threads 1] [--baseline-bin OLD_TINYQ]

See bench/README.md for what each number means.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO.parent / "shared" / "models"
FLOAT_ROLES = ("fp32_onnx", "fp32_onnx_dynamo")


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def summary(values: list[float], higher_is_better: bool) -> tuple[float, float]:
    """(best, median) of repeated measurements."""
    best = max(values) if higher_is_better else min(values)
    return best, statistics.median(values)


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def rounded(x, digits=4):
    if x is None:
        return None
    if isinstance(x, float):
        return float(f"{x:.{digits}g}") if abs(x) < 1 else round(x, 2 if abs(x) >= 100 else digits)
    return x


# --------------------------------------------------------------------------- discovery


def discover(shared: Path, wanted: list[str] | None) -> tuple[list[dict], list[dict]]:
    """Float ONNX models from the cards: [{id, name, file, role, path, data, x_key, y_key, metric}]."""
    found, skipped = [], []
    for card_path in sorted(shared.glob("*/card.json")):
        folder = card_path.parent
        card = json.loads(card_path.read_text())
        name = card.get("name", folder.name)
        dataset = card.get("dataset") or {}
        arrays = dataset.get("eval_arrays") or []
        for fname, info in sorted(card.get("files", {}).items()):
            role = (info or {}).get("role")
            if role not in FLOAT_ROLES:
                continue
            model_id = f"{folder.name}/{fname}"
            if wanted and not any(w in (folder.name, name, model_id) for w in wanted):
                continue
            if not dataset.get("file") or len(arrays) < 2:
                skipped.append({"model": model_id, "reason": "card has no dataset.file / eval_arrays"})
                continue
            data = (folder / dataset["file"]).resolve()
            if not data.exists():
                skipped.append({"model": model_id, "reason": f"dataset {data} missing"})
                continue
            found.append({
                "id": model_id, "name": name, "file": fname, "role": role,
                "path": folder / fname, "data": data,
                "x_key": arrays[0], "y_key": arrays[1], "metric": card.get("metric"),
            })
    if wanted:
        known = {m["id"] for m in found} | {m["id"].split("/")[0] for m in found} \
            | {s["model"] for s in skipped} | {s["model"].split("/")[0] for s in skipped}
        for w in wanted:
            if w not in known:
                skipped.append({"model": w, "reason": "no float ONNX model of that name under the shared cards"})
    return found, skipped


# --------------------------------------------------------------------------- tinyq


def tinyq_binary(build: bool) -> Path:
    env_bin = os.environ.get("TINYQ_BIN")
    if env_bin:
        path = Path(env_bin)
        if not path.exists():
            sys.exit(f"TINYQ_BIN={env_bin} does not exist")
        return path
    path = REPO / "target" / "release" / "tinyq"
    if build or not path.exists():
        cargo = shutil.which("cargo")
        if cargo is None:
            sys.exit(f"{path} is missing and cargo is not on PATH; build tinyq or set TINYQ_BIN")
        note("building tinyq: cargo build --release")
        subprocess.run([cargo, "build", "--release"], cwd=REPO, check=True, stdout=sys.stderr)
    return path


def tinyq_once(binary: Path, m: dict, threads: int, limit: int | None) -> tuple[dict, float]:
    cmd = [str(binary), "eval", str(m["path"]), "--data", str(m["data"]),
           "--x", m["x_key"], "--y", m["y_key"], "--json"]
    if limit:
        cmd += ["--limit", str(limit)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"tinyq failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return json.loads(proc.stdout), wall


def metric_value(kind: str | None, pred, y):
    import numpy as np

    pred = np.asarray(pred)
    if kind == "top1" or (kind is None and np.issubdtype(y.dtype, np.integer)):
        return "top1", float((pred.reshape(len(y), -1).argmax(axis=1) == y.reshape(-1)).mean())
    if kind == "rmse" or kind is None:
        d = pred.reshape(len(y), -1).astype(np.float64) - y.reshape(len(y), -1)
        return "rmse", float(np.sqrt((d * d).mean()))
    return kind, None  # e.g. auc: not recomputed here


class OrtBench:
    """One onnxruntime CPU session with the given thread budget, and the eval inputs."""

    def __init__(self, m: dict, threads: int, limit: int | None, batched_chunk: int | None):
        import numpy as np
        import onnxruntime as ort

        with np.load(m["data"]) as npz:
            x = np.ascontiguousarray(npz[m["x_key"]], dtype=np.float32)
            y = npz[m["y_key"]]
        if limit:
            x, y = x[:limit], y[:limit]
        self.n, self.y, self.kind = len(x), y, m["metric"]

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sess = ort.InferenceSession(str(m["path"]), so, providers=["CPUExecutionProvider"])
        inputs = self.sess.get_inputs()
        if len(inputs) != 1:
            raise RuntimeError(f"{len(inputs)} inputs; this bench handles single-input models only")
        self.iname = inputs[0].name
        self.oname = self.sess.get_outputs()[0].name
        dim = inputs[0].shape[0] if inputs[0].shape else None
        self.dynamic = not isinstance(dim, int) or dim <= 0
        self.batch_dim = "dynamic" if self.dynamic else dim
        # batch 1: one run() per sample, the loop a caller with one sample at a time would write
        self.singles = [x[i:i + 1] for i in range(self.n)]
        # batched: the whole set in one run() (or --ort-batch chunks), only when the batch dim is free
        self.chunk = (batched_chunk or self.n) if self.dynamic else None
        self.parts = [x[i:i + self.chunk] for i in range(0, self.n, self.chunk)] if self.dynamic else None
        self.run(self.singles[:1])  # warm-up: allocations, kernel selection
        if self.dynamic:
            self.run(self.parts[:1])  # warm-up at the batched shape

    def run(self, batches):
        return [self.sess.run([self.oname], {self.iname: b})[0] for b in batches]

    def timed(self, batched: bool):
        """(samples/s, (metric, value)) of one pass over the eval set."""
        import numpy as np

        batches = self.parts if batched else self.singles
        t0 = time.perf_counter()
        outs = self.run(batches)
        sps = self.n / (time.perf_counter() - t0)
        return sps, metric_value(self.kind, np.concatenate(outs), self.y)


def bench_model(binary: Path, m: dict, args, threads: int) -> dict:
    """Interleaved rounds (tinyq, ort batch-1, ort batched) so background load hits all alike."""
    ortb = OrtBench(m, threads, args.limit, args.ort_batch)
    for _ in range(args.warmup):  # page cache for model + data, CPU clocks
        tinyq_once(binary, m, threads, args.limit)
    tq_sps, tq_wall, b1, bb, base_sps, last = [], [], [], [], [], None
    ort_metric = ort_batched_metric = None
    for _ in range(args.repeat):
        last, wall = tinyq_once(binary, m, threads, args.limit)
        tq_sps.append(float(last["samples_per_second"]))
        tq_wall.append(wall)
        if args.baseline_bin:
            base, _ = tinyq_once(args.baseline_bin, m, threads, args.limit)
            base_sps.append(float(base["samples_per_second"]))
        sps, ort_metric = ortb.timed(batched=False)
        b1.append(sps)
        if ortb.dynamic:
            sps, ort_batched_metric = ortb.timed(batched=True)
            bb.append(sps)
    r = {"samples": int(last["samples"]), "ort_samples": ortb.n,
         "metric": last.get("metric"), "value": last.get("value"),
         "ort_metric": ort_metric, "ort_batched_metric": ort_batched_metric,
         "batch_dim": ortb.batch_dim, "batch_size": ortb.chunk}
    r["sps_best"], r["sps_median"] = summary(tq_sps, higher_is_better=True)
    r["process_s_best"], r["process_s_median"] = summary(tq_wall, higher_is_better=False)
    r["b1_best"], r["b1_median"] = summary(b1, higher_is_better=True)
    r["batched_best"], r["batched_median"] = summary(bb, higher_is_better=True) if bb else (None, None)
    r["baseline_best"], r["baseline_median"] = summary(base_sps, higher_is_better=True) if base_sps else (None, None)
    return r


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions per measurement (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed tinyq runs before timing (default 1)")
    ap.add_argument("--models", default=None,
                    help="comma-separated subset: card folder (kws_dscnn) or folder/file (mnist_cnn_torch/model_dynamo.onnx)")
    ap.add_argument("--threads", type=int, default=None,
                    help="thread budget for both engines (default: cores available); "
                         "sets RAYON_NUM_THREADS for tinyq and intra_op_num_threads for onnxruntime")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N samples of each dataset")
    ap.add_argument("--ort-batch", type=int, default=None,
                    help="split the onnxruntime batched measurement into chunks of N (default: one call)")
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared models folder (default {DEFAULT_SHARED})")
    ap.add_argument("--build", action="store_true", help="run cargo build --release first")
    ap.add_argument("--baseline-bin", type=Path, default=None,
                    help="another tinyq binary (e.g. an older build) timed in the same rounds: before/after in one run")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    cores = available_cores()
    threads = args.threads or cores
    wanted = [w.strip() for w in args.models.split(",") if w.strip()] if args.models else None

    import numpy as np
    import onnxruntime as ort

    result = {
        "benchmark": "tinyq float engine vs onnxruntime (CPU), samples per second",
        "machine": {"cores": cores, "cpu_count": os.cpu_count(), "cpu": cpu_model(),
                    "platform": platform.platform(), "python": platform.python_version()},
        "settings": {
            "repeat": args.repeat, "threads": threads, "limit": args.limit,
            "statistic": "*_samples_per_s = best (max) of the repeats, *_median = median; "
                         "tinyq_process_s = best (min) whole-process wall time",
            "ratio": "tinyq_samples_per_s / ort_*_samples_per_s (> 1: tinyq faster)",
        },
        "tinyq": None,
        "onnxruntime": {"version": ort.__version__, "numpy": np.__version__,
                        "provider": "CPUExecutionProvider", "intra_op_num_threads": threads,
                        "inter_op_num_threads": 1, "graph_optimization_level": "ORT_ENABLE_ALL"},
        "models": [],
        "skipped": [],
    }

    if not args.shared.is_dir():
        note(f"skipping: shared models folder {args.shared} is absent")
        result["skipped"].append({"model": "*", "reason": f"{args.shared} absent"})
        emit(result, args.out)
        return 0

    binary = tinyq_binary(args.build)
    ver = subprocess.run([str(binary), "--version"], capture_output=True, text=True).stdout.strip()
    result["tinyq"] = {"bin": str(binary), "version": ver, "RAYON_NUM_THREADS": threads,
                       "baseline_bin": str(args.baseline_bin) if args.baseline_bin else None}
    if args.baseline_bin and not args.baseline_bin.exists():
        sys.exit(f"--baseline-bin {args.baseline_bin} does not exist")

    models, skipped = discover(args.shared, wanted)
    result["skipped"] += skipped
    for s in skipped:
        note(f"skip {s['model']}: {s['reason']}")
    note(f"{len(models)} model(s), repeat={args.repeat}, threads={threads}, cores={cores}")

    load0 = loadavg()
    if load0 is not None and load0 > 0.5 * cores:
        note(f"warning: 1-min load average is {load0:.2f} on {cores} core(s); "
             "other work on the machine will depress and scatter every number below")
    for m in models:
        note(f"== {m['id']} ({m['role']}) on {m['data'].name}")
        try:
            r = bench_model(binary, m, args, threads)
        except Exception as e:  # report and continue with the other models
            note(f"   FAILED: {e}")
            result["skipped"].append({"model": m["id"], "reason": str(e).splitlines()[0]})
            continue
        note(f"   tinyq   engine {r['sps_best']:.0f} samples/s (median {r['sps_median']:.0f}), "
             f"process {r['process_s_best']:.3f} s, {r['metric']}={r['value']}")
        note(f"   ort     batch-1 {r['b1_best']:.0f} samples/s (median {r['b1_median']:.0f}), batched "
             + (f"{r['batched_best']:.0f} samples/s (median {r['batched_median']:.0f})"
                if r["batched_best"] else "n/a (fixed batch dim)")
             + f", {r['ort_metric'][0]}={r['ort_metric'][1]}")
        if r["ort_samples"] != r["samples"]:
            note(f"   warning: tinyq ran {r['samples']} samples, onnxruntime {r['ort_samples']}")
        entry = {
            "model": m["id"], "role": m["role"], "dataset": m["data"].name, "samples": r["samples"],
            "batch_dim": r["batch_dim"],
            "tinyq_samples_per_s": rounded(r["sps_best"]),
            "tinyq_samples_per_s_median": rounded(r["sps_median"]),
            "tinyq_engine_s": rounded(r["samples"] / r["sps_best"]),
            "tinyq_process_s": rounded(r["process_s_best"]),
            "tinyq_process_s_median": rounded(r["process_s_median"]),
            "tinyq_process_samples_per_s": rounded(r["samples"] / r["process_s_best"]),
            "ort_batch1_samples_per_s": rounded(r["b1_best"]),
            "ort_batch1_samples_per_s_median": rounded(r["b1_median"]),
            "ort_batched_samples_per_s": rounded(r["batched_best"]),
            "ort_batched_samples_per_s_median": rounded(r["batched_median"]),
            "ort_batch_size": r["batch_size"],
            "ratio_vs_ort_batch1": rounded(ratio(r["sps_best"], r["b1_best"])),
            "ratio_vs_ort_batched": rounded(ratio(r["sps_best"], r["batched_best"])),
            "ratio_vs_ort_batch1_median": rounded(ratio(r["sps_median"], r["b1_median"])),
            "ratio_vs_ort_batched_median": rounded(ratio(r["sps_median"], r["batched_median"])),
            "metric": r["metric"],
            "tinyq_value": r["value"],
            "ort_value": r["ort_metric"][1],
            "ort_batched_value": r["ort_batched_metric"][1] if r["ort_batched_metric"] else None,
        }
        if r["baseline_best"] is not None:
            entry["baseline_samples_per_s"] = rounded(r["baseline_best"])
            entry["baseline_samples_per_s_median"] = rounded(r["baseline_median"])
            entry["baseline_ratio_vs_ort_batch1"] = rounded(ratio(r["baseline_best"], r["b1_best"]))
            entry["speedup_vs_baseline"] = rounded(ratio(r["sps_best"], r["baseline_best"]))
            note(f"   baseline engine {r['baseline_best']:.0f} samples/s: tinyq {entry['speedup_vs_baseline']}x of it")
        if r["batched_best"] is None:
            entry["note"] = "batch dim fixed at 1 in the graph: onnxruntime measured at batch 1 only"
        result["models"].append(entry)
    result["machine"]["loadavg_1min_start"] = load0
    result["machine"]["loadavg_1min_end"] = loadavg()

    emit(result, args.out)
    return 0


def emit(result: dict, out: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        note(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
