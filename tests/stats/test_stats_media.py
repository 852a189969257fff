"""Stats without a model: exact numbers for the fixture mixture, json/csv columns, plots, html."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from pathlib import Path

import pytest
from PIL import Image

from internvl_data.cli import dispatch as cli
from internvl_data.cli.stats import load_datasets
from internvl_data.stats.compute import compute
from internvl_data.stats.worker import Dataset, Settings
from tests.helpers.records import conv


def _datasets(meta: Path) -> list[tuple[Dataset, float]]:
    return load_datasets(str(meta))


def _dist(result, dataset: str, metric: str) -> dict:
    df = result.distributions()
    row = df[(df.dataset == dataset) & (df.metric == metric)].iloc[0]
    return {k: row[k] for k in ("count", "mean", "p50", "p90", "p99", "max")}


@pytest.mark.parametrize("jobs", [1, 2])
def test_exact_counts_after_repeat_time(mixture: Path, tmp_path: Path, jobs: int) -> None:
    result = compute(str(mixture), _datasets(mixture), Settings(cache_dir=str(tmp_path / "cache")), jobs=jobs)
    rows = {r["dataset"]: r for r in result.rows()}
    cap, chat, vid, mix = rows["captions"], rows["chat"], rows["videos"], rows["(mixture)"]
    assert (cap["lines"], cap["used_lines"], cap["effective_records"]) == (4, 4, 8)
    assert (chat["lines"], chat["used_lines"], chat["effective_records"]) == (4, 2, 2)
    assert (vid["lines"], vid["used_lines"], vid["effective_records"]) == (3, 3, 3)
    assert (mix["lines"], mix["effective_records"]) == (11, 13)
    assert [rows[n]["share"] for n in ("captions", "chat", "videos", "(mixture)")] == [8 / 13, 2 / 13, 3 / 13, 1.0]
    assert [cap[k] for k in ("text", "single", "multi", "video")] == [2, 4, 2, 0]
    assert [mix[k] for k in ("text", "single", "multi", "video")] == [4, 5, 2, 2]
    # tiles at max_dynamic_patch 6: 800x600 -> 7, 1920x1080 -> 3; multi-image budget 6 // 2 = 3: 1 and 4
    assert (cap["images_total"], cap["tiles_total"]) == (8, 30)
    assert (vid["images_total"], vid["tiles_total"]) == (1, 1)  # 448x448 at max_dynamic_patch 12 -> 1
    assert cap["images_unreadable"] == 0 and mix["skipped_lines"] == 0


def test_exact_distributions(mixture: Path, tmp_path: Path) -> None:
    result = compute(str(mixture), _datasets(mixture), Settings(cache_dir=str(tmp_path / "cache")), jobs=1)
    assert _dist(result, "captions", "chars") == {
        "count": 8,
        "mean": 28.75,
        "p50": 31.0,
        "p90": 39.0,
        "p99": 39.0,
        "max": 39,
    }
    assert _dist(result, "chat", "turns") == {"count": 2, "mean": 3.0, "p50": 3.0, "p90": 3.8, "p99": 3.98, "max": 4}
    assert _dist(result, "captions", "tiles_per_image") == {
        "count": 8,
        "mean": 3.75,
        "p50": 3.5,
        "p90": 7.0,
        "p99": 7.0,
        "max": 7,
    }
    assert _dist(result, "videos", "video_frames") == {
        "count": 2,
        "mean": 17.5,
        "p50": 17.5,
        "p90": 19.5,
        "p99": 19.95,
        "max": 20,
    }
    mix_width = _dist(result, "(mixture)", "image_width")
    assert (mix_width["count"], mix_width["max"], mix_width["p50"]) == (9, 3000, 800.0)
    empty = _dist(result, "chat", "tiles_per_image")
    assert empty["count"] == 0 and math.isnan(empty["mean"])


def test_unreadable_image_falls_back_to_declared_size(tmp_path: Path, media_dir: Path) -> None:
    ann = tmp_path / "a.jsonl"
    ann.write_text(
        json.dumps(
            {
                "image": "nope.jpg",
                "width": 1000,
                "height": 1000,
                "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
            }
        )
        + "\n\n{not json\n"
    )
    result = compute("m", [(Dataset("d", str(ann), str(media_dir)), 1)], Settings(cache_dir=None), jobs=1)
    row = result.rows()[0]
    assert (row["images_unreadable"], row["images_unknown_size"], row["skipped_lines"]) == (1, 0, 2)
    assert row["tiles_total"] == 5  # 1000x1000 at max 6 -> 2x2 + thumbnail
    assert row["lines"] == 3 and row["effective_records"] == 3


def test_media_cache_is_written_and_reused(mixture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from internvl_data.media import sizes as stats_media

    cache = tmp_path / "cache"
    first = compute(str(mixture), _datasets(mixture), Settings(cache_dir=str(cache)), jobs=1).rows()
    data = json.loads((cache / stats_media.CACHE_NAME).read_text())
    assert sorted(Path(p).name for p in data) == ["a.jpg", "b.png", "c.jpg", "d.jpg", "v.mp4"]

    def boom(path: str) -> None:
        raise AssertionError(f"header read although cached: {path}")

    monkeypatch.setattr(stats_media, "_read_image", boom)
    monkeypatch.setattr(stats_media, "_read_video", boom)
    second = compute(str(mixture), _datasets(mixture), Settings(cache_dir=str(cache)), jobs=1).rows()
    assert _nan_safe(first) == _nan_safe(second)


def test_media_cache_keeps_other_entries(mixture: Path, tmp_path: Path) -> None:
    from internvl_data.media import sizes as stats_media

    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / stats_media.CACHE_NAME).write_text(json.dumps({"/elsewhere/x.jpg": [1, 2, 3, 4]}))
    compute(str(mixture), _datasets(mixture), Settings(cache_dir=str(cache)), jobs=2)
    data = json.loads((cache / stats_media.CACHE_NAME).read_text())
    assert list(data)[0] == "/elsewhere/x.jpg" and data["/elsewhere/x.jpg"] == [1, 2, 3, 4]
    assert sorted(Path(p).name for p in data) == ["a.jpg", "b.png", "c.jpg", "d.jpg", "v.mp4", "x.jpg"]


def test_media_sizes_without_recording(media_dir: Path) -> None:
    from internvl_data.media.sizes import MediaSizes

    path = str(next(p for p in media_dir.iterdir() if p.suffix == ".jpg"))
    kept, not_kept = MediaSizes({}), MediaSizes({}, record_new=False)
    assert kept.image(path) == not_kept.image(path) is not None
    assert list(kept.take_new()) == [path] and not_kept.new == {} and not_kept.take_new() == {}


def _nan_safe(rows: list[dict]) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_json_columns(mixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        ["stats", str(mixture), "--format", "json", "--cache", str(tmp_path / "c"), "--jobs", "1"], capsys
    )
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc) == ["meta", "settings", "summary", "distributions"]
    assert [r["dataset"] for r in doc["summary"]] == ["captions", "chat", "videos", "(mixture)"]
    first = list(doc["summary"][0])
    assert first[:12] == [
        "dataset",
        "annotation",
        "repeat_time",
        "lines",
        "used_lines",
        "effective_records",
        "share",
        "text",
        "single",
        "multi",
        "video",
        "skipped_lines",
    ]
    assert "tiles_per_image_p99" in first and "total_tokens_mean" not in first
    assert list(doc["distributions"][0]) == ["dataset", "metric", "count", "mean", "p50", "p90", "p99", "max"]
    assert doc["summary"][3]["repeat_time"] is None  # NaN becomes null
    assert doc["settings"]["tile"] == 448 and doc["settings"]["max_dynamic_patch"] == 6


def test_cli_progress_bar_forced_on(mixture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(["stats", str(mixture), "--format", "csv", "--progress", "--jobs", "2", "--no-cache"], capsys)
    assert code == 0 and out.startswith("dataset,annotation,") and "Traceback" not in err


def test_cli_csv(mixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "s.csv"
    code, out, err = _run(["stats", str(mixture), "--format", "csv", "-o", str(out_file), "--no-cache"], capsys)
    assert code == 0, err
    assert out == ""
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert [r["dataset"] for r in rows] == ["captions", "chat", "videos", "(mixture)"]
    assert rows[0]["effective_records"] == "8" and rows[0]["tiles_total"] == "30"
    assert rows[1]["turns_p90"] == "3.8"


def test_cli_table_plots_and_html(mixture: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plots, page = tmp_path / "plots", tmp_path / "report.html"
    code, out, err = _run(["stats", str(mixture), "--plots", str(plots), "--html", str(page), "--no-cache"], capsys)
    assert code == 0, err
    assert "Mixture" in out and "captions" in out and "tiles_per_image" in out
    assert sorted(p.name for p in plots.iterdir()) == ["tiles_per_image.png", "tiles_per_record.png"]
    for p in plots.iterdir():
        with Image.open(p) as im:
            im.load()
            assert im.format == "PNG" and im.size[0] > 100
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.count("<table") == 2
    assert "<td>captions</td>" in text and "<th>tiles_per_image_p50</th>" not in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 2
    with Image.open(io.BytesIO(base64.b64decode(images[0]))) as im:
        assert im.format == "PNG"


def test_cli_bad_meta_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _run(["stats", str(tmp_path / "missing.json")], capsys)
    assert code == 2 and "missing.json: no such file" in err and "Traceback" not in err
    meta = tmp_path / "meta.json"
    meta.write_text(
        json.dumps({"d": {"root": ".", "annotation": "gone.jsonl", "data_augment": False, "repeat_time": 1}})
    )
    code, _out, err = _run(["stats", str(meta), "--no-cache"], capsys)
    assert code == 1 and f"{meta}:1: IVL107 dataset 'd': annotation file 'gone.jsonl' not found" in err


def test_lines_not_counted_are_named_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """stats counts what it can and names the first lines it could not count (by line, with 1 and 2 jobs),
    then one line for the rest; stdout (the report) is unchanged and the exit is 0."""
    ok = json.dumps({"conversations": conv("q", "a")})
    body = [ok] * 30 + ["not json", '{"conversations": 1}', "[]"] + [ok] * 30 + ["{"] * 9 + [ok]
    (tmp_path / "d.jsonl").write_text("\n".join(body) + "\n")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"d": {"root": ".", "annotation": "d.jsonl", "data_augment": False, "repeat_time": 2}}))
    for jobs in ("1", "2"):
        code, out, err = _run(["stats", str(meta), "--no-cache", "--format", "json", "--jobs", jobs], capsys)
        assert code == 0
        assert json.loads(out)["summary"][0]["skipped_lines"] == 24  # 12 lines, repeat_time 2
        ann = tmp_path / "d.jsonl"
        why = "not a JSON object with a `conversations` list; not counted"
        assert err.splitlines() == [
            f"{ann}:31: {why}",
            f"{ann}:32: {why}",
            f"{ann}:33: {why}",
            *[f"{ann}:{n}: {why}" for n in range(64, 71)],
            f"{ann}: 2 more line(s) not counted; `ivl-data validate {meta}` lists them all",
        ]
