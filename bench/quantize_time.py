#!/usr/bin/env python3
"""Wall time of `tinyq quantize` next to the TFLite converter and onnxruntime's quantize_static.

Every measurement is one whole fresh process, timed from spawn to exit: tinyq's binary, and, for
the peers, a new Python interpreter that imports its framework, loads the FP32 model, calibrates
on the card's `x_calib` samples and writes the INT8 file. Rounds are interleaved so that other
load on the machine touches every tool alike.

Prints ONE JSON object on stdout; progress and notes go to stderr. Nothing is asserted.

    python3 bench/quantize_time.py [--repeat 3] [--models ic_resnet8,hello_world] [--out FILE]

The peers live in their own virtualenv (default /tmp/tinyq-bench-venv-peers, override with
--venv or TINYQ_PEERS_VENV), which this script creates and fills with pinned versions on first
use (about 2 minutes, 1.7 GB). See bench/quantize_time.md for what is measured.

This file imports only the standard library at top level: the same file is also the peer worker
(`_worker tflite|ort`), started with the venv's interpreter, and its own start-up must stay cheap.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_SHARED = REPO.parent / "shared" / "models"
DEFAULT_VENV = Path(os.environ.get("TINYQ_PEERS_VENV", "/tmp/tinyq-bench-venv-peers"))

# Exact versions of the peer stack. tensorflow-cpu 2.21.0 brings Keras 3; numpy, onnx and
# onnxruntime match requirements-oracles.txt.
PEER_PINS = {
    "tensorflow-cpu": "2.21.0",
    "keras": "3.15.1",
    "h5py": "3.14.0",
    "numpy": "2.4.6",
    "onnx": "1.23.2",
    "onnxruntime": "1.32.0",
    "sympy": "1.14.0",  # quant_pre_process's symbolic shape inference needs it
}

TOOLS = ("tinyq", "tinyq_from_tflite", "tinyq_baseline", "tinyq_baseline_from_tflite", "tflite_converter",
         "ort_quantize_static")
KERAS_SUFFIXES = (".keras", ".h5")


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# =========================================================================== peer workers
# These run inside the peers' venv, each in a fresh interpreter. They print one JSON line with
# their own phase timings; the orchestrator times the whole process from outside.


def _worker_tflite(model: str, calib: str, array: str, out: str) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import tensorflow as tf

    t1 = time.perf_counter()
    keras_model = tf.keras.models.load_model(model, compile=False)
    t2 = time.perf_counter()
    x = np.load(calib)[array].astype(np.float32)

    def representative_dataset():
        for i in range(len(x)):  # one sample per step, as in TensorFlow's PTQ guide
            yield [x[i : i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    flat = converter.convert()
    Path(out).write_bytes(flat)
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "load_s": t2 - t1, "convert_s": t3 - t2, "n_calib": int(len(x)),
            "versions": {"tensorflow": tf.__version__, "keras": getattr(tf.keras, "__version__", None)}}


def _worker_ort(model: str, calib: str, array: str, out: str, batch: int, preprocess: bool) -> dict:
    t0 = time.perf_counter()
    import numpy as np
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quant_pre_process, quantize_static)

    t1 = time.perf_counter()
    src = model
    if preprocess:  # the step onnxruntime's quantization guide asks for before quantize_static
        pre = str(Path(out).with_suffix(".pre.onnx"))
        quant_pre_process(model, pre)
        src = pre
    t2 = time.perf_counter()

    graph = onnx.load(src).graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise SystemExit(f"expected one graph input, found {[i.name for i in inputs]}")
    name = inputs[0].name
    dim0 = inputs[0].type.tensor_type.shape.dim[0]
    fixed_batch = dim0.HasField("dim_value") and dim0.dim_value > 0
    x = np.load(calib)[array].astype(np.float32)
    step = 1 if (batch <= 1 or fixed_batch) else batch

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= len(x):
                return None
            feed = {name: x[self.i : self.i + step]}
            self.i += step
            return feed

        def rewind(self):
            self.i = 0

    quantize_static(src, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    t3 = time.perf_counter()
    if preprocess:
        Path(src).unlink(missing_ok=True)
    return {"import_s": t1 - t0, "pre_process_s": t2 - t1, "quantize_s": t3 - t2,
            "n_calib": int(len(x)), "calib_batch": step,
            "versions": {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__,
                         "numpy": np.__version__}}


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="quantize_time.py _worker")
    p.add_argument("tool", choices=("tflite", "ort"))
    p.add_argument("--model", required=True)
    p.add_argument("--calib", required=True)
    p.add_argument("--array", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--no-preprocess", action="store_true")
    a = p.parse_args(argv)
    if a.tool == "tflite":
        info = _worker_tflite(a.model, a.calib, a.array, a.out)
    else:
        info = _worker_ort(a.model, a.calib, a.array, a.out, a.batch, not a.no_preprocess)
    sys.stdout.write("BENCH_WORKER " + json.dumps(info) + "\n")
    sys.stdout.flush()
    return 0


# =========================================================================== helpers


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def r3(x: float | None) -> float | None:
    """Milliseconds for times above a second, 4 significant digits below (tinyq takes ~5 ms)."""
    if x is None:
        return None
    return round(x, 3) if abs(x) >= 1 else float(f"{x:.4g}")


def stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"median": r3(statistics.median(values)), "best": r3(min(values)),
            "runs": [r3(v) for v in values]}


def ratio(a: dict | None, b: dict | None, key: str) -> float | None:
    if not a or not b or not b[key]:
        return None
    return round(a[key] / b[key], 2)


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v]
    if not values:
        return None
    return round(math.exp(sum(math.log(v) for v in values) / len(values)), 2)


def timed_process(cmd: list[str], env: dict | None = None) -> dict:
    """Run cmd to completion; wall time from spawn to reaped exit, plus its own rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    return {"rc": proc.returncode, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024.0,  # Linux reports KiB
            "stdout": stdout, "stderr": stderr}


def tail(text: str, n: int = 6) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return "\n".join(lines[-n:])


# =========================================================================== setup


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


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def installed_versions(py: Path) -> dict[str, str | None]:
    code = ("import json, importlib.metadata as m\n"
            "out = {}\n"
            f"for n in {sorted(PEER_PINS)!r}:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "print(json.dumps(out))")
    r = subprocess.run([str(py), "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        return {n: None for n in PEER_PINS}
    return json.loads(r.stdout)


def ensure_peers(venv: Path, base_python: str, install: bool) -> dict:
    """Create/fill the peers' venv if needed; return its interpreter and versions."""
    py = venv_python(venv)
    have = installed_versions(py) if py.exists() else {n: None for n in PEER_PINS}
    missing = {n: v for n, v in PEER_PINS.items() if have.get(n) != v}
    if missing:
        if not install:
            sys.exit(f"peers venv {venv} lacks {missing}; run without --no-install to set it up")
        if not py.exists():
            note(f"creating the peers' venv {venv} with {base_python}")
            subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
        pins = [f"{n}=={v}" for n, v in PEER_PINS.items()]
        note(f"installing into {venv} (several minutes on a first run): {' '.join(pins)}")
        t0 = time.perf_counter()
        subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", *pins],
                       check=True, stdout=sys.stderr)
        note(f"peers installed in {time.perf_counter() - t0:.0f} s")
        have = installed_versions(py)
    pyver = subprocess.run([str(py), "-c", "import platform; print(platform.python_version())"],
                           capture_output=True, text=True).stdout.strip()
    return {"venv": str(venv), "python": str(py), "python_version": pyver, "versions": have}


# =========================================================================== discovery


def discover(shared: Path, wanted: list[str] | None) -> tuple[list[dict], list[dict]]:
    """One entry per float ONNX file of each card (fp32_onnx, fp32_onnx_dynamo)."""
    found, skipped = [], []
    for card_path in sorted(shared.glob("*/card.json")):
        folder = card_path.parent
        card = json.loads(card_path.read_text())
        files = card.get("files", {})
        dataset = card.get("dataset") or {}
        by_role: dict[str, list[str]] = {}
        for fname, info in sorted(files.items()):
            by_role.setdefault((info or {}).get("role"), []).append(fname)
        keras = sorted((f for f in files if f.endswith(KERAS_SUFFIXES)),
                       key=lambda f: (not f.endswith(".keras"), f))
        for role in ("fp32_onnx", "fp32_onnx_dynamo"):
            for fname in by_role.get(role, []):
                entry_id = folder.name if role == "fp32_onnx" else f"{folder.name}/{fname}"
                if wanted and not any(w in (folder.name, entry_id, f"{folder.name}/{fname}")
                                      for w in wanted):
                    continue
                calib_rel = dataset.get("file")
                array = dataset.get("calib_array") or "x_calib"
                calib = (folder / calib_rel).resolve() if calib_rel else None
                if calib is None or not calib.exists():
                    skipped.append({"model": entry_id, "reason": f"calibration file {calib} missing"})
                    continue
                primary = role == "fp32_onnx"
                tflite = by_role.get("fp32_tflite", [])
                found.append({
                    "id": entry_id, "folder": folder, "onnx": folder / fname, "calib": calib,
                    "calib_rel": calib_rel, "array": array, "n_calib": dataset.get("n_calib"),
                    # the .tflite and Keras sources are the same network as the primary ONNX file
                    "tflite": folder / tflite[0] if (primary and tflite) else None,
                    "keras": folder / keras[0] if (primary and keras) else None,
                    "card_reference": card_reference(card, fname),
                })
    return found, skipped


def card_reference(card: dict, onnx_name: str) -> dict:
    """Times the card recorded for the peers (another day, another load): for reading only."""
    ref = {}
    for b in card.get("baselines", []):
        t = b.get("quant_wall_s_fresh_process")
        if t is None:
            continue
        if b.get("tool") == "tflite_converter_ptq_int8":
            ref["tflite_converter_s"] = t
            ref["tflite_converter_source"] = b.get("source")
        elif b.get("tool") == "ort_quantize_static_qdq_minmax" and b.get("source") == onnx_name:
            ref["ort_quantize_static_s"] = t
    return ref


# =========================================================================== one model


def commands(m: dict, binary: Path, peers: dict | None, outdir: Path, args) -> dict[str, list[str]]:
    base = outdir / m["id"].replace("/", "__")
    calib = str(m["calib"])
    cmds = {}
    tq = ["--calib", calib, "--x", m["array"], *tinyq_calibration_args(args), "--json"]
    builds = [("tinyq", binary)]
    if args.baseline_binary is not None:
        builds.append(("tinyq_baseline", args.baseline_binary))
    for tool, exe in builds:
        cmds[tool] = [str(exe), "quantize", str(m["onnx"]), *tq, "-o", f"{base}.{tool}.tflite"]
        if m["tflite"] is not None:
            cmds[f"{tool}_from_tflite"] = [str(exe), "quantize", str(m["tflite"]), *tq,
                                           "-o", f"{base}.{tool}_from_tflite.tflite"]
    if peers is not None:
        worker = [peers["python"], str(Path(__file__).resolve()), "_worker"]
        io = ["--calib", calib, "--array", m["array"]]
        if m["keras"] is not None and "tflite" in args.peers:
            cmds["tflite_converter"] = [*worker, "tflite", "--model", str(m["keras"]), *io,
                                        "--out", f"{base}.tfliteconv.tflite"]
        if "ort" in args.peers:
            cmds["ort_quantize_static"] = [*worker, "ort", "--model", str(m["onnx"]), *io,
                                           "--out", f"{base}.ort_qdq.onnx",
                                           "--batch", str(args.ort_batch)]
            if args.ort_no_preprocess:
                cmds["ort_quantize_static"].append("--no-preprocess")
    return cmds


def tinyq_calibration_args(args) -> list[str]:
    """`--calibration minmax` (the peers' method) unless `--tinyq-default` asks for tinyq's default."""
    return [] if args.tinyq_default else ["--calibration", "minmax"]


def tinyq_command(args) -> str:
    cal = " ".join(tinyq_calibration_args(args))
    return f"tinyq quantize MODEL --calib DATA.npz --x x_calib {cal + ' ' if cal else ''}--json -o OUT.tflite"


def output_path(cmd: list[str]) -> Path:
    for flag in ("-o", "--out"):
        if flag in cmd:
            return Path(cmd[cmd.index(flag) + 1])
    raise ValueError(cmd)


def parse_phases(tool: str, stdout: str) -> dict:
    if tool.startswith("tinyq"):
        try:
            return {"in_process_s": json.loads(stdout.strip().splitlines()[-1]).get("seconds")}
        except (ValueError, IndexError):
            return {}
    for line in stdout.splitlines():
        if line.startswith("BENCH_WORKER "):
            return json.loads(line[len("BENCH_WORKER "):])
    return {}


def bench_model(m: dict, binary: Path, peers: dict | None, outdir: Path, args, env: dict) -> dict:
    cmds = commands(m, binary, peers, outdir, args)
    tools = [t for t in TOOLS if t in cmds]
    walls = {t: [] for t in tools}
    cpus = {t: [] for t in tools}
    rss = {t: [] for t in tools}
    phases = {t: [] for t in tools}
    failed: dict[str, str] = {}
    sizes: dict[str, int] = {}
    load0 = loadavg()
    rounds = args.warmup + args.repeat
    for r in range(rounds):
        shift = r % len(tools)  # rotate who goes first so no tool always follows the same one
        order = tools[shift:] + tools[:shift]
        for tool in order:
            if tool in failed:
                continue
            out = output_path(cmds[tool])
            out.unlink(missing_ok=True)
            res = timed_process(cmds[tool], env)
            if res["rc"] != 0 or not out.exists():
                failed[tool] = f"exit {res['rc']}: {tail(res['stderr'] or res['stdout'])}"
                note(f"  {m['id']}: {tool} FAILED ({failed[tool]})")
                continue
            sizes[tool] = out.stat().st_size
            tag = "warm-up" if r < args.warmup else f"round {r - args.warmup + 1}"
            note(f"  {m['id']:<34} {tag:<8} {tool:<20} {res['wall_s']:7.3f} s wall  "
                 f"{res['cpu_s']:6.2f} s cpu  {res['peak_rss_mb']:6.0f} MB")
            if r < args.warmup:
                continue
            walls[tool].append(res["wall_s"])
            cpus[tool].append(res["cpu_s"])
            rss[tool].append(res["peak_rss_mb"])
            phases[tool].append(parse_phases(tool, res["stdout"]))

    def median_phases(tool: str) -> dict | None:
        runs = phases.get(tool) or []
        if not runs:
            return None
        keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
        merged = {k: r3(statistics.median(p[k] for p in runs if k in p)) for k in keys}
        merged.update({k: v for k, v in runs[0].items() if not isinstance(v, (int, float))})
        return merged

    s = {t: stats(walls.get(t, [])) for t in TOOLS}
    ratios = {}
    for key in ("median", "best"):
        ratios[f"tflite_converter_over_tinyq_{key}"] = ratio(s["tflite_converter"], s["tinyq"], key)
        ratios[f"tflite_converter_over_tinyq_from_tflite_{key}"] = ratio(
            s["tflite_converter"], s["tinyq_from_tflite"], key)
        ratios[f"ort_over_tinyq_{key}"] = ratio(s["ort_quantize_static"], s["tinyq"], key)
        ratios[f"tinyq_baseline_over_tinyq_{key}"] = ratio(s["tinyq_baseline"], s["tinyq"], key)
        ratios[f"tinyq_baseline_over_tinyq_from_tflite_{key}"] = ratio(
            s["tinyq_baseline_from_tflite"], s["tinyq_from_tflite"], key)

    cpu_med = {t: statistics.median(cpus[t]) for t in tools if cpus[t]}
    for new, old in (("tinyq", "tinyq_baseline"), ("tinyq_from_tflite", "tinyq_baseline_from_tflite")):
        both = new in cpu_med and old in cpu_med and cpu_med[new] > 0
        ratios[f"{old}_over_{new}_cpu_median"] = round(cpu_med[old] / cpu_med[new], 2) if both else None

    # ru_maxrss of a child keeps the high-water mark of the memory it was forked with, i.e. this
    # interpreter's: a child's peak below that floor cannot be seen, only bounded.
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    notes = []
    low = [t for t in tools if rss[t] and statistics.median(rss[t]) <= floor * 1.05]
    if low:
        notes.append(f"peak RSS of {', '.join(low)} is at the measurable floor ({floor:.0f} MB, the "
                     "RSS of the Python that spawned it): read it as 'at most that'")
    if m["keras"] is None:
        notes.append("TFLite converter: no Keras source in shared/ for this model; skipped")
    elif "tflite_converter" not in cmds:
        notes.append("TFLite converter: not requested (--peers)")
    notes += [f"{t}: {msg}" for t, msg in failed.items()]

    agg_ratio = ratios["tflite_converter_over_tinyq_median"]
    return {
        "model": m["id"],
        "onnx": m["onnx"].name,
        "tflite_input": m["tflite"].name if m["tflite"] is not None else None,
        "keras_source": m["keras"].name if m["keras"] is not None else None,
        "calib": f"{m['calib_rel']}:{m['array']}",
        "n_calib": m["n_calib"],
        "tinyq_s": s["tinyq"],
        "tinyq_from_tflite_s": s["tinyq_from_tflite"],
        "tinyq_baseline_s": s["tinyq_baseline"],
        "tinyq_baseline_from_tflite_s": s["tinyq_baseline_from_tflite"],
        "tflite_converter_s": s["tflite_converter"],
        "ort_quantize_static_s": s["ort_quantize_static"],
        "ratios": ratios,
        "aim_10x_vs_tflite_converter": None if agg_ratio is None else agg_ratio >= 10,
        "cpu_s_median": {t: r3(statistics.median(cpus[t])) for t in tools if cpus[t]},
        "peak_rss_mb_median": {t: round(statistics.median(rss[t])) for t in tools if rss[t]},
        "peak_rss_floor_mb": round(floor),
        "phases_median_s": {t: median_phases(t) for t in tools if phases[t]},
        "output_bytes": sizes,
        "card_reference_s": m["card_reference"],
        "loadavg_start_end": [load0, loadavg()],
        "notes": notes,
    }


# =========================================================================== main


def main(argv: list[str]) -> int:
    if argv[:1] == ["_worker"]:
        return worker_main(argv[1:])

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="timed rounds per model (default 3)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed rounds first, so every tool starts from a warm page cache (default 1)")
    p.add_argument("--models", help="comma-separated card folders or folder/file, e.g. ic_resnet8,"
                   "mnist_cnn_torch/model_dynamo.onnx (default: all)")
    p.add_argument("--peers", default="tflite,ort", help="which peers to run: tflite,ort (default both)")
    p.add_argument("--tinyq-only", action="store_true",
                   help="time tinyq alone (same as --peers ''): no peers' venv is needed")
    p.add_argument("--tinyq-default", action="store_true",
                   help="time tinyq's default command (automatic calibration and corrections) instead of "
                        "--calibration minmax")
    p.add_argument("--baseline", type=Path, dest="baseline_binary",
                   help="another tinyq binary timed in the same rounds with the same command "
                        "(tinyq_baseline_s; ratios baseline/tinyq)")
    p.add_argument("--ort-batch", type=int, default=1,
                   help="samples per calibration step for onnxruntime (default 1; models whose batch "
                        "dim is fixed always use 1)")
    p.add_argument("--ort-no-preprocess", action="store_true",
                   help="skip quant_pre_process before quantize_static")
    p.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"peers' venv (default {DEFAULT_VENV})")
    p.add_argument("--venv-python", default=sys.executable,
                   help="interpreter that creates the venv (TensorFlow 2.21 wants Python 3.9-3.13)")
    p.add_argument("--no-install", action="store_true", help="fail instead of creating/filling the venv")
    p.add_argument("--setup-only", action="store_true", help="set up the peers' venv and exit")
    p.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    p.add_argument("--build", action="store_true", help="cargo build --release first")
    p.add_argument("--keep", type=Path, help="write the INT8 outputs here (default: a temp dir, removed)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)
    args.peers = set() if args.tinyq_only else {x.strip() for x in args.peers.split(",") if x.strip()}
    if args.repeat < 1:
        p.error("--repeat must be >= 1")

    peers = None
    if args.peers:
        peers = ensure_peers(args.venv, args.venv_python, not args.no_install)
    if args.setup_only:
        print(json.dumps({"peers": peers}, indent=1))
        return 0
    source_binary = tinyq_binary(args.build)
    outdir_ctx = tempfile.TemporaryDirectory(prefix="tinyq-qtime-") if args.keep is None else None
    outdir = Path(outdir_ctx.name) if outdir_ctx else args.keep
    outdir.mkdir(parents=True, exist_ok=True)
    # Time a private copy: a `cargo build` elsewhere may replace target/release/tinyq mid-run.
    binary = outdir / "tinyq-under-test"
    shutil.copy2(source_binary, binary)
    baseline_source = args.baseline_binary
    if baseline_source is not None:
        if not baseline_source.exists():
            sys.exit(f"--baseline {baseline_source} does not exist")
        args.baseline_binary = outdir / "tinyq-baseline"
        shutil.copy2(baseline_source, args.baseline_binary)
    tinyq_version = subprocess.run([str(binary), "--version"], capture_output=True,
                                   text=True).stdout.strip()

    result: dict = {
        "bench": "quantize_time",
        "what": "whole-process wall seconds to quantize one FP32 model to INT8 (spawn to exit, "
                "including interpreter start and framework import), on the card's x_calib ("
                + ("tinyq's default calibration and corrections, peers MinMax" if args.tinyq_default
                   else "MinMax calibration") + "); ratios are peer/tinyq (or baseline/tinyq), "
                "> 1 means tinyq is faster",
        "tinyq": {"binary": str(source_binary), "version": tinyq_version,
                  "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                time.gmtime(source_binary.stat().st_mtime)),
                  "command": tinyq_command(args),
                  "baseline": None if baseline_source is None else {
                      "binary": str(baseline_source),
                      "version": subprocess.run([str(args.baseline_binary), "--version"], capture_output=True,
                                                text=True).stdout.strip(),
                      "binary_mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                    time.gmtime(baseline_source.stat().st_mtime))},
                  "RAYON_NUM_THREADS": os.environ.get("RAYON_NUM_THREADS")},
        "peers": peers,
        "settings": {"repeat": args.repeat, "warmup": args.warmup,
                     "ort": {"quant_format": "QDQ", "per_channel": True, "activation": "QInt8",
                             "weight": "QInt8", "calibrate_method": "MinMax",
                             "quant_pre_process": not args.ort_no_preprocess,
                             "calib_batch": args.ort_batch},
                     "tflite_converter": "TFLiteConverter.from_keras_model(load_model(keras file)), "
                                         "Optimize.DEFAULT, representative_dataset 1 sample/step, "
                                         "TFLITE_BUILTINS_INT8, int8 input/output"},
        "machine": {"cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "cpu": cpu_model(), "loadavg_start": loadavg()},
        "models": [],
        "skipped": [],
    }
    if not args.shared.is_dir():
        note(f"shared models folder {args.shared} not found; nothing to measure")
        result["skipped"].append({"model": "*", "reason": f"{args.shared} missing"})
        if outdir_ctx:
            outdir_ctx.cleanup()
        emit(result, args.out)
        return 0

    wanted = [w.strip() for w in args.models.split(",")] if args.models else None
    models, skipped = discover(args.shared, wanted)
    result["skipped"] = skipped
    for sk in skipped:
        note(f"skipping {sk['model']}: {sk['reason']}")
    load = result["machine"]["loadavg_start"]
    if load and load[0] >= result["machine"]["cores"] * 0.75:
        note(f"note: 1-min load average {load[0]} on {result['machine']['cores']} cores; other work "
             "inflates every time below (rounds are interleaved, so ratios suffer less)")

    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quieter TensorFlow; no effect on the work done
    try:
        for m in models:
            note(f"{m['id']}: {args.warmup} warm-up + {args.repeat} timed rounds")
            result["models"].append(bench_model(m, binary, peers, outdir, args, env))
    finally:
        if outdir_ctx:
            outdir_ctx.cleanup()

    rows = result["models"]
    tf_r = [r["ratios"]["tflite_converter_over_tinyq_median"] for r in rows]
    ort_r = [r["ratios"]["ort_over_tinyq_median"] for r in rows]
    aims = [r["aim_10x_vs_tflite_converter"] for r in rows if r["aim_10x_vs_tflite_converter"] is not None]
    result["summary"] = {
        "tflite_converter_over_tinyq_median": {r["model"]: r["ratios"]["tflite_converter_over_tinyq_median"]
                                               for r in rows if r["tflite_converter_s"]},
        "tflite_converter_over_tinyq_geomean": geomean([v for v in tf_r if v]),
        "ort_over_tinyq_median": {r["model"]: r["ratios"]["ort_over_tinyq_median"]
                                  for r in rows if r["ort_quantize_static_s"]},
        "ort_over_tinyq_geomean": geomean([v for v in ort_r if v]),
        "aim_10x_vs_tflite_converter_met": (all(aims) if aims else None),
        "tinyq_baseline_over_tinyq_median": {r["model"]: r["ratios"]["tinyq_baseline_over_tinyq_median"]
                                             for r in rows if r["tinyq_baseline_s"]},
        "tinyq_max_median_s": max((r["tinyq_s"]["median"] for r in rows if r["tinyq_s"]), default=None),
    }
    result["machine"]["loadavg_end"] = loadavg()
    emit(result, args.out)
    return 0


def emit(result: dict, out: Path | None) -> None:
    text = json.dumps(result, indent=1)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        note(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
