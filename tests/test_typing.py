"""The package is typed: the stub of the native module matches the built module."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import pytest


def test_py_typed_marker_is_installed() -> None:
    assert resources.files("clvrs").joinpath("py.typed").is_file()


def test_native_stub_matches_the_built_module() -> None:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "clvrs._core"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
