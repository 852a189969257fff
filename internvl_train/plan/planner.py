"""One plan: per-GPU bytes by category, the verdict for a GPU size, ranked suggestions, the time per epoch.

Peak per GPU = model states held between steps (weights, gradients, master weights, moments; ZeRO-3's reduce
bucket and DDP's reducer buckets are held too) + the larger of (a) backward: activations + the ZeRO-1/2 reduce
buckets + ZeRO-3's gathered layers, and (b) the optimizer step: the float32 gradient partition DeepSpeed builds
for the step; plus the framework's fixed overhead (CUDA context, NCCL and cuBLAS workspaces) and an allocator
margin for fragmentation. Verdict: fits when the total is at most 90% of the GPU, tight up to 100%.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from internvl_train.plan.activations import Activations, Workload, activation_bytes
from internvl_train.plan.shapes import ModelShapes
from internvl_train.plan.states import States, Training, Zero, plan_states, tensors

GiB = 1024**3
FIXED_OVERHEAD = int(1.5 * GiB)  # CUDA context (~0.5 GiB), NCCL buffers and cuBLAS/attention workspaces
ALLOCATOR_MARGIN = 0.05  # caching-allocator fragmentation, as a share of the dynamic total
TIGHT = 0.90  # above this share of the GPU the verdict is "tight"
GPU_COUNTS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
GPUS = {  # dense bf16 peak FLOP/s (no sparsity) for the time estimate
    "a100": 312e12,
    "h100": 989e12,
}


@dataclass(frozen=True)
class Setup:
    """Everything a plan depends on."""

    train: Training
    zero: Zero
    world: int
    work: Workload

    def replace(self, **kw: Any) -> Setup:
        return dataclasses.replace(self, **kw)


@dataclass
class Plan:
    setup: Setup
    states: States
    activations: Activations
    breakdown: dict[str, int]
    per_gpu_bytes: int
    gpu_memory: int | None
    verdict: str | None  # fits | tight | does not fit | None (no --gpu-memory)
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    smallest_gpus: int | None = None

    @property
    def fits(self) -> bool | None:
        return None if self.verdict is None else self.verdict != "does not fit"


def compute(shapes: ModelShapes, setup: Setup, gpu_memory: int | None = None) -> Plan:
    """The plan of one setup (no suggestions)."""
    st = plan_states(shapes, setup.train, setup.zero, setup.world)
    trainable = [t for t in tensors(shapes, setup.train, setup.zero.stage) if t.trainable]
    largest = max((t.numel for t in trainable), default=0)
    vit_trainable = any(t.trainable and ".vision_tower." in f".{t.name}" for t in trainable)
    proj_trainable = any(t.trainable and "multi_modal_projector" in t.name for t in trainable)
    act = activation_bytes(
        shapes,
        setup.work,
        vit_trainable=vit_trainable,
        projector_trainable=proj_trainable or vit_trainable,
        largest_trainable=largest,
    )
    held_buckets = st.reduce_buckets if setup.zero.stage in (0, 3) else 0
    backward = act.total + (st.reduce_buckets if setup.zero.stage in (1, 2) else 0) + st.gathered_params
    step = st.step_fp32_gradients
    dynamic = st.model_states + held_buckets + max(backward, step)
    margin = int(ALLOCATOR_MARGIN * dynamic)
    total = dynamic + FIXED_OVERHEAD + margin
    breakdown = {
        "weights_trainable": st.weights_trainable,
        "weights_frozen": st.weights_frozen,
        "gradients": st.gradients,
        "optimizer_master_weights": st.master_weights,
        "optimizer_moments": st.optimizer_moments + st.optimizer_steps,
        "activations_llm": act.llm,
        "activations_logits_loss": act.logits_loss + act.weight_grad_temp,
        "activations_vision_projector": act.total - act.llm - act.logits_loss - act.weight_grad_temp,
        "communication_buckets": st.reduce_buckets,
        "zero3_gathered_params": st.gathered_params,
        "optimizer_step_fp32_gradients": step,
        "framework_overhead": FIXED_OVERHEAD,
        "allocator_margin": margin,
        "cpu_offloaded": st.cpu_bytes,
    }
    verdict = None
    if gpu_memory:
        verdict = "fits" if total <= TIGHT * gpu_memory else "tight" if total <= gpu_memory else "does not fit"
    return Plan(setup, st, act, breakdown, total, gpu_memory, verdict)


def _changes(setup: Setup, shapes: ModelShapes) -> list[tuple[str, Setup]]:
    """Candidate single changes, cheapest first (the order the issue ranks them in)."""
    s, out = setup, []
    w, t, z = s.work, s.train, s.zero
    if w.micro_batch > 1:
        out.append(
            (
                f"per_device_train_batch_size=1 (and gradient_accumulation_steps x{w.micro_batch})",
                s.replace(work=dataclasses.replace(w, micro_batch=1, tiles=math.ceil(w.tiles / w.micro_batch))),
            )
        )
    if not w.grad_checkpoint:
        out.append(("grad_checkpoint=true", s.replace(work=dataclasses.replace(w, grad_checkpoint=True))))
    if z.stage in (0, 1):
        out.append(("deepspeed=zero2", s.replace(zero=_named_zero("zero2"))))
    if z.stage in (0, 1, 2):
        out.append(("deepspeed=zero3", s.replace(zero=_named_zero("zero3"))))
    if not (z.offload_optimizer and z.offload_param):
        out.append(
            (
                "deepspeed=zero3-offload (optimizer and parameters in CPU memory)",
                s.replace(zero=_named_zero("zero3-offload")),
            )
        )
    if not t.use_llm_lora and not t.freeze_llm:
        lora = dataclasses.replace(t, freeze_llm=True, freeze_mlp=True, use_llm_lora=16)
        out.append(("use_llm_lora=16 freeze_llm=true freeze_mlp=true (LoRA instead of full)", s.replace(train=lora)))
    per_sample = w.tiles / max(1, w.micro_batch)
    if per_sample > 2:
        fewer = max(1, math.ceil(per_sample / 2))
        out.append(
            (
                f"max_dynamic_patch={max(1, fewer - 1)} (about {fewer} tiles per sample)",
                s.replace(work=dataclasses.replace(w, tiles=fewer * w.micro_batch)),
            )
        )
    shorter = w.seq_len // 2
    min_len = math.ceil(per_sample) * shapes.dims.tokens_per_tile + 64
    if shorter >= min_len:
        out.append((f"max_seq_length={shorter}", s.replace(work=dataclasses.replace(w, seq_len=shorter))))
    return out


def _named_zero(name: str) -> Zero:
    from internvl_train.plan.states import zero_of

    return zero_of(name)


def smallest_fit(shapes: ModelShapes, setup: Setup, gpu_memory: int) -> Plan | None:
    """The plan on the smallest count of ``GPU_COUNTS`` that fits (or is tight), or None up to 512."""
    for n in GPU_COUNTS:
        plan = compute(shapes, setup.replace(world=n), gpu_memory)
        if plan.verdict != "does not fit":
            return plan
    return None


def make_plan(shapes: ModelShapes, setup: Setup, gpu_memory: int | None, *, gpus_given: bool = True) -> Plan:
    """The plan, its smallest GPU count (when the count was not given) and, when it does not fit, suggestions."""
    fit = smallest_fit(shapes, setup, gpu_memory) if gpu_memory and not gpus_given else None
    plan = compute(shapes, setup, gpu_memory) if fit is None else fit
    if fit is not None:
        plan.smallest_gpus = fit.setup.world
    if gpu_memory and plan.verdict == "does not fit":
        plan.suggestions = suggestions(shapes, setup, gpu_memory)
    return plan


def suggestions(shapes: ModelShapes, setup: Setup, gpu_memory: int) -> list[dict[str, Any]]:
    """Single changes that make the plan fit, cheapest first; then more GPUs; if none fits, the best three."""
    tried = []
    for change, new in _changes(setup, shapes):
        p = compute(shapes, new, gpu_memory)
        tried.append({"change": change, "per_gpu_bytes": p.per_gpu_bytes, "verdict": p.verdict})
    more = smallest_fit(shapes, setup, gpu_memory)
    if more is not None and more.setup.world > setup.world:
        tried.append(
            {"change": f"--gpus {more.setup.world}", "per_gpu_bytes": more.per_gpu_bytes, "verdict": more.verdict}
        )
    good = [x for x in tried if x["verdict"] != "does not fit"]
    return good if good else sorted(tried, key=lambda x: x["per_gpu_bytes"])[:3]


def flops_per_token(shapes: ModelShapes, setup: Setup) -> float:
    """Training FLOPs per LLM token: 2 x params forward, backward 2 x for input gradients + 2 x for weight gradients
    (of trained weights only), one more forward with gradient checkpointing; attention 4 x layers x seq x hidden per
    pass; the ViT's forward per image token."""
    d = shapes.dims
    llm = shapes.numel("llm") - d.vocab * d.hidden  # the embedding lookup costs nothing
    trained_llm = not setup.train.freeze_llm and not setup.train.use_llm_lora
    passes = 2 + 2 + (2 if trained_llm else 0) + (2 if setup.work.grad_checkpoint else 0)
    attn = 4 * d.layers * setup.work.seq_len * d.heads * d.head_dim * (passes / 2) / 2  # causal: half the matrix
    vit = 2 * shapes.numel("vision") * (d.patches + 1) / d.tokens_per_tile
    image_share = min(1.0, setup.work.tiles * d.tokens_per_tile / max(1, setup.work.micro_batch * setup.work.seq_len))
    return passes * llm + attn + image_share * vit


def epoch_seconds(
    tokens: int,
    world: int,
    *,
    tokens_per_second_per_gpu: float | None = None,
    shapes: ModelShapes | None = None,
    setup: Setup | None = None,
    gpu: str = "a100",
    mfu: float = 0.4,
) -> tuple[float, str]:
    """(seconds per epoch, how it was estimated)."""
    if tokens_per_second_per_gpu:
        return tokens / (tokens_per_second_per_gpu * world), f"{tokens_per_second_per_gpu:g} tokens/s per GPU"
    assert shapes is not None and setup is not None
    rate = GPUS[gpu] * mfu / flops_per_token(shapes, setup)
    return tokens / (rate * world), f"{gpu.upper()} bf16 peak at {mfu:.0%} MFU = {rate:,.0f} tokens/s per GPU"
