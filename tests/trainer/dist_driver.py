"""`ivl-train run` with the records in file order (a sequential sampler), for the torchrun tests: with one record
per micro-batch, rank 0 reads the even records and rank 1 the odd ones, exactly as one process with 2 accumulation
steps reads them in turn."""

from __future__ import annotations

import sys

import torch.utils.data

from internvl_train.cli.dispatch import main
from internvl_train.recipe import train


def _sequential(self, train_dataset=None):
    return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)


train._trainer_class()._get_train_sampler = _sequential

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
