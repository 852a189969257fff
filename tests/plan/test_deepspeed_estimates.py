"""The seven released sizes: the planner's model states agree with DeepSpeed's own estimators from the same shapes.

Everything trained (the estimators' assumption), bf16, no offload. ZeRO-2: DeepSpeed counts 2 bytes/param of
16-bit weights + 18/N (16-bit and float32 gradients, float32 master, two moments): the planner's weights +
gradient partition + master + moments + the float32 gradient partition of the step agree to 0.1% (padding),
once the planner's extra for tensors that straddle a partition boundary is taken out (DeepSpeed keeps the
16-bit gradient of such a tensor whole on both ranks, `grads_in_partition`; the estimator assumes exact cuts:
on the 1B it is a whole 136M-element embedding matrix). ZeRO-3: DeepSpeed counts 18/N + 4 x the largest layer; stage 3
holds 16-bit weight and gradient partitions (2 + 2), master and moments (12) and builds the float32 gradient
partition at the step (4): 20/N, so the planner is DeepSpeed's estimate + 2/N bytes per parameter.
"""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold
from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs_all_cold

from internvl_train.plan.cards import SIZES, card_config
from internvl_train.plan.shapes import shapes_from_config
from internvl_train.plan.states import Training, Zero, plan_states

ALL = Training(freeze_llm=False, freeze_mlp=False, freeze_backbone=False)
GiB = 2**30


def _printed_gpu_gib(text: str, options: str) -> float:
    """The 'per GPU' column of the estimator's row whose options end with ``options``."""
    for line in text.splitlines():
        if line.rstrip().endswith(options):
            return float(re.split(r"\s*\|\s*", line.strip())[1].removesuffix("GB"))
    raise AssertionError(f"no row {options!r} in:\n{text}")


def _largest_layer(shapes) -> int:
    per_module: dict[str, int] = defaultdict(int)
    for p in shapes.params:
        per_module[p.name.rsplit(".", 1)[0]] += p.numel
    return max(per_module.values())


@pytest.mark.parametrize("size", list(SIZES))
def test_zero2_and_zero3_agree_with_deepspeed(size, capsys):
    shapes = shapes_from_config(card_config(size))
    total = shapes.numel()
    gpus = 8
    estimate_zero2_model_states_mem_needs_all_cold(total, num_gpus_per_node=gpus)
    ds2 = _printed_gpu_gib(capsys.readouterr().out, "offload_optimizer=none")
    s2 = plan_states(shapes, ALL, Zero(stage=2), gpus)
    exact_cut = 2 * (s2.master_weights // 4)  # 16-bit gradients of exactly one partition
    ours2 = s2.model_states + s2.step_fp32_gradients - (s2.gradients - exact_cut)
    assert s2.gradients >= exact_cut
    assert abs(ours2 / GiB - ds2) <= 0.005 + 0.001 * ds2

    largest = _largest_layer(shapes)
    estimate_zero3_model_states_mem_needs_all_cold(total, largest, num_gpus_per_node=gpus)
    ds3 = _printed_gpu_gib(capsys.readouterr().out, "offload_param=none, offload_optimizer=none, zero_init=1")
    z3 = Zero(stage=3, persistence_threshold=0, sub_group_size=10**12)
    s3 = plan_states(shapes, ALL, z3, gpus)
    ours3 = s3.model_states + s3.step_fp32_gradients + s3.gathered_params
    assert abs((ours3 - 2 * total / gpus) / GiB - ds3) <= 0.005 + 0.001 * ds3
