"""Chunk planning and exact histograms: chunks tile exactly the used lines; percentiles equal numpy's."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from internvl_data.formats.lines import count_lines
from internvl_data.stats.hist import Hist, Tally
from internvl_data.stats.plan import plan_file


@pytest.mark.parametrize("seed", range(40))
def test_chunks_cover_the_used_lines(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    lines = [b"x" * rng.randint(0, 30) for _ in range(rng.randint(0, 40))]
    data = b"\n".join(lines) + (b"\n" if lines and rng.random() < 0.5 else b"")
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    expected = data.splitlines(keepends=True)
    assert count_lines(str(path)) == len(expected)
    repeat = rng.choice([1, 2, 0.5, 0.3, 0.99])
    plan = plan_file(0, str(path), repeat, rng.randint(1, 50))
    used = int(len(expected) * repeat) if repeat < 1 else len(expected)
    got = []
    for c in plan.chunks:
        part = data[c.start : c.end].splitlines(keepends=True)
        if repeat < 1:  # counted: line numbers are known
            assert expected[c.first_lineno - 1 : c.first_lineno - 1 + len(part)] == part
        got += part
    assert got == expected[:used]
    assert plan.used_bytes == sum(map(len, expected[:used]))
    assert (plan.lines, plan.used_lines) == ((-1, -1) if repeat >= 1 else (len(expected), used))


@pytest.mark.parametrize("seed", range(20))
def test_percentiles_equal_numpy(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.randint(0, rng.choice([3, 50, 5000])) for _ in range(rng.randint(1, 80))]
    hist = Hist(values)
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert hist.percentile(q) == pytest.approx(float(np.percentile(values, 100 * q)), abs=1e-9)
    d = hist.scaled(3).describe()
    assert (d["count"], d["max"], d["p90"]) == (
        3 * len(values),
        max(values),
        pytest.approx(np.percentile(values * 3, 90)),
    )


def test_tally_merge_and_scale() -> None:
    a, b = Tally(), Tally()
    a.add("turns", 2)
    a.counts["kind_text"] += 1
    b.add("turns", 4)
    b.lines = 3
    merged = a.merge(b).scaled(2)
    assert (merged.lines, merged.counts["kind_text"], dict(merged.hists["turns"])) == (6, 2, {2: 2, 4: 2})
