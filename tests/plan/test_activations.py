"""Activation memory: the planner within 15% of the PyTorch memory profiler's peak (a cheap subset of the table
that benchmarks/plan_activations.py prints for the tiny and ~100M models; docs/plan.md records the full one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("plan_activations", ROOT / "benchmarks" / "plan_activations.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    bench = _bench()
    cells = [(64, 1), (256, 7)]  # shortest sequence with one tile, longest with the most tiles
    return bench.table(["tiny"], "cpu", tmp_path_factory.mktemp("act"), cells=cells)


def test_planner_within_15_percent_of_measured_peak(rows):
    assert len(rows) == 4  # 2 cells x gradient checkpointing off/on
    for r in rows:
        assert r["measured"] > 0
        assert 0.85 <= r["planned"] / r["measured"] <= 1.15, r


def test_checkpointing_and_length_move_the_measurement_as_planned(rows):
    by = {(r["grad_checkpoint"], r["seq_len"]): r for r in rows}
    assert by[(True, 256)]["measured"] < by[(False, 256)]["measured"]
    assert by[(True, 256)]["planned"] < by[(False, 256)]["planned"]
    assert by[(False, 256)]["measured"] > 3 * by[(False, 64)]["measured"]
