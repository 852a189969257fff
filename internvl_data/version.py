"""The package version (one place; ``internvl_data.__version__`` re-exports it)."""

__version__ = "0.1.0"
