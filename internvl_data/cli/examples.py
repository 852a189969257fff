"""The examples at the end of every ``--help`` of ``ivl-data`` and ``ivl-train`` (one table, kept in one place).

:func:`decorate` gives a sub-parser its one-line description (the command's ``HELP``) and an "examples:" epilog;
a test checks that every command of both tools has two or three examples that start with the command's name.
"""

from __future__ import annotations

import argparse

EXAMPLES: dict[str, dict[str, list[str]]] = {
    "ivl-data": {
        "validate": [
            "ivl-data validate data/meta.json                      # every rule, media headers included",
            "ivl-data validate data/meta.json --model ckpt/InternVL2-2B --max-seq-length 4096   # token budgets",
            "cat meta.json | ivl-data validate - --format json     # the meta file from standard input",
        ],
        "rules": [
            "ivl-data rules                                         # the catalogue: code, name, severity",
            "ivl-data rules --format json | jq '.[].code'",
        ],
        "explain": [
            "ivl-data explain IVL214                                # why, an example and the fix",
            "ivl-data explain image-placeholder-missing",
        ],
        "schema": [
            "ivl-data schema --which record > record.schema.json   # for editors and other tools",
            "ivl-data schema --check                                # exit 1 when schemas/ is stale",
        ],
        "render": [
            "ivl-data render data/meta.json --model ckpt/InternVL2-1B              # the first sample",
            "ivl-data render data/meta.json --model ckpt/InternVL2-1B --dataset chat --index 3",
            "ivl-data render data/meta.json --model ckpt/InternVL2-1B --limit 0 --format jsonl > inputs.jsonl",
        ],
        "stats": [
            "ivl-data stats data/meta.json                          # records, images, tiles per dataset",
            "ivl-data stats data/meta.json --model ckpt/InternVL2-2B --global-batch-size 128   # tokens, steps",
            "ivl-data stats data/meta.json --format csv -o stats.csv --html report.html",
        ],
        "lengths": [
            "ivl-data lengths data/meta.json --model ckpt/InternVL2-2B --in-place   # keeps .bak copies",
            "ivl-data lengths data/meta.json --model ckpt/InternVL2-2B --output-dir data/with-lengths",
        ],
        "pre-commit": [
            "ivl-data pre-commit data/train.jsonl                   # every meta file that lists it",
            "ivl-data pre-commit $(git diff --name-only main)       # everything a branch touches",
            "ivl-data pre-commit --loose scratch/new.jsonl          # JSONL files no meta file lists",
        ],
        "import": [
            "ivl-data import --from sharegpt data/mllm_demo.json converted/        # LLaMA-Factory",
            "ivl-data import --from openai-messages train.jsonl out/ --template internvl2_5   # ms-swift",
            "ivl-data import --from llava llava_v1_5_mix665k.json out/ --media-root /data/llava/images",
        ],
    },
    "ivl-train": {
        "check": [
            "ivl-train check train.yaml                             # resolved values, batch, steps, parameters",
            "ivl-train check --preset internvl2-2b-lora meta_path=data/meta.json --no-data",
        ],
        "convert": [
            "ivl-train convert ckpt/InternVL2-2B ckpt/InternVL2-2B-hf --to hf",
            "ivl-train convert out/final ckpt/mine --to original --base ckpt/InternVL2-2B   # remote code too",
            "ivl-train convert ckpt/InternVL2-8B ckpt/8b-bf16 --to original --dtype bfloat16 --max-shard-size 2",
        ],
        "presets": [
            "ivl-train presets                                      # the official fine-tune scripts as presets",
            "ivl-train presets internvl2-2b-lora                    # one preset's values",
        ],
        "run": [
            "ivl-train run train.yaml",
            "ivl-train run --preset internvl2-1b-lora meta_path=data/meta.json output_dir=work_dirs/1b",
            "ivl-train run train.yaml --resume                      # from the last complete checkpoint",
        ],
        "plan": [
            "ivl-train plan --preset internvl2-8b-lora                # memory per GPU and time, no weights",
            "ivl-train plan train.yaml --gpus 8 --gpu-memory 80GiB --meta data/meta.json",
            "ivl-train plan --preset internvl2-26b-full --format json",
        ],
        "merge-lora": [
            "ivl-train merge-lora work_dirs/1b/adapter ckpt/mine-merged",
            "ivl-train merge-lora work_dirs/1b/adapter ckpt/mine-merged --base ckpt/InternVL2-1B",
        ],
    },
}


def decorate(parser: argparse.ArgumentParser, tool: str, name: str, help_text: str) -> None:
    """One-line description and the examples of ``tool name`` (when there are any) on its sub-parser."""
    parser.description = parser.description or (help_text[:1].upper() + help_text[1:] if help_text else None)
    examples = EXAMPLES.get(tool, {}).get(name)
    if examples:
        parser.epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
