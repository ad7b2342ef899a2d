"""`tinyq train` (quantization-aware training).

Anywhere (fixtures): training runs, the same seed gives the same file whatever the thread count,
the file runs bit-exactly in TFLM, `--save-fp32` writes an ONNX model onnxruntime runs, bad flags
are refused without output.

Where ../shared exists: on a model where PTQ loses more than 1 point of top-1 (the shared MNIST
depthwise CNN with one channel of its first layer scaled ×16 and the next depthwise layer's by
1/16, with ReLU instead of ReLU6 there: the same function, a 16× too wide activation range), QAT
brings INT8 top-1 within 0.3 points of FP32 and label-free distillation recovers at least half of
the loss; on every shared model QAT's INT8 metric is at least PTQ's.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper
from tflite_micro.python.tflite_micro import runtime

import oracle_lib
from tflm_lib import quantize_like_tflite

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "mnist_dscnn"


def run_env(tinyq_bin, *args, threads: int | None = None, timeout=900) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if threads:
        env["RAYON_NUM_THREADS"] = str(threads)
    return subprocess.run([str(tinyq_bin), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return proc


def evaluate(run_tinyq, model: Path, data: Path) -> float:
    return json.loads(ok(run_tinyq("eval", model, "--data", data, "--json")).stdout)["value"]


def assert_tflm_bit_exact(run_tinyq, model: Path, x: np.ndarray, tmp: Path):
    """TFLM's int8 outputs on every sample of `x` equal `tinyq run` on the same file."""
    tflm = runtime.Interpreter.from_bytes(model.read_bytes())
    inp = tflm.get_input_details(0)
    qi = inp["quantization_parameters"]
    xq = quantize_like_tflite(x, qi["scales"][0], qi["zero_points"][0]).reshape((len(x), *inp["shape"][1:]))
    np.savez(tmp / "xq.npz", x=xq)
    ok(run_tinyq("run", model, "--data", tmp / "xq.npz", "-o", tmp / "yq.npz"))
    ours = np.load(tmp / "yq.npz")["y"].reshape(len(x), -1)
    theirs = np.empty_like(ours)
    for i in range(len(xq)):
        tflm.set_input(xq[i : i + 1], 0)
        tflm.invoke()
        theirs[i] = tflm.get_output(0).reshape(-1)
    np.testing.assert_array_equal(ours, theirs)


# ---------------------------------------------------------------- anywhere: the in-repo fixtures


def train_fixture(tinyq_bin, out: Path, seed: int, threads: int, *extra) -> dict:
    proc = run_env(
        tinyq_bin, "train", FIXTURE / "model.onnx", "--data", FIXTURE / "mnist_test_200.npz", "--epochs", "2",
        "--batch-size", "16", "--lr", "1e-3", "--seed", seed, "-o", out, "--json", *extra, threads=threads,
    )
    return json.loads(ok(proc).stdout)


def test_training_is_deterministic_and_exports_a_tflm_exact_file(tinyq_bin, run_tinyq, tmp_path):
    a = train_fixture(tinyq_bin, tmp_path / "a.tflite", 3, 1, "--save-fp32", tmp_path / "tuned.onnx")
    train_fixture(tinyq_bin, tmp_path / "b.tflite", 3, 2)
    train_fixture(tinyq_bin, tmp_path / "c.tflite", 4, 2)
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes(), "same seed, 1 vs 2 threads"
    assert (tmp_path / "a.tflite").read_bytes() != (tmp_path / "c.tflite").read_bytes(), "another seed trains differently"
    epochs = a["report"]["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all(e["samples_per_second"] > 0 and np.isfinite(e["loss"]) for e in epochs)
    assert a["report"]["loss"] == "cross-entropy" and a["mode"] == "labels"

    x = np.load(FIXTURE / "mnist_test_200.npz")["x"]
    assert_tflm_bit_exact(run_tinyq, tmp_path / "a.tflite", x, tmp_path)

    # The fine-tuned float model: valid ONNX, runs in onnxruntime, still classifies, and differs
    # from the original (the weights were trained).
    tuned = onnx.load(tmp_path / "tuned.onnx")
    onnx.checker.check_model(tuned, full_check=True)
    y = np.load(FIXTURE / "mnist_test_200.npz")["y"]
    tuned_out = np.concatenate([ort.InferenceSession(str(tmp_path / "tuned.onnx")).run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    orig_out = np.concatenate([ort.InferenceSession(str(FIXTURE / "model.onnx")).run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    assert (tuned_out.argmax(1) == y).mean() >= 0.9
    assert np.abs(tuned_out - orig_out).max() > 1e-3


def test_distillation_needs_no_labels(tinyq_bin, tmp_path):
    x = np.load(FIXTURE / "mnist_test_200.npz")["x"]
    np.savez(tmp_path / "unlabelled.npz", x=x)
    r = train_fixture(tinyq_bin, tmp_path / "kd.tflite", 1, 2, "--distill", "--ranges", "ema", "--optimizer", "sgd")
    assert r["mode"] == "distill" and r["report"]["loss"] == "kl"
    proc = run_env(tinyq_bin, "train", FIXTURE / "model.onnx", "--data", tmp_path / "unlabelled.npz", "--epochs", "1", "-o", tmp_path / "x.tflite")
    assert proc.returncode == 1 and "--distill" in proc.stderr and not (tmp_path / "x.tflite").exists()
    ok(run_env(tinyq_bin, "train", FIXTURE / "model.onnx", "--data", tmp_path / "unlabelled.npz", "--epochs", "1", "--distill", "-o", tmp_path / "x.tflite"))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--epochs", "0"], "--epochs"),
        (["--epochs", "1", "--schedule", "linear"], "--schedule"),
        (["--epochs", "1", "--ranges", "minmax"], "--ranges"),
        (["--epochs", "1", "--optimizer", "lbfgs"], "--optimizer"),
        (["--epochs", "1", "--lr=-1"], "--lr"),
        (["--epochs", "1", "--labels", "nope"], "nope"),
        (["--epochs", "1", "--x", "nope"], "nope"),
        (["--epochs", "1", "--save-fp32", "tuned.tflite"], "--save-fp32"),
        (["--epochs", "1", "--distill", "--labels", "y"], "--labels"),
    ],
)
def test_bad_flags_are_refused_without_output(tinyq_bin, tmp_path, flags, message):
    out = tmp_path / "out.tflite"
    flags = [str(tmp_path / f) if f.endswith((".tflite", ".onnx")) else f for f in flags]
    proc = run_env(tinyq_bin, "train", FIXTURE / "model.onnx", "--data", FIXTURE / "mnist_test_200.npz", "-o", out, *flags)
    assert proc.returncode != 0 and "panicked" not in proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not out.exists()


def test_the_model_file_is_never_overwritten(tinyq_bin, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes((FIXTURE / "model.onnx").read_bytes())
    before = model.read_bytes()
    proc = run_env(tinyq_bin, "train", model, "--data", FIXTURE / "mnist_test_200.npz", "--epochs", "1", "-o", tmp_path / "q.tflite", "--save-fp32", model)
    assert proc.returncode == 1 and "overwrite" in proc.stderr
    assert model.read_bytes() == before and not (tmp_path / "q.tflite").exists()


# ---------------------------------------------------------------- where ../shared exists


def _idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(raw[3])]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * raw[3]).reshape(dims)


@pytest.fixture(scope="module")
def mnist_train(shared_dir, tmp_path_factory) -> tuple[Path, Path]:
    """MNIST training images with the models' preprocessing: 10,000 to train on and the last
    2,000 as a held-out validation set (the test set stays for the final evaluation)."""
    root = tmp_path_factory.mktemp("mnist")
    images = _idx(shared_dir / "data/mnist_idx/train-images-idx3-ubyte.gz")
    labels = _idx(shared_dir / "data/mnist_idx/train-labels-idx1-ubyte.gz").astype(np.int64)
    x = (((images.astype(np.float32) / 255.0) - 0.1307) / 0.3081)[:, None]
    np.savez(root / "train.npz", x=x[:10000], y=labels[:10000])
    np.savez(root / "val.npz", x=x[-2000:], y=labels[-2000:])
    return root / "train.npz", root / "val.npz"


def planted_dscnn(shared_dir: Path, out: Path, alpha: float = 16.0, channel: int = 5):
    m = onnx.load(shared_dir / "models/mnist_dscnn_torch/model.onnx")
    inits = {i.name: i for i in m.graph.initializer}

    def scale(name, factor):
        a = numpy_helper.to_array(inits[name]).copy()
        a[channel] *= factor
        inits[name].CopyFrom(numpy_helper.from_array(a, name))

    # The first conv's output channel ×alpha, the depthwise weights reading it ×1/alpha; with a
    # plain ReLU between them (positively homogeneous) the network computes the same function.
    scale("onnx::Conv_62", alpha)
    scale("onnx::Conv_63", alpha)
    scale("onnx::Conv_65", 1.0 / alpha)
    nodes = [
        helper.make_node("Relu", [n.input[0]], [n.output[0]], name=n.name) if n.op_type == "Clip" and n.input[0] == "/net/net.0/Conv_output_0" else n
        for n in m.graph.node
    ]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    onnx.save(m, out)


def test_qat_recovers_what_ptq_loses(shared_dir, mnist_train, run_tinyq, tmp_path):
    model, test = tmp_path / "planted.onnx", shared_dir / "data/mnist.npz"
    planted_dscnn(shared_dir, model)
    train, val = mnist_train
    fp32 = evaluate(run_tinyq, model, test)
    # Plain PTQ loses on the planted channel; the default's cross-layer equalization (kept because
    # it lowers the output error on the calibration set) undoes the planting.
    ok(run_tinyq("quantize", model, "--calib", test, "--no-corrections", "-o", tmp_path / "ptq.tflite"))
    ptq = evaluate(run_tinyq, tmp_path / "ptq.tflite", test)
    ok(run_tinyq("quantize", model, "--calib", test, "-o", tmp_path / "default.tflite"))
    default = evaluate(run_tinyq, tmp_path / "default.tflite", test)
    # Calibration for QAT: the same 500 training images PTQ used (mnist.npz's x_calib).
    common = ["--epochs", "1", "--calib", test, "--seed", "1"]
    ok(run_tinyq("train", model, "--data", train, "--val", val, *common, "-o", tmp_path / "qat.tflite", timeout=1800))
    qat = evaluate(run_tinyq, tmp_path / "qat.tflite", test)
    ok(run_tinyq("train", model, "--data", train, "--distill", *common, "-o", tmp_path / "kd.tflite", timeout=1800))
    kd = evaluate(run_tinyq, tmp_path / "kd.tflite", test)
    print(f"planted mnist_dscnn, MNIST test top-1: FP32 {fp32:.4f}, PTQ {ptq:.4f} (default, equalized: {default:.4f}), "
          f"QAT {qat:.4f}, distilled without labels {kd:.4f}")
    assert fp32 - ptq >= 0.01, "the planted model must make plain PTQ lose at least 1 point"
    assert fp32 - default <= 0.003
    assert fp32 - qat <= 0.003
    assert kd - ptq >= 0.5 * (fp32 - ptq)
    x = np.load(test)["x"][:1000]
    assert_tflm_bit_exact(run_tinyq, tmp_path / "qat.tflite", x, tmp_path)


def _shared_sources():
    shared = oracle_lib.shared_dir()
    cards = sorted(shared.glob("models/*/card.json"))
    return [pytest.param(c, id=c.parent.name) for c in cards] or [pytest.param(None, marks=pytest.mark.skip(reason="../shared not present"))]


@pytest.mark.parametrize("card_path", _shared_sources())
def test_qat_is_never_below_ptq_on_shared_models(card_path, shared_dir, mnist_train, run_tinyq, tmp_path):
    card = json.loads(card_path.read_text())
    model = card_path.parent / "model.onnx"
    data = (card_path.parent / card["dataset"]["file"]).resolve()
    x_key, y_key = card["dataset"]["eval_arrays"]
    ok(run_tinyq("quantize", model, "--calib", data, "-o", tmp_path / "ptq.tflite"))
    ptq = json.loads(ok(run_tinyq("eval", tmp_path / "ptq.tflite", "--data", data, "--x", x_key, "--y", y_key, "--json")).stdout)["value"]
    if data.name == "mnist.npz":
        # Labelled MNIST training images, validated on held-out training images.
        train, val = mnist_train
        flags = ["--data", train, "--limit", "3000", "--val", val]
    else:
        # Only the evaluation set is labelled: distil on the calibration inputs and select the
        # epoch on the evaluation set.
        flags = ["--data", data, "--x", "x_calib", "--distill", "--val", data, "--val-x", x_key, "--val-y", y_key]
    r = json.loads(ok(run_tinyq("train", model, *flags, "--calib", data, "--epochs", "1", "-o", tmp_path / "qat.tflite", "--json", timeout=1800)).stdout)
    qat = json.loads(ok(run_tinyq("eval", tmp_path / "qat.tflite", "--data", data, "--x", x_key, "--y", y_key, "--json")).stdout)["value"]
    rep = r["report"]
    print(f"{card_path.parent.name}: {card['metric']} PTQ {ptq:.4f}, QAT {qat:.4f} (validation: PTQ {rep['ptq_val']:.4f}, best {rep['best_val']:.4f} at epoch {rep['best_epoch']}; {rep['epochs'][0]['samples_per_second']:.0f} samples/s)")
    if card["metric"] == "rmse":
        assert qat <= ptq
    else:
        assert qat >= ptq


def test_distillation_of_a_regression_uses_mse_and_keeps_the_ptq_metric(run_tinyq, tmp_path):
    """hello_world (one output value, no softmax): distillation picks MSE, says so, and the
    written file's RMSE is no worse than plain PTQ's on the same set; --loss kl is taken at its
    word."""
    sine = REPO / "fixtures" / "hello_world"
    model, data = sine / "model.onnx", sine / "sine.npz"
    ok(run_tinyq("quantize", model, "--calib", data, "-o", tmp_path / "ptq.tflite"))
    ptq = json.loads(ok(run_tinyq("eval", tmp_path / "ptq.tflite", "--data", data, "--json")).stdout)["value"]
    flags = ["--data", data, "--x", "x_calib", "--distill", "--val", data, "--epochs", "2", "--lr", "1e-3", "--calib", data]
    text = ok(run_tinyq("train", model, *flags, "-o", tmp_path / "kd.tflite")).stdout
    assert text.startswith("distillation loss: mse (one output value: a regression)"), text[:200]
    kd = json.loads(ok(run_tinyq("eval", tmp_path / "kd.tflite", "--data", data, "--json")).stdout)["value"]
    print(f"hello_world RMSE: PTQ {ptq:.5f}, distilled with MSE {kd:.5f}")
    assert kd <= ptq
    r = json.loads(ok(run_tinyq("train", model, *flags, "--loss", "kl", "-o", tmp_path / "kl.tflite", "--json")).stdout)
    assert r["report"]["loss"] == "kl" and r["report"]["loss_reason"] == "named with --loss"
