"""IVL0xx: one raw JSONL line -> the parsed record (or None) and its line-level findings.

Fast path: ``orjson.loads`` plus two byte checks; the slow path (a line that fails) finds the exact cause.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from internvl_data.checks.catalogue import Consequence, emit, rule
from internvl_data.checks.findings import Finding, Severity
from internvl_data.formats.jsonutil import JSONDecodeError, duplicate_keys, parse

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO  # noqa: E741 (short names for the rule table)
C = Consequence
BOM = b"\xef\xbb\xbf"

rule(
    "IVL001",
    "invalid-json",
    E,
    "The line is not valid JSON.",
    "The official loader parses each line only when the sample is drawn; the exception is swallowed and the "
    "sample silently replaced by a random other one, so the line never trains.",
    '{"id": 1, "conversations": [}',
    "Fix the JSON at the reported column (one complete object per line).",
    consequence=C.CRASH,  # ref §1.1, §3.2
)
rule(
    "IVL002",
    "blank-line",
    E,
    "The line is empty or only whitespace.",
    "Blank lines (often an extra empty line at the end of the file) are counted as samples and fail to parse "
    "during training; the official loader replaces them with random other samples.",
    "(an empty line between two records)",
    "Delete the blank line; only the final newline may follow the last record.",
    consequence=C.CRASH,  # ref §1.1, §3.2
)
rule(
    "IVL003",
    "utf8-bom",
    E,
    "The line starts with a UTF-8 byte order mark.",
    "Both json.loads and orjson reject a BOM: the official loader raises on the file's first line and replaces "
    "that sample with a random other one, so the first record never trains.",
    "\\xef\\xbb\\xbf{...}",
    "Save the file as UTF-8 without BOM.",
    consequence=C.CRASH,  # ref §1.1 (orjson or json), §3.2
)
rule(
    "IVL004",
    "crlf-line-ending",
    I,
    "The line ends with CRLF (Windows line endings).",
    "JSON counts the \\r as whitespace, so the official loader parses the line exactly as with LF and the sample "
    "trains unchanged; only tools that compare raw bytes see the extra \\r.",
    '{"id": 1, ...}\\r\\n',
    "Convert the file to LF line endings (e.g. `dos2unix FILE`).",
    consequence=C.NOTICE,  # ref §1.1 (json.loads / orjson per line): style only
)
rule(
    "IVL005",
    "invalid-utf8",
    E,
    "The line contains bytes that are not valid UTF-8.",
    "The parser rejects the line, so the official loader raises on it and silently replaces the sample with "
    "another one during training.",
    '{"value": "caf\\xe9"} (Latin-1 byte)',
    "Re-encode the file as UTF-8.",
    consequence=C.CRASH,  # ref §1.1, §3.2
)
rule(
    "IVL006",
    "not-an-object",
    E,
    "The line is valid JSON but not a JSON object.",
    "The official loader reads the line as an object (`'image' in item`, item['conversations']): an array, "
    "string or number raises and the sample is replaced by a random other one.",
    '[{"from": "human", "value": "hi"}]',
    'Wrap the record in an object: {"conversations": [...]}.',
    consequence=C.CRASH,  # ref §1.2, §3.2
)
rule(
    "IVL007",
    "long-line",
    W,
    "The line is longer than the --long-line threshold (bytes).",
    "The official loader reads a long line like any other (IVL401 and IVL407 say what the trainer cuts), but "
    "huge lines usually mean embedded data (base64 images) or several records glued together, and they slow "
    "down every reader.",
    '{"conversations": [{"from": "human", "value": "<5 MB of text>"}]}',
    "Split the record, store media as files under `root`, or raise --long-line.",
    consequence=C.NOTICE,  # a sign of a data bug, not a loader consequence
)
rule(
    "IVL008",
    "duplicate-key",
    W,
    "An object in the record repeats a key.",
    "JSON parsers (orjson, json) keep the last value silently: the official loader trains the record with that "
    "value, and the other one is dropped without notice.",
    '{"image": "a.jpg", "conversations": [...], "image": "b.jpg"}',
    "Keep one of the keys.",
    consequence=C.ALTERED,  # ref §1.1 (orjson or json keep the last value)
)
rule(
    "IVL009",
    "slow-record",
    W,
    "Checking the record took longer than the --slow-record budget (seconds).",
    "The official loader pays a record's cost (reading and decoding its media, tokenizing its text) for every "
    "sample of every epoch; one that takes seconds here (a huge video or image, pathological text) stalls the "
    "dataloader, and a training job at scale times out waiting for it. Training itself is not changed.",
    '{"video": "a-two-hour-4k-video.mp4", "conversations": [...]}',
    "Look at the record's media and text (cut the video, shrink the image, split the text), or raise "
    "--slow-record (0 turns the check off).",
    consequence=C.NOTICE,  # a cost, not a change to what trains
)


@dataclass(slots=True)
class LineCtx:
    """Where a record comes from. One object per file; callers update ``line`` as they go."""

    path: str  # annotation path as shown to the user
    line: int = 0  # 1-based line number
    dataset: str = ""  # dataset name in the meta file
    template: str | None = None  # chat template name; decides whether `system` turns are allowed
    long_line: int = 1 << 20  # IVL007 threshold in bytes


def check_line(raw: bytes, ctx: LineCtx) -> tuple[dict[str, Any] | None, list[Finding]]:
    """Parse one line. Returns the record (None when unusable) and the IVL0xx findings."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None, _unparsable(raw, ctx)
    if type(obj) is not dict:
        return None, [_f("IVL006", ctx, f"line is a JSON {_json_type(obj)}, not an object")]
    findings: list[Finding] = []
    keys = _key_count(obj)
    if raw.count(b":") != keys and not _keys_tight(raw, keys):
        findings = _duplicates(raw, ctx)
    if len(raw) > ctx.long_line:
        findings.append(_f("IVL007", ctx, f"line is {len(raw):,} bytes long (threshold {ctx.long_line:,})"))
    if raw[-1] == 13:  # b"\r" (raw is not empty: it parsed)
        findings.append(_f("IVL004", ctx, "line ends with CRLF", col=len(raw)))
    return obj, findings


def _keys_tight(raw: bytes, keys: int) -> bool:
    """Whether the line provably has no duplicate key although values contain colons.

    Every key occurrence is followed by its colon; when no colon has whitespace before it, each one is a
    `":`, and a string value can only add more (as `\\":`). So ``count('":') == keys`` rules out duplicates.
    """
    return raw.count(b'":') == keys and b" :" not in raw and b"\t:" not in raw and b"\r:" not in raw


def _key_count(obj: dict[str, Any]) -> int:
    """Members of the record and of its turns (exact when every turn is an object; a mismatch only costs an
    exact re-parse)."""
    conv = obj.get("conversations")
    if type(conv) is not list:
        return len(obj)
    try:
        return len(obj) + sum(map(len, conv))
    except TypeError:  # a turn without a length (a number, null): let the exact parse decide
        return -1


def _duplicates(raw: bytes, ctx: LineCtx) -> list[Finding]:
    try:
        text = raw.decode("utf-8")
        tree = parse(text)
    except (UnicodeDecodeError, JSONDecodeError):
        return []
    return [
        _f(
            "IVL008",
            ctx,
            f"key {key!r} appears twice in {path}; the parser keeps only the last value",
            col=pos + 1,
            json_path=f"{path}.{key}",
        )
        for path, key, pos in duplicate_keys(tree)
    ]


def _unparsable(raw: bytes, ctx: LineCtx) -> list[Finding]:
    """The exact reason a line failed to parse (one finding)."""
    if not raw.strip():
        return [_f("IVL002", ctx, "blank line")]
    if raw.startswith(BOM):
        rest = raw[len(BOM) :]
        extra = "" if _parses(rest) else " (and the rest of the line is not valid JSON either)"
        return [_f("IVL003", ctx, f"line starts with a UTF-8 byte order mark{extra}", col=1)]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        col = len(raw[: exc.start].decode("utf-8", "replace")) + 1
        return [_f("IVL005", ctx, f"invalid UTF-8 byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}", col=col)]
    try:
        parse(text)
    except JSONDecodeError as exc:
        return [_f("IVL001", ctx, f"invalid JSON: {exc.msg} at column {exc.pos + 1}", col=exc.pos + 1)]
    except Exception:  # noqa: BLE001 - any other parser complaint is still invalid JSON
        pass
    return [_f("IVL001", ctx, "invalid JSON (rejected by orjson: number out of range or NaN/Infinity)", col=1)]


def _parses(raw: bytes) -> bool:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return True


def _json_type(obj: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(obj), "number")


def slow_record(ctx: LineCtx, seconds: float, budget: float) -> Finding:
    """IVL009: checking the record at ``ctx`` took ``seconds``, over the ``budget`` (--slow-record)."""
    return _f("IVL009", ctx, f"checking the record took {seconds:.3g} s, over the --slow-record budget of {budget:g} s")


def _f(code: str, ctx: LineCtx, message: str, col: int = 0, json_path: str = "") -> Finding:
    return emit(code, ctx.path, ctx.line, message, col=col, json_path=json_path, dataset=ctx.dataset)
