"""ivl-data: the InternVL2 data contract, checked before any GPU time."""

from internvl_data import _compat
from internvl_data.checks.findings import Finding, Report, Severity
from internvl_data.version import __version__

_compat.install()  # old flat module paths keep working for one release, with a DeprecationWarning

__all__ = ["Finding", "Report", "Severity", "__version__", "validate"]


def validate(meta_path, options=None, **kwargs):
    """Validate a meta file and every annotation it lists; returns a :class:`Report`.

    Options are the keyword forms of the ``ivl-data validate`` flags (``media="header"``, ``jobs=2``,
    ``select=("IVL2",)``...), or a :class:`internvl_data.validator.options.ValidateOptions` with keyword overrides.
    """
    from internvl_data.validator.driver import validate as _validate

    return _validate(meta_path, options, **kwargs)
