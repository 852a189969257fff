"""The verdict's thresholds and the fixed terms docs/plan.md states: fits up to 90% of the GPU, tight up to 100%;
1.5 GiB framework overhead; an allocator margin of 5% of the dynamic total."""

from __future__ import annotations

import math

from internvl_train.plan.activations import Workload
from internvl_train.plan.cards import card_config
from internvl_train.plan.planner import Setup, compute
from internvl_train.plan.shapes import shapes_from_config
from internvl_train.plan.states import Training, Zero

GiB = 2**30
SHAPES = shapes_from_config(card_config("1b"), "card InternVL2-1B")
SETUP = Setup(train=Training(), zero=Zero(stage=2), world=8, work=Workload(micro_batch=1, seq_len=4096, tiles=7))


def test_verdict_is_fits_to_90_percent_tight_to_100_percent_then_does_not_fit():
    total = compute(SHAPES, SETUP).per_gpu_bytes
    at_90 = math.ceil(total / 0.9)  # the smallest GPU of which the total is at most 90%
    assert compute(SHAPES, SETUP, at_90).verdict == "fits"
    assert compute(SHAPES, SETUP, at_90 - 1).verdict == "tight"
    assert compute(SHAPES, SETUP, total).verdict == "tight"
    assert compute(SHAPES, SETUP, total - 1).verdict == "does not fit"
    assert compute(SHAPES, SETUP, None).verdict is None


def test_overhead_is_1_5_gib_and_margin_5_percent_of_the_dynamic_total():
    plan = compute(SHAPES, SETUP)
    b = plan.breakdown
    assert b["framework_overhead"] == int(1.5 * GiB)
    dynamic = plan.per_gpu_bytes - b["framework_overhead"] - b["allocator_margin"]
    assert b["allocator_margin"] == int(0.05 * dynamic) > 0
