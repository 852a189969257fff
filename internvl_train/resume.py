"""Exact resume: which checkpoint to continue from, and whether continuing still means the same run.

A run continues from the newest ``checkpoint-N`` that holds the completion marker (:data:`MARKER`, written last
by the trainer's save callback), either because ``--resume`` asks for it or automatically when ``output_dir``
holds a checkpoint and ``overwrite_output_dir`` is false (as the official ``main()`` does). HF Trainer's
``resume_from_checkpoint`` then restores weights, optimizer, scheduler, RNG states and the sampler position;
the augmentation seeds follow from (seed, epoch, index).

Before that, :func:`prepare` refuses (one line, exit 2) when continuing would not be the same run:

- the data changed since the run started: the run's manifest (``output_dir/`` :data:`RUN_INFO`, written at the
  start of every run) is checked against the files with ``internvl_data.validator.manifest.check``, which names
  the dataset;
- a key that changes the run's meaning changed (anything but :data:`FREE_KEYS`: logging, saving, workers), or
  the number of processes (the global batch).

Rank 0 also removes checkpoints without the marker (a save killed half-way) and cuts ``metrics.jsonl`` back to
the resumed step, so the log has neither a gap nor a duplicate step.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from internvl_train.errors import IvlTrainError

MARKER = "ivl-complete.json"  # checkpoint-N/ivl-complete.json, written last (atomically) when the save is complete
RUN_INFO = "ivl-run.json"  # output_dir/ivl-run.json: the resolved config, processes and data manifest of the run
METRICS = "metrics.jsonl"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")

# Keys that may change between a run and its resumption: they change what is logged or saved, not what is trained.
FREE_KEYS = frozenset(
    {
        "output_dir",  # the run info was read from it: the same folder, however it is spelt
        "logging_steps",
        "save_steps",
        "save_total_limit",
        "report_to",
        "dataloader_num_workers",
        "overwrite_output_dir",
        "merge_lora",
        "max_skip_ratio",
        "data_manifest",
        "trust_remote_code",
    }
)


class ResumeError(IvlTrainError, ValueError):
    """Resuming would not continue the same run (or cannot); the message says why and what to do."""


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: Path
    complete: bool


def checkpoints(output_dir: str | os.PathLike) -> list[Checkpoint]:
    """The ``checkpoint-N`` folders of a run, by step."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    out = []
    for entry in root.iterdir():
        m = CHECKPOINT_RE.match(entry.name)
        if m and entry.is_dir():
            out.append(Checkpoint(int(m.group(1)), entry, (entry / MARKER).is_file()))
    return sorted(out, key=lambda c: c.step)


def latest_complete(output_dir: str | os.PathLike) -> Checkpoint | None:
    done = [c for c in checkpoints(output_dir) if c.complete]
    return done[-1] if done else None


def _fresh_hint(cfg: Any) -> str:
    return f"start over with overwrite_output_dir=true or another output_dir than {cfg.output_dir}"


def find_resume(cfg: Any, resume: bool | str | None = None) -> Checkpoint | None:
    """The checkpoint to continue from: ``resume`` True (``--resume``), a path (``--resume DIR``), or None
    (automatic: the newest complete checkpoint unless ``overwrite_output_dir``). None: start from scratch."""
    if isinstance(resume, str):
        path = Path(resume)
        m = CHECKPOINT_RE.match(path.name)
        if not path.is_dir() or m is None:
            raise ResumeError(f"--resume {resume}: not a checkpoint-N folder")
        if not (path / MARKER).is_file():
            raise ResumeError(f"--resume {resume}: incomplete checkpoint (no {MARKER}: its save did not finish)")
        return Checkpoint(int(m.group(1)), path, True)
    if resume is None and cfg.overwrite_output_dir:
        return None
    found = latest_complete(cfg.output_dir)
    if found is None and resume:
        have = checkpoints(cfg.output_dir)
        why = f"only incomplete ones ({', '.join(c.path.name for c in have)})" if have else "none"
        raise ResumeError(f"--resume: {cfg.output_dir} has no complete checkpoint to resume from ({why})")
    return found


# -- is it still the same run? -----------------------------------------------------------------------------------------


def read_run_info(output_dir: str | os.PathLike) -> dict[str, Any] | None:
    try:
        doc = json.loads(Path(output_dir, RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def write_run_info(cfg: Any, world_size: int, manifest_path: str | os.PathLike | None) -> Path:
    """Record what the run means (rank 0, at its start, after the data gate): the resolved config, the number
    of processes and the data manifest that vouched for the data."""
    from internvl_data.fsio import write_atomic

    manifest = None
    if manifest_path is not None:
        try:
            manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
    doc = {"format": 1, "world_size": world_size, "config": cfg.resolved_dict(), "data_manifest": manifest}
    path = Path(cfg.output_dir, RUN_INFO)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    return path


def meaning_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """``key (old -> new)`` for every changed key outside :data:`FREE_KEYS`."""
    out = []
    for key in sorted(set(before) | set(after)):
        if key in FREE_KEYS:
            continue
        old, new = before.get(key), after.get(key)
        if old != new:
            out.append(f"{key} ({old!r} -> {new!r})")
    return out


def data_changes(cfg: Any, manifest: dict[str, Any] | None) -> list[str]:
    """Why the data is not the data the run started with (the manifest check's reasons; empty: the same)."""
    if not manifest:
        return []
    from internvl_data.validator import manifest as manifest_mod

    with tempfile.TemporaryDirectory(prefix="ivl-resume-") as tmp:
        path = Path(tmp, "manifest.json")
        path.write_text(json.dumps(manifest), encoding="utf-8")
        reasons = manifest_mod.check(cfg.meta_path, path)
    # a newer ivl-data is not a data change; the rest end in ': run `ivl-data validate ...`', not wanted here
    return [
        r.split(": run `")[0].removesuffix(" since it was validated")
        for r in reasons
        if not r.startswith("manifest written by")
    ]


def check_same_run(cfg: Any, world_size: int, point: Checkpoint) -> None:
    """Raise ResumeError when continuing from ``point`` would not be the run that wrote it."""
    info = read_run_info(cfg.output_dir)
    if info is None:
        return  # a run of an older ivl-train: nothing to compare
    data = data_changes(cfg, info.get("data_manifest"))
    if data:
        more = f"; and {len(data) - 1} more change{'s' if len(data) > 2 else ''}" if len(data) > 1 else ""
        raise ResumeError(
            f"resume refused: the data changed since {point.path.name} was written ({data[0]}{more}); "
            f"restore the data, or {_fresh_hint(cfg)}"
        )
    changed = meaning_changes(info.get("config") or {}, cfg.resolved_dict())
    if info.get("world_size") not in (None, world_size):
        changed.append(f"processes ({info['world_size']} -> {world_size})")
    if changed:
        raise ResumeError(
            f"resume refused: {', '.join(changed)} changed since {point.path.name} was written (only logging, "
            f"saving and worker settings may change); restore them, or {_fresh_hint(cfg)}"
        )


# -- rank 0's tidy-up before continuing --------------------------------------------------------------------------------


def discard_incomplete(output_dir: str | os.PathLike, after_step: int, *, complete_too: bool = False) -> list[str]:
    """Remove checkpoint folders without the marker (``complete_too``: every one) whose step is above
    ``after_step``; their names."""
    removed = []
    for c in checkpoints(output_dir):
        if (complete_too or not c.complete) and c.step > after_step:
            shutil.rmtree(c.path, ignore_errors=True)
            removed.append(c.path.name)
    return removed


def truncate_metrics(output_dir: str | os.PathLike, step: int) -> int:
    """Keep the ``metrics.jsonl`` lines up to ``step`` (and drop a torn last line); returns the lines dropped."""
    from internvl_data.fsio import write_atomic

    path = Path(output_dir, METRICS)
    try:
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return 0
    keep, dropped = [], 0
    for raw in lines:
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
            ok = isinstance(rec, dict) and isinstance(rec.get("step"), int) and rec["step"] <= step
        except ValueError:
            ok = False
        if ok:
            keep.append(raw)
        else:
            dropped += 1
    if dropped:
        write_atomic(path, b"".join(line + b"\n" for line in keep))
    return dropped


def prepare(cfg: Any, world_size: int, resume: bool | str | None = None, *, is_main: bool = True) -> Checkpoint | None:
    """Choose the checkpoint, check it is the same run, and (rank 0) tidy the output folder. Call it after the
    config is resolved and before the data gate and :func:`write_run_info`; pass the result's ``path`` to
    ``Trainer.train(resume_from_checkpoint=...)``. Every rank gets the same answer (same files)."""
    point = find_resume(cfg, resume)
    if point is not None:
        check_same_run(cfg, world_size, point)
    if is_main:  # from scratch: a killed run's half-written checkpoints and its log go too
        step = point.step if point is not None else 0
        # overwrite_output_dir starts over: the old run's checkpoints must not be resumed from later on
        discard_incomplete(cfg.output_dir, step, complete_too=point is None and cfg.overwrite_output_dir)
        truncate_metrics(cfg.output_dir, step)
    return point
