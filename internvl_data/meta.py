"""Meta file -> dataset entries with resolved paths + IVL1xx findings (interface; being filled in)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .findings import Finding


@dataclass(slots=True)
class MetaEntry:
    """One dataset of the meta file."""

    name: str
    entry: Any  # models.DatasetEntry or None when the entry is unusable
    raw: dict[str, Any]
    annotation_path: str  # resolved path of the JSONL file
    root_path: str  # resolved media root
    line: int  # line of the dataset name in the meta file


@dataclass(slots=True)
class MetaResult:
    entries: list[MetaEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def load_meta(path: str) -> MetaResult:
    raise NotImplementedError
