"""IVL3xx: media.py helpers and MediaChecker on the fixtures and on files built per test."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from internvl_data.checks import media as checks_media
from internvl_data.checks.findings import Severity
from internvl_data.checks.lines import LineCtx
from internvl_data.checks.media import MediaChecker
from internvl_data.checks.registry import all_rules
from internvl_data.media import probe as media
from internvl_data.validator.options import ValidateOptions
from tests.helpers.records import conv

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CASES = sorted(p for p in (FIXTURES / "invalid").glob("ivl3[0-9][0-9]-*") if p.is_dir())
OK_IMAGE = FIXTURES / "invalid" / "ivl301-media-missing" / "ok.jpg"  # 32x28 JPEG
OK_VIDEO = FIXTURES / "invalid" / "ivl313-clip-out-of-range" / "ok.mp4"  # 20 frames at 10 fps, 32x24


def options_from_args(args: list[str]) -> ValidateOptions:
    """The media flags of an expected.json `args` list (the CLI's own parsing is tested by the walker)."""
    kw: dict = {"allow_outside_root": "--allow-outside-root" in args}
    for flag, name, parse in (
        ("--media", "media", str),
        ("--max-pixels", "max_pixels", int),
        ("--min-frames", "min_frames", int),
    ):
        if flag in args:
            kw[name] = parse(args[args.index(flag) + 1])
    return ValidateOptions(**kw)


def check_meta(meta: Path, options: ValidateOptions) -> list:
    """MediaChecker over every line of every dataset of a meta file (a fresh cache: one run)."""
    checks_media.clear_cache()
    findings = []
    for name, entry in json.loads(meta.read_text()).items():
        root = os.path.abspath(meta.parent / entry["root"])
        annotation = meta.parent / entry["annotation"]
        checker = MediaChecker(SimpleNamespace(name=name, root=root, annotation=str(annotation)), options)
        ctx = LineCtx(path=str(annotation), dataset=name)
        for ctx.line, raw in enumerate(annotation.read_bytes().splitlines(), 1):
            findings += checker.check(json.loads(raw), ctx)
    return findings


def check_one(tmp_path: Path, record: dict, **options: object) -> list:
    checks_media.clear_cache()
    checker = MediaChecker(SimpleNamespace(name="d", root=str(tmp_path)), ValidateOptions(**options))
    return checker.check(record, LineCtx(path="data.jsonl", line=7, dataset="d"))


def codes(findings: list) -> list[tuple[str, int]]:
    return sorted((f.code, f.line) for f in findings)


# ----------------------------------------------------------------------------- fixtures


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_invalid_case_fires_exactly_its_findings(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    found = check_meta(case / "meta.json", options_from_args(expected["args"]))
    assert codes(found) == sorted((f["code"], f["line"]) for f in expected["findings"])
    assert all(f.path == str(case / "data.jsonl") and f.dataset == case.name for f in found)
    errors = any(f.severity is Severity.ERROR for f in found)
    assert expected["exit"] == (1 if errors else 0)


def test_every_media_rule_has_a_case_except_missing_decord() -> None:
    media_codes = {c for c in all_rules() if c.startswith("IVL3")}
    covered = {f["code"] for c in CASES for f in json.loads((c / "expected.json").read_text())["findings"]}
    assert media_codes - covered == {"IVL314"}  # needs decord uninstalled: test_missing_decord below


@pytest.mark.parametrize("mode", ["exists", "header", "decode"])
def test_valid_fixture_is_clean_in_every_mode(mode: str) -> None:
    assert check_meta(FIXTURES / "valid" / "meta.json", ValidateOptions(media=mode, min_frames=8)) == []


def test_rules_are_documented() -> None:
    for code, r in all_rules().items():
        if code.startswith("IVL3"):
            assert r.name and r.summary and r.why and r.example and r.fix, code


# ----------------------------------------------------------------------------- messages


def test_missing_image_message_names_media_line_and_json_path(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(OK_IMAGE.read_bytes())
    (f,) = check_one(tmp_path, {"image": ["a.jpg", "gone.png"], "conversations": conv("<image><image>", "x")})
    assert (f.code, f.severity, f.path, f.line, f.json_path, f.dataset) == (
        "IVL301",
        Severity.ERROR,
        "data.jsonl",
        7,
        "$.image[1]",
        "d",
    )
    assert f.message == f"'gone.png' does not exist (looked for {tmp_path / 'gone.png'})"


def test_size_mismatch_names_the_declared_key_and_notes_exif(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(OK_IMAGE.read_bytes())
    rotated = Image.open(OK_IMAGE)
    exif = Image.Exif()
    exif[0x0112] = 8
    rotated.save(tmp_path / "r.jpg", exif=exif.tobytes())
    rec = {
        "image": ["a.jpg", 5, "r.jpg"],
        "width_list": [32, 0, 28],
        "height_list": [28, 0, 32],
        "conversations": conv("<image><image>", "x"),
    }
    (f,) = check_one(tmp_path, rec)
    assert (f.code, f.severity, f.json_path) == ("IVL308", Severity.WARNING, "$.width_list[2]")
    assert f.message == (
        "'r.jpg' is 32x28 but the record says width_list[2]=28, height_list[2]=32 "
        "(that is the EXIF-rotated view; the loader ignores EXIF)"
    )
    (f,) = check_one(tmp_path, {"image": "a.jpg", "height": 25, "conversations": conv("<image>", "x")})
    assert (f.json_path, f.message) == ("$.height", "'a.jpg' is 32x28 but the record says width absent, height=25")


def test_exif_rotation_without_box_is_fine(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(OK_IMAGE).save(tmp_path / "r.jpg", exif=exif.tobytes())
    assert check_one(tmp_path, {"image": "r.jpg", "conversations": conv("<image>", "no boxes here")}) == []
    found = check_one(tmp_path, {"image": "r.jpg", "conversations": conv("<image>", "<box>[[1, 2, 3, 4]]</box>")})
    assert codes(found) == [("IVL309", 7)]


# ----------------------------------------------------------------------------- paths


def test_resolve(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside.jpg").write_bytes(b"x")
    (root / "out.jpg").symlink_to("../outside.jpg")
    (root / "in.jpg").symlink_to("sub/x.jpg")
    r = str(root)
    assert media.resolve(r, "sub/a.jpg") == (os.path.join(r, "sub/a.jpg"), None)
    assert media.resolve(r, "sub/../a.jpg") == (os.path.join(r, "sub/../a.jpg"), None)
    assert media.resolve(r, "in.jpg") == (os.path.join(r, "in.jpg"), None)
    assert media.resolve(r, "../outside.jpg") == (os.path.join(r, "../outside.jpg"), "escape")
    assert media.resolve(r, "out.jpg") == (os.path.join(r, "out.jpg"), "escape")
    assert media.resolve(r, "out.jpg", allow_outside_root=True) == (os.path.join(r, "out.jpg"), None)
    assert media.resolve(r, f"{r}/sub/a.jpg") == (f"{r}/sub/a.jpg", "absolute")
    assert media.resolve(r, "/elsewhere/a.jpg") == ("/elsewhere/a.jpg", "escape")
    assert media.resolve(r, "/elsewhere/a.jpg", True) == ("/elsewhere/a.jpg", "absolute")
    assert media.resolve(r, "s3://b/a.jpg") == (r + "s3://b/a.jpg", "s3")  # the loader concatenates
    assert media.resolve("s3://b/data", "a.jpg") == ("s3://b/data/a.jpg", "s3")
    assert media.resolve(r, "a\x00.jpg")[1] is None  # opening it reports the problem


def test_escaping_path_is_not_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "x.jpg").write_bytes(OK_IMAGE.read_bytes())
    opened: list[str] = []
    monkeypatch.setattr(media, "image_header", lambda p: opened.append(p))
    checker = MediaChecker(SimpleNamespace(root=str(tmp_path / "root")), ValidateOptions())
    found = checker.check({"image": "../x.jpg", "conversations": conv("<image>", "x")}, LineCtx("a.jsonl", 3))
    assert codes(found) == [("IVL302", 3)] and opened == []


def test_nul_byte_path_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    found = check_one(tmp_path, {"image": "a\x00.jpg", "conversations": conv("<image>", "x")})
    assert codes(found) == [("IVL305", 7)]


# ----------------------------------------------------------------------------- once per file, header only


def test_each_file_is_opened_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(OK_IMAGE.read_bytes())
    (tmp_path / "v.mp4").write_bytes(OK_VIDEO.read_bytes())
    opens: list[str] = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda p, *a, **kw: opens.append(str(p)) or real_open(p, *a, **kw))
    videos: list[str] = []
    real_video = media.video_info
    monkeypatch.setattr(media, "video_info", lambda p, decode=False: videos.append(p) or real_video(p, decode))
    checks_media.clear_cache()
    records = [
        {"image": "a.jpg", "width": 1, "conversations": conv("<image>", "x")},
        {"image": ["a.jpg", "b.jpg", "./a.jpg"], "conversations": conv("<image>" * 3, "x")},
        {"video": "v.mp4", "clip": [0, 1], "conversations": conv("<video>\n", "x")},
    ] * 20
    found = []
    for entry_name in ("one", "two"):  # two datasets with the same root share the cache
        checker = MediaChecker(SimpleNamespace(name=entry_name, root=str(tmp_path)), ValidateOptions(min_frames=8))
        ctx = LineCtx("data.jsonl", dataset=entry_name)
        for ctx.line, rec in enumerate(records, 1):
            found += checker.check(rec, ctx)
    assert sorted(opens) == sorted(os.path.join(tmp_path, n) for n in ("a.jpg", "b.jpg", "./a.jpg"))  # as joined
    assert videos == [str(tmp_path / "v.mp4")]
    assert len(found) == 40 and {f.code for f in found} == {"IVL308"}  # reported at every referencing line
    assert checker.media_paths == {os.path.join(tmp_path, n) for n in ("a.jpg", "b.jpg", "./a.jpg", "v.mp4")}


def test_clear_cache_starts_a_new_run(tmp_path: Path) -> None:
    rec = {"image": "a.jpg", "conversations": conv("<image>", "x")}
    checker = MediaChecker(SimpleNamespace(root=str(tmp_path)), ValidateOptions())
    checks_media.clear_cache()
    assert codes(checker.check(rec, LineCtx("d.jsonl", 1))) == [("IVL301", 1)]
    (tmp_path / "a.jpg").write_bytes(OK_IMAGE.read_bytes())
    assert codes(checker.check(rec, LineCtx("d.jsonl", 2))) == [("IVL301", 2)]  # same run: cached fact
    checks_media.clear_cache()
    assert checker.check(rec, LineCtx("d.jsonl", 3)) == []


def test_header_mode_never_decodes_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[object] = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(self) or real_load(self))
    header_cases = [c for c in CASES if "--media" not in json.loads((c / "expected.json").read_text())["args"]]
    for meta in [FIXTURES / "valid" / "meta.json"] + [c / "meta.json" for c in header_cases]:
        check_meta(meta, ValidateOptions(media="header"))
    assert loads == []
    check_meta(FIXTURES / "valid" / "meta.json", ValidateOptions(media="decode"))
    assert len(loads) == 8  # the 8 images of the valid fixture, each decoded once


def test_decode_refuses_a_bomb_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = str(FIXTURES / "invalid" / "ivl307-image-too-large" / "bomb.png")
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("decoded a bomb"))
    with pytest.raises(media.MediaError) as err:
        media.decode_image(bomb, max_pixels=1_000_000)
    assert err.value.kind == "too-large"
    assert str(err.value) == "is 4000x4000 = 16000000 pixels, over the limit of 1000000"
    assert media.image_header(bomb) == media.ImageInfo(4000, 4000, "PNG", "1", 1, False)


def test_truncation_fails_even_when_another_module_allows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # what the official trainer sets globally
    with pytest.raises(media.MediaError) as err:
        media.decode_image(str(FIXTURES / "invalid" / "ivl306-image-truncated" / "truncated.jpg"), 10**6)
    assert err.value.kind == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_transparency_header_vs_decode(tmp_path: Path) -> None:
    Image.new("RGBA", (8, 8), (1, 2, 3, 255)).save(tmp_path / "opaque.png")
    Image.new("RGBA", (8, 8), (1, 2, 3, 0)).save(tmp_path / "clear.png")
    rec = {"image": ["opaque.png", "clear.png"], "conversations": conv("<image><image>", "x")}
    assert codes(check_one(tmp_path, rec)) == [("IVL310", 7), ("IVL310", 7)]  # header: an alpha channel
    assert [f.json_path for f in check_one(tmp_path, rec, media="decode")] == ["$.image[1]"]  # real alpha only


# ----------------------------------------------------------------------------- video


def test_video_clip_and_frames(tmp_path: Path) -> None:
    (tmp_path / "v.mp4").write_bytes(OK_VIDEO.read_bytes())
    info = media.video_info(str(tmp_path / "v.mp4"), decode=True)
    assert (info.frames, info.fps, info.duration) == (20, 10.0, 2.0)
    base = {"video": "v.mp4", "conversations": conv("<video>\nx", "y")}
    assert check_one(tmp_path, base | {"clip": [0, 2.05]}, min_frames=20) == []  # within a frame of the end
    (f,) = check_one(tmp_path, base | {"clip": [0.5, 1.2]}, min_frames=8)
    assert (f.code, f.json_path, f.message) == (
        "IVL312",
        "$.video",
        "'v.mp4' has 7 frames in clip [0.5, 1.2], fewer than --min-frames 8",
    )
    (f,) = check_one(tmp_path, base | {"clip": [1.9, 2.5]})
    assert (f.code, f.json_path, f.message) == (
        "IVL313",
        "$.clip",
        "'v.mp4' clip [1.9, 2.5] ends after the video (2.000 s, 20 frames at 10 fps)",
    )
    assert check_one(tmp_path, base | {"clip": [1.9, 2.5]}, media="exists") == []  # needs the header
    assert codes(check_one(tmp_path, base | {"clip": [0, float("inf")]})) == [("IVL313", 7)]
    # shape and order errors are IVL225 (records), not ours
    for bad in ([1], [0, "2"], [True, 2], "0-2", None, [2, 1], [-1, 1], [0, 10**400], [float("nan"), 1]):
        assert check_one(tmp_path, base | {"clip": bad}) == []


def test_frame_folder_and_gif(tmp_path: Path) -> None:
    (tmp_path / "frames").mkdir()
    for k in range(3):
        Image.new("RGB", (4, 4)).save(tmp_path / "frames" / f"f_{k}.jpg")
    frames = [Image.new("RGB", (4, 4), (k * 40, 0, 0)) for k in range(5)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    base = {"conversations": conv("<video>\nx", "y"), "clip": [0, 100]}  # clip is ignored by these readers
    (f,) = check_one(tmp_path, base | {"video": "frames/"}, min_frames=4)
    assert f.message == "'frames/' has 3 frames, fewer than --min-frames 4"
    assert media.video_info(str(tmp_path / "a.gif")) == media.VideoInfo(5, 10.0, 0.5)
    assert check_one(tmp_path, base | {"video": "a.gif"}, min_frames=5) == []
    assert codes(check_one(tmp_path, base | {"video": "nope/"}, media="exists")) == [("IVL301", 7)]
    assert codes(check_one(tmp_path, base | {"video": "frames/"}, media="exists")) == []


def test_missing_decord(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_decord() -> None:
        raise media.MediaError("no-decoder", f"decord is not installed ({media.VIDEO_EXTRA})")

    monkeypatch.setattr(media, "_decord", no_decord)
    (tmp_path / "v.mp4").write_bytes(b"not checked")
    rec = {"video": "v.mp4", "conversations": conv("<video>\nx", "y")}
    (f,) = check_one(tmp_path, rec)
    assert (f.code, f.severity, f.message) == (
        "IVL314",
        Severity.WARNING,
        "'v.mp4' decord is not installed (pip install 'ivl-kit[video]')",
    )
    assert codes(check_one(tmp_path, rec | {"video": "w.mp4"})) == [("IVL301", 7)]


# ----------------------------------------------------------------------------- dispatch and robustness


def test_empty_path_in_a_list_opens_the_root_folder(tmp_path: Path) -> None:
    for mode in ("exists", "header"):
        (f,) = check_one(tmp_path, {"image": ["", 5], "conversations": conv("<image>", "x")}, media=mode)
        assert (f.code, f.json_path, f.message) == ("IVL305", "$.image[0]", "'' is a directory")


def test_dispatch_follows_the_loader(tmp_path: Path) -> None:
    both = {"image": "a.jpg", "video": "v.mp4", "conversations": conv("<image>", "x")}
    assert [f.json_path for f in check_one(tmp_path, both)] == ["$.image"]  # image wins, video ignored
    assert [f.json_path for f in check_one(tmp_path, both | {"image": ""})] == ["$.video"]  # empty image: video
    assert check_one(tmp_path, both, media="off") == []


@pytest.mark.parametrize(
    "record",
    [
        {"image": None},
        {"image": 3},
        {"image": [None, 4]},
        {"image": {"a": 1}},
        {"video": ["a.mp4"]},
        {"image": "a.jpg", "width": "wide", "height": 2.5},
        {"image": ["a.jpg"], "width_list": "x"},
        {"image": "a.jpg", "conversations": "<box>"},
        {"image": "a.jpg", "conversations": [None, {"value": 3}]},
    ],
)
def test_malformed_records_never_raise(tmp_path: Path, record: dict) -> None:
    (tmp_path / "a.jpg").write_bytes(OK_IMAGE.read_bytes())
    assert check_one(tmp_path, record) == []


def test_pixel_limit_and_broken_video_messages(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    case = FIXTURES / "invalid"
    (tmp_path / "bomb.png").write_bytes((case / "ivl307-image-too-large" / "bomb.png").read_bytes())
    (tmp_path / "broken.mp4").write_bytes((case / "ivl311-video-unreadable" / "broken.mp4").read_bytes())
    want = "'bomb.png' is 4000x4000 = 16000000 pixels, over the limit of 1000000"
    for mode in ("header", "decode"):  # the header alone is enough; decode never starts
        (f,) = check_one(
            tmp_path, {"image": "bomb.png", "conversations": conv("<image>", "x")}, media=mode, max_pixels=1_000_000
        )
        assert (f.code, f.message) == ("IVL307", want)
    capfd.readouterr()
    (f,) = check_one(tmp_path, {"video": "broken.mp4", "conversations": conv("<video>\nx", "y")})
    assert f.code == "IVL311" and f.message.startswith("'broken.mp4' cannot be decoded by decord: ")
    assert str(tmp_path) not in f.message  # decord's text names the file; the finding already does
    assert capfd.readouterr().err == ""  # decord's C++ logger is silenced while it opens the file (fd 2)


# ----------------------------------------------------------------------------- untrusted bytes

MUTABLE = [FIXTURES / "valid" / "images" / n for n in ("photo_640x480.jpg", "chart_480x420.png")] + [
    FIXTURES / "invalid" / "ivl309-exif-rotated-boxes" / "rotated.jpg",
    FIXTURES / "invalid" / "ivl310-alpha-dropped" / "palette.png",
]


def _mutate(data: bytes, cut: float, flips: list[tuple[float, int]]) -> bytes:
    out = bytearray(data[: max(1, int(len(data) * cut))])
    for where, value in flips:
        out[int(where * (len(out) - 1))] = value
    return bytes(out)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(MUTABLE),
    st.floats(0.0, 1.0),
    st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8),
)
def test_damaged_images_only_raise_media_errors(tmp_path: Path, source: Path, cut: float, flips: list) -> None:
    path = tmp_path / f"x{source.suffix}"
    path.write_bytes(_mutate(source.read_bytes(), cut, flips))
    for read in (media.image_header, lambda p: media.decode_image(p, 10**7)):
        try:
            info = read(str(path))
        except media.MediaError as err:
            assert err.kind in ("unreadable", "truncated", "too-large") and str(err)
        else:
            assert info.width > 0 and info.height > 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.floats(0.0, 1.0), st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=8))
def test_damaged_videos_only_raise_media_errors(tmp_path: Path, cut: float, flips: list) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(_mutate(OK_VIDEO.read_bytes(), cut, flips))
    for decode in (False, True):
        try:
            info = media.video_info(str(path), decode=decode)
        except media.MediaError as err:
            assert err.kind == "video" and str(err)
        else:
            assert info.frames > 0 and info.fps > 0


def test_postscript_is_never_rendered(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    for mode in ("header", "decode"):
        (f,) = check_one(tmp_path, {"image": "a.jpg", "conversations": conv("<image>", "x")}, media=mode)
        assert (f.code, f.message) == (
            "IVL305",
            "'a.jpg' is PostScript, which Pillow renders by running Ghostscript: not opened",
        )


# ----------------------------------------------------------------------------- IVL315 (info)


def test_small_images_stretched_over_tiles(tmp_path: Path) -> None:
    Image.new("RGB", (64, 40)).save(tmp_path / "s.jpg")
    Image.new("RGB", (40, 40)).save(tmp_path / "sq.jpg")
    one = {"image": "s.jpg", "conversations": conv("<image>", "x")}
    (f,) = check_one(tmp_path, one)
    assert (f.code, f.severity, f.message) == (
        "IVL315",
        Severity.INFO,
        "'s.jpg' is 64x40, fewer pixels than one "
        "448x448 tile, but is resized to 3x2 tiles (1344x896) plus a "
        "thumbnail with max_dynamic_patch 6",
    )
    assert check_one(tmp_path, one | {"image": "sq.jpg"}) == []  # square: the 1x1 grid wins the tie
    multi = {"image": ["s.jpg", "sq.jpg", "sq.jpg"], "conversations": conv("<image>" * 3, "x")}
    (f,) = check_one(tmp_path, multi)  # the official budget: max(1, 6 // 3) tiles per image
    assert f.json_path == "$.image[0]" and f.message.endswith(
        "to 2x1 tiles (896x448) plus a thumbnail with max_dynamic_patch 2"
    )
    assert check_one(tmp_path, multi | {"image": ["s.jpg"] * 6}) == []  # one tile each
    checks_media.clear_cache()
    override = SimpleNamespace(root=str(tmp_path), entry=SimpleNamespace(max_dynamic_patch=1))  # meta.MetaEntry
    assert MediaChecker(override, ValidateOptions()).check(one, LineCtx("d.jsonl", 1)) == []


def test_small_image_tiling_follows_the_model(tmp_path: Path) -> None:
    Image.new("RGB", (64, 40)).save(tmp_path / "s.jpg")
    one = {"image": "s.jpg", "conversations": conv("<image>", "x")}
    cfg = {
        "vision_config": {"image_size": 448},
        "llm_config": {},
        "max_dynamic_patch": 2,
        "dynamic_image_size": True,
        "use_thumbnail": False,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    (f,) = check_one(tmp_path, one, model_dir=str(tmp_path))
    assert f.message.endswith("resized to 2x1 tiles (896x448) with max_dynamic_patch 2")
    (tmp_path / "config.json").write_text(json.dumps(cfg | {"dynamic_image_size": False}))
    assert check_one(tmp_path, one, model_dir=str(tmp_path)) == []  # one resized tile, nothing stretched
    (tmp_path / "config.json").write_text(json.dumps(cfg | {"max_dynamic_patch": "many"}))
    assert [f.code for f in check_one(tmp_path, one, model_dir=str(tmp_path))] == ["IVL315"]  # the defaults
