"""Throughput and peak memory of `ivl-data validate` against jsonschema and fastjsonschema, in one run.

    python benchmarks/validate_throughput.py [--lines 1000000] [--out bench-out] [--sample 50000] [--repeat 2]

Generates (or reuses) ``OUT/lines_N.jsonl`` with ../shared/bench/make_dataset.py (``--make-dataset`` or
$IVL_MAKE_DATASET), then prints one table. ivl-data rows run the CLI as a subprocess and sample the memory of
the whole process tree (parent + workers), RSS every 20 ms and PSS every 0.5 s: RSS summed over the processes (shared pages counted in
each) and PSS (shared pages split between them). The baselines validate each line after json.loads with
``schemas/record.schema.json`` on the first --sample lines, in this process, and are extrapolated. Everything
runs --repeat times, interleaved, and the table shows the best run of each (the team machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MAKER = os.environ.get("IVL_MAKE_DATASET") or str(REPO.parent / "shared" / "bench" / "make_dataset.py")


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except OSError:
            continue
    return out


PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def rss_kb(pids: list[int]) -> int:
    """Sum of RSS in kB over ``pids`` from /proc/PID/statm: cheap enough to sample every 20 ms."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            continue
    return total


def pss_kb(pids: list[int]) -> int:
    """Sum of PSS in kB over ``pids`` from smaps_rollup. The kernel walks every page table for it, which costs
    milliseconds per large process, so it is sampled rarely (a 20 ms PSS sampler stole CPU from the workers)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def run_measured(cmd: list[str]) -> tuple[float, float, float, float]:
    """(seconds, CPU seconds, peak RSS MB, peak PSS MB) of a command and its whole process tree."""
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0, 0]

    def poll() -> None:
        k = 0
        while proc.poll() is None:
            pids = tree(proc.pid)
            peak[0] = max(peak[0], rss_kb(pids))
            if k % 25 == 0:  # PSS every 0.5 s (see pss_kb)
                peak[1] = max(peak[1], pss_kb(pids))
            k += 1
            time.sleep(0.02)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - t0
    watcher.join()
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # waited-for descendants: the pool workers too
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return seconds, cpu, peak[0] / 1024, peak[1] / 1024


def baseline(name: str, lines: list[bytes], schema: dict) -> tuple[float, float]:
    """(lines per second, lines per CPU second) of json.loads + one schema validation per line."""
    if name == "jsonschema":
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(schema)
        check = validator.is_valid
    else:
        import fastjsonschema

        compiled = fastjsonschema.compile(schema)

        def check(obj: object) -> bool:
            try:
                compiled(obj)
            except fastjsonschema.JsonSchemaException:
                return False
            return True

    t0, c0 = time.perf_counter(), time.process_time()
    for raw in lines:
        check(json.loads(raw))
    return len(lines) / (time.perf_counter() - t0), len(lines) / (time.process_time() - c0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--out", default=str(REPO / "bench-out"))
    ap.add_argument("--make-dataset", default=DEFAULT_MAKER)
    ap.add_argument("--sample", type=int, default=50_000, help="lines validated by each baseline")
    ap.add_argument("--jobs", type=int, default=0, help="ivl-data --jobs (default all cores)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of everything; the best of each is shown")
    a = ap.parse_args()
    out = Path(a.out)
    data, meta = out / f"lines_{a.lines}.jsonl", out / f"meta_lines_{a.lines}.json"
    if not (data.is_file() and meta.is_file()):
        subprocess.run([sys.executable, a.make_dataset, str(out), "--lines", str(a.lines)], check=True)
    if not (out / "images").is_dir():  # the media the records name, so that --media exists finds them
        subprocess.run([sys.executable, a.make_dataset, str(out), "--records", "8"], check=True)
    with open(data, "rb") as fh:
        sample = [fh.readline() for _ in range(min(a.sample, a.lines))]
    schema = json.loads((REPO / "schemas" / "record.schema.json").read_text())

    ivl = [
        shutil.which("ivl-data") or str(Path(sys.executable).parent / "ivl-data"),
        "validate",
        str(meta),
        "--no-manifest",
        "--no-progress",
        "--max-per-rule",
        "100",
        "--jobs",
        str(a.jobs),
    ]
    cache_dir = out / "validate-cache"
    runs: dict[str, list] = {}
    speeds: dict[str, list] = {"jsonschema": [], "fastjsonschema": []}
    for _ in range(a.repeat):  # best of N: the machine may be shared; rows and baselines interleave
        shutil.rmtree(cache_dir, ignore_errors=True)
        for name, extra in (
            ("ivl-data --media off", ["--media", "off"]),
            ("ivl-data --media exists", ["--media", "exists"]),
            ("ivl-data --media off --cache (cold)", ["--media", "off", "--cache", str(cache_dir)]),
            ("ivl-data --media off --cache (warm)", ["--media", "off", "--cache", str(cache_dir)]),
        ):
            runs.setdefault(name, []).append(run_measured(ivl + extra))
        for name in speeds:
            speeds[name].append(baseline(name, sample, schema))
    rows = [(name, min(results)) for name, results in runs.items()]  # fastest wall time (its CPU and memory)
    js, js_cpu = max(speeds["jsonschema"])
    fjs, fjs_cpu = max(speeds["fastjsonschema"])
    load = os.getloadavg()[0]
    print(
        f"{a.lines:,} lines, {data.stat().st_size / 1e6:.0f} MB, {os.cpu_count()} cores, load average "
        f"{load:.1f} at the end; baselines on {len(sample):,} lines, extrapolated; best of {a.repeat}"
    )
    print(
        "| run | seconds | lines/s | x jsonschema | x fastjsonschema | CPU s | lines/CPU-s "
        "| peak RSS MB (tree) | peak PSS MB (tree) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, speed, cpu_speed in (
        ("jsonschema Draft 2020-12 (json.loads + is_valid)", js, js_cpu),
        ("fastjsonschema (json.loads + compiled)", fjs, fjs_cpu),
    ):
        print(
            f"| {name} | {a.lines / speed:.1f} | {speed:,.0f} | {speed / js:.2f} | {speed / fjs:.2f} "
            f"| {a.lines / cpu_speed:.1f} | {cpu_speed:,.0f} | - | - |"
        )
    for name, (sec, cpu, rss, pss) in rows:
        speed = a.lines / sec
        print(
            f"| {name} | {sec:.2f} | {speed:,.0f} | {speed / js:.1f} | {speed / fjs:.2f} | {cpu:.1f} "
            f"| {a.lines / cpu:,.0f} | {rss:.0f} | {pss:.0f} |"
        )
    cold, warm = rows[2][1][0], rows[3][1][0]
    print(
        f"\ncached re-run: {cold / warm:.1f}x faster than the cold --cache run "
        f"({rows[0][1][0] / warm:.1f}x faster than the uncached --media off run)"
    )


if __name__ == "__main__":
    main()
