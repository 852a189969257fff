"""Issue 14 item 2: per-repository settings ([tool.ivl-data] / .ivl-data.toml), and item 6: META `-` (stdin)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from internvl_data.cli.dispatch import main as ivl_data
from tests.helpers.records import clean, conv, write_jsonl

BIN = Path(sys.executable).parent


@pytest.fixture
def ds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """repo/pyproject.toml (no table) + repo/data/{meta.json, train.jsonl}: line 2 has IVL214, line 3 IVL212."""
    repo = tmp_path / "repo"
    (repo / "data" / "media").mkdir(parents=True)
    rows = [
        clean(1),
        {"id": "no-image-ph", "image": "x.png", "conversations": conv("Describe.", "A cat.")},
        {"id": 3, "conversations": conv("Q?", "A.", "Q2?")},
    ]
    write_jsonl(repo / "data" / "train.jsonl", rows)
    meta = {"train": {"root": "media", "annotation": "train.jsonl", "data_augment": False, "repeat_time": 1}}
    (repo / "data" / "meta.json").write_text(json.dumps(meta, indent=2))
    (repo / "pyproject.toml").write_text('[project]\nname = "x"\n')
    monkeypatch.chdir(repo)
    return repo


def codes(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.startswith("data/")]


def validate(capsys, *args: str) -> tuple[int, str, str]:
    code = ivl_data(["validate", "data/meta.json", "--no-manifest", "--no-progress", "--media", "off", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_without_settings(ds, capsys):
    code, out, _ = validate(capsys)
    assert code == 1 and codes(out) == ["IVL113", "IVL214", "IVL212"]


def test_pyproject_table_found_walking_up_from_the_meta_file(ds, capsys, monkeypatch):
    (ds / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.ivl-data]\nignore = ["IVL113", "ivl214"]\n')
    monkeypatch.chdir(ds / "data")  # the walk starts at the meta file, not the current folder
    code = ivl_data(["validate", "meta.json", "--no-manifest", "--media", "off"])
    out = capsys.readouterr().out
    assert code == 1 and [line.split()[1] for line in out.splitlines()[:-2]] == ["IVL212"]
    assert out.splitlines()[-2] == "By code: IVL212 x 1"


def test_flags_override_settings_and_isolated_ignores_them(ds, capsys):
    (ds / ".ivl-data.toml").write_text('select = ["IVL214"]\nstrict = true\n')
    code, out, _ = validate(capsys)
    assert code == 1 and codes(out) == ["IVL214"]  # a warning, an error under `strict`
    code, out, _ = validate(capsys, "--select", "IVL212")
    assert codes(out) == ["IVL212"]
    code, out, _ = validate(capsys, "--isolated")
    assert codes(out) == ["IVL113", "IVL214", "IVL212"]


def test_dot_file_wins_over_pyproject_in_the_same_folder_and_config_names_one(ds, capsys, tmp_path):
    (ds / "pyproject.toml").write_text('[tool.ivl-data]\nignore = ["IVL2"]\n')
    (ds / ".ivl-data.toml").write_text('ignore = ["IVL1"]\n')
    assert codes(validate(capsys)[1]) == ["IVL214", "IVL212"]
    other = tmp_path / "elsewhere.toml"
    other.write_text('select = ["IVL113"]\n')
    assert codes(validate(capsys, "--config", str(other))[1]) == ["IVL113"]


def test_per_rule_severity_changes_the_exit_code(ds, capsys):
    (ds / ".ivl-data.toml").write_text('ignore = ["IVL113"]\n[severity]\nIVL212 = "info"\nIVL214 = "info"\n')
    code, out, _ = validate(capsys)
    assert code == 0 and "(0 errors, 0 warnings, 2 info)" in out


def test_single_finding_ignores_by_line_and_id_and_stale_entries(ds, capsys):
    (ds / ".ivl-data.toml").write_text(
        'ignore = ["IVL113"]\n'
        'ignore-findings = ["data/train.jsonl:3:IVL212", "id:no-image-ph", "data/train.jsonl:1", "id:gone:IVL214"]\n'
    )
    code, out, err = validate(capsys)
    assert code == 0 and codes(out) == []
    assert err.splitlines() == [
        "ivl-data: warning: .ivl-data.toml: ignore-findings entry 'data/train.jsonl:1' matches no finding; remove it",
        "ivl-data: warning: .ivl-data.toml: ignore-findings entry 'id:gone:IVL214' matches no finding; remove it",
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('ignroe = ["IVL1"]', ".ivl-data.toml: unknown key 'ignroe'; did you mean 'ignore'?"),
        ("max_pixels = 5", ".ivl-data.toml: unknown key 'max_pixels'; did you mean 'max-pixels'?"),
        ("media = 3", ".ivl-data.toml: 'media' must be a string, not int 3"),
        (
            "[severity]\nIVL1 = 'fatal'",
            ".ivl-data.toml: severity of IVL1 must be one of error, warning, info, not 'fatal'",
        ),
        ("ignore = [", ".ivl-data.toml: invalid TOML: "),
        (
            'ignore-findings = ["train.jsonl"]',
            ".ivl-data.toml: ignore-findings entry 'train.jsonl' is not FILE:LINE[:CODE] or id:ID[:CODE]",
        ),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(ds, capsys, text, message):
    (ds / ".ivl-data.toml").write_text(text + "\n")
    code, out, err = validate(capsys)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("ivl-data validate: error: " + message), err


def test_meta_key_gives_the_default_meta_files(ds, capsys):
    (ds / ".ivl-data.toml").write_text('meta = ["data/meta.json"]\nmedia = "off"\n')
    code = ivl_data(["validate", "--no-manifest"])
    assert code == 1 and codes(capsys.readouterr().out) == ["IVL113", "IVL214", "IVL212"]
    (ds / ".ivl-data.toml").unlink()
    assert ivl_data(["validate", "--no-manifest"]) == 2
    assert "give a META file" in capsys.readouterr().err


def test_meta_from_stdin_resolves_against_the_current_folder(ds):
    meta = json.loads((ds / "data" / "meta.json").read_text())
    meta["train"].update(root="data/media", annotation="data/train.jsonl")
    cmd = [str(BIN / "ivl-data"), "validate", "-", "--media", "off", "--isolated"]
    proc = subprocess.run(cmd, input=json.dumps(meta), capture_output=True, text=True, cwd=ds, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "-:1:1: IVL113 dataset 'train': no 'length' (line count)"
    assert [line.split(":")[:2] for line in lines[1:3]] == [["data/train.jsonl", "2"], ["data/train.jsonl", "3"]]
    assert not list(ds.glob(".ivl-stdin-*")) and not list(ds.rglob("*manifest*"))
    stats = subprocess.run(
        [str(BIN / "ivl-data"), "stats", "-", "--format", "json", "--no-progress"],
        input=json.dumps(meta),
        capture_output=True,
        text=True,
        cwd=ds,
        check=False,
    )
    assert stats.returncode == 0, stats.stderr
    result = json.loads(stats.stdout)
    assert result["meta"] == "-" and result["summary"][0]["lines"] == 3


def test_stdin_on_a_terminal_is_a_usage_error(ds, capsys, monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    assert ivl_data(["validate", "-"]) == 2
    assert "standard input is a terminal" in capsys.readouterr().err


def test_the_readme_examples_are_valid(tmp_path):
    """The [tool.ivl-data] example of the README loads, and its hooks block names the hooks that exist."""
    import re

    import yaml

    from internvl_data import config_file

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    toml = re.search(r"```toml\n(\[tool\.ivl-data\].*?)```", readme, re.DOTALL)[1]
    (tmp_path / "pyproject.toml").write_text(toml)
    settings = config_file.load(str(tmp_path / "pyproject.toml"))
    assert settings.values["severity"] == {"IVL110": "info"} and len(settings.values["ignore-findings"]) == 3
    hooks_block = re.search(r"```yaml\n(repos:.*?)```", readme, re.DOTALL)[1]
    ids = [h["id"] for h in yaml.safe_load(hooks_block)["repos"][0]["hooks"]]
    shipped = [
        h["id"] for h in yaml.safe_load((Path(__file__).resolve().parents[2] / ".pre-commit-hooks.yaml").read_text())
    ]
    assert ids == shipped
