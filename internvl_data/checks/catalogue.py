"""The rule catalogue: one entry per stable code, with its documentation.

Each check family registers its own rules with :func:`rule` at import time (``checks/meta.py``, ``lines.py``,
``records.py``, ``media.py``, ``tokens.py``). :mod:`internvl_data.checks.registry` imports every family, so that
the catalogue is complete wherever it is read (``ivl-data rules``, ``ivl-data explain``, docs); this module
imports no family (the families import it).

Codes: IVL0xx lines, IVL1xx meta, IVL2xx conversation/record, IVL3xx media, IVL4xx token budgets.
Codes are never reused or renumbered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from internvl_data.checks.findings import DEFAULT_SEVERITY, Severity

if TYPE_CHECKING:
    from internvl_data.checks.findings import Finding


@dataclass(frozen=True, slots=True)
class Rule:
    code: str  # "IVL201"
    name: str  # kebab-case, "unknown-role"
    severity: Severity  # default severity
    summary: str  # one line: what it finds
    why: str  # why it matters for the official trainer
    example: str  # a minimal offending input
    fix: str  # how to fix it


_RULES: dict[str, Rule] = {}


def rule(code: str, name: str, severity: Severity, summary: str, why: str, example: str, fix: str) -> Rule:
    """Register a rule. Registering the same code twice with different content is a bug."""
    r = Rule(code, name, severity, summary, why, example, fix)
    old = _RULES.get(code)
    if old is not None and old != r:
        raise RuntimeError(f"rule {code} registered twice with different content")
    _RULES[code] = r
    DEFAULT_SEVERITY[code] = severity
    return r


def registered() -> dict[str, Rule]:
    """The rules registered so far (by the families imported so far; :mod:`.registry` imports them all)."""
    return _RULES


def selected(code: str, select: tuple[str, ...], ignore: tuple[str, ...]) -> bool:
    """--select / --ignore by code or prefix ("IVL2", "IVL201"); the longest matching prefix wins."""

    def best(prefixes: tuple[str, ...]) -> int:
        return max((len(p) for p in prefixes if code.startswith(p)), default=-1)

    s = best(select) if select else 0
    i = best(ignore)
    return s >= 0 and s >= i if i >= 0 else s >= 0


def emit(
    code: str,
    path: str,
    line: int,
    message: str,
    *,
    col: int = 0,
    json_path: str = "",
    hint: str = "",
    dataset: str = "",
    severity: Severity | None = None,
) -> Finding:
    """Build a Finding for a registered rule (its default severity unless ``severity`` is given)."""
    from internvl_data.checks.findings import Finding

    r = _RULES[code]
    return Finding(code, severity or r.severity, path, line, col, message, json_path, hint or r.fix, dataset)
