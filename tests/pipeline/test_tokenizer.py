"""Tokenizer loading: BOS behaviour, the 9 InternVL tokens, the native InternLM2 path, remote-code gating."""

import json
import re
import shutil

import pytest
import sentencepiece as spm

from internvl_data.pipeline.tokenizer import INTERNVL_TOKENS, TokenCodec, TokenizerLoadError, load_tokenizer
from tests.helpers.tokenizers import CONTROL_TOKENS, KINDS, tokenizer_dir

TEXTS = [
    "Hello world",
    "  leading spaces and trailing  ",
    "请描述这张图片的内容。图中有几个人？",
    "mixed 中文 and English, numbers 12345 and 3.14\n\nnew paragraph\n- item",
    "emoji 🙂 and rare 龘 characters",
    "<|im_start|>user\n<img><IMG_CONTEXT><IMG_CONTEXT></img>\nWhat is this?<|im_end|><|im_start|>assistant\nA cat.",
    "<|system|>\nsys<|end|><|user|>\n Q <|end|><|assistant|>\nA<|end|><|endoftext|>",
    "<ref>the dog</ref><box>[[1, 2, 3, 4]]</box> and <quad>x</quad>",
]
BOS = {"qwen2": None, "llama3": "<|begin_of_text|>", "internlm2": "<s>", "phi3": "<s>"}


@pytest.fixture(scope="module", params=KINDS)
def kind_tok(request):
    return request.param, load_tokenizer(tokenizer_dir(request.param))


def test_special_tokens_are_single_ids(kind_tok):
    _, tok = kind_tok
    for t in INTERNVL_TOKENS + tuple(CONTROL_TOKENS):
        ids = tok(t, add_special_tokens=False).input_ids
        assert ids == [tok.convert_tokens_to_ids(t)], t
    ids = [tok.convert_tokens_to_ids(t) for t in INTERNVL_TOKENS]
    assert len(set(ids)) == 9


def test_bos_behaviour(kind_tok):
    kind, tok = kind_tok
    ids = tok("Hello").input_ids
    if BOS[kind] is None:
        assert (
            tok.convert_ids_to_tokens(ids)[0] != "<|begin_of_text|>"
            and ids == tok("Hello", add_special_tokens=False).input_ids
        )
    else:
        assert (
            ids[0] == tok.convert_tokens_to_ids(BOS[kind])
            and ids[1:] == tok("Hello", add_special_tokens=False).input_ids
        )
    assert TokenCodec(tok).prefix == ([] if BOS[kind] is None else [ids[0]])
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    assert ids[-1] != eos  # never an EOS


def test_codec_equals_tokenizer_call(kind_tok):
    _, tok = kind_tok
    codec = TokenCodec(tok)
    for text in TEXTS:
        assert codec.ids(text) == tok(text).input_ids


def _sp_reference(sp, tok, text: str, bos: int) -> list[int]:
    """What the InternLM2 slow tokenizer does: split on added tokens, ``sp.encode`` each chunk, BOS first."""
    specials = sorted(CONTROL_TOKENS + list(INTERNVL_TOKENS), key=len, reverse=True)
    pattern = "(" + "|".join(re.escape(s) for s in specials) + ")"
    out = [bos]
    for chunk in re.split(pattern, text):
        if chunk in specials:
            out.append(tok.convert_tokens_to_ids(chunk))
        elif chunk:
            out.extend(sp.encode(chunk))
    return out


@pytest.mark.parametrize("kind", ["internlm2", "phi3"])
def test_sentencepiece_token_for_token(kind):
    d = tokenizer_dir(kind)
    tok = load_tokenizer(d)
    sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
    assert tok.convert_tokens_to_ids("<s>") == sp.bos_id() == 1
    corpus = TEXTS + [" ".join(TEXTS[k : k + 3]) for k in range(len(TEXTS))]
    for text in corpus:
        assert tok(text).input_ids == _sp_reference(sp, tok, text, sp.bos_id()), text
    # decoding round-trips plain text
    assert tok.decode(tok("mixed 中文 and 🙂", add_special_tokens=False).input_ids) == "mixed 中文 and 🙂"


def test_internlm2_native_path_never_runs_checkpoint_code(tmp_path):
    d = shutil.copytree(tokenizer_dir("internlm2"), tmp_path / "ck")
    tok = load_tokenizer(d)  # the stub raises if executed
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    for tid, spec in cfg["added_tokens_decoder"].items():
        assert tok.convert_tokens_to_ids(spec["content"]) == int(tid)
    assert tok.pad_token == "</s>" and tok.bos_token == "<s>"
    with pytest.raises(Exception, match="must never run"):
        load_tokenizer(d, trust_remote_code=True)


def test_custom_code_needs_trust_remote_code(tmp_path):
    d = shutil.copytree(tokenizer_dir("qwen2"), tmp_path / "ck")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["tokenization_custom.CustomTokenizer", None]}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(TokenizerLoadError, match="--trust-remote-code"):
        load_tokenizer(d)


def test_missing_dir_is_clear(tmp_path):
    with pytest.raises(TokenizerLoadError, match="not a directory"):
        load_tokenizer(tmp_path / "nope")


def test_internlm2_mismatched_added_ids_rejected(tmp_path):
    d = shutil.copytree(tokenizer_dir("internlm2"), tmp_path / "ck")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["added_tokens_decoder"] = {str(int(k) + 5): v for k, v in cfg["added_tokens_decoder"].items()}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(TokenizerLoadError, match="declared with id"):
        load_tokenizer(d)


def test_codec_never_appends_eos(tmp_path):
    """A tokenizer.json whose post-processor appends EOS: the codec keeps the BOS and drops the EOS."""
    d = shutil.copytree(tokenizer_dir("llama3"), tmp_path / "ck")
    spec = json.loads((d / "tokenizer.json").read_text())
    bos, eos = "<|begin_of_text|>", "<|end_of_text|>"
    ids = {t["content"]: t["id"] for t in spec["added_tokens"]}
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"SpecialToken": {"id": eos, "type_id": 0}},
        ],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in (bos, eos)},
    }
    (d / "tokenizer.json").write_text(json.dumps(spec))
    tok = load_tokenizer(d)
    assert tok("Hello").input_ids[-1] == ids[eos]  # the checkpoint's own behaviour
    codec = TokenCodec(tok)
    assert codec.prefix == [ids[bos]]
    assert codec.ids("Hello") == tok("Hello").input_ids[:-1]
