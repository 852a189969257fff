"""Tiny record and JSONL builders shared by the tests."""

from __future__ import annotations

import json
from pathlib import Path


def turn(role: str, value: str) -> dict:
    return {"from": role, "value": value}


def conv(*values: str) -> list[dict]:
    """Alternating human/gpt turns, human first."""
    return [turn("human" if k % 2 == 0 else "gpt", v) for k, v in enumerate(values)]


def clean(rid: object) -> dict:
    """A clean pure-text record."""
    return {"id": rid, "conversations": conv(f"Question {rid}?", f"Answer {rid}.")}


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows: dicts (dumped as JSON) or str/bytes (written as the raw line)."""
    out = bytearray()
    for row in rows:
        if isinstance(row, bytes):
            out += row
        elif isinstance(row, str):
            out += row.encode()
        else:
            out += json.dumps(row, ensure_ascii=False).encode()
        out += b"\n"
    path.write_bytes(bytes(out))
    return path
