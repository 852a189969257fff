"""`TrainConfig`: every setting of `ivl-train run`, under the official flag names and the HF TrainingArguments names.

Loaded by :func:`load_config` from three layers, later ones winning: a base dict (a preset's values), a YAML file,
then ``key=value`` overrides from the command line (values parsed as YAML scalars, so ``freeze_llm=false`` is a
bool and ``learning_rate=1e-5`` a float). The model is closed: an unknown or misspelt key is an error with a
suggestion, and every problem of every layer is reported at once in one :class:`ConfigError` whose message has
one ``FILE:LINE: key: problem`` line per problem.

Defaults are the values shared by all 15 official InternVL2 2nd-finetune scripts (docs/official-behaviour.md §6.2); where the
scripts differ (learning rate, weight decay, per-device batch), the 1B/2B/4B full fine-tune value. Settings that
the checkpoint decides (``conv_style``, the image settings) default to ``None`` = "what the checkpoint's
config.json says"; :meth:`TrainConfig.with_checkpoint` fills them in.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from internvl_train.errors import IvlTrainError

__all__ = ["DEEPSPEED_NAMES", "ConfigError", "TrainConfig", "load_config", "parse_override"]

DEEPSPEED_NAMES = ("zero1", "zero2", "zero3", "zero3-offload")
DEEPSPEED_PRESET_NAMES = ("zero3-34b", "zero3-100b")  # zero3 with the 40B / 76B scripts' persistence thresholds
TEMPLATES = ("Hermes-2", "internlm2-chat", "phi3-chat", "internvl2_5")
# transformers' SchedulerType values (a test keeps them equal; importing transformers here would cost seconds)
SCHEDULERS = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
    "greedy",
)
REQUIRED = ("model_name_or_path", "meta_path", "output_dir")

# Names users bring from other tools -> ours (checked before the spelling suggestion).
ALIASES = {
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "num_epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "micro_batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "gradient_accumulation": "gradient_accumulation_steps",
    "template": "conv_style",
    "model": "model_name_or_path",
    "model_path": "model_name_or_path",
    "meta": "meta_path",
    "data": "meta_path",
    "output": "output_dir",
    "downsample_ratio": "down_sample_ratio",
    "gradient_checkpointing": "grad_checkpoint",
    "lora_r": "use_llm_lora",
    "lora_rank": "use_llm_lora",
    "warmup_steps": "warmup_ratio",
    "num_workers": "dataloader_num_workers",
}


class ConfigError(IvlTrainError, ValueError):
    """Every problem of a configuration; ``problems`` holds one ``WHERE: key: problem`` string each."""

    exit_code = 2

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the training configuration:"
        super().__init__("\n".join([head, *("  " + p for p in self.problems)]))


class TrainConfig(BaseModel):
    """One training run. Field names are the official script flags and the HF ``TrainingArguments`` names."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # -- paths (relative paths are relative to the current directory, as in the official scripts and HF)
    model_name_or_path: str = Field(description="checkpoint folder (original InternVL2 or native layout)")
    meta_path: str = Field(description="meta JSON file of the training mixture")
    output_dir: str = Field(description="where checkpoints, logs and the final model go")
    overwrite_output_dir: bool = False

    # -- data (None: the checkpoint's config.json decides)
    conv_style: str | None = None
    max_seq_length: int = Field(4096, ge=1)
    force_image_size: int | None = Field(None, ge=1)
    min_dynamic_patch: int | None = Field(None, ge=1)
    max_dynamic_patch: int | None = Field(None, ge=1)
    use_thumbnail: bool | None = None
    dynamic_image_size: bool | None = None
    down_sample_ratio: float | None = Field(None, gt=0, le=1)
    min_num_frame: int = Field(8, ge=1)
    max_num_frame: int = Field(32, ge=1)
    max_skip_ratio: float = Field(0.001, ge=0, le=1)
    # the data gate: media check depth of the in-process validation, or a manifest of `ivl-data validate` to accept
    data_media: Literal["off", "exists", "header", "decode"] = "header"
    data_manifest: str | None = None

    # -- model: freezing and LoRA (use_*_lora are ranks as in the official scripts; 0 = off)
    freeze_llm: bool = False
    freeze_mlp: bool = False
    freeze_backbone: bool = True
    unfreeze_vit_layers: int = 0
    unfreeze_lm_head: bool = False
    use_llm_lora: int = Field(0, ge=0)
    use_backbone_lora: int = Field(0, ge=0)
    lora_alpha: int | None = Field(None, ge=1, description="None: 2 x the rank of each wrapped part")
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target: Literal["official", "all-linear"] = "official"
    merge_lora: bool = False
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    grad_checkpoint: bool = True
    trust_remote_code: bool = False

    # -- optimisation (HF TrainingArguments names)
    group_by_length: bool = True
    learning_rate: float = Field(4e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, ge=-1)
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    lr_scheduler_type: str = "cosine"
    per_device_train_batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    max_grad_norm: float = Field(1.0, ge=0)
    bf16: bool = True
    deepspeed: str | None = None
    save_steps: int = Field(200, ge=1)
    save_total_limit: int | None = Field(1, ge=1)
    logging_steps: int = Field(1, ge=1)
    report_to: list[str] = Field(default_factory=lambda: ["none"])
    seed: int = 42
    dataloader_num_workers: int = Field(4, ge=0)

    @field_validator("conv_style")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is not None and v not in TEMPLATES:
            raise ValueError(f"unknown template {v!r}; use one of {', '.join(TEMPLATES)}")
        return v

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("lr_scheduler_type")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        if v not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {v!r}{_suggest(v, SCHEDULERS)}; use one of {', '.join(SCHEDULERS)}")
        return v

    @field_validator("deepspeed")
    @classmethod
    def _deepspeed(cls, v: str | None) -> str | None:
        if v is None or v in DEEPSPEED_NAMES or v in DEEPSPEED_PRESET_NAMES or v.endswith(".json"):
            return v
        raise ValueError(
            f"{v!r} is neither a DeepSpeed JSON file nor one of the shipped configs "
            f"({', '.join(DEEPSPEED_NAMES)}){_suggest(v, DEEPSPEED_NAMES)}"
        )

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> TrainConfig:
        if info.context and info.context.get("defer"):
            return self  # load_config reports these itself, with their lines
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(f"{k}: {m}" for k, m in problems))
        return self

    def problems(self) -> list[tuple[str, str]]:
        """Problems between fields, as ``(key, message)`` pairs (the key that is reported)."""
        out = []
        if (
            self.min_dynamic_patch is not None
            and self.max_dynamic_patch is not None
            and self.min_dynamic_patch > self.max_dynamic_patch
        ):
            out.append(
                ("max_dynamic_patch", f"{self.max_dynamic_patch} is below min_dynamic_patch {self.min_dynamic_patch}")
            )
        if self.min_num_frame > self.max_num_frame:
            out.append(("max_num_frame", f"{self.max_num_frame} is below min_num_frame {self.min_num_frame}"))
        if self.merge_lora and not (self.use_llm_lora or self.use_backbone_lora):
            out.append(("merge_lora", "true but no LoRA is trained; set use_llm_lora (or use_backbone_lora) to a rank"))
        if self.lora_alpha is not None and not (self.use_llm_lora or self.use_backbone_lora):
            out.append(("lora_alpha", "set but no LoRA is trained; set use_llm_lora (or use_backbone_lora) to a rank"))
        if self.lora_target != "official" and not self.use_llm_lora:
            out.append(("lora_target", f"{self.lora_target!r} applies to the LLM LoRA; set use_llm_lora to a rank"))
        if "none" in self.report_to and len(self.report_to) > 1:
            out.append(("report_to", "'none' cannot be combined with other integrations"))
        return out

    # -- derived values -----------------------------------------------------------------------------------------

    @property
    def llm_lora_alpha(self) -> int:
        """The LLM LoRA alpha: ``lora_alpha``, else 2 x ``use_llm_lora`` (the official scripts); 0 without LoRA."""
        return self.lora_alpha if self.lora_alpha is not None and self.use_llm_lora else 2 * self.use_llm_lora

    @property
    def backbone_lora_alpha(self) -> int:
        """The ViT LoRA alpha: ``lora_alpha``, else 2 x ``use_backbone_lora``; 0 without LoRA."""
        if self.lora_alpha is not None and self.use_backbone_lora:
            return self.lora_alpha
        return 2 * self.use_backbone_lora

    def global_batch(self, world_size: int = 1) -> int:
        """Samples per optimizer step: per-device batch x accumulation x processes."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * world_size

    def with_checkpoint(self, info: Any) -> TrainConfig:
        """A copy whose checkpoint-decided settings (``None``) are filled from a ``ModelInfo``."""
        fill = {
            "conv_style": info.template,
            "force_image_size": info.tile_size,
            "min_dynamic_patch": info.min_dynamic_patch,
            "max_dynamic_patch": info.max_dynamic_patch,
            "use_thumbnail": info.use_thumbnail,
            "dynamic_image_size": info.dynamic_image_size,
            "down_sample_ratio": info.downsample_ratio,
        }
        return self.model_copy(update={k: v for k, v in fill.items() if getattr(self, k) is None})

    def resolved_dict(self) -> dict[str, Any]:
        """Every key with its value, JSON/YAML-safe, in field order (written to ``output_dir/config.yaml``)."""
        return self.model_dump(mode="json")


# -- loading ------------------------------------------------------------------------------------------------------


class _Source:
    """One layer of values and where each key came from (for messages)."""

    def __init__(self, values: dict[str, Any], where: dict[str, str], default_where: str):
        self.values, self.where, self.default_where = values, where, default_where

    def at(self, key: str) -> str:
        return self.where.get(key, self.default_where)


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)`` with the value parsed as a YAML scalar (``1e-5`` is a float)."""
    import yaml

    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"{text!r} is not key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _read_yaml(path: str) -> tuple[_Source | None, list[str]]:
    """The top-level mapping of a YAML file with each key's line, or the problems that prevent reading it."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None, [f"{path}: file not found"]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"{mark.line + 1}" if mark is not None else "1"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return None, [f"{path}:{line}: invalid YAML ({problem})"]
    if root is None:
        return _Source({}, {}, f"{path}:1"), []
    if not isinstance(root, yaml.MappingNode):
        return None, [f"{path}:{root.start_mark.line + 1}: expected `key: value` lines at the top level"]
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    problems = []
    loader = yaml.SafeLoader("")
    for key_node, value_node in root.value:
        line = key_node.start_mark.line + 1
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if not isinstance(key, str) or not key:
            problems.append(f"{path}:{line}: keys must be names")
            continue
        if key in values:
            problems.append(f"{path}:{line}: {key}: given twice (first on line {where[key].rsplit(':', 1)[1]})")
            continue
        try:
            value = loader.construct_object(value_node, deep=True)
        except yaml.YAMLError as exc:
            problems.append(f"{path}:{line}: {key}: {getattr(exc, 'problem', None) or exc}")
            continue
        values[key] = value  # YAML 1.1 reads 1e-5 as a string: float fields accept it (pydantic lax mode)
        where[key] = f"{path}:{line}"
    return _Source(values, where, f"{path}:1"), problems


def load_config(
    path: str | os.PathLike | None,
    overrides: Sequence[str] = (),
    *,
    base: dict[str, Any] | None = None,
    check_paths: bool = True,
) -> TrainConfig:
    """``base`` < the YAML file at ``path`` < ``key=value`` overrides -> a :class:`TrainConfig`.

    With ``check_paths`` the checkpoint folder (its config.json), the meta file and a DeepSpeed JSON file must
    exist. Raises :class:`ConfigError` listing every problem found, each with the file and line it came from.
    """
    layers: list[_Source] = []
    problems: list[str] = []
    if base:
        layers.append(_Source(dict(base), {}, "preset"))
    if path is not None:
        src, errs = _read_yaml(os.fspath(path))
        if src is None:  # nothing else can be judged without the file
            raise ConfigError(errs)
        problems += errs
        layers.append(src)
        preset = src.values.pop("preset", None)  # `preset: NAME`: that preset's values under the file's
        if preset is not None and not base:  # (a caller's base, internvl_train.launch.resolve's, already has them)
            layers.insert(0, _preset_layer(preset, src.at("preset"), problems))
    cli_values: dict[str, Any] = {}
    cli_where: dict[str, str] = {}
    for n, text in enumerate(overrides, 1):
        try:
            key, value = parse_override(text)
        except ValueError as exc:
            problems.append(f"command line: argument {n}: {exc} (write key=value, e.g. learning_rate=1e-5)")
            continue
        cli_values[key] = value
        cli_where[key] = f"command line ({text})"
    if overrides:
        layers.append(_Source(cli_values, cli_where, "command line"))

    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    fields = list(TrainConfig.model_fields)
    for layer in layers:
        for key, value in layer.values.items():
            if key not in TrainConfig.model_fields:
                problems.append(f"{layer.at(key)}: {key}: unknown key{_suggest(key, fields)}")
                continue
            merged[key] = value
            origin[key] = layer.at(key)
    missing = [k for k in REQUIRED if k not in merged]
    default_where = layers[-1].default_where if layers else "configuration"
    for key in missing:
        problems.append(
            f"{os.fspath(path) + ':1' if path is not None else 'configuration'}: {key}: required (the {_WHAT[key]})"
        )

    cfg = None
    try:
        cfg = TrainConfig.model_validate(
            {**{k: "" for k in missing}, **merged}, context={"defer": True}
        )  # placeholders for the missing keys: their other problems still show
    except ValidationError as exc:
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else ""
            if key in missing:
                continue
            problems.append(f"{origin.get(key, default_where)}: {key}: {_message(err)}")
    if cfg is not None:
        for key, msg in cfg.problems():
            problems.append(f"{origin.get(key, default_where)}: {key}: {msg}")
    if check_paths:
        problems += _path_problems(merged, origin)
    if problems:
        raise ConfigError(sorted(problems, key=functools.partial(_order, os.fspath(path) if path else None)))
    assert cfg is not None
    return cfg


def _preset_layer(name: Any, where: str, problems: list[str]) -> _Source:
    """The values of the preset a YAML file names with ``preset: NAME`` (internvl_train.presets)."""
    from internvl_train.presets import PresetError, preset_values

    try:
        return _Source(preset_values(str(name)), {}, f"preset {name}")
    except PresetError as exc:
        problems.append(f"{where}: preset: {exc}")
        return _Source({}, {}, "preset")


def _order(path: str | None, problem: str) -> tuple[int, int]:
    """Preset problems first, then the file's by line, then the command line's (stable within each)."""
    if problem.startswith("preset"):
        return 0, 0
    if path is not None and problem.startswith(path + ":"):
        line = problem[len(path) + 1 :].split(":", 1)[0]
        return 1, int(line) if line.isdigit() else 0
    return 2, 0


_WHAT = {
    "model_name_or_path": "checkpoint folder to fine-tune",
    "meta_path": "meta JSON file of the training data",
    "output_dir": "folder for checkpoints and the final model",
}


def _path_problems(merged: dict[str, Any], origin: dict[str, str]) -> list[str]:
    """Paths that must exist before anything runs (checked on the given values, valid or not otherwise)."""
    out = []

    def text(key: str) -> str | None:
        value = merged.get(key)
        return value if isinstance(value, str) and value else None

    if (p := text("model_name_or_path")) is not None:
        if not os.path.isdir(p):
            out.append(f"{origin['model_name_or_path']}: model_name_or_path: {p} is not a folder")
        elif not os.path.isfile(os.path.join(p, "config.json")):
            out.append(f"{origin['model_name_or_path']}: model_name_or_path: {p} has no config.json (not a checkpoint)")
    if (p := text("meta_path")) is not None and not os.path.isfile(p):
        out.append(f"{origin['meta_path']}: meta_path: {p} not found")
    if (p := text("data_manifest")) is not None and not os.path.isfile(p):
        out.append(f"{origin['data_manifest']}: data_manifest: {p} not found (write it with `ivl-data validate`)")
    if (p := text("output_dir")) is not None and os.path.exists(p) and not os.path.isdir(p):
        out.append(f"{origin['output_dir']}: output_dir: {p} exists and is not a folder")
    p = text("deepspeed")
    if p is not None and p.endswith(".json") and not os.path.isfile(p):
        out.append(f"{origin['deepspeed']}: deepspeed: {p} not found (or use one of {', '.join(DEEPSPEED_NAMES)})")
    return out


def _suggest(key: str, names: Sequence[str]) -> str:
    if key in ALIASES and ALIASES[key] in names:
        return f" (did you mean '{ALIASES[key]}'?)"
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _message(err: Any) -> str:
    """A pydantic error as a short phrase with the value that was given."""
    kind, msg = err.get("type", ""), err.get("msg", "")
    value = err.get("input")
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"expected a whole number, got {value!r}"
    if kind in ("bool_parsing", "bool_type"):
        return f"expected true or false, got {value!r}"
    if kind in ("float_parsing", "float_type"):
        return f"expected a number, got {value!r}"
    if kind == "string_type":
        return f"expected a string, got {value!r}"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"expected {expected}, got {value!r}"
    return f"{msg[0].lower() + msg[1:] if msg else kind}, got {value!r}"
