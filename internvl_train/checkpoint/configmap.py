"""config.json: the original `InternVLChatConfig` schema (docs/official-behaviour.md §5.7, §5.8) <-> `transformers.InternVLConfig`.

The image settings the data pipeline needs (``IMAGE_SETTINGS``: template, force_image_size, dynamic_image_size,
use_thumbnail, min/max_dynamic_patch) are stored as top-level fields of the native config.json, under their
original names, where `internvl_data.pipeline.modelinfo.ModelInfo.from_dir` reads them. Everything else the native config
has no slot for (LoRA ranks, auto_map, the LLM family, a record of the original layout) lives under one namespaced
attribute, ``internvl_chat`` (a dict). Both are written back when saving in the original layout.
"""

from __future__ import annotations

from typing import Any

from transformers import InternVLConfig

from internvl_data.pipeline.tiling import DEFAULT_MAX_DYNAMIC_PATCH
from internvl_train.checkpoint.families import (
    Family,
    family_of_architecture,
    family_of_native,
    llm_to_native,
    llm_to_original,
)
from internvl_train.errors import CheckpointError

NAMESPACE = "internvl_chat"

_VISION_FIELDS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "layer_norm_eps",
    "image_size",
    "patch_size",
    "num_channels",
    "norm_type",
    "initializer_range",
    "attention_dropout",
)
_VISION_RENAMES = {
    "qk_normalization": "use_qk_norm",
    "qkv_bias": "attention_bias",
    "initializer_factor": "layer_scale_init_value",
    "dropout": "hidden_dropout_prob",
}
# Written into the original config when a native checkpoint carries no settings of its own: the values of the
# released InternVL2 checkpoints, except max_dynamic_patch, which is the package's one default (the value that
# ModelInfo reads from the same native checkpoint, so both layouts tile alike).
CHECKPOINT_DEFAULTS: dict[str, Any] = {
    "dynamic_image_size": True,
    "use_thumbnail": True,
    "min_dynamic_patch": 1,
    "max_dynamic_patch": DEFAULT_MAX_DYNAMIC_PATCH,
    "pad2square": False,
    "use_backbone_lora": 0,
    "use_llm_lora": 0,
}
DEFAULT_TEMPLATE = {"qwen2": "Hermes-2", "internlm2": "internlm2-chat", "phi3": "phi3-chat"}
AUTO_MAP = {
    "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
    "AutoModel": "modeling_internvl_chat.InternVLChatModel",
    "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
}
_LAYOUT = "original_layout"
IMAGE_SETTINGS = (
    "template",
    "force_image_size",
    "dynamic_image_size",
    "use_thumbnail",
    "min_dynamic_patch",
    "max_dynamic_patch",
)
_TOP_CONSUMED = (
    "vision_config",
    "llm_config",
    "downsample_ratio",
    "select_layer",
    "hidden_size",
    "tie_word_embeddings",
    "ps_version",
    "architectures",
    "model_type",
)


def is_original(cfg: dict[str, Any]) -> bool:
    """True for the original schema (llm_config + vision_config), False for a native ``internvl`` config."""
    return "llm_config" in cfg and "vision_config" in cfg


def original_family(cfg: dict[str, Any], where: str) -> Family:
    """The LLM family of an original config.json, or a CheckpointError naming the supported architectures."""
    arch = (cfg.get("llm_config") or {}).get("architectures") or [None]
    return family_of_architecture(arch[0], f"{where}: llm_config.architectures[0]")


def to_native(cfg: dict[str, Any], image_token_id: int, where: str) -> InternVLConfig:
    """Original config dict -> native config (with the ``internvl_chat`` namespace)."""
    fam = original_family(cfg, where)
    if cfg.get("ps_version", "v1") != "v2":
        raise CheckpointError(
            f"{where}: ps_version {cfg.get('ps_version', 'v1')!r} is not supported: the native model "
            "implements pixel shuffle 'v2' only (every InternVL2 checkpoint uses 'v2'); set it to 'v2'"
        )
    vis = dict(cfg["vision_config"])
    vision: dict[str, Any] = {
        "use_mean_pooling": True,
        "use_absolute_position_embeddings": True,
        "use_mask_token": False,
    }
    vision.update({k: v for k, v in vis.items() if k in _VISION_FIELDS})
    vision.update({nat: vis[orig] for orig, nat in _VISION_RENAMES.items() if orig in vis})
    space = {k: v for k, v in cfg.items() if k not in _TOP_CONSUMED and k not in IMAGE_SETTINGS}
    space["llm_family"] = fam.name
    settings = {k: cfg[k] for k in IMAGE_SETTINGS if k in cfg}
    ratio = float(cfg.get("downsample_ratio", 0.5))
    tile = int(cfg.get("force_image_size") or vis.get("image_size", 448))
    native = InternVLConfig(
        vision_config=vision,
        text_config=llm_to_native(fam, dict(cfg["llm_config"])),
        image_token_id=image_token_id,
        image_seq_length=int((tile // int(vis.get("patch_size", 14))) ** 2 * ratio**2),
        downsample_ratio=ratio,
        vision_feature_layer=int(cfg.get("select_layer", -1)),
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
        **settings,
        # our namespace dict becomes an extra config attribute (transformers types **kwargs by its known fields)
        **{NAMESPACE: space},  # type: ignore[arg-type]
    )
    generated = _generate(native)
    space[_LAYOUT] = {
        "top": _fidelity(cfg, generated),
        "llm_config": _fidelity(cfg["llm_config"], generated["llm_config"]),
        "vision_config": _fidelity(vis, generated["vision_config"]),
    }
    return native


def native_family(native: InternVLConfig) -> Family:
    """The LLM family of a native config (the namespace tells InternLM2 from Llama)."""
    space = getattr(native, NAMESPACE, None) or {}
    return family_of_native(native.text_config.model_type, space.get("llm_family"))


def to_original(native: InternVLConfig) -> dict[str, Any]:
    """Native config -> original config.json dict (template and image settings included).

    For a checkpoint that was loaded from the original layout, keys, key order and values that the native config
    normalises (e.g. Qwen2 ``sliding_window``) are restored from the record taken at load time, unless changed since.
    """
    generated = _generate(native)
    layout = (getattr(native, NAMESPACE, None) or {}).get(_LAYOUT)
    if not layout:
        return generated
    out = _restore(generated, layout["top"])
    for sub in ("llm_config", "vision_config"):
        out[sub] = _restore(generated[sub], layout[sub])
    return out


def _generate(native: InternVLConfig) -> dict[str, Any]:
    fam = native_family(native)
    space = {k: v for k, v in (getattr(native, NAMESPACE, None) or {}).items() if k not in ("llm_family", _LAYOUT)}
    llm = llm_to_original(fam, native.text_config.to_dict())
    vd = native.vision_config.to_dict()
    vision: dict[str, Any] = {k: _scalar(vd[k]) for k in _VISION_FIELDS if k in vd}
    vision.update({orig: vd[nat] for orig, nat in _VISION_RENAMES.items() if nat in vd})
    out: dict[str, Any] = {"architectures": ["InternVLChatModel"], "model_type": "internvl_chat", "auto_map": AUTO_MAP}
    out.update(CHECKPOINT_DEFAULTS)
    out.update(template=DEFAULT_TEMPLATE.get(fam.name), force_image_size=vision["image_size"])
    out.update({k: getattr(native, k) for k in IMAGE_SETTINGS if hasattr(native, k)})
    out.update(space)
    out.update(
        vision_config=vision,
        llm_config=llm,
        downsample_ratio=native.downsample_ratio,
        select_layer=native.vision_feature_layer,
        hidden_size=llm["hidden_size"],
        tie_word_embeddings=False,
        ps_version="v2",
    )
    return out


def _fidelity(original: dict[str, Any], generated: dict[str, Any]) -> dict[str, Any]:
    """What `_restore` needs: the original key order, and (original, generated) for every value that differs."""
    return {
        "keys": list(original),
        "values": {
            k: [v, generated.get(k)]
            for k, v in original.items()
            if k not in ("llm_config", "vision_config") and generated.get(k) != v
        },
    }


def _restore(generated: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in record["keys"]:
        if key in record["values"]:
            original, then = record["values"][key]
            out[key] = original if generated.get(key) == then else generated.get(key)
        else:  # equal at load time, including keys absent from `generated` whose original value was null
            out[key] = generated.get(key)
    return out


def _scalar(value: Any) -> Any:
    """(448, 448) -> 448: the original schema stores square sizes as one int."""
    if isinstance(value, (list, tuple)) and len(set(value)) == 1:
        return value[0]
    return value
