"""The one atomic writer (internvl_data.fsio): modes, cleanup on every exit path, leftovers, messages."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from internvl_data import fsio
from internvl_data.errors import IvlDataError, OutputError


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_write_atomic_uses_the_umask_and_leaves_nothing_else(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        fsio.write_atomic(tmp_path / "a.json", "héllo")
        os.umask(0o077)
        fsio.write_atomic(tmp_path / "b.json", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").read_bytes() == "héllo".encode()
    assert _mode(tmp_path / "a.json") == 0o644
    assert _mode(tmp_path / "b.json") == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_keep_mode_keeps_the_replaced_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "data.jsonl"
    target.write_bytes(b"old")
    target.chmod(0o640)
    fsio.write_atomic(target, b"new", keep_mode=True)
    assert target.read_bytes() == b"new" and _mode(target) == 0o640


def test_an_exception_inside_the_block_leaves_the_original_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_bytes(b"original")
    with pytest.raises(KeyboardInterrupt), fsio.atomic_file(target) as fh:
        fh.write(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_missing_folder_is_an_output_error_naming_the_users_path(tmp_path: Path) -> None:
    dest = tmp_path / "nope" / "out.json"
    with pytest.raises(OutputError) as info:
        fsio.write_atomic(dest, b"x")
    assert str(info.value) == f"cannot write {dest}: No such file or directory; create the folder first or fix the path"
    assert ".ivl-tmp" not in str(info.value)
    assert isinstance(info.value, IvlDataError) and info.value.exit_code == 2


def test_check_writable_before_the_work(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"folder .*nope does not exist; create it or fix the path"):
        fsio.check_writable(tmp_path / "nope" / "x.json")
    with pytest.raises(OutputError, match="it is a folder; name a file"):
        fsio.check_writable(tmp_path)
    (tmp_path / "f").write_text("")
    with pytest.raises(OutputError, match="it is a file, not a folder"):
        fsio.check_writable(tmp_path / "f", folder=True)
    fsio.check_writable(tmp_path / "new" / "deeper", folder=True)
    assert not (tmp_path / "new").exists()


def test_atomic_dir_replaces_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with fsio.atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    with pytest.raises(RuntimeError), fsio.atomic_dir(out) as tmp:
        (tmp / "half.txt").write_text("x")
        raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_sweep_removes_leftovers_of_dead_processes_only(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".a.jsonl.{dead_pid}-0123abcd.ivl-tmp"
    stale.write_bytes(b"partial")
    stale_dir = tmp_path / f".ivl-lengths.{dead_pid}-89abcdef.ivl-tmpdir"
    stale_dir.mkdir()
    (stale_dir / "part").write_bytes(b"p")
    live = tmp_path / f".b.jsonl.{os.getpid()}-0123abcd.ivl-tmp"
    live.write_bytes(b"in use")
    other = tmp_path / ".a.jsonl.tmp"
    other.write_bytes(b"not ours")
    assert fsio.leftovers(tmp_path) == sorted([stale, stale_dir])
    assert fsio.sweep(tmp_path) == sorted([stale, stale_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])


def test_cleanup_removes_registered_temporaries(tmp_path: Path) -> None:
    # the rename then fails: the caller sees an error, never a half file
    with pytest.raises(OutputError), fsio.atomic_file(tmp_path / "x") as fh:
        fh.write(b"1")
        (tmp_name,) = [p for p in tmp_path.iterdir() if p.name.endswith(".ivl-tmp")]
        fsio.cleanup()  # what a SIGTERM does before the process exits
        assert not tmp_name.exists()
    assert list(tmp_path.iterdir()) == []
