"""The plan of every preset at the official guide's GPU counts and per-device batches (docs/plan.md's table).

    python benchmarks/plan_presets.py [--gpu-memory 80GiB]

Each row is what `ivl-train plan --preset NAME --gpus G per_device_train_batch_size=B` prints; G and B are the
script's values and, where the guide documents an invocation that overrides them (finetune.md, docs/official-behaviour.md §6.3),
the guide's.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# preset -> (GPUs, per-device batch) documented in the guide (docs/official-behaviour.md §6.3), when they differ from the script
GUIDE = {
    "internvl2-1b-full": (8, 1),
    "internvl2-2b-full": (8, 1),
    "internvl2-4b-full": (8, 1),
    "internvl2-1b-lora": (2, 1),
    "internvl2-2b-lora": (2, 1),
    "internvl2-4b-lora": (2, 1),
    "internvl2-8b-full": (8, 2),
    "internvl2-8b-lora": (2, 2),
    "internvl2-26b-full": (8, 2),
    "internvl2-26b-lora": (2, 2),
    "internvl2-40b-full": (16, 2),
    "internvl2-76b-full": (32, 1),
    "internvl2-76b-lora": (8, 1),
}
# the guide's memory notes (docs/official-behaviour.md §6.3): GB per GPU
GUIDE_MEMORY = {
    "internvl2-1b-full": "~30",
    "internvl2-2b-full": "~30",
    "internvl2-1b-lora": "~27",
    "internvl2-2b-lora": "~27",
    "internvl2-4b-full": "~40",
    "internvl2-4b-lora": "~19",
    "internvl2-8b-full": "~77",
    "internvl2-26b-full": "~77",
    "internvl2-8b-lora": "~79",
    "internvl2-26b-lora": "~79",
}


def main(argv: list[str] | None = None) -> int:
    from internvl_train.cli.plan import build, human, parse_bytes, plan_args
    from internvl_train.presets import preset_launch, preset_names, preset_values

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu-memory", default="80GiB")
    args = ap.parse_args(argv)
    mem = parse_bytes(args.gpu_memory)
    print("| preset | source | GPUs | per-device | ZeRO | tiles | per GPU | verdict (80 GiB) | guide's note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in preset_names():
        launch, values = preset_launch(name), preset_values(name)
        runs = [("script", launch.gpus, values.get("per_device_train_batch_size", 1))]
        if name in GUIDE and GUIDE[name] != (launch.gpus, runs[0][2]):
            runs.append(("guide", *GUIDE[name]))
        for source, gpus, batch in runs:
            out = build(
                plan_args(preset=name, overrides=[f"per_device_train_batch_size={batch}"], gpus=gpus, gpu_memory=mem)
            )
            s = out["setup"]
            print(
                f"| {name} | {source} | {gpus} | {batch} | {s['zero_stage']} | {s['tiles_per_micro_batch']} | "
                f"{human(out['per_gpu_bytes'])} | {out['verdict']} | {GUIDE_MEMORY.get(name, '') if source == 'guide' else ''} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
