"""The Python API tests run in a venv that holds only numpy, pytest and the tinyq wheel
(scripts/wheel --test). They compare the API with the `tinyq` binary ($TINYQ_BIN, default
target/release/tinyq) on the demo model in fixtures/ and on every model in ../shared."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    env = os.environ.get("TINYQ_SHARED")
    return Path(env) if env else REPO.parent / "shared"


@pytest.fixture(scope="session")
def cli():
    """Runs the binary; returns the completed process (asserting success unless `ok=False`)."""
    binary = Path(os.environ.get("TINYQ_BIN", REPO / "target" / "release" / "tinyq"))
    if not binary.exists():
        pytest.skip(f"the tinyq binary {binary} is not built (cargo build --release -p tinyq-cli)")

    def run(*args, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=1800)
        if ok:
            assert proc.returncode == 0, f"tinyq {' '.join(map(str, args))}: {proc.stderr}"
        return proc

    return run


def cli_json(cli, *args) -> dict:
    return json.loads(cli(*args, "--json").stdout)
