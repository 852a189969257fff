"""``ivl-data stats``: what a mixture contains after ``repeat_time``, per dataset and for the mixture.

:func:`compute` plans newline-aligned chunks over the lines each dataset contributes, scans them in worker
processes (:mod:`.worker`), merges the per-chunk :class:`Tally` objects and scales them by the repeat factor.
:class:`StatsResult` turns the tallies into pandas DataFrames: ``summary()`` (one row per dataset plus the
mixture, distributions flattened as ``<metric>_<stat>``) and ``distributions()`` (long form).

A dataset whose annotation file vanishes or becomes unreadable while it is counted is left out of every number
(a part of it would be wrong numbers) and named in :attr:`StatsResult.unreadable`; the others are counted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from internvl_data.media import sizes as stats_media
from internvl_data.parallel import run_pool
from internvl_data.stats.hist import STAT_NAMES, Tally
from internvl_data.stats.plan import FilePlan, chunk_size, plan_file, repeat_factor
from internvl_data.stats.worker import Chunk, Dataset, Settings, init_worker, run_chunk

if TYPE_CHECKING:
    import pandas as pd

MIXTURE = "(mixture)"
KINDS = ("text", "single", "multi", "video")
# Per-record (or per-image / per-video) distributions, in report order.
MEDIA_METRICS = (
    "turns",
    "chars",
    "images",
    "tiles_per_record",
    "tiles_per_image",
    "image_width",
    "image_height",
    "video_frames",
)
TOKEN_METRICS = ("text_tokens", "image_tokens", "total_tokens", "supervised_tokens")
MEDIA_COUNTS = ("skipped_lines", "images_unreadable", "images_unknown_size", "videos_unreadable")
TOKEN_COUNTS = (
    "over_length",
    "truncated_image",
    "zero_supervised",
    "official_mismatch",
    "video_cannot_fit",
    "build_errors",
)


@dataclass
class DatasetStats:
    """One dataset's numbers; ``tally`` is already scaled by the repeat factor (effective counts)."""

    name: str
    annotation: str
    repeat_time: float
    lines: int
    used_lines: int
    tally: Tally = field(default_factory=Tally)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, why): the first lines not counted

    @property
    def effective_records(self) -> int:
        return self.used_lines * repeat_factor(self.repeat_time)


@dataclass
class StatsResult:
    """Everything ``stats`` reports; DataFrames are built on demand (pandas is imported lazily)."""

    meta: str
    settings: Settings
    datasets: list[DatasetStats]
    global_batch_size: int | None = None
    unreadable: list[tuple[str, str, str]] = field(default_factory=list)  # (dataset, annotation, why): left out

    @property
    def with_model(self) -> bool:
        return self.settings.model_dir is not None

    def mixture(self) -> DatasetStats:
        total = Tally()
        for d in self.datasets:
            total.merge(d.tally)
        lines = sum(d.lines for d in self.datasets)
        used = sum(d.effective_records for d in self.datasets)
        return DatasetStats(MIXTURE, "", 1, lines, used, total)

    def metrics(self) -> tuple[str, ...]:
        return MEDIA_METRICS + (TOKEN_METRICS if self.with_model else ())

    def rows(self) -> list[dict[str, Any]]:
        """One wide row per dataset and one for the mixture (plain Python values; NaN where undefined)."""
        total_effective = sum(d.effective_records for d in self.datasets)
        counts = MEDIA_COUNTS + (TOKEN_COUNTS if self.with_model else ())
        out = []
        for d in [*self.datasets, self.mixture()]:
            t = d.tally
            row: dict[str, Any] = {
                "dataset": d.name,
                "annotation": d.annotation,
                "repeat_time": d.repeat_time if d.name != MIXTURE else math.nan,
                "lines": d.lines,
                "used_lines": d.used_lines if d.name != MIXTURE else math.nan,
                "effective_records": d.effective_records,
                "share": d.effective_records / total_effective if total_effective else math.nan,
            }
            row.update({k: t.counts.get("kind_" + k, 0) for k in KINDS})
            row.update({k: t.counts.get(k, 0) for k in counts})
            row["images_total"] = _sum(t, "images")
            row["tiles_total"] = _sum(t, "tiles_per_record")
            if self.with_model:
                row["tokens_total"] = _sum(t, "total_tokens")
                row["supervised_tokens_total"] = _sum(t, "supervised_tokens")
                gbs = self.global_batch_size
                row["steps_per_epoch"] = math.ceil(d.effective_records / gbs) if gbs else math.nan
            for metric in self.metrics():
                desc = t.hists.get(metric)
                stats = desc.describe() if desc is not None else _empty()
                row.update({f"{metric}_{s}": stats[s] for s in STAT_NAMES})
            out.append(row)
        return out

    def summary(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows())

    def distributions(self) -> pd.DataFrame:
        """Long form: one row per (dataset, metric) with count, mean, p50, p90, p99, max."""
        import pandas as pd

        records = []
        for row in self.rows():
            for metric in self.metrics():
                records.append(
                    {"dataset": row["dataset"], "metric": metric, **{s: row[f"{metric}_{s}"] for s in STAT_NAMES}}
                )
        return pd.DataFrame(records)

    def settings_dict(self) -> dict[str, Any]:
        out = asdict(self.settings)
        out.pop("cache_dir", None)
        out["global_batch_size"] = self.global_batch_size
        return out


def _located(path: str, problems: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(byte offset, why) -> (line number, why): only for the few lines stats names."""
    if not problems:
        return []
    from internvl_data.formats.lines import line_numbers

    return list(zip(line_numbers(path, [o for o, _ in problems]), [m for _, m in problems]))


def _sum(t: Tally, metric: str) -> int:
    h = t.hists.get(metric)
    return h.total_sum() if h is not None else 0


def _empty() -> dict[str, float]:
    return {s: (0 if s == "count" else math.nan) for s in STAT_NAMES}


def compute(
    meta_path: str,
    datasets: list[tuple[Dataset, float]],
    settings: Settings,
    jobs: int = 1,
    progress: bool = False,
    global_batch_size: int | None = None,
) -> StatsResult:
    """Scan every dataset's used lines in ``jobs`` processes and return the merged, repeat-scaled result."""
    gone: dict[int, str] = {}  # dataset index -> why its annotation file could not be read (it vanished mid-run)
    sizes = [_size(d.annotation, i, gone) for i, (d, _) in enumerate(datasets)]
    cb = chunk_size(sum(sizes), jobs)
    plans = [_plan(i, d.annotation, r, cb, gone) for i, (d, r) in enumerate(datasets)]
    chunks = [c for p in plans for c in p.chunks]
    tallies = [Tally() for _ in datasets]
    new: dict[str, list[int]] = {}
    names = [d for d, _ in datasets]
    for _chunk, (index, tally, fresh, unreadable) in run_pool(
        run_chunk,
        chunks,
        init_worker,
        (names, settings),
        jobs=jobs,
        ordered=False,
        progress=progress,
        label="stats",
        weight=Chunk.size,
    ):
        if unreadable is not None:
            gone.setdefault(index, unreadable)
            continue
        tallies[index].merge(tally)
        new.update(fresh)
    stats_media.save(Path(settings.cache_dir) if settings.cache_dir else None, new)
    result = []
    for i, ((d, r), p, t) in enumerate(zip(datasets, plans, tallies)):
        if i in gone:
            continue
        try:
            problems = _located(d.annotation, t.problems)
        except OSError:  # gone after it was counted (the numbers stand): its lines are counted, not named
            problems = []
        lines, used = t.lines if p.lines < 0 else p.lines, t.lines if p.used_lines < 0 else p.used_lines
        result.append(DatasetStats(d.name, d.annotation, r, lines, used, t.scaled(repeat_factor(r)), problems))
    left_out = [(datasets[i][0].name, datasets[i][0].annotation, why) for i, why in sorted(gone.items())]
    return StatsResult(meta_path, settings, result, global_batch_size, left_out)


def _size(path: str, index: int, gone: dict[int, str]) -> int:
    """The file's size; 0 and ``gone[index]`` when it vanished since the meta file was checked."""
    try:
        return Path(path).stat().st_size
    except OSError as exc:
        gone[index] = exc.strerror or str(exc)
        return 0


def _plan(index: int, path: str, repeat_time: float, chunk_bytes: int, gone: dict[int, str]) -> FilePlan:
    """:func:`plan_file`; no chunks (and ``gone[index]``) for a file that cannot be read."""
    if index not in gone:
        try:
            return plan_file(index, path, repeat_time, chunk_bytes)
        except OSError as exc:
            gone[index] = exc.strerror or str(exc)
    return FilePlan(0, 0, 0, [])
