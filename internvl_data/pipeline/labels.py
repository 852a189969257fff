"""Labels: the semantic masking we train with, and the official per-template arithmetic (docs/official-behaviour.md §4.3-4.7).

Semantic labels train every token that starts inside an assistant answer or its end-of-turn token, and mask
everything else. They are computed from character spans of the rendered segments and the tokenizer's offset
mapping, so BPE merges across a segment boundary are attributed to the segment the token starts in.

``official_labels`` reproduces the official preprocessors literally, segment token counts included, so that
callers can tell when the official trainer would fall back to "tokenization mismatch" (all labels ignored).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from internvl_data.pipeline.templates import Template

IGNORE = -100
IMG_CONTEXT_RUN = re.compile(r"(?:<IMG_CONTEXT>)+")


def semantic_labels(
    ids: Sequence[int] | np.ndarray,
    offsets: Sequence[tuple[int, int]] | np.ndarray,
    spans: Sequence[tuple[int, int]] | np.ndarray,
) -> np.ndarray:
    """``ids`` where the token's first character lies in a trained ``[start, end)`` span, else ``IGNORE``.

    Tokens without characters (BOS, offsets ``(0, 0)``) are never trained. ``spans`` must be sorted.
    """
    ids = np.asarray(ids, dtype=np.int64)
    labels = np.full(len(ids), IGNORE, dtype=np.int64)
    if not spans or not len(ids):
        return labels
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    sp = np.asarray(spans, dtype=np.int64)
    j = np.searchsorted(sp[:, 0], off[:, 0], side="right") - 1
    keep = (off[:, 1] > off[:, 0]) & (j >= 0) & (off[:, 0] < sp[np.maximum(j, 0), 1])
    labels[keep] = ids[keep]
    return labels


def counter(encode: Callable[[str], Sequence[int]]) -> Callable[[str], int]:
    """``n(x) = len(T(x).input_ids)`` for strings with long ``<IMG_CONTEXT>`` runs, tokenizing each run once.

    Added special tokens are split off before the tokenizer model runs, so a run of k ``<IMG_CONTEXT>``
    contributes exactly k ids; we tokenize a copy with one per run and add the rest.
    """

    def n(text: str) -> int:
        k = text.count("<IMG_CONTEXT>")
        if k == 0:
            return len(encode(text))
        short, runs = IMG_CONTEXT_RUN.subn("<IMG_CONTEXT>", text)
        return len(encode(short)) + k - runs

    return n


def official_labels(
    template: Template,
    text: str,
    input_ids: Sequence[int],
    n: Callable[[str], int],
    max_seq_length: int,
    pad_id: int | None,
    endoftext_id: int | None = None,
) -> tuple[np.ndarray, bool]:
    """Labels the official ``preprocess_{internlm,mpt,phi3}`` would produce, and whether it hit the mismatch.

    ``text`` is the rendered conversation with images expanded; ``input_ids`` its (truncated) tokenization;
    ``n`` counts tokens of a string as ``len(tokenizer(s).input_ids)``. The fallback applies only when
    ``cur_len < max_seq_length`` and ``cur_len != total_len``.
    """
    ids = np.asarray(input_ids, dtype=np.int64)
    labels = ids.copy()
    total_len = int((ids != pad_id).sum()) if pad_id is not None else len(ids)
    if template.masks_endoftext and endoftext_id is not None:
        labels[ids == endoftext_id] = IGNORE
    cur = _arithmetic(template)(template, text, labels, n)
    labels[max(cur, 0) :] = IGNORE
    mismatch = cur < max_seq_length and cur != total_len
    if mismatch:
        labels[:] = IGNORE
    return labels, mismatch


def official_length(template: Template, text: str, n: Callable[[str], int]) -> int:
    """``cur`` of the official arithmetic without labels: the official trainer falls back to "tokenization
    mismatch" when ``cur < max_seq_length`` and ``cur`` differs from the real (non-pad) input length."""
    return _arithmetic(template)(template, text, None, n)


def _arithmetic(template: Template) -> Callable[..., int]:
    fn = ARITHMETIC.get(template.preprocess)
    if fn is None:
        raise ValueError(f"template {template.name} has no whole-string arithmetic (use block labels)")
    return fn


def _mask(labels: np.ndarray | None, start: int, length: int) -> None:
    """``labels[start:start+length] = IGNORE`` with torch slice semantics (negative bounds wrap); no labels:
    only the length is wanted."""
    if labels is not None:
        labels[start : start + length] = IGNORE


def _internlm(t: Template, text: str, labels: np.ndarray | None, n: Callable[[str], int]) -> int:
    cur = 1
    _mask(labels, 0, 1)
    parts = text.split(t.assistant)
    h = n(parts[0] + t.assistant) - 1
    _mask(labels, cur, h)
    cur += h
    for part in parts[1:-1]:
        pieces = part.split(t.user)
        if len(pieces) != 2:  # the official tuple unpacking raises: the sample is replaced
            raise ValueError(f"an answer contains {t.user!r}; the official preprocessor raises on this record")
        a, q = pieces
        cur += n(a) - 1
        m = n(t.user + q + t.assistant) - 1
        _mask(labels, cur, m)
        cur += m
    cur += n(parts[-1]) - 1
    return cur


def _re_turns(t: Template, text: str) -> list[str]:
    turns = text.split(t.sep)
    out = [t.sep.join(turns[:3])]
    for k in range(3, len(turns), 2):
        out.append(t.sep.join(turns[k : k + 2]))
    return out


def _mpt(t: Template, text: str, labels: np.ndarray | None, n: Callable[[str], int]) -> int:
    cur = 0
    sep = t.sep + t.assistant
    for turn in _re_turns(t, text):
        if turn == "":
            break
        turn_len = n(turn) + 1
        parts = turn.split(sep)
        if len(parts) != 2:
            break
        _mask(labels, cur, n(parts[0] + sep))
        cur += turn_len
    return cur


def _phi3(t: Template, text: str, labels: np.ndarray | None, n: Callable[[str], int]) -> int:
    cur = 1
    _mask(labels, 0, 1)
    sep = t.sep + t.assistant
    for i, turn in enumerate(_re_turns(t, text)):
        if turn == "":
            break
        turn_len = n(turn) if i == 0 else n(turn) - 1
        parts = turn.split(sep)
        if len(parts) != 2:
            break
        _mask(labels, cur, n(parts[0] + sep) - (1 if i == 0 else 2))
        cur += turn_len
    return cur


def block_labels(roles: Sequence[str], blocks: Sequence[Sequence[int]], head_len: int) -> np.ndarray:
    """The official ``preprocess_internvl2_5`` labels over per-block token ids (block 0 = system).

    A gpt block keeps its ids except its first ``head_len`` (the assistant header) and its last (the
    newline after ``<|im_end|>``); every other block is ignored.
    """
    out = []
    for role, ids in zip(roles, blocks):
        lab = np.full(len(ids), IGNORE, dtype=np.int64)
        if role == "gpt" and len(ids) > head_len + 1:
            lab[head_len:-1] = ids[head_len:-1]
        out.append(lab)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


# The whole-string arithmetic of each preprocess style (``Template.preprocess``); block-wise styles have none.
ARITHMETIC: dict[str, Callable[..., int]] = {"internlm": _internlm, "mpt": _mpt, "phi3": _phi3}
