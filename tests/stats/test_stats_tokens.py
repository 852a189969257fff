"""Token counts: the stats fast path equals SampleBuilder.build_text record by record; exact mixture numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from internvl_data.cli import dispatch as cli
from internvl_data.formats.models import record_kind
from internvl_data.pipeline.sample import SampleBuilder, SampleError, TruncatedImageError
from internvl_data.stats.tokens import TokenCounter, model_settings, prepare
from internvl_data.stats.worker import Record, Settings

TURNS = [
    ("Describe the picture in detail.", "The red car is parked next to a tall building."),
    ("  What is shown?  ", " Two apples and one banana on the wooden table. "),
    ("请描述这张图片的内容。", "我们可以看到一只小猫坐在桌子上。"),
    ("Count: 12345, 3.14 and (a), [b]?", "Hello world! It's a test."),
]


def _records() -> list[Record]:
    """Every kind, multi-turn, placeholder present/absent/mid-text, a trailing human turn, an empty answer."""
    out = []
    for k in range(24):
        q, a = TURNS[k % 4]
        convs = [{"from": "human", "value": q}, {"from": "gpt", "value": a * (1 + k % 3)}]
        if k % 5 == 1:
            convs += [
                {"from": "human", "value": TURNS[(k + 1) % 4][0]},
                {"from": "gpt", "value": TURNS[(k + 2) % 4][1]},
            ]
        kind = ("text", "single", "multi", "video")[k % 4]
        if kind == "single":
            if k % 3 == 0:
                convs[0]["value"] = "<image>\n" + q
            elif k % 3 == 1:
                convs[0]["value"] = q + " <image> here"
            obj = {"image": "x.jpg", "conversations": convs}
            tiles = [(1, 3, 7, 13)[k % 4]]
        elif kind == "multi":
            n = 2 + k % 2
            convs[0]["value"] = "".join(f"Image-{i + 1}: <image>\n" for i in range(n)) + q
            obj = {"image": ["x.jpg"] * n, "conversations": convs}
            tiles = [1 + (k + i) % 3 for i in range(n)]
        elif kind == "video":
            convs[0]["value"] = "<video>\n" + q
            obj = {"video": "v.mp4", "conversations": convs}
            tiles = [1] * 3
        else:
            obj, tiles = {"conversations": convs}, []
        out.append(Record(obj, record_kind(obj), tiles))
    out.append(
        Record(
            {
                "conversations": [
                    {"from": "human", "value": "hi"},
                    {"from": "gpt", "value": "yo"},
                    {"from": "human", "value": "trailing"},
                ]
            },
            "text",
            [],
        )
    )
    out.append(Record({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]}, "text", []))
    out.append(
        Record({"conversations": [{"from": "human", "value": "q"}, {"from": "system", "value": "x"}]}, "text", [])
    )
    out.append(
        Record(
            {
                "image": ["x.jpg", "x.jpg"],
                "conversations": [{"from": "human", "value": "<image> only one"}, {"from": "gpt", "value": "a"}],
            },
            "multi",
            [1, 1],
        )
    )
    special = "<|endoftext|> </s> <unk> <|end|> <|im_end|>"  # pad / end tokens of one tokenizer or another
    out.append(
        Record(
            {
                "conversations": [
                    {"from": "human", "value": f"q {special} q"},
                    {"from": "gpt", "value": f"{special}a {special} b{special}"},
                ]
            },
            "text",
            [],
        )
    )
    long = " ".join(a for _, a in TURNS) * 4  # pieces over stats_pieces.SHORT characters
    out.append(
        Record(
            {
                "image": "x.jpg",
                "conversations": [
                    {"from": "human", "value": "<image>\n" + long},
                    {"from": "gpt", "value": long + special + long},
                ],
            },
            "single",
            [3],
        )
    )
    out.append(
        Record(
            {
                "image": "x.jpg",
                "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a <img> b"}],
            },
            "single",
            [2],
        )
    )
    return out


def _reference(builder: SampleBuilder, rec: Record) -> tuple:
    """(total, supervised, mismatch, truncated image, error code) straight from SampleBuilder.build_text."""
    try:
        s = builder.build_text(
            prepare(rec), rec.kind, rec.tiles, np.zeros((0, 3, 1, 1), np.float32), np.zeros(0, np.int64)
        )
    except TruncatedImageError as exc:
        return (exc.details["length"], None, None, True, None)
    except SampleError as exc:
        return (None, None, None, False, exc.code)
    return (s.full_length, int((s.labels != -100).sum()), s.official_mismatch, False, None)


def _fast(c) -> tuple:
    if c.error:
        return (None, None, None, False, c.error.split(":")[0])
    if c.truncated_image:
        return (c.total, None, None, True, None)
    return (c.total, c.supervised, c.mismatch, False, None)


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "count-only"])
@pytest.mark.parametrize("max_len", [8192, 1500, 1200, 700, 120, 30])
@pytest.mark.parametrize(
    "pair",
    [
        "qwen2/Hermes-2",
        "llama3/internlm2-chat",
        "internlm2/internlm2-chat",
        "phi3/phi3-chat",
        "qwen2/internvl2_5",
        "qwen2/internlm2-chat",
    ],
)
def test_fast_path_equals_sample_builder(model_dirs: dict[str, Path], pair: str, max_len: int, checked: bool) -> None:
    """Checked: the first records go through the exact piece encoding, compared with the whole-text encoding
    and with the count-only path. Count-only: what every later record takes."""
    counter = TokenCounter.load(model_settings(str(model_dirs[pair]), Settings(max_seq_length=max_len)))
    if not checked:
        counter.checks_left = 0
    records = _records()
    fast = counter.count_batch(records)
    ref = SampleBuilder(counter.b.codec.tokenizer, counter.b.info, max_seq_length=max_len, num_frames=3)
    assert [_fast(c) for c in fast] == [_reference(ref, r) for r in records]
    assert counter.pieces.ok and counter.measured  # both shortcuts held on every tokenizer here
    if pair == "qwen2/Hermes-2" and max_len == 8192 and checked:
        assert counter.checks_left == 64 - 29  # 29 records took the fast path, verified
        assert [c.image for c in fast[:4]] == [0, 3 * 256 + 2, 4 * 256 + 2 * 2, 3 * 258]


def test_piece_cache_falls_back_when_it_disagrees(model_dirs: dict[str, Path]) -> None:
    counter = TokenCounter.load(model_settings(str(model_dirs["qwen2/Hermes-2"]), Settings()))
    counter.pieces.agrees = lambda text: False  # type: ignore[method-assign]
    records = _records()
    assert counter.count_batch(records) == [counter._slow(r) for r in records]
    assert not counter.pieces.ok


def test_count_only_path_switches_off_when_it_disagrees(model_dirs: dict[str, Path]) -> None:
    counter = TokenCounter.load(model_settings(str(model_dirs["qwen2/Hermes-2"]), Settings()))
    measure = counter.pieces.measure
    counter.pieces.measure = lambda *a: measure(*a)._replace(supervised=-1)  # type: ignore[method-assign]
    records = _records()
    assert counter.count_batch(records) == [counter._slow(r) for r in records]
    assert counter.pieces.ok and not counter.measured
    counter.checks_left = 0  # later records: the exact arrays, never the disagreeing path
    assert counter.count_batch(records) == [counter._slow(r) for r in records]


def test_count_only_path_hands_pieces_with_image_ids_to_the_arrays(model_dirs: dict[str, Path], monkeypatch) -> None:
    """A tokenizer whose own vocabulary could emit an image id inside plain text: ``measure`` gives up on such a
    piece and the record is counted from its arrays. Also rotates the short-piece cache every 4 pieces."""
    monkeypatch.setattr("internvl_data.stats.piece_cache.MAX_CACHE", 4)
    counter = TokenCounter.load(model_settings(str(model_dirs["qwen2/Hermes-2"]), Settings(max_seq_length=700)))
    counter.checks_left = 0
    common = int(counter.b.codec.encode("the").ids[-1])  # pretend this id were an image token
    counter.pieces.watch = counter.pieces.watch_image = {common}
    records = _records()
    assert counter.pieces.measure("the cat", [], [], 700) is None
    assert counter.count_batch(records) == [counter._slow(r) for r in records]
    assert counter.measured and len(counter.pieces.cache) <= 4


def _stats_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code = cli.main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return {r["dataset"]: r for r in json.loads(out.out)["summary"]}


def test_exact_mixture_stats_with_a_model(
    mixture: Path, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _stats_json(
        [
            "stats",
            str(mixture),
            "--model",
            str(model_dirs["qwen2/Hermes-2"]),
            "--format",
            "json",
            "--no-cache",
            "--max-seq-length",
            "2600",
            "--global-batch-size",
            "4",
            "--jobs",
            "2",
        ],
        capsys,
    )
    keys = (
        "effective_records",
        "tokens_total",
        "supervised_tokens_total",
        "over_length",
        "truncated_image",
        "zero_supervised",
        "official_mismatch",
        "video_cannot_fit",
        "build_errors",
        "steps_per_epoch",
        "total_tokens_max",
    )
    got = {name: tuple(r[k] for k in keys) for name, r in rows.items()}
    assert got == {
        "captions": (8, 8174, 56, 0, 0, 0, 0, 0, 0, 2, 1852),
        "chat": (2, 140, 19, 0, 0, 0, 0, 0, 0, 1, 74),
        # 32 frames x 258 tokens do not fit in 2,600: both video records are over max_seq_length (validate: IVL406,
        # the fewest frames fit), which is not an image cut (IVL402): one answer in stats and validate
        "videos": (3, 17643, 4, 2, 0, 0, 0, 0, 0, 1, 8665),
        "(mixture)": (13, 25957, 79, 2, 0, 0, 0, 0, 0, 4, 8665),
    }
    assert rows["captions"]["image_tokens_p50"] == (770 + 1284) / 2  # 0, 770 (3 tiles), 1284 (1 + 4), 1794 (7)
    assert rows["chat"]["image_tokens_max"] == 0


def test_official_mismatch_is_counted(
    mixture: Path, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # internlm2-chat arithmetic expects a BOS; the qwen2 tokenizer has none: every record mismatches
    rows = _stats_json(
        [
            "stats",
            str(mixture),
            "--model",
            str(model_dirs["qwen2/internlm2-chat"]),
            "--format",
            "json",
            "--no-cache",
            "--num-frames",
            "1",
            "--jobs",
            "1",
        ],
        capsys,
    )
    got = {
        n: (r["effective_records"], r["official_mismatch"], r["zero_supervised"], r["over_length"])
        for n, r in rows.items()
    }
    assert got == {"captions": (8, 8, 0, 0), "chat": (2, 2, 0, 0), "videos": (3, 3, 0, 0), "(mixture)": (13, 13, 0, 0)}


class _Ctx:
    def __init__(self, line: int):
        self.path, self.line, self.dataset = "d.jsonl", line, "d"


def _checker(model: Path, media_dir: Path, max_len: int, **extra):
    from types import SimpleNamespace

    from internvl_data.checks.tokens import TokenChecker

    entry = SimpleNamespace(
        name="d", entry=SimpleNamespace(max_dynamic_patch=None), annotation_path="d.jsonl", root_path=str(media_dir)
    )
    options = SimpleNamespace(model_dir=str(model), template=None, max_seq_length=max_len, **extra)
    return TokenChecker(entry, options)


def _codes(checker, obj: dict) -> list[tuple[str, str]]:
    return [(f.code, f.severity.value) for f in checker.check(obj, _Ctx(7))]


def test_token_rules(model_dirs: dict[str, Path], media_dir: Path) -> None:
    model = model_dirs["qwen2/Hermes-2"]
    c = _checker(model, media_dir, 1000)
    long = " ".join(str(i) for i in range(400))  # about 1,500 tokens (digits are single tokens)
    assert _codes(c, {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]}) == []
    assert _codes(c, {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": long}]}) == [
        ("IVL401", "warning")
    ]
    assert _codes(c, {"conversations": [{"from": "human", "value": long}, {"from": "gpt", "value": "ok"}]}) == [
        ("IVL401", "warning"),
        ("IVL403", "error"),
    ]
    img = {"image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]}
    found = c.check(img, _Ctx(7))  # 800x600 at max_dynamic_patch 6: 7 tiles = 1,794 image tokens
    assert [(f.code, f.line, f.path, f.dataset) for f in found] == [("IVL402", 7, "d.jsonl", "d")]
    assert found[0].message == (
        "the record is 1,845 tokens; cutting at 1,000 removes image tokens (the last `</img>` is token 1,832)"
    )
    video = {
        "video": "v.mp4",
        "conversations": [{"from": "human", "value": "<video>\nq"}, {"from": "gpt", "value": "a"}],
    }
    assert _codes(c, video) == [("IVL405", "error")]  # 8 frames x 258 > 1,000
    assert _codes(_checker(model, media_dir, 2600), video) == [("IVL406", "warning")]  # 32 frames overflow, 8 fit
    empty = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": ""}]}
    assert _codes(c, empty) == [("IVL403", "error"), ("IVL404", "error")]  # header without separator: mismatch
    mismatch = _checker(model_dirs["qwen2/internlm2-chat"], media_dir, 1000)
    found = mismatch.check(
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]}, _Ctx(3)
    )
    assert [(f.code, f.severity.value) for f in found] == [("IVL404", "error")]
    assert "official internlm2-chat arithmetic would mask the whole record" in found[0].message


def test_rules_are_in_the_catalogue() -> None:
    from internvl_data.checks.registry import all_rules

    rules = all_rules()
    assert {c: (rules[c].name, rules[c].severity.value) for c in rules if c.startswith("IVL4")} == {
        "IVL401": ("over-max-seq-length", "warning"),
        "IVL402": ("image-tokens-truncated", "error"),
        "IVL403": ("zero-supervised-tokens", "error"),
        "IVL404": ("official-tokenization-mismatch", "error"),
        "IVL405": ("video-frames-cannot-fit", "error"),
        "IVL406": ("video-frames-may-overflow", "warning"),
        "IVL407": ("record-over-budget", "error"),
    }


def test_validate_with_model_reports_token_budgets(
    tmp_path: Path, media_dir: Path, model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from internvl_data import validate

    long = " ".join(str(i) for i in range(1200))  # over 4,096 tokens
    records = [
        {"id": 1, "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "ok"}]},
        {"id": 2, "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": long}]},
        {
            "id": 3,
            "image": "a.jpg",
            "conversations": [{"from": "human", "value": long + "\n<image>"}, {"from": "gpt", "value": "a"}],
        },
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "meta.json").write_text(
        json.dumps(
            {
                "d": {
                    "root": str(media_dir),
                    "annotation": "d.jsonl",
                    "data_augment": False,
                    "repeat_time": 1,
                    "length": 3,
                }
            }
        )
    )
    report = validate(
        str(tmp_path / "meta.json"), model_dir=str(model_dirs["qwen2/Hermes-2"]), jobs=1, write_manifest=False
    )
    got = [(f.code, f.line) for f in report.findings if f.code.startswith("IVL4")]
    assert got == [("IVL401", 2), ("IVL402", 3)]
    plain = validate(str(tmp_path / "meta.json"), jobs=1, write_manifest=False)
    assert not [f for f in plain.findings if f.code.startswith("IVL4")]
    from internvl_data.cli import dispatch as cli

    code = cli.main(
        [
            "validate",
            str(tmp_path / "meta.json"),
            "--model",
            str(model_dirs["qwen2/Hermes-2"]),
            "--max-seq-length",
            "20",
            "--select",
            "IVL4",
            "--no-manifest",
            "--format",
            "json",
            "-j",
            "1",
        ]
    )
    rows = json.loads(capsys.readouterr().out)["findings"]
    # 20 tokens do not even hold the system prompt: every answer is cut away, record 3 loses its image tokens
    assert code == 1 and [(r["code"], r["location"]["row"]) for r in rows] == [
        ("IVL401", 1),
        ("IVL403", 1),
        ("IVL401", 2),
        ("IVL403", 2),
        ("IVL402", 3),
    ]


def test_model_plots_and_html(
    mixture: Path, model_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    plots, page = tmp_path / "plots", tmp_path / "r.html"
    code = cli.main(
        [
            "stats",
            str(mixture),
            "--model",
            str(model_dirs["qwen2/Hermes-2"]),
            "--plots",
            str(plots),
            "--html",
            str(page),
            "--no-cache",
            "--jobs",
            "1",
            "--num-frames",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "Token budget (max_seq_length 4096)" in out
    assert sorted(p.name for p in plots.iterdir()) == [
        "supervised_tokens.png",
        "tiles_per_image.png",
        "tiles_per_record.png",
        "total_tokens.png",
    ]
    with Image.open(plots / "total_tokens.png") as im:
        assert im.format == "PNG"
    text = page.read_text()
    assert text.count("<table") == 3 and text.count("data:image/png;base64,") == 4
    assert "<th>official mismatch</th>" in text


def test_valid_fixture_mixture(model_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    meta = Path(__file__).resolve().parents[2] / "fixtures" / "valid" / "meta.json"
    rows = _stats_json(
        [
            "stats",
            str(meta),
            "--model",
            str(model_dirs["llama3/internlm2-chat"]),
            "--format",
            "json",
            "--no-cache",
            "--jobs",
            "2",
            "--num-frames",
            "4",
        ],
        capsys,
    )
    assert {n: r["effective_records"] for n, r in rows.items()} == {
        "text": 3,
        "single": 2,
        "multi": 4,
        "video": 2,
        "mixed": 5,
        "(mixture)": 16,
    }  # 5 x 0.5 -> 2; 2 x 2 -> 4
    mix = rows["(mixture)"]
    assert (mix["text"] + mix["single"] + mix["multi"] + mix["video"], mix["skipped_lines"]) == (16, 0)
    assert (mix["images_unreadable"], mix["videos_unreadable"], mix["build_errors"]) == (0, 0, 0)
    assert mix["official_mismatch"] == 0 and mix["zero_supervised"] == 0
