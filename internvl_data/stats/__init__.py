"""`ivl-data stats` and `ivl-data lengths`: :mod:`.compute` drives, :mod:`.plan` splits files into chunks for the process pool, :mod:`.worker` scans a chunk, :mod:`.tokens` and :mod:`.piece_cache` count tokens, :mod:`.hist` keeps flat-memory histograms, :mod:`.output` formats, :mod:`.lengths` writes the per-line `length`."""


def __getattr__(name: str):
    """The names of the old flat module ``internvl_data.stats`` (now :mod:`internvl_data.stats.compute`), deprecated for one release."""
    import importlib
    import warnings

    module = importlib.import_module("internvl_data.stats.compute")
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"internvl_data.stats.{name} moved to internvl_data.stats.compute.{name}", DeprecationWarning, stacklevel=2
    )
    return getattr(module, name)
