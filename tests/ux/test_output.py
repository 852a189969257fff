"""Issue 14 item 4: output that reads well (stats tables in 80 columns, render on an empty mixture)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from internvl_data.cli.dispatch import main as ivl_data
from internvl_data.cli.stats import load_datasets
from internvl_data.stats import output
from internvl_data.stats.compute import compute
from internvl_data.stats.types import Settings
from internvl_train.tiny import write_tiny_checkpoint
from tests.helpers.records import clean, write_jsonl

VALID = Path(__file__).resolve().parents[2] / "fixtures" / "valid"


def test_stats_tables_fit_80_columns_without_cutting_names_or_numbers(tmp_path):
    shutil.copytree(VALID, tmp_path / "d")
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    long_name = "perf_mixed_dataset_with_a_long_name"
    meta[long_name] = meta.pop("mixed") | {"repeat_time": 79368}  # six-digit effective counts
    (tmp_path / "d" / "meta.json").write_text(json.dumps(meta))
    path = str(tmp_path / "d" / "meta.json")
    result = compute(path, load_datasets(path), Settings(), 1, False, None)
    wide, narrow = io.StringIO(), io.StringIO()
    output.print_tables(result, wide)
    output.print_tables(result, narrow, width=80)
    lines = narrow.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80 < max(len(line) for line in wide.getvalue().splitlines())
    assert f"  {long_name}" in lines and "    effective  396,840" in lines  # 5 lines x 79,368, whole
    assert "…" not in narrow.getvalue() and "..." not in narrow.getvalue()


def test_render_says_0_records_for_an_empty_mixture(tmp_path, capsys):
    write_jsonl(tmp_path / "a.jsonl", [clean(1)])
    meta = {"a": {"root": ".", "annotation": "a.jsonl", "data_augment": False, "repeat_time": 0.5, "length": 1}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt", "qwen2", "300m")
    assert ivl_data(["render", str(tmp_path / "meta.json"), "--model", str(ckpt)]) == 0
    out, err = capsys.readouterr()
    assert out == "" and err == "ivl-data render: 0 records (the mixture is empty after repeat_time)\n"


def test_html_report_reads_yes_no_and_has_no_empty_panels(tmp_path):
    import re

    write_jsonl(tmp_path / "t.jsonl", [clean(1), clean(2)])
    meta = {"t": {"root": ".", "annotation": "t.jsonl", "data_augment": False, "repeat_time": 1, "length": 2}}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    path = str(tmp_path / "meta.json")
    result = compute(path, load_datasets(path), Settings(), 1, False, None)
    page = output.to_html(result)
    settings = dict(re.findall(r"<li><code>(\w+)</code>: ([^<]*)</li>", page))
    assert settings["use_thumbnail"] == "yes" and settings["model_dir"] == "-" and settings["max_dynamic_patch"] == "6"
    assert "True" not in page and "None" not in page and "False" not in page
    assert output.plot_pngs(result) == {} and "Histograms" not in page  # a text-only mixture has no tiles
    mixed = str(VALID / "meta.json")
    pngs = output.plot_pngs(compute(mixed, load_datasets(mixed), Settings(), 1, False, None))
    assert sorted(pngs) == ["tiles_per_image", "tiles_per_record"]


def test_progress_eta_uses_the_whole_run_rate():
    from internvl_data.parallel import eta_seconds

    # lengths finishes work in bursts: half the lines after 10 s, a slow file, then a burst again
    assert eta_seconds(10.0, 50, 100) == 10.0
    assert round(eta_seconds(60.0, 55, 100), 1) == 49.1  # the last-30-s rate would say 45 / (5 / 30) = 270 s
    assert round(eta_seconds(61.0, 90, 100), 1) == 6.8
    assert eta_seconds(None, 0, 100) is None and eta_seconds(5.0, 0, 100) is None and eta_seconds(5.0, 100, 100) == 0


def test_render_shows_progress_for_long_runs_to_a_file(tmp_path, capsys, monkeypatch):
    import internvl_data.parallel as parallel

    seen: list = []

    class Bar:
        def __init__(self, label, total):
            seen.append([label, total, 0])

        def advance(self, n=1):
            seen[-1][2] += n

        def close(self):
            seen[-1].append("closed")

    monkeypatch.setattr(parallel, "ProgressBar", Bar)
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt", "qwen2", "300m")
    meta = str(VALID / "meta.json")
    assert ivl_data(["render", meta, "--model", str(ckpt), "--limit", "0", "--format", "jsonl", "--progress"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 16 and seen == [["render", 16, 16, "closed"]]
    assert ivl_data(["render", meta, "--model", str(ckpt), "--limit", "0", "--no-progress"]) == 0
    assert len(seen) == 1  # --no-progress, and by default (not a terminal, fewer than 100 records): no bar
