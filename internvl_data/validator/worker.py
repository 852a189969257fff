"""The worker side of `ivl-data validate`: one 4 MiB block of one annotation file -> findings and counts.

A block owns the lines that start in it; it hashes exactly its bytes (:func:`cache.block_digest`), checks its
lines with numbers counted from 1 (the parent re-bases them) and returns findings, counts, id keys and the
media paths it looked at, after --select/--ignore and a per-block --max-per-rule (:class:`validate.Keeper`).
A block that cannot be read (the file was deleted or made unreadable after the run started) comes back empty
with the reason in ``unreadable``: one lost file must not cost the findings of the others.
"""

from __future__ import annotations

import hashlib
from array import array
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from internvl_data.checks.findings import Finding
from internvl_data.checks.lines import LineCtx, check_line, slow_record
from internvl_data.checks.media import MediaChecker, clear_cache
from internvl_data.checks.records import check_record
from internvl_data.formats.lines import read_block as read_block_lines
from internvl_data.formats.meta import MetaEntry
from internvl_data.parallel import pause_before_reading
from internvl_data.validator import cache
from internvl_data.validator.keeper import Keeper
from internvl_data.validator.options import ValidateOptions

_ID_TYPES = (int, str, float)
_INT_KEYS = 1 << 63  # small non-negative int ids are their own key; other ids get a digest with this bit set
_MIX = 0x9E3779B97F4A7C15  # odd: multiplication is a bijection modulo 2**64
_MASK64 = (1 << 64) - 1


def id_key(rid: Any) -> int | None:
    """The 8-byte key by which IVL224 compares record ids (None: not an id, i.e. not an int, str or float).

    Small non-negative ints are their own key; other ints a bijective mix, strings and floats a blake2b digest
    (deterministic, so keys from different worker processes compare), all with the top bit set.
    """
    t = type(rid)
    if t is int and 0 <= rid < _INT_KEYS:
        return rid
    if t is int and -_INT_KEYS <= rid < 0:
        return ((rid * _MIX) & _MASK64) | _INT_KEYS
    if t not in _ID_TYPES:
        return None
    data = (b"s" if t is str else b"n") + str(rid).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") | _INT_KEYS


@dataclass
class BlockResult:
    """What one worker returns for one block (line numbers are 1-based within the block)."""

    digest: bytes
    lines: int
    records: int
    findings: list[Finding]
    suppressed: dict[tuple[str, str], int]  # (code, severity value) -> findings left out by --max-per-rule
    id_keys: array
    id_lines: array
    media_paths: set[str]
    unreadable: str | None = None  # why the block could not be read (the file vanished or became unreadable)


_STATE: dict[str, Any] = {}


def init_worker(entries: list[MetaEntry], opts: ValidateOptions) -> None:
    """Worker initializer (also used in-process): the run's entries and options, fresh media caches."""
    clear_cache()
    _STATE.clear()
    _STATE.update(entries=entries, opts=opts, media={})


def read_block(path: str, index: int, size: int) -> tuple[bytes, list[bytes]]:
    """Digest of block ``index`` and the lines that start in it (:func:`formats.lines.read_block`)."""
    start = index * cache.BLOCK
    block, found = read_block_lines(path, start, min(size, start + cache.BLOCK), size)
    return cache.block_digest(block), found


def scan_block(job: tuple[int, int, int]) -> BlockResult:
    """Check the lines of one block of dataset ``job[0]``: IVL0xx, IVL2xx and (per the media mode) IVL3xx."""
    ds, index, size = job
    entries: list[MetaEntry] = _STATE["entries"]
    opts: ValidateOptions = _STATE["opts"]
    me = entries[ds]
    pause_before_reading(me.name, index * cache.BLOCK)
    try:
        digest, lines = read_block(me.annotation_path, index, size)
    except OSError as exc:  # checked at the start, gone now: the driver reports the file, keeps the other findings
        return BlockResult(b"", 0, 0, [], {}, array("Q"), array("Q"), set(), exc.strerror or str(exc))
    ctx = LineCtx(path=me.annotation_path, dataset=me.name, template=opts.template, long_line=opts.long_line)
    media = None
    if opts.media != "off" and me.root_path:
        media = _STATE["media"].get(ds) or _STATE["media"].setdefault(ds, MediaChecker(me, opts))
        media.media_paths = set()  # per block: the parent unions them for the cache
    tokens = None
    if opts.model_dir:  # IVL4xx (stats engineer): token budgets with the checkpoint's tokenizer
        from internvl_data.checks.tokens import TokenChecker

        checkers = _STATE.setdefault("tokens", {})
        tokens = checkers.get(ds) or checkers.setdefault(ds, TokenChecker(me, opts))
    keep = Keeper(opts)
    id_keys, id_lines = array("Q"), array("Q")
    add_key, add_line = id_keys.append, id_lines.append
    records = 0
    lineno = 0
    # IVL009 times records whose media or token checks run; without them (--media off, no --model) a record's cost
    # is its parse and record rules, bounded by its length (IVL007), and the hot loop stays free of clock reads
    slow = opts.slow_record if (media is not None or tokens is not None) else 0
    for lineno, raw in enumerate(lines, 1):
        ctx.line = lineno
        started = perf_counter() if slow else 0.0
        obj, found = check_line(raw, ctx)
        if found:
            keep.add(found)
        if obj is None:
            continue
        records += 1
        found = check_record(obj, ctx)
        if found:
            keep.add(found)
        if media is not None:
            found = media.check(obj, ctx)
            if found:
                keep.add(found)
        if tokens is not None:
            found = tokens.check(obj, ctx)
            if found:
                keep.add(found)
        if slow and (took := perf_counter() - started) > slow:
            keep.add([slow_record(ctx, took, slow)])
        key = id_key(obj.get("id"))
        if key is not None:
            add_key(key)
            add_line(lineno)
    paths = media.media_paths if media is not None else set()
    return BlockResult(digest, lineno, records, keep.kept, keep.suppressed, id_keys, id_lines, paths)
