"""The data gate: the mixture validated in-process with the run's settings (or a manifest accepted), no weights."""

from __future__ import annotations

import json
import shutil

import orjson
import pytest

from internvl_train.config import load_config
from internvl_train.gate import check_data


@pytest.fixture
def weightless(tiny_model, tmp_path):
    """A copy of the tiny checkpoint without its weights: the gate must never need them."""
    d = tmp_path / "ckpt"
    shutil.copytree(tiny_model, d, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.index.json"))
    return d


def config(model, meta, tmp_path, *overrides):
    return load_config(
        None, [f"model_name_or_path={model}", f"meta_path={meta}", f"output_dir={tmp_path / 'out'}", *overrides]
    )


def validate_cli(capsys, *args) -> tuple[int, str]:
    from internvl_data.cli import main

    code = main(["validate", *args, "--no-manifest", "--jobs", "1"])
    return code, capsys.readouterr().out


def add_line(path, record) -> int:
    """Append ``record`` as a new line; its 1-based line number."""
    with open(path, "ab") as f:
        f.write(orjson.dumps(record) + b"\n")
    return len(path.read_bytes().splitlines())


def test_clean_mixture_passes_and_writes_the_manifest(weightless, valid_copy, tmp_path):
    cfg = config(weightless, valid_copy, tmp_path)
    out = tmp_path / "out" / "data-manifest.json"
    verdict = check_data(cfg, manifest_out=str(out), jobs=1)
    assert verdict.ok and verdict.source == "validated" and verdict.manifest_path == str(out)
    assert verdict.text.splitlines()[-1].startswith(
        "Found 2 problems (0 errors, 2 warnings, 0 info) in 5 files, 17 records"
    )
    doc = json.loads(out.read_text())
    assert set(doc["datasets"]) == {"text", "single", "multi", "video", "mixed"}
    assert doc["options"]["model_dir"] == str(weightless) and doc["options"]["max_seq_length"] == 4096


def test_one_bad_record_is_refused_with_the_validate_line(weightless, valid_copy, tmp_path, capsys):
    text = valid_copy.parent / "text.jsonl"
    line = add_line(text, {"conversations": [{"from": "human", "value": "Hi"}, {"from": "human", "value": "?"}]})
    cfg = config(weightless, valid_copy, tmp_path)
    out = tmp_path / "out" / "data-manifest.json"
    verdict = check_data(cfg, manifest_out=str(out), jobs=1)
    assert not verdict.ok and verdict.errors >= 1 and not out.exists()
    ours = [x for x in verdict.text.splitlines() if x.startswith(f"{text}:{line}:")]
    assert ours and all(" IVL2" in x for x in ours)
    code, printed = validate_cli(capsys, str(valid_copy), "--model", str(weightless))
    assert code == 1 and set(ours) <= set(printed.splitlines())  # exactly the lines `ivl-data validate` prints


def test_s3_media_is_an_error_for_training(weightless, valid_copy, tmp_path):
    single = valid_copy.parent / "single.jsonl"
    rows = single.read_bytes().splitlines()
    first = orjson.loads(rows[0])
    first["image"] = "s3://bucket/photo.jpg"
    single.write_bytes(b"\n".join([orjson.dumps(first), *rows[1:]]) + b"\n")
    verdict = check_data(config(weightless, valid_copy, tmp_path), jobs=1)
    assert not verdict.ok
    assert any(x.startswith(f"{single}:1:") and " IVL304 " in x for x in verdict.text.splitlines())
    assert verdict.text.endswith(
        "IVL304 is an error for training: the trainer reads media from local paths only; an s3:// image or video "
        "cannot be loaded.\n"
    )


def test_the_run_image_settings_are_the_ones_validated(weightless, valid_copy, tmp_path):
    """max_dynamic_patch 1 (one tile per image) fits a budget that the checkpoint's 12 tiles do not."""
    from internvl_data.pipeline.dataset import build_data

    meta = valid_copy.parent / "meta.json"
    entry = json.loads(meta.read_text())["single"] | {"repeat_time": 1, "length": 1}
    meta.write_text(json.dumps({"single": entry}))
    question = "Describe this picture in detail, please. " * 3 + "<image>"  # the image tokens come late
    record = {"image": "images/photo_640x480.jpg", "conversations": [{"from": "human", "value": question}]}
    record["conversations"].append({"from": "gpt", "value": "A gradient."})
    (valid_copy.parent / "single.jsonl").write_bytes(orjson.dumps(record) + b"\n")  # 12 tiles + thumbnail at 12
    few = build_data(weightless, meta, overrides={"max_dynamic_patch": 1}).dataset()[0]
    many = build_data(weightless, meta).dataset()[0]
    budget = (len(few.input_ids) + many.full_length) // 2
    assert len(few.input_ids) <= budget < many.full_length
    refused = check_data(config(weightless, meta, tmp_path, f"max_seq_length={budget}"), jobs=1)
    assert not refused.ok and " IVL403 " in refused.text  # the answer is cut away behind 13 tiles
    out = tmp_path / "m.json"
    ok = check_data(
        config(weightless, meta, tmp_path, f"max_seq_length={budget}", "max_dynamic_patch=1"),
        manifest_out=str(out),
        jobs=1,
    )
    assert ok.ok, ok.text
    doc = json.loads(out.read_text())  # the manifest names the real checkpoint and the run's setting
    assert doc["options"]["model_dir"] == str(weightless) and doc["options"]["image_settings"] == {
        "max_dynamic_patch": 1
    }
    again = config(
        weightless, meta, tmp_path, f"max_seq_length={budget}", "max_dynamic_patch=1", f"data_manifest={out}"
    )
    assert check_data(again).ok


def test_a_manifest_is_accepted_until_its_files_change(weightless, valid_copy, tmp_path, capsys):
    from internvl_data.cli import main

    manifest = tmp_path / "data.ivl-manifest.json"
    assert (
        main(["validate", str(valid_copy), "--model", str(weightless), "--manifest", str(manifest), "--jobs", "1"]) == 0
    )
    capsys.readouterr()
    cfg = config(weightless, valid_copy, tmp_path, f"data_manifest={manifest}")
    out = tmp_path / "out" / "data-manifest.json"
    verdict = check_data(cfg, manifest_out=str(out))
    assert verdict.ok and verdict.source == "manifest" and out.read_bytes() == manifest.read_bytes()
    text = valid_copy.parent / "text.jsonl"
    text.write_bytes(text.read_bytes().replace(b"Paris.", b"Lyon!."))  # same size, other content
    refused = check_data(cfg)
    assert not refused.ok
    assert refused.reasons == [
        f"dataset 'text': the content of {text} changed since it was validated: run `ivl-data validate {valid_copy}`"
    ]
    assert refused.text.splitlines() == [
        f"{manifest}: {refused.reasons[0]}",
        (
            "The data gate refused the manifest (1 problem); validate again, or drop data_manifest to let the "
            "trainer validate the data itself."
        ),
    ]


def test_a_manifest_written_with_other_options_is_refused(weightless, valid_copy, tmp_path, capsys):
    from internvl_data.cli import main

    manifest = tmp_path / "m.json"
    args = ["validate", str(valid_copy), "--manifest", str(manifest), "--jobs", "1", "--media", "exists"]
    assert main(args + ["--model", str(weightless), "--max-seq-length", "2048"]) == 0
    capsys.readouterr()
    refused = check_data(config(weightless, valid_copy, tmp_path, f"data_manifest={manifest}"))
    rerun = f"run `ivl-data validate {valid_copy} --model {weightless} --max-seq-length 4096 --media header`"
    assert refused.reasons == [
        f"validated with max_seq_length 2048, this run uses 4096; {rerun}",
        f"media checked with --media exists, this run needs at least header; {rerun}",
    ]
    assert main(args[:-2] + ["--media", "decode"]) == 0  # no --model: the token rules were never checked
    capsys.readouterr()
    refused = check_data(config(weightless, valid_copy, tmp_path, f"data_manifest={manifest}"))
    assert refused.reasons == [f"validated without --model: the token-budget rules (IVL4xx) were not checked; {rerun}"]
