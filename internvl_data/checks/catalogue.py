"""The rule catalogue: one entry per stable code, with its documentation.

Each check family registers its own rules with :func:`rule` at import time (``checks/meta.py``, ``lines.py``,
``records.py``, ``media.py``, ``tokens.py``). :mod:`internvl_data.checks.registry` imports every family, so that
the catalogue is complete wherever it is read (``ivl-data rules``, ``ivl-data explain``, docs); this module
imports no family (the families import it).

Codes: IVL0xx lines, IVL1xx meta, IVL2xx conversation/record, IVL3xx media, IVL4xx token budgets.
Codes are never reused or renumbered.

Severity follows consequence: every rule declares what the official stack does with the data it finds
(:class:`Consequence`), and its default severity must be the one :data:`SEVERITY_FOR` gives that consequence.
:func:`rule` refuses anything else at import time, unless the registration writes down why (``override``). A
narrower situation whose findings get another severity is a :class:`Case` with its own consequence, checked the
same way; :func:`emit` refuses a severity the rule does not declare. A registration whose consequence the official
code shows cites, as ``# ref §x.y``, the section of the InternVL2 reference specification (numbered as
docs/official-behaviour.md); one with no loader consequence says so in that comment instead.
docs/decisions.md ("Severity follows consequence") lists the table, the overrides and the review.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from internvl_data.checks.findings import DEFAULT_SEVERITY, Finding, Severity


class Consequence(str, enum.Enum):
    """What the official loader and trainer do with the data a rule finds."""

    CRASH = "crash"  # the loader or trainer raises: the sample is dropped and replaced, or the run stops
    BROKEN = "broken"  # the model trains on a broken sample: a wrong or corrupted target, or nothing to learn
    ALTERED = "altered"  # silently changed, cut or partly dropped, but what trains is still a valid sample
    NOTICE = "notice"  # training is not affected: a question of style or intent, or information


# The severities each consequence allows, the usual one first. NOTICE: warning when the data is probably not
# what its author meant, info when it is style or information only.
SEVERITY_FOR: dict[Consequence, tuple[Severity, ...]] = {
    Consequence.CRASH: (Severity.ERROR,),
    Consequence.BROKEN: (Severity.ERROR,),
    Consequence.ALTERED: (Severity.WARNING,),
    Consequence.NOTICE: (Severity.WARNING, Severity.INFO),
}

# The consequence in words, as `ivl-data explain` completes "Severity: error by default, because ...".
MEANING: dict[Consequence, str] = {
    Consequence.CRASH: "the official loader or trainer raises on it: the sample is dropped and replaced by a random "
    "other one, or the run stops",
    Consequence.BROKEN: "the model trains on a broken sample: a wrong or corrupted target, or nothing to learn",
    Consequence.ALTERED: "the official stack silently changes, cuts or drops part of it, but what trains is still a "
    "valid sample",
    Consequence.NOTICE: "training is not affected: it is a question of style or intent, or information",
}


@dataclass(frozen=True, slots=True)
class Case:
    """A narrower situation in which a rule's findings have another consequence, and so another severity."""

    when: str  # "the value is only whitespace ..." (completes "warning when ...")
    consequence: Consequence
    severity: Severity
    override: str = ""  # why the severity differs from SEVERITY_FOR[consequence] ("" when it does not)


@dataclass(frozen=True, slots=True)
class Rule:
    code: str  # "IVL201"
    name: str  # kebab-case, "unknown-role"
    severity: Severity  # default severity
    summary: str  # one line: what it finds
    why: str  # why it matters for the official trainer: what the official code does with it
    example: str  # a minimal offending input
    fix: str  # how to fix it
    consequence: Consequence  # what the official stack does with it (decides `severity`)
    override: str = ""  # why `severity` is not the one SEVERITY_FOR gives `consequence` ("" when it is)
    cases: tuple[Case, ...] = ()  # narrower situations whose findings have another severity
    # Every severity this rule's findings may have (the default and each case's): derived, but built once here
    # because emit() checks it for every finding.
    severities: frozenset[Severity] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "severities", frozenset((self.severity, *(c.severity for c in self.cases))))


_RULES: dict[str, Rule] = {}


def check_severity(code: str, consequence: Consequence, severity: Severity, override: str, where: str = "") -> None:
    """Raise RuntimeError unless ``severity`` follows from ``consequence``, or an ``override`` says why not."""
    allowed = SEVERITY_FOR[consequence]
    label = f"rule {code}{where}"
    if severity in allowed and override:
        raise RuntimeError(f"{label}: severity {severity.value} follows from {consequence.value}; drop the override")
    if severity not in allowed and not override.strip():
        want = " or ".join(s.value for s in allowed)
        raise RuntimeError(
            f"{label}: consequence {consequence.value} makes {_a(want)}, not {_a(severity.value)}; fix the severity or "
            "write the reason as override=..."
        )


def rule(
    code: str,
    name: str,
    severity: Severity,
    summary: str,
    why: str,
    example: str,
    fix: str,
    *,
    consequence: Consequence,
    override: str = "",
    cases: tuple[Case, ...] = (),
) -> Rule:
    """Register a rule. Its severity (and each case's) must follow from its consequence unless an override says
    why; registering the same code twice with different content is a bug."""
    check_severity(code, consequence, severity, override)
    for n, c in enumerate(cases):
        check_severity(code, c.consequence, c.severity, c.override, f" case {n + 1} ({c.when})")
    r = Rule(code, name, severity, summary, why, example, fix, consequence, override, cases)
    old = _RULES.get(code)
    if old is not None and old != r:
        raise RuntimeError(f"rule {code} registered twice with different content")
    _RULES[code] = r
    DEFAULT_SEVERITY[code] = severity
    return r


def severity_text(r: Rule) -> list[str]:
    """The "Severity: ..." line of ``ivl-data explain`` and docs/rules.md, then one line per case."""
    if r.override:
        usual = " or ".join(s.value for s in SEVERITY_FOR[r.consequence])
        head = (
            f"Severity: {r.severity.value} by default, because {r.override}. "
            f"Without that reason it would be {_a(usual)}, because {MEANING[r.consequence]}."
        )
    else:
        head = f"Severity: {r.severity.value} by default, because {MEANING[r.consequence]}."
    lines = [head]
    for c in r.cases:
        reason = c.override if c.override else MEANING[c.consequence]
        lines.append(f"{c.severity.value} when {c.when}, because {reason}.")
    return lines


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


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
    """Build a Finding for a registered rule (its default severity unless ``severity`` is given, which must be
    the default or one of the rule's cases: a check cannot invent a severity its rule does not declare)."""
    r = _RULES[code]
    if severity is not None and severity not in r.severities:
        raise RuntimeError(f"{code}: a {severity.value} finding, but the rule declares no case with that severity")
    return Finding(code, severity or r.severity, path, line, col, message, json_path, hint or r.fix, dataset)
