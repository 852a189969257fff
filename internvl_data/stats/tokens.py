"""Exact token counts per record without pixels: the token-only fast path of ``SampleBuilder.build_text``.

Image token counts come from header sizes through ``tiling.num_tiles`` (:mod:`.worker`); the text goes
through the same placeholder edits, template rendering, image placement, semantic labels and official
arithmetic as :class:`sample.SampleBuilder`, but each image stays a single ``<IMG_CONTEXT>`` (its run length is
added arithmetically), the labels are counted with numpy instead of being materialised, and every distinct
piece of text between special tokens is tokenized once (:mod:`stats_pieces`), which makes the official
arithmetic's many re-tokenizations dictionary lookups. Anything unusual (a record the builder rejects, the
block-wise ``internvl2_5`` template) goes through ``SampleBuilder.build_text`` itself, so both paths agree by
construction there; a test checks that they agree everywhere else.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from internvl_data.errors import ModelSetupError
from internvl_data.stats.hist import Tally
from internvl_data.stats.types import Record, Settings

_TOKENIZERS: dict[tuple[str, bool], Any] = {}  # loaded by model_settings, reused by TokenCounter.load
CHECK_RECORDS = 64  # per process: piece-wise encoding verified against the tokenizer on this many records


class ModelError(ModelSetupError, ValueError):
    """The checkpoint cannot be used for token counts; the message names the fix."""


@dataclass(slots=True)
class Counts:
    """Token facts of one record (``total`` before truncation; ``supervised`` after it)."""

    kind: str
    template: str
    total: int = 0
    image: int = 0
    text: int = 0
    supervised: int = 0
    mismatch: bool = False
    truncated_image: bool = False
    last_image_end: int = 0  # 1-based position of the last image token
    frames: int = 0
    error: str = ""  # "IVL2xx: message" for a record the trainer cannot build


CHARS_PER_TOKEN_BUDGET = 64  # per-record budget: 64 characters of text per max_seq_length token...
MIN_BUDGET_CHARS = 1 << 20  # ...and never below 1,048,576 characters (validate's IVL007 long-line size)


def over_budget(obj: dict, max_seq_length: int) -> str:
    """``"IVL407: ..."`` when the record's text is over the per-record budget, else ``""``.

    The budget is ``max(CHARS_PER_TOKEN_BUDGET * max_seq_length, MIN_BUDGET_CHARS)`` characters of conversation
    text (1,048,576 at 4096, 2,097,152 at 32,768):
    real text runs 2-5 characters per token, so such a record is many times longer than the trainer keeps, and
    tokenizing it costs minutes and gigabytes (one 50 MB line: ~5 minutes, ~20 GB). It is reported, not counted.
    """
    budget = max(CHARS_PER_TOKEN_BUDGET * max_seq_length, MIN_BUDGET_CHARS)
    total = 0
    for turn in obj.get("conversations") or ():
        value = turn.get("value") if isinstance(turn, dict) else None
        if isinstance(value, str):
            total += len(value)
    if total <= budget:
        return ""
    return (
        f"IVL407: the record has {total:,} characters of text, over the per-record budget of {budget:,} "
        f"({CHARS_PER_TOKEN_BUDGET} per --max-seq-length token, at least {MIN_BUDGET_CHARS:,}); it was not tokenized"
    )


def model_settings(model_dir: str, settings: Settings, template: str | None = None) -> Settings:
    """``settings`` with the checkpoint's tiling and template; fails early when the model is unusable."""
    from internvl_data.pipeline.modelinfo import ModelInfo, ModelInfoError
    from internvl_data.pipeline.templates import get_template
    from internvl_data.pipeline.tokenizer import TokenizerLoadError, load_tokenizer

    try:
        info = ModelInfo.from_dir(model_dir, template)
        name = info.require_template()
        get_template(name)
        _TOKENIZERS[(str(model_dir), settings.trust_remote_code)] = load_tokenizer(
            model_dir, trust_remote_code=settings.trust_remote_code
        )
    except (ModelInfoError, TokenizerLoadError, ValueError) as exc:
        raise ModelError(str(exc)) from None
    return dataclasses.replace(
        settings,
        model_dir=str(model_dir),
        template=name,
        tile=info.tile_size,
        min_dynamic_patch=info.min_dynamic_patch,
        max_dynamic_patch=info.max_dynamic_patch,
        use_thumbnail=info.use_thumbnail,
        dynamic_image_size=info.dynamic_image_size,
    )


class TokenCounter:
    """Counts tokens for batches of :class:`.types.Record` with one checkpoint's tokenizer and template."""

    def __init__(self, builder: Any, settings: Settings):
        from internvl_data.stats.piece_cache import PieceCodec

        self.b = builder
        self.settings = settings
        self.L = builder.max_seq_length
        self.pieces = PieceCodec(builder.codec)
        self.checks_left = CHECK_RECORDS  # records whose piece-wise encoding is compared with the tokenizer's
        self.measured = self.pieces.ok  # count-only path (PieceCodec.measure), compared on the same records

    @classmethod
    def load(cls, settings: Settings) -> TokenCounter:
        from internvl_data.pipeline.modelinfo import ModelInfo
        from internvl_data.pipeline.sample import SampleBuilder
        from internvl_data.pipeline.tokenizer import load_tokenizer

        assert settings.model_dir is not None
        key = (settings.model_dir, settings.trust_remote_code)
        tok = _TOKENIZERS.get(key) or load_tokenizer(settings.model_dir, trust_remote_code=settings.trust_remote_code)
        info = ModelInfo.from_dir(settings.model_dir, settings.template)
        builder = SampleBuilder(
            tok,
            info,
            settings.template,
            settings.max_seq_length,
            min_num_frame=settings.min_num_frame,
            num_frames=settings.num_frames,
        )
        return cls(builder, settings)

    # -- batches -----------------------------------------------------------------------------------------------

    def count_batch(self, records: list[Record]) -> list[Counts]:
        """Counts for each record, in order; a record over the per-record budget (:func:`over_budget`) is not
        tokenized: its counts carry an ``IVL407`` error."""
        out = []
        for rec in records:
            over = over_budget(rec.obj, self.L)
            if over:
                out.append(Counts(rec.kind, self.b.template.name, error=over))
                continue
            if self.b.template.block_labels:  # block-wise labels: the builder itself
                out.append(self._slow(rec))
                continue
            layout = self._layout(rec)
            out.append(self._slow(rec) if layout is None else self._fast(rec, *layout))
            self.pieces.forget_long()
        return out

    def _layout(self, rec: Record) -> tuple[list, list[int]] | None:
        """(rendered segments with images placed, image run lengths), or None: the builder decides."""
        from internvl_data.pipeline.sample import SampleError
        from internvl_data.pipeline.templates import conversation_turns, place_images, render_segments

        t = self.b.template
        try:
            system, turns = conversation_turns(t, prepare(rec))
            runs = [self.b.tokens_per_tile * k for k in rec.tiles]
            segs, placed = place_images(t, render_segments(t, turns, system), len(runs) if rec.kind != "text" else 0)
        except (SampleError, ValueError, KeyError, AttributeError, TypeError):
            return None
        # too few placeholders (an error) or frames without one: the builder decides
        return (segs, runs) if placed == len(runs) else None

    def _fast(self, rec: Record, segs: list, runs: list[int]) -> Counts:
        """Counts without the builder: the first ``CHECK_RECORDS`` records through the exact arrays (compared with
        the tokenizer's whole-text encoding and with the count-only path), later ones count-only."""
        from internvl_data.pipeline.templates import trained_spans

        text = "".join(s.text for s, _ in segs)
        spans = trained_spans(segs)
        if self.checks_left > 0 or not self.pieces.ok:
            m = self._from_arrays(self._encode(text), spans, runs)
            if self.pieces.ok and self.measured and self.pieces.measure(text, spans, runs, self.L) != m:
                self.measured = False  # the count-only path is not exact for this tokenizer: never again
        else:
            m = self.pieces.measure(text, spans, runs, self.L) if self.measured else None
            if m is None:  # an image id inside plain text, or the count-only path is off
                m = self._from_arrays(self.pieces.encode(text), spans, runs)
        return self._finish(rec, segs, runs, text, m)

    def _encode(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, starts, ends) through the piece cache when it is exact for this tokenizer (checked on the first
        ``CHECK_RECORDS`` records against the tokenizer's own encoding of the whole text)."""
        if self.pieces.ok and self.checks_left > 0:
            self.checks_left -= 1
            self.pieces.ok = self.pieces.agrees(text)
        if self.pieces.ok:
            return self.pieces.encode(text)
        enc = self.b.codec.encode(text)
        offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        return np.asarray(enc.ids, dtype=np.int64), offs[:, 0], offs[:, 1]

    def _from_arrays(
        self, enc: tuple[np.ndarray, np.ndarray, np.ndarray], spans: list[tuple[int, int]], runs: list[int]
    ) -> Any:
        """The :class:`stats_pieces.Measure` of a tokenized text (one ``<IMG_CONTEXT>`` per image), from its ids and
        offsets: what :meth:`PieceCodec.measure` computes from piece lengths."""
        from internvl_data.pipeline import labels as lab
        from internvl_data.stats.piece_cache import Measure

        codec = self.b.codec
        ids, starts, ends = enc
        ctx = np.flatnonzero(ids == codec.img_context)
        reps = np.ones(len(ids), dtype=np.int64)
        reps[ctx[: len(runs)]] = runs[: len(ctx)]  # a surplus <IMG_CONTEXT> is one token
        after = np.cumsum(reps)  # full position (1-based) of each token's last id
        trained = (lab.semantic_labels(ids, np.column_stack((starts, ends)), spans) != lab.IGNORE) & (after <= self.L)
        last_image = 0
        if runs:  # as SampleBuilder: image ids are masked (and located) in records with images only
            is_image = self.b._is_image(ids)
            trained &= ~is_image
            last_image = int(after[is_image][-1]) if is_image.any() else 0
        pads = int(((ids == codec.pad_id) & (after <= self.L)).sum()) if codec.pad_id is not None else 0
        return Measure(
            int(after[-1]) if len(ids) else 0,
            int(trained.sum()),
            last_image,
            pads,
            len(ctx),
            int((ids == codec.img_end).sum()),
        )

    def _finish(self, rec: Record, segs: list, runs: list[int], text: str, m: Any) -> Counts:
        """Counts from a record's :class:`stats_pieces.Measure`; the official arithmetic decides ``mismatch``."""
        from internvl_data.pipeline import labels as lab

        if m.contexts != len(runs) or m.ends != len(runs):
            return self._slow(rec)  # a literal image token in the text: the builder names the problem
        image = _image_tokens(runs)
        c = Counts(
            rec.kind,
            self.b.template.name,
            m.full,
            image,
            m.full - image,
            frames=len(runs) * (rec.kind == "video"),
            last_image_end=m.last_image_end,
        )
        c.truncated_image = bool(runs) and m.last_image_end > self.L
        if c.truncated_image:
            return c
        c.supervised = m.supervised
        try:
            cur = lab.official_length(self.b.template, *self._official_inputs(segs, runs, text))
        except ValueError:
            return self._slow(rec)
        c.mismatch = cur < self.L and cur != min(m.full, self.L) - m.pads
        return c

    def _official_inputs(self, segs: list, runs: list[int], text: str) -> tuple[str, Callable[[str], int]]:
        """The text and ``n`` for the official arithmetic.

        The images are never expanded: the arithmetic splits only at template markers, so it sees the same
        parts without building and re-scanning strings of thousands of ``<IMG_CONTEXT>``. When every image has
        the same run length the text keeps one ``<IMG_CONTEXT>`` per image and ``n`` adds the run back;
        otherwise image k keeps k + 1 of them, so that ``n`` can tell from a part's runs which images it holds.
        (Callers have checked that the text has no other ``<IMG_CONTEXT>``.) ``n`` counts through the piece
        cache when it is exact, else with the tokenizer.
        """
        from internvl_data.pipeline.labels import IMG_CONTEXT_RUN
        from internvl_data.pipeline.templates import expanded_text
        from internvl_data.pipeline.tokenizer import IMG_CONTEXT

        count = self.pieces.count if self.pieces.ok else self.b.n
        if len(set(runs)) > 1:
            width = len(IMG_CONTEXT)

            def n(s: str) -> int:
                extra = 0
                if IMG_CONTEXT in s:
                    for m in IMG_CONTEXT_RUN.finditer(s):
                        k = (m.end() - m.start()) // width
                        extra += runs[k - 1] - k
                return count(s) + extra

            return expanded_text(segs, list(range(1, len(runs) + 1))), n
        extra = runs[0] - 1 if runs else 0
        if not extra:
            return text, count
        return text, lambda s: count(s) + s.count(IMG_CONTEXT) * extra

    def _slow(self, rec: Record) -> Counts:
        """Through ``SampleBuilder.build_text`` (no pixels): exact by construction, one record at a time."""
        from internvl_data.pipeline.sample import SampleError, TruncatedImageError

        c = Counts(rec.kind, self.b.template.name, frames=len(rec.tiles) * (rec.kind == "video"))
        try:
            convs = prepare(rec)
            s = self.b.build_text(convs, rec.kind, rec.tiles, np.zeros((0, 3, 1, 1), np.float32), np.zeros(0, np.int64))
        except TruncatedImageError as exc:
            c.total = int(exc.details["length"])
            c.last_image_end = int(exc.details["last_image_token"]) + 1
            c.image = _image_tokens([self.b.tokens_per_tile * k for k in rec.tiles])
            c.text = c.total - c.image
            c.truncated_image = True
            return c
        except SampleError as exc:
            c.error = f"{exc.code}: {exc}"
            return c
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # the official preprocessor raises too
            c.error = f"IVL201: the record cannot be built ({exc})"
            return c
        c.total = s.full_length
        where = np.flatnonzero(self.b._is_image(s.input_ids))  # never truncated: that raises above
        c.image = _image_tokens([self.b.tokens_per_tile * k for k in rec.tiles])  # a literal <img> in text is text
        c.last_image_end = int(where[-1]) + 1 if len(where) and rec.tiles else 0  # as the fast paths
        c.text = c.total - c.image
        c.supervised = int((s.labels != -100).sum())
        c.mismatch = bool(s.official_mismatch)
        return c

    # -- into a tally ------------------------------------------------------------------------------------------

    def add_batch(self, records: list[Record], tally: Tally) -> list[Counts]:
        """Count ``records`` into ``tally``; returns the counts (``lengths`` writes ``total``)."""
        counts = self.count_batch(records)
        L = self.L
        for rec, c in zip(records, counts):
            if c.error:
                tally.counts["build_errors"] += 1
                tally.problem(rec.offset, c.error)
                continue
            tally.add("text_tokens", c.text)
            tally.add("image_tokens", c.image)
            tally.add("total_tokens", c.total)
            if c.total > L:
                tally.counts["over_length"] += 1
                if rec.kind == "video" and self.video_min_total(rec) > L:
                    tally.counts["video_cannot_fit"] += 1
            if c.truncated_image:
                # one answer with validate: an image cut is IVL402; a video over the budget is IVL405 (video cannot
                # fit, counted above) or IVL406 (may overflow: in over_length), never an image cut
                if rec.kind != "video":
                    tally.counts["truncated_image"] += 1
                continue
            tally.add("supervised_tokens", c.supervised)
            tally.counts["zero_supervised"] += c.supervised == 0
            tally.counts["official_mismatch"] += c.mismatch
        return counts

    def video_min_total(self, rec: Record) -> int:
        """Total tokens of a video record with the fewest frames the trainer draws (``min_num_frame``)."""
        fewer = Record(rec.obj, rec.kind, [1] * self.settings.min_num_frame)
        return self.count_batch([fewer])[0].total


def _image_tokens(runs: list[int]) -> int:
    """Tokens of the images themselves: each run of ``<IMG_CONTEXT>`` plus its ``<img>`` and ``</img>``."""
    return sum(runs) + 2 * len(runs)


def prepare(rec: Record) -> list[dict]:
    """The conversation with the loader's placeholder edits (``<image>`` auto-insert, video frame lines)."""
    from internvl_data.pipeline.sample import prepare_conversations

    return prepare_conversations(rec.obj, rec.kind, len(rec.tiles) if rec.kind == "video" else 0)[0]
