"""``ivl-data import --from FORMAT SRC OUT_DIR``: records from other tools -> an InternVL meta file + JSONL.

One module per source format, each with ``convert(record, ctx) -> dict`` that raises :class:`ConversionError`
(one message, no location: :func:`convert_file` adds the source line):

- ``sharegpt`` (LLaMA-Factory): ``conversations`` of ``from``/``value`` turns (human, gpt, system), or
  ``messages`` of ``role``/``content`` turns, with ``images``/``videos`` lists and an optional ``system``.
- ``openai-messages`` (ms-swift, LLaMA-Factory ``messages``, OpenAI): ``messages`` of ``role``/``content`` turns,
  content a string with ``<image>``/``<video>`` or a list of ``text``/``image``/``image_url``/``video`` blocks.
- ``llava``: ``id``, ``image`` (a path) and ``conversations`` of ``from``/``value`` turns.

The source is a JSON array or JSONL. Media paths resolve against the source file's folder (or ``--media-root``),
which becomes the dataset ``root`` (absolute, as ``lengths --output-dir`` writes it); paths are written relative to
it. Placeholders become InternVL's ``<image>\n`` / ``<video>\n``; when a record has media but no placeholder, one
per item is put at the start of the first turn.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from internvl_data.errors import UsageError

FORMATS = {
    "sharegpt": "internvl_data.importers.sharegpt",
    "openai-messages": "internvl_data.importers.openai_messages",
    "llava": "internvl_data.importers.llava",
}
IMAGE, VIDEO = "<image>", "<video>"


class ConversionError(ValueError):
    """A record that cannot be converted (the message says why and what to change)."""


@dataclass
class Context:
    """What a converter needs besides the record."""

    media_root: str  # absolute folder the media paths resolve against (the meta's root)
    system_turn: bool  # the template takes a leading `system` turn (internvl2_5); else it is merged
    index: int = 0  # 0-based record number, for ids
    merged_systems: int = 0  # system prompts merged into the first human turn (counted for the summary)

    def media_path(self, path: Any, what: str = "image") -> str:
        """A media path of the record, relative to :attr:`media_root` when inside it."""
        if not isinstance(path, str) or not path:
            raise ConversionError(f"{what} path {path!r} is not a non-empty string")
        if "://" in path and not path.startswith("file://"):
            raise ConversionError(f"{what} {path!r} is a URL; download it and give the local path")
        path = path.removeprefix("file://")
        full = os.path.normpath(os.path.join(self.media_root, os.path.expanduser(path)))
        rel = os.path.relpath(full, self.media_root)
        return full if rel.startswith("..") else rel.replace(os.sep, "/")


@dataclass
class Outcome:
    records: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "SRC:LINE: message"
    merged_systems: int = 0


def converter(fmt: str):
    if fmt not in FORMATS:
        raise UsageError(f"--from {fmt!r}: use one of {', '.join(FORMATS)}")
    return importlib.import_module(FORMATS[fmt]).convert


def read_source(path: str) -> Iterator[tuple[int, Any]]:
    """``(line, record)`` of a JSON array (the line each element starts on) or of a JSONL file; a line that is
    not JSON yields ``(line, ConversionError)``."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except OSError as exc:
        raise UsageError(f"SRC {path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"SRC {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] == "[":
        yield from _array(path, text, start + 1)
        return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, ConversionError(f"invalid JSON: {exc.msg} at column {exc.colno}")


def _array(path: str, text: str, pos: int) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n:
            raise UsageError(f"SRC {path}: the JSON array is not closed (missing `]` at the end)")
        if text[pos] == "]":
            return
        line = text.count("\n", 0, pos) + 1
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}; fix it or convert it to JSONL") from None
        yield line, obj


def convert_file(src: str, fmt: str, ctx: Context) -> Outcome:
    convert = converter(fmt)
    out = Outcome()
    for k, (line, record) in enumerate(read_source(src)):
        ctx.index = k
        try:
            if isinstance(record, ConversionError):
                raise record
            if not isinstance(record, dict):
                raise ConversionError(f"a record must be a JSON object, not {type(record).__name__}")
            out.records.append(convert(record, ctx))
        except ConversionError as exc:
            out.errors.append(f"{src}:{line}: {exc}")
    out.merged_systems = ctx.merged_systems
    return out


# -- helpers shared by the converters -------------------------------------------------------------------------

ROLES = {"human": "human", "user": "human", "gpt": "gpt", "assistant": "gpt", "system": "system"}


def build(
    record: dict, turns: list[tuple[str, str]], images: list[str], videos: list[str], ctx: Context, system: str = ""
) -> dict:
    """Our record from (role, text) turns with ``<image>``/``<video>`` placeholders and the media lists."""
    turns = [(ROLES.get(r, r), v) for r, v in turns]
    bad = [r for r, _ in turns if r not in ("human", "gpt", "system")]
    if bad:
        raise ConversionError(f"role {bad[0]!r} has no InternVL equivalent (only system, user/human, assistant/gpt)")
    if turns and turns[0][0] == "system":
        system = (system + "\n" if system else "") + turns[0][1]
        turns = turns[1:]
    if any(r == "system" for r, _ in turns):
        raise ConversionError("a system turn after the first turn; InternVL takes one system prompt, first")
    if not turns:
        raise ConversionError("no user/assistant turns")
    if images and videos:
        raise ConversionError("both images and videos; an InternVL record holds images or one video")
    if len(videos) > 1:
        raise ConversionError(f"{len(videos)} videos; an InternVL record holds one video")
    turns = [(r, _newline_after_placeholders(v)) for r, v in turns]
    text = "".join(v for _, v in turns)
    for tag, media in ((IMAGE, images), (VIDEO, videos)):
        count = text.count(tag)
        if count == 0 and media:  # tools that prepend the placeholders themselves (LLaVA style)
            r, v = turns[0]
            turns[0] = (r, tag + "\n" + v) if len(media) == 1 else (r, "".join(f"{tag}\n" for _ in media) + v)
        elif count != len(media):
            raise ConversionError(f"{count} {tag} placeholder(s) but {len(media)} {tag[1:-1]}(s)")
    if system:
        # the official loader looks for the single image's / the video's placeholder in conversations[0] and
        # prepends one when it is not there: a leading system turn would get it, so those records merge
        if ctx.system_turn and len(images) != 1 and not videos:
            turns.insert(0, ("system", system))
        else:
            first = next((i for i, (r, _) in enumerate(turns) if r == "human"), None)
            if first is None:
                raise ConversionError("a system prompt but no user turn to merge it into")
            r, v = turns[first]
            turns[first] = (r, _merge_system(system, v))
            ctx.merged_systems += 1
    out: dict[str, Any] = {"id": record.get("id", ctx.index)}
    if images:
        paths = [ctx.media_path(p) for p in images]
        out["image"] = paths[0] if len(paths) == 1 else paths
    if videos:
        out["video"] = ctx.media_path(videos[0], "video")
    out["conversations"] = [{"from": r, "value": v} for r, v in turns]
    return out


def _newline_after_placeholders(value: str) -> str:
    """``<image>``/``<video>`` followed by a newline, the InternVL convention (the video loader replaces exactly
    ``<video>\n``; LLaMA-Factory and ms-swift write ``<image>What...``)."""
    for tag in (IMAGE, VIDEO):
        if tag in value:
            value = value.replace(tag + "\n", tag).replace(tag, tag + "\n")
    return value


def _merge_system(system: str, value: str) -> str:
    """The system prompt after the leading placeholders of the first human turn (they must stay first)."""
    head = ""
    while value.startswith((IMAGE + "\n", VIDEO + "\n")):
        head, value = head + value[: value.index("\n") + 1], value[value.index("\n") + 1 :]
    return f"{head}{system}\n\n{value}"


def media_list(record: dict, key: str) -> list[str]:
    value = record.get(key)
    if value is None or value == []:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return list(value)
    raise ConversionError(f"`{key}` is {type(value).__name__}; expected a path or a list of paths")
