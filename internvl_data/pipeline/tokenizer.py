"""The checkpoint's own tokenizer, loaded without running checkpoint code unless asked.

``load_tokenizer(dir)`` goes through ``AutoTokenizer`` for ordinary checkpoints. A checkpoint whose
``tokenizer_config.json`` has an ``auto_map`` (custom tokenizer code) needs ``trust_remote_code=True``,
except InternLM2 checkpoints (2B/8B/26B), which we build natively from their SentencePiece ``tokenizer.model``
(same pieces, same added tokens at the same ids, BOS prepended) without executing their Python file.

We never pass ``add_bos_token``/``add_eos_token`` to ``from_pretrained``: in transformers 5 that rebuilds the
post-processor and can drop a SentencePiece tokenizer's BOS. EOS is never added by any tokenizer we build.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from internvl_data.errors import ModelSetupError
from internvl_data.pipeline.special_tokens import IMG_CONTEXT, IMG_END, IMG_START, INTERNVL_TOKENS


class TokenizerLoadError(ModelSetupError):
    """The checkpoint's tokenizer cannot be loaded as asked; the message says how to fix it."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise TokenizerLoadError(f"{path}: cannot read ({exc}); fix or restore the file") from None


def _auto_tokenizer_map(cfg: dict[str, Any]) -> Any:
    amap = cfg.get("auto_map") or {}
    return amap.get("AutoTokenizer") if isinstance(amap, dict) else amap


def _is_internlm2(cfg: dict[str, Any]) -> bool:
    names = json.dumps(_auto_tokenizer_map(cfg)) + str(cfg.get("tokenizer_class", ""))
    return "internlm2" in names.lower()


def load_tokenizer(
    model_dir: str | os.PathLike[str], *, trust_remote_code: bool = False, use_fast: bool | None = None
) -> Any:
    """Load the tokenizer of a checkpoint directory and make sure the 9 InternVL tokens are single ids.

    Ctrl-C or SIGTERM while it loads is acted on once it is loaded (:func:`internvl_data.fsio.signals_deferred`):
    importing transformers imports torch, whose C++ import code aborts the process ("terminate called after throwing
    an instance of 'pybind11::error_already_set'") when a KeyboardInterrupt is raised inside it."""
    from internvl_data.fsio import signals_deferred

    with signals_deferred():
        return _load(Path(model_dir), trust_remote_code, use_fast)


def _load(model_dir: Path, trust_remote_code: bool, use_fast: bool | None) -> Any:
    if not model_dir.is_dir():
        raise TokenizerLoadError(f"{model_dir}: not a directory; --model must be a checkpoint directory")
    cfg = _read_json(model_dir / "tokenizer_config.json")
    custom = _auto_tokenizer_map(cfg) is not None
    if custom and not trust_remote_code:
        if _is_internlm2(cfg) and (model_dir / "tokenizer.model").is_file():
            tok = _native_internlm2(model_dir, cfg)
        else:
            raise TokenizerLoadError(
                f"{model_dir / 'tokenizer_config.json'}: the tokenizer is custom code (auto_map "
                f"{_auto_tokenizer_map(cfg)!r}); pass --trust-remote-code (trust_remote_code=True) if you trust "
                "this checkpoint"
            )
    else:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if use_fast is not None:
            kwargs["use_fast"] = use_fast
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # AutoTokenizer reads config.json and warns about internvl_chat
        try:
            tok = AutoTokenizer.from_pretrained(str(model_dir), **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise TokenizerLoadError(f"{model_dir}: cannot load the tokenizer ({exc})") from None
        finally:
            hf_logging.set_verbosity(level)
    missing = [t for t in INTERNVL_TOKENS if t not in tok.get_vocab()]
    if missing:  # the official trainer adds them (a no-op for released checkpoints)
        tok.add_tokens(list(INTERNVL_TOKENS), special_tokens=True)
    return tok


def spm_backend(model_file: str | Path, *, bos_token: str | None, add_bos: bool) -> Any:
    """A ``tokenizers.Tokenizer`` equivalent to a SentencePiece model encoding each text chunk on its own.

    Added (special) tokens are split off before normalisation, so every chunk gets SentencePiece's dummy
    prefix like ``sp.encode(chunk)`` does in the slow tokenizers of InternLM2 and Llama.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    proto = SentencePieceExtractor(str(model_file)).proto
    spec, norm = proto.trainer_spec, proto.normalizer_spec
    pieces = [(p.piece, p.score) for p in proto.pieces]
    unk = pieces[spec.unk_id][0]
    if spec.model_type == 1:  # UNIGRAM
        model: models.Model = models.Unigram(pieces, spec.unk_id, byte_fallback=spec.byte_fallback)
    else:
        from transformers.convert_slow_tokenizer import generate_merges

        vocab = {p: i for i, (p, _) in enumerate(pieces)}
        merges = generate_merges(vocab)
        model = models.BPE(vocab, merges, unk_token=unk, fuse_unk=True, byte_fallback=spec.byte_fallback)
    tok = Tokenizer(model)
    steps = [normalizers.Prepend("▁")] if norm.add_dummy_prefix else []
    tok.normalizer = normalizers.Sequence(steps + [normalizers.Replace(" ", "▁")])
    dec = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if norm.add_dummy_prefix:
        dec.append(decoders.Strip(" ", 1, 0))
    tok.decoder = decoders.Sequence(dec)
    controls = [p.piece for p in proto.pieces if p.type in (2, 3)]  # UNKNOWN, CONTROL: never produced by text
    tok.add_special_tokens([AddedToken(c, special=True, normalized=False) for c in controls])
    if add_bos and bos_token:
        bos_id = tok.token_to_id(bos_token)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos_token}:0 $A:0",
            pair=f"{bos_token}:0 $A:0 {bos_token}:1 $B:1",
            special_tokens=[(bos_token, bos_id)],
        )
    return tok


def _native_internlm2(model_dir: Path, cfg: dict[str, Any]) -> Any:
    """InternLM2Tokenizer rebuilt from ``tokenizer.model`` + ``tokenizer_config.json`` without its code."""
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    def tok_str(key: str, default: str | None) -> str | None:
        v = cfg.get(key, default)
        return v.get("content") if isinstance(v, dict) else v

    bos, eos = tok_str("bos_token", "<s>"), tok_str("eos_token", "</s>")
    unk, pad = tok_str("unk_token", "<unk>"), tok_str("pad_token", None)
    backend = spm_backend(model_dir / "tokenizer.model", bos_token=bos, add_bos=bool(cfg.get("add_bos_token", True)))
    added = sorted(((int(k), v) for k, v in (cfg.get("added_tokens_decoder") or {}).items()), key=lambda kv: kv[0])
    for tid, spec in added:
        backend.add_special_tokens([AddedToken(spec["content"], special=True, normalized=False)])
        if backend.token_to_id(spec["content"]) != tid:
            raise TokenizerLoadError(
                f"{model_dir / 'tokenizer_config.json'}: added token {spec['content']!r} is declared with id {tid} but "
                f"lands on id {backend.token_to_id(spec['content'])} when rebuilt from tokenizer.model; load it with "
                "--trust-remote-code instead"
            )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        pad_token=pad,
        model_max_length=int(cfg.get("model_max_length", 1_000_000_000_000)),
        clean_up_tokenization_spaces=False,
    )


class TokenCodec:
    """Fast encoding for sample building: the tokenizer's Rust backend, ids of the tokens we splice.

    ``encode(text)`` equals ``tokenizer(text).input_ids`` (special tokens added as the checkpoint does) and
    also returns character offsets; truncation and padding are off (we truncate ourselves).
    """

    def __init__(self, tokenizer: Any) -> None:
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TokenizerLoadError(
                f"{type(tokenizer).__name__} has no fast (Rust) backend; load the checkpoint with use_fast unset"
            )
        self.tokenizer = tokenizer
        self.backend = Tokenizer.from_str(backend.to_str())  # our own copy: no truncation/padding state shared
        self.backend.no_truncation()
        self.backend.no_padding()
        vocab = tokenizer.get_vocab()
        self.img_start, self.img_end, self.img_context = (vocab[t] for t in (IMG_START, IMG_END, IMG_CONTEXT))
        self.pad_id = tokenizer.pad_token_id
        self.endoftext_id = vocab.get("<|endoftext|>")
        self.prefix = self._drop_eos_suffix()  # what the tokenizer puts before any text (BOS or nothing)
        self.bos_token = tokenizer.bos_token if self.prefix else None

    def _drop_eos_suffix(self) -> list[int]:
        """The special ids put before text; a post-processor that also appends ids (an EOS) is replaced by one
        that only prepends, as the official ``add_eos_token=False`` loading does."""
        from tokenizers import processors

        bare = self.backend.encode("a", add_special_tokens=False).ids
        full = self.backend.encode("a").ids
        k = next((i for i in range(len(full) - len(bare) + 1) if full[i : i + len(bare)] == bare), 0)
        prefix, suffix = full[:k], full[k + len(bare) :]
        if suffix:
            names = [self.backend.id_to_token(i) for i in prefix]
            single = " ".join([f"{n}:0" for n in names] + ["$A:0"])
            self.backend.post_processor = processors.TemplateProcessing(
                single=single, pair=single + " $B:1", special_tokens=list(zip(names, prefix))
            )
        return prefix

    def encode(self, text: str) -> Any:
        """A ``tokenizers.Encoding`` (``.ids``, ``.offsets``)."""
        return self.backend.encode(text)

    def encode_batch(self, texts: list[str]) -> list[Any]:
        return self.backend.encode_batch(texts)

    def ids(self, text: str) -> list[int]:
        return self.backend.encode(text).ids
