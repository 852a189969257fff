"""Issue 14 item 8: the help and the outputs say what is true (package data, convert's output and stderr)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from internvl_train.cli import dispatch as train_cli
from internvl_train.cli.dispatch import main as ivl_train
from internvl_train.tiny import write_tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GENERATION = {"_from_model_config": True, "eos_token_id": [2, 4], "max_new_tokens": 77, "do_sample": False}


def test_every_package_data_pattern_names_files():
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    empty = [
        f"{pkg}/{pattern}"
        for pkg, patterns in data.items()
        for pattern in patterns
        if not list((REPO / pkg).glob(pattern))
    ]
    assert empty == []


def test_ivl_train_help_promises_only_commands_that_exist(capsys):
    try:
        ivl_train(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    for name in train_cli.COMMANDS:
        assert f"    {name}" in out
    assert ("Fine-tune" in out) == ("run" in train_cli.COMMANDS)


def test_convert_keeps_generation_config_writes_clean_tokenizer_config_and_prints_no_warning(tmp_path, capsys):
    src = write_tiny_checkpoint(tmp_path / "src", "qwen2", "300m")
    (src / "generation_config.json").write_text(json.dumps(GENERATION))
    before = json.loads((src / "tokenizer_config.json").read_text())
    hf = tmp_path / "hf"
    proc = subprocess.run(
        [str(BIN / "ivl-train"), "convert", str(src), str(hf), "--to", "hf"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"wrote {hf} (hf layout)\n", "")  # no DeepSpeed notice
    back = tmp_path / "back"
    assert ivl_train(["convert", str(hf), str(back), "--to", "original"]) == 0
    for out in (hf, back):
        assert json.loads((out / "generation_config.json").read_text()) == GENERATION  # without --base: IN's
        cfg = json.loads((out / "tokenizer_config.json").read_text())
        assert "is_local" not in cfg and "local_files_only" not in cfg
        assert {k: v for k, v in cfg.items() if k in before} == before
