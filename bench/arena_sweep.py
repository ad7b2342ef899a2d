"""tinyq's arena prediction against the arena TFLM really needs, on random graphs.

Generates random float ONNX graphs (bench/random_graphs.py), quantizes each with tinyq (random
per-tensor / per-channel weights, int8 or float I/O, some layers int16, some float), then
- on the emulated Cortex-M4 (32-bit), for each TFLM tree given: `tinyq verify --arena-only`
  (the smallest arena AllocateTensors accepts, found by bisection on the target);
- on this host (64-bit), unless --no-host: the tflite-micro Python interpreter, probing the
  prediction and one byte less in separate processes (bisecting further only when they disagree
  with the prediction being the minimum).
Prints one JSON object: per model and target the predicted and measured sizes, and the totals
("refused": files TFLM's kernels reject at any arena size, e.g. an int8 CONCATENATION whose
inputs do not share the output's scale; they have no arena to compare).

- on this host (64-bit) with --host-native DIR: TFLM's sources in DIR built natively
  (bench/host_tflm.py), against `tinyq report --pointer-width 64 --tflm-build firmware`.
With --single-ops N, N single-operator models of each kind of tests/oracle/tflm_lib.py are added
(random shapes, per-tensor and per-channel weights, every operator tinyq writes), and of the conv,
depthwise conv and fully connected kinds each also with --weights int4 (TFLM's reference kernels
unpack int4 weights into an arena buffer, CMSIS-NN's read them packed). With --int4 every random
graph is also quantized with --weights int4.

Usage: python bench/arena_sweep.py --count 300 --seed 0 --tflm-ref DIR --tflm-cmsis-nn DIR
       [--host-native DIR] [--single-ops N] [--int4] [--no-host] [--out DIR]   (TINYQ_BIN selects the binary)
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import random_graphs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "crates/arena/tests"))
import tflm_min_arena  # noqa: E402  (the host probe, shared with the arena's own test)
import host_tflm  # noqa: E402


def host_fits(model, size):
    return tflm_min_arena.probe(str(model), size)[0]


def host_minimum(model, predicted):
    """The smallest arena the host interpreter accepts, starting at the prediction."""
    if host_fits(model, predicted):
        if not host_fits(model, predicted - 1):
            return predicted
        hi, lo = predicted - 1, max(predicted // 2, 1)
        while host_fits(model, lo) and lo > 64:
            hi, lo = lo, lo // 2
    else:
        lo, hi = predicted, predicted * 2
        while not host_fits(model, hi):
            if hi > 64 << 20:
                return None  # the host interpreter refuses the model at any size
            lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if host_fits(model, mid):
            hi = mid
        else:
            lo = mid
    return hi


def tinyq(binary, *args):
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True)


def single_op_models(binary, out, per_kind, seed, rejected):
    """`per_kind` models of each single-operator kind the TFLM conformance test builds (with
    `seed` as its base seed)."""
    if per_kind <= 0:
        return []
    os.environ["TINYQ_TFLM_SEED"] = str(seed)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests/oracle"))
    import tflm_lib  # noqa: E402  (needs numpy and onnx: run with the oracle venv)

    models = []
    for kind in tflm_lib.BUILDERS:
        for i in range(per_kind):
            case = tflm_lib.build_case(kind, i, out / "single")
            q = case.dir / "m.tflite"
            args = ["quantize", case.dir / "model.onnx", "--calib", case.dir / "calib.npz", "-o", q]
            if len(case.input_names) > 1:
                args += ["--x", ",".join(case.input_names)]
            p = tinyq(binary, *args, *case.quantize_args)
            if p.returncode != 0:
                rejected.append({"case": case.dir.name, "error": p.stderr.strip()[-200:]})
                continue
            models.append({"model": str(q), "flags": [kind, *case.quantize_args]})
            if kind in INT4_KINDS:
                q4 = case.dir / "m_int4.tflite"
                p = tinyq(binary, "quantize", case.dir / "model.onnx", "--calib", case.dir / "calib.npz", "-o", q4,
                          *case.quantize_args, "--weights", "int4")
                if p.returncode != 0:
                    rejected.append({"case": case.dir.name, "int4": True, "error": p.stderr.strip()[-200:]})
                    continue
                models.append({"model": str(q4), "flags": [kind, *case.quantize_args, "--weights", "int4"]})
    return models


# The single-operator kinds whose weights may be int4; --single-ops adds an int4 model of each.
INT4_KINDS = ("conv", "depthwise_conv", "fully_connected")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tflm-ref")
    ap.add_argument("--tflm-cmsis-nn")
    ap.add_argument("--no-host", action="store_true", help="skip the tflite-micro Python interpreter")
    ap.add_argument("--host-native", help="a TFLM tree (reference kernels) to build for this host")
    ap.add_argument("--single-ops", type=int, default=0, help="single-operator models per kind")
    ap.add_argument("--int4", action="store_true", help="each random graph also with --weights int4")
    ap.add_argument("--out", default="arena-sweep")
    a = ap.parse_args()
    binary = os.environ.get("TINYQ_BIN", "target/release/tinyq")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    models, rejected = [], []
    for seed in range(a.seed, a.seed + a.count):
        flags = random_graphs.make(seed, out)
        q = out / f"g{seed}.tflite"
        p = tinyq(binary, "quantize", out / f"g{seed}.onnx", "--calib", out / f"g{seed}.npz", "-o", q, *flags)
        if p.returncode != 0:
            rejected.append({"seed": seed, "flags": flags, "error": p.stderr.strip()[-200:]})
            continue
        models.append({"model": str(q), "flags": flags})
        if a.int4:
            q4 = out / f"g{seed}_int4.tflite"
            p = tinyq(binary, "quantize", out / f"g{seed}.onnx", "--calib", out / f"g{seed}.npz", "-o", q4, *flags,
                      "--weights", "int4")
            if p.returncode != 0:
                rejected.append({"seed": seed, "flags": [*flags, "--weights", "int4"], "error": p.stderr.strip()[-200:]})
                continue
            models.append({"model": str(q4), "flags": [*flags, "--weights", "int4"]})
    models += single_op_models(binary, out, a.single_ops, a.seed, rejected)
    results = {m["model"]: dict(m) for m in models}
    for kernels, tree in (("reference", a.tflm_ref), ("cmsis-nn", a.tflm_cmsis_nn)):
        if not tree:
            continue
        p = tinyq(binary, "verify", "--arena-only", "--json", "--tflm", tree, "--kernels", kernels,
                  *[m["model"] for m in models])
        for c in json.loads(p.stdout):
            results[c["model"]][f"m4_{kernels}"] = {"predicted": c["predicted"], "measured": c["minimum"],
                                                    "predicted_works": c["predicted_works"], "error": c["error"]}
    if a.host_native:
        exe = host_tflm.build(Path(a.host_native))
        for m in models:
            r = tinyq(binary, "report", m["model"], "--pointer-width", "64", "--tflm-build", "firmware", "--json")
            got = host_tflm.minimum(exe, m["model"])
            results[m["model"]]["host64_native"] = {"predicted": json.loads(r.stdout)["arena_bytes"],
                                                    "measured": got["min_arena"], "error": got.get("error")}
    if not a.no_host:
        for m in models:
            r = tinyq(binary, "report", m["model"], "--pointer-width", "64", "--json")
            predicted = json.loads(r.stdout)["arena_bytes"]
            results[m["model"]]["host64"] = {"predicted": predicted, "measured": host_minimum(m["model"], predicted)}
    totals = {}
    for r in results.values():
        for key in ("m4_reference", "m4_cmsis-nn", "host64_native", "host64"):
            if key not in r:
                continue
            t = totals.setdefault(key, {"models": 0, "exact": 0, "over": 0, "under": 0, "refused": 0, "errors": 0, "max_over": 0})
            t["models"] += 1
            pred, meas = r[key]["predicted"], r[key]["measured"]
            if meas is None and "fails even with the whole" in (r[key].get("error") or ""):
                t["refused"] += 1  # TFLM's Prepare rejects the model at any arena size
            elif meas is None:
                t["errors"] += 1
            elif pred == meas:
                t["exact"] += 1
            elif pred > meas:
                t["over"] += 1
                t["max_over"] = max(t["max_over"], pred - meas)
            else:
                t["under"] += 1
    print(json.dumps({"graphs": a.count, "quantized": len(models), "rejected": rejected, "totals": totals,
                      "models": list(results.values())}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
