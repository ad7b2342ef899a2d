"""Plain helpers shared by the oracle tests and by their script modes.

Kept outside conftest.py so that `python tests/oracle/test_node_conformance.py --write-passlist`
can use them without pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np

ORACLE_DIR = Path(__file__).resolve().parent
REPO = ORACLE_DIR.parents[1]

# A guard against a hung binary, not a timing assertion.
PROCESS_TIMEOUT_S = 1800


def tinyq_bin() -> Path:
    """The binary under test: $TINYQ_BIN or <repo>/target/release/tinyq (may not exist)."""
    env = os.environ.get("TINYQ_BIN")
    return Path(env) if env else REPO / "target" / "release" / "tinyq"


def missing_bin_message(path: Path) -> str:
    return (
        f"tinyq binary not found at {path}. Build it first with `cargo build --release` "
        "or point TINYQ_BIN at it."
    )


def shared_dir() -> Path:
    """The shared reference set: $TINYQ_SHARED or <repo>/../shared (may not exist)."""
    env = os.environ.get("TINYQ_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def run_tinyq(binary: Path, *args, timeout: float = PROCESS_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run the binary with `args` (converted to str), capturing text stdout/stderr."""
    return subprocess.run(
        [str(binary), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def describe_failure(proc: subprocess.CompletedProcess) -> str:
    """One line that says why a tinyq invocation failed (its own error if it printed one)."""
    err = proc.stderr.strip()
    if "panicked" in err:
        line = next((ln for ln in err.splitlines() if "panicked" in ln), err.splitlines()[0])
        return f"PANIC (exit {proc.returncode}): {line.strip()}"
    error_lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    first = error_lines[0] if error_lines else "(no stderr)"
    return f"exit {proc.returncode}: {first}"


def supported_onnx_ops(binary: Path) -> dict[str, tuple[int, int]]:
    """`tinyq ops --json` as {op_type: (since, until)}; missing bounds become 1 / a large number."""
    proc = run_tinyq(binary, "ops", "--json")
    if proc.returncode != 0:
        raise RuntimeError(f"`tinyq ops --json` failed: {describe_failure(proc)}")
    doc = json.loads(proc.stdout)
    ops = {}
    for entry in doc["onnx"]:
        since = entry.get("since") or 1
        until = entry.get("until") or 10_000
        prev = ops.get(entry["op"])
        if prev is not None:
            since, until = min(since, prev[0]), max(until, prev[1])
        ops[entry["op"]] = (int(since), int(until))
    return ops


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def output_arrays(npz: dict[str, np.ndarray], count: int) -> list[np.ndarray | None]:
    """Outputs written by `tinyq run`: y, y_1, y_2, ... (None where a key is missing)."""
    keys = ["y"] + [f"y_{i}" for i in range(1, count)]
    return [npz.get(k) for k in keys]


def rel_max_diff(got: np.ndarray, ref: np.ndarray) -> float:
    """max|got - ref| / max|ref| (inf when ref is all zero and got is not)."""
    diff = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)), initial=0.0))
    scale = float(np.max(np.abs(ref.astype(np.float64)), initial=0.0))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


def litert_flash_parts(path: Path) -> dict[str, int]:
    """What `tinyq report` splits a .tflite into, counted from LiteRT's view of its tensors:
    constants (tensors no operator writes and no input) by type, 4 bytes per scale and 8 per zero
    point plus a 4-byte length per vector, and each tensor name with its length and final zero.
    Subgraph and metadata names are not visible to LiteRT and are not in `names`."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    written = {d["index"] for d in interp.get_input_details()}
    for op in interp._get_ops_details():
        written.update(int(i) for i in op["outputs"])
    kind = {"int8": "weights", "uint8": "weights", "int16": "weights", "int32": "biases", "int64": "biases",
            "float32": "float_constants", "float16": "float_constants"}
    parts = dict.fromkeys(["weights", "biases", "float_constants", "quantization", "names"], 0)
    for t in interp.get_tensor_details():
        q = t["quantization_parameters"]
        if len(q["scales"]):
            parts["quantization"] += 8 + 4 * len(q["scales"]) + 8 * len(q["zero_points"])
        parts["names"] += 5 + len(t["name"])
        if t["index"] not in written:
            dtype = np.dtype(t["dtype"])
            parts[kind[dtype.name]] += int(np.prod(t["shape"])) * dtype.itemsize
    return parts
