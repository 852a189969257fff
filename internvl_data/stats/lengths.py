"""Byte-exact JSON edits for ``ivl-data lengths``: set one key, leave every other byte alone.

A JSONL line gets its top-level ``length`` set (value replaced where the key exists, appended as the last key
otherwise, in the line's own separator style); a meta file gets ``<dataset>.length`` set the same way. Key
order, spacing, escapes, number formats, other keys and line endings are untouched. Files are replaced
atomically (:func:`write_replacing`), with an optional ``.bak`` of the original (never overwritten).

An input that vanishes, becomes unreadable or changes while the run reads it (:class:`Inputs`) stops the run
before anything is written (:class:`InputChanged`, exit 2): a file is never rebuilt from content that is no
longer there, and a user's newer file is never replaced by the old content with lengths.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from internvl_data import fsio
from internvl_data.errors import IvlDataError

_WS = b" \t\r\n"
PAUSE_ENV = "IVL_LENGTHS_PAUSE_BEFORE_RENAME"  # tests: seconds to sleep between writing the temp file and the rename


class EditError(IvlDataError, ValueError):
    """The text is not the JSON object the edit expects."""


class InputChanged(IvlDataError):
    """An input file vanished, became unreadable or changed while ``lengths`` ran (exit 2): it is left as it is,
    and so is every other file unless ``written`` names some (only when the change fell between two renames)."""

    def __init__(self, path: str, unreadable: str | None = None, written: list[Path] | None = None) -> None:
        what = "changed" if unreadable is None else "vanished or became unreadable"
        what += " while lengths ran" + (f" ({unreadable})" if unreadable is not None else "")
        done = (
            f"already rewritten: {', '.join(map(str, written))}; the others were left as they are"
            if written
            else "nothing was written"
        )
        super().__init__(f"{path} {what}; {done}; run again")


def _signature(path: str) -> tuple[int, int, int, int] | str:
    """(device, inode, size, mtime) of ``path``, or why it can no longer be read."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not stat.S_ISREG(st.st_mode):
        return "Is a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class Inputs:
    """The files a run reads, as they were when it started: :meth:`check` raises :class:`InputChanged` for the
    first that vanished, became unreadable or changed since (replaced, rewritten, truncated)."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[int, int, int, int]] = {}
        self.written: list[Path] = []  # files already replaced by this run (named should a later check fail)

    def add(self, path: str) -> int:
        """Remember ``path`` as it is now; returns its size."""
        sig = _signature(path)
        if isinstance(sig, str):
            raise InputChanged(path, sig)
        self.seen[path] = sig
        return sig[2]

    def check(self, *paths: str) -> None:
        """``paths`` (default: every file added) are as they were when added."""
        for path in paths or tuple(self.seen):
            now = _signature(path)
            if now != self.seen[path]:
                raise InputChanged(path, now if isinstance(now, str) else None, self.written)

    def gone(self, exc: OSError) -> InputChanged | None:
        """The :class:`InputChanged` for an ``OSError`` raised while reading one of the inputs, else None."""
        if exc.filename is None or os.fspath(exc.filename) not in self.seen:
            return None
        return InputChanged(os.fspath(exc.filename), exc.strerror or str(exc))


def _skip_ws(b: bytes, i: int) -> int:
    while i < len(b) and b[i] in _WS:
        i += 1
    return i


def _string_end(b: bytes, i: int) -> int:
    """Index just past the string that starts with the quote at ``i``."""
    i += 1
    while True:
        j = b.find(b'"', i)
        if j < 0:
            raise EditError("unterminated string")
        k = j - 1
        while b[k] == 0x5C:  # count the backslashes before the quote
            k -= 1
        if (j - 1 - k) % 2 == 0:
            return j + 1
        i = j + 1


def _value_end(b: bytes, i: int) -> int:
    """Index just past the JSON value that starts at ``i`` (no validation beyond nesting and strings)."""
    c = b[i : i + 1]
    if c == b'"':
        return _string_end(b, i)
    if c in (b"{", b"["):
        depth = 0
        while i < len(b):
            ch = b[i]
            if ch == 0x22:
                i = _string_end(b, i)
                continue
            if ch in (0x7B, 0x5B):
                depth += 1
            elif ch in (0x7D, 0x5D):
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise EditError("unbalanced brackets")
    j = i
    while j < len(b) and b[j] not in b" \t\r\n,}]":
        j += 1
    if j == i:
        raise EditError(f"no value at byte {i}")
    return j


def members(b: bytes, start: int) -> tuple[list[tuple[str, int, int, int]], int]:
    """Members of the object whose ``{`` is at ``start``: ``[(key, key_start, value_start, value_end)]``, end."""
    if b[start : start + 1] != b"{":
        raise EditError("not a JSON object")
    out: list[Any] = []
    i = _skip_ws(b, start + 1)
    if b[i : i + 1] == b"}":
        return out, i + 1
    while True:
        if b[i : i + 1] != b'"':
            raise EditError(f"expected a key at byte {i}")
        key_end = _string_end(b, i)
        key = orjson.loads(b[i:key_end])
        j = _skip_ws(b, key_end)
        if b[j : j + 1] != b":":
            raise EditError(f"expected ':' at byte {j}")
        vs = _skip_ws(b, j + 1)
        ve = _value_end(b, vs)
        out.append((key, i, vs, ve))
        i = _skip_ws(b, ve)
        if b[i : i + 1] == b"}":
            return out, i + 1
        if b[i : i + 1] != b",":
            raise EditError(f"expected ',' or '}}' at byte {i}")
        i = _skip_ws(b, i + 1)


def set_key(b: bytes, start: int, key: str, value: bytes) -> bytes:
    """Set ``key`` to the raw JSON ``value`` in the object at ``start``; every other byte is kept.

    An existing key (every occurrence, should it be duplicated) has its value bytes replaced; otherwise the
    key is appended after the last member, separated the way the object separates its first two members.
    """
    mems, _end = members(b, start)
    hits = [m for m in mems if m[0] == key]
    if hits:
        out, pos = [], 0
        for _k, _ks, vs, ve in hits:
            out += [b[pos:vs], value]
            pos = ve
        return b"".join(out) + b[pos:]
    name = orjson.dumps(key)
    if not mems:
        i = _skip_ws(b, start + 1)
        return b[: start + 1] + name + b": " + value + b[i:]
    first_key_end = _string_end(b, mems[0][1])
    colon = b[first_key_end : mems[0][2]]  # the object's own ": " or ":" (with its spacing)
    lead = b[start + 1 : mems[0][1]]  # whitespace before the first key (newline + indent in pretty files)
    if lead:
        sep = b"," + lead
    elif len(mems) > 1:
        sep = b[mems[0][3] : mems[1][1]]
    else:
        sep = b", " if colon.endswith(b" ") else b","
    last_end = mems[-1][3]
    return b[:last_end] + sep + name + colon + value + b[last_end:]


def set_line_length(raw: bytes, length: int) -> bytes:
    """The JSONL line ``raw`` (no newline) with its top-level ``length`` set to ``length``."""
    start = _skip_ws(raw, 0)
    return set_key(raw, start, "length", str(int(length)).encode())


def set_dataset_keys(raw: bytes, updates: dict[str, dict[str, bytes]]) -> bytes:
    """The meta file with ``<dataset>.<key>`` set to each raw JSON value in ``updates``."""
    start = _skip_ws(raw, 0)
    for name, keys in updates.items():
        for key, value in keys.items():
            mems, _ = members(raw, start)
            hit = [m for m in mems if m[0] == name]
            if not hit:
                raise EditError(f"dataset {name!r} is not in the meta file")
            vs = hit[-1][2]  # the entry the loader uses when a name is duplicated
            raw = raw[:vs] + set_key(raw[vs:], 0, key, value)
    return raw


def write_replacing(
    path: Path, write: Callable[[BinaryIO], object], backup: bool, check: Callable[[], object] | None = None
) -> bool:
    """Write ``path`` atomically (:func:`internvl_data.fsio.atomic_file`, keeping the replaced file's mode); with
    ``backup`` the file being replaced is first kept as ``path.bak`` (:func:`keep_backup`). ``check`` runs just
    before the backup and the rename; what it raises leaves ``path`` untouched (:meth:`Inputs.check`).

    Returns False when ``path.bak`` already existed: it is left untouched (it holds the original of an earlier run,
    which a second run must not overwrite with the first run's output), so this run keeps no new backup.
    """
    kept = [True]

    def before_rename() -> None:
        pause = os.environ.get(PAUSE_ENV)
        if pause:
            time.sleep(float(pause))
        if check is not None:
            check()
        if backup and path.exists():
            kept[0] = keep_backup(path)

    with fsio.atomic_file(path, keep_mode=True, before_replace=before_rename) as fh:
        write(fh)
    return kept[0]


def keep_backup(path: Path) -> bool:
    """``path.bak`` := the current ``path``, never half a file: a hard link (instant, atomic), else an atomic copy.
    False (and nothing done) when ``path.bak`` exists."""
    bak = path.with_name(path.name + ".bak")
    if bak.exists() or bak.is_symlink():
        return False
    try:
        os.link(path, bak)
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system
        with open(path, "rb") as src, fsio.atomic_file(bak) as out:
            shutil.copyfileobj(src, out, 1 << 20)
        shutil.copystat(path, bak)
    return True


# -- the run: token lengths in worker processes, parts assembled in order, files replaced atomically ------------


def run_chunk(chunk: Any) -> tuple[str, int, list[tuple[int, str]]]:
    """Worker: rewrite the lines of one chunk into a part file.

    Returns (part path, lines in the chunk, [(0-based line within the chunk, problem)]).
    """
    from internvl_data.parallel import pause_before_reading
    from internvl_data.stats.hist import Tally
    from internvl_data.stats.worker import _STATE, BATCH, Record, scan_record

    ds = _STATE["datasets"][chunk.index]
    counter = _STATE["tokens"]
    pause_before_reading(ds.name, chunk.start)
    with open(ds.annotation, "rb") as f:
        f.seek(chunk.start)
        data = f.read(chunk.end - chunk.start)
    lines = data.split(b"\n")  # a trailing b"" keeps the final newline (or its absence) exactly
    problems: list[tuple[int, str]] = []
    tally = Tally()  # scan_record counts into it; lengths only needs the records
    batch: list[tuple[int, Record]] = []

    def flush() -> None:
        for (k, _rec), counts in zip(batch, counter.count_batch([r for _, r in batch])):
            if counts.error:
                problems.append((k, f"cannot be built ({counts.error}); left unchanged"))
                continue
            try:
                lines[k] = set_line_length(lines[k], counts.total)
            except EditError as exc:
                problems.append((k, f"cannot be edited ({exc}); left unchanged"))
        batch.clear()

    for k, raw in enumerate(lines):
        if k == len(lines) - 1 and raw == b"":
            break
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            problems.append((k, "not valid JSON (see `ivl-data validate`); left unchanged"))
            continue
        rec = scan_record(obj, ds, counter.settings, _STATE["sizes"], tally)
        if rec is None:
            problems.append((k, "not a record with `conversations`; left unchanged"))
        elif any(n == 0 for n in rec.tiles):
            problems.append((k, "an image cannot be read and the record declares no size; left unchanged"))
        else:
            batch.append((k, rec))
            if len(batch) >= BATCH:
                flush()
    if batch:
        flush()
    part = Path(_STATE["parts_dir"]) / f"{chunk.index:05d}-{chunk.start:016d}.part"
    part.write_bytes(b"\n".join(lines))
    return str(part), len(lines) - (lines[-1] == b""), problems


def init_lengths_worker(datasets: list, settings: Any, parts_dir: str) -> None:
    from internvl_data.stats.worker import _STATE, init_worker

    init_worker(datasets, settings, record_new=False)  # lengths does not write the media cache
    _STATE["parts_dir"] = parts_dir


@dataclass
class Outcome:
    written: list[Path]
    problems: list[str]  # "path:line: message"
    meta_lengths: dict[str, int]
    old_backups: list[Path] = field(default_factory=list)  # .bak files of an earlier run, kept (no new backup)


def write_lengths(
    meta_path: str,
    datasets: list,
    settings: Any,
    jobs: int,
    progress: bool,
    out_dir: Path | None,
    backup: bool,
    inputs: Inputs | None = None,
) -> Outcome:
    """Compute every line's token length and write the files (in place, or into ``out_dir``).

    ``inputs``: files read before (the meta file), checked with the annotation files before anything is written
    (:class:`InputChanged`)."""
    from internvl_data.parallel import run_pool
    from internvl_data.stats.plan import chunk_size, plan_file
    from internvl_data.stats.worker import Chunk

    inputs = inputs if inputs is not None else Inputs()
    files: dict[str, int] = {}  # annotation path -> index of the first dataset that uses it
    for i, d in enumerate(datasets):
        files.setdefault(os.path.realpath(d.annotation), i)
    cb = chunk_size(sum(inputs.add(datasets[i].annotation) for i in files.values()), jobs)
    try:
        plans = {i: plan_file(i, datasets[i].annotation, 1, cb) for i in files.values()}
    except OSError as exc:
        raise inputs.gone(exc) or exc from None
    targets = {
        i: (out_dir / Path(datasets[i].annotation).name if out_dir else Path(datasets[i].annotation))
        for i in files.values()
    }
    if out_dir and len({t.name for t in targets.values()}) < len(targets):
        raise EditError("two annotation files have the same name; write them in place or one meta at a time")
    parts: dict[int, list[tuple[int, str, int, list[tuple[int, str]]]]] = {i: [] for i in plans}
    # the workers' part files live in one scratch folder named like every temporary of ours: removed on any exit
    # (the pool's workers are stopped first), found and removed by the next run after a SIGKILL
    scratch_in = out_dir or Path(meta_path).resolve().parent
    with fsio.temp_dir(scratch_in / "ivl-lengths") as work_dir:
        chunks = [c for p in plans.values() for c in p.chunks]
        try:
            for c, (part, n_lines, probs) in run_pool(
                run_chunk,
                chunks,
                init_lengths_worker,
                (datasets, settings, str(work_dir)),
                jobs=jobs,
                ordered=False,
                progress=progress,
                label="lengths",
                weight=Chunk.size,
            ):
                parts[c.index].append((c.start, part, n_lines, probs))
        except fsio.OutputError:
            raise
        except OSError as exc:  # a worker's part file (a full disk): name the user's folder, not our scratch file
            if exc.filename is None or str(work_dir) in str(exc.filename):  # a failed write() has no filename
                raise fsio.output_error("write in", scratch_in, exc) from exc
            raise inputs.gone(exc) or exc from None  # an annotation file vanished while the workers read it
        problems: list[tuple[str, int, str]] = []
        file_lines: dict[int, int] = {}  # dataset index of the file -> its lines (edits keep the line count)
        for i, done in parts.items():
            first = 1
            for _start, _part, n_lines, probs in sorted(done):
                problems += [(datasets[i].annotation, first + k, msg) for k, msg in probs]
                first += n_lines
            file_lines[i] = first - 1
        inputs.check()  # every file still as the workers read it (and the meta file) before any is replaced
        written, old_bak = inputs.written, []
        for i, target in targets.items():

            def concatenate(out: BinaryIO, i: int = i) -> None:
                for _start, part, _n, _p in sorted(parts[i]):
                    with open(part, "rb") as src:
                        shutil.copyfileobj(src, out, 1 << 20)

            unchanged = functools.partial(inputs.check, datasets[i].annotation)
            if not write_replacing(target, concatenate, backup and out_dir is None, unchanged):
                old_bak.append(target.with_name(target.name + ".bak"))
            written.append(target)
    meta_lengths = {d.name: file_lines[files[os.path.realpath(d.annotation)]] for d in datasets}
    problems_text = [f"{path}:{line}: {msg}" for path, line, msg in sorted(problems)]
    return Outcome(list(written), problems_text, meta_lengths, old_bak)
