"""The parameter shapes of a model, from config.json alone (no weights are read).

The native model (`InternVLForConditionalGeneration`, the one `ivl-train run` trains) is built on the meta device
from the config, so every count below is the count of the real module tree: parameter order (which decides how
ZeRO-1/2 cut the flat buffer), per-tensor sizes (ZeRO-3 partitions tensor by tensor), the Linear layers LoRA wraps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

PARTS = ("vision", "projector", "llm")


@dataclass(frozen=True)
class Param:
    name: str
    numel: int
    part: str  # vision | projector | llm


@dataclass(frozen=True)
class Linear:
    name: str  # module name, e.g. model.language_model.layers.0.self_attn.q_proj
    in_features: int
    out_features: int
    part: str


@dataclass(frozen=True)
class Dims:
    """What the activation and FLOP models need."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    fused_mlp: bool  # Phi-3 gate_up_proj
    vit_hidden: int
    vit_layers: int
    vit_heads: int
    vit_intermediate: int
    vit_rms: bool  # InternViT-6B: RMSNorm + qk norm
    patches: int  # patches per tile (without the CLS token)
    tokens_per_tile: int  # IMG_CONTEXT tokens per tile after pixel shuffle
    image_size: int


@dataclass(frozen=True)
class ModelShapes:
    source: str
    family: str
    params: tuple[Param, ...]
    linears: tuple[Linear, ...]
    buffer_bytes: int
    dims: Dims
    settings: dict[str, Any] = field(default_factory=dict)  # max_dynamic_patch, use_thumbnail, template

    def numel(self, part: str | None = None) -> int:
        return sum(p.numel for p in self.params if part is None or p.part == part)


def _part(name: str) -> str:
    if ".vision_tower." in f".{name}":
        return "vision"
    if "multi_modal_projector" in name:
        return "projector"
    return "llm"


def read_config(path: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint directory (or the file itself)."""
    p = Path(path)
    p = p / "config.json" if p.is_dir() else p
    return json.loads(p.read_text())


def shapes_from_config(cfg: dict[str, Any], source: str = "config.json") -> ModelShapes:
    """ModelShapes of an original-layout or native config.json dict (CheckpointError on an unusable one)."""
    return _cached(json.dumps(cfg, sort_keys=True), source)


@lru_cache(maxsize=16)
def _cached(cfg_json: str, source: str) -> ModelShapes:
    import torch
    from transformers import InternVLConfig

    from internvl_train.checkpoint import configmap
    from internvl_train.checkpoint.loading import build_empty

    cfg = json.loads(cfg_json)
    if configmap.is_original(cfg):
        native = configmap.to_native(cfg, image_token_id=0, where=source)
    else:
        native = InternVLConfig.from_dict(cfg)
    family = configmap.native_family(native).name
    model = build_empty(native)
    params = tuple(Param(n, p.numel(), _part(n)) for n, p in model.named_parameters())
    linears = tuple(
        Linear(n, m.in_features, m.out_features, _part(n))
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear)
    )
    buffers = sum(b.numel() * b.element_size() for _, b in model.named_buffers())
    t, v = native.text_config, native.vision_config
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    image = v.image_size[0] if isinstance(v.image_size, (list, tuple)) else v.image_size
    patch = v.patch_size[0] if isinstance(v.patch_size, (list, tuple)) else v.patch_size
    dims = Dims(
        hidden=t.hidden_size,
        layers=t.num_hidden_layers,
        heads=t.num_attention_heads,
        kv_heads=t.num_key_value_heads,
        head_dim=head_dim,
        intermediate=t.intermediate_size,
        vocab=t.vocab_size,
        fused_mlp=family == "phi3",
        vit_hidden=v.hidden_size,
        vit_layers=v.num_hidden_layers,
        vit_heads=v.num_attention_heads,
        vit_intermediate=v.intermediate_size,
        vit_rms=bool(getattr(v, "use_qk_norm", False)),
        patches=(image // patch) ** 2,
        tokens_per_tile=int(native.image_seq_length),
        image_size=int(image),
    )
    settings = {k: getattr(native, k) for k in ("max_dynamic_patch", "use_thumbnail", "template") if hasattr(native, k)}
    return ModelShapes(source, family, params, linears, buffers, dims, settings)


def lora_targets(shapes: ModelShapes, part: str) -> list[Linear]:
    """The Linear layers the official LoRA wraps, on the native module tree.

    LLM (`use_llm_lora`, docs/official-behaviour.md §7.1): every attention and MLP projection of the decoder layers (the official
    per-architecture lists name exactly these; InternLM2's fused wqkv is three projections in the native model).
    Vision (`use_backbone_lora`): attention qkv/proj and mlp fc1/fc2 of every encoder layer.
    """
    if part == "llm":
        return [x for x in shapes.linears if x.part == "llm" and ".layers." in x.name]
    return [x for x in shapes.linears if x.part == "vision" and ".encoder.layer." in x.name]
