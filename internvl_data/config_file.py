"""Per-repository settings: ``.ivl-data.toml`` or the ``[tool.ivl-data]`` table of ``pyproject.toml``.

Found as ruff finds its settings: walking up from the meta file's folder (the current folder for ``-``), the
first folder with an ``.ivl-data.toml`` (any content) or a ``pyproject.toml`` holding ``[tool.ivl-data]`` wins;
``--config FILE`` names one, ``--isolated`` ignores them all. Flags given on the command line override it.
Relative paths in it (``model``, ``cache``, ``meta``, ``ignore-findings`` files) are relative to its folder.

Keys (:data:`KEYS`): ``select``, ``ignore`` (codes or prefixes), ``severity`` (a table ``IVL214 = "error"``:
error, warning or info), ``media``, ``max-pixels``, ``min-frames``, ``model``, ``max-seq-length``, ``template``,
``allow-outside-root``, ``strict``, ``max-per-rule``, ``cache``, ``meta`` (the meta files ``ivl-data validate``
checks when given none, and that the pre-commit hook considers besides those it finds), and ``ignore-findings``:
single findings, as ``"FILE:LINE"``, ``"FILE:LINE:CODE"``, ``"id:ID"`` or ``"id:ID:CODE"`` (JSON has no comments
to put a ``noqa`` in). An entry that matches no finding is reported as stale. An unknown key is an error that
suggests the nearest known one.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from internvl_data.errors import UsageError

NAMES = (".ivl-data.toml", "pyproject.toml")
SEVERITIES = ("error", "warning", "info")
# key -> (type check, argparse dest of `ivl-data validate`); the value types are checked when the file is read
KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "select": (list, "select"),
    "ignore": (list, "ignore"),
    "severity": (dict, ""),
    "media": (str, "media"),
    "max-pixels": (int, "max_pixels"),
    "min-frames": (int, "min_frames"),
    "model": (str, "model"),
    "max-seq-length": (int, "max_seq_length"),
    "template": (str, "template"),
    "allow-outside-root": (bool, "allow_outside_root"),
    "strict": (bool, "strict"),
    "max-per-rule": (int, "max_per_rule"),
    "cache": (str, "cache"),
    "meta": (list, ""),
    "ignore-findings": (list, ""),
}
_PATH_KEYS = ("model", "cache")


class ConfigError(UsageError):
    """A settings file that cannot be used: one line naming the file and the fix (exit 2)."""


@dataclass
class Settings:
    path: str = ""  # the file read ("" when none)
    values: dict[str, Any] = field(default_factory=dict)  # kebab-case keys, paths made absolute

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)


def find(start: str) -> str | None:
    """The settings file that applies to ``start`` (a file or folder), or None."""
    folder = os.path.abspath(start if os.path.isdir(start) else os.path.dirname(start) or ".")
    while True:
        for name in NAMES:
            candidate = os.path.join(folder, name)
            if os.path.isfile(candidate) and (name != "pyproject.toml" or _has_table(candidate)):
                return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _has_table(pyproject: str) -> bool:
    try:
        return "ivl-data" in _read(pyproject).get("tool", {})
    except ConfigError:
        return False  # a broken pyproject.toml without our table is not ours to report


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{os.path.relpath(path)}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.path.relpath(path)}: invalid TOML: {exc}") from None


def load(path: str) -> Settings:
    """Read and check one settings file (an ``.ivl-data.toml``, or a ``pyproject.toml``'s ``[tool.ivl-data]``)."""
    data = _read(path)
    where = os.path.relpath(path)
    if os.path.basename(path) == "pyproject.toml":
        data = data.get("tool", {}).get("ivl-data", {})
        where = f"{where} [tool.ivl-data]"
    folder = os.path.dirname(os.path.abspath(path))
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            near = difflib.get_close_matches(key.replace("_", "-"), KEYS, n=1, cutoff=0.6)
            hint = f"did you mean '{near[0]}'?" if near else f"known keys: {', '.join(KEYS)}"
            raise ConfigError(f"{where}: unknown key '{key}'; {hint}")
        kind = KEYS[key][0]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: '{key}' must be {_kind_name(kind)}, not {type(value).__name__} {value!r}")
        if kind is list and not all(isinstance(v, str) for v in value):  # type: ignore[attr-defined]
            raise ConfigError(f"{where}: '{key}' must be a list of strings")
        values[key] = value
    for code, sev in values.get("severity", {}).items():
        if sev not in SEVERITIES:
            raise ConfigError(f"{where}: severity of {code} must be one of {', '.join(SEVERITIES)}, not {sev!r}")
    for key in _PATH_KEYS:
        if key in values:
            values[key] = os.path.join(folder, os.path.expanduser(values[key]))
    if "meta" in values:
        values["meta"] = [os.path.relpath(os.path.join(folder, m)) for m in values["meta"]]
    return Settings(os.path.abspath(path), values)


def _kind_name(kind: Any) -> str:
    return {list: "a list", dict: "a table", str: "a string", int: "an integer", bool: "true or false"}[kind]


def resolve(start: str, config: str | None, isolated: bool) -> Settings:
    """The settings for a run: ``--isolated`` none, ``--config FILE`` that one, else the one found from ``start``."""
    if isolated:
        return Settings()
    if config:
        if not os.path.isfile(config):
            raise ConfigError(f"--config {config}: no such file")
        return load(config)
    found = find(start)
    return load(found) if found else Settings()


def apply_to_args(settings: Settings, args: Any, defaults: dict[str, Any]) -> None:
    """Fill every option the command line left at its default from ``settings`` (flags always win)."""
    for key, (_kind, dest) in KEYS.items():
        if not dest or key not in settings.values or not hasattr(args, dest):
            continue
        value = settings.values[key]
        if key in ("select", "ignore"):
            value = [c.strip().upper() for c in value if c.strip()]
        if getattr(args, dest) == defaults.get(dest):
            setattr(args, dest, value)


@dataclass
class _Entry:
    text: str
    path: str | None  # real path of the file, or None for an id entry
    line: int | None
    rid: str | None
    code: str | None
    used: int = 0


def _entries(settings: Settings) -> list[_Entry]:
    out = []
    for text in settings.values.get("ignore-findings", []):
        parts = text.split(":")
        code = parts.pop().upper() if len(parts) > 2 and parts[-1].upper().startswith("IVL") else None
        if parts[0] == "id" and len(parts) >= 2:
            out.append(_Entry(text, None, None, ":".join(parts[1:]), code))
            continue
        if len(parts) < 2 or not parts[-1].isdigit():
            raise ConfigError(
                f"{os.path.relpath(settings.path)}: ignore-findings entry {text!r} is not FILE:LINE[:CODE] or id:ID[:CODE]"
            )
        file = os.path.join(settings.folder, ":".join(parts[:-1]))
        out.append(_Entry(text, os.path.realpath(file), int(parts[-1]), None, code))
    return out


def apply_to_report(settings: Settings, report: Any, out=None) -> Any:
    """Per-rule severities and single-finding ignores on a validation :class:`Report`; stale entries are warned
    about on ``out`` (stderr). Returns the report (changed in place)."""
    from dataclasses import replace

    from internvl_data.checks.findings import Severity

    severity = {c.upper(): Severity(s) for c, s in settings.values.get("severity", {}).items()}
    if severity:
        report.findings = [replace(f, severity=severity[f.code]) if f.code in severity else f for f in report.findings]
    entries = _entries(settings)
    if not entries:
        return report
    ids = _ids_of(report.findings) if any(e.rid is not None for e in entries) else {}
    real: dict[str, str] = {}
    kept = []
    for f in report.findings:
        rp = real.get(f.path)
        if rp is None:  # once per file (setdefault would call realpath for every finding)
            rp = real[f.path] = os.path.realpath(f.path)
        hit = None
        for e in entries:
            if e.code and e.code != f.code:
                continue
            if (e.path == rp and e.line == f.line) or (e.rid is not None and ids.get((f.path, f.line)) == e.rid):
                hit = e
                break
        if hit is None:
            kept.append(f)
        else:
            hit.used += 1
    report.findings = kept
    for e in entries:
        if not e.used:
            print(
                f"ivl-data: warning: {os.path.relpath(settings.path)}: ignore-findings entry {e.text!r} matches no finding; remove it",
                file=out or sys.stderr,
            )
    return report


def _ids_of(findings: list) -> dict[tuple[str, int], str]:
    """``(path, line) -> str(record id)`` for the JSONL lines that have findings (each file read once)."""
    import orjson

    wanted: dict[str, set[int]] = {}
    for f in findings:
        if f.path.endswith(".jsonl") and f.line > 0:
            wanted.setdefault(f.path, set()).add(f.line)
    out: dict[tuple[str, int], str] = {}
    for path, lines in wanted.items():
        try:
            with open(path, "rb") as fh:
                for n, raw in enumerate(fh, 1):
                    if n in lines:
                        try:
                            rec = orjson.loads(raw)
                        except orjson.JSONDecodeError:
                            continue
                        if isinstance(rec, dict) and "id" in rec:
                            out[(path, n)] = str(rec["id"])
        except OSError:
            continue
    return out
