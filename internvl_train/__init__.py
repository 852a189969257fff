"""ivl-train: fine-tune InternVL2 on validated mixtures (transformers + peft + DeepSpeed)."""

__version__ = "0.1.0"
