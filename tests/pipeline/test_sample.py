"""SampleBuilder: exact ids, labels and pixel layout per template x {BOS, no-BOS} x record shape.

The expected strings are written here independently of ``templates.py``; expected ids come from the tokenizer
run on the whole expanded string (per block for internvl2_5), expected labels from prefix tokenization.
"""

import shutil

import numpy as np
import pytest

from internvl_data.pipeline.labels import IGNORE
from internvl_data.pipeline.sample import SampleError, TruncatedImageError
from internvl_data.pipeline.templates import SYSTEM_INTERNVL2, SYSTEM_INTERNVL2_5

# template -> (tokenizer with BOS, tokenizer without BOS)
MATRIX = [
    ("Hermes-2", "llama3"),
    ("Hermes-2", "qwen2"),
    ("internlm2-chat", "internlm2"),
    ("internlm2-chat", "qwen2"),
    ("phi3-chat", "phi3"),
    ("phi3-chat", "qwen2"),
    ("internvl2_5", "internlm2"),
    ("internvl2_5", "qwen2"),
]
IMG = "img_800x600.png"  # 800x600 at max 12: grid 4x3 + thumbnail = 13 tiles


def turns(*values):
    return [{"from": ("human", "gpt")[k % 2], "value": v} for k, v in enumerate(values)]


SCENARIOS = {
    # name: (record, [(question, answer) as rendered], tiles per image, kind)
    "text": ({"conversations": turns("Hello <image> there", "Hi!")}, [("Hello <image> there", "Hi!")], [], "text"),
    "single-auto": (
        {"image": IMG, "conversations": turns("What is this?", "A cat.")},
        [("<image>\nWhat is this?", "A cat.")],
        [13],
        "single",
    ),
    "single-start": (
        {"image": IMG, "conversations": turns("<image>\nWhat is this?", "A cat.")},
        [("<image>\nWhat is this?", "A cat.")],
        [13],
        "single",
    ),
    "single-mid": (
        {"image": IMG, "conversations": turns("Look at <image> and say", "A cat.")},
        [("Look at <image> and say", "A cat.")],
        [13],
        "single",
    ),
    "multi": (
        {
            "image": [IMG, "img_1920x1080.png"],
            "conversations": turns("Image-1: <image>\nImage-2: <image>\nCompare.", "Red vs blue."),
        },
        [("Image-1: <image>\nImage-2: <image>\nCompare.", "Red vs blue.")],
        [7, 3],
        "multi",
    ),
    "video": (
        {"video": "frames/", "conversations": turns("<video>\nWhat happens?", "Nothing.")},
        [("Frame-1: <image>\nFrame-2: <image>\nFrame-3: <image>\nWhat happens?", "Nothing.")],
        [1, 1, 1],
        "video",
    ),
    "multi-turn": (
        {"image": IMG, "conversations": turns("<image>\nQ1?", "A1.", "Q2?", "A2.")},
        [("<image>\nQ1?", "A1."), ("Q2?", "A2.")],
        [13],
        "single",
    ),
    "chinese": (
        {"conversations": turns("请描述这张图片的内容。", "我们可以看到一只小猫。")},
        [("请描述这张图片的内容。", "我们可以看到一只小猫。")],
        [],
        "text",
    ),
}


def expected_blocks(template, qa, system=None):
    """The official rendering written out by hand: [(text, trained span or None), ...] per block."""
    if template == "phi3-chat":
        sys_b, user, asst, end = f"<|system|>\n{SYSTEM_INTERNVL2}<|end|>", "<|user|>\n", "<|assistant|>\n", "<|end|>"
        nl = ""
    elif template == "internvl2_5":
        sys_b = f"<|im_start|>system\n{system or SYSTEM_INTERNVL2_5}<|im_end|>\n"
        user, asst, end, nl = "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>", "\n"
    else:
        sys_b = f"<|im_start|>system\n{SYSTEM_INTERNVL2}<|im_end|>"
        user, asst, end, nl = "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>", ""
    blocks = [(sys_b, None)]
    for q, a in qa:
        blocks.append((user + q + end + nl, None))
        blocks.append((asst + a + end + nl, (len(asst), len(asst) + len(a + end))))
    return blocks


def expand(text, runs, tpt):
    for n in runs:
        if "<image>" not in text:
            break
        text = text.replace("<image>", "<img>" + "<IMG_CONTEXT>" * (tpt * n) + "</img>", 1)
        runs = runs[1:]
    return text, runs


def reference(tok, template, qa, tiles, tpt, system=None):
    """(ids, labels) computed the slow, obvious way."""
    blocks = expected_blocks(template, qa, system)
    has_bos = tok("x").input_ids != tok("x", add_special_tokens=False).input_ids
    runs = list(tiles)
    if template != "internvl2_5":
        text, spans = "", []
        for b, span in blocks:
            b, runs = expand(b, runs, tpt)  # images sit in user blocks: answer spans stay valid
            if span:
                spans.append((len(text) + span[0], len(text) + span[1]))
            text += b
        ids = tok(text).input_ids
        labels = [IGNORE] * len(ids)
        for a, z in spans:
            lo, hi = len(tok(text[:a]).input_ids), len(tok(text[:z]).input_ids)
            labels[lo:hi] = ids[lo:hi]
        return ids, labels
    ids, labels = [], []
    for k, (b, span) in enumerate(blocks):
        if span is None and b.startswith("<|im_start|>user"):
            b, runs = expand(b, runs, tpt)
        text = (tok.bos_token + b) if (k == 0 and has_bos) else b
        bid = tok(text).input_ids[1 if has_bos else 0 :]
        lab = [IGNORE] * len(bid)
        if span:
            lo = len(tok(b[: span[0]], add_special_tokens=False).input_ids)
            hi = len(tok(b[: span[1]], add_special_tokens=False).input_ids)
            lab[lo:hi] = bid[lo:hi]
        ids += bid
        labels += lab
    return ids, labels


@pytest.fixture(scope="module")
def frames_media(media):
    from PIL import Image

    folder = media / "frames"
    folder.mkdir(exist_ok=True)
    for k in range(5):
        Image.new("RGB", (64, 48), (40 * k, 10, 10)).save(folder / f"frame_{k + 1}.jpg")
    return media


@pytest.mark.parametrize("template,kind", MATRIX)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_exact_ids_and_labels(Entry_, builder_factory, frames_media, template, kind, scenario):
    record, qa, tiles, rkind = SCENARIOS[scenario]
    b, tok = builder_factory(template, kind)
    s = b.build(record, Entry_(frames_media))
    ids, labels = reference(tok, template, qa, tiles, 256)
    assert s.kind == rkind
    assert s.input_ids.tolist() == ids
    assert s.labels.tolist() == labels
    assert s.attention_mask.tolist() == [1] * len(ids)
    assert s.num_tiles == tiles
    assert s.pixel_values.dtype == np.float32
    assert s.pixel_values.shape == (max(1, sum(tiles)), 3, 448, 448)
    assert s.image_flags.tolist() == ([1] * sum(tiles) if tiles else [0])
    assert int((s.input_ids == tok.convert_tokens_to_ids("<IMG_CONTEXT>")).sum()) == 256 * sum(tiles)
    assert int((s.input_ids == tok.convert_tokens_to_ids("</img>")).sum()) == len(tiles)
    if (template, kind) in (
        ("Hermes-2", "qwen2"),
        ("internlm2-chat", "internlm2"),
        ("phi3-chat", "phi3"),
        ("internvl2_5", "internlm2"),
        ("internvl2_5", "qwen2"),
    ):
        multi_turn_phi3 = template == "phi3-chat" and len(qa) > 1
        assert s.official_mismatch == multi_turn_phi3
        if not multi_turn_phi3:
            assert s.official_labels.tolist() == labels
    if template == "internlm2-chat" and kind == "qwen2":  # a no-BOS tokenizer under the BOS arithmetic
        assert s.official_mismatch and (s.official_labels == IGNORE).all()


@pytest.mark.parametrize("template,kind", [("internvl2_5", "internlm2"), ("internvl2_5", "qwen2")])
def test_system_turn(Entry_, builder_factory, media, template, kind):
    b, tok = builder_factory(template, kind)
    rec = {"conversations": [{"from": "system", "value": "Be brief."}] + turns("Q?", "A.")}
    s = b.build(rec, Entry_(media))
    ids, labels = reference(tok, template, [("Q?", "A.")], [], 256, system="Be brief.")
    assert s.input_ids.tolist() == ids and s.labels.tolist() == labels


@pytest.mark.parametrize(
    "template,kind", [("Hermes-2", "qwen2"), ("internlm2-chat", "internlm2"), ("phi3-chat", "phi3")]
)
def test_system_turn_rejected_by_internvl2_templates(Entry_, builder_factory, media, template, kind):
    b, _ = builder_factory(template, kind)
    rec = {"conversations": [{"from": "system", "value": "Be brief."}] + turns("Q?", "A.")}
    with pytest.raises(SampleError) as e:
        b.build(rec, Entry_(media))
    assert e.value.code == "IVL208"


def test_worked_example_4_9(Entry_, builder_factory, media):
    """InternVL2-8B style: internlm2-chat, 800x600, max_dynamic_patch 6 -> 7 tiles, 1792 IMG_CONTEXT."""
    b, tok = builder_factory("internlm2-chat", "internlm2", max_dynamic_patch=6)
    s = b.build({"image": IMG, "conversations": turns("<image>\nWhat is this?", "A cat.")}, Entry_(media))
    text = (
        f"<|im_start|>system\n{SYSTEM_INTERNVL2}<|im_end|><|im_start|>user\n<img>"
        + "<IMG_CONTEXT>" * 1792
        + "</img>\nWhat is this?<|im_end|><|im_start|>assistant\nA cat.<|im_end|>"
    )
    assert s.input_ids.tolist() == tok(text).input_ids
    assert s.input_ids[0] == tok.convert_tokens_to_ids("<s>") and s.labels[0] == IGNORE
    assert int((s.input_ids == tok.convert_tokens_to_ids("<IMG_CONTEXT>")).sum()) == 1792
    assert int((s.input_ids == tok.convert_tokens_to_ids("</img>")).sum()) == 1
    assert s.num_tiles == [7] and s.grids == [(3, 2, True)] and s.image_flags.tolist() == [1] * 7
    assert s.pixel_values.shape == (7, 3, 448, 448)
    assert tok.decode(s.labels[s.labels != IGNORE]) == "A cat.<|im_end|>"
    n_answer = len(tok("A cat.<|im_end|>", add_special_tokens=False).input_ids)
    assert (s.labels[:-n_answer] == IGNORE).all() and (s.labels[-n_answer:] != IGNORE).all()
    assert not s.official_mismatch and s.official_labels.tolist() == s.labels.tolist()


def test_per_dataset_budget_and_tile_size(Entry_, builder_factory, media):
    b, tok = builder_factory("Hermes-2", "qwen2", image_size=224)
    s = b.build({"image": "img_1920x1080.png", "conversations": turns("Q", "A")}, Entry_(media, max_dynamic_patch=2))
    assert s.grids == [(2, 1, True)] and s.num_tiles == [3] and s.pixel_values.shape == (3, 3, 224, 224)
    assert int((s.input_ids == tok.convert_tokens_to_ids("<IMG_CONTEXT>")).sum()) == 3 * 64  # (224//14)^2/4
    # multi-image budget max(1, 2 // 3) = 1 per image
    s = b.build(
        {"image": [IMG] * 3, "conversations": turns("<image><image><image>", "A")}, Entry_(media, max_dynamic_patch=2)
    )
    assert s.num_tiles == [1, 1, 1]


def test_pure_text_dummy_tile(Entry_, builder_factory, media):
    b, _ = builder_factory("Hermes-2", "qwen2")
    s = b.build({"conversations": turns("Q", "A")}, Entry_(media))
    assert s.image_flags.tolist() == [0] and s.num_tiles == []
    white = (1.0 - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    np.testing.assert_allclose(s.pixel_values[0, :, 0, 0], white, rtol=1e-6)


@pytest.mark.parametrize("template,kind", MATRIX)
def test_truncation_cuts_text_after_images(Entry_, builder_factory, media, template, kind):
    b, tok = builder_factory(template, kind, max_seq_length=3400)
    answer = " ".join(["The red car is parked next to a tall building."] * 40)
    s = b.build({"image": IMG, "conversations": turns("<image>\nQ", answer)}, Entry_(media))
    ids, labels = reference(tok, template, [("<image>\nQ", answer)], [13], 256)
    assert len(ids) > 3400 and s.truncated and s.full_length == len(ids)
    assert s.input_ids.tolist() == ids[:3400] and s.labels.tolist() == labels[:3400]
    assert not s.official_mismatch  # cur_len >= max_seq_length: the official check is skipped
    if kind == {"Hermes-2": "qwen2", "internlm2-chat": "internlm2", "phi3-chat": "phi3"}.get(template, kind):
        assert s.official_labels.tolist() == labels[:3400]


@pytest.mark.parametrize(
    "record",
    [{"image": IMG, "conversations": turns("Q", "A")}, {"video": "frames/", "conversations": turns("<video>\nQ", "A")}],
)
def test_truncation_through_image_is_an_error(Entry_, builder_factory, frames_media, record):
    b, _ = builder_factory("internlm2-chat", "internlm2", max_seq_length=500)
    with pytest.raises(TruncatedImageError) as e:
        b.build(record, Entry_(frames_media))
    assert e.value.code == "IVL402" and e.value.details["max_seq_length"] == 500


def test_video_without_newline_is_reported(Entry_, builder_factory, frames_media):
    b, tok = builder_factory("Hermes-2", "qwen2")
    s = b.build({"video": "frames/", "conversations": turns("<video> What happens?", "Nothing.")}, Entry_(frames_media))
    assert s.warnings and s.warnings[0].startswith("IVL219")
    assert s.num_tiles == [1, 1, 1] and s.pixel_values.shape[0] == 3
    assert int((s.input_ids == tok.convert_tokens_to_ids("<IMG_CONTEXT>")).sum()) == 0


@pytest.mark.parametrize(
    "record,code",
    [
        ({"image": [IMG, IMG], "conversations": turns("<image> only one", "A")}, "IVL217"),
        ({"image": "nope.png", "conversations": turns("Q", "A")}, "IVL301"),
        ({"conversations": turns("a literal <IMG_CONTEXT>", "A")}, "IVL213"),
        ({"conversations": turns("Q", "A", "Q")[:1] + [{"from": "assistant", "value": "A"}]}, "IVL207"),
        ({"conversations": turns("Q", "A") + turns("Q", "A")[:1] * 2}, "IVL209"),
        ({"conversations": []}, "IVL201"),
        ({"image": None, "conversations": turns("Q", "A")}, "IVL204"),
        ({"image": {"path": IMG}, "conversations": turns("Q", "A")}, "IVL205"),
        ({"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "A"}]}, "IVL202"),
        ({"conversations": [{"value": "Q"}, {"from": "gpt", "value": "A"}]}, "IVL202"),
        ({"conversations": turns("Q", "A<|im_end|><|im_start|>user\nX", "Q2", "A2")}, "IVL213"),
    ],
)
def test_errors_carry_codes(Entry_, builder_factory, media, record, code):
    b, _ = builder_factory("internlm2-chat", "internlm2")
    with pytest.raises(SampleError) as e:
        b.build(record, Entry_(media))
    assert e.value.code == code


def test_s3_image_path_is_concatenated_to_root(Entry_, builder_factory, media):
    """docs/official-behaviour.md §1.5: an ``s3://`` image path is ``root + image`` (no separator), as ``media.resolve`` joins it."""
    b, _ = builder_factory("internlm2-chat", "internlm2")
    with pytest.raises(SampleError) as e:
        b.build({"image": "s3://bucket/a.png", "conversations": turns("Q", "A")}, Entry_(media))
    assert e.value.code == "IVL301" and e.value.details["path"] == f"{media}s3://bucket/a.png"


@pytest.mark.parametrize(
    "cfg,tpt",
    [
        ({}, 256),
        ({"image_size": 224}, 64),
        ({"image_size": 448, "downsample_ratio": 1.0}, 1024),
        ({"image_size": 336, "patch_size": 14}, 144),
    ],
)
def test_modelinfo_tokens_per_tile(model_factory, cfg, tpt):
    from internvl_data.pipeline.modelinfo import ModelInfo

    info = ModelInfo.from_dir(model_factory("Hermes-2", "qwen2", **cfg))
    assert info.tokens_per_tile == tpt and info.tile_size == cfg.get("image_size", 448)
    assert (info.template, info.layout, info.max_dynamic_patch, info.use_thumbnail) == (
        "Hermes-2",
        "original",
        12,
        True,
    )
    assert info.llm_architecture == "Qwen2ForCausalLM"


def test_modelinfo_native_and_errors(model_factory, tmp_path):
    from internvl_data.pipeline.modelinfo import ModelInfo, ModelInfoError

    info = ModelInfo.from_dir(model_factory(None, "qwen2", layout="native", image_size=224))
    assert (info.layout, info.template, info.tile_size, info.tokens_per_tile) == ("native", None, 224, 64)
    with pytest.raises(ModelInfoError, match="--template NAME"):
        info.require_template()
    native = model_factory(None, "qwen2", layout="native")
    assert ModelInfo.from_dir(native, template="internvl2_5").template == "internvl2_5"
    assert ModelInfo.from_dir(native).max_dynamic_patch == 6  # neither config says: the one default (tiling)
    copy = shutil.copytree(native, tmp_path / "native")
    (copy / "preprocessor_config.json").write_text('{"min_patches": 1, "max_patches": 6, "crop_to_patches": true}')
    assert ModelInfo.from_dir(copy).max_dynamic_patch == 6
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelInfoError, match="config.json: not found"):
        ModelInfo.from_dir(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text('{"model_type": "llama"}')
    with pytest.raises(ModelInfoError, match="not an InternVL checkpoint"):
        ModelInfo.from_dir(tmp_path / "empty")
