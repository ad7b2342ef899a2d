"""Fixtures of the Python oracle suite: the tinyq binary, a runner, the shared reference set.

Environment:
  TINYQ_BIN     the binary under test (default <repo>/target/release/tinyq)
  TINYQ_SHARED  the shared reference set (default <repo>/../shared); tests needing it are skipped
                when it is absent.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import oracle_lib


@pytest.fixture(scope="session")
def tinyq_bin() -> Path:
    path = oracle_lib.tinyq_bin()
    if not path.is_file():
        pytest.fail(oracle_lib.missing_bin_message(path), pytrace=False)
    return path


@pytest.fixture(scope="session")
def run_tinyq(tinyq_bin):
    """`run_tinyq(*args)` runs the binary and returns the CompletedProcess (text mode)."""

    def run(*args, timeout: float = oracle_lib.PROCESS_TIMEOUT_S) -> subprocess.CompletedProcess:
        return oracle_lib.run_tinyq(tinyq_bin, *args, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = oracle_lib.shared_dir()
    if not path.is_dir():
        pytest.skip(f"../shared not present (looked at {path}; set TINYQ_SHARED)")
    return path
