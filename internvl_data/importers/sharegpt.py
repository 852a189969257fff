"""LLaMA-Factory's sharegpt records: ``conversations`` of ``from``/``value`` turns (human, gpt, system) or
``messages`` of ``role``/``content`` turns, ``images``/``videos`` lists, an optional ``system`` prompt."""

from __future__ import annotations

from typing import Any

from internvl_data.importers import Context, ConversionError, build, media_list


def convert(record: dict, ctx: Context) -> dict:
    turns = record.get("conversations", record.get("messages"))
    if not isinstance(turns, list) or not turns:
        raise ConversionError("no `conversations` (or `messages`) list of turns")
    pairs = [_turn(t, n) for n, t in enumerate(turns)]
    system = record.get("system") or ""
    if not isinstance(system, str):
        raise ConversionError("`system` is not a string")
    return build(record, pairs, media_list(record, "images"), media_list(record, "videos"), ctx, system)


def _turn(turn: Any, n: int) -> tuple[str, str]:
    if not isinstance(turn, dict):
        raise ConversionError(f"turn {n} is not an object")
    role = turn.get("from", turn.get("role"))
    value = turn.get("value", turn.get("content"))
    if not isinstance(role, str) or not isinstance(value, str):
        raise ConversionError(f"turn {n} needs string `from`/`value` (or `role`/`content`)")
    if role in ("function_call", "observation", "tool", "function"):
        raise ConversionError(f"turn {n} is a {role!r} turn; tool calls have no InternVL equivalent")
    return role, value
