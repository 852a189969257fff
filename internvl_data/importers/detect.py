"""Which foreign record format a record that fails our checks looks like (for the hint of IVL201/IVL202/IVL207)."""

from __future__ import annotations

from typing import Any


def looks_like(record: Any) -> str | None:
    """``openai-messages``, ``sharegpt`` or None."""
    if not isinstance(record, dict):
        return None
    conv = record.get("conversations")
    if "conversations" not in record and isinstance(record.get("messages"), list):
        return "openai-messages"
    if isinstance(conv, list) and conv and isinstance(conv[0], dict):
        first = conv[0]
        if "role" in first or "content" in first or first.get("from") in ("user", "assistant"):
            return "sharegpt"
        if "images" in record or "videos" in record:
            return "sharegpt"
    return None


def hint(record: Any) -> str:
    """``""`` or ``"; it looks like FORMAT data: convert it with `ivl-data import --from FORMAT SRC OUT_DIR`"``."""
    fmt = looks_like(record)
    return f"; it looks like {fmt} data: convert it with `ivl-data import --from {fmt} SRC OUT_DIR`" if fmt else ""
