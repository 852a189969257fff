"""Tokenization by pieces: the text between added special tokens, each piece tokenized once and cached.

A fast tokenizer extracts added special tokens before its normalizer, pre-tokenizer and model run, so
``encode(text)`` is the tokenizer's prefix (BOS or nothing) followed by, for each piece between special tokens,
that piece's own tokens. The official label arithmetic tokenizes many substrings of the rendered conversation
(``n(parts[0] + '<|im_start|>assistant\\n')``, each turn...): split into pieces they are the same pieces as the
full text, so every count after the first is a dictionary lookup.

This holds for every tokenizer whose pieces do not depend on their neighbours. :meth:`PieceCodec.probe`
checks it on the tokenizer at hand with probe strings and on the first records of each worker; when it fails,
callers use the plain encoder.
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

MAX_CACHE = 8192  # short pieces per cache generation; two generations are kept (memory stays flat)
SHORT = 256  # characters: longer pieces are kept for one record only


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # ids, starts, ends of one piece
Entry = Any  # Arrays (a short piece) or the ``tokenizers.Encoding`` of a long one (``add_special_tokens=False``)


class PieceCodec:
    """Piece-wise tokenization through a cache of pieces.

    ``encode(text) -> (ids, starts, ends)`` materialises ids and offsets (the exact path); ``count(text)`` and
    :meth:`measure` read lengths and, inside a long piece, only the offsets of the token at each span boundary:
    a long piece (an answer) stays a ``tokenizers.Encoding`` and is never converted to Python lists, which
    cost more than the tokenization itself. Short pieces are kept as small arrays (an Encoding is ~10 KB).
    """

    def __init__(self, codec: Any):
        self.backend = codec.backend
        added = self.backend.get_added_tokens_decoder()
        self.special = {tok.content: tid for tid, tok in added.items()}
        names = sorted(self.special, key=len, reverse=True)  # leftmost-longest, as the tokenizer matches
        self.split = re.compile("(" + "|".join(re.escape(s) for s in names) + ")").split if names else None
        self.prefix = [int(i) for i in codec.prefix]  # what the tokenizer puts before any text (BOS or nothing)
        self.img = (codec.img_start, codec.img_end, codec.img_context)
        self.pad_id = codec.pad_id
        # ids that a plain piece could produce (they are in the model's own vocabulary): pieces are checked
        base = set(self.backend.get_vocab(with_added_tokens=False).values())
        self.watch = {i for i in (*self.img, self.pad_id) if i is not None and i in base}
        self.watch_image = self.watch - {self.pad_id}
        self.cache: dict[str, Entry] = {}
        self.old: dict[str, Entry] = {}  # the previous generation
        self.local: dict[str, Entry] = {}  # long pieces of one record
        self.ok = self.split is not None and all(self.agrees(t) for t in PROBES)

    def _piece(self, piece: str) -> Entry:
        """The entry of one (non-special) piece, tokenized on first use.

        Short pieces (headers, frame labels, frequent prompts) stay in a two-generation cache; long ones (the
        answers) only until :meth:`forget_long` is called after each record, so memory stays small.
        """
        hit = self.old.get(piece) or self.local.get(piece)
        if hit is None:
            hit = self.backend.encode(piece, add_special_tokens=False)
            if len(piece) <= SHORT:
                hit = _arrays(hit)
        if len(piece) > SHORT:
            self.local[piece] = hit
        else:
            if len(self.cache) >= MAX_CACHE:
                self.old, self.cache = self.cache, {}
            self.cache[piece] = hit
        return hit

    def forget_long(self) -> None:
        """Drop the long pieces of the record just counted."""
        self.local.clear()

    def _arrays(self, piece: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tid = self.special.get(piece)
        if tid is not None:
            return np.asarray([tid], np.int64), np.zeros(1, np.int64), np.asarray([len(piece)], np.int64)
        hit = self.cache.get(piece) or self._piece(piece)
        return hit if type(hit) is tuple else _arrays(hit)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids and character start/end offsets of ``text`` (prefix tokens have offsets (0, 0))."""
        k = len(self.prefix)
        ids, starts, ends, where, sizes = (
            [np.asarray(self.prefix, np.int64)],
            [np.zeros(k, np.int64)],
            [np.zeros(k, np.int64)],
            [0],
            [k],
        )
        pos = 0
        for piece in self.split(text) if self.split else [text]:
            if piece:
                hit = self._arrays(piece)
                ids.append(hit[0])
                starts.append(hit[1])
                ends.append(hit[2])
                where.append(pos)
                sizes.append(len(hit[0]))
                pos += len(piece)
        shift = np.repeat(np.asarray(where, np.int64), sizes)  # each piece's offsets move by its position
        return np.concatenate(ids), np.concatenate(starts) + shift, np.concatenate(ends) + shift

    def count(self, text: str) -> int:
        """``len(tokenizer(text).input_ids)``."""
        n = len(self.prefix)
        get, special = self.cache.get, self.special
        for piece in self.split(text) if self.split else [text]:
            if piece:
                if piece in special:
                    n += 1
                else:
                    hit = get(piece) or self._piece(piece)
                    n += len(hit[0]) if type(hit) is tuple else len(hit)
        return n

    def measure(self, text: str, spans: list[tuple[int, int]], runs: list[int], limit: int) -> Measure | None:
        """Token facts of ``text`` (one ``<IMG_CONTEXT>`` per image, image k stands for ``runs[k]`` tokens).

        Trained tokens are those whose first character lies in a ``spans`` interval (sorted, disjoint), that are
        not image tokens (when the record has images: a literal ``<img>`` in a text record is trained, as in
        ``SampleBuilder``) and that end at a full position <= ``limit``. Returns None when a piece needs the exact path (an image id inside plain text).
        """
        img_start, img_end, ctx = self.img
        pad, watch, special = self.pad_id, self.watch, self.special
        tok = len(self.prefix)
        pads = self.prefix[:limit].count(pad)
        supervised = last_image = n_ctx = n_end = 0
        pos = si = 0
        nspan = len(spans)
        get = self.cache.get
        for piece in self.split(text) if self.split else [text]:
            if not piece:
                continue
            end = pos + len(piece)
            while si < nspan and spans[si][1] <= pos:
                si += 1
            tid = special.get(piece)
            if tid is not None:
                k = 1
                if tid == ctx:
                    k = runs[n_ctx] if n_ctx < len(runs) else 1
                    n_ctx += 1
                n_end += tid == img_end
                if runs and (tid == ctx or tid == img_start or tid == img_end):
                    last_image = tok + k  # image tokens are never trained (in a text record they are text)
                elif si < nspan and spans[si][0] <= pos and tok < limit:
                    supervised += 1
                if tid == pad and tok < limit:
                    pads += 1
                tok += k
                pos = end
                continue
            enc = get(piece) or self._piece(piece)
            room = limit - tok  # tokens of this piece at local index < room are inside the limit
            if type(enc) is tuple:  # a short piece: its arrays answer everything exactly
                ids, starts, ends = enc
                if watch:
                    if self.watch_image and np.isin(ids, list(self.watch_image)).any():
                        return None
                    if pad in watch and room > 0:
                        pads += int((ids[:room] == pad).sum())
                k = si
                while k < nspan and spans[k][0] < end and room > 0:
                    a, b = spans[k][0] - pos, spans[k][1] - pos
                    s, e = starts[:room], ends[:room]
                    supervised += int(((s >= a) & (s < b) & (e > s)).sum())
                    k += 1
                tok += len(ids)
                pos = end
                continue
            n = len(enc)
            if watch:
                ids = enc.ids
                if self.watch_image and not self.watch_image.isdisjoint(ids):
                    return None
                if pad in watch and room > 0:
                    pads += ids[:room].count(pad)
            k = si
            while k < nspan and spans[k][0] < end and room > 0:
                a, b = spans[k][0] - pos, spans[k][1] - pos
                lo = _before(enc, a) if a > 0 else None
                hi = n if b >= len(piece) else _before(enc, b)
                if lo is None or hi is None:  # the span starts at the piece (or a char without a token)
                    supervised += _exact(enc, a, b, room)
                else:
                    supervised += max(0, min(hi, room) - lo)
                k += 1
            tok += n
            pos = end
        return Measure(tok, supervised, last_image, pads, n_ctx, n_end)

    def agrees(self, text: str) -> bool:
        """Whether piece-wise encoding equals the tokenizer's own encoding of ``text`` (ids and offsets)."""
        enc = self.backend.encode(text)
        ids, starts, ends = self.encode(text)
        offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        if list(ids) != list(enc.ids):
            return False
        k = len(self.prefix)  # prefix tokens carry no characters
        return bool((starts[k:] == offs[k:, 0]).all() and (ends[k:] == offs[k:, 1]).all())


def _arrays(enc: Any) -> Arrays:
    ids = enc.ids  # each attribute access converts the whole vector: read once
    n = len(ids)
    offs = np.fromiter(chain.from_iterable(enc.offsets), np.int64, 2 * n).reshape(n, 2)
    return np.fromiter(ids, np.int64, n), offs[:, 0], offs[:, 1]


class Measure(NamedTuple):
    """What :meth:`PieceCodec.measure` reads off one record's text."""

    full: int  # tokens with every image run expanded (before truncation)
    supervised: int  # trained tokens within the limit
    last_image_end: int  # 1-based full position of the last image token (0: none)
    pads: int  # pad ids among the first ``limit`` positions
    contexts: int  # <IMG_CONTEXT> pieces
    ends: int  # </img> pieces


def _before(enc: Any, c: int) -> int | None:
    """How many tokens of a piece start before local character ``c`` (0 < c < len); None when ``c`` is in no
    token (a character the normalizer removed): the caller then reads every offset."""
    j = enc.char_to_token(c)
    if j is None:
        return None
    return j if enc.token_to_chars(j)[0] >= c else j + 1


def _exact(enc: Any, a: int, b: int, room: int) -> int:
    """Tokens with start in ``[a, b)``, a non-empty span of characters, and index < ``room``."""
    return sum(1 for i, (s, e) in enumerate(enc.offsets) if a <= s < b and e > s and i < room)


PROBES = (
    "<|im_start|>system\n你是一个有用的助手。<|im_end|><|im_start|>user\n<img><IMG_CONTEXT></img>\nWhat is  this?"
    "<|im_end|><|im_start|>assistant\n A cat, 3.14 cats!<|im_end|>",
    "<|system|>\nSys<|end|><|user|>\n  leading spaces\n\nand\ttabs<|end|><|assistant|>\nOK<|end|>",
    "<|im_start|>user\nFrame-1: <img><IMG_CONTEXT></img>\nFrame-2: <img><IMG_CONTEXT></img>\n请描述<|im_end|>",
    " starts with a space<|im_end|>ends without",
)
