"""The 15 official InternVL2 2nd fine-tune scripts as presets (YAML package data, one file per script).

A preset file holds config keys (the names of :class:`internvl_train.config.TrainConfig`) and one reserved
section, ``launch:``, with what the script's shell part decides: the script name, the size, the launcher
(``torchrun`` or ``srun``), ``gpus`` (the script's ``GPUS`` default) and ``batch_size`` (its ``BATCH_SIZE``,
the global batch). :func:`preset_values` gives the config keys (the base dict of ``load_config``),
:func:`preset_launch` the ``launch:`` section. A name that is not a shipped preset but a path to a ``.yaml``
file in the same format is read as a preset too (tests use tiny ones).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from internvl_train.errors import IvlTrainError

LAUNCH_KEY = "launch"
LAUNCH_FIELDS = ("script", "size", "launcher", "gpus", "batch_size", "gpus_per_node")
SIZES = ("1b", "2b", "4b", "8b", "26b", "40b", "76b")


class PresetError(IvlTrainError, ValueError):
    """An unknown preset name or a preset file that cannot be read; the message names the fix."""


@dataclass(frozen=True)
class PresetLaunch:
    """The shell part of an official script: who launches it, how many GPUs, which global batch."""

    script: str = ""
    size: str = ""
    launcher: str = "torchrun"  # torchrun | srun
    gpus: int = 1
    batch_size: int | None = None  # BATCH_SIZE; None: keep the config's gradient_accumulation_steps
    gpus_per_node: int = 8  # GPUS_PER_NODE of the srun scripts


def preset_names() -> list[str]:
    """The shipped presets, in size order (1b .. 76b), full before lora before lora-coco."""
    names = [p.name[: -len(".yaml")] for p in resources.files(__name__).iterdir() if p.name.endswith(".yaml")]
    return sorted(names, key=_order)


def _order(name: str) -> tuple[int, str]:
    parts = name.split("-")
    size = parts[1] if len(parts) > 1 else ""
    return (SIZES.index(size) if size in SIZES else len(SIZES), name)


def _read(name: str) -> dict[str, Any]:
    import yaml

    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PresetError(f"{name}: cannot read the preset file ({exc.strerror or exc})") from None
    else:
        res = resources.files(__name__) / f"{name}.yaml"
        if not res.is_file():
            close = difflib.get_close_matches(name, preset_names(), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise PresetError(f"unknown preset '{name}'{hint}; `ivl-train presets` lists them")
        text = res.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PresetError(f"{name}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise PresetError(f"{name}: a preset is a mapping of config keys (with an optional 'launch:' section)")
    return data


def preset_values(name: str) -> dict[str, Any]:
    """The preset's config keys (everything but ``launch:``), as a new dict."""
    return {k: v for k, v in _read(name).items() if k != LAUNCH_KEY}


def preset_launch(name: str) -> PresetLaunch:
    """The preset's ``launch:`` section (defaults for a preset without one: torchrun, 1 GPU)."""
    section = _read(name).get(LAUNCH_KEY) or {}
    if not isinstance(section, dict):
        raise PresetError(f"{name}: 'launch:' must be a mapping with keys {', '.join(LAUNCH_FIELDS)}")
    unknown = sorted(set(section) - set(LAUNCH_FIELDS))
    if unknown:
        raise PresetError(f"{name}: launch: unknown key '{unknown[0]}' (known: {', '.join(LAUNCH_FIELDS)})")
    launch = PresetLaunch(**section)
    if launch.launcher not in ("torchrun", "srun"):
        raise PresetError(f"{name}: launch: launcher must be 'torchrun' or 'srun', not {launch.launcher!r}")
    for key in ("gpus", "batch_size", "gpus_per_node"):
        value = getattr(launch, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise PresetError(f"{name}: launch: {key} must be a positive integer, not {value!r}")
    return launch
