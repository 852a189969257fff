"""`pip install ivl-kit` (no extras) gives `ivl-data validate`: it runs with torch, transformers and pandas absent
and never loads the stats, token or render code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VALID = ROOT / "fixtures" / "valid"
ABSENT = ("torch", "transformers", "pandas")
# The stats driver, the token counters and render; validate's media checks may borrow stats.types.Settings.
NOT_LOADED = (
    "internvl_data.stats.compute",
    "internvl_data.stats.tokens",
    "internvl_data.stats.piece_cache",
    "internvl_data.stats.output",
    "internvl_data.stats.plan",
    "internvl_data.cli.stats",
    "internvl_data.pipeline.render",
    "internvl_data.cli.render",
    "internvl_data.stats.lengths",
    "internvl_data.cli.lengths",
    "internvl_data.pipeline.labels",
    "internvl_data.pipeline.tokenizer",
    "tokenizers",
    "matplotlib",
)
SCRIPT = """
import json, sys
for name in {absent!r}:
    sys.modules[name] = None  # `import name` now raises ImportError, as when it is not installed
from internvl_data.cli.dispatch import main
code = main(sys.argv[1:])
print(json.dumps([m for m in {not_loaded!r} if m in sys.modules]), file=sys.stderr)
sys.exit(code)
"""


@pytest.mark.parametrize("media", ["header", "decode"])
def test_validate_runs_without_torch_transformers_or_pandas(tmp_path: Path, media: str) -> None:
    copy = tmp_path / "valid"
    shutil.copytree(VALID, copy, symlinks=True, ignore=shutil.ignore_patterns("*.ivl-manifest.json"))
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    script = SCRIPT.format(absent=ABSENT, not_loaded=NOT_LOADED)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "validate",
            str(copy / "meta.json"),
            "--media",
            media,
            "--format",
            "text",
            "--no-manifest",
            "--no-progress",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(
        r"^Found 2 problems \(0 errors, 2 warnings, 0 info\) in 5 files, 17 records, in ", proc.stdout, re.M
    ), proc.stdout
    *messages, loaded = proc.stderr.splitlines()
    assert "Traceback" not in proc.stderr and messages == [], proc.stderr
    assert json.loads(loaded) == []
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before  # nothing written beside the meta file
