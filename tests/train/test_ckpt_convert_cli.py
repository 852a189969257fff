"""`ivl-train convert`: exit codes and messages (bad input -> one line on stderr, exit 2, no traceback)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from internvl_train.cli.dispatch import main


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    (path / "config.json").write_text(json.dumps(cfg))


def test_convert_both_ways(tiny_ckpt, tmp_path, capsys):
    src = tiny_ckpt("internlm2", "6b")
    assert main(["convert", str(src), str(tmp_path / "hf"), "--to", "hf"]) == 0
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "internvl"
    assert (
        main(["convert", str(tmp_path / "hf"), str(tmp_path / "orig"), "--to", "original", "--dtype", "bfloat16"]) == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {tmp_path / 'hf'} (hf layout)",
        f"wrote {tmp_path / 'orig'} (original layout)",
    ]
    a, b = load_file(str(src / "model.safetensors")), load_file(str(tmp_path / "orig" / "model.safetensors"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[k].bfloat16(), b[k]) for k in a)


def _run_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip()


def test_unknown_llm_architecture_names_the_supported_ones(tiny_ckpt, tmp_path, capsys):
    bad = _copy(tiny_ckpt("qwen2", "300m"), tmp_path / "bad")
    _edit_config(bad, llm_config__architectures=["MistralForCausalLM"])
    err = _run_error(["convert", str(bad), str(tmp_path / "out"), "--to", "hf"], capsys)
    assert err == (
        f"ivl-train convert: error: {bad / 'config.json'}: llm_config.architectures[0]: unsupported LLM "
        "architecture 'MistralForCausalLM'; supported: Qwen2ForCausalLM, InternLM2ForCausalLM, "
        "Phi3ForCausalLM, LlamaForCausalLM"
    )
    assert not (tmp_path / "out").exists()


def test_unknown_model_type(tiny_ckpt, tmp_path, capsys):
    bad = _copy(tiny_ckpt("qwen2", "300m"), tmp_path / "bad")
    (bad / "config.json").write_text(
        json.dumps({"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"]})
    )
    err = _run_error(["convert", str(bad), str(tmp_path / "out"), "--to", "hf"], capsys)
    assert "not an InternVL2 checkpoint (architectures ['LlavaForConditionalGeneration'], model_type 'llava')" in err
    assert "supported: original InternVLChatModel with an LLM among Qwen2ForCausalLM" in err


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing_dir", "config.json: missing; point at a checkpoint directory"),
        ("bad_json", "config.json: invalid JSON"),
        ("ps_v1", "ps_version 'v1' is not supported"),
        ("no_weights", "no weights found (expected model.safetensors, pytorch_model.bin or a shard index)"),
        ("wrong_shape", "shape (288, 64) but config.json implies (256, 64)"),
        ("missing_tensor", "1 tensor(s) missing from the weights, e.g. mlp1.3.bias"),
        ("missing_shard", "shard(s) listed but missing: model-00002-of-00003.safetensors"),
        ("img_context_outside_vocab", "<IMG_CONTEXT> has id 7, outside the model's vocabulary (vocab_size 5)"),
    ],
)
def test_bad_checkpoints_exit_2_with_one_line(tiny_ckpt, tmp_path, capsys, setup, message):
    src = tiny_ckpt("qwen2", "300m", sharded=setup == "missing_shard")
    bad = tmp_path / "bad"
    if setup != "missing_dir":
        _copy(src, bad)
    if setup == "bad_json":
        (bad / "config.json").write_text("{")
    elif setup == "ps_v1":
        _edit_config(bad, ps_version="v1")
    elif setup == "no_weights":
        (bad / "model.safetensors").unlink()
    elif setup == "wrong_shape":
        _edit_config(bad, llm_config__vocab_size=256)
    elif setup == "missing_tensor":
        sd = load_file(str(bad / "model.safetensors"))
        del sd["mlp1.3.bias"]
        save_file(sd, str(bad / "model.safetensors"))
    elif setup == "missing_shard":
        (bad / "model-00002-of-00003.safetensors").unlink()
    elif setup == "img_context_outside_vocab":
        _edit_config(bad, llm_config__vocab_size=5)
    err = _run_error(["convert", str(bad), str(tmp_path / "out"), "--to", "original"], capsys)
    assert err.startswith("ivl-train convert: error: ") and len(err.splitlines()) == 1
    assert message in err


def test_custom_tokenizer_code_asks_for_trust_once(tiny_ckpt, tmp_path, capsys):
    bad = _copy(tiny_ckpt("qwen2", "300m"), tmp_path / "bad")
    tok_cfg = json.loads((bad / "tokenizer_config.json").read_text())
    tok_cfg["auto_map"] = {"AutoTokenizer": ["tokenization_custom.CustomTokenizer", None]}
    (bad / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    err = _run_error(["convert", str(bad), str(tmp_path / "out"), "--to", "hf"], capsys)
    assert f"{bad}: cannot load the tokenizer: {bad / 'tokenizer_config.json'}: the tokenizer is custom code" in err
    assert err.count("trust-remote-code") == 1 and err.endswith("if you trust this checkpoint")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["convert", "a", "b", "--to", "gguf"])
    assert exc.value.code == 2
    assert "invalid choice: 'gguf'" in capsys.readouterr().err
    assert main([]) == 2
