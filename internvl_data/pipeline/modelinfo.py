"""What the data pipeline needs from a checkpoint directory's ``config.json`` (no weights are read).

Two layouts: the original InternVL2 remote-code checkpoint (``InternVLChatConfig``, docs/official-behaviour.md §5.7) and the
native transformers ``model_type: internvl`` one (no ``template``: the caller must name one).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from internvl_data.errors import ModelSetupError
from internvl_data.pipeline.tiling import DEFAULT_MAX_DYNAMIC_PATCH


class ModelInfoError(ModelSetupError, ValueError):
    """config.json is missing or does not describe an InternVL checkpoint; the message names the fix."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: str
    layout: str  # "original" | "native"
    template: str | None
    tile_size: int  # force_image_size, else the vision image_size
    patch_size: int
    downsample_ratio: float
    min_dynamic_patch: int = 1
    max_dynamic_patch: int = DEFAULT_MAX_DYNAMIC_PATCH
    use_thumbnail: bool = True
    dynamic_image_size: bool = True
    llm_architecture: str = ""

    @property
    def tokens_per_tile(self) -> int:
        """``int((tile // patch)^2 * ratio^2)``: 256 for 448/14/0.5 (docs/official-behaviour.md §3.6)."""
        return int((self.tile_size // self.patch_size) ** 2 * self.downsample_ratio**2)

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], template: str | None = None) -> ModelInfo:
        """Read ``path/config.json``; ``template`` overrides (or supplies) the checkpoint's template."""
        cfg_path = Path(path) / "config.json"
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelInfoError(
                f"{cfg_path}: not found; --model must be a checkpoint directory with config.json"
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelInfoError(f"{cfg_path}: cannot read as JSON ({exc})") from None
        if not isinstance(cfg, dict):
            raise ModelInfoError(f"{cfg_path}: expected a JSON object")
        if cfg.get("model_type") == "internvl" or "text_config" in cfg:
            return cls._native(str(path), cfg, template, _read_optional(Path(path) / "preprocessor_config.json"))
        if "vision_config" in cfg and "llm_config" in cfg:
            return cls._original(str(path), cfg, template)
        raise ModelInfoError(
            f"{cfg_path}: not an InternVL checkpoint config (model_type {cfg.get('model_type')!r}, no vision_config/"
            "llm_config); point --model at an InternVL2 checkpoint directory"
        )

    @classmethod
    def _original(cls, path: str, cfg: dict[str, Any], template: str | None) -> ModelInfo:
        vision = cfg.get("vision_config") or {}
        tile = cfg.get("force_image_size") or vision.get("image_size") or 448
        archs = (cfg.get("llm_config") or {}).get("architectures") or [""]
        return cls(
            path=path,
            layout="original",
            template=template or cfg.get("template"),
            tile_size=int(tile),
            patch_size=int(vision.get("patch_size", 14)),
            downsample_ratio=float(cfg.get("downsample_ratio", 0.5)),
            min_dynamic_patch=int(cfg.get("min_dynamic_patch", 1)),
            max_dynamic_patch=int(cfg.get("max_dynamic_patch", DEFAULT_MAX_DYNAMIC_PATCH)),
            use_thumbnail=bool(cfg.get("use_thumbnail", False)),
            dynamic_image_size=bool(cfg.get("dynamic_image_size", False)),
            llm_architecture=str(archs[0]),
        )

    @classmethod
    def _native(cls, path: str, cfg: dict[str, Any], template: str | None, proc: dict[str, Any]) -> ModelInfo:
        """Tiling from preprocessor_config.json (min/max_patches, crop_to_patches) when present."""
        vision = cfg.get("vision_config") or {}
        archs = (cfg.get("text_config") or {}).get("architectures") or [""]
        return cls(
            path=path,
            layout="native",
            template=template or cfg.get("template"),
            tile_size=_first(vision.get("image_size", 448)),
            patch_size=_first(vision.get("patch_size", 14)),
            downsample_ratio=float(cfg.get("downsample_ratio", 0.5)),
            min_dynamic_patch=int(proc.get("min_patches", cfg.get("min_dynamic_patch", 1))),
            max_dynamic_patch=int(proc.get("max_patches", cfg.get("max_dynamic_patch", DEFAULT_MAX_DYNAMIC_PATCH))),
            use_thumbnail=bool(cfg.get("use_thumbnail", True)),
            dynamic_image_size=bool(proc.get("crop_to_patches", cfg.get("dynamic_image_size", True))),
            llm_architecture=str(archs[0]),
        )

    def require_template(self) -> str:
        if not self.template:
            raise ModelInfoError(
                f"{Path(self.path) / 'config.json'}: no 'template' in this {self.layout} checkpoint config; pass "
                "--template NAME (Hermes-2, internlm2-chat, phi3-chat or internvl2_5)"
            )
        return self.template


def _read_optional(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _first(v: Any) -> int:
    """``448`` or ``[448, 448]`` -> 448 (native configs store (height, width))."""
    return int(v[0] if isinstance(v, (list, tuple)) else v)
