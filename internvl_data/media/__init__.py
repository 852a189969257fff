"""Media files: :mod:`.probe` opens images and videos for validation (headers, decode, root containment); :mod:`.sizes` keeps the on-disk cache of image sizes read from headers."""


def __getattr__(name: str):
    """The names of the old flat module ``internvl_data.media`` (now :mod:`internvl_data.media.probe`), deprecated for one release."""
    import importlib
    import warnings

    module = importlib.import_module("internvl_data.media.probe")
    if name.startswith("__") or not hasattr(module, name):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"internvl_data.media.{name} moved to internvl_data.media.probe.{name}", DeprecationWarning, stacklevel=2
    )
    return getattr(module, name)
