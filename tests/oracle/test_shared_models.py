"""The FP32 models of ../shared: tinyq's float engine against the card metrics and onnxruntime.

For every card and every file with role fp32_onnx / fp32_onnx_dynamo:
  * `tinyq eval` reproduces the card's onnxruntime metric (rounded to 3 decimals);
  * `tinyq run` matches onnxruntime on every sample: max|diff| / max|ref| <= 1e-4 per sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import oracle_lib

FP32_ROLES = ("fp32_onnx", "fp32_onnx_dynamo")
PER_SAMPLE_REL_TOL = 1e-4
ORT_CHUNK = 1000


def _collect_cases():
    shared = oracle_lib.shared_dir()
    cases = []
    if shared.is_dir():
        for card_path in sorted(shared.glob("models/*/card.json")):
            card = json.loads(card_path.read_text())
            for file_name, info in sorted(card["files"].items()):
                if info.get("role") in FP32_ROLES:
                    cases.append(
                        pytest.param((card_path, file_name), id=f"{card_path.parent.name}/{file_name}")
                    )
    if not cases:
        reason = f"../shared not present (looked at {shared}; set TINYQ_SHARED)"
        cases.append(pytest.param(None, id="no-shared", marks=pytest.mark.skip(reason=reason)))
    return cases


CASES = _collect_cases()


class Case:
    def __init__(self, card_path: Path, file_name: str):
        self.card = json.loads(card_path.read_text())
        self.dir = card_path.parent
        self.model = self.dir / file_name
        self.file_name = file_name
        self.data = (self.dir / self.card["dataset"]["file"]).resolve()
        self.x_key, self.y_key = self.card["dataset"]["eval_arrays"]
        self.metric = self.card["metric"]
        self.expected = self.card["fp32"][f"{file_name} @ onnxruntime"]


@pytest.fixture
def case(request, shared_dir):
    card_path, file_name = request.param
    return Case(card_path, file_name)


def _ort_reference(model: Path, x: np.ndarray) -> list[np.ndarray]:
    """onnxruntime outputs for every sample of x ([N, ...]), stacked along axis 0."""
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    dynamic_batch = not isinstance(inp.shape[0], int) or inp.shape[0] <= 0
    step = ORT_CHUNK if dynamic_batch else 1
    parts = [sess.run(None, {inp.name: x[i : i + step]}) for i in range(0, len(x), step)]
    return [np.concatenate([p[k] for p in parts], axis=0) for k in range(len(parts[0]))]


def _per_sample_ratio(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    n = ref.shape[0]
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64)).reshape(n, -1).max(axis=1)
    scale = np.abs(ref.astype(np.float64)).reshape(n, -1).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(scale > 0, diff / scale, np.where(diff > 0, np.inf, 0.0))
    return ratio


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_eval_matches_card(case, run_tinyq):
    proc = run_tinyq(
        "eval", case.model, "--data", case.data, "--x", case.x_key, "--y", case.y_key,
        "--metric", case.metric, "--json",
    )
    assert proc.returncode == 0, f"tinyq eval failed: {oracle_lib.describe_failure(proc)}"
    result = json.loads(proc.stdout)
    n_labels = len(oracle_lib.load_npz(case.data)[case.y_key])
    print(f"{case.dir.name}/{case.file_name}: tinyq {case.metric} = {result['value']} "
          f"(card {case.expected})")
    assert result["metric"] == case.metric
    assert result["samples"] == n_labels
    assert round(result["value"], 3) == round(case.expected, 3), (
        f"{case.metric}: tinyq {result['value']} vs card (onnxruntime) {case.expected}"
    )


@pytest.mark.parametrize("case", CASES, indirect=True)
def test_run_matches_onnxruntime_every_sample(case, run_tinyq, tmp_path):
    x = oracle_lib.load_npz(case.data)[case.x_key]
    out = tmp_path / "out.npz"
    proc = run_tinyq("run", case.model, "--data", case.data, "--x", case.x_key, "-o", out)
    assert proc.returncode == 0, f"tinyq run failed: {oracle_lib.describe_failure(proc)}"

    refs = _ort_reference(case.model, x)
    got_all = oracle_lib.output_arrays(oracle_lib.load_npz(out), len(refs))
    for k, (got, ref) in enumerate(zip(got_all, refs)):
        key = "y" if k == 0 else f"y_{k}"
        assert got is not None, f"output {k} ({key}) missing from {out.name}"
        assert got.dtype == np.float32, f"{key}: dtype {got.dtype}, expected float32"
        assert got.shape == ref.shape, f"{key}: shape {got.shape}, onnxruntime {ref.shape}"
        ratio = _per_sample_ratio(got, ref)
        worst = int(np.argmax(ratio))
        summary = (f"{case.dir.name}/{case.file_name} {key}: worst per-sample max|diff|/max|ref| "
                   f"= {ratio[worst]:.3g} at sample {worst} of {len(ratio)}; "
                   f"{int(np.sum(ratio > PER_SAMPLE_REL_TOL))} samples above {PER_SAMPLE_REL_TOL}")
        print(summary)
        assert ratio[worst] <= PER_SAMPLE_REL_TOL, summary
