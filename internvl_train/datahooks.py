"""Trainer-side glue for the data seam: the dataset learns the epoch before each epoch's workers start.

``TrainDataset`` draws augmentation and video frames from ``(seed, epoch, index)``. In one process accelerate
forwards ``set_epoch`` to the dataset too, but with several processes the batch sampler is sharded and accelerate
hands the epoch to its sampler only, so without this callback every epoch there would draw epoch 0's pixels
(tests/trainer/test_run_wiring.py). ``on_epoch_begin`` runs before the epoch's
DataLoader iterator (and so its worker processes) is created, so the workers see the new epoch too.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback

__all__ = ["DatasetEpochCallback"]


class DatasetEpochCallback(TrainerCallback):
    """``Trainer(..., callbacks=[DatasetEpochCallback(train_dataset)])``: ``set_epoch`` at every epoch start."""

    def __init__(self, dataset: Any):
        self.dataset = dataset

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # state.epoch is the float progress: k at the start of epoch k, fractional when resumed mid-epoch
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-9))
