"""`ivl-train merge-lora ADAPTER_DIR OUT`: base checkpoint + LoRA adapter -> one model in the original layout."""

from __future__ import annotations

import argparse

HELP = "merge a LoRA adapter (the adapter/ folder of a run) into its base model, written in the original layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("adapter", metavar="ADAPTER_DIR", help="peft adapter folder (adapter_config.json)")
    parser.add_argument("out", metavar="OUT", help="output folder for the merged model (written atomically)")
    parser.add_argument(
        "--base", metavar="DIR", help="base checkpoint (default: base_model_name_or_path of adapter_config.json)"
    )


def run(args: argparse.Namespace) -> int:
    from internvl_train.recipe.output import merge_adapter

    out = merge_adapter(args.adapter, args.out, base=args.base)
    print(f"merged model (original layout): {out}")
    return 0
