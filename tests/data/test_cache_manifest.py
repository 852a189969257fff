"""--cache (hits, stat index, invalidation) and the manifest (contents, when written, staleness)."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from internvl_data import __version__
from internvl_data.validator import cache, manifest
from tests.helpers.records import clean, turn

engine = importlib.import_module("internvl_data.validator.driver")
scan = importlib.import_module("internvl_data.validator.worker")
OLD = 1_600_000_000  # a past mtime: the stat index trusts files not modified just before it was written


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """Counts check_record calls made by the engine."""
    seen: list[int] = []
    real = scan.check_record

    def counting(obj, ctx):  # type: ignore[no-untyped-def]
        seen.append(ctx.line)
        return real(obj, ctx)

    monkeypatch.setattr(scan, "check_record", counting)
    return seen


def age(*paths: Path) -> None:
    for p in paths:
        os.utime(p, (OLD, OLD))


def test_second_run_is_served_from_the_cache(make_meta, tmp_path: Path, calls, monkeypatch) -> None:
    meta = make_meta(d=[clean(1), {"id": 1}, clean(3)])
    age(tmp_path / "d.jsonl")
    opts = dict(media="off", cache_dir=str(tmp_path / "c"), write_manifest=False)
    first = engine.validate(meta, **opts)
    assert calls == [1, 2, 3]

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise AssertionError("not expected on a cache hit")

    monkeypatch.setattr(scan, "check_line", boom)
    monkeypatch.setattr(scan, "check_record", boom)
    monkeypatch.setattr(cache, "content_hash", boom)  # unchanged stat: the file is not even read
    second = engine.validate(meta, **opts)
    assert second.findings == first.findings and [f.code for f in first.findings] == ["IVL201", "IVL224"]
    assert (second.records, second.files) == (first.records, first.files) == (3, 1)


def test_content_change_with_same_size_and_mtime_is_seen(make_meta, tmp_path: Path, calls) -> None:
    meta = make_meta(d=[clean(1), clean(2)])
    data = tmp_path / "d.jsonl"
    age(data)
    opts = dict(media="off", cache_dir=str(tmp_path / "c"), write_manifest=False)
    assert engine.validate(meta, **opts).findings == []
    size = data.stat().st_size
    data.write_bytes(data.read_bytes().replace(b'"human"', b'"humen"', 1))
    age(data)  # same size, mtime and inode: only ctime tells
    assert (data.stat().st_size, data.stat().st_mtime_ns) == (size, OLD * 10**9)
    calls.clear()
    codes = [f.code for f in engine.validate(meta, **opts).findings]
    assert calls == [1, 2] and codes == ["IVL207"]


def test_option_changes_miss_the_cache(make_meta, tmp_path: Path, calls) -> None:
    meta = make_meta(d=[{"id": 1}, clean(2)])
    age(tmp_path / "d.jsonl")
    base = dict(media="off", cache_dir=str(tmp_path / "c"), write_manifest=False)
    engine.validate(meta, **base)
    engine.validate(meta, **base, strict=True, jobs=2)  # neither changes findings: still a hit
    assert len(calls) == 2
    assert engine.validate(meta, **base, ignore=("IVL2",)).findings == []
    assert engine.validate(meta, **{**base, "media": "exists"}).findings[0].code == "IVL201"
    assert len(calls) == 6


@pytest.mark.parametrize("media", ["header", "exists"])
def test_media_change_invalidates_media_results(tmp_path: Path, make_meta, calls, media: str) -> None:
    rec = {
        "id": 1,
        "image": "a.png",
        "width": 8,
        "height": 8,
        "conversations": [turn("human", "<image>\nWhat?"), turn("gpt", "A square.")],
    }
    meta = make_meta(d=[rec])
    img = tmp_path / "media" / "a.png"
    Image.new("RGB", (8, 8)).save(img)  # square: no IVL315 (small image stretched over tiles)
    age(tmp_path / "d.jsonl", img)
    opts = dict(media=media, cache_dir=str(tmp_path / "c"), write_manifest=False)
    assert engine.validate(meta, **opts).findings == []
    assert engine.validate(meta, **opts).findings == [] and len(calls) == 1
    if media == "header":
        Image.new("RGB", (9, 6)).save(img)
    else:  # exists: the file disappears, then appears again
        img.unlink()
    found = engine.validate(meta, **opts).findings
    assert len(calls) == 2 and [f.code for f in found] and all(f.code.startswith("IVL3") for f in found)
    if media == "exists":
        assert engine.validate(meta, **opts).findings == found and len(calls) == 2  # still missing: a hit
        Image.new("RGB", (8, 8)).save(img)
        assert engine.validate(meta, **opts).findings == [] and len(calls) == 3


def test_a_freshly_written_file_is_hashed_again(make_meta, tmp_path: Path, calls, monkeypatch) -> None:
    """Racy-git rule: a file modified within 2 s of its stat record may change again unseen in the same mtime tick,
    so its stat entry is not trusted; once it is older, the stat entry serves the hash."""
    meta = make_meta(d=[clean(1)])  # just written: not aged
    hashed: list[str] = []
    real = cache.content_hash

    def counting(path):  # type: ignore[no-untyped-def]
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(cache, "content_hash", counting)
    opts = dict(media="off", cache_dir=str(tmp_path / "c"), write_manifest=False)
    os.utime(tmp_path / "d.jsonl")  # modified now: the first run records its stat well within 2 s
    engine.validate(meta, **opts)
    engine.validate(meta, **opts)
    assert len(hashed) == 2 and calls == [1]  # hashed again, still a hit on the result
    age(tmp_path / "d.jsonl")
    engine.validate(meta, **opts)  # the stat changed: hashed, recorded well after the mtime
    engine.validate(meta, **opts)
    assert len(hashed) == 3 and calls == [1]


def test_damaged_cache_entries_are_recomputed(make_meta, tmp_path: Path, calls) -> None:
    meta = make_meta(d=[clean(1)])
    opts = dict(media="off", cache_dir=str(tmp_path / "c"), write_manifest=False)
    engine.validate(meta, **opts)
    for damage in ("{not json", "[]", '{"stat": 1, "findings": [[1]], "media_stats": 3}'):
        for p in (tmp_path / "c").rglob("*.json"):
            p.write_text(damage)
        assert engine.validate(meta, **opts).findings == []
    assert len(calls) == 4


# ---------------------------------------------------------------------------------------------- manifest


def test_manifest_written_on_success(make_meta, tmp_path: Path) -> None:
    meta = make_meta(d=[clean(1), clean(2)], e=[clean(3)])
    engine.validate(meta, media="off")
    assert not (tmp_path / "meta.ivl-manifest.json").exists()  # the library writes nothing it was not asked to
    engine.validate(meta, media="off", write_manifest=True)
    doc = json.loads((tmp_path / "meta.ivl-manifest.json").read_text())
    data = tmp_path / "d.jsonl"
    assert doc["version"] == __version__ and doc["format"] == manifest.FORMAT
    assert doc["meta"] == {"path": str(meta), "content_hash": cache.content_hash(meta)}
    assert doc["options"]["media"] == "off" and "jobs" not in doc["options"]
    assert doc["datasets"]["d"] == {
        "annotation": str(data),
        "size": data.stat().st_size,
        "lines": 2,
        "records": 2,
        "content_hash": cache.content_hash(data),
        "root": str(tmp_path / "media"),
        "media": "off",
    }
    assert list(doc["datasets"]) == ["d", "e"]
    assert manifest.check(meta) == []


def test_manifest_not_written_on_errors_or_when_disabled(make_meta, tmp_path: Path, run_cli) -> None:
    meta = make_meta(d=[clean(1)])
    assert run_cli("validate", meta, "--media", "off")[0] == 0
    assert (tmp_path / "meta.ivl-manifest.json").exists()
    meta = make_meta(d=[{"id": 1}])
    assert run_cli("validate", meta, "--media", "off")[0] == 1
    assert not (tmp_path / "meta.ivl-manifest.json").exists()  # the earlier one was removed
    meta = make_meta(d=[clean(1)])
    assert run_cli("validate", meta, "--media", "off", "--no-manifest")[0] == 0
    assert not (tmp_path / "meta.ivl-manifest.json").exists()
    assert run_cli("validate", meta, "--media", "off", "--manifest", tmp_path / "m.json")[0] == 0
    assert manifest.check(meta, tmp_path / "m.json") == []
    assert manifest.check(meta) == [
        f"no manifest at {tmp_path / 'meta.ivl-manifest.json'}: run `ivl-data validate {meta}`"
    ]


def test_manifest_staleness_reasons(make_meta, tmp_path: Path) -> None:
    meta = make_meta(d=[clean(1)], e=[clean(2)])
    engine.validate(meta, media="off", write_manifest=True)
    run = f"run `ivl-data validate {meta}`"
    data = tmp_path / "d.jsonl"
    data.write_bytes(data.read_bytes().replace(b"Question", b"Questio!"))
    assert manifest.check(meta) == [f"dataset 'd': the content of {data} changed since it was validated: {run}"]
    data.write_bytes(data.read_bytes() + b"\n")
    assert manifest.check(meta)[0].startswith(f"dataset 'd': {data} is {data.stat().st_size} bytes, the manifest has ")
    doc = json.loads(meta.read_text())
    del doc["e"]
    meta.write_text(json.dumps(doc))
    reasons = manifest.check(meta)
    assert reasons[0] == f"the meta file {meta} changed since it was validated: {run}"
    assert f"dataset 'e' is in the manifest but no longer in the meta file: {run}" in reasons
    m = tmp_path / "meta.ivl-manifest.json"
    m.write_text(m.read_text().replace(f'"version": "{__version__}"', '"version": "0.0.1"'))
    assert manifest.check(meta)[0] == f"manifest written by ivl-data 0.0.1, this is {__version__}: {run}"
    m.write_text("[]")
    assert manifest.check(meta) == [f"manifest {m} is not an ivl-data manifest of format 1: {run}"]


def test_edited_check_code_misses_the_cache(make_meta, tmp_path: Path, calls, monkeypatch) -> None:
    meta = make_meta(d=[clean(1)])
    opts = dict(media="off", cache_dir=str(tmp_path / "c"), write_manifest=False)
    engine.validate(meta, **opts)
    engine.validate(meta, **opts)
    assert len(calls) == 1
    stamp = engine._code_stamp()
    names = [row[0] for row in stamp]
    assert names == sorted(names) and all(len(row) == 3 for row in stamp)
    # every module, including the ones a check only reaches through another (checks_tokens -> stats_tokens ...)
    assert {
        "validator/worker.py",
        "validator/driver.py",
        "checks/catalogue.py",
        "checks/tokens.py",
        "stats/worker.py",
        "stats/tokens.py",
        "pipeline/sample.py",
        "pipeline/video.py",
    } <= set(names)
    monkeypatch.setattr(engine, "_code_stamp", lambda: stamp[:-1] + [["pipeline/tiling.py", 1, 2]])
    engine.validate(meta, **opts)
    assert len(calls) == 2


def test_a_cache_folder_that_cannot_be_created_only_costs_speed(make_meta, tmp_path: Path, calls, run_cli) -> None:
    meta = make_meta(d=[clean(1), {"id": 2}])
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    code, out, err = run_cli("validate", meta, "--media", "off", "--no-manifest", "--cache", blocker)
    assert (code, out) == (2, "")  # a file named as the cache folder is a usage error (issue 13 item 10)
    assert err == f"ivl-data validate: error: --cache {blocker}: is a file; name a folder (it is created if missing)\n"
    code, out, err = run_cli("validate", meta, "--media", "off", "--no-manifest", "--cache", blocker / "sub")
    assert (code, err) == (1, "") and "IVL201" in out  # a folder that cannot be created only costs speed
    assert calls == [1, 2] and blocker.read_text() == "not a folder"
