"""IVL2xx: checks on one parsed record (interface; rules being filled in)."""

from __future__ import annotations

from typing import Any

from .findings import Finding


def check_record(obj: dict[str, Any], ctx: Any) -> list[Finding]:
    """Every IVL2xx rule on one record; a clean record returns an empty list."""
    return []


class IdTracker:
    """Duplicate ids across the records of one run, 8 bytes per id."""

    def add(self, rid: Any, ctx: Any) -> Finding | None:
        return None
