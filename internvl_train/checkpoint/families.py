"""The four LLM families of InternVL2 and how their `llm_config` maps onto a transformers text config.

| size | LLM (original architecture) | native text model |
|---|---|---|
| 1B | Qwen2-0.5B (`Qwen2ForCausalLM`) | qwen2 |
| 2B, 8B, 26B | InternLM2 (`InternLM2ForCausalLM`) | llama (wqkv split per KV head) |
| 4B | Phi-3-mini (`Phi3ForCausalLM`) | phi3 (fused qkv_proj / gate_up_proj kept) |
| 40B, 76B | Yi-34B / Llama-3-70B (`LlamaForCausalLM`) | llama |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from internvl_train.errors import CheckpointError

_COMMON = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "initializer_range",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "tie_word_embeddings",
    "use_cache",
)


@dataclass(frozen=True)
class Family:
    """One LLM family: original architecture name, native model_type, the llm_config fields carried over."""

    name: str
    architecture: str
    native_type: str
    fields: tuple[str, ...]
    renames: tuple[tuple[str, str], ...] = ()  # (original field, native field)
    rope_alias: tuple[tuple[str, str], ...] = ()  # (native rope_type, name written back in the original config)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "qwen2",
            "Qwen2ForCausalLM",
            "qwen2",
            _COMMON + ("use_sliding_window", "sliding_window", "max_window_layers", "attention_dropout"),
        ),
        Family(
            "internlm2", "InternLM2ForCausalLM", "llama", _COMMON + ("bias",), renames=(("bias", "attention_bias"),)
        ),
        Family(
            "phi3",
            "Phi3ForCausalLM",
            "phi3",
            _COMMON
            + ("original_max_position_embeddings", "sliding_window", "resid_pdrop", "embd_pdrop", "attention_dropout"),
            rope_alias=(("longrope", "su"),),
        ),
        Family(
            "llama",
            "LlamaForCausalLM",
            "llama",
            _COMMON + ("attention_bias", "mlp_bias", "attention_dropout", "pretraining_tp", "head_dim"),
        ),
    )
}
BY_ARCHITECTURE = {f.architecture: f for f in FAMILIES.values()}
SUPPORTED = ", ".join(BY_ARCHITECTURE)
NATIVE_SUPPORTED = ", ".join(dict.fromkeys(f.native_type for f in FAMILIES.values()))
_ROPE_SCALING_KEYS = (
    "factor",
    "short_factor",
    "long_factor",
    "low_freq_factor",
    "high_freq_factor",
    "original_max_position_embeddings",
    "beta_fast",
    "beta_slow",
    "attention_factor",
)


def family_of_architecture(arch: str | None, where: str) -> Family:
    """The family for an original `llm_config.architectures[0]`, or a CheckpointError naming the supported ones."""
    if arch not in BY_ARCHITECTURE:
        raise CheckpointError(f"{where}: unsupported LLM architecture {arch!r}; supported: {SUPPORTED}")
    return BY_ARCHITECTURE[arch]


def family_of_native(model_type: str, stored: str | None) -> Family:
    """The family of a native text config; InternLM2 and Llama share ``llama``, the stored name decides."""
    if stored in FAMILIES and FAMILIES[stored].native_type == model_type:
        return FAMILIES[stored]
    for fam in FAMILIES.values():
        if fam.native_type == model_type and fam.name != "internlm2":
            return fam
    raise CheckpointError(f"native text model {model_type!r} is not an InternVL2 LLM; supported: {NATIVE_SUPPORTED}")


def llm_to_native(fam: Family, llm: dict[str, Any]) -> dict[str, Any]:
    """Original `llm_config` -> kwargs for the native text config (unmapped fields are dropped here)."""
    renames = dict(fam.renames)
    native: dict[str, Any] = {"model_type": fam.native_type}
    native.update({renames.get(k, k): v for k, v in llm.items() if k in fam.fields})
    rope: dict[str, Any] = dict(llm.get("rope_scaling") or {})
    name = rope.pop("type", rope.get("rope_type", "default"))
    rope["rope_type"] = {orig: nat for nat, orig in fam.rope_alias}.get(name, name)
    rope["rope_theta"] = llm.get("rope_theta", 10000.0)
    native["rope_parameters"] = rope
    native["tie_word_embeddings"] = False
    return native


def llm_to_original(fam: Family, text: dict[str, Any]) -> dict[str, Any]:
    """Native text config dict -> original `llm_config` fields (the inverse of `llm_to_native`)."""
    back = {native: orig for orig, native in fam.renames}
    out: dict[str, Any] = {"architectures": [fam.architecture], "model_type": fam.name}
    out.update({back.get(k, k): v for k, v in text.items() if back.get(k, k) in fam.fields})
    rope = dict(text.get("rope_parameters") or {})
    out["rope_theta"] = rope.get("rope_theta", 10000.0)
    rope_type = rope.get("rope_type", "default")
    out["rope_scaling"] = None
    if rope_type != "default":
        scaling = {k: rope[k] for k in _ROPE_SCALING_KEYS if k in rope and k not in fam.fields}
        out["rope_scaling"] = {"type": dict(fam.rope_alias).get(rope_type, rope_type), **scaling}
    out["tie_word_embeddings"] = False
    return out
