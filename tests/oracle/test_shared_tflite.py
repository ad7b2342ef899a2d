"""The FP32 .tflite models of ../shared (Keras-converted, role fp32_tflite): read into the IR and
run by tinyq's float engine, against the card's LiteRT metric and LiteRT's outputs per sample."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter, OpResolverType

import oracle_lib

PER_SAMPLE_REL_TOL = 1e-4


def _cases():
    shared = oracle_lib.shared_dir()
    cases = [
        pytest.param((card_path, name), id=f"{card_path.parent.name}/{name}")
        for card_path in sorted(shared.glob("models/*/card.json"))
        for name, info in sorted(json.loads(card_path.read_text())["files"].items())
        if info.get("role") == "fp32_tflite"
    ]
    return cases or [pytest.param(None, marks=pytest.mark.skip(reason="../shared not present"))]


@pytest.mark.parametrize("case", _cases())
def test_fp32_tflite_matches_litert(case, run_tinyq, tmp_path):
    card_path, name = case
    card = json.loads(card_path.read_text())
    model = card_path.parent / name
    data = (card_path.parent / card["dataset"]["file"]).resolve()
    x_key, y_key = card["dataset"]["eval_arrays"]

    proc = run_tinyq("eval", model, "--data", data, "--x", x_key, "--y", y_key, "--metric", card["metric"], "--json")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    value = json.loads(proc.stdout)["value"]
    expected = card["fp32"][f"{name} @ litert_builtin"]
    assert round(value, 3) == round(expected, 3), f"tinyq {value} vs LiteRT {expected}"

    out = tmp_path / "y.npz"
    proc = run_tinyq("run", model, "--data", data, "--x", x_key, "-o", out)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    got = np.load(out)["y"]
    it = Interpreter(model_path=str(model), experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    x = np.load(data)[x_key].astype(np.float32)
    worst = 0.0
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i : i + 1].reshape(inp["shape"]))
        it.invoke()
        ref = it.get_tensor(outp["index"]).reshape(got[i].shape)
        worst = max(worst, float(np.abs(got[i] - ref).max() / max(np.abs(ref).max(), 1e-12)))
    print(f"{card_path.parent.name}/{name}: {value} (LiteRT {expected}), worst per-sample ratio {worst:.2e}")
    assert worst <= PER_SAMPLE_REL_TOL
