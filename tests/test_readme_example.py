"""README's "Fine-tune" example: `python -m internvl_train.tiny pretrained/InternVL2-tiny` then
`ivl-train run examples/tiny-full.yaml` (from the repository root). The run itself is timed in docs/benchmarks.md
("README's tiny fine-tune"); here the example's config resolves and its data passes the gate, without training."""

from __future__ import annotations

from pathlib import Path

from internvl_train.cli.dispatch import main
from internvl_train.tiny import main as tiny_main

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_ENV = ("GPUS", "BATCH_SIZE", "PER_DEVICE_BATCH_SIZE", "WORLD_SIZE", "RANK", "LOCAL_RANK", "SLURM_PROCID")


def test_the_readme_example_config_is_ready_to_run(tmp_path, monkeypatch, capsys):
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)  # the example's meta_path is relative to the repository root
    ckpt = tmp_path / "InternVL2-tiny"
    assert tiny_main([str(ckpt)]) == 0
    code = main(["check", "examples/tiny-full.yaml", f"model_name_or_path={ckpt}", "--jobs", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, lines
    assert "   meta_path: fixtures/valid/meta.json" in lines
    assert lines[-1] == "ready: `ivl-train run` would train with these values"
