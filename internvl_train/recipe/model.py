"""The model side of the recipe: load, freeze, LoRA, checkpointing, and the training forward + loss.

``build_model(spec)`` loads a checkpoint through ``load_pretrained`` and prepares it as the official ``main()``
does (docs/official-behaviour.md §6.5 steps 6-11, §7.1); ``TrainModel`` is the module the HF Trainer drives: its forward is the
official ``InternVLChatModel.forward`` (§5.1) on the native model, with the loss of §5.1 step 6 (token mean over
the micro-batch). Deliberate differences from the official code are listed in docs/decisions.md ("Trainer model").
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from internvl_train.errors import CheckpointError

IGNORE_INDEX = -100
VIT_LORA_MODULES = ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.projection_layer")
VIT_LORA_MODULES += ("mlp.fc1", "mlp.fc2")  # native names of the official attn.qkv, attn.proj, mlp.fc1, mlp.fc2
LLM_LORA_MODULES = {  # native names of the official per-architecture lists (§7.1); InternLM2 loads as llama
    "llama": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
    + ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    "qwen2": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
    + ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
    "phi3": ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"),
}


class ModelSetupError(CheckpointError):
    """A combination of model options that cannot be honoured (the message names the options and the fix)."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """What ``build_model`` needs from the training config (``ModelSpec.from_config(cfg)``)."""

    model_name_or_path: str
    dtype: str = "float32"
    freeze_llm: bool = False
    freeze_mlp: bool = False
    freeze_backbone: bool = True
    unfreeze_vit_layers: int = 0
    unfreeze_lm_head: bool = False
    use_llm_lora: int = 0
    use_backbone_lora: int = 0
    lora_alpha: int | None = None
    lora_dropout: float = 0.05
    lora_target: str = "official"
    drop_path_rate: float = 0.0
    grad_checkpoint: bool = True
    trust_remote_code: bool = False
    attn_implementation: str | None = None  # None: flash_attention_2 when usable, else sdpa

    @classmethod
    def from_config(cls, cfg: Any, *, dtype: str | None = None) -> ModelSpec:
        """Read the fields of a ``TrainConfig`` (or any object with these attributes); ``dtype`` defaults to
        bfloat16 under DeepSpeed with bf16 (DeepSpeed keeps fp32 master weights), else float32 (autocast)."""
        names = [f for f in cls.__dataclass_fields__ if f not in ("dtype", "attn_implementation")]
        values = {n: getattr(cfg, n) for n in names if getattr(cfg, n, None) is not None}
        if dtype is None:
            dtype = "bfloat16" if getattr(cfg, "bf16", False) and getattr(cfg, "deepspeed", None) else "float32"
        return cls(**values, dtype=dtype)

    @property
    def lora(self) -> bool:
        return bool(self.use_llm_lora or self.use_backbone_lora)


def choose_attn_implementation() -> str:
    """flash_attention_2 when flash-attn is installed and a CUDA device of compute capability >= 8 is present."""
    usable = importlib.util.find_spec("flash_attn") is not None and torch.cuda.is_available()
    return "flash_attention_2" if usable and torch.cuda.get_device_capability()[0] >= 8 else "sdpa"


def build_model(spec: ModelSpec) -> tuple[TrainModel, Any]:
    """(TrainModel, tokenizer) for ``spec``: loaded, frozen per the official flags, LoRA-wrapped, checkpointed."""
    from internvl_train.checkpoint.loading import load_pretrained

    native, tokenizer = load_pretrained(
        spec.model_name_or_path, dtype=spec.dtype, trust_remote_code=spec.trust_remote_code
    )
    impl = spec.attn_implementation or choose_attn_implementation()
    if impl != "sdpa":
        native.set_attn_implementation(impl)
    native.config.use_cache = False
    native.config.text_config.use_cache = False
    if spec.drop_path_rate:
        add_drop_path(native, spec.drop_path_rate)
    apply_freezing(native, spec)
    inner: nn.Module = native
    if spec.lora:
        inner = wrap_lora(native, spec)
    if spec.grad_checkpoint:
        native.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        if not native.get_input_embeddings().weight.requires_grad:
            native.enable_input_require_grads()
    model = TrainModel(inner, native, image_token_id=int(native.config.image_token_id))
    model.train()
    return model, tokenizer


# -- freezing -------------------------------------------------------------------------------------------------


def parts(native: nn.Module) -> dict[str, list[nn.Module]]:
    """The official units: vision (InternViT), mlp (mlp1), llm (language model + its head)."""
    m = native.model
    return {"vision": [m.vision_tower], "mlp": [m.multi_modal_projector], "llm": [m.language_model, native.lm_head]}


def apply_freezing(native: nn.Module, spec: ModelSpec) -> None:
    """requires_grad as the official flags mean them (§6.5 step 11), before any LoRA wrapping."""
    trainable = {"vision": not spec.freeze_backbone, "mlp": not spec.freeze_mlp, "llm": not spec.freeze_llm}
    for name, modules in parts(native).items():
        for mod in modules:
            mod.requires_grad_(trainable[name])
    layers = native.model.vision_tower.encoder.layer
    if spec.unfreeze_vit_layers:
        for layer in layers[spec.unfreeze_vit_layers :]:
            layer.requires_grad_(True)
    if spec.unfreeze_lm_head:  # the official flag sets an attribute, not requires_grad (a no-op there)
        native.lm_head.requires_grad_(True)


def lora_targets(native: nn.Module, spec: ModelSpec) -> tuple[list[str], list[str]]:
    """(LLM module names, ViT module names) that get LoRA adapters, as full module names of the native model."""
    llm: list[str] = []
    if spec.use_llm_lora:
        family = native.config.text_config.model_type
        if spec.lora_target == "all-linear":
            wanted = None
        elif family in LLM_LORA_MODULES:
            wanted = LLM_LORA_MODULES[family]
        else:
            raise ModelSetupError(f"no official LoRA target list for LLM type {family!r}; set lora_target: all-linear")
        for name, mod in native.model.language_model.named_modules():
            if isinstance(mod, nn.Linear) and (wanted is None or name.endswith(wanted)):
                llm.append(f"model.language_model.{name}")
    vit = []
    if spec.use_backbone_lora:
        for name, mod in native.model.vision_tower.encoder.named_modules():
            if isinstance(mod, nn.Linear) and name.endswith(VIT_LORA_MODULES):
                vit.append(f"model.vision_tower.encoder.{name}")
    return llm, vit


def wrap_lora(native: nn.Module, spec: ModelSpec) -> nn.Module:
    """One peft model over the native model: LoRA on the LLM and/or the ViT (r = the official rank flags,
    alpha = ``lora_alpha`` or 2 x r), and every other part that trains saved whole (peft ``modules_to_save``)."""
    from peft import LoraConfig, get_peft_model

    if spec.unfreeze_vit_layers and spec.use_backbone_lora:
        raise ModelSetupError(
            "unfreeze_vit_layers with use_backbone_lora: a ViT layer cannot both carry LoRA and train whole; "
            "set one of them to 0"
        )
    llm, vit = lora_targets(native, spec)
    if not llm and not vit:
        raise ModelSetupError("LoRA is on but no module matched its targets; check lora_target")
    save: list[str] = []
    if spec.use_llm_lora == 0 and not spec.freeze_llm:
        save += ["model.language_model", "lm_head"]
    elif spec.unfreeze_lm_head:
        save.append("lm_head")
    if not spec.freeze_mlp:
        save.append("model.multi_modal_projector")
    if spec.use_backbone_lora == 0:
        if not spec.freeze_backbone:
            save.append("model.vision_tower")
        elif spec.unfreeze_vit_layers:
            n = len(native.model.vision_tower.encoder.layer)
            save += [f"model.vision_tower.encoder.layer.{i}" for i in range(n)[spec.unfreeze_vit_layers :]]
    main_r = spec.use_llm_lora or spec.use_backbone_lora

    def alpha(r: int) -> int:
        return spec.lora_alpha if spec.lora_alpha is not None else 2 * r

    rank_pattern, alpha_pattern = {}, {}
    if spec.use_llm_lora and spec.use_backbone_lora:
        pattern = r"model\.vision_tower\..*"
        rank_pattern[pattern] = spec.use_backbone_lora
        alpha_pattern[pattern] = alpha(spec.use_backbone_lora)
    config = LoraConfig(
        r=main_r,
        lora_alpha=alpha(main_r),
        lora_dropout=spec.lora_dropout,
        target_modules=llm + vit,
        modules_to_save=save or None,
        rank_pattern=rank_pattern,
        alpha_pattern=alpha_pattern,
    )
    return get_peft_model(native, config)


# -- stochastic depth -----------------------------------------------------------------------------------------


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Per-sample stochastic depth (timm ``drop_path``): zero a sample's branch with probability p, scale 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def add_drop_path(native: nn.Module, rate: float) -> None:
    """InternViT's stochastic depth (rates ``linspace(0, rate, L)``, §5.8), which the native layer lacks; it acts
    only while a layer is in train mode, and frozen layers are kept in eval mode (see ``TrainModel.train``)."""
    layers = native.model.vision_tower.encoder.layer
    rates = torch.linspace(0, rate, len(layers)).tolist()
    for layer, p in zip(layers, rates):
        layer.drop_path_rate = float(p)
        layer.forward = _layer_forward_with_drop_path.__get__(layer)


def _layer_forward_with_drop_path(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    attention_output, _ = self.attention(self.layernorm_before(hidden_states))
    hidden_states = hidden_states + drop_path(self.lambda_1 * attention_output, self.drop_path_rate, self.training)
    out = self.dropout(self.mlp(self.layernorm_after(hidden_states)))
    return hidden_states + drop_path(self.lambda_2 * out, self.drop_path_rate, self.training)


# -- the training module --------------------------------------------------------------------------------------


class ImageTokenMismatch(RuntimeError):
    """The micro-batch's <IMG_CONTEXT> count does not match its real tiles (the data gate should prevent it)."""


class TrainModel(nn.Module):
    """What the Trainer drives. ``inner`` is the native model or its peft wrapper; ``native`` the native model.

    ``forward(input_ids, labels, attention_mask, position_ids, pixel_values, image_flags)`` -> ``{"loss",
    "logits", "num_tokens", "num_supervised"}``: every tile (the dummy tile of a text-only sample too) goes
    through the ViT and the projector; the features of tiles with ``image_flags == 1`` replace the
    ``<IMG_CONTEXT>`` embeddings in row-major order; the others enter with weight 0, so every parameter gets a
    gradient on every rank. Loss: next-token cross entropy, mean over the micro-batch's supervised tokens.
    """

    def __init__(self, inner: nn.Module, native: nn.Module, image_token_id: int):
        super().__init__()
        self.inner = inner
        self.image_token_id = image_token_id
        self._native = [native]  # a list: not registered twice as a submodule
        self._frozen_flags: tuple[bool, ...] = ()
        self._frozen: list[nn.Module] = []

    @property
    def native(self) -> nn.Module:
        return self._native[0]

    @property
    def config(self) -> Any:
        return self.native.config

    @property
    def is_lora(self) -> bool:
        return self.inner is not self.native

    def train(self, mode: bool = True) -> TrainModel:
        """Train mode everywhere except in fully frozen subtrees (no dropout or stochastic depth there)."""
        super().train(mode)
        if mode:
            flags = tuple(p.requires_grad for p in self.parameters())
            if flags != self._frozen_flags:  # the Trainer calls train() every step: find the subtrees once
                self._frozen_flags, self._frozen = flags, frozen_subtrees(self.native)
            for mod in self._frozen:
                mod.eval()
        return self

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_flags: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        native = self.native
        embeds = native.get_input_embeddings()(input_ids)
        if pixel_values is not None and len(pixel_values):
            embeds = self.merge_image_features(input_ids, embeds, pixel_values, image_flags)
        elif bool((input_ids == self.image_token_id).any()):
            raise ImageTokenMismatch("the batch has <IMG_CONTEXT> tokens but no pixel_values")
        out = native.model.language_model(
            inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        )
        logits = native.lm_head(out.last_hidden_state)
        result = {"logits": logits}
        if labels is not None:
            loss, n = causal_lm_loss(logits, labels)
            result.update(loss=loss, num_supervised=n)
        result["num_tokens"] = attention_mask.sum() if attention_mask is not None else torch.tensor(input_ids.numel())
        return result

    def merge_image_features(
        self,
        input_ids: torch.Tensor,
        embeds: torch.Tensor,
        pixel_values: torch.Tensor,
        image_flags: torch.Tensor | None,
    ) -> torch.Tensor:
        native = self.native
        cfg = native.config
        feats = native.model.get_image_features(
            pixel_values=pixel_values.to(embeds.dtype),
            vision_feature_layer=cfg.vision_feature_layer,
            vision_feature_select_strategy=cfg.vision_feature_select_strategy,
        ).pooler_output
        flags = torch.ones(len(feats), dtype=torch.long, device=feats.device) if image_flags is None else image_flags
        flags = flags.reshape(-1)
        real = feats[flags == 1].to(embeds.dtype)
        selected = input_ids == self.image_token_id
        n_tokens, n_feats = int(selected.sum()), real.shape[0] * real.shape[1]
        if n_tokens != n_feats:
            raise ImageTokenMismatch(
                f"{n_tokens} <IMG_CONTEXT> tokens but {real.shape[0]} real tiles x {real.shape[1]} tokens = {n_feats} "
                "features in this micro-batch; validate the data (ivl-data validate --model) before training"
            )
        embeds = embeds.masked_scatter(selected.unsqueeze(-1), real.reshape(-1, embeds.shape[-1]))
        return embeds + 0.0 * feats.sum().to(embeds.dtype)  # every feature (dummy tiles too) enters the graph


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean next-token cross entropy over supervised positions in float32, number of supervised positions).

    A micro-batch with no supervised token gives loss 0 with a zero gradient (the official mean would be NaN).
    """
    shift_logits = logits[:, :-1].float().reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1).to(shift_logits.device)
    total = F.cross_entropy(shift_logits, shift_labels, ignore_index=IGNORE_INDEX, reduction="sum")
    n = (shift_labels != IGNORE_INDEX).sum()
    return total / n.clamp(min=1), n


def frozen_subtrees(root: nn.Module) -> list[nn.Module]:
    """The largest subtrees whose parameters are all frozen (and that have some): they stay in eval mode."""
    found: list[nn.Module] = []

    def visit(mod: nn.Module) -> bool:  # True: everything below is frozen (or has no parameters)
        states = [visit(child) for child in mod.children()]
        own = [p.requires_grad for p in mod.parameters(recurse=False)]
        frozen = all(states) and not any(own)
        if not frozen:
            found.extend(c for c, ok in zip(mod.children(), states) if ok and any(True for _ in c.parameters()))
        return frozen

    if visit(root) and any(True for _ in root.parameters()):
        found.append(root)
    return found


def trainable_parameter_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def native_state_name(name: str) -> str:
    """A parameter name of ``TrainModel`` -> the native model's name (drops ``inner.``, peft's prefixes)."""
    name = re.sub(r"^inner\.", "", name)
    name = re.sub(r"^base_model\.model\.", "", name)
    return name.replace(".base_layer.", ".")


def model_dir_of(spec: ModelSpec) -> Path:
    return Path(spec.model_name_or_path)
