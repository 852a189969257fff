"""The hooks of .pre-commit-hooks.yaml, run the way pre-commit runs them on a small dataset repository.

pre-commit splits ``entry`` with shlex, appends ``args`` and the staged files that match ``files``, and
runs the command in the repository root. We do exactly that with the installed ``ivl-data``. The real
``pre-commit try-repo`` (which builds a fresh virtualenv and installs ivl-kit from PyPI-hosted
dependencies, about a minute) runs only with IVL_PRECOMMIT_TRY_REPO=1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.precommit import BIN, HOOKS, REPO, git, run_hook
from tests.helpers.records import clean, write_jsonl


@pytest.fixture
def dataset_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "ds"
    (repo / "data" / "images").mkdir(parents=True)
    write_jsonl(repo / "data" / "chat.jsonl", [clean(1), clean(2)])
    meta = {
        "chat": {"root": "images", "annotation": "chat.jsonl", "data_augment": False, "repeat_time": 1, "length": 2}
    }
    (repo / "data" / "meta_chat.json").write_text(json.dumps(meta))
    (repo / "README.md").write_text("dataset\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    return repo


def test_hooks_catalogue() -> None:
    assert set(HOOKS) == {"ivl-data-validate", "ivl-data-check-jsonl"}
    for hook in HOOKS.values():
        assert hook["language"] == "python" and shlex.split(hook["entry"])[:2] == ["ivl-data", "pre-commit"]
    assert "files" not in HOOKS["ivl-data-validate"] and HOOKS["ivl-data-validate"]["types"] == ["file"]
    assert re.search(HOOKS["ivl-data-check-jsonl"]["files"], "data/chat.jsonl")
    assert "--loose" in HOOKS["ivl-data-check-jsonl"]["entry"]


def test_meta_hook_passes_then_fails_on_a_broken_record(dataset_repo: Path) -> None:
    ok = run_hook(dataset_repo, "ivl-data-validate")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Found 0 problems" in ok.stdout and not list(dataset_repo.rglob("*manifest*"))
    write_jsonl(dataset_repo / "data" / "chat.jsonl", [clean(1), {"id": 2, "conversations": []}])
    git(dataset_repo, "add", ".")
    bad = run_hook(dataset_repo, "ivl-data-validate")
    assert bad.returncode == 1
    assert bad.stdout.startswith("data/chat.jsonl:2:1: IVL201 ")
    assert "Traceback" not in bad.stderr


def test_jsonl_hook_checks_each_staged_file_no_meta_lists(dataset_repo: Path) -> None:
    write_jsonl(dataset_repo / "data" / "extra.jsonl", [clean(1), "{oops"])
    git(dataset_repo, "add", ".")
    proc = run_hook(dataset_repo, "ivl-data-check-jsonl")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0].startswith("data/extra.jsonl:2:2: IVL001 invalid JSON")
    assert "in 1 file, 1 record" in proc.stdout  # data/chat.jsonl is listed by meta_chat.json: the other hook's


def test_meta_hook_with_a_cache_folder(dataset_repo: Path) -> None:
    stored = []
    for _ in range(2):
        proc = run_hook(dataset_repo, "ivl-data-validate", ("--cache", ".ivl-cache"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        stored.append({p.name: p.stat().st_mtime_ns for p in (dataset_repo / ".ivl-cache" / "results").glob("*.json")})
    assert stored[0] and stored[1] == stored[0]  # the re-run is served from the cache: no entry written again


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("IVL_PRECOMMIT_TRY_REPO"), reason="needs PyPI; set IVL_PRECOMMIT_TRY_REPO=1")
def test_pre_commit_try_repo(dataset_repo: Path, tmp_path: Path) -> None:  # pragma: no cover - opt-in
    git(dataset_repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc")}
    pc = shutil.which("pre-commit") or str(BIN / "pre-commit")
    for hook in HOOKS:
        proc = subprocess.run(
            [pc, "try-repo", str(REPO), hook, "--all-files"], cwd=dataset_repo, capture_output=True, text=True, env=env
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
