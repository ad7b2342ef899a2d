"""`tinyq verify` and the arena on an emulated Cortex-M4 (QEMU mps2-an386) with the TFLM trees in
../shared/vendor, and the exported sketch against the Arduino TFLM library there.

Needs the Debian packages gcc-arm-none-eabi, libnewlib-arm-none-eabi, libstdc++-arm-none-eabi-newlib
and qemu-system-arm (installed by .ci/run); tests skip with the reason when they or ../shared are
missing. The first run compiles TFLM's core and the needed kernels into tinyq's object cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import oracle_lib

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "mnist_dscnn"
TOOLS = ("arm-none-eabi-g++", "qemu-system-arm")
TREES = {"reference": "tflm-ref", "cmsis-nn": "tflm-cmsis-nn"}


def need_tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (Debian gcc-arm-none-eabi, qemu-system-arm)")


@pytest.fixture(scope="module")
def fixture_int8(tmp_path_factory, tinyq_bin):
    out = tmp_path_factory.mktemp("verify") / "mnist_dscnn.tflite"
    proc = oracle_lib.run_tinyq(tinyq_bin, "quantize", FIXTURE / "model.onnx", "--calib", FIXTURE / "mnist_test_200.npz", "-o", out)
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    return out


def test_verify_without_a_tree_says_how_to_get_one(fixture_int8, run_tinyq):
    proc = run_tinyq("verify", fixture_int8)
    assert proc.returncode == 1 and "panicked" not in proc.stderr
    assert "--tflm" in proc.stderr and "create_tflm_tree.py" in proc.stderr, proc.stderr


def test_verify_names_the_missing_debian_package(fixture_int8, tinyq_bin, tmp_path):
    env = dict(os.environ, PATH=str(tmp_path))
    proc = subprocess.run([str(tinyq_bin), "verify", str(fixture_int8), "--tflm", str(tmp_path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "panicked" not in proc.stderr
    assert "arm-none-eabi-g++" in proc.stderr and "apt-get install gcc-arm-none-eabi" in proc.stderr, proc.stderr


def test_cmsis_nn_arena_is_what_export_writes(fixture_int8, run_tinyq, tmp_path):
    arenas = {}
    for k in TREES:
        proc = run_tinyq("report", fixture_int8, "--kernels", k, "--json")
        assert proc.returncode == 0, oracle_lib.describe_failure(proc)
        arenas[k] = json.loads(proc.stdout)["arena_bytes"]
    # The fixture has 3x3 convolutions: CMSIS-NN's im2col buffers and larger OpData.
    assert arenas["cmsis-nn"] > arenas["reference"]
    proc = run_tinyq("export", fixture_int8, "--c", tmp_path / "c", "--name", "m", "--kernels", "cmsis-nn")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    settings = (tmp_path / "c" / "m_settings.h").read_text()
    assert f"kArenaSize = {arenas['cmsis-nn']}" in settings, settings
    bad = run_tinyq("report", fixture_int8, "--kernels", "esp-nn")
    assert bad.returncode == 1 and "--kernels `esp-nn`" in bad.stderr


SHARED_CASES = [
    ("hello_world/model_int8_tflm.tflite", "sine.npz", 50),
    ("kws_dscnn/model_int8_mlperf.tflite", "kws01.npz", 10),
]


@pytest.mark.parametrize("kernels", list(TREES))
@pytest.mark.parametrize("model,data,samples", SHARED_CASES)
def test_shared_model_on_the_cortex_m4(shared_dir, run_tinyq, model, data, samples, kernels):
    need_tools()
    proc = run_tinyq("verify", shared_dir / "models" / model, "--data", shared_dir / "data" / data, "--limit", samples,
                     "--tflm", shared_dir / "vendor" / TREES[kernels], "--kernels", kernels, "--device", "nano33ble", "--json")
    assert proc.stdout.strip(), oracle_lib.describe_failure(proc)
    r = json.loads(proc.stdout)
    print(f"{model} {kernels}: arena {r['arena_predicted']} predicted / {r['arena_minimum']} needed, "
          f"{r['instructions_per_inference']:.0f} instructions, flash {r['flash_bytes']}, RAM {r['ram_bytes']}, "
          f"build {r['build_seconds']:.1f} s, runs {r['run_seconds']:.1f} s")
    assert r["outputs"]["samples"] == samples and r["outputs"]["mismatches"] == 0, r["outputs"]
    assert r["arena_minimum"] == r["arena_predicted"] and r["predicted_arena_works"], r
    assert r["main_cpp_ran"] and r["instructions_per_inference"] > 1000 and r["ms_per_inference_estimate"] > 0
    assert proc.returncode == 0
    # report --device now carries the measured figures.
    rep = run_tinyq("report", shared_dir / "models" / model, "--kernels", kernels, "--device", "nano33ble", "--json")
    body = json.loads(rep.stdout)
    assert body["measured"]["flash_bytes"] == r["flash_bytes"]
    assert body["measured_at_device_clock"]["clock_mhz"] == 64


def test_random_graph_arenas_on_the_cortex_m4(shared_dir, tinyq_bin, tmp_path):
    """A slice of bench/arena_sweep.py: random graphs and one single-operator model of each kind,
    both kernel sets on the Cortex-M4, and the reference tree built natively for this 64-bit host
    (not the Python interpreter)."""
    need_tools()
    if shutil.which("g++") is None:
        pytest.skip("no host g++ (Debian g++) for the 64-bit native TFLM build")
    env = dict(os.environ, TINYQ_BIN=str(tinyq_bin))
    ref = shared_dir / "vendor" / "tflm-ref"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "arena_sweep.py"), "--count", "16", "--seed", "7000",
                           "--single-ops", "1", "--no-host", "--host-native", str(ref), "--out", str(tmp_path),
                           "--tflm-ref", str(ref),
                           "--tflm-cmsis-nn", str(shared_dir / "vendor" / "tflm-cmsis-nn")],
                          capture_output=True, text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["quantized"] >= 12, r["rejected"]
    for key in ("m4_reference", "m4_cmsis-nn", "host64_native"):
        t = r["totals"][key]
        print(key, t)
        assert t["under"] == 0 and t["errors"] == 0, [m for m in r["models"] if m[key]["measured"] != m[key]["predicted"]]
        assert t["refused"] == 0 and t["exact"] >= 0.9 * t["models"], t


def test_sketch_compiles_against_the_arduino_library(shared_dir, fixture_int8, run_tinyq, tmp_path):
    if shutil.which("arm-none-eabi-g++") is None:
        pytest.skip("arm-none-eabi-g++ not installed (Debian gcc-arm-none-eabi)")
    lib = shared_dir / "vendor" / "arduino-chirale" / "src"
    if not lib.is_dir():
        pytest.skip(f"{lib} not present")
    out = tmp_path / "sketch"
    proc = run_tinyq("export", fixture_int8, "--c", out, "--name", "sketch", "--kernels", "cmsis-nn")
    assert proc.returncode == 0, oracle_lib.describe_failure(proc)
    ini = (out / "platformio.ini").read_text()
    assert "Chirale_TensorFlowLite" in ini
    flags = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-std=gnu++17", "-fno-rtti",
             "-fno-exceptions", "-DARDUINO=10819", "-DTF_LITE_STATIC_MEMORY", f"-I{Path(__file__).parent / 'arduino_standin'}",
             f"-I{lib}", f"-I{lib / 'third_party' / 'flatbuffers' / 'include'}", f"-I{lib / 'third_party' / 'gemmlowp'}",
             f"-I{lib / 'third_party' / 'ruy'}", f"-I{out}"]
    for src, lang in (("sketch.ino", ["-x", "c++"]), ("sketch_model_data.cc", []), ("main.cpp", [])):
        cc = subprocess.run(["arm-none-eabi-g++", *flags, *lang, "-c", str(out / src), "-o", str(tmp_path / (src + ".o"))],
                            capture_output=True, text=True)
        assert cc.returncode == 0, f"{src}:\n{cc.stderr[-3000:]}"
