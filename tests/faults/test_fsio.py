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


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_every_write_clears_a_killed_runs_temporaries_for_its_destination(tmp_path: Path) -> None:
    """A SIGKILLed `stats -o out.json` leaves `.out.json.<pid>-<hex>.ivl-tmp`: the next write of out.json removes it
    (and notes it), whatever the command; temporaries for other names and of live processes stay."""
    fsio.take_notes()
    dead = _dead_pid()
    mine = tmp_path / f".out.json.{dead}-0123abcd.ivl-tmp"
    other = tmp_path / f".other.json.{dead}-0123abcd.ivl-tmp"
    live = tmp_path / f".out.json.{os.getpid()}-0123abcd.ivl-tmp"
    for p in (mine, other, live):
        p.write_bytes(b"partial")
    fsio.write_atomic(tmp_path / "out.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out.json", other.name, live.name])
    assert fsio.take_notes() == [f"removed {mine}, left by an interrupted run"]
    ckpt_left = tmp_path / f".ckpt.{dead}-0123abcd.ivl-tmpdir"
    (ckpt_left / "sub").mkdir(parents=True)
    with fsio.atomic_dir(tmp_path / "ckpt") as tmp:
        (tmp / "config.json").write_text("{}")
    assert not ckpt_left.exists() and fsio.take_notes() == [f"removed {ckpt_left}, left by an interrupted run"]


def test_an_older_versions_temporaries_are_reported_never_removed(tmp_path: Path) -> None:
    """Before fsio, ivl-kit named temporaries without a pid (mkstemp `.NAME.XXXXXXXX.tmp` / `.ivl-tmp`,
    `.ivl-lengths-XXXXXXXX/`, convert's `.OUT.tmp-<hex>` / `.OUT.old-<hex>`): a run of that version may still be
    going on, so they are found and reported, and left."""
    fsio.take_notes()
    names = {
        ".out.json.k3j_x9a2.tmp": "a temporary file",
        ".a.jsonl.abcdefgh.ivl-tmp": "a temporary file",
        ".ivl-lengths-q1w2e3r4": "a scratch folder of `ivl-data lengths`",
        ".ckpt.tmp-0123abcd": "a half-written checkpoint of `ivl-train convert`",
        ".ckpt.old-89abcdef": "the previous checkpoint that `ivl-train convert` was replacing",
    }
    for name in names:
        (tmp_path / name).mkdir() if "ivl-lengths" in name or "ckpt" in name else (tmp_path / name).write_text("x")
    (tmp_path / ".out.json.notours").write_text("x")  # not a temporary name of any version
    before = sorted(p.name for p in tmp_path.iterdir())
    assert fsio.sweep(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert fsio.take_notes() == [
        f"found {tmp_path / name}, {names[name]} left by an interrupted run of an older ivl-kit; it names no process, "
        "so it is not removed: check it and delete it once no older ivl-kit runs on this folder"
        for name in sorted(names)
    ]
    fsio.write_atomic(tmp_path / "out.json", b"{}")  # a write notes the old temporaries of its own destination only
    assert fsio.take_notes() == [
        f"found {tmp_path / '.out.json.k3j_x9a2.tmp'}, a temporary file left by an interrupted run of an older "
        "ivl-kit; it names no process, so it is not removed: check it and delete it once no older ivl-kit runs on "
        "this folder"
    ]


def _one_dataset(folder: Path, lines: str) -> Path:
    """``folder/meta.json`` listing ``folder/d.jsonl`` (holding ``lines``)."""
    import json

    folder.mkdir(exist_ok=True)
    (folder / "d.jsonl").write_text(lines)
    meta = {"d": {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1}}
    (folder / "meta.json").write_text(json.dumps(meta))
    return folder / "meta.json"


RECORD = '{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}\n'


def test_the_command_prints_the_notes_once_at_the_end(tmp_path: Path) -> None:
    """`stats -o out.json` after a killed one: one line, prefixed with the command, on stderr; exit 0."""
    from tests.faults.conftest import run

    left = tmp_path / f".out.json.{_dead_pid()}-0123abcd.ivl-tmp"
    left.write_bytes(b"partial")
    meta = _one_dataset(tmp_path, RECORD)
    code, _, err = run("internvl_data", ["stats", meta, "--no-cache", "--format", "json", "-o", tmp_path / "out.json"])
    assert code == 0, err
    assert err.splitlines() == [f"ivl-data stats: removed {left}, left by an interrupted run"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "meta.json", "out.json"]


def test_ends_mid_line(tmp_path: Path) -> None:
    from internvl_data.formats.lines import ends_mid_line

    cases = {
        b"": False,
        b'{"a": 1}\n': False,
        b'{"a": 1}\n{"b": 2}': False,  # no final newline, but the last line is whole
        b'{"a": 1}\n{"b": ': True,  # cut in the middle of a record
        b'{"a": 1}\n{"b": "' + b"x" * 3000: True,
    }
    for i, (data, expected) in enumerate(cases.items()):
        (tmp_path / f"{i}.jsonl").write_bytes(data)
        assert ends_mid_line(tmp_path / f"{i}.jsonl") is expected, data[:20]
    (tmp_path / "long.jsonl").write_bytes(b'{"a": "' + b"x" * 5000)  # a last line longer than the tail read
    assert ends_mid_line(tmp_path / "long.jsonl", tail=1000) is True


def test_lengths_says_when_a_kept_bak_looks_cut_short(tmp_path: Path) -> None:
    """An older ivl-kit copied FILE.bak with a plain copy; killed half-way, it left a truncated .bak that looks like a
    real backup. lengths never overwrites a .bak, and now says when the one it keeps ends in the middle of a line."""
    from tests.faults.conftest import run
    from tests.helpers.tokenizers import write_model_dir

    model = write_model_dir(tmp_path / "m", "Hermes-2", "qwen2")
    data = tmp_path / "data"
    meta = _one_dataset(data, RECORD * 3)
    (data / "d.jsonl.bak").write_text(RECORD + RECORD[:10])
    code, _, err = run("internvl_data", ["lengths", meta, "--model", model, "--in-place", "--no-cache", "--jobs", "1"])
    assert code == 0, err
    assert err.splitlines()[-1] == (
        f"ivl-data lengths: {data / 'd.jsonl.bak'} ends in the middle of a line: it looks like the partial copy of a "
        "killed run of an older ivl-kit, not a full original; check it before you restore from it"
    )
    assert (data / "d.jsonl.bak").read_text() == RECORD + RECORD[:10]


def test_cleanup_removes_registered_temporaries(tmp_path: Path) -> None:
    # the rename then fails: the caller sees an error, never a half file
    with pytest.raises(OutputError), fsio.atomic_file(tmp_path / "x") as fh:
        fh.write(b"1")
        (tmp_name,) = [p for p in tmp_path.iterdir() if p.name.endswith(".ivl-tmp")]
        fsio.cleanup()  # what a SIGTERM does before the process exits
        assert not tmp_name.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signals_deferred_holds_a_signal_until_the_block_ends(sig: str) -> None:
    """Native code that calls back into Python (torch's import) aborts on an exception raised inside it, so the
    tokenizer loads with signals deferred: the signal is acted on right after the block, never inside it."""
    import signal
    import time

    signum = getattr(signal, sig)
    expected = KeyboardInterrupt if sig == "SIGINT" else fsio.Terminated
    old = fsio.install_signal_handlers()
    try:
        reached_end = False
        with pytest.raises(expected) as caught:
            with fsio.signals_deferred():
                os.kill(os.getpid(), signum)
                time.sleep(0.05)  # the handler runs here: held
                with fsio.signals_deferred():  # nested: still held
                    time.sleep(0.01)
                reached_end = True
        assert reached_end
        assert getattr(caught.value, "signum", signal.SIGINT) == signum
        with fsio.signals_deferred():  # nothing received: nothing raised
            pass
    finally:
        fsio.restore_signal_handlers(old)
