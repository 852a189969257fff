"""The hooks of ``.pre-commit-hooks.yaml``, run the way pre-commit runs them (tests/data/test_precommit.py,
tests/ux/test_hooks.py).

pre-commit lists the staged files (``git diff --staged --name-only --diff-filter=ACMRTUXB``), keeps those that match
the hook's ``files`` regex, splits ``entry`` with shlex, appends ``args`` and the files, and runs the command in the
repository root. :func:`run_hook` does exactly that with the installed ``ivl-data``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
HOOKS = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
BIN = Path(sys.executable).parent


def git(cwd: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args]
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


def run_hook(repo: Path, hook_id: str, extra_args: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    hook = HOOKS[hook_id]
    staged = git(repo, "diff", "--staged", "--name-only", "--diff-filter=ACMRTUXB").split()
    files = [f for f in staged if re.search(hook.get("files", ""), f) and (repo / f).is_file()]
    cmd = shlex.split(hook["entry"]) + list(hook.get("args", [])) + list(extra_args) + files
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(cmd, check=False, cwd=repo, capture_output=True, text=True, env=env)
