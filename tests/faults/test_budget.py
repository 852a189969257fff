"""Issue 13 item 3: a per-record budget. A record whose text is over 64 characters per --max-seq-length token is
reported (IVL407, with its line) and never tokenized, so one huge line cannot stall validate, stats or lengths.
(Measured on a 50 MB line: see docs/decisions.md.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_data.stats.tokens import over_budget


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.tokenizers import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("model") / "m", "Hermes-2", "qwen2")


def test_the_budget_is_64_characters_per_token() -> None:
    rec = {"conversations": [{"from": "human", "value": "x" * 2_000_000}, {"from": "gpt", "value": "y" * 97_152}]}
    assert over_budget(rec, 32_768) == ""  # 2,097,152 characters: at the budget
    assert over_budget(rec, 16) == (  # the floor: 1,048,576 characters
        "IVL407: the record has 2,097,152 characters of text, over the per-record budget of 1,048,576 "
        "(64 per --max-seq-length token, at least 1,048,576); it was not tokenized"
    )
    rec["conversations"][1]["value"] += "z"
    assert over_budget(rec, 32_768).startswith("IVL407: the record has 2,097,153 characters")


def test_validate_and_stats_report_the_line(tmp_path: Path, model: Path, capsys) -> None:
    from internvl_data.cli.dispatch import main

    short = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    huge = {"conversations": [{"from": "human", "value": "x" * 1_100_000}, {"from": "gpt", "value": "ok"}]}
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (short, huge, short)))
    meta = {"d": {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": 3}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    args = [str(tmp_path / "meta.json"), "--model", str(model), "--max-seq-length", "16"]
    assert main(["validate", *args, "--no-manifest", "--media", "off", "--select", "IVL407"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"{tmp_path / 'd.jsonl'}:2:1: IVL407 the record has 1,100,002 characters of text, over the per-record "
        "budget of 1,048,576 (64 per --max-seq-length token, at least 1,048,576); it was not tokenized"
    )
    assert main(["stats", *args, "--no-cache", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert '"build_errors": 1' in out
    assert err.splitlines() == [
        f"{tmp_path / 'd.jsonl'}:2: IVL407: the record has 1,100,002 characters of text, over the per-record budget "
        "of 1,048,576 (64 per --max-seq-length token, at least 1,048,576); it was not tokenized; not counted"
    ]


def test_the_time_budget_times_records_only_when_media_or_token_checks_run(tmp_path: Path, model: Path, capsys) -> None:
    """IVL009 (--slow-record): with --media off and no --model nothing is timed (the fast path reads no clock);
    with media checks or a model every record over the budget is reported, as a warning (exit 0)."""
    from internvl_data.cli.dispatch import main

    rec = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}
    (tmp_path / "d.jsonl").write_text(json.dumps(rec) + "\n" + json.dumps(rec) + "\n")
    meta = {"d": {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 1, "length": 2}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    base = ["validate", str(tmp_path / "meta.json"), "--no-manifest", "--slow-record", "1e-9", "--select", "IVL009"]
    assert main([*base, "--media", "off"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("Found 0 problems")
    for extra in (["--media", "exists"], ["--media", "off", "--model", str(model)]):
        assert main([*base, *extra]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split(" took ")[0] for line in lines[:2]] == [
            f"{tmp_path / 'd.jsonl'}:{n}:1: IVL009 checking the record" for n in (1, 2)
        ]
        assert lines[-1].startswith("Found 2 problems (0 errors, 2 warnings, 0 info)")
