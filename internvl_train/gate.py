"""The data gate: before a single weight is loaded, the mixture is validated or a validation manifest is accepted.

In-process (the default): ``internvl_data.validate`` with every rule (IVL0xx-IVL4xx), the checkpoint's tokenizer
and template, the run's image settings and ``max_seq_length``, and the media checked to ``data_media`` depth
(``header`` by default). The run's image settings can differ from the checkpoint's config.json (the official
scripts train InternVL2 with ``max_dynamic_patch 6`` while the checkpoints say 12): the validator then reads a
temporary view of the checkpoint whose config.json carries the run's values (the tokenizer files are links).

With ``data_manifest``: the manifest ``ivl-data validate`` wrote is accepted when the files still match it
(content hashes) and it was written with the options this run needs (same checkpoint, template,
``max_seq_length``, media checked at least as deeply, no rule ignored); anything else is refused with the reasons.

Warnings that mean the trainer cannot build a correct sample are errors here (:data:`TRAINING_ERRORS`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from internvl_data.checks.findings import Report, Severity
from internvl_data.fsio import write_atomic

__all__ = ["TRAINING_ERRORS", "GateResult", "check_data", "checkpoint_info"]

MEDIA_DEPTH = ("off", "exists", "header", "decode")

# warning-level rules of `ivl-data validate` that break a training sample: errors for the trainer
TRAINING_ERRORS = {
    "IVL304": "the trainer reads media from local paths only; an s3:// image or video cannot be loaded",
    "IVL314": "videos could only be checked for existence because decord is missing; the trainer cannot read them",
    "IVL406": "some frame counts the trainer draws (up to max_num_frame) cut the video's image tokens",
}


@dataclass
class GateResult:
    """The verdict: ``ok``, where it came from, and the text to print (findings as ``ivl-data validate`` prints
    them, or a stale manifest's reasons)."""

    ok: bool
    source: str  # "validated" | "manifest"
    text: str
    report: Report | None = None
    manifest_path: str | None = None  # the manifest that vouches for the data (written or accepted)
    reasons: list[str] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.report.errors if self.report is not None else len(self.reasons)


def check_data(cfg: Any, *, manifest_out: str | None = None, jobs: int = 0) -> GateResult:
    """Validate ``cfg``'s mixture for ``cfg``'s checkpoint, or accept ``cfg.data_manifest``.

    ``cfg`` is a :class:`internvl_train.config.TrainConfig`. ``manifest_out``: where a clean in-process run
    writes its manifest (``output_dir/data-manifest.json`` for a run; None: nothing is written).
    """
    info = checkpoint_info(cfg)
    run_cfg = cfg.with_checkpoint(info)
    if cfg.data_manifest:
        return _accept_manifest(cfg, run_cfg, info, manifest_out)
    return _validate(cfg, run_cfg, info, manifest_out, jobs)


def checkpoint_info(cfg: Any) -> Any:
    """The checkpoint's ``ModelInfo`` with ``cfg.conv_style``; a checkpoint without a template and a config without
    ``conv_style`` is a config problem (exit 2) that names the key to set."""
    from internvl_data.pipeline.modelinfo import ModelInfo
    from internvl_train.config import TEMPLATES, ConfigError

    info = ModelInfo.from_dir(cfg.model_name_or_path, cfg.conv_style)
    if not info.template:
        raise ConfigError(
            [
                f"conv_style: {cfg.model_name_or_path}/config.json names no template ({info.layout} layout); "
                f"set conv_style to one of {', '.join(TEMPLATES)}"
            ]
        )
    return info


def _changed_settings(run_cfg: Any, info: Any) -> dict[str, tuple[Any, Any]]:
    """Image settings the run uses that differ from the checkpoint: ``{key: (checkpoint, run)}``."""
    pairs = {
        "force_image_size": (info.tile_size, run_cfg.force_image_size),
        "min_dynamic_patch": (info.min_dynamic_patch, run_cfg.min_dynamic_patch),
        "max_dynamic_patch": (info.max_dynamic_patch, run_cfg.max_dynamic_patch),
        "use_thumbnail": (info.use_thumbnail, run_cfg.use_thumbnail),
        "dynamic_image_size": (info.dynamic_image_size, run_cfg.dynamic_image_size),
        "down_sample_ratio": (info.downsample_ratio, run_cfg.down_sample_ratio),
    }
    return {k: v for k, v in pairs.items() if v[0] != v[1]}


def _options(cfg: Any, run_cfg: Any, model_dir: str, manifest_out: str | None, jobs: int) -> Any:
    from internvl_data.validator.options import ValidateOptions

    return ValidateOptions(
        media=cfg.data_media,
        template=run_cfg.conv_style,
        model_dir=model_dir,
        max_seq_length=cfg.max_seq_length,
        trust_remote_code=cfg.trust_remote_code,
        write_manifest=manifest_out is not None,
        manifest=manifest_out,
        jobs=jobs,
        progress=False,
    )


def _validate(cfg: Any, run_cfg: Any, info: Any, manifest_out: str | None, jobs: int) -> GateResult:
    from internvl_data.validator.driver import validate
    from internvl_data.validator.report import render

    changed = _changed_settings(run_cfg, info)
    view = _checkpoint_view(cfg.model_name_or_path, run_cfg, info) if changed else None
    try:
        if manifest_out:
            os.makedirs(os.path.dirname(os.path.abspath(manifest_out)), exist_ok=True)
        opts = _options(cfg, run_cfg, view or cfg.model_name_or_path, manifest_out, jobs)
        report = validate(cfg.meta_path, opts)
    finally:
        if view:
            shutil.rmtree(view, ignore_errors=True)
    escalate = {c for c in TRAINING_ERRORS if c != "IVL406" or cfg.max_num_frame >= 32}  # IVL406 counts 32 frames
    report.findings = [
        dataclasses.replace(f, severity=Severity.ERROR) if f.code in escalate else f for f in report.findings
    ]
    ok = report.errors == 0
    text = render(report, "text")
    notes = sorted({f.code for f in report.findings if f.code in escalate})
    if notes:
        text += "".join(f"{code} is an error for training: {TRAINING_ERRORS[code]}.\n" for code in notes)
    if not ok and manifest_out:
        Path(manifest_out).unlink(missing_ok=True)
    written = manifest_out if ok and manifest_out and os.path.isfile(manifest_out) else None
    if written and view:  # name the real checkpoint, and the run's settings the view carried
        doc = json.loads(Path(written).read_text(encoding="utf-8"))
        doc["options"]["model_dir"] = os.path.abspath(cfg.model_name_or_path)
        doc["options"]["image_settings"] = {k: run for k, (_ckpt, run) in changed.items()}
        write_atomic(written, json.dumps(doc, indent=2) + "\n")
    return GateResult(ok, "validated", text, report=report, manifest_path=written)


def _checkpoint_view(model_dir: str, run_cfg: Any, info: Any) -> str:
    """A temporary folder that looks like ``model_dir`` with the run's image settings in its config.json."""
    src = Path(model_dir)
    view = Path(tempfile.mkdtemp(prefix="ivl-gate-view-"))
    for item in src.iterdir():
        if item.name not in ("config.json", "preprocessor_config.json"):
            os.symlink(item.resolve(), view / item.name)
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    cfg.update(
        force_image_size=run_cfg.force_image_size,
        min_dynamic_patch=run_cfg.min_dynamic_patch,
        max_dynamic_patch=run_cfg.max_dynamic_patch,
        use_thumbnail=run_cfg.use_thumbnail,
        dynamic_image_size=run_cfg.dynamic_image_size,
        downsample_ratio=run_cfg.down_sample_ratio,
        template=run_cfg.conv_style,
    )
    if info.layout == "native":  # ModelInfo reads the native image size from the vision config
        vision = cfg.setdefault("vision_config", {})
        vision["image_size"] = [run_cfg.force_image_size] * 2
        proc_path = src / "preprocessor_config.json"
        if proc_path.is_file():
            proc = json.loads(proc_path.read_text(encoding="utf-8"))
            proc.update(
                min_patches=run_cfg.min_dynamic_patch,
                max_patches=run_cfg.max_dynamic_patch,
                crop_to_patches=run_cfg.dynamic_image_size,
            )
            (view / "preprocessor_config.json").write_text(json.dumps(proc), encoding="utf-8")
    (view / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    return str(view)


def _accept_manifest(cfg: Any, run_cfg: Any, info: Any, manifest_out: str | None) -> GateResult:
    """Accept ``cfg.data_manifest`` after the content check and the options check; otherwise the reasons."""
    from internvl_data.validator import manifest

    path = cfg.data_manifest
    reasons = list(manifest.check(cfg.meta_path, path))
    doc = _read(path)
    if doc is not None:
        reasons += _option_reasons(doc.get("options") or {}, cfg, run_cfg, info)
    if reasons:
        text = "".join(f"{path}: {r}\n" for r in reasons)
        text += (
            f"The data gate refused the manifest ({len(reasons)} problem{'s' if len(reasons) != 1 else ''}); "
            "validate again, or drop data_manifest to let the trainer validate the data itself.\n"
        )
        return GateResult(False, "manifest", text, reasons=reasons)
    if manifest_out:
        os.makedirs(os.path.dirname(os.path.abspath(manifest_out)), exist_ok=True)
        if os.path.abspath(manifest_out) != os.path.abspath(path):
            shutil.copyfile(path, manifest_out)
    text = f"{path}: the data matches this manifest (content hashes, checkpoint, template, max_seq_length).\n"
    return GateResult(True, "manifest", text, manifest_path=manifest_out or path)


def _read(path: str) -> dict | None:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _option_reasons(opts: dict, cfg: Any, run_cfg: Any, info: Any) -> list[str]:
    """Why the manifest's validation options do not cover this run."""
    out = []
    rerun = (
        f"run `ivl-data validate {cfg.meta_path} --model {cfg.model_name_or_path} "
        f"--max-seq-length {cfg.max_seq_length} --media {cfg.data_media}`"
    )
    model = opts.get("model_dir")
    if not model:
        out.append(f"validated without --model: the token-budget rules (IVL4xx) were not checked; {rerun}")
    elif os.path.realpath(model) != os.path.realpath(cfg.model_name_or_path):
        out.append(f"validated for the checkpoint {model}, this run trains {cfg.model_name_or_path}; {rerun}")
    template = opts.get("template") or (info.template if model else None)
    if model and template != run_cfg.conv_style:
        out.append(f"validated with the template {template}, this run uses {run_cfg.conv_style}; {rerun}")
    if opts.get("max_seq_length") != cfg.max_seq_length:
        out.append(
            f"validated with max_seq_length {opts.get('max_seq_length')}, this run uses {cfg.max_seq_length}; {rerun}"
        )
    media = opts.get("media")
    if media not in MEDIA_DEPTH or MEDIA_DEPTH.index(media) < MEDIA_DEPTH.index(cfg.data_media):
        out.append(f"media checked with --media {media}, this run needs at least {cfg.data_media}; {rerun}")
    if opts.get("select") or opts.get("ignore"):
        out.append(f"validated with --select/--ignore, so some rules were not checked; {rerun}")
    if opts.get("allow_outside_root"):
        out.append(f"validated with --allow-outside-root; {rerun}")
    validated_with = opts.get("image_settings") or {}
    for key, (ckpt, run) in _changed_settings(run_cfg, info).items():
        if key in validated_with and validated_with[key] == run:
            continue  # written by this gate with the same setting
        out.append(
            f"this run sets {key} {run} (the checkpoint has {ckpt}), which `ivl-data validate --model` cannot "
            "check; drop data_manifest so that the trainer validates with the run's settings"
        )
    return out
