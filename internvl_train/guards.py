"""Guard rails checked before a single weight is loaded (exit 2, one line each).

- ``output_dir`` that cannot be created or written;
- free disk space below the expected size of one checkpoint (weights + optimizer state, estimated from the
  safetensors headers: no tensor is read);
- a DeepSpeed config that contradicts the config (numbers where ``"auto"`` belongs that differ from ours,
  fp16/bf16 switches, a scheduler block) or asks for bf16 on a GPU without it;
- ``max_seq_length`` above the LLM's positions (``max_position_embeddings``, times a linear/dynamic rope factor);
- a LoRA rank on an LLM architecture without official targets (with ``lora_target: official``).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from internvl_train.errors import IvlTrainError

# LLM architectures with official LoRA target lists (docs/official-behaviour.md §7.1; the lists themselves are
# recipe.model.LLM_LORA_MODULES, and params.py counts them); native model types of converted checkpoints too.
LORA_ARCHITECTURES = ("InternLM2ForCausalLM", "Phi3ForCausalLM", "Qwen2ForCausalLM", "LlamaForCausalLM")
NATIVE_TYPES = {"qwen2": "Qwen2ForCausalLM", "llama": "LlamaForCausalLM", "phi3": "Phi3ForCausalLM"}
GiB = 1024**3


class GuardError(IvlTrainError, ValueError):
    """One or more guard rails failed; ``problems`` holds one line each (exit 2)."""

    exit_code = 2

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# -- the checkpoint, without its tensors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tensors:
    """Names and element counts of a checkpoint's tensors, from the safetensors headers."""

    shapes: dict[str, tuple[int, ...]]
    exact: bool  # False when some weights are .bin files (sizes estimated from the file size)
    estimated_params: int = 0  # parameters of the .bin files (file bytes / 2)

    @property
    def total(self) -> int:
        return sum(_numel(s) for s in self.shapes.values()) + self.estimated_params


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def read_tensors(model_dir: Path) -> Tensors:
    """Every tensor's shape from the safetensors headers (8-byte length + JSON); .bin files by size."""
    from internvl_train.checkpoint.shards import weight_files

    shapes: dict[str, tuple[int, ...]] = {}
    estimated = 0
    exact = True
    for file in weight_files(model_dir):
        if file.suffix != ".safetensors":
            exact = False
            estimated += file.stat().st_size // 2
            continue
        with open(file, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(n))
        for name, info in header.items():
            if name != "__metadata__":
                shapes[name] = tuple(info["shape"])
    return Tensors(shapes, exact, estimated)


def _llm_config(cfg: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The LLM's config dict and its name in config.json (original ``llm_config`` or native ``text_config``)."""
    if "llm_config" in cfg:
        return cfg.get("llm_config") or {}, "llm_config"
    return cfg.get("text_config") or {}, "text_config"


def llm_architecture(cfg: dict[str, Any]) -> str | None:
    llm, _ = _llm_config(cfg)
    archs = llm.get("architectures") or []
    if archs:
        return archs[0]
    return NATIVE_TYPES.get(llm.get("model_type", ""), llm.get("model_type"))


# -- the single checks ----------------------------------------------------------------------------------------------


def check_output_dir(output_dir: str) -> str | None:
    """None when ``output_dir`` exists as a writable folder or can be created; else the problem."""
    path = Path(output_dir).absolute()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"output_dir: {output_dir} cannot be created: {probe} is a file, not a folder; choose another output_dir"
    try:
        fd, name = tempfile.mkstemp(prefix=".ivl-write-test-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        where = "" if probe == path else f" (its nearest existing folder {probe})"
        return (
            f"output_dir: {output_dir} is not writable{where}: {exc.strerror or exc}; "
            f"choose another output_dir or fix the permissions"
        )
    return None


def expected_checkpoint_bytes(
    cfg: Any, tensors: Tensors, model_cfg: dict[str, Any] | None = None
) -> tuple[int, int, int]:
    """(total, weights, optimizer) bytes of one checkpoint-N: the saved weights (the whole model for a full
    fine-tune, the adapters for LoRA) in the training dtype, and Adam's state for the trainable parameters
    (12 bytes each under DeepSpeed: fp32 master copy + two moments; 8 without). The trainable count is
    :func:`internvl_train.params.count_for_config`'s (the native model's, as the trainer wraps it); ``model_cfg``
    is the checkpoint's config.json when already read."""
    from internvl_train.params import count_for_config

    trainable = count_for_config(cfg, model_cfg).trainable
    dtype_bytes = 2 if cfg.bf16 else 4
    lora = bool(cfg.use_llm_lora or cfg.use_backbone_lora)
    weights = (trainable if lora else tensors.total) * dtype_bytes
    optimizer = trainable * (12 if cfg.deepspeed else 8)
    return weights + optimizer, weights, optimizer


def check_disk(cfg: Any, tensors: Tensors, model_cfg: dict[str, Any] | None = None) -> str | None:
    path = Path(cfg.output_dir).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return None  # check_output_dir reports an unusable folder
    try:
        need, weights, optimizer = expected_checkpoint_bytes(cfg, tensors, model_cfg)
    except (ValueError, KeyError, TypeError):
        return None  # a config.json params.py cannot count: the checkpoint loader reports it
    if free >= need:
        return None
    return (
        f"output_dir: {cfg.output_dir} has {human_bytes(free)} free, below the {human_bytes(need)} one checkpoint "
        f"needs (weights {human_bytes(weights)} + optimizer state {human_bytes(optimizer)}); free space or choose "
        f"another output_dir"
    )


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'; 3 * 1024**3 -> '3.0 GiB'."""
    for unit, size in (("TiB", 1024**4), ("GiB", GiB), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def deepspeed_path(value: str) -> Path:
    """A shipped config name (``zero3``, ``zero3-34b``) or a path -> the JSON file."""
    if value.endswith(".json"):
        return Path(value)
    return Path(str(resources.files("internvl_train") / "configs" / "deepspeed" / f"{value.replace('-', '_')}.json"))


def check_deepspeed(cfg: Any, world_size: int, *, cuda: Any = None) -> list[str]:
    """Values of the DeepSpeed JSON that contradict the config (HF would refuse them after loading the model)."""
    out: list[str] = []
    if cfg.bf16:
        if cuda is None:
            import torch

            cuda = torch.cuda
        if cuda.is_available() and not cuda.is_bf16_supported():
            out.append(f"bf16: true, but {cuda.get_device_name(0)} has no bfloat16 support; set bf16=false (float32)")
    if not cfg.deepspeed:
        return out
    path = deepspeed_path(cfg.deepspeed)
    where = f"deepspeed: {cfg.deepspeed}" + ("" if str(path) == cfg.deepspeed else f" ({path.name})")
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [*out, f"{where}: file not found; use zero1, zero2, zero3, zero3-offload or a JSON file"]
    except (OSError, ValueError) as exc:
        return [*out, f"{where}: not a readable JSON file ({exc})"]
    if not isinstance(ds, dict):
        return [*out, f"{where}: expected a JSON object"]

    def fixed(value: Any) -> bool:
        return value is not None and value != "auto"

    fp16 = (ds.get("fp16") or {}).get("enabled")
    bf16 = (ds.get("bf16") or {}).get("enabled")
    if fp16 is True:
        out.append(f'{where}: fp16.enabled is true, but the config trains in {"bf16" if cfg.bf16 else "float32"}; '
                   'set it to "auto"')  # fmt: skip
    if bf16 is True and not cfg.bf16:
        out.append(f'{where}: bf16.enabled is true, but the config says bf16: false; set it to "auto"')
    if bf16 is False and cfg.bf16:
        out.append(f'{where}: bf16.enabled is false, but the config says bf16: true; set it to "auto"')
    opt = (ds.get("optimizer") or {}).get("params") or {}
    pairs = [
        ("train_micro_batch_size_per_gpu", ds.get("train_micro_batch_size_per_gpu"), cfg.per_device_train_batch_size,
         "per_device_train_batch_size"),
        ("gradient_accumulation_steps", ds.get("gradient_accumulation_steps"), cfg.gradient_accumulation_steps,
         "gradient_accumulation_steps"),
        ("train_batch_size", ds.get("train_batch_size"),
         cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps * world_size, "the global batch"),
        ("gradient_clipping", ds.get("gradient_clipping"), cfg.max_grad_norm, "max_grad_norm"),
        ("optimizer.params.lr", opt.get("lr"), cfg.learning_rate, "learning_rate"),
        ("optimizer.params.weight_decay", opt.get("weight_decay"), cfg.weight_decay, "weight_decay"),
    ]  # fmt: skip
    for key, value, ours, name in pairs:
        if fixed(value) and value != ours:
            out.append(f'{where}: {key} is {value}, but {name} is {ours}; set it to "auto" or to {ours}')
    if "scheduler" in ds:
        out.append(
            f"{where}: has a scheduler block, which would replace lr_scheduler_type {cfg.lr_scheduler_type} "
            f"and warmup_ratio {cfg.warmup_ratio}; remove it"
        )
    return out


def check_positions(cfg: Any, model_cfg: dict[str, Any], model_dir: str) -> str | None:
    llm, section = _llm_config(model_cfg)
    positions = llm.get("max_position_embeddings")
    if not isinstance(positions, int):
        return None
    rope = llm.get("rope_scaling") or {}
    kind = rope.get("type") or rope.get("rope_type")
    factor = rope.get("factor") if kind in ("linear", "dynamic") else None
    limit = int(positions * factor) if isinstance(factor, (int, float)) and factor > 1 else positions
    if cfg.max_seq_length <= limit:
        return None
    how = f"{section}.max_position_embeddings {positions}" + (
        f" x {kind} rope factor {factor}" if limit != positions else ""
    )
    return (
        f"max_seq_length: {cfg.max_seq_length} is above the model's {limit} positions ({how} in "
        f"{os.path.join(model_dir, 'config.json')}); set max_seq_length={limit} or less"
    )


def check_lora_targets(cfg: Any, model_cfg: dict[str, Any], model_dir: str) -> str | None:
    if not cfg.use_llm_lora or cfg.lora_target != "official":
        return None
    arch = llm_architecture(model_cfg)
    if arch in LORA_ARCHITECTURES:
        return None
    _, section = _llm_config(model_cfg)
    return (
        f"use_llm_lora: rank {cfg.use_llm_lora}, but the LLM architecture {arch} ({section} in "
        f"{os.path.join(model_dir, 'config.json')}) has no official LoRA targets (InternLM2, Phi-3, Qwen2, Llama); "
        f"set lora_target=all-linear or use_llm_lora=0"
    )


# -- all together -------------------------------------------------------------------------------------------------------


def guard_problems(cfg: Any, *, world_size: int = 1, cuda: Any = None) -> list[str]:
    """Every guard rail's problem for a resolved TrainConfig (the checkpoint's config.json and weight headers
    are read; no tensor is)."""
    problems: list[str] = []
    if (p := check_output_dir(cfg.output_dir)) is not None:
        problems.append(p)
    model_dir = cfg.model_name_or_path
    try:
        model_cfg = json.loads(Path(model_dir, "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        model_cfg = None  # the config loader and load_pretrained report it
    if isinstance(model_cfg, dict):
        for check in (check_positions, check_lora_targets):
            if (p := check(cfg, model_cfg, model_dir)) is not None:
                problems.append(p)
        if not problems:
            try:
                tensors = read_tensors(Path(model_dir))
            except Exception:  # noqa: BLE001 - unreadable weights are load_pretrained's to report
                tensors = None
            if tensors is not None and (p := check_disk(cfg, tensors, model_cfg)) is not None:
                problems.append(p)
    problems += check_deepspeed(cfg, world_size, cuda=cuda)
    return problems


def check_guards(cfg: Any, *, world_size: int = 1, cuda: Any = None) -> None:
    """Raise :class:`GuardError` with every problem of :func:`guard_problems`."""
    problems = guard_problems(cfg, world_size=world_size, cuda=cuda)
    if problems:
        raise GuardError(problems)
