"""Issue 13 items 4 and 5: SIGINT, SIGTERM and SIGKILL to real `lengths --in-place`, `stats` and `validate`
subprocesses at several phases. After each: the user's files are byte-identical, no worker runs on, no temporary
is left (or, after SIGKILL, the next run removes it and says so), the exit code is documented, no traceback."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.conftest import run, snapshot, spawn, temporaries, wait_for

N_LINES = 4000
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tokenizers import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("model") / "m", "Hermes-2", "qwen2")


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """A text-only dataset big enough that two workers tokenize it for a few seconds."""
    rows = [
        json.dumps(
            {
                "id": i,
                "conversations": [{"from": "human", "value": f"q {i} " * 40}, {"from": "gpt", "value": "a " * 60}],
            }
        )
        for i in range(N_LINES)
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(rows) + "\n")
    meta = {"d": {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": N_LINES}}
    (tmp_path / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return tmp_path


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gone(pids: list[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [
            p
            for p in pids
            if Path(f"/proc/{p}").exists() and "Z" not in Path(f"/proc/{p}/stat").read_text().split(")")[1][:3]
        ]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def _check_clean_exit(proc, sig, err: str) -> None:
    assert proc.returncode == EXIT[sig], err
    assert "Traceback" not in err and "BrokenPipeError" not in err
    if sig != signal.SIGKILL:
        last = err.strip().splitlines()[-1]
        assert (
            last == "ivl-data lengths: interrupted"
            if sig == signal.SIGINT
            else last.startswith("ivl-data lengths: stopped by signal 15")
        )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_lengths_signal_while_workers_run(data: Path, model: Path, sig) -> None:
    before = snapshot(data)
    proc = spawn(
        "internvl_data", ["lengths", data / "meta.json", "--model", model, "--in-place", "--no-cache", "--jobs", "2"]
    )
    wait_for(lambda: temporaries(data) and len(_children(proc.pid)) >= 2, proc)
    time.sleep(0.3)  # the workers are tokenizing
    workers = _children(proc.pid)
    if sig == signal.SIGINT:  # Ctrl-C: the terminal signals the whole process group, workers included
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    _check_clean_exit(proc, sig, err)
    assert _gone(workers), "a worker ran on after the parent stopped"
    assert snapshot(data) == before
    if sig == signal.SIGKILL:
        leftover = temporaries(data)
        assert len(leftover) == 1  # the scratch folder, removed by the next run:
        code, _, err = run(
            "internvl_data",
            ["lengths", data / "meta.json", "--model", model, "--in-place", "--no-cache", "--jobs", "1"],
        )
        assert code == 0, err
        assert [line for line in err.splitlines() if "left by an interrupted run" in line] == [
            f"ivl-data lengths: removed {data / left}, left by an interrupted run" for left in leftover
        ]
        assert temporaries(data) == [] and (data / "d.jsonl.bak").read_bytes() == before["d.jsonl"]
    else:
        assert temporaries(data) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_lengths_signal_before_the_rename(data: Path, model: Path, sig) -> None:
    before = snapshot(data)
    proc = spawn(
        "internvl_data",
        ["lengths", data / "meta.json", "--model", model, "--in-place", "--no-cache", "--jobs", "1"],
        IVL_LENGTHS_PAUSE_BEFORE_RENAME="60",
    )
    wait_for(lambda: [p for p in data.iterdir() if p.name.startswith(".d.jsonl.") and p.stat().st_size > 0], proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    _check_clean_exit(proc, sig, err)
    assert snapshot(data) == before and not (data / "d.jsonl.bak").exists()  # never a truncated .bak
    if sig == signal.SIGKILL:  # the new file is left under our temporary name; the next run's sweep removes it
        from internvl_data import fsio

        left = temporaries(data)  # the complete new file and the workers' scratch folder
        assert [n.split(".")[1] for n in left] == ["d", "ivl-lengths"]
        assert [p.name for p in fsio.sweep(data)] == left
    assert temporaries(data) == []


def test_a_second_run_never_overwrites_the_first_backup(data: Path, model: Path) -> None:
    original = (data / "d.jsonl").read_bytes()
    args = ["lengths", data / "meta.json", "--model", model, "--in-place", "--no-cache", "--jobs", "1"]
    assert run("internvl_data", args)[0] == 0
    code, _, err = run("internvl_data", args)
    assert code == 0
    assert (data / "d.jsonl.bak").read_bytes() == original
    assert "a .bak of an earlier run existed and was left" in err


@pytest.mark.parametrize("command", ["stats", "validate"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stats_and_validate_stop_cleanly(data: Path, model: Path, command: str, sig) -> None:
    if command == "validate":  # one block in-process, ~4.5 s of CPU for N_LINES: make the end far from the signal
        text = (data / "d.jsonl").read_text()
        (data / "d.jsonl").write_text(text * 4)
        meta = json.loads((data / "meta.json").read_text())
        meta["d"]["length"] = 4 * N_LINES
        (data / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    before = snapshot(data)
    extra = ["--no-manifest", "--media", "off"] if command == "validate" else ["--no-cache"]
    proc = spawn("internvl_data", [command, data / "meta.json", "--model", model, "--jobs", "2", *extra])
    if command == "stats":  # stats splits the file between two workers; validate checks one 4 MiB block in-process
        wait_for(lambda: len(_children(proc.pid)) >= 2, proc)
    else:
        wait_for(lambda: _cpu_seconds(proc.pid) > 2, proc)  # past the imports (~1.5 s), counting tokens
    time.sleep(0.3)
    workers = _children(proc.pid)
    os.killpg(proc.pid, sig) if sig == signal.SIGINT else os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT[sig], err
    assert "Traceback" not in err and out == ""
    assert err.strip().splitlines()[-1] == (
        f"ivl-data {command}: interrupted"
        if sig == signal.SIGINT
        else f"ivl-data {command}: stopped by signal 15; nothing was left half-written"
    )
    assert _gone(workers)
    assert snapshot(data) == before and temporaries(data) == []


_FINALIZER_SCRIPT = """
import os, signal, sys, time, weakref
from internvl_data import fsio

def send():
    os.kill(os.getpid(), int(sys.argv[2]))
    time.sleep(0.01)  # the handler runs here, inside the finalizer

class WithDel:
    def __del__(self):
        send()

class Plain:
    pass

def closing():
    try:
        yield 1
    finally:
        send()

fsio.install_signal_handlers()
try:
    if sys.argv[1] == "__del__":
        obj = WithDel()
        del obj
    elif sys.argv[1] == "weakref":
        obj = Plain()
        ref = weakref.ref(obj, lambda _: send())
        del obj
    else:
        gen = closing()
        next(gen)
        del gen
    time.sleep(2)
    print("ran on")
except fsio.Terminated as exc:
    print("stopped", exc.signum)
except KeyboardInterrupt:
    print("stopped", int(signal.SIGINT))
"""


@pytest.mark.parametrize("finalizer", ["__del__", "weakref", "generator"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_a_finalizer_still_stops_the_command(finalizer: str, sig) -> None:
    """Python swallows an exception raised inside any finalizer; the handler's signal must still stop the command."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _FINALIZER_SCRIPT, finalizer, str(int(sig))], capture_output=True, text=True, timeout=30
    )
    assert (proc.stdout, proc.stderr, proc.returncode) == (f"stopped {int(sig)}\n", "", 0)
