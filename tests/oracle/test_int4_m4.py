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


# CMSIS-NN's int4 depthwise kernel on its generic path (any depth multiplier, dilation or batch
# above 1) follows the packed nibbles with running counters when the channel count is odd; they
# go wrong where SAME padding cuts a window and whenever the multiplier is above 1. Each case:
# channels, multiplier, dilation, ONNX auto_pad, and whether CMSIS-NN reads the int4 weights right.
CAVEAT_CASES = [
    (5, 1, 2, "SAME_UPPER", False),
    (7, 2, 1, "VALID", False),
    (3, 3, 1, "SAME_UPPER", False),
    (5, 1, 2, "VALID", True),
    (6, 2, 2, "SAME_UPPER", True),
    (5, 1, 1, "SAME_UPPER", True),
    (7, 2, 1, [0, 1, 2, 3], False),  # explicit pads: a PAD, then a VALID layer on the padded input
]


def _depthwise(path, channels, multiplier, dilation, auto_pad, seed):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (channels * multiplier, 1, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.1, channels * multiplier).astype(np.float32)
    pads = {"pads": auto_pad} if isinstance(auto_pad, list) else {"auto_pad": auto_pad}
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=channels, kernel_shape=[3, 3],
                            dilations=[dilation, dilation], **pads)
    graph = helper.make_graph([node], "dw", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path / "model.onnx")
    np.savez(path / "calib.npz", x_calib=rng.uniform(-1, 2, (16, 1, channels, 9, 9)).astype(np.float32))


def test_int4_depthwise_layers_cmsis_nn_reads_wrongly_stay_int8(tmp_path, shared_dir, run_tinyq):
    need_tools()
    files = []  # (case, file, data, int4 everywhere)
    for i, (c, m, d, pad, right) in enumerate(CAVEAT_CASES):
        case = tmp_path / f"dw{i}"
        case.mkdir()
        _depthwise(case, c, m, d, pad, seed=i)
        for everywhere in (False, True):
            q = case / ("all.tflite" if everywhere else "portable.tflite")
            extra = ["--kernels", "reference"] if everywhere else []
            proc = run_tinyq("quantize", case / "model.onnx", "--calib", case / "calib.npz", "--weights", "int4", "-o", q,
                             *extra)
            assert proc.returncode == 0, oracle_lib.describe_failure(proc)
            kept = "keeps int8 weights" in proc.stdout
            assert kept == (not right and not everywhere), (CAVEAT_CASES[i], everywhere, proc.stdout)
            report = run_tinyq("report", q, "--kernels", "cmsis-nn")
            assert report.returncode == 0, oracle_lib.describe_failure(report)
            int4 = "int4 weights: 1 layers" in report.stdout
            assert int4 == (right or everywhere), report.stdout
            assert ("warning: int4 layer" in report.stdout) == (everywhere and not right), report.stdout
            files.append((CAVEAT_CASES[i], q, case / "calib.npz", everywhere))
    for kernels in TREES:
        args = [f[1] for f in files] + [a for f in files for a in ("--data", f[2])]
        proc = run_tinyq("verify", *args, "--x", "x_calib", "--limit", 4, "--tflm", shared_dir / "vendor" / TREES[kernels],
                         "--kernels", kernels, "--json", timeout=3600)
        assert proc.stdout.strip(), oracle_lib.describe_failure(proc)
        checks = json.loads(proc.stdout)
        assert len(checks) == len(files)
        for (case, q, _, everywhere), r in zip(files, checks):
            differs = r["outputs"]["mismatches"] > 0
            # Only CMSIS-NN, only int4 everywhere, only where the layer is read wrongly, differs.
            assert differs == (kernels == "cmsis-nn" and everywhere and not case[4]), (kernels, case, q.name, r)
            assert r["outputs"]["samples"] == 4 and r["minimum"] == r["predicted"] and r["predicted_works"], r
        assert proc.returncode == (1 if kernels == "cmsis-nn" else 0), proc.stderr


def test_verify_of_several_models_wants_data_once_or_once_each(int4_models, run_tinyq, tmp_path):
    (a, data), (b, _) = int4_models["mnist_dscnn"], int4_models["kws_dscnn"]
    proc = run_tinyq("verify", a, b, a, "--data", data, "--data", data, "--tflm", tmp_path)
    assert proc.returncode == 1 and "panicked" not in proc.stderr
    assert "--data is given 2 times for 3 models" in proc.stderr, proc.stderr
