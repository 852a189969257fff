"""Choosing the checkpoint to resume from, refusing a different run, tidying the output folder (no trainer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from internvl_train.config import TrainConfig
from internvl_train.resume import (
    MARKER,
    RUN_INFO,
    ResumeError,
    checkpoints,
    find_resume,
    prepare,
    read_run_info,
    truncate_metrics,
    write_run_info,
)


def make_ckpt(out: Path, step: int, complete: bool = True) -> Path:
    d = out / f"checkpoint-{step}"
    d.mkdir(parents=True)
    (d / "model.safetensors").write_bytes(b"x")
    if complete:
        (d / MARKER).write_text(json.dumps({"step": step}))
    return d


@pytest.fixture
def data(tmp_path):
    """A meta file with one dataset and a manifest for it written by `ivl-data validate`'s module."""
    ann = tmp_path / "data" / "chat.jsonl"
    ann.parent.mkdir()
    ann.write_text('{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]}\n')
    meta = tmp_path / "data" / "meta.json"
    meta.write_text(
        json.dumps(
            {"chat": {"annotation": "chat.jsonl", "root": ".", "data_augment": False, "repeat_time": 1, "length": 1}}
        )
    )
    return meta, ann


def cfg_for(tmp_path: Path, meta: Path | None = None, **kw) -> TrainConfig:
    return TrainConfig(
        model_name_or_path=str(tmp_path / "model"),
        meta_path=str(meta or tmp_path / "meta.json"),
        output_dir=str(tmp_path / "out"),
        **kw,
    )


def manifest_of(meta: Path) -> Path:
    """The manifest `ivl-data validate` writes for a clean run (through the validator itself)."""
    from internvl_data.validator.driver import validate
    from internvl_data.validator.options import ValidateOptions

    path = meta.with_name("m.ivl-manifest.json")
    report = validate(str(meta), ValidateOptions(write_manifest=True, manifest=str(path), media="off", jobs=1))
    assert report.errors == 0 and path.is_file()
    return path


def test_newest_complete_checkpoint_wins(tmp_path):
    cfg = cfg_for(tmp_path)
    out = Path(cfg.output_dir)
    make_ckpt(out, 2)
    make_ckpt(out, 10)
    make_ckpt(out, 12, complete=False)  # killed while saving
    (out / "checkpoint-x").mkdir()
    assert [(c.step, c.complete) for c in checkpoints(out)] == [(2, True), (10, True), (12, False)]
    assert find_resume(cfg).path == out / "checkpoint-10"  # automatic
    assert find_resume(cfg, True).step == 10  # --resume
    assert find_resume(cfg_for(tmp_path, overwrite_output_dir=True)) is None  # the official main(): start over
    assert find_resume(cfg_for(tmp_path, overwrite_output_dir=True), True).step == 10  # --resume wins
    assert find_resume(cfg, str(out / "checkpoint-2")).step == 2
    with pytest.raises(ResumeError) as info:
        find_resume(cfg, str(out / "checkpoint-12"))
    assert str(info.value) == (
        f"--resume {out}/checkpoint-12: incomplete checkpoint (no {MARKER}: its save did not finish)"
    )


def test_resume_without_a_complete_checkpoint(tmp_path):
    cfg = cfg_for(tmp_path)
    assert find_resume(cfg) is None
    with pytest.raises(ResumeError) as info:
        find_resume(cfg, True)
    assert str(info.value) == f"--resume: {cfg.output_dir} has no complete checkpoint to resume from (none)"
    make_ckpt(Path(cfg.output_dir), 4, complete=False)
    assert find_resume(cfg) is None
    with pytest.raises(ResumeError) as info:
        find_resume(cfg, True)
    assert str(info.value).endswith("(only incomplete ones (checkpoint-4))")


def test_prepare_tidies_incomplete_checkpoints_and_metrics(tmp_path):
    cfg = cfg_for(tmp_path)
    out = Path(cfg.output_dir)
    make_ckpt(out, 4)
    make_ckpt(out, 6, complete=False)
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 6)]
    (out / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 6, "lo')  # torn last line (kill -9)
    point = prepare(cfg, 1)
    assert point.step == 4
    assert [c.path.name for c in checkpoints(out)] == ["checkpoint-4"]
    assert (out / "metrics.jsonl").read_text() == "\n".join(lines[:4]) + "\n"
    # other ranks only read
    make_ckpt(out, 8, complete=False)
    assert prepare(cfg, 1, is_main=False).step == 4
    assert (out / "checkpoint-8").is_dir()


def test_from_scratch_drops_a_killed_runs_leftovers(tmp_path):
    cfg = cfg_for(tmp_path)
    out = Path(cfg.output_dir)
    make_ckpt(out, 2, complete=False)
    (out / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    assert prepare(cfg, 1) is None
    assert checkpoints(out) == []
    assert (out / "metrics.jsonl").read_text() == ""


def test_overwrite_output_dir_drops_the_old_runs_checkpoints(tmp_path):
    cfg = cfg_for(tmp_path, overwrite_output_dir=True)
    out = Path(cfg.output_dir)
    make_ckpt(out, 600)
    make_ckpt(out, 800, complete=False)
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / "notes.txt").write_text("mine")
    assert prepare(cfg, 1) is None
    assert checkpoints(out) == [] and (out / "metrics.jsonl").read_text() == ""
    assert (out / "notes.txt").read_text() == "mine"  # nothing else is touched
    # --resume still wins over overwrite_output_dir
    make_ckpt(out, 2)
    assert prepare(cfg, 1, True).step == 2 and (out / "checkpoint-2").is_dir()


def test_truncate_metrics_keeps_a_clean_file_untouched(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')
    before = (tmp_path / "metrics.jsonl").stat().st_mtime_ns
    assert truncate_metrics(tmp_path, 5) == 0
    assert (tmp_path / "metrics.jsonl").stat().st_mtime_ns == before
    assert truncate_metrics(tmp_path / "nothing", 5) == 0


def test_meaning_changes_refuse_and_logging_changes_pass(tmp_path):
    cfg = cfg_for(tmp_path, learning_rate=4e-5, save_steps=2, logging_steps=1)
    out = Path(cfg.output_dir)
    make_ckpt(out, 2)
    write_run_info(cfg, 2, None)
    assert read_run_info(out)["world_size"] == 2
    # logging and saving keys may change
    ok = cfg_for(tmp_path, learning_rate=4e-5, save_steps=5, logging_steps=3, report_to="tensorboard")
    assert prepare(ok, 2).step == 2
    (tmp_path / "x").mkdir()
    ok.output_dir = str(tmp_path / "x" / ".." / "out")  # the same folder, spelt differently
    assert prepare(ok, 2).step == 2
    with pytest.raises(ResumeError) as info:
        prepare(cfg_for(tmp_path, learning_rate=1e-5, per_device_train_batch_size=2, save_steps=2), 2)
    assert str(info.value) == (
        "resume refused: learning_rate (4e-05 -> 1e-05), per_device_train_batch_size (4 -> 2) changed since "
        "checkpoint-2 was written (only logging, saving and worker settings may change); restore them, or start "
        f"over with overwrite_output_dir=true or another output_dir than {cfg.output_dir}"
    )
    with pytest.raises(ResumeError, match=r"^resume refused: processes \(2 -> 4\) changed since checkpoint-2"):
        prepare(cfg, 4)


def test_changed_data_refuses_naming_the_dataset(tmp_path, data):
    meta, ann = data
    manifest = manifest_of(meta)
    cfg = cfg_for(tmp_path, meta=meta)
    make_ckpt(Path(cfg.output_dir), 3)
    write_run_info(cfg, 1, manifest)
    assert json.loads((Path(cfg.output_dir) / RUN_INFO).read_text())["data_manifest"]["datasets"]["chat"]
    assert prepare(cfg, 1).step == 3  # same data: fine
    ann.write_text(ann.read_text().replace('"yo"', '"ya"'))  # same size, other content
    with pytest.raises(ResumeError) as info:
        prepare(cfg, 1)
    assert str(info.value) == (
        f"resume refused: the data changed since checkpoint-3 was written (dataset 'chat': the content of {ann} "
        f"changed); restore the data, or start over with overwrite_output_dir=true or another output_dir than "
        f"{cfg.output_dir}"
    )
