"""Are `ivl-data validate / stats / render / lengths` outputs byte-identical between a git revision and the
working tree? (issue 9: the restructuring changes no behaviour.)

    python benchmarks/compare_outputs.py --base d9a3d23 [--tree REV] [--records 2000] [--work /tmp/ivl-compare]

The base revision is checked out with ``git worktree add --detach`` (removed again unless --keep); each command
runs as ``python -m internvl_data ...`` with the tree's folder first on PYTHONPATH, from the same data folders
and the same tiny model (written once, with this tree's ``internvl_train.tiny``), so both see identical inputs.
Data: fixtures/valid and a ``/work/shared/bench/make_dataset.py --records N`` set. Compared: exit code, stdout,
stderr and the files ``lengths`` writes. Run times are left out of the comparison (validate's ``in 0.12 s``).
Prints one line per (data set, command): identical / DIFFERENT with the first differing line; exit 1 when any
differs.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAKE_DATASET = Path("/work/shared/bench/make_dataset.py")
TIMING = re.compile(rb"(in |\"seconds\": ?)\d+(\.\d+)?( ?s)?")


def commands(meta: Path, model: Path, out: Path) -> dict[str, list[str]]:
    """The compared invocations; ``out`` is a per-tree folder (its path is replaced by OUT before comparing)."""
    common = ["--no-progress"]
    return {
        "validate": ["validate", str(meta), "--no-manifest", *common],
        "validate-json": ["validate", str(meta), "--no-manifest", "--format", "json", *common],
        "stats": ["stats", str(meta), "--format", "json", "--no-cache", "--jobs", "2", "--no-progress"],
        "stats-model": ["stats", str(meta), "--model", str(model), "--format", "csv", "--no-cache", "--no-progress"],
        "render": ["render", str(meta), "--model", str(model), "--limit", "3", "--format", "jsonl"],
        "lengths": ["lengths", str(meta), "--model", str(model), "--output-dir", str(out), "--no-progress"],
    }


def run(tree: Path, args: list[str], out: Path, cwd: Path) -> dict[str, bytes]:
    """Exit code, stdout, stderr and every file under ``out`` (paths of ``out`` and ``tree`` normalised)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(tree), CI="1", IVL_DEBUG="")
    proc = subprocess.run([sys.executable, "-m", "internvl_data", *args], cwd=cwd, env=env, capture_output=True)
    result = {"exit": str(proc.returncode).encode(), "stdout": proc.stdout, "stderr": proc.stderr}
    for f in sorted(out.rglob("*")):
        if f.is_file():
            result[f"file {f.relative_to(out)}"] = f.read_bytes()
    for key, data in result.items():
        data = data.replace(str(out).encode(), b"OUT").replace(str(tree).encode(), b"TREE")
        result[key] = TIMING.sub(rb"\1T", data)
    return result


def first_difference(a: dict[str, bytes], b: dict[str, bytes]) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            if key not in a or key not in b:
                return f"{key}: only in {'base' if key in a else 'tree'}"
            la = a[key].decode("utf-8", "replace").splitlines()
            lb = b[key].decode("utf-8", "replace").splitlines()
            diff = [
                d for d in difflib.unified_diff(la, lb, lineterm="", n=0) if d[:1] in "+-" and d[:3] not in "---+++"
            ]
            return f"{key}: {' | '.join(diff[:2])[:300]}"
    return ""


def prepare(work: Path, records: int) -> tuple[dict[str, Path], Path]:
    """The data sets (meta paths) and the tiny model, under ``work``."""
    data = work / "data"
    valid = data / "valid"
    if not valid.exists():
        shutil.copytree(ROOT / "fixtures" / "valid", valid, ignore=shutil.ignore_patterns("*.ivl-manifest.json"))
    made = data / f"made{records}"
    if not (made / "meta.json").exists():
        subprocess.run([sys.executable, str(MAKE_DATASET), str(made), "--records", str(records)], check=True)
    metas = {"fixtures/valid": valid / "meta.json", f"make_dataset {records}": made / "meta.json"}
    model = work / "model"
    if not (model / "config.json").exists():
        sys.path.insert(0, str(ROOT))
        from internvl_train.tiny import write_tiny_checkpoint

        write_tiny_checkpoint(model, "qwen2")
    return metas, model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="d9a3d23", help="git revision to compare with (default d9a3d23)")
    ap.add_argument("--records", type=int, default=2000, help="records of the make_dataset.py set (default 2000)")
    ap.add_argument("--work", default="/tmp/ivl-compare", help="folder for the data, model and base checkout")
    ap.add_argument("--tree", default="", help="a second revision instead of the working tree")
    ap.add_argument("--keep", action="store_true", help="keep the checked-out worktrees")
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    trees = {}
    for rev in (args.base, args.tree):
        if rev:
            trees[rev] = work / f"tree-{rev}"
            if not trees[rev].exists():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(trees[rev]), rev], check=True
                )
    base, tree = trees[args.base], trees.get(args.tree, ROOT)
    print(f"base {args.base} ({base}) vs {args.tree or 'the working tree'} ({tree})")
    metas, model = prepare(work, args.records)
    differ = 0
    try:
        for label, meta in metas.items():
            for name in commands(meta, model, work).keys():
                t0 = time.perf_counter()
                out_a, out_b = work / "out-base", work / "out-tree"
                a = run(base, commands(meta, model, out_a)[name], out_a, meta.parent)
                b = run(tree, commands(meta, model, out_b)[name], out_b, meta.parent)
                diff = first_difference(a, b)
                differ += bool(diff)
                status = f"DIFFERENT  {diff}" if diff else "identical"
                codes = f"{a['exit'].decode()}/{b['exit'].decode()}"
                seconds = time.perf_counter() - t0
                print(f"{label:20} {name:14} exit {codes}  {seconds:5.1f} s  {status}", flush=True)
    finally:
        for path in trees.values() if not args.keep else ():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)
    print(f"{differ} of {len(metas) * 6} outputs differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
