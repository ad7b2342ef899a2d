"""Every command applies the same rules to a .tflite file, and what tinyq accepts or writes, LiteRT
and TFLM load too.

Single-byte changes of a valid INT8 file (seeded positions and values): `inspect`, `report`,
`export` and `run` must all accept or all refuse each one (exit 0 or 1, never a panic), and every
accepted file must load in LiteRT's interpreter (its flatbuffer verifier runs first) and in TFLM.
The interpreters run in a child process, so a crash in them fails the test instead of the session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import malformed_cases as mc

# More with TINYQ_FLIPS=N (a longer local sweep).
FLIPS = int(os.environ.get("TINYQ_FLIPS", "150"))

LOAD_BOTH = r"""
import json, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from tflite_micro.python.tflite_micro import runtime
result = {}
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    try:
        it = Interpreter(model_content=data)
        it.allocate_tensors()
        litert = "ok"
    except Exception as e:  # noqa: BLE001 - any refusal is the answer
        litert = f"{type(e).__name__}: {e}"[:300]
    try:
        runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
        tflm = "ok"
    except Exception as e:  # noqa: BLE001
        tflm = f"{type(e).__name__}: {e}"[:300]
    result[path] = [litert, tflm]
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory, tinyq_bin):
    root = tmp_path_factory.mktemp("acceptance")
    model = mc.write_onnx(root, "valid", mc.valid_model())
    data = root / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.standard_normal([4] + mc.IN_SHAPE[1:]).astype(np.float32))
    valid = root / "valid.tflite"
    subprocess.run([str(tinyq_bin), "quantize", str(model), "--calib", str(data), "-o", str(valid)],
                   check=True, capture_output=True)
    raw = valid.read_bytes()
    out = [valid]
    for k in range(FLIPS):
        b = bytearray(raw)
        pos = int(rng.integers(0, len(raw)))
        b[pos] ^= int(rng.integers(1, 256))
        p = root / f"flip{k:03d}_at{pos}.tflite"
        p.write_bytes(bytes(b))
        out.append(p)
    return root, data, out


def verdict(tinyq_bin, args) -> int:
    p = subprocess.run([str(tinyq_bin), *map(str, args)], capture_output=True, text=True, timeout=60)
    assert p.returncode in (0, 1) and "panicked" not in p.stderr, f"{args}: exit {p.returncode}\n{p.stderr}"
    if p.returncode == 1:
        assert p.stderr.startswith("error:"), p.stderr
    return p.returncode


def test_commands_agree_and_interpreters_load_what_tinyq_accepts(files, tinyq_bin, tmp_path):
    root, data, paths = files
    accepted = []
    for i, f in enumerate(paths):
        rc = {
            "inspect": verdict(tinyq_bin, ["inspect", f]),
            "report": verdict(tinyq_bin, ["report", f]),
            "export": verdict(tinyq_bin, ["export", f, "--c", tmp_path / f"src{i}"]),
            "run": verdict(tinyq_bin, ["run", f, "--data", data, "-o", tmp_path / f"r{i}.npz"]),
        }
        # `run` may also refuse the data for a file whose input changed; the reading commands agree.
        reading = {k: v for k, v in rc.items() if k != "run"}
        assert len(set(reading.values())) == 1, f"{f.name}: commands disagree: {rc}"
        if rc["inspect"] == 0:
            accepted.append(f)
    assert paths[0] in accepted, "the unmodified file must be accepted"
    p = subprocess.run([sys.executable, "-c", LOAD_BOTH, *map(str, accepted)], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, f"an interpreter crashed on a file tinyq accepts\n{p.stderr[-3000:]}"
    result = json.loads(p.stdout.strip().splitlines()[-1])
    refused = {Path(k).name: v for k, v in result.items() if v != ["ok", "ok"]}
    assert not refused, f"tinyq accepts files LiteRT or TFLM refuse: {json.dumps(refused, indent=1)}"
