"""IVL3xx: the media a record points at, checked as the official loader would open it.

``MediaChecker(entry, options).check(obj, ctx)`` looks only at well-typed ``image``, ``video``, ``clip``,
``width``/``height``, ``width_list``/``height_list`` and ``<box>`` in the conversation; shape errors are
IVL2xx. Every media file is opened once per process (``_FACTS`` below), however often it is referenced; a
problem with a file is reported at every line that references it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from internvl_data.checks.catalogue import Case, Consequence, emit, rule
from internvl_data.checks.findings import Finding, Severity
from internvl_data.checks.records import _clip_ok
from internvl_data.formats.models import declared_size
from internvl_data.media import probe as media
from internvl_data.media.probe import ImageInfo, MediaError, VideoInfo
from internvl_data.pipeline.tiling import find_grid, tile_budget

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741 (short names for the rule table)
C = Consequence

rule(
    "IVL301",
    "media-missing",
    E,
    "An image or video file does not exist under the dataset root.",
    "The official loader raises inside __getitem__ and silently trains on a random other record instead.",
    '{"image": "images/cat.jpg", ...} with no <root>/images/cat.jpg',
    "Fix the path (it is joined to the meta file's `root` with os.path.join) or add the file.",
    consequence=C.CRASH,  # ref §3.2, §3.3
)
rule(
    "IVL302",
    "path-escapes-root",
    E,
    "A media path leaves the dataset root (`..`, absolute, or a symlink).",
    "The official loader reads such a path like any other (os.path.join; an absolute path ignores `root`), but "
    "data that reads files outside its root is not self-contained and may read what it should not.",
    '{"image": "../../secret.jpg", ...}',
    "Keep media under `root`, or pass --allow-outside-root if this is intended.",
    consequence=C.NOTICE,  # ref §1.5, §10.1 (paths)
    override="it is a safety rule, not a training consequence: data from elsewhere must not make the trainer read "
    "files outside its own folder (--allow-outside-root accepts it; an absolute path is then the IVL303 warning)",
)
rule(
    "IVL303",
    "absolute-media-path",
    W,
    "A media path is absolute, so the dataset root is ignored for it.",
    "The official loader reads it (os.path.join(root, '/abs/x.jpg') is '/abs/x.jpg'), so training works here, "
    "but the data breaks when moved to another machine.",
    '{"image": "/home/me/data/x.jpg", ...}',
    "Write the path relative to the dataset `root`.",
    consequence=C.NOTICE,  # ref §1.5
)
rule(
    "IVL304",
    "s3-not-checkable",
    W,
    "An `s3://` media path cannot be checked locally.",
    "ivl-data cannot read s3 objects, so the file is unchecked. The official loader reads s3:// paths only "
    "through the internal petrel client (without it every such sample raises and is replaced), and ivl-train "
    "reads local paths only (its data gate makes this an error).",
    '{"image": "s3://bucket/x.jpg", ...}',
    "Check the object store separately, or mirror the files locally and point `root` at them.",
    consequence=C.NOTICE,  # information about the check; ref §1.7 (tcs_loader is None without petrel), §3.3
)
rule(
    "IVL305",
    "image-unreadable",
    E,
    "An image file cannot be opened or identified as an image.",
    "Image.open raises in the official loader; the record is silently replaced by a random other one.",
    "images/x.jpg is an HTML error page saved with a .jpg name",
    "Re-download or re-encode the file (e.g. as JPEG or PNG).",
    consequence=C.CRASH,  # ref §3.2, §3.3
)
rule(
    "IVL306",
    "image-truncated",
    E,
    "An image file is cut short (its pixel data: --media decode; its header: any mode).",
    "The official loader sets LOAD_TRUNCATED_IMAGES=True: the missing part of the image trains as grey or black "
    "pixels.",
    "a JPEG cut off half-way by an interrupted download",
    "Re-download or re-encode the file.",
    consequence=C.BROKEN,  # ref §3.3
)
rule(
    "IVL307",
    "image-too-large",
    E,
    "An image has more pixels than --max-pixels (a decompression bomb).",
    "The official loader disables PIL's bomb limit and decodes everything: one such file can exhaust a "
    "DataLoader worker's memory and stop the run. ivl-train refuses it before decoding and skips the sample.",
    "a 5 KB PNG that declares 40000x40000 pixels",
    "Downscale the image, or raise --max-pixels if it is genuine.",
    consequence=C.CRASH,  # ref §3.3 (Image.MAX_IMAGE_PIXELS = None)
)
rule(
    "IVL308",
    "size-mismatch",
    W,
    "`width`/`height` (or `width_list`/`height_list`) differ from the file.",
    "The official trainer never reads width/height, but boxes are normalised offline with the image size: sizes "
    "that differ from the file suggest boxes computed for another image.",
    '{"image": "a.jpg", "width": 640, "height": 480} where a.jpg is 480x640',
    "Use the size Pillow reports for the stored file (EXIF orientation is not applied).",
    consequence=C.NOTICE,  # ref §1.1 (never read), §1.8
)
rule(
    "IVL309",
    "exif-rotated-boxes",
    W,
    "An EXIF-rotated image is used in a record with `<box>` coordinates.",
    "The official loader never applies EXIF orientation: boxes drawn on the rotated view point at the wrong "
    "pixels. Whether they were cannot be told from the file, so this is a question for the author.",
    "a phone photo with EXIF orientation 6 and <box>[[10, 20, 300, 400]]</box>",
    "Check that boxes refer to the raw pixel grid, or re-save the image with the rotation applied.",
    consequence=C.NOTICE,  # ref §1.8, §3.3, §10.1 (warn)
)
rule(
    "IVL310",
    "alpha-dropped",
    W,
    "An image has transparency (RGBA, LA, or P/RGB with a transparency key).",
    "The official loader's convert('RGB') drops alpha without compositing: transparent regions train as "
    "whatever colour is stored.",
    "a logo PNG whose transparent background is stored as black",
    "Composite the image onto a background (e.g. white) and save it as RGB.",
    consequence=C.ALTERED,  # ref §3.3, §10.1 (warn)
)
rule(
    "IVL311",
    "video-unreadable",
    E,
    "A video cannot be opened or decoded with decord.",
    "The official loader reads videos with decord; a failure silently replaces the record with a random other one.",
    "videos/a.mp4 is a zero-byte or truncated file",
    "Re-encode the video (e.g. H.264 in MP4).",
    consequence=C.CRASH,  # ref §3.2, §3.9
)
rule(
    "IVL312",
    "too-few-frames",
    E,
    "A video (or its clip) has fewer frames than --min-frames.",
    "The official reader draws 8 to 32 frame indices from the frames there are and pads a short video by "
    "repeating its last frame; a video (or clip) without a single frame leaves nothing to read or repeat, so "
    "the read raises and the sample is replaced by a random other one.",
    "a 4-frame video with --min-frames 8",
    "Use a longer video or clip, or lower --min-frames (and the trainer's --min_num_frame).",
    consequence=C.CRASH,  # ref §3.9 (padding repeats the last index; a folder uses the frames it has)
    cases=(
        Case(
            "the video has frames, only fewer than a --min-frames above 1 (the reader repeats the last one)",
            C.ALTERED,
            W,
        ),
    ),
)
rule(
    "IVL313",
    "clip-out-of-range",
    E,
    "A video's `clip` ends after the video does.",
    "decord is asked for frames past the end of the video: the official read fails and the record is replaced "
    "by a random other one.",
    '{"video": "a.mp4", "clip": [5.0, 20.0], ...} for a 10-second video',
    "Give `clip` as [start_seconds, end_seconds] within the video's duration.",
    consequence=C.CRASH,  # ref §3.9 (indices offset by int(start * fps))
)
rule(
    "IVL314",
    "video-not-checked",
    W,
    "A video was only checked for existence because decord is missing.",
    "Information about the check, not the data: frame counts, clips and decodability can only be checked with "
    "decord, the reader the official trainer uses (ivl-train needs it too, and its data gate makes this an "
    "error).",
    "ivl-data validate meta.json on a machine without decord",
    f"Install the video extra: {media.VIDEO_EXTRA}.",
    consequence=C.NOTICE,  # ref §3.9
)

rule(
    "IVL315",
    "image-upscaled",
    I,
    "A small image (fewer pixels than one tile) is stretched over several tiles.",
    "The official tiling chooses the grid by aspect ratio alone, so this is how it trains: a 320x200 image "
    "becomes 3x2 tiles of 448 pixels plus a thumbnail, 7 x 256 tokens of mostly interpolated pixels.",
    '{"image": "icon_320x200.png", ...} with max_dynamic_patch 6',
    "Nothing if intended; otherwise lower the dataset's max_dynamic_patch in the meta file, or pad the images.",
    consequence=C.NOTICE,  # ref §3.4 (no rule prevents upscaling)
)

_ERROR_CODES = {
    "missing": "IVL301",
    "unreadable": "IVL305",
    "truncated": "IVL306",
    "too-large": "IVL307",
    "video": "IVL311",
    "no-decoder": "IVL314",
}
_PROBLEM_CODES = {"escape": "IVL302", "absolute": "IVL303", "s3": "IVL304"}
_PROBLEM_TEXT = {
    "escape": "resolves outside the dataset root {root}",
    "absolute": "is absolute: the dataset root {root} is ignored for it",
    "s3": "is on s3 and cannot be checked locally",
}
_ROTATED = frozenset({5, 6, 7, 8})  # orientations that swap width and height

Facts = ImageInfo | VideoInfo | MediaError | None  # None: exists mode found the file
# Per-process caches (each worker process of the engine has its own); clear_cache() starts a new run.
_RESOLVED: dict[tuple[str, str, bool], tuple[str, str | None]] = {}
_FACTS: dict[tuple[str, str, str, int], Facts] = {}


def clear_cache() -> None:
    """Forget every media fact: call at the start of a run so that edited files are opened again."""
    _RESOLVED.clear()
    _FACTS.clear()


class MediaChecker:
    """IVL3xx for the records of one dataset (``entry``: a ``meta.MetaEntry`` with ``root_path``, or anything
    with an absolute ``root``; ``options``: a ``ValidateOptions``).

    ``media_paths`` collects every media path looked at (for the engine's cache, which re-checks their stat).
    """

    def __init__(self, entry: Any, options: Any) -> None:
        self.root = str(getattr(entry, "root_path", None) or entry.root)
        self.mode: str = options.media
        self.allow_outside: bool = options.allow_outside_root
        self.max_pixels: int = options.max_pixels
        self.min_frames: int = options.min_frames
        self.media_paths: set[str] = set()
        self.tiling = _tiling(entry, options)

    def check(self, obj: dict, ctx: Any) -> list[Finding]:
        """Findings for one parsed record (dispatch as the loader: a non-empty image wins over video)."""
        if self.mode == "off":
            return []
        image = obj.get("image")
        if isinstance(image, str) and image:
            return self._images(obj, ctx, [(image, "$.image", None)])
        if isinstance(image, list) and image:
            # "" is kept: the loader joins it to the root and fails to open the folder
            refs = [(p, f"$.image[{i}]", i) for i, p in enumerate(image) if isinstance(p, str)]
            return self._images(obj, ctx, refs)
        video = obj.get("video")
        if not image and isinstance(video, str) and video:
            return self._video(obj, ctx, video)
        return []

    # ------------------------------------------------------------------ images

    def _images(self, obj: dict, ctx: Any, refs: Sequence[tuple[str, str, int | None]]) -> list[Finding]:
        """``refs``: (path, JSON path, index in the image list or None for a single image)."""
        out: list[Finding] = []
        for rel, jp, index in refs:
            facts = self._media(rel, jp, ctx, out, "image")
            if isinstance(facts, ImageInfo):
                self._image_facts(obj, ctx, rel, jp, index, facts, out)
        return out

    def _image_facts(
        self, obj: dict, ctx: Any, rel: str, jp: str, index: int | None, facts: ImageInfo, out: list[Finding]
    ) -> None:
        if facts.pixels > self.max_pixels:
            out.append(
                _say(
                    ctx,
                    rel,
                    jp,
                    "IVL307",
                    f"is {facts.width}x{facts.height} = {facts.pixels} pixels, over the limit of {self.max_pixels}",
                )
            )
        if facts.transparent:
            out.append(
                _say(
                    ctx,
                    rel,
                    jp,
                    "IVL310",
                    f"is a {facts.mode} image with transparency: the loader's "
                    "convert('RGB') drops alpha without compositing",
                )
            )
        if facts.exif_orientation != 1 and _has_box(obj):
            out.append(
                _say(
                    ctx,
                    rel,
                    jp,
                    "IVL309",
                    f"has EXIF orientation {facts.exif_orientation} and the "
                    "record has <box> coordinates: the loader uses the raw, "
                    "unrotated pixels",
                )
            )
        want = declared_size(obj, index)
        if want is not None:
            out.extend(_size_findings(ctx, rel, facts, want))
        if self.tiling is not None and facts.pixels < self.tiling.tile**2:
            out.extend(_upscaled(ctx, rel, jp, facts, self.tiling, 1 if index is None else len(obj["image"])))

    # ------------------------------------------------------------------ video

    def _video(self, obj: dict, ctx: Any, rel: str) -> list[Finding]:
        out: list[Finding] = []
        clip = _clip(obj.get("clip"))  # None unless well formed with 0 <= start < end (else IVL225)
        facts = self._media(rel, "$.video", ctx, out, "video")
        if not isinstance(facts, VideoInfo):
            return out
        frames, where = facts.frames, ""
        decord_read = facts.fps > 0 and not rel.endswith("/") and not rel.lower().endswith(".gif")
        if clip is not None and decord_read:  # only the decord reader honours clip
            slack = 1.0 / facts.fps  # container durations are rounded to about a frame
            if clip[1] > facts.duration + slack:
                out.append(
                    _say(
                        ctx,
                        rel,
                        "$.clip",
                        "IVL313",
                        f"clip [{clip[0]}, {clip[1]}] ends after the video "
                        f"({facts.duration:.3f} s, {facts.frames} frames at {facts.fps:g} fps)",
                    )
                )
                return out
            frames, where = int((clip[1] - clip[0]) * facts.fps), f" in clip [{clip[0]}, {clip[1]}]"
        if self.min_frames and frames < self.min_frames:
            # no frame at all: the read raises (an error); some: the reader repeats the last one (IVL312's case)
            out.append(
                _say(
                    ctx,
                    rel,
                    "$.video",
                    "IVL312",
                    f"has {frames} frames{where}, fewer than --min-frames {self.min_frames}",
                    severity=W if frames > 0 else None,
                )
            )
        return out

    # ------------------------------------------------------------------ shared

    def _media(self, rel: str, jp: str, ctx: Any, out: list[Finding], kind: str) -> Facts | MediaError:
        """Resolve ``rel``, report path problems, and return the file's (cached) facts or its error."""
        key = (self.root, rel, self.allow_outside)
        resolved = _RESOLVED.get(key)
        if resolved is None:
            resolved = _RESOLVED[key] = media.resolve(self.root, rel, self.allow_outside)
        path, problem = resolved
        if problem is not None:
            what = _PROBLEM_TEXT[problem].format(root=self.root)
            out.append(_say(ctx, rel, jp, _PROBLEM_CODES[problem], what))
            if problem != "absolute":
                return MediaError(problem, "")
        self.media_paths.add(path)
        fkey = (path, kind, self.mode, self.max_pixels)
        if fkey in _FACTS:
            facts = _FACTS[fkey]
        else:
            facts = _FACTS[fkey] = self._open(path, kind)
        if isinstance(facts, MediaError):
            where = f" (looked for {path})" if facts.kind == "missing" else ""
            out.append(_say(ctx, rel, jp, _ERROR_CODES[facts.kind], f"{facts}{where}"))
        return facts

    def _open(self, path: str, kind: str) -> Facts:
        try:
            if self.mode == "exists":
                media.stat_media(path, folder=kind == "video" and path.endswith("/"))
                return None
            if kind == "video":
                return media.video_info(path, decode=self.mode == "decode")
            if self.mode == "decode":
                return media.decode_image(path, self.max_pixels)
            return media.image_header(path)
        except MediaError as err:
            if err.kind == "no-decoder":  # fall back to a plain existence check, and say so
                try:
                    media.stat_media(path)
                except MediaError as missing:
                    return missing
            return err


@dataclass(frozen=True, slots=True)
class _Tiling:
    tile: int
    min_num: int
    max_num: int
    thumbnail: bool


def _tiling(entry: Any, options: Any) -> _Tiling | None:
    """How the trainer tiles this dataset's images (None: no dynamic tiling): the official scripts' settings,
    the checkpoint's with ``--model``, and the dataset's own ``max_dynamic_patch``."""
    from internvl_data.pipeline.modelinfo import (
        ModelInfo,
        ModelInfoError,
    )  # lazily: stats and model code only when images are checked
    from internvl_data.stats.types import Settings

    s = Settings()
    tile, lo, hi, thumb, dynamic = s.tile, s.min_dynamic_patch, s.max_dynamic_patch, s.use_thumbnail, True
    if getattr(options, "model_dir", None):
        try:
            m = ModelInfo.from_dir(options.model_dir)
            tile, lo, hi, thumb = m.tile_size, m.min_dynamic_patch, m.max_dynamic_patch, m.use_thumbnail
            dynamic = m.dynamic_image_size
        except (ModelInfoError, ValueError, TypeError):  # IVL4xx reports an unusable model
            pass
    dataset = getattr(entry, "entry", None)  # meta.MetaEntry.entry: the validated DatasetEntry (None: invalid)
    return _Tiling(tile, lo, tile_budget(dataset, hi), thumb) if dynamic else None


def _upscaled(ctx: Any, rel: str, jp: str, facts: ImageInfo, t: _Tiling, n_images: int) -> list[Finding]:
    max_num = tile_budget(None, t.max_num, n_images)  # the multi-image share of the dataset's budget
    cols, rows = find_grid(facts.width, facts.height, t.min_num, max_num, t.tile)
    if cols * rows == 1:
        return []
    thumb = " plus a thumbnail" if t.thumbnail else ""
    what = (
        f"is {facts.width}x{facts.height}, fewer pixels than one {t.tile}x{t.tile} tile, but is resized to "
        f"{cols}x{rows} tiles ({cols * t.tile}x{rows * t.tile}){thumb} with max_dynamic_patch {max_num}"
    )
    return [_say(ctx, rel, jp, "IVL315", what)]


def _say(ctx: Any, rel: str, jp: str, code: str, what: str, severity: Severity | None = None) -> Finding:
    """A finding at the record's line that names the media path as the user wrote it."""
    return emit(code, ctx.path, ctx.line, f"'{rel}' {what}", json_path=jp, dataset=ctx.dataset, severity=severity)


def _has_box(obj: dict) -> bool:
    conv = obj.get("conversations")
    if not isinstance(conv, list):
        return False
    return any(isinstance(t, dict) and isinstance(t.get("value"), str) and "<box>" in t["value"] for t in conv)


def _size_findings(ctx: Any, rel: str, facts: ImageInfo, want: tuple) -> list[Finding]:
    w, h, wk, hk = want
    if (w is None or w == facts.width) and (h is None or h == facts.height):
        return []
    rotated = facts.exif_orientation in _ROTATED and (w, h) == (facts.height, facts.width)
    note = " (that is the EXIF-rotated view; the loader ignores EXIF)" if rotated else ""
    declared = f"{wk}={w}, {hk}={h}".replace("=None", " absent")
    jp = "$." + (wk if w is not None and w != facts.width else hk)
    return [_say(ctx, rel, jp, "IVL308", f"is {facts.width}x{facts.height} but the record says {declared}{note}")]


def _clip(v: Any) -> tuple[float, float] | None:
    if not _clip_ok(v):  # IVL225
        return None
    try:
        start, end = float(v[0]), float(v[1])
    except OverflowError:  # an integer too large for a float (json.loads keeps big ints)
        return None
    return (start, end) if start < end else None  # ints above 2**53 may meet as floats
