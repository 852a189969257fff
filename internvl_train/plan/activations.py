"""Activation memory of one micro-batch: forward + backward peak, from the shapes alone.

Counted from what the transformers 5 native model keeps for backward, in bytes per token (N = micro-batch x
max_seq_length tokens, 16-bit activations, B = 2 bytes):

- LLM decoder layer without gradient checkpointing: two RMSNorms (float32 copy of the input for the variance,
  4h, and the 16-bit normalised output, 2h: 6h each); attention: rotated q (2q), k and v as SDPA gets them (2k'
  each; k' = q when the implementation repeats the KV heads), SDPA's output (2q) and its contiguous copy for
  o_proj (2q), the log-sum-exp (4 x heads); MLP: gate, up, act(gate), act x up (2I each: 8I).
- With gradient checkpointing (one checkpoint per decoder layer) each layer keeps its 16-bit input (2h) and one
  layer is recomputed at a time during backward.
- Logits and loss: 16-bit logits (2V), their float32 copy (4V), log-softmax output (4V) kept for backward;
  backward holds the float32 gradient next to them: the peak is 12V per token. These dominate for large
  vocabularies (Qwen2 151655, Llama-3 128265).
- Projector (trained in the official full fine-tune): LayerNorm input and output (2 x 2 x 4Cv) and GELU in/out
  (2 x 2h) per image token.
- Vision tower: frozen (the official scripts) it keeps nothing for backward; its forward working set per tile
  (the MLP's 4Cv intermediate, in and out of GELU, and the residual stream) is counted when it exceeds the rest.
  Trained (freeze_backbone false, or backbone LoRA) it keeps ~34 Cv per patch per layer, or 2 Cv with
  checkpointing.
- The weight-gradient temporary: the largest trainable tensor's gradient is materialised once before it is
  accumulated or handed to DeepSpeed; at lm_head's backward it sits next to the 16-bit and float32 logit gradients
  (6V per token), which is the peak when it exceeds the loss's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from internvl_train.plan.shapes import ModelShapes

B = 2  # bytes of a bf16 / fp16 activation


@dataclass(frozen=True)
class Workload:
    micro_batch: int
    seq_len: int  # padded length of the micro-batch (max_seq_length at worst)
    tiles: int  # tiles in the micro-batch (thumbnails and dummy tiles of text-only samples included)
    grad_checkpoint: bool = True
    gqa_in_sdpa: bool = False  # True when SDPA takes the KV heads as they are (flash attention on GPU)


@dataclass
class Activations:
    llm: int = 0
    logits_loss: int = 0
    projector: int = 0
    vision: int = 0
    weight_grad_temp: int = 0
    total: int = 0


def layer_bytes_per_token(shapes: ModelShapes, gqa: bool) -> int:
    d = shapes.dims
    q = d.heads * d.head_dim
    kv = d.kv_heads * d.head_dim if gqa else q
    norms = 2 * (4 + 2) * d.hidden
    attn = B * q + 2 * B * kv + B * q + B * q + 4 * d.heads
    mlp = 4 * B * d.intermediate
    return norms + attn + mlp


def activation_bytes(
    shapes: ModelShapes,
    work: Workload,
    *,
    vit_trainable: bool = False,
    projector_trainable: bool = True,
    largest_trainable: int = 0,
) -> Activations:
    """Peak activation bytes of one forward + backward of ``work`` (weights and held gradients excluded)."""
    d = shapes.dims
    n = work.micro_batch * work.seq_len
    per_layer = layer_bytes_per_token(shapes, work.gqa_in_sdpa) * n
    a = Activations()
    # the loss's peak (float32 logits, log-softmax output and its gradient), or later, at lm_head's backward, the
    # 16-bit and float32 logit gradients next to the weight-gradient temporary of the largest trainable tensor
    a.logits_loss = 12 * d.vocab * n
    a.weight_grad_temp = max(0, 6 * d.vocab * n + B * largest_trainable - a.logits_loss)
    a.llm = 6 * d.hidden * n  # final norm
    if work.grad_checkpoint:
        # the layer inputs stay; one layer is recomputed at a time, after the loss's backward has finished
        a.llm += d.layers * B * d.hidden * n + max(0, per_layer - a.logits_loss - a.weight_grad_temp)
    else:
        a.llm += d.layers * per_layer
    image_tokens = work.tiles * d.tokens_per_tile
    if projector_trainable:
        a.projector = image_tokens * (2 * B * 4 * d.vit_hidden + 2 * B * d.hidden)
    patches = work.tiles * (d.patches + 1)
    if vit_trainable:
        per = 2 * d.vit_hidden if work.grad_checkpoint else 34 * d.vit_hidden
        a.vision = patches * per * d.vit_layers + (34 * d.vit_hidden * patches if work.grad_checkpoint else 0)
    held = a.llm + a.logits_loss + a.projector + a.vision + a.weight_grad_temp
    vit_forward = patches * (2 * B * d.vit_intermediate + 3 * B * d.vit_hidden)  # frozen ViT: transient only
    a.total = max(held, vit_forward + a.projector)
    return a
