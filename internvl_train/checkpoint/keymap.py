"""Tensor names and fused layouts: original InternVL2 state dict <-> `InternVLForConditionalGeneration`.

A rule maps one original tensor to one or more native tensors (docs/official-behaviour.md §5.6):
``same`` renames, ``cat`` splits [A | B | C] along dim 0 (InternViT ``attn.qkv``), ``grouped`` splits the InternLM2
``wqkv`` whose rows are grouped per KV head as (kv, groups + 2, head_dim). Phi-3 keeps its fused ``qkv_proj`` and
``gate_up_proj`` natively, so for Phi-3, Qwen2 and Llama the LLM mapping is a prefix change only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch

from internvl_train.errors import CheckpointError

_V, _NV = "vision_model.", "model.vision_tower."
_L = "language_model.model."
_NL = "model.language_model."

# (original template, native templates, kind); {i} = layer index, {p} = weight | bias.
_VISION_RULES: list[tuple[str, tuple[str, ...], str]] = [
    (_V + "embeddings.class_embedding", (_NV + "embeddings.cls_token",), "same"),
    (_V + "embeddings.position_embedding", (_NV + "embeddings.position_embeddings",), "same"),
    (_V + "embeddings.patch_embedding.{p}", (_NV + "embeddings.patch_embeddings.projection.{p}",), "same"),
    (
        _V + "encoder.layers.{i}.attn.qkv.{p}",
        tuple(_NV + f"encoder.layer.{{i}}.attention.{x}_proj.{{p}}" for x in "qkv"),
        "cat",
    ),
    (_V + "encoder.layers.{i}.attn.proj.{p}", (_NV + "encoder.layer.{i}.attention.projection_layer.{p}",), "same"),
    (_V + "encoder.layers.{i}.attn.q_norm.{p}", (_NV + "encoder.layer.{i}.attention.q_norm.{p}",), "same"),
    (_V + "encoder.layers.{i}.attn.k_norm.{p}", (_NV + "encoder.layer.{i}.attention.k_norm.{p}",), "same"),
    (_V + "encoder.layers.{i}.mlp.fc1.{p}", (_NV + "encoder.layer.{i}.mlp.fc1.{p}",), "same"),
    (_V + "encoder.layers.{i}.mlp.fc2.{p}", (_NV + "encoder.layer.{i}.mlp.fc2.{p}",), "same"),
    (_V + "encoder.layers.{i}.norm1.{p}", (_NV + "encoder.layer.{i}.layernorm_before.{p}",), "same"),
    (_V + "encoder.layers.{i}.norm2.{p}", (_NV + "encoder.layer.{i}.layernorm_after.{p}",), "same"),
    (_V + "encoder.layers.{i}.ls1", (_NV + "encoder.layer.{i}.lambda_1",), "same"),
    (_V + "encoder.layers.{i}.ls2", (_NV + "encoder.layer.{i}.lambda_2",), "same"),
    ("mlp1.0.{p}", ("model.multi_modal_projector.layer_norm.{p}",), "same"),
    ("mlp1.1.{p}", ("model.multi_modal_projector.linear_1.{p}",), "same"),
    ("mlp1.3.{p}", ("model.multi_modal_projector.linear_2.{p}",), "same"),
]

_INTERNLM2_RULES: list[tuple[str, tuple[str, ...], str]] = [
    (_L + "tok_embeddings.weight", (_NL + "embed_tokens.weight",), "same"),
    (
        _L + "layers.{i}.attention.wqkv.{p}",
        tuple(_NL + f"layers.{{i}}.self_attn.{x}_proj.{{p}}" for x in "qkv"),
        "grouped",
    ),
    (_L + "layers.{i}.attention.wo.{p}", (_NL + "layers.{i}.self_attn.o_proj.{p}",), "same"),
    (_L + "layers.{i}.feed_forward.w1.{p}", (_NL + "layers.{i}.mlp.gate_proj.{p}",), "same"),
    (_L + "layers.{i}.feed_forward.w3.{p}", (_NL + "layers.{i}.mlp.up_proj.{p}",), "same"),
    (_L + "layers.{i}.feed_forward.w2.{p}", (_NL + "layers.{i}.mlp.down_proj.{p}",), "same"),
    (_L + "layers.{i}.attention_norm.{p}", (_NL + "layers.{i}.input_layernorm.{p}",), "same"),
    (_L + "layers.{i}.ffn_norm.{p}", (_NL + "layers.{i}.post_attention_layernorm.{p}",), "same"),
    (_L + "norm.{p}", (_NL + "norm.{p}",), "same"),
    ("language_model.output.weight", ("lm_head.weight",), "same"),
]

# Phi-3, Qwen2 and Llama keep HF names under the prefix: {rest} is any dotted tail.
_HF_LLM_RULES: list[tuple[str, tuple[str, ...], str]] = [
    ("language_model.lm_head.weight", ("lm_head.weight",), "same"),
    (_L + "{rest}", (_NL + "{rest}",), "same"),
]

_IGNORED = re.compile(r".*rotary_emb\.inv_freq$")
_LORA = re.compile(r".*(lora_[AB]|base_layer|base_model\.model)\b.*")


@dataclass(frozen=True)
class QKVShape:
    """Head layout of an attention block, needed to split or fuse the InternLM2 ``wqkv``."""

    num_heads: int
    num_kv_heads: int
    head_dim: int


@dataclass(frozen=True)
class _Rule:
    original: re.Pattern[str]
    original_t: str
    native: tuple[re.Pattern[str], ...]
    native_t: tuple[str, ...]
    kind: str


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.escape(template)
    pattern = pattern.replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(pattern.replace(r"\{rest\}", r"(?P<rest>.+)") + "$")


def _rules(family: str) -> list[_Rule]:
    llm = _INTERNLM2_RULES if family == "internlm2" else _HF_LLM_RULES
    return [_Rule(_compile(o), o, tuple(_compile(n) for n in ns), ns, kind) for o, ns, kind in _VISION_RULES + llm]


def _fill(template: str, groups: dict[str, str]) -> str:
    return template.format(**groups)


def split_grouped_qkv(fused: torch.Tensor, shape: QKVShape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InternLM2 ``wqkv`` (weight or bias) -> q, k, v; query head ``kv * groups + g`` keeps its place."""
    groups = shape.num_heads // shape.num_kv_heads
    rest = fused.shape[1:]
    view = fused.reshape(shape.num_kv_heads, groups + 2, shape.head_dim, *rest)
    own = torch.contiguous_format  # one copy each, in memory of its own; the reshape is then a view
    q = view[:, :groups].clone(memory_format=own).reshape(shape.num_heads * shape.head_dim, *rest)
    k = view[:, groups].clone(memory_format=own).reshape(shape.num_kv_heads * shape.head_dim, *rest)
    v = view[:, groups + 1].clone(memory_format=own).reshape(shape.num_kv_heads * shape.head_dim, *rest)
    return q, k, v


def fuse_grouped_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shape: QKVShape) -> torch.Tensor:
    """Inverse of `split_grouped_qkv`."""
    groups = shape.num_heads // shape.num_kv_heads
    rest = q.shape[1:]
    qv = q.reshape(shape.num_kv_heads, groups, shape.head_dim, *rest)
    kv = k.reshape(shape.num_kv_heads, 1, shape.head_dim, *rest)
    vv = v.reshape(shape.num_kv_heads, 1, shape.head_dim, *rest)
    return torch.cat([qv, kv, vv], dim=1).reshape(-1, *rest).contiguous()


class KeyMap:
    """Both directions of the name/layout mapping for one LLM family (``internlm2``, ``phi3``, ``qwen2``, ``llama``)."""

    def __init__(self, family: str, llm_qkv: QKVShape | None = None) -> None:
        self.family = family
        self.llm_qkv = llm_qkv
        self._rules = _rules(family)

    def to_native(self, key: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        """One original tensor -> its native tensor(s); [] for buffers that are recomputed (rotary inv_freq)."""
        if _IGNORED.match(key):
            return []
        if _LORA.match(key):
            raise CheckpointError(
                f"tensor {key!r} belongs to a LoRA-wrapped checkpoint; merge the adapters first "
                "(official internvl_chat/tools/merge_lora.py) and convert the merged checkpoint"
            )
        for rule in self._rules:
            m = rule.original.match(key)
            if not m:
                continue
            names = [_fill(t, m.groupdict()) for t in rule.native_t]
            if rule.kind == "same":
                return [(names[0], tensor)]
            if rule.kind == "cat":
                return list(zip(names, (t.clone() for t in tensor.chunk(len(names), dim=0)), strict=True))
            return list(zip(names, split_grouped_qkv(tensor, self._qkv()), strict=True))
        raise CheckpointError(f"unexpected tensor {key!r}: not part of an InternVL2 ({self.family}) checkpoint")

    def to_original(self, native: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, torch.Tensor]]:
        """Native (name, tensor) pairs -> original pairs, re-fusing split tensors; order follows the input."""
        pending: dict[str, dict[int, torch.Tensor]] = {}
        for key, tensor in native:
            rule, idx, groups = self._match_native(key)
            name = _fill(rule.original_t, groups)
            if rule.kind == "same":
                yield name, tensor
                continue
            parts = pending.setdefault(name, {})
            parts[idx] = tensor
            if len(parts) == len(rule.native_t):
                del pending[name]
                ordered = [parts[j] for j in range(len(parts))]
                if rule.kind == "cat":
                    yield name, torch.cat(ordered, dim=0)
                else:
                    q, k, v = ordered
                    yield name, fuse_grouped_qkv(q, k, v, self._qkv())
        if pending:
            raise CheckpointError(f"incomplete fused tensors (a part is missing): {sorted(pending)}")

    def original_name(self, native_key: str) -> str:
        """The original tensor a native tensor ends up in."""
        rule, _, groups = self._match_native(native_key)
        return _fill(rule.original_t, groups)

    def _match_native(self, key: str) -> tuple[_Rule, int, dict[str, str]]:
        if _LORA.match(key):
            raise CheckpointError(
                f"native tensor {key!r} belongs to a PEFT/LoRA wrapper; merge the adapters first "
                "(model = model.merge_and_unload()) and save the merged model"
            )
        for rule in self._rules:
            for idx, pattern in enumerate(rule.native):
                m = pattern.match(key)
                if m:
                    return rule, idx, m.groupdict()
        raise CheckpointError(f"native tensor {key!r} has no place in the original InternVL2 layout")

    def _qkv(self) -> QKVShape:
        if self.llm_qkv is None:
            raise CheckpointError("internal: the InternLM2 head layout is needed to convert wqkv")
        return self.llm_qkv
