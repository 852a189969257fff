"""IVL4xx: token budgets, checked with the checkpoint's tokenizer and template (``validate --model DIR``).

``TokenChecker(entry, options).check(obj, ctx)`` counts a record's tokens exactly as ``ivl-data stats`` does
(:mod:`stats.tokens`: template, image tokens from header sizes through the tiling, the tokenizer) and reports
over-length records, truncation through an image, records with nothing to learn, the official arithmetic's
mismatch fallback and videos whose frames cannot fit. One finding per problem, the most specific first.
"""

from __future__ import annotations

from typing import Any

from internvl_data.checks.catalogue import Consequence, emit, rule
from internvl_data.checks.findings import Finding, Severity

E, W = Severity.ERROR, Severity.WARNING
C = Consequence

rule(
    "IVL401",
    "over-max-seq-length",
    W,
    "The record is longer than --max-seq-length tokens (images included).",
    "The official trainer cuts the sequence at max_seq_length after the last </img>, so what trains is still a "
    "valid sample: the end of the last answers is not learned, and the tokens before the cut still cost a "
    "full-length step.",
    "a 3-turn record with one 1920x1080 image (9 tiles = 2,304 image tokens) and 2,500 text tokens, "
    "max_seq_length 4096",
    "Shorten or split the conversation, lower the dataset's max_dynamic_patch, or raise --max-seq-length.",
    consequence=C.ALTERED,  # ref §3.11, §10.1 (warn)
)
rule(
    "IVL402",
    "image-tokens-truncated",
    E,
    "Cutting at --max-seq-length would remove image tokens.",
    "The official loader asserts that every `</img>` survives truncation; the assertion fails and the record "
    "is silently replaced by a random other one (ivl-train skips and counts it).",
    "a long system-free question before a 13-tile image: `</img>` lands at token 4,200 of 4,096",
    "Put the image first, shorten the text, lower max_dynamic_patch for the dataset, or raise --max-seq-length.",
    consequence=C.CRASH,  # ref §3.11, §3.2
)
rule(
    "IVL403",
    "zero-supervised-tokens",
    E,
    "No token of the record would be trained.",
    "Every answer is empty or cut off by truncation: the official trainer still trains the record, at full "
    "cost, with nothing to learn.",
    '{"conversations": [{"from": "human", "value": "<4,096 tokens of text>"}, {"from": "gpt", "value": "Yes."}]}',
    "Shorten the prompt so that the answers fit, or drop the record.",
    consequence=C.BROKEN,  # ref §3.11, §10.1 (rejects zero supervised tokens)
)
rule(
    "IVL404",
    "official-tokenization-mismatch",
    E,
    "The official per-template label arithmetic would hit its 'tokenization mismatch' fallback.",
    "The official trainer then sets every label to -100 and trains the record with zero supervision, "
    "printing only a warning (a template that does not fit the tokenizer, a trailing human turn...).",
    "the Hermes-2 template with a tokenizer that adds a BOS token",
    "Use the template the checkpoint was trained with (config.json `template`), end with a gpt turn, or train "
    "with ivl-train, whose labels do not depend on this arithmetic.",
    consequence=C.BROKEN,  # ref §4.3
)
rule(
    "IVL405",
    "video-frames-cannot-fit",
    E,
    "Even the fewest frames the trainer draws (min_num_frame) do not fit in --max-seq-length.",
    "Each frame costs tokens_per_tile + 2 tokens plus its `Frame-k: ` line; the official loader does not check "
    "video truncation, so the cut frames leave the sample without its image tokens and the model zeroes the "
    "loss of the whole micro-batch.",
    "a video record with 8 frames x 258 tokens + 2,200 text tokens at max_seq_length 4096",
    "Lower --min_num_frame/--max_num_frame, shorten the text, or raise --max-seq-length.",
    consequence=C.BROKEN,  # ref §3.9, §3.11, §5.5
)
rule(
    "IVL406",
    "video-frames-may-overflow",
    W,
    "With the most frames the trainer draws (max_num_frame) the record is longer than --max-seq-length.",
    "The official loader draws the frame count per step between min_num_frame and max_num_frame; every draw "
    "above the reported count cuts frame tokens and zeroes the loss of its micro-batch.",
    "a video record at max_num_frame 32: 32 x 258 = 8,256 tokens, max_seq_length 4096",
    "Lower --max_num_frame to the reported count or raise --max-seq-length.",
    consequence=C.BROKEN,  # ref §3.9, §5.5, §10.1
    override="ivl-data validate does not know the trainer's max_num_frame (it counts 32, the official default), "
    "so it cannot tell whether any draw overflows; ivl-train's data gate, which knows it, makes this an error "
    "when max_num_frame is 32 or more",
)


rule(
    "IVL407",
    "record-over-budget",
    E,
    "The record's text is over the per-record budget (64 characters per --max-seq-length token, at least 1 MiB).",
    "The official trainer keeps only the first max_seq_length tokens of such a record (as for IVL401), yet "
    "tokenizes all of it every epoch (one 50 MB line: minutes and gigabytes). ivl-data reports it without "
    "tokenizing it, so one line cannot stall a run.",
    '{"conversations": [{"from": "human", "value": "<50 MB of base64>"}, ...]}',
    "Remove the embedded data or split the record; raise --max-seq-length only if the text is real.",
    consequence=C.ALTERED,  # ref §3.11
    override="such a record is almost certainly a data bug (an embedded file, records glued together), not a long "
    "conversation",
)


def findings_for(counts: Any, ctx: Any, max_seq_length: int, min_frames_total: int | None = None) -> list[Finding]:
    """Findings for one record's :class:`stats.tokens.Counts` (``min_frames_total``: video at min frames)."""
    path, line, ds = ctx.path, ctx.line, getattr(ctx, "dataset", "")
    out: list[Finding] = []
    if counts.error.startswith("IVL407: "):
        return [emit("IVL407", path, line, counts.error.removeprefix("IVL407: "), dataset=ds)]
    if counts.error:
        return out  # a record that cannot be built is reported by the IVL2xx rules
    over = counts.total > max_seq_length
    if counts.kind == "video" and over:
        if min_frames_total is not None and min_frames_total > max_seq_length:
            out.append(
                emit(
                    "IVL405",
                    path,
                    line,
                    f"even the fewest frames make {min_frames_total:,} tokens, "
                    f"over --max-seq-length {max_seq_length:,}",
                    dataset=ds,
                )
            )
        else:
            out.append(
                emit(
                    "IVL406",
                    path,
                    line,
                    f"with {counts.frames} frames the record is {counts.total:,} "
                    f"tokens, over --max-seq-length {max_seq_length:,}",
                    dataset=ds,
                )
            )
    elif counts.truncated_image:
        out.append(
            emit(
                "IVL402",
                path,
                line,
                f"the record is {counts.total:,} tokens; cutting at "
                f"{max_seq_length:,} removes image tokens (the last `</img>` is token "
                f"{counts.last_image_end:,})",
                dataset=ds,
            )
        )
    elif over:
        out.append(
            emit(
                "IVL401",
                path,
                line,
                f"the record is {counts.total:,} tokens ({counts.image:,} image, "
                f"{counts.text:,} text), over --max-seq-length {max_seq_length:,}",
                dataset=ds,
            )
        )
    if counts.supervised == 0 and not counts.truncated_image:
        out.append(
            emit(
                "IVL403",
                path,
                line,
                "no token would be trained" + (f" after truncation at {max_seq_length:,}" if over else ""),
                dataset=ds,
            )
        )
    if counts.mismatch:
        out.append(
            emit(
                "IVL404",
                path,
                line,
                f"the official {counts.template} arithmetic would mask the whole "
                "record (tokenization mismatch): the official trainer learns nothing from it",
                dataset=ds,
            )
        )
    return out


_COUNTERS: dict[tuple, Any] = {}  # one tokenizer per process and model settings
_SIZES: Any = None  # image sizes read once per process


class TokenChecker:
    """Per dataset: ``check(obj, ctx)`` -> IVL4xx findings for one parsed record (``validate --model DIR``).

    Reads ``model_dir``, ``template``, ``max_seq_length`` (default 4096) and ``trust_remote_code`` (default
    off) from the validate options.
    """

    def __init__(self, entry: Any, options: Any):
        from internvl_data.stats.hist import Tally
        from internvl_data.stats.tokens import TokenCounter, model_settings
        from internvl_data.stats.types import Dataset, Settings

        global _SIZES
        self.L = int(getattr(options, "max_seq_length", None) or 4096)
        key = (
            options.model_dir,
            getattr(options, "template", None),
            self.L,
            bool(getattr(options, "trust_remote_code", False)),
        )
        counter = _COUNTERS.get(key)
        if counter is None:
            base = Settings(max_seq_length=self.L, trust_remote_code=key[3])
            counter = _COUNTERS[key] = TokenCounter.load(model_settings(key[0], base, template=key[1]))
        self.counter = counter
        model = getattr(entry, "entry", None)
        mdp = getattr(model, "max_dynamic_patch", None) if model is not None else None
        self.dataset = Dataset(
            getattr(entry, "name", ""), getattr(entry, "annotation_path", ""), getattr(entry, "root_path", ""), mdp
        )
        if _SIZES is None:
            from internvl_data.media.sizes import MediaSizes

            _SIZES = MediaSizes({}, record_new=False)
        self.sizes = _SIZES
        self.tally = Tally()  # scan_record counts into it; the checks only need the record

    def check(self, obj: Any, ctx: Any) -> list[Finding]:
        from internvl_data.stats.worker import scan_record

        rec = scan_record(obj, self.dataset, self.counter.settings, self.sizes, self.tally)
        if rec is None or any(n == 0 for n in rec.tiles):  # shape or media problems: IVL2xx / IVL3xx report them
            return []
        counts = self.counter.count_batch([rec])[0]
        fewest = None
        if rec.kind == "video" and counts.total > self.L:
            fewest = self.counter.video_min_total(rec)
        return findings_for(counts, ctx, self.L, fewest)
