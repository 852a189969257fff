"""Fault injection helpers: real subprocesses of the real commands, real signals, real mounts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `tests.helpers` importable under plain pytest
    sys.path.insert(0, str(ROOT))


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """In-process ``ivl-data ARGS`` (arguments str()-ed): ``(exit code, stdout, stderr)``."""
    from internvl_data.cli.dispatch import main

    def call(*args: object) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def spawn(package: str, args: list[str], cwd: Path | None = None, **env: str) -> subprocess.Popen:
    """``python -m internvl_data|internvl_train ARGS`` with its own stdout/stderr pipes."""
    return subprocess.Popen(
        [sys.executable, "-m", package, *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: os.killpg(pid, SIGINT) is a terminal's Ctrl-C
    )


def run(package: str, args: list[str], cwd: Path | None = None, timeout: float = 120, **env: str):
    """Run to the end: ``(exit code, stdout, stderr)``."""
    proc = spawn(package, args, cwd, **env)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(predicate: Callable[[], object], proc: subprocess.Popen, timeout: float = 60) -> object:
    """Poll ``predicate`` until it is truthy; fails when the process ends first or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the process ended ({proc.returncode}) before the phase was reached:\n{out}\n{err}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the phase was never reached")


def temporaries(folder: Path) -> list[str]:
    """Names of our temporary files/folders (and the old naming) in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".ivl-tmp" in p.name or p.name.startswith(".ivl-lengths"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), our temporaries left out (see :func:`temporaries`)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".ivl-tmp" not in str(p.relative_to(folder))
    }


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from internvl_train.tiny import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "qwen2-300m", "qwen2", "300m")


@pytest.fixture()
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``mount_tmpfs(name, size="2m", ro=False) -> Path``: a tmpfs mounted under tmp_path (skips when not root or
    mounting is not permitted); unmounted afterwards."""
    mounted: list[Path] = []

    def mount(name: str, size: str = "2m", files: dict[str, bytes] | None = None, ro: bool = False) -> Path:
        target = tmp_path / name
        target.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True, check=False
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
        mounted.append(target)
        for rel, data in (files or {}).items():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_bytes(data)
        if ro:
            subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)
