"""Property tests (hypothesis): mutated lines, records and meta files never raise, and every finding is located.

Also: the record schema and the fast checks agree on arbitrary JSON records in both directions for structure.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from internvl_data.checks.findings import Finding, Severity
from internvl_data.checks.lines import LineCtx, check_line
from internvl_data.checks.records import _findings, check_record
from internvl_data.checks.registry import all_rules
from internvl_data.formats import lines
from internvl_data.formats.meta import load_meta
from internvl_data.formats.schema import record_schema
from internvl_data.validator import cache
from internvl_data.validator import driver as engine

ROOT = Path(__file__).resolve().parents[2]
CODES = set(all_rules())
RECORD = jsonschema.Draft202012Validator(record_schema())
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Error codes that mean "structurally invalid" in the schema's sense.
STRUCTURAL = {"IVL201", "IVL202", "IVL203", "IVL204", "IVL205", "IVL207", "IVL211", "IVL223", "IVL225"}

BASE_LINES = [raw for p in sorted((ROOT / "fixtures" / "valid").glob("*.jsonl")) for _, _, raw in lines.iter_lines(p)]
BASE_META = (ROOT / "fixtures" / "valid" / "meta.json").read_bytes()


def assert_located(findings: list[Finding], path: str, line: int | None) -> None:
    for f in findings:
        assert f.code in CODES and isinstance(f.severity, Severity)
        assert f.path == path and isinstance(f.line, int) and f.line >= 0
        if line is not None:
            assert f.line == line
        assert f.message


@st.composite
def mutated(draw: st.DrawFn, base: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(base)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        chunk = draw(
            st.binary(min_size=1, max_size=4)
            | st.sampled_from(
                [b'"', b"{", b"}", b",", b":", b"\\", b"\xff", b"\xef\xbb\xbf", b"\r", b"<image>", b"null", b"[]"]
            )
        )
        if op == "insert":
            data[pos:pos] = chunk
        elif op == "delete":
            del data[pos : pos + len(chunk)]
        elif op == "replace":
            data[pos : pos + len(chunk)] = chunk
        else:
            del data[pos:]
    return bytes(data).replace(b"\n", b" ")


@SETTINGS
@given(raw=mutated(BASE_LINES), template=st.sampled_from([None, "internvl2_5", "Hermes-2"]))
def test_mutated_lines_never_raise(raw: bytes, template: str | None) -> None:
    ctx = LineCtx("d.jsonl", line=3, dataset="ds", template=template, long_line=400)
    obj, found = check_line(raw, ctx)
    assert_located(found, "d.jsonl", 3)
    if obj is not None:
        assert isinstance(obj, dict)
        assert_located(check_record(obj, ctx), "d.jsonl", 3)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2000)
    | st.floats(-2, 2000, allow_nan=False)
    | st.sampled_from(
        [
            "",
            " ",
            "a.jpg",
            "<image>\n",
            "<video>\n",
            "<video>",
            "<img>",
            "<box>[[1, 2, 3, 4]]</box>",
            "<ref>x</ref>",
            "hi",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["from", "value", "text"]), children, max_size=3)
    ),
    max_leaves=8,
)
TURN = st.fixed_dictionaries(
    {},
    optional={
        "from": st.sampled_from(["human", "gpt", "system", "user"]) | JSON,
        "value": st.text(alphabet="ab <>\n/imagevdo", max_size=20) | JSON,
        "text": st.just("x"),
    },
)
RECORD_ST = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON,
        "conversations": st.lists(TURN, max_size=5) | JSON,
        "image": JSON | st.lists(st.just("a.jpg"), max_size=3),
        "video": JSON,
        "clip": JSON,
        "width": JSON,
        "height": JSON,
        "width_list": JSON,
        "height_list": JSON,
        "length": JSON,
        "other": JSON,
    },
)


@SETTINGS
@given(rec=RECORD_ST, template=st.sampled_from([None, "internvl2_5", "phi3-chat"]))
def test_arbitrary_records_never_raise_and_agree_with_the_schema(rec: dict, template: str | None) -> None:
    rec = json.loads(json.dumps(rec))  # JSON-representable values only, as orjson would give
    ctx = LineCtx("d.jsonl", line=1, template=template)
    found = check_record(rec, ctx)
    assert found == _findings(rec, ctx)  # the fast path never hides what the detailed pass finds
    assert_located(found, "d.jsonl", 1)
    errors = {f.code for f in found if f.severity is Severity.ERROR}
    schema_ok = RECORD.is_valid(rec)
    if not schema_ok:
        assert errors, rec  # whatever the schema rejects, the checks reject
    if errors & STRUCTURAL:
        assert not schema_ok, (errors, rec)


@SETTINGS
@given(raw=mutated([BASE_META.replace(b"\n", b"\x00")]))
def test_mutated_meta_files_never_raise(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "meta.json"
        path.write_bytes(raw.replace(b"\x00", b"\n"))
        result = load_meta(str(path))
        assert_located(result.findings, str(path), None)


@SETTINGS
@given(
    meta=st.dictionaries(
        st.text(max_size=4),
        st.dictionaries(
            st.sampled_from(["root", "annotation", "data_augment", "repeat_time", "length", "max_dynamic_patch", "x"]),
            JSON,
            max_size=6,
        )
        | JSON,
        max_size=3,
    )
)
def test_arbitrary_meta_objects_never_raise(meta: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "meta.json"
        path.write_text(json.dumps(meta))
        result = load_meta(str(path))
        assert_located(result.findings, str(path), None)
        assert [e.name for e in result.entries] == [k for k, v in meta.items() if isinstance(v, dict)]


ID = (
    st.integers(-3, 30)
    | st.sampled_from(["1", "a", "b", "é", 1.5, 2.0, -0.0, 0.0, None, True, [1]])
    | st.integers(2**62, 2**64 - 1)
    | st.integers(-(2**63), -(2**62))
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(ID, st.integers(0, 90)), max_size=40), block=st.integers(16, 200))
def test_duplicate_ids_match_a_first_seen_dict(rows: list[tuple[Any, int]], block: int) -> None:
    """IVL224 across blocks, in and out of worker processes, against a plain dict of first lines."""
    data = b"".join(orjson.dumps({"id": rid, "pad": "x" * pad}) + b"\n" for rid, pad in rows)
    want, seen = [], {}
    for line, raw in enumerate(data.splitlines(), start=1):
        rid = orjson.loads(raw)["id"]  # as the validator reads it
        if type(rid) not in (int, str, float):
            continue
        key = (type(rid), repr(rid))
        if key in seen:
            want.append((line, f"duplicate id {rid!r} (first used at line {seen[key]})"))
        seen.setdefault(key, line)
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        path = Path(tmp) / "d.jsonl"
        path.write_bytes(data)
        mp.setattr(cache, "BLOCK", block)
        mp.setattr(engine, "SMALL", 0)
        for jobs in (1, 2):
            report = engine.validate_jsonl([str(path)], jobs=jobs, select=["IVL224"], progress=False)
            assert [(f.line, f.message) for f in report.findings] == want


@SETTINGS
@given(data=st.binary(max_size=300).map(lambda b: b.replace(b"x", b"\n")))
def test_lines_and_count_match_split(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.jsonl"
        path.write_bytes(data)
        want = data.split(b"\n")
        if data.endswith(b"\n") or not data:
            want.pop()
        assert [raw for _, _, raw in lines.iter_lines(path)] == want
        assert [ln for ln, _, _ in lines.iter_lines(path)] == list(range(1, len(want) + 1))
        assert lines.count_lines(path) == len(want)
