"""`ivl-train run` refuses a mixture with one bad record before the model loads: exit 1, the finding printed."""

from __future__ import annotations

import orjson

from internvl_train.cli.dispatch import main


def test_run_refuses_bad_data_before_loading_the_model(valid_copy, tmp_path, capsys, monkeypatch):
    import internvl_train.recipe.train as recipe
    from internvl_train.tiny import write_tiny_checkpoint

    tiny_model = write_tiny_checkpoint(tmp_path / "ckpt", "qwen2", "300m", max_position_embeddings=4096)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although the data gate refused the data")

    monkeypatch.setattr(recipe, "build_model", no_model)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "GPUS", "BATCH_SIZE", "PER_DEVICE_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    text = valid_copy.parent / "text.jsonl"
    with open(text, "ab") as f:
        f.write(orjson.dumps({"conversations": [{"from": "human", "value": "only a question"}]}) + b"\n")
    cfg = tmp_path / "train.yaml"
    out = tmp_path / "out"
    cfg.write_text(
        f"model_name_or_path: {tiny_model}\nmeta_path: {valid_copy}\noutput_dir: {out}\nbf16: false\n"
        "dataloader_num_workers: 0\nreport_to: none\n"
    )
    code = main(["run", str(cfg)])
    printed = capsys.readouterr()
    assert code == 1, printed
    from internvl_data.cli import main as ivl_data

    assert ivl_data(["validate", str(valid_copy), "--model", str(tiny_model), "--no-manifest", "--jobs", "1"]) == 1
    expected = [x for x in capsys.readouterr().out.splitlines() if x.startswith(f"{text}:4:") and " IVL212 " in x]
    assert len(expected) == 1 and expected[0] in (printed.out + printed.err).splitlines()  # as validate prints it
    assert not (out / "data-manifest.json").exists() and not list(out.glob("checkpoint-*"))
