"""Int4 files on an emulated Cortex-M4 (QEMU mps2-an386) with the TFLM trees in ../shared/vendor:
`tinyq verify` builds the exported sources with the reference and the CMSIS-NN kernels (whose int4
convolutions read the weights packed), compares every output with tinyq bit for bit and finds
the smallest arena TFLM accepts on the target, which must be the predicted one.

Needs the Debian packages of test_verify_m4.py; skips with the reason when they or ../shared are
missing.
"""

from __future__ import annotations

import json

import pytest

import oracle_lib
from test_verify_m4 import FIXTURE, TREES, need_tools


@pytest.fixture(scope="module")
def int4_models(tmp_path_factory, tinyq_bin, shared_dir):
    out = tmp_path_factory.mktemp("int4_m4")
    models = {}
    sources = {
        "mnist_dscnn": (FIXTURE / "model.onnx", FIXTURE / "mnist_test_200.npz"),
        "kws_dscnn": (shared_dir / "models" / "kws_dscnn" / "model.onnx", shared_dir / "data" / "kws01.npz"),
    }
    for name, (model, data) in sources.items():
        q = out / f"{name}_int4.tflite"
        proc = oracle_lib.run_tinyq(tinyq_bin, "quantize", model, "--calib", data, "--weights", "int4", "-o", q)
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
        models[name] = (q, data)
    return models


@pytest.mark.parametrize("kernels", list(TREES))
@pytest.mark.parametrize("name", ["mnist_dscnn", "kws_dscnn"])
def test_int4_model_on_the_cortex_m4(int4_models, shared_dir, run_tinyq, name, kernels):
    need_tools()
    model, data = int4_models[name]
    proc = run_tinyq("verify", model, "--data", data, "--limit", 5, "--tflm", shared_dir / "vendor" / TREES[kernels],
                     "--kernels", kernels, "--json", timeout=3600)
    assert proc.stdout.strip(), oracle_lib.describe_failure(proc)
    r = json.loads(proc.stdout)
    print(f"\n{name} int4 {kernels}: {r['outputs']['samples']} samples, {r['outputs']['mismatches']} mismatches; "
          f"arena {r['arena_predicted']} predicted / {r['arena_minimum']} needed; flash {r['flash_bytes']}")
    assert r["outputs"]["samples"] == 5 and r["outputs"]["mismatches"] == 0, r["outputs"]
    assert r["arena_minimum"] == r["arena_predicted"] and r["predicted_arena_works"], r
    assert proc.returncode == 0
