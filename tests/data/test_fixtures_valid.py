"""fixtures/valid: what it contains, that the generator reproduces it, and that validate passes it."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from internvl_data.pipeline.tiling import find_grid

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
VALID = FIXTURES / "valid"
META = json.loads((VALID / "meta.json").read_text())
BOX = re.compile(r"<box>(\[\[.*?\]\])</box>")


def records() -> list[tuple[str, dict]]:
    return [
        (name, json.loads(line))
        for name, e in META.items()
        for line in (VALID / e["annotation"]).read_text(encoding="utf-8").splitlines()
    ]


def kind(rec: dict) -> str:
    image = rec.get("image")
    if image:
        return "multi" if isinstance(image, list) else "single"
    return "video" if rec.get("video") else "text"


def text(rec: dict) -> str:
    return "\n".join(t["value"] for t in rec["conversations"])


def tree(root: Path) -> dict[str, Path]:
    """Files and links under root, less the manifests `ivl-data validate` writes beside a meta file (git-ignored)."""
    return {
        p.relative_to(root).as_posix(): p
        for p in sorted(root.rglob("*"))
        if (p.is_file() or p.is_symlink()) and not p.name.endswith(".ivl-manifest.json")
    }


# ----------------------------------------------------------------------------- contents


def test_meta_covers_the_dataset_options() -> None:
    assert set(META) == {"text", "single", "multi", "video", "mixed"}
    assert {e["data_augment"] for e in META.values()} == {True, False}
    assert sorted({e["repeat_time"] for e in META.values()}) == [0.5, 1, 2]
    assert [n for n, e in META.items() if "max_dynamic_patch" in e] == ["multi"]
    for e in META.values():
        assert e["length"] == len((VALID / e["annotation"]).read_bytes().splitlines())


def test_records_cover_every_kind_and_convention() -> None:
    recs = records()
    assert {kind(r) for _, r in recs} == {"text", "single", "multi", "video"}
    assert {kind(r) for n, r in recs if n == "mixed"} == {"text", "single", "multi", "video"}
    singles = [r for _, r in recs if kind(r) == "single"]
    assert any("<image>" in text(r) for r in singles) and any("<image>" not in text(r) for r in singles)
    assert any("clip" in r for _, r in recs if kind(r) == "video")
    assert any(re.search(r"[\u4e00-\u9fff]", text(r)) for _, r in recs)
    assert any("<ref>" in text(r) and "<box>" in text(r) for r in singles)


def test_declared_sizes_and_boxes_match_the_files() -> None:
    for _, rec in records():
        images = [rec["image"]] if kind(rec) == "single" else rec.get("image") or []
        widths = [rec["width"]] if kind(rec) == "single" else rec.get("width_list", [])
        heights = [rec["height"]] if kind(rec) == "single" else rec.get("height_list", [])
        for rel, w, h in zip(images, widths, heights, strict=True):
            with Image.open(VALID / rel) as im:
                assert im.size == (w, h) and im.mode in ("RGB", "L"), rel
        for match in BOX.finditer(text(rec)):
            for box in ast.literal_eval(match.group(1)):
                assert all(0 <= v <= 1000 for v in box) and box[0] < box[2] and box[1] < box[3]
    ground = next(r for _, r in records() if "<box>" in text(r))
    assert BOX.search(text(ground)).group(1) == "[[100, 100, 500, 800]]"  # (90, 50, 450, 400) on 900x500


def test_images_include_multi_tile_and_edge_sizes() -> None:
    sizes = set()
    for p in (VALID / "images").iterdir():
        with Image.open(p) as im:
            sizes.add(im.size)
    assert find_grid(900, 500, 1, 6, 448) == (2, 1) and (900, 500) in sizes
    assert {(500, 1), (1, 500)} <= sizes


def test_fixture_folder_stays_small() -> None:
    total = sum(p.stat().st_size for p in VALID.rglob("*") if p.is_file())
    assert total < 1_500_000
    assert all(p.stat().st_size < 20_000 for p in VALID.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- generator


def _pixels(path: Path) -> str:
    with Image.open(path) as im:
        return f"{im.size} {im.mode} {hashlib.sha256(im.tobytes()).hexdigest()}"


def test_tree_leaves_out_validate_manifests(tmp_path: Path) -> None:
    """The README's first command writes fixtures/valid/meta.ivl-manifest.json; it is not a fixture."""
    (tmp_path / "meta.json").write_text("{}")
    (tmp_path / "meta.ivl-manifest.json").write_text("{}")
    assert list(tree(tmp_path)) == ["meta.json"]


def test_generator_reproduces_the_committed_fixtures(tmp_path: Path) -> None:
    """Text byte for byte; PNG pixels exactly; JPEG, palette PNG and MP4 by size, mode and frame count (their
    encoders' bytes can vary across library versions, and x264's even between runs)."""
    subprocess.run(
        [sys.executable, str(FIXTURES / "generate.py"), "--out", str(tmp_path)], check=True, capture_output=True
    )
    committed = {
        **{f"valid/{k}": v for k, v in tree(VALID).items()},
        **{
            f"invalid/{c.name}/{k}": v
            for c in (FIXTURES / "invalid").glob("ivl3[0-9][0-9]-*")
            for k, v in tree(c).items()
        },
    }
    fresh = tree(tmp_path)
    assert sorted(fresh) == sorted(committed)
    for rel, old in committed.items():
        new = fresh[rel]
        if old.is_symlink():
            assert new.is_symlink() and new.readlink() == old.readlink(), rel
        elif old.suffix in (".json", ".jsonl") or old.name in ("not_an_image.jpg", "broken.mp4", "bomb.png"):
            assert new.read_bytes() == old.read_bytes(), rel
        elif old.suffix == ".png" and old.name != "palette.png":
            assert _pixels(new) == _pixels(old), rel  # (palette quantisation may change with Pillow)
        elif old.suffix == ".mp4":
            decord = pytest.importorskip("decord")
            a, b = decord.VideoReader(str(old)), decord.VideoReader(str(new))
            assert (len(a), a[0].shape) == (len(b), b[0].shape), rel
        elif old.name != "truncated.jpg":  # JPEGs and the palette PNG
            with Image.open(old) as x, Image.open(new) as y:
                assert (x.size, x.mode) == (y.size, y.mode), rel


# ----------------------------------------------------------------------------- the validator


def test_validate_passes_the_valid_fixture(tmp_path: Path) -> None:
    """`ivl-data validate fixtures/valid/meta.json` exits 0 with no errors and no media findings, in every
    media mode (run on a copy: validate writes a manifest beside the meta file)."""
    from internvl_data import validate
    from internvl_data.cli.dispatch import main

    copy = tmp_path / "valid"
    shutil.copytree(VALID, copy, symlinks=True)
    for mode in ("exists", "header", "decode"):
        report = validate(str(copy / "meta.json"), media=mode, min_frames=8, write_manifest=False)
        assert report.errors == 0, report.findings
        assert [f for f in report.findings if f.code.startswith("IVL3")] == []
    assert main(["validate", str(copy / "meta.json"), "--media", "decode"]) == 0
