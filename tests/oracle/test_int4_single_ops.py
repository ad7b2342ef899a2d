"""Randomized single-op models with int4 weights, run by tinyq's integer engine (fast and reference
kernels), compared bit for bit with TensorFlow Lite Micro.

Each case is one of the int8 single-op oracle's random conv, depthwise conv or fully connected
models (random shapes, kernels, strides, dilations, paddings, fused activations, data ranges;
see tflm_lib), quantized to int8 by `tinyq quantize` (fully connected layers per tensor, the only
int4 form TFLM's kernel takes), then rewritten with int4 weights by `int4_lib.to_int4` (per
channel or per tensor as quantized, range -7..=7 or -8..=7, bias re-quantized), so the file's
int4 packing is TFLite's as written by the schema's own Python code, not by tinyq. TFLM runs it
on int8 inputs quantized as TFLite does; `tinyq run` on the same arrays must give identical int8
outputs with `TINYQ_KERNELS` unset (fast kernels) and `reference`.

Environment: TINYQ_INT4_CASES_PER_KIND (default 70; 3 kinds -> 210 cases).
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import int4_lib
import oracle_lib
import tflm_lib
from test_tflm_single_ops import WORKERS, _compare, _describe, _quantize, _run, _run_tflm_workers

CASES_PER_KIND = int(os.environ.get("TINYQ_INT4_CASES_PER_KIND", "70"))
KINDS = ("conv", "depthwise_conv", "fully_connected")
# Case indices start here so the models differ from the other single-op oracles'.
INDEX_BASE = 7000


def _prepare(binary: Path, case: tflm_lib.Case) -> dict:
    if case.kind == "fully_connected" and "--per-tensor" not in case.quantize_args:
        case.quantize_args = [a for a in case.quantize_args if a != "--per-tensor=dense"] + ["--per-tensor=dense"]
    res = _quantize(binary, case)
    if res["status"] != "quantized":
        return res
    int8 = case.dir / "m8.tflite"
    (case.dir / "m.tflite").rename(int8)
    rng = np.random.default_rng([tflm_lib.BASE_SEED, 44, int(case.id.rsplit("-", 1)[1])])
    chosen = int4_lib.to_int4(int8, case.dir / "m.tflite", rng)
    case.params["int4"] = chosen
    if chosen["layers"] != 1:
        return {"status": "bad_output", "error": f"expected one int4 layer, wrote {chosen}"}
    return {"status": "quantized"}


def _run_reference(binary: Path, case: tflm_lib.Case) -> dict:
    """`tinyq run` with the reference kernels, compared like the default run."""
    args = ["run", case.dir / "m.tflite", "--data", case.dir / "eval_q.npz", "--x", ",".join(case.input_names),
            "-o", case.dir / "tinyq_ref.npz"]
    proc = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True,
                          timeout=oracle_lib.PROCESS_TIMEOUT_S, env={**os.environ, "TINYQ_KERNELS": "reference"})
    if proc.returncode != 0:
        return {"status": "run_failed", "error": f"run (reference): {oracle_lib.describe_failure(proc)}"}
    ref = np.load(case.dir / "tflm.npz")["y"]
    got = np.load(case.dir / "tinyq_ref.npz")["y"].reshape(ref.shape)
    if not np.array_equal(got, ref):
        return {"status": "mismatch", "error": f"reference kernels: {int((got != ref).sum())} elements differ"}
    return {"status": "ok"}


@pytest.fixture(scope="module")
def int4_results(tinyq_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("int4_single_ops")
    cases = [tflm_lib.build_case(k, INDEX_BASE + i, work) for k in KINDS for i in range(CASES_PER_KIND)]
    records = {c.id: {"kind": c.kind, "params": c.params, "dir": str(c.dir)} for c in cases}
    with ThreadPoolExecutor(WORKERS) as pool:
        for case, res in zip(cases, pool.map(lambda c: _prepare(tinyq_bin, c), cases)):
            records[case.id].update(res)
    ready = [c for c in cases if records[c.id]["status"] == "quantized"]
    tflm = _run_tflm_workers(ready, work) if ready else {}
    ran = []
    for c in ready:
        res = tflm[c.id]
        if res["status"] == "ok":
            ran.append(c)
        else:
            records[c.id].update(status=res["status"], error=res.get("error"))
    with ThreadPoolExecutor(WORKERS) as pool:
        for case, res in zip(ran, pool.map(lambda c: _run(tinyq_bin, c), ran)):
            records[case.id].update(res)
    for c in ran:
        if records[c.id]["status"] == "ran":
            records[c.id].update(_compare(c))
    checked = [c for c in ran if records[c.id]["status"] == "ok"]
    with ThreadPoolExecutor(WORKERS) as pool:
        for case, res in zip(checked, pool.map(lambda c: _run_reference(tinyq_bin, c), checked)):
            records[case.id].update(res)
    return records


@pytest.mark.parametrize("kind", KINDS)
def test_int4_layers_match_tflm_bit_for_bit(kind, int4_results):
    mine = {k: r for k, r in int4_results.items() if r["kind"] == kind}
    assert len(mine) == CASES_PER_KIND
    bad = {k: r for k, r in mine.items() if r["status"] != "ok"}
    assert not bad, f"{kind}: {len(bad)}/{len(mine)} cases not bit-exact\n" + "\n".join(
        _describe(k, r) for k, r in list(bad.items())[:30])
    full = sum(r["params"]["int4"]["full_range"] for r in mine.values())
    print(f"\nint4 {kind}: {len(mine)}/{len(mine)} bit-exact with TFLM ({full} using -8..=7)")
    # both weight ranges were exercised
    assert CASES_PER_KIND < 10 or 0 < full < len(mine)


def _edit(src: Path, dst: Path, change) -> None:
    """Copies a model with `change(model, subgraph, int4_weight_op)` applied."""
    import flatbuffers
    from tflite_micro.python.tflite_micro import runtime

    model = runtime.convert_bytearray_to_object(bytearray(src.read_bytes()))
    sg = model.subgraphs[0]
    op = next(o for o in sg.operators if sg.tensors[o.inputs[1]].type == int4_lib.INT4)
    change(model, sg, op)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(bytes(b.Output()))


def _first_case(results: dict, kind: str, pred=lambda r: True) -> Path:
    return next(Path(r["dir"]) for r in results.values() if r["kind"] == kind and r["status"] == "ok" and pred(r))


def test_bad_int4_files_are_refused_naming_the_tensor_or_node(int4_results, run_tinyq, tmp_path):
    conv = _first_case(int4_results, "conv", lambda r: r["params"].get("bias"))
    ev = conv / "eval_q.npz"

    def short_buffer(model, sg, op):
        w = sg.tensors[op.inputs[1]]
        model.buffers[w.buffer].data = model.buffers[w.buffer].data[:-1]

    def int4_bias(model, sg, op):
        b = sg.tensors[op.inputs[2]]
        n = int(np.prod(b.shape))
        model.buffers[b.buffer].data = int4_lib.pack_int4(np.zeros(n, np.int8))
        b.type = int4_lib.INT4

    def int4_input(model, sg, op):
        sg.tensors[op.inputs[0]].type = int4_lib.INT4

    cases = {
        "short": (short_buffer, "needs"),
        "bias": (int4_bias, "int4 is only for the weights"),
        "input": (int4_input, "int4 is only for constant weights"),
    }
    for name, (change, words) in cases.items():
        bad = tmp_path / f"{name}.tflite"
        _edit(conv / "m.tflite", bad, change)
        proc = run_tinyq("run", bad, "--data", ev, "-o", tmp_path / f"{name}.npz")
        assert proc.returncode == 1, (name, proc.stderr)
        err = proc.stderr.strip()
        assert err.startswith("error:") and words in err and "panicked" not in err, (name, err)
        assert not (tmp_path / f"{name}.npz").exists()


def test_per_unit_int4_fully_connected_is_refused_as_tflm_does(run_tinyq, tmp_path):
    """TFLM's FULLY_CONNECTED takes int4 weights per tensor only; tinyq's engine refuses the
    per-unit form with an error naming the node and the weights."""
    case = tflm_lib.build_case("fully_connected", INDEX_BASE + 999, tmp_path)
    res = _quantize(oracle_lib.tinyq_bin(), case)
    assert res["status"] == "quantized", res
    int8 = case.dir / "m8.tflite"
    (case.dir / "m.tflite").rename(int8)
    int4_lib.to_int4(int8, case.dir / "m.tflite", np.random.default_rng(0))
    from tflite_micro.python.tflite_micro import runtime

    m = runtime.convert_bytearray_to_object(bytearray((case.dir / "m.tflite").read_bytes()))
    w = m.subgraphs[0].tensors[m.subgraphs[0].operators[0].inputs[1]]
    if len(w.quantization.scale) < 2:
        pytest.skip("this seed's layer has a single unit")
    x = np.zeros([1, *case.params["x"][1:]], np.int8)
    np.savez(tmp_path / "x.npz", x=x)
    proc = run_tinyq("run", case.dir / "m.tflite", "--data", tmp_path / "x.npz", "-o", tmp_path / "y.npz")
    assert proc.returncode == 1 and "int4 weights" in proc.stderr and "one scale per unit" in proc.stderr, proc.stderr
