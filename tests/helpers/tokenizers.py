"""Tiny tokenizers saved as checkpoint-style directories, for tests of every stream.

Kinds (``KINDS``):

- ``qwen2``: byte-level BPE with the Qwen2 pre-tokenizer regex, **no BOS** (InternVL2-1B, ``Hermes-2``).
- ``llama3``: byte-level BPE that prepends ``<|begin_of_text|>`` (InternVL2-76B, ``internlm2-chat``).
- ``internlm2``: a SentencePiece ``tokenizer.model`` + ``tokenizer_config.json`` whose ``auto_map`` points at
  ``tokenization_internlm2.py`` (a stub that raises if executed), BOS ``<s>`` (2B/8B/26B).
- ``phi3``: a Llama-style SentencePiece tokenizer (``tokenizer.json`` + ``tokenizer.model``), BOS ``<s>`` (4B).

Every kind carries the template control tokens and the 9 InternVL tokens as added special tokens (single ids).
Builds are cached per process: ``tokenizer_dir(kind)`` returns a read-only directory; copy it or use
``write_model_dir`` to get a checkpoint directory of your own.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

KINDS = ("qwen2", "llama3", "internlm2", "phi3")
CONTROL_TOKENS = ["<|im_start|>", "<|im_end|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|endoftext|>"]
INTERNVL_TOKENS = ["<img>", "</img>", "<IMG_CONTEXT>", "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>"]
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# The released pairings: each template with the tokenizer kinds it expects.
PAIRS = [
    ("Hermes-2", "qwen2"),
    ("internlm2-chat", "internlm2"),
    ("internlm2-chat", "llama3"),
    ("phi3-chat", "phi3"),
    ("internvl2_5", "qwen2"),
    ("internvl2_5", "internlm2"),
]

_EN = (
    "The cat sits on the mat. A dog runs in the park while the children play near the river. "
    "What is shown in this image? Describe the picture in detail. How many people are visible? "
    "The chart shows a clear increase in the total value over the last three years. "
    "Please answer the question with a short sentence. The red car is parked next to a tall building. "
    "There are two apples and one banana on the wooden table. The sky is blue and the clouds are white. "
    "Explain the relationship between the objects; compare the left and the right side. "
    "Hello world! It's a test: numbers 12345, 2024-07-19, 3.14 and symbols like (a), [b], {c}. "
    "Write a short story based on this picture.\n\nOnce upon a time there was a small village.\n- item one\n- item two\n"
)
_ZH = (
    "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
    "你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。"
    "请描述这张图片的内容。图中有几个人？这张图片是在哪里拍摄的？请总结图表的主要趋势。"
    "我们可以看到一只小猫坐在桌子上，背景是蓝色的天空和白色的云朵。这是一个非常美丽安静的城市。"
)


def corpus() -> list[str]:
    """A few hundred lines of English and Chinese (deterministic)."""
    lines = []
    words = _EN.split(" ")
    for k in range(60):
        lines.append(" ".join(words[k % 7 :] + words[: k % 7]))
        lines.append(_ZH[k % 40 :] + _ZH[: k % 40])
    lines.append(_EN)
    lines.append(_ZH)
    # role headers and whitespace runs, so that merges such as "assistant" and "\n\n\n" exist
    lines += ["system\nuser\nassistant\n\n\nYes.\n\nNo.\n\n\n  indent  two\n"] * 40
    return lines


def _byte_level(kind: str, out: Path) -> None:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    regex = QWEN2_REGEX if kind == "qwen2" else LLAMA3_REGEX
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(corpus(), trainer)
    extra = ["<|begin_of_text|>", "<|end_of_text|>"] if kind == "llama3" else []
    tok.add_special_tokens(extra + CONTROL_TOKENS + INTERNVL_TOKENS)
    if kind == "llama3":
        bos = "<|begin_of_text|>"
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1", special_tokens=[(bos, tok.token_to_id(bos))]
        )
        cfg = {"bos_token": bos, "eos_token": "<|im_end|>", "pad_token": "<|end_of_text|>"}
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        cfg = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    tok.save(str(out / "tokenizer.json"))
    _write_config(out, tok, {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 8192, **cfg})


def _write_config(out: Path, tok, cfg: dict) -> None:
    """tokenizer_config.json with an ``added_tokens_decoder`` the way checkpoints ship it."""
    decoder = {}
    for tid, added in sorted(tok.get_added_tokens_decoder().items()):
        decoder[str(tid)] = {
            "content": added.content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
    (out / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": decoder, **cfg}, indent=1))


@functools.lru_cache(maxsize=2)
def spm_model_bytes(add_dummy_prefix: bool = True) -> bytes:
    """A tiny SentencePiece BPE model (byte fallback, identity normalisation).

    InternLM2-style models have no dummy prefix (``add_dummy_prefix=False``, as the official segment
    arithmetic assumes); Llama/Phi-3-style ones prepend ``▁`` to every chunk of text.
    """
    import sentencepiece as spm

    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "corpus.txt"
        text.write_text("\n".join(corpus()), encoding="utf-8")
        spm.SentencePieceTrainer.train(
            input=str(text),
            model_prefix=str(Path(tmp) / "sp"),
            vocab_size=600,
            model_type="bpe",
            byte_fallback=True,
            character_coverage=1.0,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=add_dummy_prefix,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            minloglevel=2,
        )
        return (Path(tmp) / "sp.model").read_bytes()


_INTERNLM2_STUB = """raise RuntimeError("test stub: the checkpoint's tokenizer code must never run")\n"""


def _internlm2(out: Path) -> None:
    import sentencepiece as spm

    data = spm_model_bytes(add_dummy_prefix=False)
    (out / "tokenizer.model").write_bytes(data)
    (out / "tokenization_internlm2.py").write_text(_INTERNLM2_STUB)
    n = spm.SentencePieceProcessor(model_proto=data).get_piece_size()
    decoder = {}
    for k, content in enumerate(CONTROL_TOKENS + INTERNVL_TOKENS):
        decoder[str(n + k)] = {
            "content": content,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
    cfg = {
        "added_tokens_decoder": decoder,
        "auto_map": {"AutoTokenizer": ["tokenization_internlm2.InternLM2Tokenizer", None]},
        "tokenizer_class": "InternLM2Tokenizer",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "model_max_length": 8192,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))


def _phi3(out: Path) -> None:
    from internvl_data.pipeline.tokenizer import spm_backend

    data = spm_model_bytes()
    (out / "tokenizer.model").write_bytes(data)
    tok = spm_backend(out / "tokenizer.model", bos_token="<s>", add_bos=True)
    tok.add_special_tokens(CONTROL_TOKENS + INTERNVL_TOKENS)
    tok.save(str(out / "tokenizer.json"))
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<unk>",
        "model_max_length": 131072,
    }
    _write_config(out, tok, cfg)


_ROOT: Path | None = None


def _root() -> Path:
    global _ROOT
    if _ROOT is None:
        _ROOT = Path(tempfile.mkdtemp(prefix="ivl-tok-"))
        atexit.register(shutil.rmtree, _ROOT, True)
    return _ROOT


@functools.cache
def tokenizer_dir(kind: str) -> Path:
    """Build (once per process) and return the directory of a tiny tokenizer of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; one of {KINDS}")
    out = _root() / kind
    out.mkdir(parents=True, exist_ok=True)
    if kind in ("qwen2", "llama3"):
        _byte_level(kind, out)
    elif kind == "internlm2":
        _internlm2(out)
    else:
        _phi3(out)
    return out


LLM_ARCH = {
    "qwen2": "Qwen2ForCausalLM",
    "llama3": "LlamaForCausalLM",
    "internlm2": "InternLM2ForCausalLM",
    "phi3": "Phi3ForCausalLM",
}


def write_model_dir(
    dir: str | Path,
    template: str | None,
    tokenizer_kind: str,
    image_size: int = 448,
    patch_size: int = 14,
    downsample_ratio: float = 0.5,
    max_dynamic_patch: int = 12,
    layout: str = "original",
    min_dynamic_patch: int = 1,
    use_thumbnail: bool = True,
    dynamic_image_size: bool = True,
) -> Path:
    """Write a checkpoint-style directory: ``config.json`` (no weights) + the tokenizer of ``tokenizer_kind``.

    ``layout="original"`` is :func:`internvl_train.tiny.write_tiny_checkpoint` without weights (the one writer of
    the InternVLChatConfig schema, docs/official-behaviour.md §5.7); ``"native"`` writes a transformers
    ``model_type: internvl`` config (no template field), which no checkpoint writer makes without weights.
    """
    out = Path(dir)
    out.mkdir(parents=True, exist_ok=True)
    if layout == "original":
        from internvl_train.tiny import write_tiny_checkpoint

        settings = {
            "template": template,
            "downsample_ratio": downsample_ratio,
            "dynamic_image_size": dynamic_image_size,
            "use_thumbnail": use_thumbnail,
            "min_dynamic_patch": min_dynamic_patch,
            "max_dynamic_patch": max_dynamic_patch,
        }
        family = {"llama3": "llama"}.get(tokenizer_kind, tokenizer_kind)
        return write_tiny_checkpoint(
            out,
            family,
            tokenizer=tokenizer_dir(tokenizer_kind),
            weights="none",
            vocab_size=1000,
            image_size=image_size,
            patch_size=patch_size,
            settings=settings,
        )
    for f in tokenizer_dir(tokenizer_kind).iterdir():
        shutil.copy(f, out / f.name)
    llm = {"architectures": [LLM_ARCH[tokenizer_kind]], "hidden_size": 64, "vocab_size": 1000}
    if layout == "native":
        cfg = {
            "architectures": ["InternVLForConditionalGeneration"],
            "model_type": "internvl",
            "vision_config": {
                "model_type": "internvl_vision",
                "image_size": [image_size, image_size],
                "patch_size": [patch_size, patch_size],
                "hidden_size": 64,
            },
            "text_config": {**llm, "model_type": "qwen2"},
            "downsample_ratio": downsample_ratio,
            "image_seq_length": int((image_size // patch_size) ** 2 * downsample_ratio**2),
        }
    else:
        raise ValueError(f"unknown layout {layout!r}")
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    return out
