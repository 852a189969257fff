"""`load_pretrained`: an InternVL2 checkpoint (original or native layout) -> `InternVLForConditionalGeneration`.

Original checkpoints are streamed: the model is built on the meta device and each converted tensor is assigned
as it is read, so host memory peaks near the model size (see benchmarks/load_memory.py).
"""

from __future__ import annotations

import ctypes
import functools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import InternVLConfig, InternVLForConditionalGeneration

from internvl_data.pipeline.tokenizer import IMG_CONTEXT, TokenizerLoadError
from internvl_data.pipeline.tokenizer import load_tokenizer as data_load_tokenizer
from internvl_train.checkpoint import configmap
from internvl_train.checkpoint.families import SUPPORTED
from internvl_train.checkpoint.keymap import KeyMap, QKVShape
from internvl_train.checkpoint.shards import iter_tensors
from internvl_train.errors import CheckpointError


def load_pretrained(
    path: str | Path, *, dtype: torch.dtype | str | None = None, trust_remote_code: bool = False
) -> tuple[InternVLForConditionalGeneration, Any]:
    """Load ``path`` as (model, tokenizer); ``dtype`` None keeps the stored dtype."""
    path = Path(path)
    cfg = read_config(path)
    original = configmap.is_original(cfg)
    if original:
        configmap.original_family(cfg, str(path / "config.json"))  # an unsupported LLM fails before anything loads
    elif cfg.get("model_type") != "internvl":
        raise CheckpointError(
            f"{path / 'config.json'}: not an InternVL2 checkpoint (architectures {cfg.get('architectures')!r}, "
            f"model_type {cfg.get('model_type')!r}); supported: original InternVLChatModel with an LLM among "
            f"{SUPPORTED}, or native InternVLForConditionalGeneration (model_type 'internvl')"
        )
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    image_token_id = image_token_id_of(tokenizer)
    torch_dtype = resolve_dtype(dtype)
    vocab_size = (cfg.get("llm_config") or cfg.get("text_config") or {}).get("vocab_size")
    if isinstance(vocab_size, int) and image_token_id >= vocab_size:
        raise CheckpointError(
            f"{path}: the tokenizer's {IMG_CONTEXT} has id {image_token_id}, outside the "
            f"model's vocabulary (vocab_size {vocab_size}); the tokenizer does not belong to these weights"
        )
    if original:
        native = configmap.to_native(cfg, image_token_id, where=str(path / "config.json"))
        model = build_empty(native)
        assign_tensors(model, keymap_for(native), iter_tensors(path), torch_dtype)
    else:
        model = InternVLForConditionalGeneration.from_pretrained(str(path), dtype=torch_dtype or "auto")
        model.config.image_token_id = image_token_id
    model.eval()
    return model, tokenizer


def read_config(path: Path) -> dict[str, Any]:
    """config.json as a dict, with a clear error when it is missing or invalid."""
    file = path / "config.json"
    if not file.is_file():
        raise CheckpointError(f"{file}: missing; point at a checkpoint directory (config.json + weights + tokenizer)")
    try:
        cfg = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CheckpointError(f"{file}: invalid JSON ({exc})") from exc
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{file}: expected a JSON object at the top level")
    return cfg


def load_tokenizer(path: Path, *, trust_remote_code: bool = False) -> Any:
    """The checkpoint's tokenizer, through the data pipeline's loader (which adds the 9 InternVL tokens)."""
    try:
        return data_load_tokenizer(path, trust_remote_code=trust_remote_code)
    except (TokenizerLoadError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load the tokenizer: {exc}") from exc


def image_token_id_of(tokenizer: Any) -> int:
    """The id of ``<IMG_CONTEXT>`` (config.json does not store it, docs/official-behaviour.md §5.2)."""
    return int(tokenizer.get_vocab()[IMG_CONTEXT])  # always there: `load_tokenizer` adds it when missing


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """'bfloat16' | torch.bfloat16 | None -> torch.dtype | None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise CheckpointError(f"unknown dtype {dtype!r}; use bfloat16, float16 or float32")
    return value


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc keeps it otherwise, and RSS climbs ~0.3x the model size)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def keymap_for(config: InternVLConfig) -> KeyMap:
    """The KeyMap of a native config's LLM family and attention layout."""
    text = config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return KeyMap(
        configmap.native_family(config).name,
        QKVShape(text.num_attention_heads, text.num_key_value_heads, head_dim),
    )


def build_empty(config: InternVLConfig) -> InternVLForConditionalGeneration:
    """The native model with parameters on the meta device (buffers such as rotary frequencies are real)."""
    from accelerate import init_empty_weights

    with init_empty_weights(include_buffers=False):
        return InternVLForConditionalGeneration(config)


def assign_tensors(
    model: nn.Module, keymap: KeyMap, tensors: Iterable[tuple[str, torch.Tensor]], dtype: torch.dtype | None
) -> None:
    """Convert and assign each original tensor in turn; every native parameter must be filled exactly once."""
    params = dict(model.named_parameters())
    done: set[str] = set()
    seen_dtype: torch.dtype | None = None
    for key, tensor in tensors:
        for name, value in keymap.to_native(key, tensor):
            if name not in params:
                raise CheckpointError(
                    f"tensor {key!r} -> {name!r}: the model built from config.json has no such "
                    "parameter; config.json and the weights disagree"
                )
            if name in done:
                raise CheckpointError(f"tensor {key!r}: {name!r} is given twice in the weights")
            target = params[name]
            if tuple(value.shape) != tuple(target.shape):
                raise CheckpointError(
                    f"tensor {key!r} -> {name!r}: shape {tuple(value.shape)} but config.json "
                    f"implies {tuple(target.shape)}"
                )
            if dtype is not None and value.is_floating_point() and value.dtype != dtype:
                value = value.to(dtype)
            seen_dtype = seen_dtype or value.dtype
            module_name, _, attr = name.rpartition(".")
            model.get_submodule(module_name)._parameters[attr] = nn.Parameter(value, requires_grad=target.requires_grad)
            done.add(name)
        del tensor
        release_free_memory()
    missing = sorted(set(params) - done)
    if missing:
        shown = ", ".join(keymap.original_name(m) for m in missing[:5])
        raise CheckpointError(f"{len(missing)} tensor(s) missing from the weights, e.g. {shown}")
    if seen_dtype is not None:
        model.config.dtype = seen_dtype
