"""`ivl-train presets`: the official InternVL2 fine-tune scripts shipped as presets, one line each."""

from __future__ import annotations

import argparse
import sys

HELP = "list the presets (the official InternVL2 2nd fine-tune scripts): size, GPUs, batch, ZeRO stage"

COLUMNS = ("preset", "size", "launcher", "GPUs", "batch", "per-device", "accum", "zero", "lr", "lora")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="print this preset's resolved values as YAML instead")


def zero_stage(deepspeed: object) -> str:
    """'zero3-34b' -> '3 (34b)'; a path or nothing -> the value as given or '-'."""
    if not deepspeed:
        return "-"
    text = str(deepspeed)
    if text.startswith("zero") and text[4:5].isdigit():
        rest = text[5:].lstrip("-_")
        return text[4] + (f" ({rest})" if rest else "")
    return text


def rows() -> list[tuple[str, ...]]:
    from internvl_train.presets import preset_launch, preset_names, preset_values

    out: list[tuple[str, ...]] = []
    for name in preset_names():
        values, launch = preset_values(name), preset_launch(name)
        out.append(
            (
                name,
                launch.size,
                launch.launcher,
                str(launch.gpus),
                str(launch.batch_size),
                str(values.get("per_device_train_batch_size", "-")),
                str(values.get("gradient_accumulation_steps", "-")),
                zero_stage(values.get("deepspeed")),
                f"{values.get('learning_rate', '-'):g}",
                str(values.get("use_llm_lora") or "-"),
            )
        )
    return out


def run(args: argparse.Namespace) -> int:
    from internvl_train.presets import preset_launch, preset_values

    if args.name:
        import yaml

        launch = preset_launch(args.name)  # an unknown name: PresetError, exit 2 with its one line
        values = preset_values(args.name)
        print(f"# {args.name}: {launch.script} ({launch.launcher}, GPUS={launch.gpus}, BATCH_SIZE={launch.batch_size})")
        sys.stdout.write(yaml.safe_dump(values, sort_keys=False))
        return 0
    table = [COLUMNS, *rows()]
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    for r in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    print("\nbatch = BATCH_SIZE (global); accum = BATCH_SIZE / per-device / GPUs, recomputed from GPUS,")
    print("BATCH_SIZE and PER_DEVICE_BATCH_SIZE when set. `ivl-train presets NAME` prints every value.")
    return 0
