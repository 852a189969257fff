"""A plain-torch forward of an ORIGINAL InternVL2 state dict, written from docs/official-behaviour.md (§5.1-5.8), not from
the converter: it reads the original key names and fused layouts directly, so it checks the conversion end to end.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
LLMS = ("qwen2", "internlm2", "phi3", "llama")
VITS = ("300m", "6b")
COMBOS = [(llm, vit) for llm in LLMS for vit in VITS]  # every LLM family with both InternViT variants


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def vit_hidden_states(sd: dict[str, Tensor], vcfg: dict[str, Any], pixels: Tensor) -> list[Tensor]:
    """InternViT: CLS + patch conv + position embedding, then blocks x += ls1*attn(norm1 x); x += ls2*mlp(norm2 x)."""
    p = "vision_model."
    patch, c, heads = vcfg["patch_size"], vcfg["hidden_size"], vcfg["num_attention_heads"]
    eps, d = vcfg["layer_norm_eps"], vcfg["hidden_size"] // vcfg["num_attention_heads"]
    x = F.conv2d(
        pixels, sd[p + "embeddings.patch_embedding.weight"], sd[p + "embeddings.patch_embedding.bias"], stride=patch
    )
    t = x.shape[0]
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[p + "embeddings.class_embedding"].expand(t, 1, c), x], dim=1)
    x = x + sd[p + "embeddings.position_embedding"]
    n = x.shape[1]

    def norm(y: Tensor, name: str) -> Tensor:
        if vcfg["norm_type"] == "rms_norm":
            return rms_norm(y, sd[name + ".weight"], eps)
        return F.layer_norm(y, (c,), sd[name + ".weight"], sd[name + ".bias"], eps)

    states = [x]
    for i in range(vcfg["num_hidden_layers"]):
        q_ = f"{p}encoder.layers.{i}."
        qkv = F.linear(norm(x, q_ + "norm1"), sd[q_ + "attn.qkv.weight"], sd.get(q_ + "attn.qkv.bias"))
        q, k, v = qkv[..., :c], qkv[..., c : 2 * c], qkv[..., 2 * c :]
        if vcfg["qk_normalization"]:  # RMSNorm over the full width of q and k, all heads jointly
            q = rms_norm(q, sd[q_ + "attn.q_norm.weight"], eps)
            k = rms_norm(k, sd[q_ + "attn.k_norm.weight"], eps)
        q, k, v = (y.reshape(t, n, heads, d).transpose(1, 2) for y in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) * d**-0.5, dim=-1) @ v
        att = F.linear(att.transpose(1, 2).reshape(t, n, c), sd[q_ + "attn.proj.weight"], sd[q_ + "attn.proj.bias"])
        x = x + att * sd[q_ + "ls1"]
        h = F.gelu(F.linear(norm(x, q_ + "norm2"), sd[q_ + "mlp.fc1.weight"], sd[q_ + "mlp.fc1.bias"]))
        x = x + F.linear(h, sd[q_ + "mlp.fc2.weight"], sd[q_ + "mlp.fc2.bias"]) * sd[q_ + "ls2"]
        states.append(x)
    return states


def pixel_shuffle_v2(feat: Tensor) -> Tensor:
    """(T, R, R, C) -> (T, R/2 * R/2, 4C): token m*(R/2)+k = [F(2m,2k), F(2m,2k+1), F(2m+1,2k), F(2m+1,2k+1)] (§5.3)."""
    t, r, _, c = feat.shape
    half = r // 2
    out = feat.new_empty(t, half * half, 4 * c)
    for m in range(half):
        for k in range(half):
            cells = (
                feat[:, 2 * m, 2 * k],
                feat[:, 2 * m, 2 * k + 1],
                feat[:, 2 * m + 1, 2 * k],
                feat[:, 2 * m + 1, 2 * k + 1],
            )
            out[:, m * half + k] = torch.cat(cells, dim=-1)
    return out


def image_features(sd: dict[str, Tensor], cfg: dict[str, Any], pixels: Tensor) -> Tensor:
    """extract_feature + mlp1 (LayerNorm eps 1e-5, Linear, GELU, Linear) -> (T, tokens, C_llm)."""
    states = vit_hidden_states(sd, cfg["vision_config"], pixels)
    x = states[-1] if cfg["select_layer"] == -1 else states[cfg["select_layer"]]
    x = x[:, 1:]
    r = int(math.isqrt(x.shape[1]))
    x = pixel_shuffle_v2(x.reshape(x.shape[0], r, r, -1))
    x = F.layer_norm(x, (x.shape[-1],), sd["mlp1.0.weight"], sd["mlp1.0.bias"], 1e-5)
    x = F.gelu(F.linear(x, sd["mlp1.1.weight"], sd["mlp1.1.bias"]))
    return F.linear(x, sd["mlp1.3.weight"], sd["mlp1.3.bias"])


def rope_cos_sin(tcfg: dict[str, Any], seq_len: int) -> tuple[Tensor, Tensor]:
    """Rotary tables per family: default, InternLM2 dynamic NTK, Phi-3 `su` (short/long factors + attention scale)."""
    d = tcfg["hidden_size"] // tcfg["num_attention_heads"]
    base = float(tcfg.get("rope_theta", 10000.0))
    scaling = tcfg.get("rope_scaling") or {}
    exponents = torch.arange(0, d, 2, dtype=torch.int64).float() / d
    scale = 1.0
    if scaling.get("type") == "dynamic" and seq_len > tcfg["max_position_embeddings"]:
        f, mx = scaling["factor"], tcfg["max_position_embeddings"]
        base = base * ((f * seq_len / mx) - (f - 1)) ** (d / (d - 2))
    inv = 1.0 / (base**exponents)
    if scaling.get("type") == "su":
        orig = tcfg["original_max_position_embeddings"]
        ext = torch.tensor(scaling["long_factor"] if seq_len > orig else scaling["short_factor"], dtype=torch.float32)
        inv = 1.0 / (ext * base**exponents)
        ratio = tcfg["max_position_embeddings"] / orig
        scale = 1.0 if ratio <= 1 else math.sqrt(1 + math.log(ratio) / math.log(orig))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos() * scale, emb.sin() * scale


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def llm_logits(sd: dict[str, Tensor], tcfg: dict[str, Any], embeds: Tensor) -> Tensor:
    """The causal LM on input embeddings, per family, reading original key names and fused layouts."""
    arch = tcfg["architectures"][0]
    b, n, hid = embeds.shape
    nh, kv = tcfg["num_attention_heads"], tcfg["num_key_value_heads"]
    d, g, eps = hid // nh, nh // kv, tcfg["rms_norm_eps"]
    cos, sin = rope_cos_sin(tcfg, n)
    mask = torch.full((n, n), float("-inf")).triu(1)
    m = "language_model.model."
    x = embeds
    for i in range(tcfg["num_hidden_layers"]):
        p = f"{m}layers.{i}."
        if arch == "InternLM2ForCausalLM":
            h = rms_norm(x, sd[p + "attention_norm.weight"], eps)
            qkv = F.linear(h, sd[p + "attention.wqkv.weight"]).view(b, n, kv, g + 2, d)  # grouped per KV head
            q, k, v = qkv[..., :g, :].reshape(b, n, nh, d), qkv[..., g, :], qkv[..., g + 1, :]
        else:
            h = rms_norm(x, sd[p + "input_layernorm.weight"], eps)
            if arch == "Phi3ForCausalLM":
                qkv = F.linear(h, sd[p + "self_attn.qkv_proj.weight"])  # [Q | K | V]
                q, k, v = qkv[..., : nh * d], qkv[..., nh * d : (nh + kv) * d], qkv[..., (nh + kv) * d :]
            else:
                q, k, v = (
                    F.linear(h, sd[p + f"self_attn.{x_}_proj.weight"], sd.get(p + f"self_attn.{x_}_proj.bias"))
                    for x_ in "qkv"
                )
            q, k, v = q.reshape(b, n, nh, d), k.reshape(b, n, kv, d), v.reshape(b, n, kv, d)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d) + mask, dim=-1) @ v
        att = att.transpose(1, 2).reshape(b, n, nh * d)
        if arch == "InternLM2ForCausalLM":
            x = x + F.linear(att, sd[p + "attention.wo.weight"])
            h = rms_norm(x, sd[p + "ffn_norm.weight"], eps)
            x = x + F.linear(
                F.silu(F.linear(h, sd[p + "feed_forward.w1.weight"])) * F.linear(h, sd[p + "feed_forward.w3.weight"]),
                sd[p + "feed_forward.w2.weight"],
            )
            continue
        x = x + F.linear(att, sd[p + "self_attn.o_proj.weight"])
        h = rms_norm(x, sd[p + "post_attention_layernorm.weight"], eps)
        if arch == "Phi3ForCausalLM":
            gate, up = F.linear(h, sd[p + "mlp.gate_up_proj.weight"]).chunk(2, dim=-1)  # [gate | up]
        else:
            gate, up = F.linear(h, sd[p + "mlp.gate_proj.weight"]), F.linear(h, sd[p + "mlp.up_proj.weight"])
        x = x + F.linear(F.silu(gate) * up, sd[p + "mlp.down_proj.weight"])
    x = rms_norm(x, sd[m + "norm.weight"], eps)
    head = sd.get("language_model.output.weight", sd.get("language_model.lm_head.weight"))
    return F.linear(x, head)


def forward(
    sd: dict[str, Tensor], cfg: dict[str, Any], input_ids: Tensor, pixels: Tensor | None, img_context_id: int
) -> Tensor:
    """InternVLChatModel.forward (§5.1): embeddings, IMG_CONTEXT rows replaced by features in row-major order."""
    tcfg = cfg["llm_config"]
    emb_key = (
        "language_model.model.tok_embeddings.weight"
        if tcfg["architectures"][0] == "InternLM2ForCausalLM"
        else "language_model.model.embed_tokens.weight"
    )
    embeds = F.embedding(input_ids, sd[emb_key]).clone()
    if pixels is not None:
        feats = image_features(sd, cfg, pixels)
        flat = embeds.reshape(-1, embeds.shape[-1])
        selected = input_ids.flatten() == img_context_id
        flat[selected] = feats.reshape(-1, flat.shape[-1])
        embeds = flat.reshape(embeds.shape)
    return llm_logits(sd, tcfg, embeds)
