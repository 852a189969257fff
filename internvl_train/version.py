"""The package version (one place; ``internvl_train.__version__`` re-exports it)."""

__version__ = "0.1.0"
