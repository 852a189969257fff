"""ruff (lint and format) and mypy are clean on the tree, with the settings of pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINTED = ["internvl_data", "internvl_train", "tests", "benchmarks"]


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_check() -> None:
    proc = _run([_tool("ruff"), "check", "--no-cache", *LINTED])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run([_tool("ruff"), "format", "--check", "--no-cache", *LINTED])
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.slow
def test_mypy() -> None:
    """About 90 s from cold (the .mypy_cache makes reruns fast); the CI command runs slow tests too."""
    proc = _run([_tool("mypy")])
    assert proc.returncode == 0, proc.stdout + proc.stderr
