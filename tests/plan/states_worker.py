"""torchrun worker for tests/plan/test_states_real.py: what a real HF Trainer run holds, tensor by tensor.

``torchrun --nproc_per_node 2 states_worker.py CKPT OUT MODE:LORA ...`` (MODE ddp | zero1 | zero2 | zero3; LORA a
rank, 0 = full fine-tune with the ViT frozen; one process group runs every case in turn). Two optimizer steps on the tiny native model with images in every
sample (so every trainable tensor gets a gradient); just before the second step (optimizer states exist, the
gradients of the step are held) every tensor reachable from the parameters, their ``.grad``/``ds_tensor``, the
optimizer state and DeepSpeed's optimizer attributes is summed once per storage, by kind, into OUT/MODE.RANK.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

KINDS = {
    "param": "weights",
    "param.ds_tensor": "weights",
    "param.grad": "gradients",
    "opt.averaged_gradients": "gradients",
    "opt.grad_partitions_flat_buffer": "gradients",
    "optstate": "optimizer",
    "opt.single_partition_of_fp32_groups": "optimizer",
    "opt.fp32_partitioned_groups_flat": "optimizer",
}


def inventory(module: torch.nn.Module, optimizer: object) -> dict[str, int]:
    seen: dict[int, tuple[str, int]] = {}

    def add(kind: str, t: torch.Tensor) -> None:
        if t.device.type == "meta":  # DeepSpeed's shape records (round_robin_bit16_meta) hold no memory
            return
        st = t.untyped_storage()
        if st.nbytes() and st.data_ptr() not in seen:
            seen[st.data_ptr()] = (kind, st.nbytes())

    def walk(kind: str, obj: object, depth: int = 0) -> None:
        if depth > 4:
            return
        if isinstance(obj, torch.Tensor):
            add(kind, obj)
        elif isinstance(obj, (list, tuple)):
            for x in obj:
                walk(kind, x, depth + 1)
        elif isinstance(obj, dict):
            for x in obj.values():
                walk(kind, x, depth + 1)

    for p in module.parameters():
        walk("param", p)
        if hasattr(p, "ds_tensor"):
            walk("param.ds_tensor", p.ds_tensor)
        if p.grad is not None:
            walk("param.grad", p.grad)
    for _, b in module.named_buffers():
        walk("buffer", b)
    for opt in (optimizer, getattr(optimizer, "optimizer", None)):
        if opt is None:
            continue
        state = getattr(opt, "state", None)
        if isinstance(state, dict):
            walk("optstate", list(state.values()))
        for key, value in vars(opt).items():
            if key != "state":
                walk("opt." + key, value)
    out: dict[str, int] = {}
    for kind, nbytes in seen.values():
        out[kind] = out.get(kind, 0) + nbytes
    return out


def main() -> None:
    ckpt, out = Path(sys.argv[1]), Path(sys.argv[2])
    for case in sys.argv[3:]:
        mode, lora = case.split(":")
        run_case(mode, int(lora), ckpt, out)


def run_case(mode: str, lora: int, ckpt: Path, out: Path) -> None:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from internvl_train.checkpoint.loading import load_pretrained
    from internvl_train.plan.shapes import lora_targets, read_config, shapes_from_config

    rank = int(os.environ["RANK"])
    deepspeed = mode != "ddp"
    model, _ = load_pretrained(ckpt, dtype=torch.bfloat16 if deepspeed else torch.float32)
    model.model.vision_tower.requires_grad_(False)
    if lora:
        from peft import LoraConfig, get_peft_model

        model.requires_grad_(False)
        targets = [x.name for x in lora_targets(shapes_from_config(read_config(ckpt)), "llm")]
        model = get_peft_model(model, LoraConfig(r=lora, lora_alpha=2 * lora, target_modules=targets))
    cfg = read_config(ckpt)
    image_token = (model.config if not lora else model.base_model.model.config).image_token_id
    size = cfg["vision_config"]["image_size"]
    per_tile = (size // 14) ** 2 // 4

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 16

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            g = torch.Generator().manual_seed(i)
            ids = torch.randint(20, 100, (24,), generator=g)
            ids[1 : 1 + per_tile] = image_token
            labels = ids.clone()
            labels[: 1 + per_tile] = -100
            return {"input_ids": ids, "labels": labels, "pixel_values": torch.randn(3, size, size, generator=g)}

    ds_config = None
    if deepspeed:
        stage = int(mode[-1])
        ds_config = {
            "zero_optimization": {
                "stage": stage,
                "overlap_comm": True,
                "contiguous_gradients": True,
                "reduce_bucket_size": 50000,
                "allgather_bucket_size": 50000,
                "stage3_prefetch_bucket_size": 50000,
                "stage3_param_persistence_threshold": 1000,
                "sub_group_size": 1e9,
            },
            "bf16": {"enabled": "auto"},
            "optimizer": {
                "type": "AdamW",
                "params": {"lr": "auto", "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": "auto"},
            },
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
            "train_batch_size": "auto",
            "train_micro_batch_size_per_gpu": "auto",
        }
    args = TrainingArguments(
        output_dir=str(out / f"{mode}-run"),
        per_device_train_batch_size=2,
        max_steps=2,
        bf16=deepspeed,
        use_cpu=True,
        deepspeed=ds_config,
        report_to=[],
        save_strategy="no",
        logging_steps=100,
        ddp_backend="gloo",
        disable_tqdm=True,
    )
    result: dict[str, int] = {}
    if deepspeed:
        from deepspeed import DeepSpeedEngine

        original = DeepSpeedEngine.step
        calls = [0]

        def step(self: DeepSpeedEngine, *a: object, **k: object) -> object:
            if self.is_gradient_accumulation_boundary():
                calls[0] += 1
                if calls[0] == 2:
                    result.update(inventory(self.module, self.optimizer))
            return original(self, *a, **k)

        DeepSpeedEngine.step = step
        callbacks = []
        restore = (DeepSpeedEngine, original)
    else:

        class Snapshot(TrainerCallback):
            def on_pre_optimizer_step(self, a, state, control, model=None, optimizer=None, **kw):
                if state.global_step == 1:
                    result.update(inventory(model, optimizer))

        callbacks = [Snapshot()]
        restore = None

    def collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    trainer = Trainer(model=model, args=args, train_dataset=Data(), data_collator=collate, callbacks=callbacks)
    trainer.train()
    if restore:
        from transformers.integrations.deepspeed import unset_hf_deepspeed_config

        restore[0].step = restore[1]
        unset_hf_deepspeed_config()  # the next case builds its model without ZeRO-3's zero.Init
    totals: dict[str, int] = {}
    for kind, nbytes in result.items():
        if nbytes > 8:  # scalars (_global_grad_norm, overflow flags) are bookkeeping, not model states
            totals[KINDS.get(kind, kind)] = totals.get(KINDS.get(kind, kind), 0) + nbytes
    (out / f"{mode}-{lora}.{rank}.json").write_text(json.dumps({"totals": totals, "raw": result}, indent=1))


if __name__ == "__main__":
    main()
