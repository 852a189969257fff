"""One record -> one training sample, as the official ``LazySupervisedDataset.__getitem__`` builds it.

Dispatch (docs/official-behaviour.md §1.2), placeholder insertion and expansion (§1.5-1.7, §3.7), pixels through ``tiling`` /
``transforms`` / ``video``, text through ``templates`` + ``tokenizer`` + ``labels``. The conversation is
tokenized once with a single ``<IMG_CONTEXT>`` per image; the runs of ``tokens_per_tile x tiles`` ids are
spliced in afterwards (added special tokens never merge with their neighbours, so the ids are the same).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from internvl_data.errors import DataError
from internvl_data.formats.models import record_kind
from internvl_data.pipeline import labels as lab
from internvl_data.pipeline.modelinfo import ModelInfo
from internvl_data.pipeline.templates import (
    GPT,
    HUMAN,
    ConversationError,
    Template,
    conversation_turns,
    expanded_text,
    get_template,
    place_images,
    render_segments,
    trained_spans,
)
from internvl_data.pipeline.tiling import tile_budget
from internvl_data.pipeline.tokenizer import TokenCodec

if TYPE_CHECKING:
    from internvl_data.formats.meta import MetaEntry


class SampleError(DataError, ValueError):
    """A record the official trainer cannot build (it would be dropped and replaced). ``code`` is a rule code."""

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class TruncatedImageError(SampleError):
    """Truncation at ``max_seq_length`` would cut through image tokens (``details``: length, max, image)."""


@dataclass(slots=True)
class Sample:
    input_ids: np.ndarray  # int64 (L,)
    labels: np.ndarray  # int64 (L,), -100 = ignored
    attention_mask: np.ndarray  # int64 (L,)
    pixel_values: np.ndarray  # float32 (T, 3, S, S)
    image_flags: np.ndarray  # int64 (T,)
    num_tiles: list[int]  # per image / frame
    official_labels: np.ndarray  # what the official preprocessor would produce
    official_mismatch: bool  # the official arithmetic falls back to "tokenization mismatch": nothing learned
    truncated: bool  # the text was cut at max_seq_length (after the last image)
    full_length: int  # tokens before truncation
    kind: str  # text | single | multi | video
    warnings: list[str] = field(default_factory=list)
    grids: list[tuple[int, int, bool]] = field(default_factory=list)  # per image: cols, rows, thumbnail
    image_sizes: list[tuple[int, int]] = field(default_factory=list)  # per image / frame: width, height


class SampleBuilder:
    """Builds :class:`Sample` objects for one checkpoint (tokenizer + ``ModelInfo``) and template."""

    def __init__(
        self,
        tokenizer: Any,
        info: ModelInfo,
        template: str | Template | None = None,
        max_seq_length: int = 8192,
        *,
        min_num_frame: int = 8,
        max_num_frame: int = 32,
        num_frames: int | None = None,
        sampling: str = "rand",
        normalize: str = "imagenet",
    ):
        from internvl_data.pipeline.transforms import TileTransform

        self.template = (
            template if isinstance(template, Template) else get_template(template or info.require_template())
        )
        self.info = info
        self.codec = TokenCodec(tokenizer)
        self.n = lab.counter(self.codec.ids)
        self.max_seq_length = max_seq_length
        self.min_num_frame, self.max_num_frame, self.num_frames = min_num_frame, max_num_frame, num_frames
        self.sampling = sampling
        self.transforms = {aug: TileTransform(info.tile_size, normalize, augment=aug) for aug in (False, True)}
        self.tokens_per_tile = info.tokens_per_tile
        # internvl2_5 block labels skip the assistant header: its ids without the BOS the tokenizer adds
        self._head = len(self.codec.ids(self.template.assistant)) - (1 if self.codec.bos_token else 0)

    # -- record -> pixels + conversation ---------------------------------------------------------------------

    def build(
        self,
        record: dict[str, Any],
        entry: MetaEntry | None = None,
        rng: np.random.Generator | int | None = None,
        augment: bool | None = None,
    ) -> Sample:
        """The sample of ``record`` from dataset ``entry`` (its resolved ``root_path``, and ``max_dynamic_patch``
        / ``data_augment`` of its validated ``entry``). ``rng`` (a Generator or a seed) drives augmentation and
        video frame sampling."""
        dataset = entry.entry if entry is not None else None
        root = entry.root_path if entry is not None else ""
        aug = (dataset.data_augment if dataset is not None else False) if augment is None else augment
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        if "image" in record and record["image"] is None:
            raise SampleError("IVL204", "`image` is null: the official loader crashes its DataLoader worker")
        kind = record_kind(record)
        transform = self.transforms[aug]
        sizes: list[tuple[int, int]] = []
        grids: list[tuple[int, int, bool]] = []
        if kind in ("single", "multi"):
            paths = [record["image"]] if kind == "single" else record["image"]
            budget = tile_budget(dataset, self.info.max_dynamic_patch, len(paths) if kind == "multi" else 1)
            if aug or not self.info.dynamic_image_size:  # augmentation draws from one RNG in image order
                done = [self._tiles(self._open(root, p), budget, gen, transform) for p in paths]
            else:  # decode, canvas and thumbnail of every image on the set_num_threads threads
                done = transform.images(
                    [functools.partial(self._open, root, p) for p in paths],
                    self.info.min_dynamic_patch,
                    [budget] * len(paths),
                    self.info.use_thumbnail,
                )
            pixels, sizes, grids = (list(x) for x in zip(*done))
        elif kind == "video":
            frames = self._frames(root, record, gen)
            sizes = [f.size for f in frames]
            grids = [(1, 1, False)] * len(frames)
            pixels = [transform.stack(frames, gen)]
        else:
            pixels = [transform.dummy()]
        if kind == "video":
            num_tiles = [1] * len(pixels[0])
        elif kind == "text":
            num_tiles = []
        else:
            num_tiles = [len(p) for p in pixels]
        pixel_values = pixels[0] if len(pixels) == 1 else np.concatenate(pixels)
        flags = np.full(len(pixel_values), 0 if kind == "text" else 1, dtype=np.int64)
        convs, warnings = prepare_conversations(record, kind, len(num_tiles))
        sample = self.build_text(convs, kind, num_tiles, pixel_values, flags, warnings)
        sample.grids, sample.image_sizes = grids, sizes
        return sample

    def _tiles(
        self, img: Any, budget: int, gen: np.random.Generator, transform: Any
    ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int, bool]]:
        """One image -> ``(tiles, size, grid)`` as ``TileTransform.images`` returns them (dynamic tiling, or one
        whole-image tile when dynamic_image_size is off)."""
        from internvl_data.pipeline.tiling import grid

        if not self.info.dynamic_image_size:
            return transform.stack([img], gen), img.size, (1, 1, False)
        i = self.info
        g = grid(img.width, img.height, i.min_dynamic_patch, budget, i.tile_size, i.use_thumbnail)
        return transform.image(img, i.min_dynamic_patch, budget, i.use_thumbnail, gen), img.size, g

    def _open(self, root: str, rel: Any) -> Any:
        from PIL import Image, UnidentifiedImageError

        from internvl_data.media.probe import MAX_PIXELS
        from internvl_data.pipeline.transforms import load_rgb

        path = _join(root, rel)
        with warnings.catch_warnings():  # PIL's own bomb warning is never printed raw: one limit, one message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            try:
                return load_rgb(path, MAX_PIXELS)  # the one pixel limit, from the header before any decoding
            except FileNotFoundError:
                raise SampleError("IVL301", f"{path}: image not found", path=path) from None
            except Image.DecompressionBombError:
                raise SampleError(
                    "IVL307", f"{path}: the image has more than {MAX_PIXELS:,} pixels (IVL307); shrink it", path=path
                ) from None
            except (UnidentifiedImageError, OSError) as exc:
                raise SampleError("IVL305", f"{path}: cannot read the image ({exc})", path=path) from None

    def _frames(self, root: str, record: dict[str, Any], gen: np.random.Generator) -> list[Any]:
        from internvl_data.pipeline.video import VideoError, choose_num_frames, read_frames

        path = _join(root, record["video"])
        n = self.num_frames or choose_num_frames(self.min_num_frame, self.max_num_frame, gen)
        clip = record.get("clip")
        try:
            return read_frames(path, n, self.sampling, tuple(clip) if clip else None, gen)
        except FileNotFoundError:
            raise SampleError("IVL301", f"{path}: video not found", path=path) from None
        except (VideoError, OSError, RuntimeError) as exc:
            raise SampleError("IVL311", f"{path}: cannot read the video ({exc})", path=path) from None

    # -- conversation -> ids and labels ----------------------------------------------------------------------

    def build_text(
        self,
        convs: list[dict[str, Any]],
        kind: str,
        num_tiles: list[int],
        pixel_values: np.ndarray,
        image_flags: np.ndarray,
        warnings: list[str] | None = None,
    ) -> Sample:
        """Tokens and labels for ``convs`` (placeholders already inserted) with ``num_tiles`` images/frames."""
        t = self.template
        try:
            system, turns = conversation_turns(t, convs)
        except ConversationError as exc:
            raise SampleError(exc.code, f"conversations: {exc}") from None
        runs = [self.tokens_per_tile * k for k in num_tiles]
        segs, placed = place_images(t, render_segments(t, turns, system), len(runs) if kind != "text" else 0)
        if placed < len(runs) and kind in ("single", "multi"):
            raise SampleError(
                "IVL217",
                f"{len(runs)} image(s) but only {placed} `<image>` placeholder(s): the "
                "official `</img>` count assertion drops this record",
            )
        runs = runs[:placed]
        ids: Any
        if t.block_labels:
            ids, offsets, spans, official = self._blocks(segs)
        else:
            text = "".join(s.text for s, _ in segs)
            enc = self.codec.encode(text)
            ids, offsets = enc.ids, enc.offsets
            spans = trained_spans(segs)
            official = None
        ids = np.asarray(ids, dtype=np.int64)
        sem = lab.semantic_labels(ids, offsets, spans)
        ctx = np.flatnonzero(ids == self.codec.img_context)
        if len(ctx) != len(runs) or int((ids == self.codec.img_end).sum()) != len(runs):
            raise SampleError(
                "IVL213",
                "a value contains a literal `<img>`, `</img>` or `<IMG_CONTEXT>`: image "
                "token counts no longer match the images",
            )
        full_ids = ids
        if len(runs):
            reps = np.ones(len(ids), dtype=np.int64)
            reps[ctx] = runs
            sem[self._is_image(ids)] = lab.IGNORE
            full_ids, sem = np.repeat(ids, reps), np.repeat(sem, reps)
            if official is not None:
                official = np.repeat(official, reps)
        full = len(full_ids)
        L = self.max_seq_length
        if full > L and len(runs):
            last = int(np.flatnonzero(self._is_image(full_ids))[-1])
            if last >= L:
                raise TruncatedImageError(
                    "IVL402",
                    f"{full} tokens with the images but max_seq_length is {L}: truncation would cut image tokens "
                    f"(last image token at position {last + 1})",
                    length=full,
                    max_seq_length=L,
                    last_image_token=last,
                )
        ids_t, sem_t = full_ids[:L], sem[:L]
        if official is None:
            try:
                official, mismatch = lab.official_labels(
                    t, expanded_text(segs, runs), ids_t, self.n, L, self.codec.pad_id, self.codec.endoftext_id
                )
            except ValueError as exc:  # preprocess_internlm's unpacking fails on a second user header
                raise SampleError("IVL213", f"conversations: {exc}") from None
        else:
            official, mismatch = official[:L], False
        return Sample(
            input_ids=ids_t,
            labels=sem_t,
            attention_mask=np.ones(len(ids_t), dtype=np.int64),
            pixel_values=pixel_values,
            image_flags=image_flags,
            num_tiles=num_tiles,
            official_labels=official,
            official_mismatch=bool(mismatch),
            truncated=full > L,
            full_length=full,
            kind=kind,
            warnings=list(warnings or []),
        )

    def _is_image(self, ids: np.ndarray) -> np.ndarray:
        c = self.codec
        return (ids == c.img_context) | (ids == c.img_start) | (ids == c.img_end)

    def _blocks(self, segs: list) -> tuple[list[int], list[tuple[int, int]], list, np.ndarray]:
        """``internvl2_5``: every turn tokenized on its own (official ``preprocess_internvl2_5``); the official
        labels still have one ``<IMG_CONTEXT>`` per image (``build_text`` expands them with the ids)."""
        blocks: dict[int, list] = {}
        for seg, img in segs:
            blocks.setdefault(seg.turn, []).append((seg, img))
        order = list(blocks.values())
        texts = ["".join(s.text for s, _ in b) for b in order]
        bos = self.codec.bos_token
        if bos:
            texts[0] = bos + texts[0]
        encs = self.codec.encode_batch(texts)
        drop = 1 if bos else 0
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        spans: list[tuple[int, int]] = []
        per_block: list[Any] = []
        roles: list[str] = []
        base = 0
        for b, text, enc in zip(order, texts, encs):
            block_ids = enc.ids[drop:]
            shift = len(bos) if bos and b is order[0] else 0
            per_block.append(block_ids)
            roles.append(GPT if any(s.trained for s, _ in b) else HUMAN)
            ids.extend(block_ids)
            offsets.extend((a + base, c + base) for a, c in enc.offsets[drop:])
            spans.extend((a + base + shift, c + base + shift) for a, c in trained_spans(b))
            base += len(text) + 1  # +1 keeps spans of different blocks apart
        official = lab.block_labels(roles, per_block, self._head)
        return ids, offsets, spans, official


def prepare_conversations(
    record: dict[str, Any], kind: str, num_frames: int = 0
) -> tuple[list[dict[str, Any]], list[str]]:
    """A copy of the record's turns with the loader's placeholder edits, and warnings.

    Single image: ``"<image>\\n"`` prepended to turn 0 when it has no ``<image>``. Video: ``"<video>\\n"``
    likewise, then every ``"<video>\\n"`` of turn 0 becomes ``Frame-1: <image>\\n...Frame-N: <image>\\n``.
    """
    convs = record.get("conversations")
    if not isinstance(convs, list) or not convs or not all(isinstance(c, dict) for c in convs):
        raise SampleError("IVL201", "`conversations` is missing, empty or not a list of objects")
    convs = [dict(c) for c in convs]
    warnings = []
    if kind in ("single", "video"):
        first = convs[0].get("value")
        if not isinstance(first, str):
            raise SampleError("IVL202", "conversations[0] has no string `value`")
        tag = "<image>" if kind == "single" else "<video>"
        if (
            tag not in first
        ):  # the loader's auto-insertion: only turn 0 is looked at (docs/official-behaviour.md §1.5, §1.7)
            first = tag + "\n" + first
        if kind == "video":
            if "<video>\n" not in first:
                warnings.append(
                    "IVL219: `<video>` is not followed by a newline: no frame tokens are inserted, and "
                    "the official forward zeroes the loss of the whole micro-batch"
                )
            lines = "\n".join(f"Frame-{k + 1}: <image>" for k in range(num_frames))
            first = first.replace("<video>\n", lines + "\n")
        convs[0]["value"] = first
    return convs, warnings


def _join(root: str, rel: Any) -> str:
    if not isinstance(rel, str):
        raise SampleError("IVL205", f"media path {rel!r} is not a string")
    from internvl_data.media.probe import loader_path

    return loader_path(root, rel)
