"""The stats worker: one byte range of one annotation file -> a :class:`Tally` (flat memory).

Runs in worker processes (no pandas here). Per record it counts the kind, turns, characters, images, image sizes
(headers, through :mod:`internvl_data.media.sizes`), tiles per image (``tiling.num_tiles`` under the dataset's
``max_dynamic_patch``, the multi-image budget ``max(1, max_dynamic_patch // n)``) and video frames; with a model
it adds exact token counts from :mod:`internvl_data.stats.tokens`, in batches.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from internvl_data.formats.models import declared_size, record_kind
from internvl_data.media.sizes import MediaSizes
from internvl_data.stats.hist import Tally
from internvl_data.stats.types import Chunk, Dataset, Record, Settings

__all__ = ["BATCH", "Chunk", "Dataset", "Record", "Settings", "init_worker", "run_chunk", "scan_line", "scan_record"]

BATCH = 256  # records per TokenCounter.add_batch call


_STATE: dict = {}


def init_worker(datasets: list[Dataset], settings: Settings, record_new: bool = True) -> None:
    """Process initialiser: the datasets, settings, media cache and (with a model) the token counter.

    ``record_new``: keep the header reads for :func:`stats_media.save` (stats; lengths does not save them).
    """
    from internvl_data.media import sizes as stats_media

    cache_dir = Path(settings.cache_dir) if settings.cache_dir else None
    _STATE["datasets"] = datasets
    _STATE["settings"] = settings
    _STATE["sizes"] = MediaSizes(stats_media.load(cache_dir), record_new)
    _STATE["tokens"] = None
    if settings.model_dir:
        from internvl_data.stats.tokens import TokenCounter

        _STATE["tokens"] = TokenCounter.load(settings)


NOT_A_RECORD = "not a JSON object with a `conversations` list"


def run_chunk(chunk: Chunk) -> tuple[int, Tally, dict[str, list[int]], str | None]:
    """Scan one chunk; returns (dataset index, tally, new media cache entries, None), or (dataset index, empty
    tally, {}, why) when the annotation file can no longer be read (it vanished after the run started)."""
    from internvl_data.formats import lines
    from internvl_data.parallel import pause_before_reading

    ds: Dataset = _STATE["datasets"][chunk.index]
    settings: Settings = _STATE["settings"]
    sizes: MediaSizes = _STATE["sizes"]
    counter = _STATE["tokens"]
    tally = Tally()
    batch: list[Record] = []
    pause_before_reading(ds.name, chunk.start)
    try:
        for _lineno, offset, raw in lines.iter_lines(ds.annotation, chunk.start, chunk.end, chunk.first_lineno):
            tally.lines += 1
            rec = scan_line(raw, ds, settings, sizes, tally)
            if rec is None:
                tally.problem(offset, NOT_A_RECORD)
                continue
            if counter is None or 0 in rec.tiles:  # no tokens without every image's size
                continue
            rec.offset = offset
            batch.append(rec)
            if len(batch) >= BATCH:
                counter.add_batch(batch, tally)
                batch = []
    except OSError as exc:  # the annotation file (media errors are counts): compute leaves the dataset out
        if exc.filename not in (None, ds.annotation):
            raise
        return chunk.index, Tally(), {}, exc.strerror or str(exc)
    if batch:
        counter.add_batch(batch, tally)
    return chunk.index, tally, sizes.take_new(), None


def scan_line(raw: bytes, ds: Dataset, settings: Settings, sizes: MediaSizes, tally: Tally) -> Record | None:
    """Count one line into ``tally``; the parsed record, or None for a line that is not a usable record."""
    try:
        obj = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError:
        obj = None
    return scan_record(obj, ds, settings, sizes, tally)


def scan_record(obj: object, ds: Dataset, settings: Settings, sizes: MediaSizes, tally: Tally) -> Record | None:
    """Count one parsed record into ``tally`` (kind, turns, characters, images, tiles, frames)."""
    convs = obj.get("conversations") if isinstance(obj, dict) else None
    if not isinstance(obj, dict) or not isinstance(convs, list):
        tally.counts["skipped_lines"] += 1
        return None
    kind = record_kind(obj)
    tally.counts["kind_" + kind] += 1
    tally.add("turns", len(convs))
    tally.add("chars", sum(len(t["value"]) for t in convs if isinstance(t, dict) and isinstance(t.get("value"), str)))
    rec = Record(obj, kind)
    if kind in ("single", "multi"):
        _scan_images(obj["image"], ds, settings, sizes, tally, rec)
    elif kind == "video":
        _scan_video(obj, ds, settings, sizes, tally, rec)
    else:
        tally.add("images", 0)
    return rec


def _scan_images(
    image: str | list, ds: Dataset, settings: Settings, sizes: MediaSizes, tally: Tally, rec: Record
) -> None:
    from internvl_data.pipeline import tiling

    paths = image if isinstance(image, list) else [image]
    tally.add("images", len(paths))
    max_num = tiling.tile_budget(ds, settings.max_dynamic_patch, len(paths) if isinstance(image, list) else 1)
    record_tiles = 0
    for i, rel in enumerate(paths):
        wh = sizes.image(_join(ds.root, rel)) if isinstance(rel, str) else None
        if wh is None:
            wh = _declared_size(rec.obj, i, isinstance(image, list))
            tally.counts["images_unreadable"] += 1
            if wh is None:
                tally.counts["images_unknown_size"] += 1
                rec.tiles.append(0)
                continue
        w, h = wh
        tally.add("image_width", w)
        tally.add("image_height", h)
        if settings.dynamic_image_size:
            n = tiling.num_tiles(w, h, settings.min_dynamic_patch, max_num, settings.tile, settings.use_thumbnail)
        else:
            n = 1
        tally.add("tiles_per_image", n)
        rec.tiles.append(n)
        record_tiles += n
    tally.add("tiles_per_record", record_tiles)


def _scan_video(obj: dict, ds: Dataset, settings: Settings, sizes: MediaSizes, tally: Tally, rec: Record) -> None:
    rel = obj.get("video")
    info = sizes.video(_join(ds.root, rel)) if isinstance(rel, str) else None
    if info is None:
        tally.counts["videos_unreadable"] += 1
    else:
        frames, fps_milli = info
        clip = obj.get("clip")
        if isinstance(clip, list) and len(clip) == 2 and all(isinstance(x, (int, float)) for x in clip):
            frames = max(0, int((clip[1] - clip[0]) * fps_milli / 1000))
        tally.add("video_frames", frames)
    rec.tiles = [1] * settings.num_frames


def _declared_size(obj: dict, i: int, multi: bool) -> tuple[int, int] | None:
    """The record's own positive width and height of image ``i`` (:func:`formats.models.declared_size`), when
    the file is unreadable."""
    d = declared_size(obj, i if multi else None)
    if d is None or d[0] is None or d[1] is None or d[0] <= 0 or d[1] <= 0:
        return None
    return d[0], d[1]


_JOINED: dict[tuple[str, str], str] = {}  # (root, rel) -> path: media paths repeat across many records


def _join(root: str, rel: str) -> str:
    """The media path as the official loader builds it (stats reads it wherever it points)."""
    path = _JOINED.get((root, rel))
    if path is None:
        from internvl_data.media.probe import loader_path

        if len(_JOINED) > 200_000:  # bounded memory on datasets where every record has its own image
            _JOINED.clear()
        path = _JOINED[(root, rel)] = loader_path(root, rel)
    return path
