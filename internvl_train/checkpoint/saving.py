"""`save_pretrained`: a native InternVL model -> the original InternVL2 layout (drop-in) or the native layout.

Writes go to a temporary directory beside ``out_dir`` that is renamed into place at the end
(:func:`internvl_data.fsio.atomic_dir`); :func:`check_destination` says beforehand whether ``out_dir`` may be
replaced: never the source itself or a folder that contains it, never a non-empty folder that is not a checkpoint
(or a file) unless ``force``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from transformers import InternVLForConditionalGeneration

from internvl_data.fsio import atomic_dir
from internvl_train.checkpoint import configmap
from internvl_train.checkpoint.loading import keymap_for, load_tokenizer
from internvl_train.checkpoint.shards import write_shards
from internvl_train.errors import CheckpointError

DEFAULT_MAX_SHARD_BYTES = 5 * 1024**3
_TOKENIZER_FILES = (
    "tokenizer.model",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)


def save_pretrained(
    model: InternVLForConditionalGeneration,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    layout: str = "original",
    base: str | Path | None = None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    force: bool = False,
    source: str | Path | None = None,
) -> Path:
    """Save ``model`` (+ ``tokenizer``) to ``out_dir``; ``base`` lends its ``*.py`` and generation_config.json
    (without ``base``, ``source``, the checkpoint the model was loaded from, lends its generation_config.json),
    and, in the original layout, its tokenizer files when the vocabulary is unchanged. An existing checkpoint
    folder is replaced; anything else that exists is refused unless ``force`` (:func:`check_destination`)."""
    if layout not in ("original", "hf"):
        raise CheckpointError(f"unknown layout {layout!r}; use 'original' or 'hf'")
    out = Path(out_dir).absolute()  # `.` and `..` cannot be renamed; their absolute paths can
    check_destination(out, force=force)
    with atomic_dir(out) as tmp:
        if layout == "hf":
            model.save_pretrained(str(tmp), max_shard_size=max_shard_bytes)
        else:
            save_original_weights(model, tmp, max_shard_bytes)
            (tmp / "config.json").write_text(json.dumps(original_config(model), indent=2) + "\n", encoding="utf-8")
        if base is not None:
            _copy_from_base(Path(base), tmp, with_code=layout == "original")
        elif source is not None:  # the checkpoint the model came from keeps its generation settings
            _copy_present(Path(source), tmp, ["generation_config.json"])
        if tokenizer is not None and not (
            layout == "original" and base is not None and _copy_same_tokenizer(tokenizer, Path(base), tmp)
        ):
            _save_tokenizer(tokenizer, tmp)
    return out


def original_config(model: InternVLForConditionalGeneration) -> dict[str, Any]:
    """config.json in the original schema, with torch_dtype set to the weights' dtype."""
    cfg = configmap.to_original(model.config)
    name = str(next(model.parameters()).dtype).removeprefix("torch.")
    cfg["torch_dtype"] = name
    for sub in ("llm_config", "vision_config"):
        if "torch_dtype" in cfg[sub]:
            cfg[sub]["torch_dtype"] = name
    return cfg


def save_original_weights(model: InternVLForConditionalGeneration, out: Path, max_shard_bytes: int) -> None:
    """safetensors shards under the original key names, re-fusing wqkv / InternViT qkv."""
    keymap = keymap_for(model.config)
    state = model.state_dict()
    parts: dict[str, list[str]] = {}
    for key in state:
        parts.setdefault(keymap.original_name(key), []).append(key)
    planned = [(name, sum(state[k].numel() * state[k].element_size() for k in keys)) for name, keys in parts.items()]

    def produce(names: list[str]) -> dict[str, torch.Tensor]:
        native = ((k, state[k].detach().to("cpu")) for name in names for k in parts[name])
        out: dict[str, torch.Tensor] = {}
        stored: set[int] = set()  # safetensors refuses tensors sharing memory (a native model's tied lm_head)
        for name, tensor in keymap.to_original(native):
            ptr = tensor.untyped_storage().data_ptr()
            out[name] = tensor.clone() if ptr in stored else tensor.contiguous()
            stored.add(ptr)
        return out

    write_shards(out, planned, produce, max_shard_bytes)


def _copy_from_base(base: Path, out: Path, *, with_code: bool) -> None:
    if not base.is_dir():
        raise CheckpointError(f"--base {base}: not a directory; point it at the checkpoint you started from")
    _copy_present(base, out, ["generation_config.json"] + ([p.name for p in base.glob("*.py")] if with_code else []))


def _copy_same_tokenizer(tokenizer: Any, base: Path, out: Path) -> bool:
    """Copy ``base``'s own tokenizer files when ``tokenizer`` has the same vocabulary (a drop-in output keeps e.g.
    InternLM2's remote-code tokenizer files); False when it differs or cannot be compared."""
    try:
        same = load_tokenizer(base).get_vocab() == tokenizer.get_vocab()
    except CheckpointError:
        return False
    if same:
        _copy_present(base, out, _TOKENIZER_FILES)
    return same


LOADER_KEYS = ("is_local", "local_files_only")  # what from_pretrained adds to init_kwargs: not tokenizer settings


def _save_tokenizer(tokenizer: Any, out: Path) -> None:
    """``tokenizer.save_pretrained`` without the loader's own keys in tokenizer_config.json (transformers 5 writes
    ``is_local`` and ``local_files_only`` back, which the source checkpoint never had)."""
    tokenizer.save_pretrained(str(out))
    path = out / "tokenizer_config.json"
    if path.is_file():
        cfg = json.loads(path.read_text(encoding="utf-8"))
        if any(k in cfg for k in LOADER_KEYS):
            for k in LOADER_KEYS:
                cfg.pop(k, None)
            path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _copy_present(base: Path, out: Path, names: Iterable[str]) -> None:
    """Copy whichever of ``names`` exist as files in ``base``."""
    for name in names:
        if (base / name).is_file():
            shutil.copy2(base / name, out / name)


def is_checkpoint_dir(path: Path) -> bool:
    """A folder this tool may replace: it holds a config.json and only checkpoint files."""
    return path.is_dir() and (path / "config.json").is_file()


def check_destination(out: str | Path, *, src: str | Path | None = None, force: bool = False) -> None:
    """Raise :class:`CheckpointError` when writing a checkpoint to ``out`` would destroy what we did not create.

    Always refused: ``out`` is ``src`` or contains it (the source would be deleted while being read; write
    elsewhere and move it). Refused unless ``force``: ``out`` is a file, a non-empty folder without a config.json,
    or the current folder or one of its parents. An empty folder or an existing checkpoint folder is replaced.
    """
    dst = Path(os.path.abspath(out))
    real = Path(os.path.realpath(dst))
    if src is not None:
        source = Path(os.path.realpath(src))
        if real == source and not force:
            raise CheckpointError(
                f"OUT {out} is the source checkpoint; write to a new folder (or pass --force to replace it)"
            )
        if real != source and (real == source.parent or real in source.parents):
            raise CheckpointError(f"OUT {out} contains the source checkpoint {src}; write to a new folder")
    if force:
        return
    cwd = Path(os.path.realpath(os.getcwd()))
    if real == cwd or real in cwd.parents:
        raise CheckpointError(
            f"OUT {out} is the current folder or one of its parents; name a new folder (or pass --force)"
        )
    if dst.is_symlink() or (dst.exists() and not dst.is_dir()):
        raise CheckpointError(f"OUT {out} is a file, not a folder; name a new folder (or pass --force to replace it)")
    if dst.is_dir() and any(dst.iterdir()) and not is_checkpoint_dir(dst):
        raise CheckpointError(
            f"OUT {out} is a non-empty folder that is not a checkpoint (no config.json); it would be replaced: "
            "name a new or empty folder (or pass --force)"
        )
