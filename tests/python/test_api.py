"""The Python API against the `tinyq` binary: the same files byte for byte, the same metrics,
`Model.run` equal to `tinyq run` output for output, the same report, C sources and debug table;
errors raise tinyq.TinyqError with tinyq's message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tinyq
from conftest import REPO, cli_json, shared_dir

DEMO = REPO / "fixtures" / "mnist_dscnn"
EVAL_SAMPLES = 200
SOURCE_ROLES = ("fp32_onnx", "fp32_onnx_dynamo", "fp32_tflite")


def _sources():
    cases = [pytest.param((DEMO / "model.onnx", DEMO / "mnist_test_200.npz", "x_calib"), id="demo/mnist_dscnn")]
    shared = shared_dir()
    cards = sorted(shared.glob("models/*/card.json"))
    if not cards:
        print(f"no {shared}: the Python API is compared with the CLI on the demo model only")
    for card_path in cards:
        card = json.loads(card_path.read_text())
        data = (card_path.parent / card["dataset"]["file"]).resolve()
        for name, info in sorted(card["files"].items()):
            if info.get("role") in SOURCE_ROLES:
                cases.append(
                    pytest.param(
                        (card_path.parent / name, data, card["dataset"]["calib_array"]),
                        id=f"{card_path.parent.name}/{name}",
                    )
                )
    return cases


class Case:
    """One float model quantized by the CLI and by the API (from the file and from arrays)."""

    def __init__(self, source, cli, tmp: Path):
        model, data, calib_key = source
        arrays = np.load(data)
        self.x, self.y = arrays["x"][:EVAL_SAMPLES], arrays["y"][:EVAL_SAMPLES]
        self.x_calib = arrays[calib_key]
        self.model = model
        self.data = tmp / "data.npz"
        np.savez(self.data, x=self.x, y=self.y, x_calib=self.x_calib)
        self.cli_file = tmp / "cli.tflite"
        self.cli_json = cli_json(cli, "quantize", model, "--calib", self.data, "--data", self.data, "-o", self.cli_file)
        self.from_file = tinyq.quantize(model, calib=self.data, data=self.data, progress=False)
        self.from_arrays = tinyq.quantize(tinyq.load(model), calib=self.x_calib, data=self.x, y=self.y, progress=False)


@pytest.fixture(scope="module", params=_sources())
def case(request, cli, tmp_path_factory):
    return Case(request.param, cli, tmp_path_factory.mktemp("case"))


def test_quantize_writes_the_clis_file(case, tmp_path):
    expected = case.cli_file.read_bytes()
    assert case.from_file.to_bytes() == expected
    assert case.from_arrays.to_bytes() == expected
    case.from_arrays.save(tmp_path / "py.tflite")
    assert (tmp_path / "py.tflite").read_bytes() == expected


def test_quantize_reports_the_clis_metrics_and_ranges(case):
    for model in (case.from_file, case.from_arrays):
        assert model.metrics == case.cli_json["metrics"]
        for key in ("ranges", "int8_file", "fp32_weight_bytes", "calibration_samples", "auto_calibration"):
            assert model.outcome[key] == case.cli_json[key], key


def test_run_equals_cli_run(case, cli, tmp_path):
    for model, source in ((case.from_arrays, case.cli_file), (tinyq.load(case.model), case.model)):
        out = tmp_path / "y.npz"
        cli("run", source, "--data", case.data, "-o", out)
        expected = np.load(out)
        got = model.run(case.x, progress=False)
        got = got if isinstance(got, list) else [got]
        assert len(got) == len(expected.files)
        for k, g in enumerate(got):
            e = expected["y" if k == 0 else f"y_{k}"]
            assert g.dtype == e.dtype and g.shape == e.shape
            np.testing.assert_array_equal(g, e)


def test_eval_equals_cli_eval(case, cli):
    expected = cli_json(cli, "eval", case.cli_file, "--data", case.data)
    got = tinyq.load(case.cli_file).eval(case.x, case.y, progress=False)
    assert (got["metric"], got["value"], got["samples"]) == (expected["metric"], expected["value"], expected["samples"])


def test_report_equals_cli_report(case, cli):
    expected = cli_json(cli, "report", case.cli_file, "--device", "Nano 33 BLE Sense")
    assert tinyq.load(case.cli_file).report(device="Nano 33 BLE Sense") == expected
    from_bytes = tinyq.load(case.cli_file.read_bytes()).report()
    assert from_bytes["arena_bytes"] == expected["arena_bytes"] and from_bytes["flash"] == expected["flash"]


def test_export_writes_the_clis_sources(cli, tmp_path):
    data = DEMO / "mnist_test_200.npz"
    int8 = tinyq.quantize(DEMO / "model.onnx", calib=data, progress=False)
    int8.save(tmp_path / "m.tflite")
    cli("export", tmp_path / "m.tflite", "--c", tmp_path / "cli_c", "--name", "mnist")
    files = int8.export_c(tmp_path / "py_c", name="mnist")
    names = sorted(Path(f).relative_to(tmp_path / "py_c") for f in files)
    assert names == sorted(p.relative_to(tmp_path / "cli_c") for p in (tmp_path / "cli_c").rglob("*") if p.is_file())
    for n in names:
        assert (tmp_path / "py_c" / n).read_bytes() == (tmp_path / "cli_c" / n).read_bytes(), n


def test_debug_equals_cli_debug(cli, tmp_path):
    arrays = np.load(DEMO / "mnist_test_200.npz")
    np.savez(tmp_path / "d.npz", x=arrays["x"][:50])
    int8 = tmp_path / "m.tflite"
    cli("quantize", DEMO / "model.onnx", "--calib", DEMO / "mnist_test_200.npz", "-o", int8)
    expected = cli_json(cli, "debug", DEMO / "model.onnx", int8, "--data", tmp_path / "d.npz")
    report = tinyq.debug(DEMO / "model.onnx", int8, arrays["x"][:50])
    got = report.to_dict()
    # The debugger sums its statistics in parallel: the last bits of its floats vary from run to
    # run of the CLI too.
    assert_close(got["layers"], expected["layers"])
    assert got["ranking"] == expected["ranking"] and got["footprint"] == expected["footprint"]
    assert got["output_sqnr_db"] == pytest.approx(expected["output_sqnr_db"], rel=1e-9)
    report.to_html(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html")
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pandas"):
            report.to_pandas()
    else:
        assert len(report.to_pandas()) == len(report.layers)


def assert_close(got, expected, where="") -> None:
    """Equal structure and values, floats to 1e-9 relative."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), where
        for k in expected:
            assert_close(got[k], expected[k], f"{where}.{k}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for k, (g, e) in enumerate(zip(got, expected)):
            assert_close(g, e, f"{where}[{k}]")
    elif isinstance(expected, float):
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), where
    else:
        assert got == expected, where


def test_model_description():
    m = tinyq.load(DEMO / "model.onnx")
    assert m.inputs == [{"name": "input", "shape": [1, 1, 28, 28], "dtype": "float32"}]
    assert m.outputs[0]["shape"] == [1, 10]
    assert len(m.layers) > 0 and all("op" in layer for layer in m.layers)
    int8 = tinyq.load(tinyq.quantize(m, calib=DEMO / "mnist_test_200.npz", progress=False).to_bytes())
    assert int8.inputs[0]["dtype"] == "int8"


def test_errors_raise_tinyq_error(tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(tinyq.TinyqError, match="missing.onnx"):
        tinyq.load(missing)
    with pytest.raises(tinyq.TinyqError, match="TFL3"):
        tinyq.load(b"not a model")
    m = tinyq.load(DEMO / "model.onnx")
    x = np.load(DEMO / "mnist_test_200.npz")["x"]
    with pytest.raises(tinyq.TinyqError, match="nope"):
        tinyq.quantize(m, calib=x, calibration="nope", progress=False)
    with pytest.raises(tinyq.TinyqError, match="max-drop -1"):
        tinyq.quantize(m, calib=x, data=x, y=np.zeros(len(x), np.int64), max_drop=-1, progress=False)
    with pytest.raises(tinyq.TinyqError, match="shape"):
        m.run(np.zeros((4, 3, 28, 28), np.float32), progress=False)
    with pytest.raises(tinyq.TinyqError, match="ONNX model"):
        m.to_bytes()
    src = tmp_path / "m.tflite"
    src.write_bytes(tinyq.quantize(m, calib=x, progress=False).to_bytes())
    with pytest.raises(tinyq.TinyqError, match="refusing to overwrite"):
        tinyq.load(src).save(src)
    with pytest.raises(tinyq.TinyqError, match="unknown board"):
        tinyq.load(src).report(device="no such board")


def test_quickstart_example_runs(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quickstart.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "top1: FP32" in proc.stdout and "fits: True" in proc.stdout
    assert (tmp_path / "mnist_int8.tflite").stat().st_size > 0
    assert (tmp_path / "debug.html").stat().st_size > 0
    assert (tmp_path / "mnist_c" / "mnist_model_data.cc").exists()


def test_train_writes_the_clis_file(cli, tmp_path):
    arrays = np.load(DEMO / "mnist_test_200.npz")
    x, y = arrays["x"][:96], arrays["y"][:96]
    np.savez(tmp_path / "train.npz", x=x, y=y)
    np.savez(tmp_path / "val.npz", x=arrays["x"][96:160], y=arrays["y"][96:160])
    flags = ["--epochs", "2", "--batch-size", "16", "--calib-samples", "32", "--seed", "3"]
    expected = cli_json(
        cli, "train", DEMO / "model.onnx", "--data", tmp_path / "train.npz", "--val", tmp_path / "val.npz",
        *flags, "-o", tmp_path / "cli.tflite", "--save-fp32", tmp_path / "cli.onnx",
    )["report"]
    int8 = tinyq.train(
        DEMO / "model.onnx", x, y, val=arrays["x"][96:160], val_y=arrays["y"][96:160], epochs=2, batch_size=16,
        calib_samples=32, seed=3, save_fp32=tmp_path / "py.onnx", progress=False,
    )
    assert int8.to_bytes() == (tmp_path / "cli.tflite").read_bytes()
    assert (tmp_path / "py.onnx").read_bytes() == (tmp_path / "cli.onnx").read_bytes()
    for rows in (int8.outcome["epochs"], expected["epochs"]):
        for row in rows:
            row.pop("samples_per_second"), row.pop("seconds")
    assert int8.outcome == expected
    distilled = tinyq.train(DEMO / "model.onnx", tmp_path / "train.npz", distill=True, epochs=1, progress=False)
    cli("train", DEMO / "model.onnx", "--data", tmp_path / "train.npz", "--distill", "--epochs", "1", "-o", tmp_path / "d.tflite")
    assert distilled.to_bytes() == (tmp_path / "d.tflite").read_bytes()
    with pytest.raises(tinyq.TinyqError, match="--epochs 0"):
        tinyq.train(DEMO / "model.onnx", x, y, epochs=0, progress=False)
