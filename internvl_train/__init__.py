"""ivl-train: fine-tune InternVL2 on validated mixtures (transformers + peft + DeepSpeed)."""

from internvl_train import _compat
from internvl_train.version import __version__

_compat.install()  # old flat module paths keep working for one release, with a DeprecationWarning

__all__ = ["__version__", "load_pretrained", "save_pretrained"]


def __getattr__(name: str):  # lazy: `import internvl_train` stays light (no torch) until a model is needed
    if name == "load_pretrained":
        from internvl_train.checkpoint.loading import load_pretrained

        return load_pretrained
    if name == "save_pretrained":
        from internvl_train.checkpoint.saving import save_pretrained

        return save_pretrained
    raise AttributeError(f"module 'internvl_train' has no attribute {name!r}")
