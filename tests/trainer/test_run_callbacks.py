"""Trainer callbacks: metrics.jsonl rows, progress (rich with ETA on a terminal, plain lines elsewhere), loss.png,
and the completion marker."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

from internvl_train.recipe.callbacks import (
    METRIC_FIELDS,
    CompletionCallback,
    MetricsCallback,
    ProgressCallback,
    plot_loss,
)

LOGS = {"loss": 2.5, "learning_rate": 1e-4, "grad_norm": 0.7, "tokens": 100, "supervised_tokens": 40,
        "samples_per_second": 3.0, "tokens_per_second": 300.0, "epoch": 0.5}  # fmt: skip


def _state(step=3, main=True, max_steps=10):
    return SimpleNamespace(global_step=step, is_world_process_zero=main, max_steps=max_steps)


def test_metrics_rows(tmp_path):
    cb = MetricsCallback(tmp_path / "metrics.jsonl")
    cb.on_log(None, _state(), None, logs=LOGS)
    cb.on_log(None, _state(), None, logs={"train_runtime": 1.0})  # the end-of-training summary is not a row
    cb.on_log(None, _state(main=False), None, logs=LOGS)  # rank 0 only
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows == [{"step": 3, "epoch": 0.5, **{k: LOGS[k] for k in METRIC_FIELDS[2:]}}]
    assert list(rows[0]) == list(METRIC_FIELDS)


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_plain_lines_off_a_terminal():
    out = io.StringIO()
    cb = ProgressCallback(out)
    cb.on_train_begin(None, _state(0), None)
    cb.on_log(None, _state(3), None, logs=LOGS)
    cb.on_train_end(None, _state(10), None)
    assert out.getvalue() == "step 3/10 loss 2.5000 lr 0.0001\n"


def test_progress_bar_with_eta_on_a_terminal():
    out = _Tty()
    cb = ProgressCallback(out)
    cb.on_train_begin(None, _state(0), None)
    cb.on_step_end(None, _state(3), None)
    cb.on_log(None, _state(3), None, logs=LOGS)
    cb.on_train_end(None, _state(3), None)
    text = out.getvalue()
    assert "3/10" in text and "ETA" in text and "loss 2.5000" in text


def test_loss_png_and_completion_marker(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps({"step": s, "loss": 3.0 / s, "learning_rate": 1e-4}) + "\n" for s in (1, 2)))
    assert plot_loss(metrics, tmp_path / "loss.png") == tmp_path / "loss.png"
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_loss(tmp_path / "missing.jsonl", tmp_path / "none.png") is None
    (tmp_path / "checkpoint-3").mkdir()
    args = SimpleNamespace(output_dir=str(tmp_path), save_total_limit=None)
    CompletionCallback("ab" * 32).on_save(args, SimpleNamespace(**vars(_state()), best_model_checkpoint=None), None)
    marker = json.loads((tmp_path / "checkpoint-3" / "ivl-complete.json").read_text())
    assert marker == {"step": 3, "data_manifest_sha256": "ab" * 32}
