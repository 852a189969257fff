"""Model states per GPU: weights, gradients, optimizer states, as DeepSpeed (ZeRO 1/2/3) or DDP hold them.

Counted tensor by tensor from the native module tree (`shapes.py`), in the order the trainer sees them, because
DeepSpeed's layout depends on it:

- DDP (no DeepSpeed): every parameter in the load dtype (float32 under autocast, as `ivl-train run` loads it),
  a `.grad` per trainable tensor, AdamW `exp_avg` + `exp_avg_sq` in the parameter dtype and a float32 `step`
  scalar per trainable tensor; the reducer's buckets hold a second copy of the gradients (`gradient_as_bucket_view`
  is off in the HF Trainer).
- ZeRO-1/2 (`stage_1_and_2.py`): the trainable tensors are flattened into one 16-bit buffer padded to a multiple
  of 2 x world size and cut into equal partitions; each rank keeps all 16-bit weights, a float32 master copy and
  two float32 moments of its partition, and the 16-bit gradients of every tensor that overlaps its partition
  (whole tensors, so a tensor crossing a boundary counts on both ranks). At the optimizer step a float32 copy of
  the partition's gradients exists for a moment. During backward two reduce buckets of `reduce_bucket_size`
  16-bit elements (one without `overlap_comm`) exist.
- ZeRO-3 (`stage3.py`): every tensor is cut on its own into ceil(numel / world) elements; tensors of at most
  `stage3_param_persistence_threshold` elements also stay whole on every rank. Float32 master and moments and
  16-bit gradients per partition, one reduce bucket, and the gathered layers of forward/backward (the largest
  tensor in 16-bit, twice: parameter and its gradient, as DeepSpeed's own estimator counts it).
- LoRA (peft): each wrapped Linear gains A (r x in) and B (out x r) after its own weight; adapters are float32
  under DDP (peft's autocast of adapters) and cast to 16-bit by DeepSpeed. A part trained whole next to LoRA is
  a peft ``modules_to_save`` copy: a frozen original plus a trainable copy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from internvl_train.errors import IvlTrainError
from internvl_train.plan.shapes import ModelShapes, lora_targets


@dataclass(frozen=True)
class Zero:
    """The DeepSpeed settings that decide memory (stage 0 = no DeepSpeed: DDP)."""

    stage: int = 0
    offload_optimizer: bool = False
    offload_param: bool = False
    overlap_comm: bool = True
    contiguous_gradients: bool = True
    reduce_bucket_size: int = 500_000_000
    allgather_bucket_size: int = 500_000_000
    prefetch_bucket_size: int = 50_000_000
    persistence_threshold: int = 100_000
    model_persistence_threshold: int = 2**63 - 1
    sub_group_size: int = 1_000_000_000

    @classmethod
    def from_json(cls, ds: dict[str, Any]) -> Zero:
        z = ds.get("zero_optimization") or {}
        off_opt = (z.get("offload_optimizer") or {}).get("device", "none") not in ("none", None)
        off_par = (z.get("offload_param") or {}).get("device", "none") not in ("none", None)

        def num(key: str, default: int) -> int:
            v = z.get(key, default)
            return default if v == "auto" else int(float(v))

        return cls(
            stage=int(z.get("stage", 0)),
            offload_optimizer=off_opt,
            offload_param=off_par,
            overlap_comm=bool(z.get("overlap_comm", int(z.get("stage", 0)) == 3)),
            contiguous_gradients=bool(z.get("contiguous_gradients", True)),
            reduce_bucket_size=num("reduce_bucket_size", 500_000_000),
            allgather_bucket_size=num("allgather_bucket_size", 500_000_000),
            prefetch_bucket_size=num("stage3_prefetch_bucket_size", 50_000_000),
            persistence_threshold=num("stage3_param_persistence_threshold", 100_000),
            model_persistence_threshold=num("stage3_model_persistence_threshold", 2**63 - 1),
            sub_group_size=num("sub_group_size", 1_000_000_000),
        )


@dataclass(frozen=True)
class Training:
    """What is trained and how (the official flags; ranks as in the scripts, 0 = off)."""

    freeze_llm: bool = False
    freeze_mlp: bool = False
    freeze_backbone: bool = True
    unfreeze_vit_layers: int = 0
    unfreeze_lm_head: bool = False
    use_llm_lora: int = 0
    use_backbone_lora: int = 0
    bf16: bool = True


@dataclass(frozen=True)
class Tensor:
    name: str
    numel: int
    trainable: bool
    nbytes_per: int  # bytes per element as the trainer holds it


@dataclass
class States:
    """Per-GPU bytes of one rank (the largest rank when ``rank`` is None)."""

    weights_trainable: int = 0
    weights_frozen: int = 0
    gradients: int = 0
    master_weights: int = 0
    optimizer_moments: int = 0
    optimizer_steps: int = 0  # AdamW step counters (DDP: one float32 scalar per trainable tensor)
    step_fp32_gradients: int = 0  # transient at the optimizer step (DeepSpeed)
    reduce_buckets: int = 0  # transient during backward (ZeRO-1/2), held (ZeRO-3, DDP)
    gathered_params: int = 0  # ZeRO-3: gathered layers in forward/backward
    cpu_bytes: int = 0  # what CPU offload moves to host memory (per rank)
    trainable_numel: int = 0
    total_numel: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def model_states(self) -> int:
        """Weights + gradients + optimizer states held between steps (what a snapshot of the trainer sees)."""
        return (
            self.weights_trainable
            + self.weights_frozen
            + self.gradients
            + self.master_weights
            + self.optimizer_moments
            + self.optimizer_steps
        )


_CACHE: dict[tuple[int, Training, bool], tuple[ModelShapes, list[Tensor]]] = {}


def _tensors_cached(shapes: ModelShapes, train: Training, zero_stage: int) -> list[Tensor]:
    key = (id(shapes), train, zero_stage > 0)
    hit = _CACHE.get(key)
    if hit is None or hit[0] is not shapes:
        if len(_CACHE) > 64:
            _CACHE.clear()
        hit = _CACHE[key] = (shapes, tensors(shapes, train, zero_stage))
    return hit[1]


def _grads_in_partitions(numels: list[int], part: int, world: int) -> list[int]:
    """Per rank: elements of the trainable tensors that overlap its partition, whole tensors (ZeRO-1/2)."""
    out = [0] * world
    offset = 0
    for numel in numels:
        if numel:
            first = offset // part
            last = min(world - 1, (offset + numel - 1) // part)
            for r in range(first, last + 1):
                out[r] += numel
        offset += numel
    return out


def tensors(shapes: ModelShapes, train: Training, zero_stage: int) -> list[Tensor]:
    """Every parameter tensor as the trainer holds it, in module order (LoRA adapters and peft copies included)."""
    deepspeed = zero_stage > 0
    base_bytes = 2 if (deepspeed and train.bf16) else 4
    lora_bytes = 2 if (deepspeed and train.bf16) else 4
    lora = bool(train.use_llm_lora or train.use_backbone_lora)
    vit_layers = _vit_trainable_layers(shapes, train)

    def whole(name: str, part: str) -> bool:
        if part == "vision":
            if not train.freeze_backbone:
                return True
            return _layer_index(name) in vit_layers
        if part == "projector":
            return not train.freeze_mlp
        if name.startswith("lm_head") and train.unfreeze_lm_head:
            return True
        return not train.freeze_llm and not train.use_llm_lora

    wrapped: dict[str, tuple[int, int, int]] = {}  # module -> (r, in, out)
    if train.use_llm_lora:
        for lin in lora_targets(shapes, "llm"):
            wrapped[lin.name] = (train.use_llm_lora, lin.in_features, lin.out_features)
    if train.use_backbone_lora:
        for lin in lora_targets(shapes, "vision"):
            wrapped[lin.name] = (train.use_backbone_lora, lin.in_features, lin.out_features)

    biased = {p.name[: -len(".bias")] for p in shapes.params if p.name.endswith(".bias")}
    out: list[Tensor] = []
    copies: list[Tensor] = []
    copy_root: str | None = None
    for p in shapes.params:
        module = p.name.rsplit(".", 1)[0]
        trains = whole(p.name, p.part)
        if lora and trains:
            # peft modules_to_save: the original stays (frozen) and a trainable copy follows the whole saved module
            root = _save_root(p.name, p.part, train, shapes)
            if root != copy_root and copies:
                out.extend(copies)
                copies = []
            copy_root = root
            out.append(Tensor(p.name, p.numel, False, base_bytes))
            copies.append(Tensor(p.name + "#copy", p.numel, True, base_bytes))
            continue
        if copies:
            out.extend(copies)
            copies, copy_root = [], None
        out.append(Tensor(p.name, p.numel, trains, base_bytes))
        last = p.name.endswith(".bias") or (p.name.endswith(".weight") and module not in biased)
        if module in wrapped and last:
            r, fin, fout = wrapped[module]
            out.append(Tensor(module + ".lora_A", r * fin, True, lora_bytes))
            out.append(Tensor(module + ".lora_B", fout * r, True, lora_bytes))
    out.extend(copies)
    return out


def _layer_index(name: str) -> int | None:
    marker = ".encoder.layer."
    if marker not in name:
        return None
    return int(name.split(marker, 1)[1].split(".", 1)[0])


def _vit_trainable_layers(shapes: ModelShapes, train: Training) -> set[int]:
    k = train.unfreeze_vit_layers
    if not k or train.use_backbone_lora:
        return set()
    return set(range(shapes.dims.vit_layers)[k:])


def _save_root(name: str, part: str, train: Training, shapes: ModelShapes) -> str:
    if part == "vision":
        if not train.freeze_backbone:
            return "model.vision_tower"
        return "model.vision_tower.encoder.layer." + str(_layer_index(name))
    if part == "projector":
        return "model.multi_modal_projector"
    if name.startswith("lm_head"):
        return "lm_head"
    return "model.language_model"


def plan_states(shapes: ModelShapes, train: Training, zero: Zero, world: int, rank: int | None = None) -> States:
    """Per-GPU model states of ``rank`` (None: the rank holding the most)."""
    ts = _tensors_cached(shapes, train, zero.stage)
    s = States(trainable_numel=sum(t.numel for t in ts if t.trainable), total_numel=sum(t.numel for t in ts))
    trainable = [t for t in ts if t.trainable]
    frozen = [t for t in ts if not t.trainable]
    if zero.stage == 0:
        s.weights_trainable = sum(t.numel * t.nbytes_per for t in trainable)
        s.weights_frozen = sum(t.numel * t.nbytes_per for t in frozen)
        s.gradients = s.weights_trainable
        s.optimizer_moments = 2 * s.weights_trainable
        s.optimizer_steps = 4 * len(trainable)
        s.reduce_buckets = s.gradients  # DDP reducer buckets (a second copy of the gradients)
        s.notes.append("no DeepSpeed: DDP, AdamW states in the parameter dtype, reducer buckets = gradients")
        return s
    half = 2 if train.bf16 else 4
    if zero.stage in (1, 2):
        n = sum(t.numel for t in trainable)
        align = 2 * world
        padded = math.ceil(n / align) * align
        part = padded // world
        s.weights_trainable = padded * half
        s.weights_frozen = sum(t.numel * t.nbytes_per for t in frozen)
        per_rank = _grads_in_partitions([t.numel for t in trainable], part, world)
        s.gradients = (max(per_rank) if rank is None else per_rank[rank]) * half
        opt = 4 * part + 8 * part
        if zero.offload_optimizer:
            s.cpu_bytes = opt + 4 * part
        else:
            s.master_weights = 4 * part
            s.optimizer_moments = 8 * part
            s.step_fp32_gradients = 4 * part
        buffers = 2 if zero.overlap_comm else 1
        s.reduce_buckets = buffers * zero.reduce_bucket_size * half if zero.contiguous_gradients else 0
        return s
    # ZeRO-3
    persisted = 0
    s.weights_trainable = s.weights_frozen = 0
    part_trainable = 0
    for t in ts:
        shard = math.ceil(t.numel / world)
        keep = t.numel <= zero.persistence_threshold and persisted + t.numel <= zero.model_persistence_threshold
        if keep:
            persisted += t.numel
        held = shard * half + (t.numel * half if keep else 0)
        if t.trainable:
            s.weights_trainable += held
            part_trainable += shard
        else:
            s.weights_frozen += held
    if zero.offload_param:
        s.cpu_bytes += s.weights_trainable + s.weights_frozen - persisted * half
        s.weights_trainable = s.weights_frozen = 0
    s.gradients = part_trainable * half
    if zero.offload_optimizer:
        s.cpu_bytes += 12 * part_trainable + 4 * part_trainable
    else:
        s.master_weights = 4 * part_trainable
        s.optimizer_moments = 8 * part_trainable
        s.step_fp32_gradients = 4 * min(part_trainable, zero.sub_group_size)
    s.reduce_buckets = zero.reduce_bucket_size * half if zero.contiguous_gradients else 0
    largest = max((t.numel for t in ts if t.numel > zero.persistence_threshold), default=0)
    s.gathered_params = 2 * largest * half
    return s


# PlanError and zero_of live here (not in plan.config) so that the planner can use them without an import cycle.
class PlanError(IvlTrainError, ValueError):
    """The plan cannot be made (no config.json and no released size in the name, unreadable DeepSpeed JSON)."""


def zero_of(deepspeed: str | None) -> Zero:
    """The DeepSpeed settings of a shipped name (zero1, zero3-100b, ...) or a JSON path; None = DDP."""
    if not deepspeed:
        return Zero(stage=0)
    from internvl_train.guards import deepspeed_path

    path = deepspeed_path(deepspeed)
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PlanError(
            f"{path}: cannot read the DeepSpeed JSON ({exc}); give a shipped name or a valid file"
        ) from None
    return Zero.from_json(data)
