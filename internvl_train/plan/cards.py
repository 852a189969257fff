"""Architecture cards: the config.json of the seven released InternVL2 sizes, without the weights.

`ivl-train plan` reads the model's shapes from the checkpoint's config.json; when the checkpoint is not on disk it
uses these cards, so a plan for InternVL2-Llama3-76B runs on a laptop. Each card holds the public facts of the
released config.json that decide parameter shapes (layers, hidden size, attention and KV heads, intermediate size,
vocabulary after the nine InternVL tokens, vision tower); the remaining fields (rope settings, token ids) only
have to be values the checkpoint converter accepts and do not change any count. `tests/plan/test_cards.py` builds
every card into the native model on the meta device.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from internvl_train.checkpoint.configmap import AUTO_MAP, DEFAULT_TEMPLATE
from internvl_train.checkpoint.families import FAMILIES


@dataclass(frozen=True)
class LLMCard:
    name: str  # the released LLM
    family: str  # qwen2 | internlm2 | phi3 | llama (internvl_train.checkpoint.families)
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    max_position_embeddings: int
    rope_theta: float


@dataclass(frozen=True)
class ViTCard:
    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    big: bool  # InternViT-6B: RMSNorm, qk-norm, no qkv bias, layer scale 0.1


VIT_300M = ViTCard("InternViT-300M-448px", 1024, 24, 16, 4096, False)
VIT_6B = ViTCard("InternViT-6B-448px-V1-5", 3200, 45, 25, 12800, True)

# size -> (vision tower, LLM, template)
SIZES: dict[str, tuple[ViTCard, LLMCard, str]] = {
    "1b": (VIT_300M, LLMCard("Qwen2-0.5B-Instruct", "qwen2", 896, 24, 14, 2, 4864, 151655, 32768, 1e6), "Hermes-2"),
    "2b": (
        VIT_300M,
        LLMCard("internlm2-chat-1_8b", "internlm2", 2048, 24, 16, 8, 8192, 92553, 32768, 1e6),
        "internlm2-chat",
    ),
    "4b": (
        VIT_300M,
        LLMCard("Phi-3-mini-128k-instruct", "phi3", 3072, 32, 32, 32, 8192, 32020, 131072, 10000.0),
        "phi3-chat",
    ),
    "8b": (
        VIT_300M,
        LLMCard("internlm2_5-7b-chat", "internlm2", 4096, 32, 32, 8, 14336, 92553, 32768, 1e6),
        "internlm2-chat",
    ),
    "26b": (
        VIT_6B,
        LLMCard("internlm2-chat-20b", "internlm2", 6144, 48, 48, 8, 16384, 92553, 32768, 1e6),
        "internlm2-chat",
    ),
    "40b": (VIT_6B, LLMCard("Nous-Hermes-2-Yi-34B", "llama", 7168, 60, 56, 8, 20480, 64000, 4096, 5e6), "Hermes-2"),
    "76b": (
        VIT_6B,
        LLMCard("Hermes-2-Theta-Llama-3-70B", "llama", 8192, 80, 64, 8, 28672, 128265, 8192, 5e5),
        "internlm2-chat",
    ),
}
CHECKPOINT_NAMES = {
    "1b": "InternVL2-1B",
    "2b": "InternVL2-2B",
    "4b": "InternVL2-4B",
    "8b": "InternVL2-8B",
    "26b": "InternVL2-26B",
    "40b": "InternVL2-40B",
    "76b": "InternVL2-Llama3-76B",
}


def size_of_name(text: str) -> str | None:
    """'InternVL2-8B', './pretrained/InternVL2-Llama3-76B', 'internvl2-26b-lora' or '8b' -> the size key, or None."""
    low = text.lower().rstrip("/")
    low = low.rsplit("/", 1)[-1]
    for size in sorted(SIZES, key=len, reverse=True):
        if low == size or f"-{size}" in low or low.startswith(size + "-"):
            return size
    return None


def card_config(size: str) -> dict[str, Any]:
    """The original-layout config.json dict of one released size ('1b' ... '76b')."""
    if size not in SIZES:
        raise KeyError(f"unknown InternVL2 size {size!r}; known: {', '.join(SIZES)}")
    vit, llm, template = SIZES[size]
    vision = {
        "architectures": ["InternVisionModel"],
        "attention_dropout": 0.0,
        "drop_path_rate": 0.0,
        "dropout": 0.0,
        "hidden_act": "gelu",
        "hidden_size": vit.hidden,
        "image_size": 448,
        "initializer_factor": 0.1 if vit.big else 1.0,
        "initializer_range": 0.02,
        "intermediate_size": vit.intermediate,
        "layer_norm_eps": 1e-6,
        "model_type": "intern_vit_6b",
        "norm_type": "rms_norm" if vit.big else "layer_norm",
        "num_attention_heads": vit.heads,
        "num_channels": 3,
        "num_hidden_layers": vit.layers,
        "patch_size": 14,
        "qk_normalization": vit.big,
        "qkv_bias": not vit.big,
        "torch_dtype": "bfloat16",
        "use_flash_attn": True,
    }
    text: dict[str, Any] = {
        "architectures": [FAMILIES[llm.family].architecture],
        "model_type": llm.family,
        "hidden_act": "silu",
        "hidden_size": llm.hidden,
        "initializer_range": 0.02,
        "intermediate_size": llm.intermediate,
        "max_position_embeddings": llm.max_position_embeddings,
        "num_attention_heads": llm.heads,
        "num_hidden_layers": llm.layers,
        "num_key_value_heads": llm.kv_heads,
        "rms_norm_eps": 1e-6 if llm.family == "qwen2" else 1e-5,
        "rope_theta": llm.rope_theta,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": False,
        "vocab_size": llm.vocab,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    if llm.family == "qwen2":
        text.update(use_sliding_window=False, sliding_window=llm.max_position_embeddings, max_window_layers=llm.layers)
    elif llm.family == "internlm2":
        text.update(bias=False, pad_token_id=2, rope_scaling={"type": "dynamic", "factor": 2.0})
    elif llm.family == "phi3":
        half = llm.hidden // llm.heads // 2  # rope factors: one per rotary pair (values do not change any count)
        text.update(
            original_max_position_embeddings=4096,
            rope_scaling={"type": "su", "short_factor": [1.0] * half, "long_factor": [1.0] * half},
            sliding_window=262144,
            pad_token_id=32000,
        )
    else:
        text.update(attention_bias=False, pretraining_tp=1, rope_scaling=None)
    return copy.deepcopy(
        {
            "architectures": ["InternVLChatModel"],
            "model_type": "internvl_chat",
            "auto_map": dict(AUTO_MAP),
            "downsample_ratio": 0.5,
            "dynamic_image_size": True,
            "force_image_size": 448,
            "hidden_size": llm.hidden,
            "llm_config": text,
            "max_dynamic_patch": 12,
            "min_dynamic_patch": 1,
            "pad2square": False,
            "ps_version": "v2",
            "select_layer": -1,
            "template": template or DEFAULT_TEMPLATE.get(llm.family, "Hermes-2"),
            "tie_word_embeddings": False,
            "torch_dtype": "bfloat16",
            "use_backbone_lora": 0,
            "use_llm_lora": 0,
            "use_thumbnail": True,
            "vision_config": vision,
        }
    )
