"""What `ivl-train run` wires around the HF Trainer: every epoch tells the dataset its number (augmentation and
frames are drawn from (seed, epoch, index)), and the data gate's verdict is printed once."""

from __future__ import annotations

import dataclasses
import shutil

import torch

from internvl_train.config import TrainConfig, load_config
from internvl_train.recipe import train
from tests.trainer.model_helpers import VALID_META


class _EpochRecorder(torch.utils.data.Dataset):
    """Two samples; records the epoch the dataset believes it is in at every sample drawn."""

    def __init__(self) -> None:
        self.epoch = 0
        self.seen: list[int] = []
        self.bundle = type("Bundle", (), {"collator": staticmethod(lambda rows: {"input_ids": torch.stack(rows)})})()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        self.seen.append(self.epoch)
        return torch.full((2,), float(i))


class _Model(torch.nn.Module):
    """The outputs `_IvlTrainer.compute_loss` reads from TrainModel (loss and token counts)."""

    is_lora = False

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, input_ids: torch.Tensor) -> dict:
        x = input_ids
        return {"loss": (x * self.w).square().mean(), "num_tokens": x.numel(), "num_supervised": x.numel()}


def test_each_epoch_tells_the_dataset_its_number(tmp_path):
    """A 2-epoch run of make_trainer's trainer; the dataset records its epoch at every sample. In one process
    accelerate also forwards the epoch, so the epoch-begin callbacks are driven alone too: with several processes
    (a sharded batch sampler) accelerate hands the epoch to the sampler only, and the callback is all there is."""
    cfg = TrainConfig(
        model_name_or_path=str(tmp_path / "unused"),
        meta_path=str(tmp_path / "meta.json"),
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=2,
        num_train_epochs=2,
        dataloader_num_workers=0,
        bf16=False,
        report_to=["none"],
        group_by_length=False,
    )
    dataset = _EpochRecorder()
    args = dataclasses.replace(train.training_arguments(cfg), save_strategy="no")  # no checkpoint of the toy model
    trainer = train.make_trainer(cfg, args, _Model(), None, dataset, None)
    trainer.train()
    assert dataset.seen == [0, 0, 1, 1]
    for epoch in (3.0, 1.5):  # the start of epoch 3; resumed in the middle of epoch 1
        trainer.state.epoch = epoch
        trainer.callback_handler.on_epoch_begin(args, trainer.state, trainer.control)
        assert dataset.epoch == int(epoch)


def test_a_refused_manifest_is_printed_once(tmp_path, capsys):
    from internvl_data.cli import main as ivl_data
    from internvl_train.tiny import write_tiny_checkpoint

    model = write_tiny_checkpoint(tmp_path / "ckpt", "qwen2", "300m")
    shutil.copytree(VALID_META.parent, tmp_path / "valid")
    meta = tmp_path / "valid" / "meta.json"
    manifest = tmp_path / "data.ivl-manifest.json"
    assert ivl_data(["validate", str(meta), "--model", str(model), "--manifest", str(manifest), "--jobs", "1"]) == 0
    text = tmp_path / "valid" / "text.jsonl"
    text.write_bytes(text.read_bytes().replace(b"Paris.", b"Lyon!."))  # same size, other content
    capsys.readouterr()
    cfg = load_config(
        None,
        [
            f"model_name_or_path={model}",
            f"meta_path={meta}",
            f"output_dir={tmp_path / 'out'}",
            f"data_manifest={manifest}",
        ],
    )
    assert train.gate(cfg, tmp_path / "out") == (False, None)
    printed = capsys.readouterr()
    reason = f"dataset 'text': the content of {text} changed since it was validated: run `ivl-data validate {meta}`"
    assert printed.out == ""
    assert printed.err.splitlines() == [
        f"{manifest}: {reason}",
        (
            "The data gate refused the manifest (1 problem); validate again, or drop data_manifest to let the "
            "trainer validate the data itself."
        ),
    ]


def test_a_checkpoint_without_template_asks_for_conv_style(tmp_path, capsys):
    """As `ivl-train check` says it (not ivl-data's `--template`, which `ivl-train run` does not have)."""
    import json

    from internvl_train.cli.dispatch import main
    from internvl_train.tiny import write_tiny_checkpoint

    ckpt = write_tiny_checkpoint(tmp_path / "ckpt", "qwen2", "300m")
    doc = json.loads((ckpt / "config.json").read_text())
    del doc["template"]
    (ckpt / "config.json").write_text(json.dumps(doc))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model_name_or_path: {ckpt}\nmeta_path: {VALID_META}\noutput_dir: {tmp_path / 'out'}\n")
    assert main(["run", str(cfg)]) == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "ivl-train run: error: 1 problem in the training configuration:",
        f"  conv_style: {ckpt}/config.json names no template (original layout); set conv_style to one of Hermes-2, "
        "internlm2-chat, phi3-chat, internvl2_5",
    ]
    assert not (tmp_path / "out").exists()
