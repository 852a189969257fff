"""Builders for tiny datasets written into tmp_path (validator tests)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from internvl_data.cli import dispatch as cli
from tests.helpers.records import write_jsonl

MakeMeta = Callable[..., Path]


@pytest.fixture
def make_meta(tmp_path: Path) -> MakeMeta:
    """``make_meta(name=[rows], ...)`` writes one JSONL per dataset and ``meta.json`` (with true lengths)."""

    def build(**datasets: list) -> Path:
        (tmp_path / "media").mkdir(exist_ok=True)
        meta = {}
        for name, rows in datasets.items():
            write_jsonl(tmp_path / f"{name}.jsonl", rows)
            meta[name] = {
                "root": "media",
                "annotation": f"{name}.jsonl",
                "data_augment": False,
                "repeat_time": 1,
                "length": len(rows),
            }
        path = tmp_path / "meta.json"
        path.write_text(json.dumps(meta, indent=2) + "\n")
        return path

    return build


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `ivl-data ARGS` in this process; returns (exit code, stdout, stderr) and asserts no traceback."""

    def run(*args: object) -> tuple[int, str, str]:
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    return run
