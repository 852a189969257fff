"""From a training configuration (`internvl_train.config.TrainConfig`) to what the planner needs."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from internvl_train.plan.activations import Workload
from internvl_train.plan.cards import CHECKPOINT_NAMES, card_config, size_of_name
from internvl_train.plan.planner import Setup
from internvl_train.plan.shapes import ModelShapes, shapes_from_config
from internvl_train.plan.states import PlanError, Training, zero_of


def model_shapes(model: str) -> tuple[ModelShapes, str]:
    """Shapes from the checkpoint's config.json, else from the card of the released size its name names."""
    cfg_file = Path(model) / "config.json"
    if cfg_file.is_file():
        try:
            cfg = json.loads(cfg_file.read_text())
        except ValueError as exc:
            raise PlanError(f"{cfg_file}: not valid JSON ({exc})") from None
        return shapes_from_config(cfg, str(cfg_file)), str(cfg_file)
    size = size_of_name(model)
    if size is None:
        raise PlanError(
            f"{model}: no config.json there and the name is not a released InternVL2 size; give the checkpoint "
            f"folder or a name with the size (e.g. {', '.join(CHECKPOINT_NAMES.values())})"
        )
    return shapes_from_config(card_config(size), f"card {CHECKPOINT_NAMES[size]}"), f"card {CHECKPOINT_NAMES[size]}"


def tiles_per_sample(cfg: Any, shapes: ModelShapes) -> int:
    """Worst-case tiles of one sample: max_dynamic_patch plus the thumbnail (the checkpoint's when unset)."""
    max_patch = cfg.max_dynamic_patch or shapes.settings.get("max_dynamic_patch") or 12
    thumb = cfg.use_thumbnail if cfg.use_thumbnail is not None else shapes.settings.get("use_thumbnail", True)
    dynamic = cfg.dynamic_image_size if cfg.dynamic_image_size is not None else True
    if not dynamic:
        return 1
    return int(max_patch) + (1 if thumb and max_patch > 1 else 0)


def setup_of(cfg: Any, shapes: ModelShapes, world: int, tiles: int | None = None, seq_len: int | None = None) -> Setup:
    """The planner's Setup of a TrainConfig on ``world`` GPUs (tiles per micro-batch: worst case unless given)."""
    train = Training(**{f.name: getattr(cfg, f.name) for f in fields(Training)})  # the config's flags of the same names
    mb = cfg.per_device_train_batch_size
    seq = seq_len or cfg.max_seq_length
    per_sample = tiles_per_sample(cfg, shapes)
    per_sample = min(per_sample, max(1, seq // shapes.dims.tokens_per_tile))  # the tokens must fit the sequence
    work = Workload(
        micro_batch=mb,
        seq_len=seq,
        tiles=tiles if tiles is not None else mb * per_sample,
        grad_checkpoint=cfg.grad_checkpoint,
    )
    return Setup(train=train, zero=zero_of(cfg.deepspeed), world=world, work=work)
