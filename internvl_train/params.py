"""Parameter counts from config.json alone: totals per part and what a run's freeze / LoRA flags train.

Pure arithmetic over the config (original InternVL2 layout or native transformers layout), no torch, no weights:
``ivl-train check`` prints it, the planner reuses it. The counts are those of the native model ``ivl-train run``
trains (``InternVLForConditionalGeneration``), with the flags as ``internvl_train.recipe`` applies them:

- ``freeze_backbone`` / ``freeze_mlp`` / ``freeze_llm`` freeze the InternViT, the projector (``mlp1``) and the
  language model with its head; ``unfreeze_vit_layers=k`` trains ViT ``layers[k:]`` (negative k: the last |k|);
  ``unfreeze_lm_head`` trains the head (the official flag sets an attribute only: a no-op there).
- LoRA (``use_llm_lora`` / ``use_backbone_lora`` = rank) freezes the wrapped part's own weights and adds
  ``r x (in + out)`` per wrapped Linear: LLM attention and MLP projections (the official per-architecture lists;
  in the native model InternLM2's fused ``wqkv`` is three projections), ViT attention q/k/v/proj and mlp
  fc1/fc2 (the official ``attn.qkv`` is three projections natively too). ``lora_target: all-linear`` wraps
  every Linear of the LLM's decoder, which for these four families is the same set.

Tied input/output embeddings are counted once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["PARTS", "ParamCount", "PartCount", "count_for_config", "count_parameters", "llm_family"]

PARTS = ("vision", "mlp", "llm")

_ARCH_FAMILY = {
    "InternLM2ForCausalLM": "llama",  # loads as the native llama model (split q/k/v, gate/up)
    "LlamaForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen2",
    "Phi3ForCausalLM": "phi3",
}


@dataclass(frozen=True)
class PartCount:
    total: int  # the part's own parameters (no adapters)
    trainable: int  # of those, the ones that train
    lora: int = 0  # adapter parameters added to the part (all trainable)


@dataclass(frozen=True)
class ParamCount:
    parts: dict[str, PartCount]  # vision, mlp, llm (the LLM with its head)

    @property
    def total(self) -> int:
        """The model's parameters with the adapters."""
        return sum(p.total + p.lora for p in self.parts.values())

    @property
    def base(self) -> int:
        """The checkpoint's parameters (without adapters)."""
        return sum(p.total for p in self.parts.values())

    @property
    def lora(self) -> int:
        return sum(p.lora for p in self.parts.values())

    @property
    def trainable(self) -> int:
        return sum(p.trainable + p.lora for p in self.parts.values())

    def summary(self) -> str:
        """``trainable 1,234 of 5,678 (21.73%): vision 0, mlp 1,000, llm 234 (LoRA)``."""
        pct = 100.0 * self.trainable / self.total if self.total else 0.0
        each = []
        for name, p in self.parts.items():
            note = f" ({p.lora:,} LoRA)" if p.lora else ""
            each.append(f"{name} {p.trainable + p.lora:,}{note}")
        return f"trainable {self.trainable:,} of {self.total:,} ({pct:.2f}%): " + ", ".join(each)


def llm_family(config: dict[str, Any]) -> str:
    """``llama`` | ``qwen2`` | ``phi3``: the native text model family of a config.json dict (either layout)."""
    if "llm_config" in config:
        arch = ((config.get("llm_config") or {}).get("architectures") or [""])[0]
        if arch not in _ARCH_FAMILY:
            raise ValueError(f"unsupported LLM architecture {arch!r} (supported: {', '.join(_ARCH_FAMILY)})")
        return _ARCH_FAMILY[arch]
    text = config.get("text_config") or {}
    family = text.get("model_type", "")
    if family not in ("llama", "qwen2", "phi3"):
        raise ValueError(f"unsupported text model type {family!r} (supported: llama, qwen2, phi3)")
    return family


def count_parameters(
    config: dict[str, Any] | str | Path,
    *,
    freeze_llm: bool = False,
    freeze_mlp: bool = False,
    freeze_backbone: bool = False,
    unfreeze_vit_layers: int = 0,
    unfreeze_lm_head: bool = False,
    use_llm_lora: int = 0,
    use_backbone_lora: int = 0,
    lora_target: str = "official",
) -> ParamCount:
    """Per-part totals and trainable counts for a checkpoint's config.json (a dict, the file or its folder)."""
    cfg = _load(config)
    original = "llm_config" in cfg
    vision_cfg = cfg.get("vision_config") or {}
    text = (cfg.get("llm_config") if original else cfg.get("text_config")) or {}
    family = llm_family(cfg)

    # -- vision tower
    c = int(vision_cfg["hidden_size"])
    vinter = int(vision_cfg.get("intermediate_size") or 4 * c)
    image = _first(vision_cfg.get("image_size", 448))  # the position embedding's size (the weights decide)
    patch = _first(vision_cfg.get("patch_size", 14))
    if original:
        rms = vision_cfg.get("norm_type", "rms_norm") == "rms_norm"
        qk_norm = bool(vision_cfg.get("qk_normalization", False))
        qkv_bias = bool(vision_cfg.get("qkv_bias", True))
    else:
        rms = vision_cfg.get("norm_type", "layer_norm") == "rms_norm"
        qk_norm = bool(vision_cfg.get("use_qk_norm", False))
        qkv_bias = bool(vision_cfg.get("attention_bias", False))
    grid = (image // patch) ** 2
    embeddings = c + c * 3 * patch * patch + c + (grid + 1) * c
    vit_linears = [(c, c)] * 4 + [(c, vinter), (vinter, c)]  # q, k, v, proj, fc1, fc2 (in, out)
    per_vit_layer = (
        sum(i * o for i, o in vit_linears)
        + (3 * c if qkv_bias else 0)  # q/k/v biases
        + c  # proj bias
        + vinter
        + c  # fc1, fc2 biases
        + (2 * c if qk_norm else 0)
        + 2 * (c if rms else 2 * c)  # two norms
        + 2 * c  # layer scales
    )
    vit_layers = int(vision_cfg["num_hidden_layers"])
    vision_total = embeddings + vit_layers * per_vit_layer

    # -- projector (mlp1): LayerNorm(c / r^2), Linear(c / r^2 -> h), Linear(h -> h)
    h = int(text["hidden_size"])
    ratio = float(cfg.get("downsample_ratio", 0.5))
    shuffled = c * round(1 / ratio) ** 2
    mlp_total = 2 * shuffled + (shuffled * h + h) + (h * h + h)

    # -- language model
    heads = int(text["num_attention_heads"])
    kv = int(text.get("num_key_value_heads") or heads)
    hd = int(text.get("head_dim") or h // heads)
    inter = int(text["intermediate_size"])
    vocab = int(text["vocab_size"])
    layers = int(text["num_hidden_layers"])
    q, k = heads * hd, kv * hd
    if family == "phi3":
        llm_linears = [(h, q + 2 * k), (q, h), (h, 2 * inter), (inter, h)]
    else:
        llm_linears = [(h, q), (h, k), (h, k), (q, h), (h, inter), (h, inter), (inter, h)]
    bias = (q + 2 * k) if family == "qwen2" else 0
    if family == "llama" and (text.get("attention_bias") or text.get("bias")):
        bias = q + 2 * k + h
    per_llm_layer = sum(i * o for i, o in llm_linears) + bias + 2 * h
    tied = bool(text.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False)))
    head = 0 if tied else vocab * h
    llm_body = vocab * h + layers * per_llm_layer + h
    llm_total = llm_body + head

    # -- what trains
    if use_backbone_lora and unfreeze_vit_layers:
        raise ValueError("unfreeze_vit_layers with use_backbone_lora: set one of them to 0")
    if use_backbone_lora:
        vision_train = 0
        vision_lora = use_backbone_lora * vit_layers * sum(i + o for i, o in vit_linears)
    else:
        vision_lora = 0
        vision_train = vision_total if not freeze_backbone else 0
        if freeze_backbone and unfreeze_vit_layers:
            vision_train = len(range(vit_layers)[unfreeze_vit_layers:]) * per_vit_layer
    mlp_train = 0 if freeze_mlp else mlp_total
    if lora_target not in ("official", "all-linear"):
        raise ValueError(f"lora_target must be 'official' or 'all-linear', not {lora_target!r}")
    if use_llm_lora:
        llm_lora = use_llm_lora * layers * sum(i + o for i, o in llm_linears)
        llm_train = head if unfreeze_lm_head else 0
    else:
        llm_lora = 0
        llm_train = llm_total if not freeze_llm else (head if unfreeze_lm_head else 0)
    return ParamCount(
        {
            "vision": PartCount(vision_total, vision_train, vision_lora),
            "mlp": PartCount(mlp_total, mlp_train),
            "llm": PartCount(llm_total, llm_train, llm_lora),
        }
    )


def count_for_config(cfg: Any, config: dict[str, Any] | str | Path | None = None) -> ParamCount:
    """:func:`count_parameters` for a ``TrainConfig``: its flags, on ``config`` (a config.json dict or path;
    default: the checkpoint's, ``cfg.model_name_or_path``)."""
    return count_parameters(
        cfg.model_name_or_path if config is None else config,
        freeze_llm=cfg.freeze_llm,
        freeze_mlp=cfg.freeze_mlp,
        freeze_backbone=cfg.freeze_backbone,
        unfreeze_vit_layers=cfg.unfreeze_vit_layers,
        unfreeze_lm_head=cfg.unfreeze_lm_head,
        use_llm_lora=cfg.use_llm_lora,
        use_backbone_lora=cfg.use_backbone_lora,
        lora_target=cfg.lora_target,
    )


def _load(config: dict[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(config, dict):
        return config
    path = Path(config)
    path = path / "config.json" if path.is_dir() else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the checkpoint config ({exc})") from None
    if not isinstance(data, dict) or "vision_config" not in data:
        raise ValueError(f"{path}: not an InternVL checkpoint config (no vision_config)")
    return data


def _first(v: Any) -> int:
    """``448`` or ``[448, 448]`` -> 448 (native configs store (height, width))."""
    return int(v[0] if isinstance(v, (list, tuple)) else v)
