"""`tinyq report` and `tinyq export --c` on the fixture model, quantized by the test (runs anywhere)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import oracle_lib

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "mnist_dscnn"


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory, tinyq_bin):
    out = tmp_path_factory.mktemp("deploy") / "mnist_dscnn.tflite"
    proc = oracle_lib.run_tinyq(tinyq_bin, "quantize", FIXTURE / "model.onnx", "--calib", FIXTURE / "mnist_test_200.npz", "-o", out)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return out


def test_report_json_has_the_arena_and_a_row_per_layer(int8_model, run_tinyq):
    proc = run_tinyq("report", int8_model, "--json")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    r = json.loads(proc.stdout)
    assert r["flash_bytes"] == int8_model.stat().st_size
    assert r["arena_bytes"] >= r["arena_head_bytes"] + r["arena_tail_bytes"] > 0
    assert len(r["layers"]) >= 6 and all(l["activation_bytes"] > 0 for l in r["layers"])
    flash = r["flash"]
    assert sum(v for k, v in flash.items() if k != "total") == flash["total"] == r["flash_bytes"]
    seen = oracle_lib.litert_flash_parts(int8_model)
    # tinyq's files name their subgraph "main" and their metadata "min_runtime_version".
    seen["names"] += (5 + len("main")) + (5 + len("min_runtime_version"))
    assert {k: flash[k] for k in seen} == seen
    assert flash["quantization"] > 0 and flash["structure"] > 0
    wide = json.loads(run_tinyq("report", int8_model, "--json", "--pointer-width", "64").stdout)
    assert wide["arena_bytes"] > r["arena_bytes"], "64-bit pointers make the tail larger"
    assert (r["tflm_build"], wide["tflm_build"]) == ("firmware", "python")
    native = json.loads(run_tinyq("report", int8_model, "--json", "--pointer-width", "64",
                                  "--tflm-build", "firmware").stdout)
    # The Python package's recording allocator and compression build need more than a program.
    assert r["arena_bytes"] < native["arena_bytes"] < wide["arena_bytes"]


@pytest.mark.parametrize("args, message", [
    (["--tflm-build", "python"], "--tflm-build python is the 64-bit tflite-micro package"),
    (["--tflm-build", "linux"], "--tflm-build `linux`: expected python or firmware"),
    (["--pointer-width", "64", "--kernels", "cmsis-nn"], "--kernels cmsis-nn is for 32-bit"),
])
def test_report_refuses_a_build_it_does_not_model(int8_model, run_tinyq, args, message):
    p = run_tinyq("report", int8_model, *args)
    assert p.returncode == 1 and message in p.stderr and not p.stdout, p.stderr


def test_report_gates_on_the_device_and_budgets(int8_model, run_tinyq):
    fits = run_tinyq("report", int8_model, "--device", "Arduino Nano 33 BLE Sense")
    assert fits.returncode == 0, oracle_lib.describe_failure(fits)
    small = run_tinyq("report", int8_model, "--ram-budget", "4KiB")
    assert small.returncode == 1 and "panicked" not in small.stderr
    assert re.search(r"does not fit the RAM budget: needs .* has 4\.0 KiB \(over by .*\)", small.stderr), small.stderr
    flash = run_tinyq("report", int8_model, "--device", "uno r4", "--flash-budget", "1KiB", "--json")
    assert flash.returncode == 1
    body = json.loads(flash.stdout)
    assert body["fits"] is False and any(o["what"] == "flash budget" for o in body["overruns"])


def test_report_refuses_unknown_devices_and_bad_sizes(int8_model, run_tinyq):
    proc = run_tinyq("report", int8_model, "--device", "toaster")
    assert proc.returncode == 1 and "toaster" in proc.stderr and "--list-devices" in proc.stderr
    proc = run_tinyq("report", int8_model, "--ram-budget", "lots")
    assert proc.returncode == 1 and "--ram-budget" in proc.stderr
    listing = json.loads(run_tinyq("report", "--list-devices", "--json").stdout)["devices"]
    assert len(listing) >= 10 and all(d["sram_bytes"] > 0 and d["datasheet"] for d in listing)


def test_export_writes_sources_with_the_reported_arena(int8_model, run_tinyq, tmp_path):
    proc = run_tinyq("export", int8_model, "--c", tmp_path / "c", "--name", "digits")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert names == sorted(["digits_model_data.h", "digits_model_data.cc", "digits_ops.h", "digits_settings.h", "main.cpp", "digits.ino", "platformio.ini"])
    arena = json.loads(run_tinyq("report", int8_model, "--json").stdout)["arena_bytes"]
    settings = (tmp_path / "c" / "digits_settings.h").read_text()
    assert re.search(rf"kArenaSize = {arena};", settings), settings
    bad = run_tinyq("export", int8_model, "--c", tmp_path / "d", "--name", "2bad")
    assert bad.returncode == 1 and "2bad" in bad.stderr
