"""ivl-train: fine-tune InternVL2 on validated mixtures (transformers + peft + DeepSpeed)."""

__version__ = "0.1.0"

__all__ = ["load_pretrained", "save_pretrained"]


def __getattr__(name: str):  # lazy: `import internvl_train` stays light (no torch) until a model is needed
    if name == "load_pretrained":
        from .loading import load_pretrained

        return load_pretrained
    if name == "save_pretrained":
        from .saving import save_pretrained

        return save_pretrained
    raise AttributeError(f"module 'internvl_train' has no attribute {name!r}")
