"""`ivl-train run`, read top to bottom: config -> guards -> data gate -> model -> data -> HF Trainer -> save.

Every rank runs this module (``torchrun ... -m internvl_train run CFG``). Rank 0 alone validates the data, writes
config.yaml, metrics, the completion markers and the final model; the others wait for its verdict.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from internvl_train.datahooks import DatasetEpochCallback
from internvl_train.errors import IvlTrainError
from internvl_train.recipe import output
from internvl_train.recipe.callbacks import CompletionCallback, LossPlotCallback, MetricsCallback, ProgressCallback
from internvl_train.recipe.model import ModelSpec, TrainModel, build_model, native_state_name


class DataRefused(IvlTrainError):
    """The data gate found errors (the findings are printed first)."""

    exit_code = 1


def say(*parts: Any) -> None:
    if int(os.environ.get("RANK", "0") or 0) == 0:
        print(*parts, flush=True)


def run(cfg: Any, resume: bool | str | None = None) -> int:
    """Train ``cfg`` (a resolved ``TrainConfig``); 0 on success, 1 when the data gate refuses the data.
    ``resume``: True (``--resume``), a checkpoint-N path, or None (resume automatically unless
    ``overwrite_output_dir``; see :mod:`internvl_train.resume`)."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_warning()
    from internvl_train import resume as resuming
    from internvl_train.gate import checkpoint_info
    from internvl_train.guards import check_guards

    out = Path(cfg.output_dir)
    cfg = cfg.with_checkpoint(checkpoint_info(cfg))  # no template and no conv_style: the config's problem
    args = training_arguments(cfg)  # initialises torch.distributed under torchrun
    world = args.world_size
    check_guards(cfg, world_size=world)
    point = resuming.prepare(cfg, world, resume, is_main=args.process_index == 0)  # refuses another run's state

    # -- data gate: rank 0 validates, every rank gets the verdict -------------------------------------------
    verdict: list[Any] = [None]
    if args.process_index == 0:
        out.mkdir(parents=True, exist_ok=True)
        output.write_config_yaml(out, cfg.resolved_dict())
        verdict[0] = gate(cfg, out)
    verdict = broadcast(verdict)
    ok, manifest_hash = verdict[0]
    if not ok:
        raise DataRefused("the data gate refused the mixture (findings above); nothing was trained")
    if args.process_index == 0:
        resuming.write_run_info(cfg, world, out / "data-manifest.json")

    # -- model, data, trainer ------------------------------------------------------------------------------------
    from transformers import set_seed

    set_seed(cfg.seed)  # before the model, as the official main() (LoRA's random init is part of the run)
    with plain_construction(args):  # ZeRO-3 partitions the loaded model when the engine starts
        model, tokenizer = build_model(ModelSpec.from_config(cfg))
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    say(f"model: {n_train:,} of {n_all:,} parameters train ({'LoRA' if model.is_lora else 'full'})")
    dataset = training_dataset(cfg, out, args.process_index)
    trainer = make_trainer(cfg, args, model, tokenizer, dataset, manifest_hash)
    if point is not None:
        say(f"resuming from {point.path.name} (step {point.step})")
    trainer.train(resume_from_checkpoint=str(point.path) if point is not None else None)

    # -- the final model ------------------------------------------------------------------------------------------
    save_final(trainer, cfg, tokenizer)
    return 0


def gate(cfg: Any, out: Path) -> tuple[bool, str | None]:
    """The data gate (``internvl_train.gate``); prints its text once (the findings, or a refused manifest's
    reasons); (ok, sha256 of the manifest)."""
    from internvl_train.gate import check_data

    result = check_data(cfg, manifest_out=str(out / "data-manifest.json"))
    if result.text.strip():
        print(result.text, end="" if result.text.endswith("\n") else "\n", file=sys.stdout if result.ok else sys.stderr)
    digest = None
    if result.ok and result.manifest_path and os.path.isfile(result.manifest_path):
        digest = hashlib.sha256(Path(result.manifest_path).read_bytes()).hexdigest()
    return result.ok, digest


def broadcast(obj: list[Any]) -> list[Any]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.broadcast_object_list(obj, src=0)
    return obj


@contextlib.contextmanager
def plain_construction(args: Any) -> Iterator[None]:
    """Build the model without ``deepspeed.zero.Init``: transformers wraps every model construction in it while a
    ZeRO-3 TrainingArguments exists, which fights ``load_pretrained``'s meta-device streaming. Each rank loads the
    whole model into host memory; DeepSpeed partitions it when the Trainer starts the engine."""
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    ds = getattr(args, "hf_deepspeed_config", None)
    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if ds is not None:
            set_hf_deepspeed_config(ds)


def training_arguments(cfg: Any) -> Any:
    """HF TrainingArguments from the config (the official names are HF's, so most map one to one)."""
    from transformers import TrainingArguments

    from internvl_train.guards import deepspeed_path

    report = [r for r in cfg.report_to if r != "none"]
    if "tensorboard" in report and not (
        importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    ):
        say("report_to: tensorboard is not installed (pip install tensorboard); not logging to it")
        report.remove("tensorboard")
    return TrainingArguments(
        output_dir=cfg.output_dir,
        use_cpu=not torch.cuda.is_available(),  # else transformers 5 runs every torchrun process alone on CPU
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.num_train_epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a ratio of the total steps
        lr_scheduler_type=cfg.lr_scheduler_type,
        max_grad_norm=cfg.max_grad_norm,
        bf16=cfg.bf16,
        deepspeed=str(deepspeed_path(cfg.deepspeed)) if cfg.deepspeed else None,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        report_to=report or "none",
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=cfg.dataloader_num_workers,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        remove_unused_columns=False,
        disable_tqdm=True,
        ddp_find_unused_parameters=False,
    )


def training_dataset(cfg: Any, out: Path, rank: int) -> Any:
    from internvl_data.pipeline.dataset import DATA_KEYS, build_data

    overrides = {k: getattr(cfg, k) for k in DATA_KEYS if hasattr(cfg, k)}
    bundle = build_data(cfg.model_name_or_path, cfg.meta_path, overrides=overrides)
    return bundle.dataset(skipped_path=str(out / "skipped.jsonl"), max_skip_ratio=cfg.max_skip_ratio, rank=rank)


def make_trainer(cfg: Any, args: Any, model: TrainModel, tokenizer: Any, dataset: Any, manifest_hash: str | None):
    out = Path(cfg.output_dir)
    callbacks = [
        MetricsCallback(out / "metrics.jsonl"),
        ProgressCallback(),
        CompletionCallback(manifest_hash),
        LossPlotCallback(out / "metrics.jsonl", out / "loss.png"),
        DatasetEpochCallback(dataset),  # each epoch draws its own augmentation (seed, epoch, index)
    ]
    from transformers.trainer_callback import PrinterCallback

    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=dataset.bundle.collator,
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # ProgressCallback prints instead
    return trainer


@functools.lru_cache(maxsize=1)
def _trainer_class() -> type:
    from transformers import Trainer

    class _IvlTrainer(Trainer):
        """HF Trainer with token counts in the logs, length grouping from the dataset's lengths, and
        checkpoints in HF format (native weights, or the peft adapter for LoRA)."""

        def __init__(self, *a: Any, **kw: Any):
            super().__init__(*a, **kw)
            self._counts = torch.zeros(3, dtype=torch.float64)  # samples, tokens, supervised tokens
            self._last_log = time.perf_counter()

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            outputs = model(**inputs)
            self._counts += torch.tensor(
                [inputs["input_ids"].shape[0], float(outputs["num_tokens"]), float(outputs["num_supervised"])],
                dtype=torch.float64,
            )
            return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "loss" in logs:
                counts = self._counts.to(self.args.device)
                if self.args.world_size > 1:
                    counts = self.accelerator.reduce(counts, reduction="sum")
                samples, tokens, supervised = (float(x) for x in counts.cpu())
                now = time.perf_counter()
                elapsed = max(now - self._last_log, 1e-9)
                logs.update(
                    tokens=int(tokens),
                    supervised_tokens=int(supervised),
                    samples_per_second=round(samples / elapsed, 4),
                    tokens_per_second=round(tokens / elapsed, 2),
                )
                self._counts.zero_()
                self._last_log = now
            super().log(logs, start_time)

        def _get_train_sampler(self, train_dataset=None):
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            if self.args.train_sampling_strategy != "group_by_length":
                return super()._get_train_sampler(train_dataset)
            from transformers.trainer_pt_utils import LengthGroupedSampler

            lengths = dataset.lengths.tolist()
            how = "each line's length" if dataset.length_source == "per-line length" else "measured up front"
            say(f"group_by_length: {len(lengths)} lengths, {how}")
            gen = torch.Generator()
            gen.manual_seed(self.args.data_seed if self.args.data_seed is not None else self.args.seed)
            batch = self.args.train_batch_size * self.args.gradient_accumulation_steps
            return LengthGroupedSampler(batch, dataset=dataset, lengths=lengths, generator=gen)

        def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
            output_dir = output_dir or self.args.output_dir
            if not self.args.should_save:
                return
            os.makedirs(output_dir, exist_ok=True)
            model: TrainModel = self.accelerator.unwrap_model(self.model)
            if state_dict is None:
                state_dict = model.state_dict()
            if model.is_lora:
                model.inner.save_pretrained(output_dir, state_dict=output.peft_state(state_dict))
            else:
                # native key names (not transformers' legacy llava names), as load_checkpoint_weights reads them
                model.native.save_pretrained(
                    output_dir, state_dict=output.native_state(state_dict), save_original_format=False
                )
            if self.processing_class is not None:
                self.processing_class.save_pretrained(output_dir)
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            # HF deletes old checkpoints (save_total_limit) before the on_save callbacks, i.e. before the completion
            # marker: CompletionCallback rotates after writing it instead
            limit = self.args.save_total_limit
            self.args.save_total_limit = None
            try:
                super()._save_checkpoint(model, trial)
            finally:
                self.args.save_total_limit = limit

        def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
            model = model if model is not None else self.model
            load_checkpoint_weights(self.accelerator.unwrap_model(model), resume_from_checkpoint)

    return _IvlTrainer


def __getattr__(name: str) -> Any:  # transformers is imported on first use, not when the CLI starts
    if name == "IvlTrainer":
        return _trainer_class()
    raise AttributeError(name)


def load_checkpoint_weights(model: TrainModel, checkpoint: str | os.PathLike) -> None:
    """The weights of a checkpoint-N written by ``_save`` back into ``model`` (resume without DeepSpeed)."""
    from safetensors.torch import load_file

    ckpt = Path(checkpoint)
    if model.is_lora:
        from peft import set_peft_model_state_dict

        file = ckpt / "adapter_model.safetensors"
        if not file.is_file():
            raise IvlTrainError(f"{ckpt}: no adapter_model.safetensors; it is not a checkpoint of a LoRA run")
        set_peft_model_state_dict(model.inner, load_file(str(file)))
        return
    files = sorted(ckpt.glob("model*.safetensors"))
    if not files:
        raise IvlTrainError(f"{ckpt}: no model*.safetensors; it is not a checkpoint of a full fine-tune")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    missing, unexpected = model.native.load_state_dict(state, strict=False)
    if unexpected or missing:
        raise IvlTrainError(
            f"{ckpt}: weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


def save_final(trainer: Any, cfg: Any, tokenizer: Any) -> None:
    """Gather the full weights (16-bit under ZeRO-3) and write ``model/`` (original layout) or ``adapter/``."""
    out = Path(cfg.output_dir)
    if trainer.is_deepspeed_enabled:
        state = trainer.accelerator.get_state_dict(trainer.deepspeed)  # collective: every rank calls it
    else:
        state = trainer.accelerator.unwrap_model(trainer.model).state_dict()
    if not trainer.args.should_save:
        return
    model: TrainModel = trainer.accelerator.unwrap_model(trainer.model)
    state = {k: v.detach().to("cpu") for k, v in state.items()}
    if model.is_lora:
        output.save_adapter(model.inner, state, out / output.ADAPTER_DIR, cfg.model_name_or_path)
        say(f"adapter: {out / output.ADAPTER_DIR}")
        if cfg.merge_lora:
            output.merge_adapter(out / output.ADAPTER_DIR, out / output.MODEL_DIR, base=cfg.model_name_or_path)
            say(f"merged model (original layout): {out / output.MODEL_DIR}")
        return
    native = {native_state_name(k): v for k, v in state.items()}
    output.save_original(model.native.config, native, tokenizer, out / output.MODEL_DIR, cfg.model_name_or_path)
    say(f"model (original layout): {out / output.MODEL_DIR}")
