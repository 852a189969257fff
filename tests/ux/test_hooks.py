"""Issue 14 item 1: the pre-commit hooks see every change, run the way pre-commit runs them
(:func:`tests.helpers.precommit.run_hook`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from internvl_data import hooks
from tests.helpers.precommit import git, run_hook
from tests.helpers.records import clean, conv, write_jsonl


def image_record(rid: str, path: str) -> dict:
    return {"id": rid, "image": path, "conversations": conv("<image>\nWhat is it?", "A square.")}


def meta_of(**datasets: str) -> str:
    return json.dumps(
        {
            name: {"root": "images", "annotation": ann, "data_augment": False, "repeat_time": 1, "length": 2}
            for name, ann in datasets.items()
        },
        indent=2,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed dataset repository: the official meta name, a second meta sharing one JSONL, an unrelated one."""
    r = tmp_path / "ds"
    (r / "data" / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        Image.new("RGB", (32, 24), "red").save(r / "data" / "images" / name)
    write_jsonl(r / "data" / "train.jsonl", [image_record("1", "a.png"), image_record("2", "b.png")])
    write_jsonl(r / "data" / "text.jsonl", [clean(1), clean(2)])
    (r / "data" / "internvl_finetune_custom.json").write_text(meta_of(train="train.jsonl", text="text.jsonl"))
    (r / "data" / "subset.json").write_text(meta_of(train="train.jsonl"))
    (r / "data" / "other_meta.json").write_text(meta_of(text="text.jsonl"))
    (r / "data" / "labels.json").write_text('{"cat": 1}')
    (r / "README.md").write_text("dataset\n")
    git(r, "init", "-q")
    git(r, "add", ".")
    git(r, "commit", "-qm", "init")
    return r


def test_a_commit_that_only_changes_a_jsonl_whose_record_lost_its_image(repo: Path) -> None:
    write_jsonl(repo / "data" / "train.jsonl", [image_record("1", "a.png"), image_record("2", "gone.png")])
    git(repo, "add", "data/train.jsonl")
    proc = run_hook(repo, "ivl-data-validate")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    missing = [line for line in proc.stdout.splitlines() if line.startswith("data/") and " IVL301 " in line]
    assert len(missing) == 1 and re.match(r"data/train.jsonl:2:\d+: IVL301 'gone.png' does not exist", missing[0])
    # both meta files that list train.jsonl are validated (the shared finding shown once); other_meta.json is not
    assert proc.stderr.splitlines() == [
        "ivl-data pre-commit: data/internvl_finetune_custom.json (lists data/train.jsonl)",
        "ivl-data pre-commit: data/subset.json (lists data/train.jsonl)",
    ]
    assert run_hook(repo, "ivl-data-check-jsonl").returncode == 0  # listed by a meta file: not the loose hook's


def test_a_changed_image_validates_the_meta_files_that_list_its_root(repo: Path) -> None:
    (repo / "data" / "images" / "b.png").write_bytes(b"<html>not an image</html>")
    git(repo, "add", "data/images/b.png")
    proc = run_hook(repo, "ivl-data-validate")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"^data/train.jsonl:2:\d+: IVL3\d\d ", proc.stdout, re.MULTILINE), proc.stdout
    assert "data/subset.json (lists data/images/b.png)" in proc.stderr


def test_a_changed_meta_file_with_any_name_is_validated(repo: Path) -> None:
    meta = json.loads((repo / "data" / "internvl_finetune_custom.json").read_text())
    meta["text"]["repeat_time"] = 0
    (repo / "data" / "internvl_finetune_custom.json").write_text(json.dumps(meta, indent=2))
    git(repo, "add", ".")
    proc = run_hook(repo, "ivl-data-validate")
    assert proc.returncode == 1
    assert [line.split()[1] for line in proc.stdout.splitlines() if ": IVL" in line].count("IVL109") == 1


def test_unrelated_changes_check_nothing(repo: Path) -> None:
    (repo / "README.md").write_text("changed\n")
    (repo / "data" / "labels.json").write_text('{"cat": 2}')
    git(repo, "add", ".")
    proc = run_hook(repo, "ivl-data-validate")
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr == "ivl-data pre-commit: no changed file that a meta file lists; nothing to check\n"


def test_both_hooks_never_print_a_finding_twice(repo: Path) -> None:
    write_jsonl(repo / "data" / "train.jsonl", [image_record("1", "a.png"), {"id": "2", "conversations": []}])
    write_jsonl(repo / "data" / "scratch.jsonl", ["{oops"])
    git(repo, "add", ".")
    meta_hook, loose_hook = run_hook(repo, "ivl-data-validate"), run_hook(repo, "ivl-data-check-jsonl")
    assert (meta_hook.returncode, loose_hook.returncode) == (1, 1)
    assert "scratch.jsonl" not in meta_hook.stdout and "train.jsonl" not in loose_hook.stdout
    assert loose_hook.stdout.startswith("data/scratch.jsonl:1:")
    ivl201 = [line for line in meta_hook.stdout.splitlines() if line.startswith("data/") and " IVL201 " in line]
    assert len(ivl201) == 1  # train.jsonl is listed by two meta files: validated for both, reported once


def test_meta_discovery_by_content(repo: Path) -> None:
    files = hooks.repository_files(str(repo))
    assert "README.md" in files and "data/images/a.png" in files
    found = hooks.find_meta_files(files, str(repo))
    assert found == ["data/internvl_finetune_custom.json", "data/other_meta.json", "data/subset.json"]


def test_the_hook_reads_the_repository_settings(repo: Path) -> None:
    (repo / "pyproject.toml").write_text('[tool.ivl-data]\nignore-findings = ["data/train.jsonl:2:IVL301"]\n')
    write_jsonl(repo / "data" / "train.jsonl", [image_record("1", "a.png"), image_record("2", "gone.png")])
    git(repo, "add", "data/train.jsonl")
    proc = run_hook(repo, "ivl-data-validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "IVL301" not in proc.stdout
