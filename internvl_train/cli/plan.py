"""`ivl-train plan CFG | --preset NAME [key=value ...]`: per-GPU memory and time of a fine-tune, before renting GPUs.

No weights are read: the shapes come from the checkpoint's config.json, or from the built-in card of the released
size its name names (so ``ivl-train plan --preset internvl2-76b-full --gpus 32`` works on a laptop). Prints a
breakdown in bytes per GPU, the verdict for ``--gpu-memory``, ranked changes when it does not fit, the smallest GPU
count when ``--gpus`` is absent, and the time per epoch when the mixture's tokens are known (``--meta`` with a
checkpoint folder). Exit 0 (fits, or no verdict asked), 1 does not fit, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

HELP = "per-GPU memory (weights, gradients, optimizer, activations) and time of a fine-tune, without any weights"

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "k": 2**10, "m": 2**20, "g": 2**30})


def parse_bytes(text: str) -> int:
    """'80GiB' -> 85899345920, '80GB' -> 80e9, '141G' -> 141 GiB; ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (write e.g. 80GiB, 80GB or 40G)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _size(text: str) -> int:
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CFG", nargs="?", help="YAML training config (keys: the official flag names)")
    parser.add_argument("overrides", metavar="key=value", nargs="*", help="overrides, as YAML scalars")
    parser.add_argument("--preset", metavar="NAME", help="start from this preset (`ivl-train presets` lists them)")
    parser.add_argument("--gpus", type=int, metavar="N", help="GPUs in the run (default: the smallest count that fits)")
    parser.add_argument(
        "--gpu-memory", type=_size, default=parse_bytes("80GiB"), metavar="SIZE", help="memory of one GPU (80GiB)"
    )
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    parser.add_argument("--meta", metavar="META", help="measure tiles and tokens from this mixture (ivl-data stats)")
    parser.add_argument(
        "--tokens-per-second-per-gpu", type=float, metavar="X", help="measured throughput for the time estimate"
    )
    parser.add_argument("--gpu-type", choices=("a100", "h100"), default="a100", help="for the FLOP-based time")
    parser.add_argument("--mfu", type=float, default=0.4, help="model FLOP utilisation of the FLOP-based time (0.4)")


def plan_args(**given: Any) -> argparse.Namespace:
    """The arguments of `ivl-train plan` with nothing on the command line (its defaults), then ``given`` set."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    vars(args).update(given)
    return args


def load(args: argparse.Namespace) -> Any:
    """The TrainConfig of CFG / --preset / overrides, with the official scripts' environment variables (GPUS,
    BATCH_SIZE, PER_DEVICE_BATCH_SIZE) as `ivl-train run` reads them; paths are not checked (nothing but
    config.json is read). Sets ``args.env_gpus`` when GPUS is in the environment."""
    import os

    import yaml

    from internvl_train import launch
    from internvl_train.plan.config import PlanError

    config, overrides = launch.split_config(args.config, args.overrides)
    if not config and not args.preset:
        raise PlanError("give a config file (CFG) or --preset NAME (`ivl-train presets` lists them)")
    given = {text.split("=", 1)[0] for text in overrides if "=" in text}
    if config and Path(config).is_file():
        try:
            given |= set(yaml.safe_load(Path(config).read_text(encoding="utf-8")) or {})
        except (yaml.YAMLError, TypeError, ValueError):
            pass  # load_config reports it with its line
    if getattr(args, "meta", None) and "meta_path" not in given:
        overrides = [*overrides, f"meta_path={args.meta}"]
        given.add("meta_path")
    for key in ("meta_path", "output_dir"):  # required by the config, not used by the plan
        if key not in given:
            overrides = [*overrides, f"{key}=(not used by plan)"]
    resolved = launch.resolve(config, overrides, preset=args.preset, check_paths=False)
    args.env_gpus = resolved.plan.world_size if "GPUS" in os.environ else None
    return resolved.config


def preset_gpus(args: argparse.Namespace) -> int | None:
    if not args.preset:
        return None
    from internvl_train.presets import preset_launch

    return preset_launch(args.preset).gpus


def build(args: argparse.Namespace, cfg: Any = None) -> dict[str, Any]:
    """Everything the command prints, as one JSON-able dict (``cfg``: an already resolved TrainConfig)."""
    from internvl_train.params import count_for_config
    from internvl_train.plan.cards import card_config, size_of_name
    from internvl_train.plan.config import model_shapes, setup_of, tiles_per_sample
    from internvl_train.plan.planner import epoch_seconds, make_plan

    _quiet_transformers()
    if cfg is None:
        cfg = load(args)
    shapes, source = model_shapes(cfg.model_name_or_path)
    mixture = measure_mixture(args.meta, cfg) if args.meta else None
    tiles = seq = None
    if mixture:
        mb = cfg.per_device_train_batch_size
        tiles = max(1, mb * mixture["tiles_p99"]) if mixture.get("tiles_p99") is not None else None
        if mixture.get("tokens_p99"):
            seq = min(cfg.max_seq_length, int(mixture["tokens_p99"]))
    gpus = args.gpus or getattr(args, "env_gpus", None)
    setup = setup_of(cfg, shapes, gpus or 1, tiles=tiles, seq_len=seq)
    plan = make_plan(shapes, setup, args.gpu_memory, gpus_given=gpus is not None)
    world = plan.setup.world
    counted = count_for_config(
        cfg, card_config(size_of_name(cfg.model_name_or_path)) if source.startswith("card") else None
    )
    out: dict[str, Any] = {
        "per_gpu_bytes": plan.per_gpu_bytes,
        "fits": plan.fits,
        "verdict": plan.verdict,
        "gpu_memory": args.gpu_memory,
        "gpus": world,
        "gpus_from": _gpus_from(args, gpus, plan.smallest_gpus),
        "breakdown": plan.breakdown,
        "suggestions": plan.suggestions,
        "model": {
            "source": source,
            "parameters": counted.total,
            "trainable": counted.trainable,
            "lora": counted.lora,
        },
        "setup": {
            "zero_stage": plan.setup.zero.stage,
            "offload": plan.setup.zero.offload_optimizer or plan.setup.zero.offload_param,
            "micro_batch": plan.setup.work.micro_batch,
            "seq_len": plan.setup.work.seq_len,
            "tiles_per_micro_batch": plan.setup.work.tiles,
            "tiles_from": "--meta p99" if tiles else f"max_dynamic_patch + thumbnail ({tiles_per_sample(cfg, shapes)})",
            "grad_checkpoint": plan.setup.work.grad_checkpoint,
        },
    }
    if script_gpus := preset_gpus(args):
        out["preset_gpus"] = script_gpus
    if mixture:
        out["mixture"] = mixture
        if mixture.get("tokens_total"):
            secs, how = epoch_seconds(
                int(mixture["tokens_total"]),
                world,
                tokens_per_second_per_gpu=args.tokens_per_second_per_gpu,
                shapes=shapes,
                setup=plan.setup,
                gpu=args.gpu_type,
                mfu=args.mfu,
            )
            out["time_per_epoch_s"] = round(secs, 1)
            out["time_basis"] = how
    return out


def _gpus_from(args: argparse.Namespace, gpus: int | None, smallest: int | None) -> str:
    if args.gpus:
        return "--gpus"
    if gpus:
        return "GPUS"
    return "smallest count that fits" if smallest else "no count up to 512 fits"


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()


def measure_mixture(meta: str, cfg: Any) -> dict[str, Any]:
    """p99 tiles and tokens per sample and the total tokens of one epoch, from `ivl-data stats`'s scan."""
    from internvl_data.cli.stats import load_datasets
    from internvl_data.stats import compute as stats
    from internvl_data.stats.types import Settings

    model_dir = cfg.model_name_or_path if (Path(cfg.model_name_or_path) / "config.json").is_file() else None
    settings = Settings(
        max_dynamic_patch=cfg.max_dynamic_patch or 12,
        use_thumbnail=True if cfg.use_thumbnail is None else cfg.use_thumbnail,
        model_dir=model_dir,
        max_seq_length=cfg.max_seq_length,
    )
    result = stats.compute(meta, load_datasets(meta), settings, jobs=1)
    row = result.rows()[-1]  # the mixture's row
    out = {
        "records": int(row["effective_records"]),
        "tiles_p99": _int(row.get("tiles_per_record_p99")),
    }
    if model_dir:
        out["tokens_p99"] = _int(row.get("total_tokens_p99"))
        out["tokens_total"] = int(row.get("tokens_total") or 0)
    else:
        out["note"] = "token counts need the checkpoint's tokenizer: give a checkpoint folder as model_name_or_path"
    return out


def _int(v: Any) -> int | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else int(round(f))


def human(n: int) -> str:
    from internvl_train.guards import human_bytes

    return human_bytes(n)


def summary_line(out: dict[str, Any]) -> str:
    """The one line `ivl-train run` prints before training."""
    s = out["setup"]
    of = f" of {human(out['gpu_memory'])} ({out['verdict']})" if out["gpu_memory"] else " (GPU memory unknown)"
    return (
        f"plan: {human(out['per_gpu_bytes'])} per GPU{of} on {out['gpus']} "
        f"GPU{'s' if out['gpus'] != 1 else ''}, ZeRO-{s['zero_stage']}, micro-batch {s['micro_batch']} x "
        f"{s['seq_len']} tokens, {s['tiles_per_micro_batch']} tiles"
    )


def table(out: dict[str, Any]) -> str:
    lines = [summary_line(out)]
    m = out["model"]
    lora = f" ({m['lora']:,} of them LoRA adapters)" if m["lora"] else ""
    lines.append(f"model: {m['source']}: {m['trainable']:,} of {m['parameters']:,} parameters train{lora}")
    if out["gpus_from"] not in ("--gpus", "GPUS"):
        lines.append(f"GPUs: {out['gpus']} ({out['gpus_from']})")
    if out.get("preset_gpus") and out["preset_gpus"] != out["gpus"]:
        lines.append(f"(the official script uses {out['preset_gpus']} GPUs: --gpus {out['preset_gpus']} plans that)")
    width = max(len(k) for k in out["breakdown"])
    lines.append("")
    lines.append(f"{'per GPU':<{width}}  {'bytes':>16}  {'':>10}")
    for key, value in out["breakdown"].items():
        lines.append(f"{key:<{width}}  {value:>16,}  {human(value):>10}")
    lines.append(f"{'total':<{width}}  {out['per_gpu_bytes']:>16,}  {human(out['per_gpu_bytes']):>10}")
    if out["suggestions"]:
        lines.append("")
        if all(sug["verdict"] == "does not fit" for sug in out["suggestions"]):
            lines.append("does not fit, and no single change makes it fit; the closest:")
        else:
            lines.append("does not fit; changes that help, cheapest first:")
        for i, sug in enumerate(out["suggestions"], 1):
            lines.append(f"  {i}. {sug['change']}: {human(sug['per_gpu_bytes'])} per GPU ({sug['verdict']})")
    if "mixture" in out:
        mix = out["mixture"]
        lines.append("")
        lines.append(
            f"mixture: {mix['records']:,} samples per epoch, p99 tiles {mix.get('tiles_p99')}, "
            f"p99 tokens {mix.get('tokens_p99', '?')}"
        )
        if "time_per_epoch_s" in out:
            hours = out["time_per_epoch_s"] / 3600
            lines.append(f"time per epoch: {hours:.2f} h on {out['gpus']} GPUs ({out['time_basis']})")
        elif mix.get("note"):
            lines.append(f"time per epoch: unknown ({mix['note']})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    out = build(args)
    if args.format == "json":
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(table(out))
    return 1 if out["fits"] is False else 0
