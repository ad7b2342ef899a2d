#!/usr/bin/env python3
"""Integer-engine throughput of tinyq next to LiteRT, on tinyq's own INT8 files of the shared models.

Prints ONE JSON object on stdout; progress and notes go to stderr. Nothing here is asserted:
the numbers are for reading, and speed is never a test criterion.

    .venv/bin/python bench/int8_throughput.py [--repeat 3] [--models kws_dscnn] [--baseline-bin OLD] [--out FILE]

See bench/README.md for what each number means.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from float_throughput import (  # noqa: E402  (shared discovery and machine helpers)
    DEFAULT_SHARED, available_cores, cpu_model, discover, emit, loadavg, note, ratio, rounded, summary,
    tinyq_binary,
)


def quantize(binary: Path, m: dict, out: Path) -> None:
    cmd = [str(binary), "quantize", str(m["path"]), "--calib", str(m["data"]), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"tinyq quantize failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")


# Measured variants that run a binary with other integer kernels (TINYQ_KERNELS).
VARIANT_KERNELS = {"tinyq_avx2": "avx2"}


def tinyq_eval(binary: Path, model: Path, m: dict, threads: int, limit: int | None, batch: int | None,
               kernels: str | None = None) -> dict:
    """`tinyq eval --json`; `batch` sets TINYQ_BATCH (samples per engine call), None keeps the default;
    `kernels` sets TINYQ_KERNELS, None keeps the default (the fast kernels on the best path)."""
    cmd = [str(binary), "eval", str(model), "--data", str(m["data"]), "--x", m["x_key"], "--y", m["y_key"], "--json"]
    if limit:
        cmd += ["--limit", str(limit)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    env.pop("TINYQ_BATCH", None)
    env.pop("TINYQ_KERNELS", None)
    if kernels is not None:
        env["TINYQ_KERNELS"] = kernels
    if batch is not None:
        env["TINYQ_BATCH"] = str(batch)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"tinyq eval failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return json.loads(proc.stdout)


class LiteRT:
    """One LiteRT interpreter (num_threads=1) over the first `limit` eval samples, batch 1."""

    def __init__(self, model: Path, m: dict, resolver: str, limit: int | None):
        import numpy as np
        from ai_edge_litert import interpreter as lite

        kind = {"xnnpack": lite.OpResolverType.AUTO,
                "builtin": lite.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}[resolver]
        self.interp = lite.Interpreter(model_path=str(model), num_threads=1, experimental_op_resolver_type=kind)
        self.interp.allocate_tensors()
        inp = self.interp.get_input_details()
        if len(inp) != 1:
            raise RuntimeError(f"{len(inp)} inputs; this bench handles single-input models only")
        self.iidx, self.oidx = inp[0]["index"], self.interp.get_output_details()[0]["index"]
        with np.load(m["data"]) as npz:
            x = np.ascontiguousarray(npz[m["x_key"]], dtype=np.float32)
        if limit:
            x = x[:limit]
        shape = [1] + list(inp[0]["shape"][1:])
        dtype = inp[0]["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zp = inp[0]["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zp, info.min, info.max)
        self.samples = [np.ascontiguousarray(s.reshape(shape), dtype=dtype) for s in x]
        self.run(self.samples[:2])  # warm-up

    def run(self, samples) -> None:
        for s in samples:
            self.interp.set_tensor(self.iidx, s)
            self.interp.invoke()
            self.interp.get_tensor(self.oidx)

    def timed(self) -> float:
        t0 = time.perf_counter()
        self.run(self.samples)
        return len(self.samples) / (time.perf_counter() - t0)


def timed_quantize(binary: Path, m: dict, extra: list[str], out: Path) -> float:
    cmd = [str(binary), "quantize", str(m["path"]), "--calib", str(m["data"]), "--data", str(m["data"]),
           "--eval-x", m["x_key"], "--y", m["y_key"], "-o", str(out)] + extra
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"tinyq quantize failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return wall


def repeated_data(m: dict, limit: int | None, work: Path) -> dict:
    """`m` with its eval set repeated up to `limit` samples when it holds fewer (ic01 has 200), so
    that every single-thread measurement runs long enough for a loaded machine's hiccups to
    average out; the arrays of another length are kept as they are."""
    import numpy as np

    with np.load(m["data"]) as npz:
        arrays = {k: npz[k] for k in npz.files}
    n = len(arrays[m["x_key"]])
    if not limit or n >= limit:
        return m
    reps = -(-limit // n)
    tiled = {k: np.concatenate([v] * reps)[:limit] if v.ndim and len(v) == n else v for k, v in arrays.items()}
    out = work / f"{m['id'].replace('/', '_')}_repeated.npz"
    np.savez(out, **tiled)
    return dict(m, data=out)


def bench_model(binaries: dict[str, Path], m: dict, args, cores: int, work: Path) -> dict:
    model = work / f"{m['id'].replace('/', '_')}_int8.tflite"
    quantize(binaries["tinyq"], m, model)
    full, m = m, repeated_data(m, args.limit, work)
    peers = {"litert_xnnpack": LiteRT(model, m, "xnnpack", args.limit),
             "litert_builtin": LiteRT(model, m, "builtin", args.limit)}
    single = {k: [] for k in [*binaries, *peers]}
    batched = {k: [] for k in binaries}
    multi = {k: [] for k in binaries}
    samples = {}
    for name, b in binaries.items():  # warm-up: page cache, clocks
        tinyq_eval(b, model, m, 1, args.limit, 1, VARIANT_KERNELS.get(name))
    for _ in range(args.repeat):  # interleaved rounds so background load hits all alike
        for name, b in binaries.items():
            kernels = VARIANT_KERNELS.get(name)
            r = tinyq_eval(b, model, m, 1, args.limit, 1, kernels)
            single[name].append(float(r["samples_per_second"]))
            samples[name] = (r["samples"], r.get("metric"), r.get("value"))
            r = tinyq_eval(b, model, m, 1, args.limit, None, kernels)
            batched[name].append(float(r["samples_per_second"]))
            r = tinyq_eval(b, model, full, cores, None, None, kernels)
            multi[name].append(float(r["samples_per_second"]))
            samples[name + "_full"] = (r["samples"], r.get("metric"), r.get("value"))
        for name, p in peers.items():
            single[name].append(p.timed())
    entry = {"model": m["id"], "int8_file": model.name, "dataset": full["data"].name,
             "single_thread_samples": samples["tinyq"][0], "full_eval_samples": samples["tinyq_full"][0],
             "metric": samples["tinyq_full"][1]}
    for name, values in single.items():
        best, med = summary(values, higher_is_better=True)
        entry[f"{name}_1t_samples_per_s"] = rounded(best)
        entry[f"{name}_1t_samples_per_s_median"] = rounded(med)
    for name, values in batched.items():
        entry[f"{name}_1t_default_batch_samples_per_s"] = rounded(max(values))
    for name, values in multi.items():
        best, _ = summary(values, higher_is_better=True)
        entry[f"{name}_eval_{cores}t_samples_per_s"] = rounded(best)
        entry[f"{name}_eval_value"] = samples[name + "_full"][2]
    for name in binaries:
        for peer in peers:
            entry[f"ratio_{name}_vs_{peer}"] = rounded(ratio(max(single[name]), max(single[peer])))
    if "baseline" in binaries:
        entry["speedup_1t_vs_baseline"] = rounded(ratio(max(single["tinyq"]), max(single["baseline"])))
        entry[f"speedup_{cores}t_vs_baseline"] = rounded(ratio(max(multi["tinyq"]), max(multi["baseline"])))
    timed_models = [w.strip() for w in (args.quantize_models or "").split(",") if w.strip()]
    if args.quantize_times and (not timed_models or m["id"] in timed_models or m["id"].split("/")[0] in timed_models):
        for name, b in binaries.items():
            if name in VARIANT_KERNELS:
                continue
            entry[f"{name}_quantize_data_s"] = rounded(timed_quantize(b, full, [], work / "q_data.tflite"))
            entry[f"{name}_quantize_max_drop_s"] = rounded(
                timed_quantize(b, full, ["--max-drop", str(args.max_drop)], work / "q_drop.tflite"))
    return entry


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds per measurement (default 3)")
    ap.add_argument("--models", default=None, help="comma-separated subset: card folder or folder/file")
    ap.add_argument("--limit", type=int, default=1000,
                    help="single-thread measurements use the first N eval samples, the eval set repeated "
                         "when it holds fewer (default 1000)")
    ap.add_argument("--baseline-bin", type=Path, default=None,
                    help="an older tinyq binary measured in the same run, on the same INT8 files")
    ap.add_argument("--avx2", action="store_true",
                    help="also measure the binary with TINYQ_KERNELS=avx2 (`tinyq_avx2`: the path of CPUs "
                         "without AVX-512 VNNI)")
    ap.add_argument("--quantize-times", action="store_true",
                    help="also time `tinyq quantize --data` and `--max-drop` per binary (slow)")
    ap.add_argument("--quantize-models", default=None,
                    help="with --quantize-times: only these models (card folder or folder/file, comma-separated)")
    ap.add_argument("--max-drop", type=float, default=0.5, help="budget for the --max-drop timing (default 0.5)")
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help=f"shared models folder (default {DEFAULT_SHARED})")
    ap.add_argument("--build", action="store_true", help="run cargo build --release first")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    cores = available_cores()
    wanted = [w.strip() for w in args.models.split(",") if w.strip()] if args.models else None
    result = {
        "benchmark": "tinyq integer engine vs LiteRT on tinyq's INT8 files, samples per second",
        "machine": {"cores": cores, "cpu": cpu_model(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "settings": {
            "repeat": args.repeat, "single_thread_limit": args.limit,
            "statistic": "*_samples_per_s = best (max) of the repeats, *_median = median",
            "single_thread": "batch 1, one thread, on the first single_thread_limit eval samples (the set "
                             "repeated when smaller): tinyq eval with RAYON_NUM_THREADS=1 TINYQ_BATCH=1; "
                             "LiteRT num_threads=1, one invoke() per sample from Python",
            "single_thread_default_batch": "tinyq eval, RAYON_NUM_THREADS=1, default samples per engine call",
            "multi_thread": f"tinyq eval on the full eval set with RAYON_NUM_THREADS={cores}, default batch",
            "ratio": "tinyq 1-thread samples/s / peer 1-thread samples/s (> 1: tinyq faster)",
        },
        "tinyq": None, "litert": None, "models": [], "skipped": [],
    }
    if not args.shared.is_dir():
        note(f"skipping: shared models folder {args.shared} is absent")
        result["skipped"].append({"model": "*", "reason": f"{args.shared} absent"})
        emit(result, args.out)
        return 0

    import ai_edge_litert

    binaries = {"tinyq": tinyq_binary(args.build)}
    if args.baseline_bin:
        binaries["baseline"] = args.baseline_bin.resolve()
    if args.avx2:
        binaries["tinyq_avx2"] = binaries["tinyq"]
    result["tinyq"] = {name: {"bin": str(b), "version": subprocess.run(
        [str(b), "--version"], capture_output=True, text=True).stdout.strip()} for name, b in binaries.items()}
    result["litert"] = {"version": getattr(ai_edge_litert, "__version__", None), "num_threads": 1,
                        "xnnpack": "OpResolverType.AUTO (XNNPACK delegate)",
                        "builtin": "OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES"}
    models, skipped = discover(args.shared, wanted)
    result["skipped"] += skipped
    load0 = loadavg()
    with tempfile.TemporaryDirectory(prefix="tinyq-int8-bench-") as tmp:
        for m in models:
            note(f"== {m['id']} on {m['data'].name}")
            try:
                entry = bench_model(binaries, m, args, cores, Path(tmp))
            except Exception as e:  # report and continue with the other models
                note(f"   FAILED: {e}")
                result["skipped"].append({"model": m["id"], "reason": str(e).splitlines()[0]})
                continue
            note("   " + ", ".join(f"{k}={v}" for k, v in entry.items() if "ratio" in k or "1t_samples_per_s" in k
                                   and "median" not in k))
            result["models"].append(entry)
    result["machine"]["loadavg_1min_start"] = load0
    result["machine"]["loadavg_1min_end"] = loadavg()
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
