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
from typing import Any

import numpy as np

MAX_CACHE = 8192  # short pieces per cache generation; two generations are kept (memory stays flat)
SHORT = 256  # characters: longer pieces are kept for one record only


class PieceCodec:
    """``encode(text) -> (ids, starts, ends)`` and ``count(text) -> int`` through a piece cache."""

    def __init__(self, codec: Any):
        self.backend = codec.backend
        added = self.backend.get_added_tokens_decoder()
        self.special = {tok.content: tid for tid, tok in added.items()}
        names = sorted(self.special, key=len, reverse=True)  # leftmost-longest, as the tokenizer matches
        self.split = re.compile("(" + "|".join(re.escape(s) for s in names) + ")").split if names else None
        self.prefix = np.asarray(codec.prefix, dtype=np.int64)
        self.cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.old: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # the previous generation
        self.local: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # long pieces of one record
        self.ok = self.split is not None and all(self.agrees(t) for t in PROBES)

    def _piece(self, piece: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ids, starts, ends) of one piece, tokenized on first use.

        Short pieces (headers, frame labels, frequent prompts) stay in a two-generation cache; long ones (the
        answers) only until :meth:`forget_long` is called after each record, so memory stays small.
        """
        hit = self.old.get(piece) or self.local.get(piece)
        if hit is None:
            tid = self.special.get(piece)
            if tid is not None:
                hit = (np.asarray([tid], np.int64), np.zeros(1, np.int64), np.asarray([len(piece)], np.int64))
            else:
                enc = self.backend.encode(piece, add_special_tokens=False)
                ids = enc.ids  # each attribute access converts the whole vector: read once
                n = len(ids)
                offs = np.fromiter(chain.from_iterable(enc.offsets), np.int64, 2 * n).reshape(n, 2)
                hit = (np.fromiter(ids, np.int64, n), offs[:, 0], offs[:, 1])
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

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids and character start/end offsets of ``text`` (prefix tokens have offsets (0, 0))."""
        k = len(self.prefix)
        ids, starts, ends, where, sizes = [self.prefix], [np.zeros(k, np.int64)], [np.zeros(k, np.int64)], [0], [k]
        pos = 0
        get = self.cache.get
        for piece in self.split(text) if self.split else [text]:
            if piece:
                hit = get(piece) or self._piece(piece)
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
        get = self.cache.get
        for piece in self.split(text) if self.split else [text]:
            if piece:
                n += len((get(piece) or self._piece(piece))[0])
        return n

    def agrees(self, text: str) -> bool:
        """Whether piece-wise encoding equals the tokenizer's own encoding of ``text`` (ids and offsets)."""
        enc = self.backend.encode(text)
        ids, starts, ends = self.encode(text)
        offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        if list(ids) != list(enc.ids):
            return False
        k = len(self.prefix)  # prefix tokens carry no characters
        return bool((starts[k:] == offs[k:, 0]).all() and (ends[k:] == offs[k:, 1]).all())


PROBES = (
    "<|im_start|>system\n你是一个有用的助手。<|im_end|><|im_start|>user\n<img><IMG_CONTEXT></img>\nWhat is  this?"
    "<|im_end|><|im_start|>assistant\n A cat, 3.14 cats!<|im_end|>",
    "<|system|>\nSys<|end|><|user|>\n  leading spaces\n\nand\ttabs<|end|><|assistant|>\nOK<|end|>",
    "<|im_start|>user\nFrame-1: <img><IMG_CONTEXT></img>\nFrame-2: <img><IMG_CONTEXT></img>\n请描述<|im_end|>",
    " starts with a space<|im_end|>ends without",
)
