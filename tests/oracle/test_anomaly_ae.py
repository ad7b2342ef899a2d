"""The dense autoencoder anomaly-detection fixture (fixtures/anomaly_ae/make.py: 640-wide windows,
dense 640-64-16-64-640, anomaly score = mean squared reconstruction error, scored by AUC on 400
normal and 400 anomalous windows). Runs anywhere: the script builds model and data (numpy, onnx).

* The default `tinyq quantize` keeps the INT8 AUC within 0.01 of FP32 (per-unit dense weights and
  the automatic calibration); the file runs bit-exactly in TFLM.
* Distillation of this regression model picks MSE and keeps or improves the PTQ AUC.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import oracle_lib
from test_train_cli import assert_tflm_bit_exact

MAKE = oracle_lib.REPO / "fixtures" / "anomaly_ae" / "make.py"


@pytest.fixture(scope="module")
def ae(tmp_path_factory):
    out = tmp_path_factory.mktemp("anomaly_ae")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(MAKE), str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def auc(run_tinyq, model, data) -> float:
    proc = run_tinyq("eval", model, "--data", data, "--metric", "auc", "--json")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return json.loads(proc.stdout)["value"]


def test_default_int8_auc_is_within_a_hundredth_of_fp32_and_tflm_exact(run_tinyq, ae):
    model, data = ae / "model.onnx", ae / "data.npz"
    fp32 = auc(run_tinyq, model, data)
    results = {}
    for name, flags in (("default", ()), ("per-tensor dense", ("--per-tensor=dense",)),
                        ("minmax, per-tensor dense", ("--calibration", "minmax", "--per-tensor=dense"))):
        out = ae / f"{name.replace(' ', '_').replace(',', '')}.tflite"
        proc = run_tinyq("quantize", model, "--calib", data, "-o", out, *flags)
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
        results[name] = (out, auc(run_tinyq, out, data))
    print(f"anomaly AE AUC: FP32 {fp32:.4f}; " + "; ".join(f"{k} {v[1]:.4f}" for k, v in results.items()))
    assert fp32 > 0.85, "the fixture separates normal from anomalous windows"
    assert abs(results["default"][1] - fp32) <= 0.01
    x = np.load(data)["x"]
    assert_tflm_bit_exact(run_tinyq, results["default"][0], x, ae)


def test_distillation_of_the_autoencoder_keeps_the_ptq_auc(run_tinyq, ae):
    model, data = ae / "model.onnx", ae / "data.npz"
    out = ae / "kd.tflite"
    proc = run_tinyq("train", model, "--data", data, "--x", "x_train", "--distill", "--calib", data, "--val", data,
                     "--metric", "auc", "--epochs", "1", "--lr", "1e-4", "-o", out, "--json", timeout=900)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    r = json.loads(proc.stdout)["report"]
    kd = auc(run_tinyq, out, data)
    print(f"anomaly AE distilled: loss {r['loss']} ({r['loss_reason']}); AUC PTQ {r['ptq_val']:.4f} → {kd:.4f}")
    assert r["loss"] == "mse"
    assert kd >= r["ptq_val"] - 1e-12
