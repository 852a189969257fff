"""`ivl-data validate --model DIR` against `ivl-data stats --model DIR` on the same records (issue 14 item 9).

Generates (or reuses) ``OUT/lines_N.jsonl`` with ../shared/bench/make_dataset.py (``--lines N``; run
``make_dataset.py OUT --records 2000`` once too so that the images exist and sizes come from real headers), a
checkpoint folder with the tiny qwen2-style byte-level BPE tokenizer of ``tests/helpers`` and template
``Hermes-2``, then runs, alternating, ``ROUNDS`` times each (all cores, no cache, no progress bar):

- ``ivl-data stats META --model DIR --format json --no-cache``
- ``ivl-data validate META --model DIR --media off --no-manifest --select IVL4 --max-per-rule 0 --format json``

and prints wall and CPU seconds (the process tree's, from ``RUSAGE_CHILDREN``), the ratio validate/stats per
round, and whether both give the same figures: stats' ``over_length`` must equal the IVL401 + IVL402 + IVL405 +
IVL406 findings (an over-long record is reported once: IVL402 when the cut removes image tokens, IVL405/IVL406
for a video, else IVL401), ``truncated_image`` the IVL402 ones, ``video_cannot_fit`` IVL405, ``zero_supervised``
IVL403 and ``official_mismatch`` IVL404.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from validate_throughput import DEFAULT_MAKER, run_measured  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    ap.add_argument("--make-dataset", default=DEFAULT_MAKER)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data, meta = out / f"lines_{a.lines}.jsonl", out / f"meta_lines_{a.lines}.json"
    if not (data.is_file() and meta.is_file()):
        subprocess.run([sys.executable, a.make_dataset, str(out), "--lines", str(a.lines)], check=True)
    if not (out / "images").is_dir():
        subprocess.run([sys.executable, a.make_dataset, str(out), "--records", "2000"], check=True)
    from tests.helpers.tokenizers import write_model_dir

    model = out / "tiny-model-qwen2-hermes2"
    if not (model / "config.json").is_file():
        write_model_dir(model, "Hermes-2", "qwen2")
    ivl = shutil.which("ivl-data") or str(Path(sys.executable).parent / "ivl-data")
    common = ["--model", str(model), "--no-progress"]
    stats_json, validate_json = out / "stats-model.json", out / "validate-model.json"
    stats_cmd = [ivl, "stats", str(meta), *common, "--format", "json", "-o", str(stats_json), "--no-cache"]
    validate_cmd = [ivl, "validate", str(meta), *common, "--media", "off", "--no-manifest", "--isolated"]
    validate_cmd += ["--select", "IVL4", "--max-per-rule", "0", "--format", "json", "-o", str(validate_json)]
    print(f"{a.lines:,} records, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start\n")
    print(
        "| round | stats --model s | validate --model s | ratio (wall) | stats CPU s | validate CPU s | ratio (CPU) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k in range(a.rounds):
        s = run_measured(stats_cmd)
        v = run_measured(validate_cmd)
        print(
            f"| {k + 1} | {s[0]:.1f} | {v[0]:.1f} | {v[0] / s[0]:.2f}x | {s[1]:.1f} | {v[1]:.1f} | {v[1] / s[1]:.2f}x |"
        )
    st = json.loads(stats_json.read_text())["summary"][0]
    found = json.loads(validate_json.read_text())["summary"]["suppressed"]
    n = {code: found.get(code, 0) for code in ("IVL401", "IVL402", "IVL403", "IVL404", "IVL405", "IVL406")}
    videos = n["IVL405"] + n["IVL406"]
    pairs = [
        ("over_length", st["over_length"], n["IVL401"] + n["IVL402"] + videos),
        ("truncated_image", st["truncated_image"], n["IVL402"]),
        ("video_cannot_fit", st.get("video_cannot_fit", 0), n["IVL405"]),
        ("zero_supervised", st["zero_supervised"], n["IVL403"]),
        ("official_mismatch", st["official_mismatch"], n["IVL404"]),
    ]
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end; same figures:")
    for name, a_, b_ in pairs:
        print(f"- stats {name} {a_:,} vs validate {b_:,}: {'same' if a_ == b_ else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
