"""Issue 13 item 1: `ivl-train convert` never deletes what it did not create; faults leave no debris."""

from __future__ import annotations

import shutil
import signal
import stat
from pathlib import Path

import pytest

from tests.faults.conftest import run, snapshot, spawn, temporaries, wait_for


@pytest.fixture()
def convert(capsys, monkeypatch):
    """In-process ``ivl-train convert SRC DST --to hf [extra]`` (subprocesses only where signals are sent)."""
    from internvl_train.cli.dispatch import main

    def call(src: Path, dst: str | Path, *extra: str, cwd: Path | None = None):
        with monkeypatch.context() as m:
            if cwd is not None:
                m.chdir(cwd)
            code = main(["convert", str(src), str(dst), "--to", "hf", *extra])
        out, err = capsys.readouterr()
        return code, out, err

    return call


def test_a_non_checkpoint_folder_is_refused_and_kept(convert, tiny_checkpoint: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "notes.txt").write_text("notes\n")
    code, out, err = convert(tiny_checkpoint, precious)
    assert (code, out) == (2, "")
    assert err == (
        f"ivl-train convert: error: OUT {precious} is a non-empty folder that is not a checkpoint (no config.json); "
        "it would be replaced: name a new or empty folder (or pass --force)\n"
    )
    assert snapshot(precious) == {"notes.txt": b"notes\n"} and (precious / "sub").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious"]


def test_an_existing_file_is_refused_unless_force(convert, tiny_checkpoint: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.write_text("mine")
    code, _, err = convert(tiny_checkpoint, target)
    assert code == 2 and err.endswith("is a file, not a folder; name a new folder (or pass --force to replace it)\n")
    assert target.read_text() == "mine"
    code, _, err = convert(tiny_checkpoint, target, "--force")
    assert code == 0, err
    assert (target / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no `.out.old-*` left behind


def test_out_equal_to_in_or_containing_it(convert, tiny_checkpoint: Path, tmp_path: Path) -> None:
    src = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, src)
    before = snapshot(src)
    code, _, err = convert(src, src)
    assert code == 2 and err == (
        f"ivl-train convert: error: OUT {src} is the source checkpoint; write to a new folder "
        "(or pass --force to replace it)\n"
    )
    code, _, err = convert(src, tmp_path, "--force")
    assert code == 2 and err == (
        f"ivl-train convert: error: OUT {tmp_path} contains the source checkpoint {src}; write to a new folder\n"
    )
    assert snapshot(src) == before
    code, _, err = convert(src, ".", cwd=src / ".." / "ckpt")
    assert code == 2 and "OUT . is the source checkpoint" in err
    code, _, err = convert(src, "..", cwd=src)
    assert code == 2 and "OUT .. contains the source checkpoint" in err
    assert snapshot(src) == before and temporaries(tmp_path) == []


def test_dot_is_refused_without_force_and_leaves_no_copy(convert, tiny_checkpoint: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    code, _, err = convert(tiny_checkpoint, ".", cwd=work)
    assert code == 2 and err == (
        "ivl-train convert: error: OUT . is the current folder or one of its parents; name a new folder "
        "(or pass --force)\n"
    )
    assert list(work.iterdir()) == [] and temporaries(tmp_path) == []


def test_outputs_follow_the_umask(convert, tiny_checkpoint: Path, tmp_path: Path) -> None:
    code, _, err = convert(tiny_checkpoint, tmp_path / "hf")
    assert code == 0, err
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "hf").iterdir()}
    assert modes["model.safetensors"] == 0o644 and set(modes.values()) == {0o644}
    assert stat.S_IMODE((tmp_path / "hf").stat().st_mode) == 0o755


def test_corrupt_safetensors_is_one_line_naming_the_file(convert, tiny_checkpoint: Path, tmp_path: Path) -> None:

    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad)
    weights = bad / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[:8] = (2**63 + 5).to_bytes(8, "little")  # a header length no file can have
    weights.write_bytes(bytes(raw))
    code, _, err = convert(bad, tmp_path / "out")
    assert code == 2 and "Traceback" not in err and "OverflowError" not in err
    assert err.startswith(f"ivl-train convert: error: {weights}: not a safetensors file (header length ")
    assert not (tmp_path / "out").exists() and temporaries(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_a_signal_before_the_rename_keeps_the_old_checkpoint(tiny_checkpoint: Path, tmp_path: Path, sig) -> None:
    out = tmp_path / "out"
    code, _, err = run("internvl_train", ["convert", tiny_checkpoint, out, "--to", "hf"])
    assert code == 0, err
    before = snapshot(out)
    proc = spawn(
        "internvl_train",
        ["convert", tiny_checkpoint, out, "--to", "original"],
        IVL_TEST_PAUSE_BEFORE_RENAME="60",
    )
    wait_for(lambda: temporaries(tmp_path), proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert snapshot(out) == before
    assert "Traceback" not in err
    if sig == signal.SIGKILL:
        assert proc.returncode == -9 and len(temporaries(tmp_path)) == 1
        code, _, err = run(
            "internvl_train", ["convert", tiny_checkpoint, tmp_path / "again", "--to", "hf"]
        )  # the next run removes the debris and says so
        assert code == 0
        assert "left by an interrupted run" in err and temporaries(tmp_path) == []
    else:
        expected = {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
        assert proc.returncode == expected and temporaries(tmp_path) == []
        assert err.strip().splitlines()[-1].startswith("ivl-train convert: ")
