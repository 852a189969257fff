"""Throughput of `ivl-data stats`, in one run, against its two baselines.

    python benchmarks/stats_throughput.py [--lines 1000000] [--model-records 100000] [--loop-records 10000]
                                          [--out bench-out] [--jobs 0]

1. Without a model: ``ivl-data stats`` on ``OUT/lines_N.jsonl`` (../shared/bench/make_dataset.py --lines N) vs
   ``ivl-data validate --media off`` on the same file. Floor: stats at least half of validate's records/s.
2. With a tiny tokenizer (the qwen2-style byte-level BPE of tests/helpers, template Hermes-2): ``ivl-data stats
   --model`` on the first --model-records lines vs a single-process loop that builds each record's official
   string (the same header sizes and tiling, the template, every image expanded to its <IMG_CONTEXT> run) and
   tokenizes it with the same tokenizer, one record at a time (``tokenizer(text)``), on the first
   --loop-records lines. Floor: stats at least 5x the loop's records/s.
Both ivl-data runs are subprocesses measured with benchmarks/validate_throughput.py's process-tree sampler.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from validate_throughput import DEFAULT_MAKER, run_measured  # noqa: E402


def dataset(out: Path, lines: int, maker: str) -> tuple[Path, Path]:
    data, meta = out / f"lines_{lines}.jsonl", out / f"meta_lines_{lines}.json"
    if not (data.is_file() and meta.is_file()):
        subprocess.run([sys.executable, maker, str(out), "--lines", str(lines)], check=True)
    return data, meta


def head(data: Path, meta: Path, n: int) -> Path:
    """A meta file over the first ``n`` lines of ``data`` (the generator's stream is sequential)."""
    part = data.with_name(f"head_{n}.jsonl")
    if not part.is_file():
        with open(data, "rb") as src, open(part, "wb") as dst:
            for _ in range(n):
                dst.write(src.readline())
    doc = json.loads(meta.read_text())
    name, entry = next(iter(doc.items()))
    out = data.with_name(f"meta_head_{n}.json")
    out.write_text(json.dumps({name: {**entry, "annotation": str(part.resolve()), "length": n}}))
    return out


def loop_baseline(meta: Path, model: Path, n: int) -> tuple[float, float]:
    """(records/s, records per CPU second) of the one-record-at-a-time loop (see the module docstring)."""
    import orjson

    from internvl_data.cli.stats import load_datasets
    from internvl_data.media.sizes import MediaSizes
    from internvl_data.pipeline.modelinfo import ModelInfo
    from internvl_data.pipeline.sample import prepare_conversations
    from internvl_data.pipeline.templates import (
        conversation_turns,
        expanded_text,
        get_template,
        place_images,
        render_segments,
    )
    from internvl_data.pipeline.tokenizer import load_tokenizer
    from internvl_data.stats.hist import Tally
    from internvl_data.stats.tokens import model_settings
    from internvl_data.stats.worker import Settings, scan_record

    ds = load_datasets(str(meta))[0][0]
    info = ModelInfo.from_dir(model)
    settings = model_settings(str(model), Settings(num_frames=32))
    tok, t = load_tokenizer(model), get_template(settings.template)
    sizes, tally = MediaSizes({}, record_new=False), Tally()
    done = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with open(ds.annotation, "rb") as fh:
        for _ in range(n):
            rec = scan_record(orjson.loads(fh.readline()), ds, settings, sizes, tally)
            if rec is None:
                continue
            try:
                convs = prepare_conversations(rec.obj, rec.kind, len(rec.tiles) if rec.kind == "video" else 0)[0]
                system, turns = conversation_turns(t, convs)
            except ValueError:
                continue
            runs = [info.tokens_per_tile * k for k in rec.tiles]
            segs, placed = place_images(t, render_segments(t, turns, system), len(runs) if rec.kind != "text" else 0)
            tok(expanded_text(segs, runs[:placed]))
            done += 1
    return done / (time.perf_counter() - t0), done / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--model-records", type=int, default=100_000)
    ap.add_argument("--loop-records", type=int, default=10_000)
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    ap.add_argument("--make-dataset", default=DEFAULT_MAKER)
    ap.add_argument("--jobs", type=int, default=0, help="ivl-data --jobs (default all cores)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data, meta = dataset(out, a.lines, a.make_dataset)
    from tests.helpers.tokenizers import write_model_dir

    model = write_model_dir(out / "tiny-model-qwen2-hermes2", "Hermes-2", "qwen2")
    ivl = shutil.which("ivl-data") or str(Path(sys.executable).parent / "ivl-data")
    jobs = ["--jobs", str(a.jobs), "--no-progress"]
    stats_cmd = [ivl, "stats", str(meta), "--format", "json", "-o", str(out / "stats.json"), "--no-cache", *jobs]
    validate_cmd = [ivl, "validate", str(meta), "--media", "off", "--no-manifest", "--max-per-rule", "100", *jobs]
    small = head(data, meta, a.model_records)
    model_cmd = [
        ivl,
        "stats",
        str(small),
        "--model",
        str(model),
        "--format",
        "json",
        "-o",
        str(out / "stats-model.json"),
        "--no-cache",
        *jobs,
    ]
    runs = [
        ("ivl-data stats (no model)", a.lines, run_measured(stats_cmd)),
        ("ivl-data validate --media off", a.lines, run_measured(validate_cmd)),
        ("ivl-data stats --model (tiny tokenizer)", a.model_records, run_measured(model_cmd)),
    ]
    loop, loop_cpu = loop_baseline(small, model, a.loop_records)
    rate = {name: n / m[0] for name, n, m in runs}
    print(
        f"{a.lines:,} lines ({data.stat().st_size / 1e6:.0f} MB), {os.cpu_count()} cores, jobs "
        f"{a.jobs or os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end\n"
    )
    cpu_rate = {name: n / m[1] for name, n, m in runs}
    print("| run | records | seconds | records/s | CPU s | records per CPU s | peak RSS MB (tree) | peak PSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, (sec, cpu, rss, pss) in runs:
        print(f"| {name} | {n:,} | {sec:.1f} | {n / sec:,.0f} | {cpu:.1f} | {n / cpu:,.0f} | {rss:.0f} | {pss:.0f} |")
    print(
        f"| one-record-at-a-time loop (tokenizer(text), 1 process) | {a.loop_records:,} | "
        f"{a.loop_records / loop:.1f} | {loop:,.0f} | {a.loop_records / loop_cpu:.1f} | {loop_cpu:,.0f} | | |"
    )
    pairs = (
        (
            "stats / validate --media off",
            "ivl-data stats (no model)",
            rate["ivl-data validate --media off"],
            cpu_rate["ivl-data validate --media off"],
            0.5,
        ),
        ("stats --model / loop", "ivl-data stats --model (tiny tokenizer)", loop, loop_cpu, 5.0),
    )
    print()
    for label, name, base, base_cpu, floor in pairs:
        r, rc = rate[name] / base, cpu_rate[name] / base_cpu
        print(
            f"{label}: {r:.2f}x by wall time (floor {floor}x: {'PASS' if r >= floor else 'FAIL'}), "
            f"{rc:.2f}x by CPU time"
        )


if __name__ == "__main__":
    main()
