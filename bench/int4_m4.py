"""int4 files on the Cortex-M4 under QEMU, outputs and arena, with both TFLM kernel sets.

Builds `--per-kind` random single-operator models of each kind whose weights may be int4 (conv,
depthwise conv, fully connected; the generators of tests/oracle/tflm_lib.py) and, with `--shared`,
every shared model, and quantizes each with `tinyq quantize --weights int4`. Then, per kernel
set, one `tinyq verify M1 M2 … --data D1 --data D2 … --json` (one runner image for all the
models): every output compared with tinyq bit for bit, each arena bisected on the target
against the prediction.

The depthwise models are also quantized with `--kernels reference` (int4 in every layer, also
where CMSIS-NN's int4 depthwise kernel would read the weights wrongly) and run with CMSIS-NN:
the layers that differ there must be exactly those `tinyq report --kernels cmsis-nn` warns about.

Prints one JSON object: per kernel set the models run, output mismatches, arenas exact / over /
under and the failures; for the caveat check, a confusion table.

Usage: TINYQ_BIN=target/release/tinyq .venv/bin/python bench/int4_m4.py --tflm-ref DIR
       --tflm-cmsis-nn DIR [--per-kind 70] [--seed 8100] [--limit 3] [--shared DIR] [--out DIR]
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


def quantize(binary, model, calib, out, *extra):
    p = tinyq(binary, "quantize", model, "--calib", calib, "-o", out, "--weights", "int4", *extra)
    return {"error": p.stderr.strip()[-300:]} if p.returncode else {"warnings": p.stdout.count("keeps int8 weights")}


def models(binary, out, per_kind, seed, shared):
    os.environ["TINYQ_TFLM_SEED"] = str(seed)
    sys.path.insert(0, str(ROOT / "tests/oracle"))
    import tflm_lib  # noqa: E402  (needs numpy and onnx: run with the oracle venv)

    found = []
    for kind in INT4_KINDS:
        for i in range(per_kind):
            case = tflm_lib.build_case(kind, i, out / "single")
            calib = case.dir / "calib.npz"
            c = {"name": f"{kind}-{i}", "kind": kind, "model": case.dir / "m_int4.tflite", "data": calib,
                 "x": "x_calib" if len(case.input_names) == 1 else ",".join(case.input_names)}
            c.update(quantize(binary, case.dir / "model.onnx", calib, c["model"], *case.quantize_args))
            if kind == "depthwise_conv":
                c["all_int4"] = case.dir / "m_int4_all.tflite"
                r = quantize(binary, case.dir / "model.onnx", calib, c["all_int4"], *case.quantize_args,
                             "--kernels", "reference")
                if "error" in r:
                    del c["all_int4"]
            found.append(c)
    for name, data in SHARED.items() if shared else ():
        q = out / f"{name}_int4.tflite"
        data = shared / "data" / data
        c = {"name": name, "kind": "shared", "model": q, "data": data, "x": ""}
        c.update(quantize(binary, shared / "models" / name / "model.onnx", data, q))
        found.append(c)
    return found


def verify(binary, cases, key, tree, kernels, limit):
    """One multi-model `tinyq verify`: its per-model checks, in the order of `cases`."""
    args = [c[key] for c in cases]
    for c in cases:
        args += ["--data", c["data"]]
    for c in cases:
        args += ["--x", c["x"]]
    p = tinyq(binary, "verify", *args, "--limit", limit, "--tflm", tree, "--kernels", kernels, "--json")
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError:
        sys.exit(f"verify failed: {p.stderr.strip()[-600:]}")


def summary(cases, checks):
    row = {"models": 0, "samples": 0, "mismatches": 0, "arena_exact": 0, "arena_over": 0, "arena_under": 0,
           "failures": []}
    for c, r in zip(cases, checks):
        row["models"] += 1
        o = r.get("outputs") or {"samples": 0, "mismatches": 0}
        row["samples"] += o["samples"]
        row["mismatches"] += o["mismatches"]
        d = None if r["minimum"] is None else r["predicted"] - r["minimum"]
        row["arena_exact" if d == 0 else "arena_over" if d and d > 0 else "arena_under"] += 1
        if o["mismatches"] or d != 0 or r.get("error"):
            row["failures"].append({"model": c["name"], "mismatches": o["mismatches"], "arena_predicted": r["predicted"],
                                    "arena_minimum": r["minimum"], "error": r.get("error")})
    return row


def caveat_check(binary, cases, tree, limit):
    """Depthwise files with int4 everywhere on CMSIS-NN: mismatches against report's warnings."""
    dw = [c for c in cases if "all_int4" in c]
    checks = verify(binary, dw, "all_int4", tree, "cmsis-nn", limit)
    table = {"warned_and_differs": 0, "warned_but_equal": 0, "not_warned_but_differs": 0, "not_warned_and_equal": 0}
    wrong = []
    for c, r in zip(dw, checks):
        rep = tinyq(binary, "report", c["all_int4"], "--kernels", "cmsis-nn").stdout
        warned = "warning: int4 layer" in rep
        differs = bool((r.get("outputs") or {}).get("mismatches"))
        key = ("warned" if warned else "not_warned") + ("_and_differs" if warned and differs else
                                                         "_but_equal" if warned else
                                                         "_but_differs" if differs else "_and_equal")
        table[key] += 1
        if warned != differs:
            wrong.append(c["name"])
    table["models"] = len(dw)
    table["disagreements"] = wrong
    return table


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tflm-ref", required=True)
    ap.add_argument("--tflm-cmsis-nn", required=True)
    ap.add_argument("--per-kind", type=int, default=70)
    ap.add_argument("--seed", type=int, default=8100)
    ap.add_argument("--limit", type=int, default=3)
    ap.add_argument("--shared")
    ap.add_argument("--out")
    a = ap.parse_args()
    binary = os.environ.get("TINYQ_BIN", str(ROOT / "target/release/tinyq"))
    out = Path(a.out or tempfile.mkdtemp(prefix="int4-m4-"))
    out.mkdir(parents=True, exist_ok=True)
    cases = models(binary, out, a.per_kind, a.seed, Path(a.shared) if a.shared else None)
    ok = [c for c in cases if "error" not in c]
    result = {"seed": a.seed, "per_kind": a.per_kind, "limit": a.limit,
              "not_quantized": [{"model": c["name"], "error": c["error"]} for c in cases if "error" in c],
              "layers_kept_int8_for_cmsis_nn": sum(c.get("warnings", 0) for c in ok)}
    for kernels, tree in (("reference", a.tflm_ref), ("cmsis-nn", a.tflm_cmsis_nn)):
        result[kernels] = summary(ok, verify(binary, ok, "model", tree, kernels, a.limit))
    result["cmsis_nn_caveat"] = caveat_check(binary, ok, a.tflm_cmsis_nn, a.limit)
    print(json.dumps(result, default=str, indent=1))


if __name__ == "__main__":
    main()
