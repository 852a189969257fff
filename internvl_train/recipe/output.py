"""What a run writes: config.yaml, the final model in the ORIGINAL InternVL2 layout, the LoRA adapter, the merge.

Layout of ``output_dir``: ``config.yaml`` (every resolved key), ``data-manifest.json`` (the data gate),
``metrics.jsonl``, ``skipped.jsonl``, ``loss.png``, ``checkpoint-N/`` (HF format + optimizer and scheduler
state; complete only with ``ivl-complete.json``), and the final weights: ``model/`` (original layout, full
fine-tune or ``merge_lora: true``) and ``adapter/`` (peft format, LoRA runs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from internvl_train.recipe.model import native_state_name
from internvl_train.resume import MARKER

COMPLETE_MARKER = MARKER  # written last into every checkpoint-N (resume continues from those only)
MODEL_DIR, ADAPTER_DIR = "model", "adapter"


def write_atomic_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically (``internvl_data.fsio``: temp beside the file, fsync, rename)."""
    from internvl_data.fsio import write_atomic

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)


def write_config_yaml(output_dir: str | os.PathLike, resolved: Mapping[str, Any]) -> Path:
    import yaml

    path = Path(output_dir) / "config.yaml"
    write_atomic_text(path, yaml.safe_dump(dict(resolved), sort_keys=False, allow_unicode=True))
    return path


def write_complete_marker(checkpoint_dir: str | os.PathLike, step: int, manifest_hash: str | None) -> Path:
    """The last file of a checkpoint: a checkpoint without it is incomplete (a crash mid-save)."""
    path = Path(checkpoint_dir) / COMPLETE_MARKER
    write_atomic_text(path, json.dumps({"step": int(step), "data_manifest_sha256": manifest_hash}, indent=2) + "\n")
    return path


def native_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``TrainModel`` state-dict keys -> native ``InternVLForConditionalGeneration`` keys (no LoRA keys)."""
    return {native_state_name(k): v for k, v in state.items() if ".lora_" not in k and "modules_to_save" not in k}


def peft_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``TrainModel`` state-dict keys -> the peft model's keys (``base_model.model....``)."""
    return {k.removeprefix("inner."): v for k, v in state.items()}


class StateView:
    """A model-shaped view of a (gathered) state dict, for ``save_pretrained``'s original-layout writer."""

    def __init__(self, config: Any, state: Mapping[str, torch.Tensor]):
        self.config = config
        self._state = dict(state)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self._state

    def parameters(self) -> Iterator[torch.Tensor]:
        return iter(v for v in self._state.values() if v.is_floating_point())


def save_original(native_config: Any, state: Mapping[str, torch.Tensor], tokenizer: Any, out: Path, base: str) -> Path:
    """The native weights in ``state`` -> ``out`` in the original InternVL2 layout (``base`` lends its code files,
    generation_config.json and tokenizer files)."""
    from internvl_train.checkpoint.saving import save_pretrained

    return save_pretrained(StateView(native_config, state), tokenizer, out, layout="original", base=base)


def save_adapter(peft_model: Any, state: Mapping[str, torch.Tensor], out: Path, base: str) -> Path:
    """The LoRA adapter (and any whole module that trained with it) in peft format, atomically."""
    from internvl_data.fsio import atomic_dir

    peft_model.peft_config["default"].base_model_name_or_path = str(Path(base).resolve())
    with atomic_dir(out) as tmp:
        peft_model.save_pretrained(str(tmp), state_dict=peft_state(state))
    return out


def merge_adapter(adapter_dir: str | os.PathLike, out: str | os.PathLike, *, base: str | None = None) -> Path:
    """``ivl-train merge-lora``: base checkpoint + adapter -> merged model in the original layout."""
    from peft import PeftModel

    from internvl_train.checkpoint.loading import load_pretrained
    from internvl_train.checkpoint.saving import save_pretrained
    from internvl_train.errors import CheckpointError

    adapter = Path(adapter_dir)
    cfg_file = adapter / "adapter_config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"{cfg_file}: missing; point at the adapter/ folder of a LoRA run")
    try:
        base = base or json.loads(cfg_file.read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{cfg_file}: no base_model_name_or_path ({exc}); pass --base") from exc
    if not base or not Path(base).is_dir():
        raise CheckpointError(f"{cfg_file}: base checkpoint {base!r} not found; pass --base DIR")
    native, tokenizer = load_pretrained(base)
    merged = PeftModel.from_pretrained(native, str(adapter)).merge_and_unload()
    return save_pretrained(merged, tokenizer, out, layout="original", base=base)
