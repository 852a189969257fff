"""Issue 14 item 9: `validate --model` counts through the stats token path: the same figures as `stats --model`.

The speed half (within 1.2x of `stats --model` on 100,000 make_dataset.py records) is measured by
benchmarks/validate_model_throughput.py (docs/benchmarks.md); this test checks the figures on the bundled data.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_data.cli.dispatch import main as ivl_data
from tests.helpers.tokenizers import write_model_dir

VALID = Path(__file__).resolve().parents[2] / "fixtures" / "valid"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("m") / "qwen2", "Hermes-2", "qwen2")


@pytest.mark.parametrize("max_seq_length", [200, 300, 800])
def test_validate_and_stats_count_the_same_over_length_records(tmp_path, capsys, model, max_seq_length):
    meta = json.loads((VALID / "meta.json").read_text())
    for entry in meta.values():  # every line once: validate checks lines, stats counts the mixture
        entry.update(root=str(VALID), annotation=str(VALID / entry["annotation"]), repeat_time=1)
        entry.pop("length", None)
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(meta))
    common = ["--model", str(model), "--max-seq-length", str(max_seq_length)]
    assert ivl_data(["stats", str(path), *common, "--format", "json", "--no-cache", "--no-progress"]) == 0
    mixture = json.loads(capsys.readouterr().out)["summary"][-1]
    assert mixture["dataset"] == "(mixture)"
    ivl_data(
        ["validate", str(path), *common, "--select", "IVL4", "--no-manifest", "--max-per-rule", "0", "--format", "json"]
    )
    found = json.loads(capsys.readouterr().out)["summary"]["suppressed"]
    n = {code: found.get(code, 0) for code in ("IVL401", "IVL402", "IVL403", "IVL404", "IVL405", "IVL406")}
    videos = n["IVL405"] + n["IVL406"]
    assert mixture["over_length"] == n["IVL401"] + n["IVL402"] + videos > 0
    assert mixture["truncated_image"] == n["IVL402"]  # images only: an over-long video is IVL405 / IVL406
    assert mixture["video_cannot_fit"] == n["IVL405"]
    assert (mixture["zero_supervised"], mixture["official_mismatch"]) == (n["IVL403"], n["IVL404"])
