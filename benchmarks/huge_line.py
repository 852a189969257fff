"""One huge record (issue 13 item 3): `validate --model` and `stats --model` on a file holding one ``--mb`` MB line
between two short records, against the same file without that line (the baseline), in the same run.

The tiny qwen2-style tokenizer of ``tests/helpers`` (template ``Hermes-2``) stands in for a checkpoint. Prints, per
command, wall seconds and the peak RSS and PSS of the whole process tree (workers included; RSS counts pages
shared after fork once per process, PSS splits them), for the file with the huge
line and for the baseline, the ratio, and whether the huge line was reported by its line number (IVL407 from
validate, a ``:2: IVL407`` line on stats' stderr). Floor of the issue: under 10 s and under 1 GB, the line reported.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from validate_throughput import run_measured  # noqa: E402

SHORT = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}


def write_set(folder: Path, huge_mb: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [SHORT]
    if huge_mb:
        rows.append(
            {"conversations": [{"from": "human", "value": "word " * (huge_mb * 200_000)}, SHORT["conversations"][1]]}
        )
    rows.append(SHORT)
    (folder / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    meta = folder / "meta.json"
    entry = {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": len(rows)}
    meta.write_text(json.dumps({"d": entry}))
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=int, default=50, help="size of the huge line in MB (default 50)")
    a = ap.parse_args()
    from tests.helpers.tokenizers import write_model_dir

    ivl = shutil.which("ivl-data") or str(Path(sys.executable).parent / "ivl-data")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = write_model_dir(root / "model", "Hermes-2", "qwen2")
        huge, base = write_set(root / "huge", a.mb), write_set(root / "base", 0)
        print(f"one {(root / 'huge' / 'd.jsonl').stat().st_size / 1e6:.1f} MB line between two short records\n")
        head = f"{'command':<16} {'huge s':>7} {'base s':>7} {'ratio':>5}  {'RSS MB huge/base':>16}"
        print(f"{head}  {'PSS MB huge/base':>16}  reported")
        for name, extra in (
            ("validate --model", ["validate", "--media", "off", "--no-manifest", "--isolated"]),
            ("stats --model", ["stats", "--no-cache", "--format", "json"]),
        ):
            figures = []
            for meta in (huge, base):
                cmd = [ivl, extra[0], str(meta), "--model", str(model), "--no-progress", *extra[1:]]
                figures.append(run_measured(cmd))
                if meta is huge:
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    text = done.stdout + done.stderr
                    reported = "d.jsonl:2:1: IVL407" in text or "d.jsonl:2: IVL407" in text
            (hs, _, hm, hp), (bs, _, bm, bp) = figures
            rss, pss = f"{hm:.0f} / {bm:.0f}", f"{hp:.0f} / {bp:.0f}"
            print(f"{name:<16} {hs:7.2f} {bs:7.2f} {hs / bs:5.2f}  {rss:>16}  {pss:>16}  {reported}")


if __name__ == "__main__":
    main()
