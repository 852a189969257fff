"""`ivl-train run` prints the plan's one line before training and warns when the plan says it will not fit."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from internvl_train.config import load_config
from internvl_train.plan.summary import announce
from internvl_train.tiny import write_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    ckpt = write_tiny_checkpoint(tmp / "ck", "qwen2", "300m")
    return load_config(
        None,
        [f"model_name_or_path={ckpt}", f"meta_path={ROOT / 'fixtures/valid/meta.json'}", f"output_dir={tmp / 'o'}"],
        check_paths=False,
    )


def test_one_line_and_no_warning_when_it_fits(cfg, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    line = announce(cfg, world=2, gpu_memory=80 * 2**30)
    out, err = capsys.readouterr()
    assert out == line + "\n"
    assert line.startswith("plan: ") and "per GPU of 80.0 GiB (fits) on 2 GPUs, ZeRO-0" in line
    assert err == ""


def test_warning_when_it_does_not_fit(cfg, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    line = announce(cfg, world=1, gpu_memory=2**20)
    out, err = capsys.readouterr()
    assert "(does not fit)" in line
    assert err.startswith("warning: the plan says this run will not fit: ")
    assert err.rstrip().endswith("`ivl-train plan CFG --gpus 1` lists the changes that make it fit")


def test_other_ranks_print_nothing(cfg, capsys, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert announce(cfg, world=2, gpu_memory=2**20) is None
    assert capsys.readouterr() == ("", "")


def test_a_plan_failure_does_not_stop_the_run(cfg, capsys, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    bad = cfg.model_copy(update={"model_name_or_path": "/nonexistent/model"})
    line = announce(bad, world=1, gpu_memory=None)
    assert line.startswith("plan: not available (/nonexistent/model: no config.json there")
    assert capsys.readouterr().out == line + "\n"


def test_run_command_announces_before_training(cfg, capsys, monkeypatch):
    from internvl_train import launch
    from internvl_train.cli import run as run_cli
    from internvl_train.recipe import train

    calls = []
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.setattr(launch, "begin", lambda args, c, o: (argparse.Namespace(config=cfg), None))
    monkeypatch.setattr(train, "run", lambda c, resume=None: calls.append(capsys.readouterr().out) or 0)
    args = argparse.Namespace(config=None, overrides=[], resume=None)
    assert run_cli.run(args) == 0
    assert calls and calls[0].startswith("plan: ")  # printed before train.run was entered
