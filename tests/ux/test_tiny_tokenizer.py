"""Issue 14 item 7: the default tokenizer of ``write_tiny_checkpoint`` renders the bundled example data cleanly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from internvl_data.cli.dispatch import main as ivl_data
from internvl_train.tiny import minimal_tokenizer, write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
META = str(REPO / "fixtures" / "valid" / "meta.json")


@pytest.mark.parametrize(
    ("llm", "template"),
    [("qwen2", None), ("internlm2", None), ("phi3", None), ("llama", None), ("qwen2", "internvl2_5")],
)
def test_example_data_validates_and_renders_clean(tmp_path, capsys, llm, template):
    ckpt = write_tiny_checkpoint(tmp_path / llm, llm, "300m")
    extra = ["--template", template] if template else []
    code = ivl_data(["validate", META, "--model", str(ckpt), "--no-manifest", "--no-progress", *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "IVL4" not in out and "(0 errors, 2 warnings, 0 info)" in out  # IVL110 and IVL214 only
    assert ivl_data(["render", META, "--model", str(ckpt), "--limit", "0", *extra]) == 0
    shown = capsys.readouterr().out
    assert len(re.findall(r"^== ", shown, re.MULTILINE)) == 16 and "official labels: ok" in shown  # mixture samples
    assert "<unk>" not in shown and "MISMATCH" not in shown
    assert "长城是中国古代修建的防御工程。" in shown  # bytes round-trip: Chinese text survives


def test_each_family_starts_a_text_like_its_released_tokenizer():
    ids = {llm: minimal_tokenizer(llm)("hi").input_ids for llm in ("qwen2", "internlm2", "phi3", "llama")}
    h, i = minimal_tokenizer().convert_tokens_to_ids(["h", "i"])
    space = minimal_tokenizer().convert_tokens_to_ids("\u0120")
    assert ids == {"qwen2": [h, i], "llama": [h, i], "internlm2": [1, h, i], "phi3": [1, space, h, i]}
    tok = minimal_tokenizer()
    assert len(tok) == 275 and tok.convert_tokens_to_ids("<IMG_CONTEXT>") == 7
    assert tok("<|im_start|><|end|><IMG_CONTEXT>").input_ids == [3, 14, 7]
