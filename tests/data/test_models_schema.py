"""Models -> JSON Schemas: no drift, Draft 2020-12, and agreement with the fast record checks."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from internvl_data.checks.lines import LineCtx, check_line
from internvl_data.checks.records import check_record
from internvl_data.checks.registry import rules_markdown
from internvl_data.cli.dispatch import main
from internvl_data.formats.lines import iter_lines
from internvl_data.formats.models import DatasetEntry, Meta, Record, record_kind
from internvl_data.formats.schema import DRAFT, meta_schema, record_schema, schema_texts, write_schemas
from tests.helpers.bench_data import write_bench_lines

ROOT = Path(__file__).resolve().parents[2]
RECORD = jsonschema.Draft202012Validator(record_schema())


def test_checked_in_files_do_not_drift() -> None:
    assert write_schemas(check=True, rules_doc=rules_markdown()) == [], (
        "run `ivl-data schema --write` and commit the result"
    )
    for name, text in schema_texts().items():
        assert (ROOT / "schemas" / f"{name}.schema.json").read_text() == text
        assert (ROOT / "internvl_data" / "_schemas" / f"{name}.schema.json").read_text() == text


def test_rules_doc_lists_every_rule() -> None:
    from internvl_data.checks.registry import all_rules

    doc = (ROOT / "docs" / "rules.md").read_text()
    assert doc == rules_markdown(), "docs/rules.md is stale: run `ivl-data schema --write`"
    for code, r in all_rules().items():
        assert f"## {code} {r.name} ({r.severity.value})" in doc


def test_schema_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "--check"]) == 0
    assert capsys.readouterr().out == "schemas up to date\n"
    assert main(["schema", "--which", "record"]) == 0
    assert json.loads(capsys.readouterr().out) == record_schema()
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == {"meta": meta_schema(), "record": record_schema()}


def test_schema_check_reports_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from internvl_data.formats import schema

    monkeypatch.setattr(schema, "PACKAGE_DIR", tmp_path / "pkg")
    monkeypatch.setattr(schema, "REPO_DIR", tmp_path / "repo")
    (tmp_path / "repo" / "schemas").mkdir(parents=True)
    assert main(["schema", "--check"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'repo' / 'schemas' / 'meta.schema.json'}: out of date" in err
    assert "fix: run `ivl-data schema --write`" in err
    assert main(["schema", "--write"]) == 0
    assert main(["schema", "--check"]) == 0
    assert (tmp_path / "pkg" / "_schemas" / "record.schema.json").read_text() == schema_texts()["record"]


def test_schemas_are_draft_2020_12_with_ids() -> None:
    for schema in (meta_schema(), record_schema()):
        assert schema["$schema"] == DRAFT and schema["$id"].endswith(".schema.json")
        jsonschema.Draft202012Validator.check_schema(schema)


def test_every_field_is_described() -> None:
    for model in (DatasetEntry, Record):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
    turn = record_schema()["$defs"]["Turn"]["properties"]
    assert all(p.get("description") for p in turn.values())


def test_meta_schema() -> None:
    v = jsonschema.Draft202012Validator(meta_schema())
    ok = {
        "a": {
            "root": "r",
            "annotation": "a.jsonl",
            "data_augment": False,
            "repeat_time": 0.5,
            "length": 3,
            "anything": 1,
        }
    }
    assert v.is_valid(ok)
    Meta.model_validate(ok)
    for bad in (
        [],
        {"a": 1},
        {"a": {"root": "r"}},
        {"a": {**ok["a"], "annotation": "a.json"}},
        {"a": {**ok["a"], "repeat_time": 0}},
        {"a": {**ok["a"], "data_augment": "false"}},
    ):
        assert not v.is_valid(bad), bad


def test_record_kind() -> None:
    assert [
        record_kind(r)
        for r in (
            {},
            {"image": ""},
            {"image": "a"},
            {"image": ["a"]},
            {"video": "v"},
            {"image": [], "video": "v"},
            {"video": None},
        )
    ] == ["text", "text", "single", "multi", "video", "video", "text"]


def _lines(path: Path) -> list[dict]:
    ctx = LineCtx(str(path))
    return [check_line(raw, ctx)[0] for _, _, raw in iter_lines(path)]


def valid_records(tmp: Path) -> list[dict]:
    recs = [r for p in sorted((ROOT / "fixtures" / "valid").glob("*.jsonl")) for r in _lines(p)]
    bench = write_bench_lines(tmp, 1500)
    return recs + (_lines(bench) if bench else [])


# Structural mutations: each makes a record invalid for the schema AND for the checks.
MUTATIONS = [
    lambda r: r.pop("conversations"),
    lambda r: r.update(conversations=[]),
    lambda r: r.update(conversations="hi"),
    lambda r: r["conversations"].append("hi"),
    lambda r: r["conversations"][0].pop("from"),
    lambda r: r["conversations"][0].pop("value"),
    lambda r: r["conversations"][-1].update(text=r["conversations"][-1].pop("value")),
    lambda r: r["conversations"][0].update(value=None),
    lambda r: r["conversations"][0].update(value=""),
    lambda r: r["conversations"][1].update({"from": "assistant"}),
    lambda r: r["conversations"][0].update({"from": 1}),
    lambda r: r.update(image=None),
    lambda r: r.update(image=7),
    lambda r: r.update(image=["a.jpg", 1]),
    lambda r: r.update(id=[1]),
    lambda r: r.update(id=None),
    lambda r: r.update(width="640"),
    lambda r: r.update(height=0),
    lambda r: r.update(width_list=[1, "2"]),
    lambda r: r.update(height_list=3),
    lambda r: r.update(clip=[1]),
    lambda r: r.update(clip=[0, "5"]),
    lambda r: r.update(video=5),
    lambda r: r.update(length="12"),
    lambda r: r.update(length=-1),
    lambda r: r.update(length=True),
]
# Changes that stay valid for both.
NEUTRAL = [
    lambda r: r.update(extra={"anything": [1, 2]}),
    lambda r: r.update(id=5.0),
    lambda r: r.update(width=640.0),
    lambda r: r.update(length=12.5),
    lambda r: r.update(video=None) if "image" not in r else None,
    lambda r: r["conversations"][0].update(note="extra key in a turn"),
]


def has_error(rec: dict) -> bool:
    return any(f.severity.value == "error" for f in check_record(rec, LineCtx("x", line=1)))


def test_schema_accepts_every_valid_record(tmp_path: Path) -> None:
    recs = valid_records(tmp_path)  # fixtures/valid, plus make_dataset.py records when ../shared is there
    assert len(recs) >= 17 and {record_kind(r) for r in recs} == {"text", "single", "multi", "video"}
    for rec in recs:
        assert RECORD.is_valid(rec), rec
        assert not has_error(rec), rec


def test_fast_checks_and_schema_agree(tmp_path: Path) -> None:
    recs = valid_records(tmp_path)
    recs = recs[:: max(1, len(recs) // 150)]  # ~150 bases x every mutation
    kinds = {record_kind(r) for r in recs}
    assert kinds == {"text", "single", "multi", "video"}
    for base in recs:
        for k, mutate in enumerate(MUTATIONS + NEUTRAL):
            rec = copy.deepcopy(base)
            mutate(rec)
            schema_rejects = not RECORD.is_valid(rec)
            assert schema_rejects == (k < len(MUTATIONS)), (k, rec)
            assert has_error(rec) == schema_rejects, (k, rec)
