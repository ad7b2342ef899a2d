#!/usr/bin/env python3
"""INT8 metric and quantize wall time of `tinyq quantize` on every FP32 source of the shared
reference set, for one or more flag sets (and, optionally, a second binary), next to the best
peer recorded in each card.

Each configuration quantizes every source (`fp32_onnx`, `fp32_onnx_dynamo`, `fp32_tflite`) on the
card's `x_calib` array and scores the written file with `tinyq eval --json` on the card's eval
arrays (the integer engine, bit-exact with TFLM). The quantize time is the whole process, spawn to
exit (wall seconds, and CPU seconds of all its threads, which a loaded machine inflates less),
best of `--repeat`.

Prints ONE JSON object on stdout; progress goes to stderr. Nothing is asserted.

    python3 bench/ptq_accuracy.py                                  # the default command
    python3 bench/ptq_accuracy.py --config plain="--calibration minmax" --config default=""
    python3 bench/ptq_accuracy.py --baseline-bin /path/to/older/tinyq --repeat 3

`--config NAME=FLAGS` adds a configuration (FLAGS split on spaces; `default=` is the default
command); `--baseline-bin` adds the configuration `baseline` (no flags) run with that binary, and
every configuration then carries its time ratio against it.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE_ROLES = ("fp32_onnx", "fp32_onnx_dynamo", "fp32_tflite")
PEER_RUNTIMES = ("tflm", "onnxruntime_x64quantprecision")


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def best_peer(card: dict) -> tuple[str, float] | None:
    """The best INT8 peer recorded in the card (converter, onnxruntime, shipped files), as run in
    TFLM or in onnxruntime with exact int64 requantization."""
    lower_better = card["metric"] == "rmse"
    peers = [(b["tool"], b["value"]) for b in card["baselines"] if b["runtime"] in PEER_RUNTIMES]
    if not peers:
        return None
    return min(peers, key=lambda p: p[1]) if lower_better else max(peers, key=lambda p: p[1])


def sources(shared: Path, only: list[str]) -> list[tuple[Path, str, dict]]:
    found = []
    for card_path in sorted(shared.glob("*/card.json")):
        card = json.loads(card_path.read_text())
        for name, info in sorted(card["files"].items()):
            if info.get("role") in SOURCE_ROLES:
                key = f"{card_path.parent.name}/{name}"
                if not only or card_path.parent.name in only or key in only:
                    found.append((card_path.parent, name, card))
    return found


def timed(cmd: list[str]) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds, CPU seconds (user + system, all threads) and the finished process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def run_config(binary: str, flags: list[str], folder: Path, name: str, card: dict, tmp: Path, repeat: int) -> dict:
    data = (folder / card["dataset"]["file"]).resolve()
    x_key, y_key = card["dataset"]["eval_arrays"]
    out = tmp / "q.tflite"
    out.unlink(missing_ok=True)
    times, cpus = [], []
    report = None
    for _ in range(repeat):
        seconds, cpu, proc = timed([binary, "quantize", str(folder / name), "--calib", str(data), "-o", str(out), "--json", *flags])
        if proc.returncode != 0:
            return {"error": proc.stderr.strip()[-400:]}
        times.append(seconds)
        cpus.append(cpu)
        report = json.loads(proc.stdout)
    ev = subprocess.run([binary, "eval", str(out), "--data", str(data), "--x", x_key, "--y", y_key, "--json"], capture_output=True, text=True)
    if ev.returncode != 0:
        return {"error": ev.stderr.strip()[-400:]}
    metric = json.loads(ev.stdout)
    row = {"int8": metric.get("value"), "quantize_s": round(min(times), 4), "quantize_cpu_s": round(min(cpus), 4), "file_bytes": out.stat().st_size}
    for key in ("calibration", "auto_calibration", "corrections", "passes", "warnings"):
        if report is not None and key in report:
            row[key] = report[key]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("TINYQ_BIN", str(REPO / "target/release/tinyq")))
    ap.add_argument("--baseline-bin", help="an older tinyq binary, run with no flags as `baseline`")
    ap.add_argument("--config", action="append", default=[], help="NAME=FLAGS (repeatable)")
    ap.add_argument("--shared", default=str(REPO.parent / "shared" / "models"))
    ap.add_argument("--models", default="", help="comma-separated card folders or folder/file")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out")
    a = ap.parse_args()
    configs = [(c.split("=", 1)[0], shlex.split(c.split("=", 1)[1] if "=" in c else "")) for c in a.config] or [("default", [])]
    runs = [(n, a.bin, f) for n, f in configs]
    if a.baseline_bin:
        runs.insert(0, ("baseline", a.baseline_bin, []))
    shared = Path(a.shared)
    result = {"bench": "ptq_accuracy", "loadavg_start": list(os.getloadavg()), "binary": a.bin, "baseline_binary": a.baseline_bin, "configs": {n: f for n, f in configs}, "models": []}
    if not shared.is_dir():
        note(f"{shared} not present: nothing measured")
        print(json.dumps(result))
        return 0
    only = [m for m in a.models.split(",") if m]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for folder, name, card in sources(shared, only):
            key = f"{folder.name}/{name}"
            fp32_key = next((k for k in card["fp32"] if k.startswith(name + " @")), None)
            peer = best_peer(card)
            row = {"model": key, "metric": card["metric"], "fp32": card["fp32"].get(fp32_key), "best_peer": peer[1] if peer else None, "best_peer_tool": peer[0] if peer else None, "n_eval": card["dataset"].get("n_eval"), "runs": {}}
            for cname, binary, flags in runs:
                note(f"{key}: {cname} {' '.join(flags)}")
                row["runs"][cname] = run_config(binary, flags, folder, name, card, tmp, a.repeat)
            base = row["runs"].get("baseline", {}).get("quantize_s")
            base_cpu = row["runs"].get("baseline", {}).get("quantize_cpu_s")
            for r in row["runs"].values():
                if base and "quantize_s" in r:
                    r["time_ratio_vs_baseline"] = round(r["quantize_s"] / base, 3)
                if base_cpu and "quantize_cpu_s" in r:
                    r["cpu_ratio_vs_baseline"] = round(r["quantize_cpu_s"] / base_cpu, 3)
                if peer and r.get("int8") is not None:
                    if card["metric"] == "rmse":
                        r["meets_peer"] = r["int8"] <= peer[1] * 1.02
                    else:
                        r["meets_peer"] = r["int8"] >= peer[1] - 1.0 / card["dataset"]["n_eval"] - 1e-9
            result["models"].append(row)
    result["loadavg_end"] = list(os.getloadavg())
    text = json.dumps(result, indent=1)
    if a.out:
        Path(a.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
