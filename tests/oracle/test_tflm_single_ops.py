"""Randomized single-op INT8 models, quantized by tinyq and run by tinyq's integer engine, compared
bit for bit with TensorFlow Lite Micro.

For each op kind (see tflm_lib.KINDS) CASES_PER_KIND seeded cases are generated: a tiny FP32 ONNX
model with random shapes, kernels, strides, dilations, paddings, weights and asymmetric data
ranges (so random input/output scales and zero points). Each is

  1. quantized: `tinyq quantize model.onnx --calib calib.npz -o m.tflite` (int8 I/O; a fifth of
     the conv / depthwise / fully connected cases with `--per-tensor` weight scales),
  2. run by TFLM on int8 inputs quantized from float exactly as TFLite does (and by LiteRT's
     reference kernels, reported only),
  3. run by `tinyq run m.tflite --data eval_q.npz` on the same int8 arrays,

and the int8 outputs must be identical. A clean refusal of `tinyq quantize` (exit 1, `error:`) is
recorded and reported; refusals above MAX_REFUSED_FRACTION of a kind, panics, files TFLM rejects,
failed runs and any differing element fail that kind's test.

Run with `-s` to see the summary line and the failing cases:

    .venv/bin/python -m pytest tests/oracle/test_tflm_single_ops.py -s -q

Environment: TINYQ_TFLM_CASES_PER_KIND (default 100; 19 kinds -> 1,900 cases), TINYQ_TFLM_SEED
(default 20261127; another seed gives another set of cases, for longer local sweeps),
TINYQ_TFLM_KINDS (comma-separated kinds to run, default all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import oracle_lib
import tflm_lib

CASES_PER_KIND = int(os.environ.get("TINYQ_TFLM_CASES_PER_KIND", "100"))
MAX_REFUSED_FRACTION = 0.10
WORKERS = max(1, min(4, os.cpu_count() or 1))
TINYQ_TIMEOUT_S = 120  # per invocation; a guard against a hang, not a timing assertion
TFLM_WORKER = Path(tflm_lib.__file__).resolve()

# statuses that fail a kind's test
FAILING = ("mismatch", "panic", "quantize_failed", "tflm_error", "tflm_crash", "run_failed", "bad_output")


def _tinyq(binary: Path, *args) -> subprocess.CompletedProcess:
    """Run tinyq; a hang becomes a failed process (exit -1) instead of an exception."""
    try:
        return oracle_lib.run_tinyq(binary, *args, timeout=TINYQ_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, -1, "", f"error: timed out after {TINYQ_TIMEOUT_S} s")


def _quantize(binary: Path, case: tflm_lib.Case) -> dict:
    args = ["quantize", case.dir / "model.onnx", "--calib", case.dir / "calib.npz", "-o", case.dir / "m.tflite"]
    if len(case.input_names) > 1:
        args += ["--x", ",".join(case.input_names)]
    args += case.quantize_args
    proc = _tinyq(binary, *args)
    if proc.returncode == 0 and (case.dir / "m.tflite").is_file():
        return {"status": "quantized"}
    msg = oracle_lib.describe_failure(proc)
    if "panicked" in proc.stderr or proc.returncode == 101:
        return {"status": "panic", "error": f"quantize: {msg}"}
    if proc.returncode == 1 and proc.stderr.lstrip().startswith("error:"):
        return {"status": "refused", "error": proc.stderr.strip().splitlines()[0]}
    return {"status": "quantize_failed", "error": f"quantize: {msg}"}


def _run(binary: Path, case: tflm_lib.Case) -> dict:
    out = case.dir / "tinyq.npz"
    proc = _tinyq(binary, "run", case.dir / "m.tflite", "--data", case.dir / "eval_q.npz",
                  "--x", ",".join(case.input_names), "-o", out)
    if proc.returncode != 0:
        status = "panic" if ("panicked" in proc.stderr or proc.returncode == 101) else "run_failed"
        return {"status": status, "error": f"run: {oracle_lib.describe_failure(proc)}"}
    return {"status": "ran"}


def _run_tflm_workers(cases: list[tflm_lib.Case], work: Path) -> dict[str, dict]:
    """TFLM + LiteRT in child processes (WORKERS of them, each a slice of the cases). A case that
    crashes a child is recorded as `tflm_crash` and the child restarted after it."""
    slices = [cases[i::WORKERS] for i in range(WORKERS)]
    results: dict[str, dict] = {}

    def drive(k: int, part: list[tflm_lib.Case]) -> dict[str, dict]:
        manifest = work / f"tflm_manifest_{k}.json"
        manifest.write_text(json.dumps([c.manifest() for c in part]))
        out = work / f"tflm_results_{k}.jsonl"
        for _ in range(len(part) + 1):
            proc = subprocess.run([sys.executable, str(TFLM_WORKER), "--tflm-worker", str(manifest), str(out)],
                                  capture_output=True, text=True, timeout=1800)
            got, crashed = tflm_lib.read_worker_results(out)
            if crashed is None:
                if len(got) < len(part):
                    raise RuntimeError(f"TFLM worker stopped early (exit {proc.returncode}): {proc.stderr[-2000:]}")
                return got
            tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            with out.open("a") as f:
                f.write(json.dumps({"id": crashed, "status": "tflm_crash",
                                    "error": f"TFLM/LiteRT process died (exit {proc.returncode}): {tail[0]}"}) + "\n")
        raise RuntimeError("TFLM worker keeps crashing")

    with ThreadPoolExecutor(WORKERS) as pool:
        for got in pool.map(drive, range(WORKERS), slices):
            results.update(got)
    return results


def _compare(case: tflm_lib.Case) -> dict:
    ref = np.load(case.dir / "tflm.npz")["y"]
    with np.load(case.dir / "tinyq.npz") as z:
        if "y" not in z.files:
            return {"status": "bad_output", "error": f"tinyq output has no `y` (keys {z.files})"}
        got = z["y"]
    if got.dtype != ref.dtype:
        return {"status": "bad_output", "error": f"tinyq y dtype {got.dtype}, TFLM output dtype {ref.dtype}"}
    n = ref.shape[0]
    if got.size != ref.size or got.shape[0] != n:
        return {"status": "bad_output", "error": f"tinyq y shape {got.shape}, TFLM {ref.shape}"}
    got = got.reshape(ref.shape)
    diff = np.argwhere(got != ref)
    if len(diff) == 0:
        return {"status": "ok"}
    first = tuple(int(i) for i in diff[0])
    return {
        "status": "mismatch",
        "error": (f"{len(diff)}/{ref.size} elements differ, max |diff| "
                  f"{int(np.abs(got.astype(np.int32) - ref.astype(np.int32)).max())}; first at "
                  f"(sample, *output index) {first}: tinyq {int(got[first])} vs TFLM {int(ref[first])}"),
    }


# TINYQ_TFLM_KINDS=prelu,tanh runs those kinds only (a local run while working on one op).
SELECTED_KINDS = tuple(k for k in os.environ.get("TINYQ_TFLM_KINDS", ",".join(tflm_lib.KINDS)).split(",") if k)


@pytest.fixture(scope="session")
def tflm_results(tinyq_bin, tmp_path_factory):
    """Generate, quantize and run every case; {case id: record} with status/error/params."""
    work = tmp_path_factory.mktemp("tflm_single_ops")
    cases = [tflm_lib.build_case(kind, i, work) for kind in SELECTED_KINDS for i in range(CASES_PER_KIND)]
    records = {c.id: {"kind": c.kind, "params": c.params, "dir": str(c.dir)} for c in cases}

    with ThreadPoolExecutor(WORKERS) as pool:
        for case, res in zip(cases, pool.map(lambda c: _quantize(tinyq_bin, c), cases)):
            records[case.id].update(res)
    quantized = [c for c in cases if records[c.id]["status"] == "quantized"]

    tflm = _run_tflm_workers(quantized, work) if quantized else {}
    ran_tflm = []
    for c in quantized:
        res = tflm[c.id]
        records[c.id]["litert_max_diff"] = res.get("litert_max_diff")
        records[c.id]["ops"] = res.get("ops")
        if "litert_error" in res:
            records[c.id]["litert_error"] = res["litert_error"]
        if res["status"] == "ok":
            ran_tflm.append(c)
        else:
            records[c.id].update(status=res["status"], error=res.get("error"))

    with ThreadPoolExecutor(WORKERS) as pool:
        for case, res in zip(ran_tflm, pool.map(lambda c: _run(tinyq_bin, c), ran_tflm)):
            records[case.id].update(res)
    for c in ran_tflm:
        if records[c.id]["status"] == "ran":
            records[c.id].update(_compare(c))
    return records


def _describe(case_id: str, rec: dict) -> str:
    return f"{case_id} [{rec['status']}] {rec.get('error', '')}\n    params {json.dumps(rec['params'])}\n    files {rec['dir']}"


@pytest.mark.parametrize("kind", tflm_lib.KINDS)
def test_tflm_bit_exact(kind, tflm_results):
    if kind not in SELECTED_KINDS:
        pytest.skip(f"TINYQ_TFLM_KINDS leaves {kind} out")
    mine = {k: r for k, r in tflm_results.items() if r["kind"] == kind}
    failing = {k: r for k, r in mine.items() if r["status"] in FAILING}
    refused = {k: r for k, r in mine.items() if r["status"] == "refused"}
    lines = [_describe(k, r) for k, r in failing.items()]
    if len(refused) > MAX_REFUSED_FRACTION * len(mine):
        lines.append(f"{len(refused)}/{len(mine)} cases refused by `tinyq quantize`, e.g.:")
        lines += [_describe(k, r) for k, r in list(refused.items())[:5]]
    unexpected = {k: r["status"] for k, r in mine.items() if r["status"] not in FAILING + ("refused", "ok")}
    assert not unexpected, f"cases left in an unfinished state: {unexpected}"
    assert not lines, f"{kind}: {len(failing)}/{len(mine)} failing cases\n" + "\n".join(lines[:40])


def test_tflm_summary(tflm_results):
    recs = tflm_results
    n = len(recs)
    mismatching = sum(r["status"] == "mismatch" for r in recs.values())
    refused = sum(r["status"] == "refused" for r in recs.values())
    other = {s: sum(r["status"] == s for r in recs.values()) for s in FAILING if s != "mismatch"}
    litert = {}
    for kind in tflm_lib.KINDS:
        diffs = [r["litert_max_diff"] for r in recs.values() if r["kind"] == kind and r.get("litert_max_diff") is not None]
        errs = sum(1 for r in recs.values() if r["kind"] == kind and "litert_error" in r)
        litert[kind] = (max(diffs) if diffs else "-") if not errs else f"{max(diffs) if diffs else '-'} ({errs} not run)"
    print()
    print(f"TFLM single-op bit-exactness: {n} cases, {mismatching} mismatching, {refused} refused; "
          f"LiteRT max |diff| per op: " + ", ".join(f"{k} {v}" for k, v in litert.items()))
    other_nonzero = {k: v for k, v in other.items() if v}
    if other_nonzero:
        print(f"  other failures: {other_nonzero}")
    per_kind = []
    for kind in tflm_lib.KINDS:
        mine = [r for r in recs.values() if r["kind"] == kind]
        ok = sum(r["status"] == "ok" for r in mine)
        per_kind.append(f"{kind} {ok}/{len(mine)}")
    print("  bit-exact per op: " + ", ".join(per_kind))
    for kind in tflm_lib.KINDS:
        seen: dict[str, int] = {}
        for r in recs.values():
            if r["kind"] == kind and r.get("ops") is not None:
                key = "+".join(r["ops"]) or "(no op)"
                seen[key] = seen.get(key, 0) + 1
        print(f"  TFLite ops of {kind}: " + ", ".join(f"{k} x{v}" for k, v in sorted(seen.items(), key=lambda kv: -kv[1])))
    failing = [(k, r) for k, r in recs.items() if r["status"] in FAILING]
    for k, r in failing[:30]:
        print("  FAIL " + _describe(k, r).replace("\n", "\n  "))
    if len(failing) > 30:
        print(f"  ... and {len(failing) - 30} more failing cases")
    for k, r in recs.items():
        if r["status"] == "refused":
            print(f"  refused {k}: {r['error']}  params {json.dumps(r['params'])}")
    assert n >= 1000 or {"TINYQ_TFLM_CASES_PER_KIND", "TINYQ_TFLM_KINDS"} & set(os.environ), f"only {n} cases"
