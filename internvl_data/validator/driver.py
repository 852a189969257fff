"""`validate(meta_path, **options) -> Report`: meta -> annotation files, checked in parallel -> merged findings.

Work unit: one 4 MiB block of one annotation file, checked by :func:`scan.scan_block` in a worker process.
This side plans the blocks, consults the cache, re-bases line numbers, finds duplicate ids across blocks,
applies --max-per-rule over the run, and writes the manifest. Memory is bounded by the block size times the
number of workers plus 16 bytes per record for duplicate-id detection.

An annotation file that vanishes or becomes unreadable after the run started (deleted, replaced by a folder, its
permissions taken away) is one IVL107 finding at its dataset's ``annotation`` line of the meta file; the
findings of the other files and of the lines of that file checked before are kept (exit 1, no manifest, nothing
cached for it). Exit 2 is only for a run that could check nothing.
"""

from __future__ import annotations

import functools
import os
import time
from array import array
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from internvl_data.checks import registry as rules
from internvl_data.checks.catalogue import emit
from internvl_data.checks.findings import Finding, Report, Severity
from internvl_data.checks.meta import at_key, check_declared_length
from internvl_data.errors import OutputError
from internvl_data.formats.meta import MetaEntry, MetaResult, load_meta
from internvl_data.parallel import run_pool, show_progress
from internvl_data.validator import cache, manifest
from internvl_data.validator.keeper import Keeper
from internvl_data.validator.options import ValidateOptions
from internvl_data.version import __version__

if TYPE_CHECKING:
    from internvl_data.validator.worker import BlockResult

SMALL = 8 << 20  # total annotation bytes below which no worker process is started


@dataclass
class FileResult:
    """One annotation file's outcome (what the cache stores)."""

    content_hash: str
    lines: int
    records: int
    findings: list[Finding] = field(default_factory=list)
    suppressed: dict[tuple[str, str], int] = field(default_factory=dict)  # (code, severity) -> left out
    media_paths: list[str] = field(default_factory=list)  # media looked at (a fresh result only: the cache keeps stats)
    unreadable: str | None = None  # why the file could not be read to its end (it vanished mid-run); never cached


# --------------------------------------------------------------------------------------------- parent side


def _plan(entries: list[MetaEntry], todo: list[int]) -> tuple[list[list[tuple[int, int, int]]], dict[int, str]]:
    """Per file to check, its jobs ``(dataset index, block index, file size)``; and ``{dataset index: why}`` for
    the files that can no longer be stat-ed (no jobs)."""
    plan: list[list[tuple[int, int, int]]] = []
    gone: dict[int, str] = {}
    for ds in todo:
        try:
            size = os.path.getsize(entries[ds].annotation_path)
        except OSError as exc:
            gone[ds] = exc.strerror or str(exc)
            plan.append([])
            continue
        plan.append([(ds, i, size) for i in range(max(1, -(-size // cache.BLOCK)))])
    return plan, gone


def _run_blocks(
    entries: list[MetaEntry], opts: ValidateOptions, jobs: list[tuple[int, int, int]]
) -> Generator[tuple[tuple[int, int, int], BlockResult], None, None]:
    """``(job, result)`` in job order: in this process for small inputs or one worker, else in the process pool."""
    from internvl_data.validator.worker import init_worker, scan_block  # not needed when every file is a cache hit

    small = sum(size for _, i, size in jobs if i == 0) < SMALL
    progress = show_progress(opts.progress) and len(jobs) >= 2
    return run_pool(
        scan_block,
        jobs,
        init_worker,
        (entries, opts),
        jobs=1 if small else opts.workers,
        progress=progress,
        label="validating",
    )


def _merge_file(me: MetaEntry, blocks: list[BlockResult], opts: ValidateOptions) -> FileResult:
    """Join the blocks of one file: global line numbers, cross-block duplicate ids, per-file --max-per-rule."""
    keep = Keeper(opts)
    base = records = 0
    keys, where = [], []
    media: set[str] = set()
    unreadable = None
    for n, b in enumerate(blocks):
        if b.unreadable is not None:  # the lines after this block cannot be numbered: the file ends here for us
            unreadable, blocks = b.unreadable, blocks[:n]
            break
        keep.add(_shift(b.findings, base))
        keep.count(b.suppressed)
        keys.append(b.id_keys)
        where.append((b.id_lines, base))
        media |= b.media_paths
        base += b.lines
        records += b.records
    if keep.wants("IVL224") and keys:
        found, more = _duplicate_ids(me, keys, where, opts.max_per_rule, [b.lines for b in blocks])
        keep.add(found)
        keep.count({("IVL224", rules.get("IVL224").severity.value): more} if more else {})
    keep.kept.sort(key=lambda f: (f.line, f.col, f.code))
    return FileResult(
        cache.combine([b.digest for b in blocks]), base, records, keep.kept, keep.suppressed, sorted(media), unreadable
    )


def _shift(findings: list[Finding], base: int) -> Iterator[Finding]:
    """Block-relative line numbers -> file line numbers (positional construction: this runs per finding)."""
    for f in findings:
        yield (
            f
            if f.line <= 0 or not base
            else Finding(f.code, f.severity, f.path, f.line + base, f.col, f.message, f.json_path, f.hint, f.dataset)
        )


def _duplicate_ids(
    me: MetaEntry, keys: list[array], where: list[tuple[array, int]], cap: int | None, block_lines: list[int]
) -> tuple[list[Finding], int]:
    """IVL224 for every id seen before in the file (one stable sort of 8-byte keys), in line order.

    With a cap, only the first ``cap`` findings are built; the second value counts the others. The workers
    keep digests only, so the ids named in the messages are read back from the blocks that hold those lines.
    """
    import numpy as np

    k = np.concatenate([np.frombuffer(a, dtype=np.uint64) for a in keys])
    if len(k) < 2:
        return [], 0
    ln = np.concatenate([np.frombuffer(a, dtype=np.uint64) + np.uint64(b) for a, b in where])
    order = np.argsort(k, kind="stable")
    ks, ls = k[order], ln[order]
    dup = np.flatnonzero(ks[1:] == ks[:-1]) + 1
    starts = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]])
    first = ls[starts[np.searchsorted(starts, dup, side="right") - 1]]
    at = np.argsort(ls[dup], kind="stable")
    shown = at if cap is None else at[:cap]
    lines, firsts = ls[dup][shown].tolist(), first[shown].tolist()
    ids = _ids_at(me.annotation_path, lines, block_lines)
    found = [
        emit(
            "IVL224",
            me.annotation_path,
            line,
            f"duplicate id {ids[line]!r} (first used at line {was})"
            if line in ids
            else f"duplicate id (first used at line {was})",
            json_path="$.id",
            dataset=me.name,
        )
        for line, was in zip(lines, firsts)
    ]
    return found, len(at) - len(shown)


def _ids_at(path: str, lines: list[int], block_lines: list[int]) -> dict[int, Any]:
    """``{line: id}`` for 1-based ``lines`` of ``path``, reading only the blocks that hold them (each once).

    ``block_lines[i]`` is the number of lines that start in block ``i``. A file that changed since the scan (its
    line no longer has the id) simply yields no name."""
    import bisect

    import orjson

    from internvl_data.validator.worker import read_block

    ends, total = [], 0
    for n in block_lines:
        total += n
        ends.append(total)
    wanted: dict[int, list[int]] = {}
    for line in lines:
        i = bisect.bisect_left(ends, line)
        if i < len(ends):
            wanted.setdefault(i, []).append(line)
    out: dict[int, Any] = {}
    try:
        size = os.path.getsize(path)
        for i, group in sorted(wanted.items()):
            block = read_block(path, i, size)[1]
            base = ends[i] - block_lines[i]
            for line in group:
                try:
                    obj = orjson.loads(block[line - base - 1])
                except (IndexError, orjson.JSONDecodeError):
                    continue
                if type(obj) is dict and "id" in obj:
                    out[line] = obj["id"]
    except OSError:
        pass
    return out


def _cache_key(me: MetaEntry, content_hash: str, opts: ValidateOptions) -> str:
    return cache.key_of(
        content_hash,
        me.name,
        me.raw,
        me.annotation_path,
        me.root_path,
        opts.key_fields(),
        __version__,
        cache.BLOCK,
        _code_stamp(),
    )


@functools.lru_cache(maxsize=1)
def _code_stamp() -> list:
    """(name, size, mtime) of every module of the package: an edited check, or anything it uses, invalidates
    cached results (same version). All modules, not a hand-kept list that misses a new dependency."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the internvl_data folder
    names = sorted(
        os.path.relpath(os.path.join(d, f), here) for d, _, fs in os.walk(here) for f in fs if f.endswith(".py")
    )
    return [[name, *(cache.stat_signature(os.path.join(here, name)) or [])[:2]] for name in names]


def _to_payload(r: FileResult, media_stats: bool) -> dict:
    return {
        "content_hash": r.content_hash,
        "lines": r.lines,
        "records": r.records,
        "suppressed": [[code, sev, n] for (code, sev), n in r.suppressed.items()],
        "findings": [
            [f.code, f.severity.value, f.path, f.line, f.col, f.message, f.json_path, f.hint, f.dataset]
            for f in r.findings
        ],
        "media_stats": [[p, cache.stat_signature(p)] for p in r.media_paths] if media_stats else [],
    }


def _from_payload(p: dict) -> FileResult | None:
    """A cached result, or None when the entry is damaged (then the file is checked again)."""
    try:
        found = [Finding(c, Severity(s), *rest) for c, s, *rest in p["findings"]]
        left = {(code, Severity(sev).value): int(n) for code, sev, n in p["suppressed"]}
        return FileResult(p["content_hash"], p["lines"], p["records"], found, left)
    except (KeyError, TypeError, ValueError):
        return None


def validate(meta_path: str | os.PathLike, options: ValidateOptions | None = None, **kwargs: Any) -> Report:
    """Check a meta file and every annotation file it lists; findings come back as data in a :class:`Report`.

    Keyword options are the fields of :class:`ValidateOptions`. With ``write_manifest=True`` (the CLI's default;
    the library writes nothing unasked) a clean run writes the manifest (default: beside the meta file) and a run
    with errors removes an earlier one.
    """
    t0 = time.perf_counter()
    opts = _options(options, kwargs)
    meta = load_meta(os.fspath(meta_path))
    report, done = _check(meta, opts)
    report.seconds = time.perf_counter() - t0
    if opts.write_manifest and done and report.ok:
        try:
            manifest.write(meta_path, opts, done)
            return report
        except OutputError:
            raise
        except OSError as exc:  # the meta or an annotation file vanished after it was checked (the manifest hashes it)
            report.findings.append(_vanished_after(os.fspath(meta_path), done, exc))
    if opts.write_manifest:  # an earlier clean run's manifest must not vouch for this data any more
        manifest.remove(meta_path, opts)
    return report


def validate_jsonl(paths: list[str], options: ValidateOptions | None = None, **kwargs: Any) -> Report:
    """Check JSONL files directly, without a meta file (IVL0xx and IVL2xx; no media root, so no IVL3xx)."""
    t0 = time.perf_counter()
    opts = _options(options, kwargs)
    meta = MetaResult()
    for path in paths:
        if os.path.isfile(path):
            meta.entries.append(MetaEntry(path, None, {}, path, "", 0))
        else:
            meta.findings.append(emit("IVL107", path, 0, f"annotation file {path} not found or not a file"))
    report, _ = _check(meta, opts)
    report.seconds = time.perf_counter() - t0
    return report


def _options(options: ValidateOptions | None, kwargs: dict[str, Any]) -> ValidateOptions:
    """An options object, keyword options applied on top (unknown names: ValueError listing the valid ones)."""
    if options is None:
        return ValidateOptions.from_kwargs(**kwargs)
    return options.updated(**kwargs) if kwargs else options


def _check(meta: MetaResult, opts: ValidateOptions) -> tuple[Report, list[tuple[MetaEntry, FileResult]]]:
    """Check every readable annotation file of ``meta`` (cache first); the report and (entry, result) pairs of the
    files checked to their end."""
    store = _open_cache(opts.cache_dir)
    todo = [i for i, me in enumerate(meta.entries) if me.annotation_path and os.path.isfile(me.annotation_path)]
    results: dict[int, FileResult] = {}
    hashes: dict[int, str] = {}
    if store is not None:
        for ds in todo:
            try:
                hashes[ds] = store.file_hash(meta.entries[ds].annotation_path)
            except OSError:  # gone since the isfile above: the scan reports it
                continue
            hit = store.load(_cache_key(meta.entries[ds], hashes[ds], opts))
            if hit is not None and (result := _from_payload(hit)) is not None:
                results[ds] = result
    results.update(_scan(meta, [ds for ds in todo if ds not in results], opts, store, hashes))
    done = [(meta.entries[ds], results[ds]) for ds in todo if results[ds].unreadable is None]
    return _report(meta, todo, results, opts), done


def _open_cache(folder: str | None) -> cache.Cache | None:
    """The result store, or None (run uncached) without one or when the folder cannot be created: an unusable
    cache folder only costs speed."""
    if not folder:
        return None
    try:
        return cache.Cache(folder)
    except OSError:
        return None


def _scan(
    meta: MetaResult, todo: list[int], opts: ValidateOptions, store: cache.Cache | None, hashes: dict[int, str]
) -> dict[int, FileResult]:
    """Check the files ``todo`` (dataset indexes); block results are joined per file as they arrive."""
    plan, gone = _plan(meta.entries, todo)
    out: dict[int, FileResult] = {ds: FileResult("", 0, 0, unreadable=why) for ds, why in gone.items()}
    results = _run_blocks(meta.entries, opts, [job for jobs in plan for job in jobs])
    try:
        for ds, jobs in zip(todo, plan):
            if jobs:
                blocks = [next(results)[1] for _ in jobs]
                out[ds] = _finish(meta.entries[ds], blocks, opts, store, hashes.get(ds))
    finally:
        results.close()
    return out


def _finish(
    me: MetaEntry, blocks: list[BlockResult], opts: ValidateOptions, store: cache.Cache | None, known_hash: str | None
) -> FileResult:
    r = _merge_file(me, blocks, opts)
    if store is not None and r.unreadable is None and (known_hash is None or known_hash == r.content_hash):
        store.store(_cache_key(me, r.content_hash, opts), _to_payload(r, opts.media != "off"))
    return r


def _report(meta: MetaResult, todo: list[int], results: dict[int, FileResult], opts: ValidateOptions) -> Report:
    keep = Keeper(opts)
    declared = []  # per file: its meta `length` against its lines, or why it could not be read to its end
    for ds in todo:
        me, r = meta.entries[ds], results[ds]
        if r.unreadable is None:
            declared += check_declared_length(me, r.lines)
        else:
            declared.append(_vanished(me, r.unreadable, "while being checked", _checked(r.lines)))
    keep.add(sorted(meta.findings + declared, key=Finding.sort_key))
    for ds in todo:
        keep.add(results[ds].findings)
        keep.count(results[ds].suppressed)
    found = keep.kept
    if opts.strict:
        found = [replace(f, severity=Severity.ERROR) if f.severity is Severity.WARNING else f for f in found]
    report = keep.report(found, opts.strict, files=len(todo), records=sum(results[ds].records for ds in todo))
    report.datasets = [me.name for me in meta.entries]
    report.unreadable = any(f.code == "IVL101" and f.line == 0 for f in meta.findings)  # kept or not
    return report


def _checked(lines: int) -> str:
    """What of a file that vanished mid-run was checked: its first ``lines`` lines (their findings are kept)."""
    if not lines:
        return "none of its lines were checked"
    return f"only its first {lines:,} line{'s were' if lines > 1 else ' was'} checked"


def _vanished(me: MetaEntry, why: str, when: str, checked: str = "") -> Finding:
    """IVL107 for an annotation file that could not be read although it was there when the run started (``when``;
    ``checked``: what of it was checked): at its dataset's ``annotation`` line of the meta file (the file itself
    for ``--jsonl``)."""
    what = f"vanished or became unreadable {when} ({me.annotation_path}: {why})" + (f"; {checked}" if checked else "")
    if not me.meta_path:
        return emit("IVL107", me.annotation_path, 0, f"annotation file {what}")
    return at_key("IVL107", me, "annotation", f"annotation file {me.raw.get('annotation')!r} {what}")


def _vanished_after(meta_path: str, done: list[tuple[MetaEntry, FileResult]], exc: OSError) -> Finding:
    """The finding for a file the manifest could not read (hash, size) after a clean check: the data did not pass."""
    why = exc.strerror or str(exc)
    gone = os.path.abspath(exc.filename) if exc.filename is not None else ""
    for me, _ in done:
        if os.path.abspath(me.annotation_path) == gone:
            return _vanished(me, why, "after it was checked, before the manifest was written")
    if gone != os.path.abspath(meta_path):
        raise exc
    return emit(
        "IVL101",
        meta_path,
        0,
        f"the meta file vanished or became unreadable after it was checked, before the manifest was written ({why})",
    )


def meta_unusable(report: Report) -> bool:
    """True when the meta file could not be opened at all (missing, a folder, unreadable): nothing was checked.

    A meta file that was read and is wrong (not JSON, a BOM, ``{}``, a dataset that is not an object) is a data
    error with a location, like any other finding (exit 1).
    """
    return report.unreadable


def exit_code(report: Report, strict: bool = False) -> int:
    """0 clean (warnings allowed unless strict), 1 errors, 2 nothing could be checked (meta file not readable)."""
    if meta_unusable(report):
        return 2
    counts = report.counts()
    return 1 if counts[Severity.ERROR] or (strict and counts[Severity.WARNING]) else 0
