"""LLaVA records: ``id``, ``image`` (a path, or a list) and ``conversations`` of ``from``/``value`` turns, the
placeholder written as ``<image>`` (InternVL's format derives from it; the paths move under the new root)."""

from __future__ import annotations

from internvl_data.importers import Context, ConversionError, build, media_list


def convert(record: dict, ctx: Context) -> dict:
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise ConversionError("no `conversations` list of turns")
    pairs = []
    for n, turn in enumerate(turns):
        if (
            not isinstance(turn, dict)
            or not isinstance(turn.get("from"), str)
            or not isinstance(turn.get("value"), str)
        ):
            raise ConversionError(f"turn {n} needs string `from` and `value`")
        pairs.append((turn["from"], turn["value"]))
    system = record.get("system_prompt") or ""
    return build(record, pairs, media_list(record, "image"), media_list(record, "video"), ctx, system)
