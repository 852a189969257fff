"""Every IVL2xx rule of the catalogue is reported by ``check_record`` itself, not only by its slow path: one
record per code that fires it. A new IVL2xx rule without a record here fails the first test; a rule that the
hand-written fast path lets through (it returns [] for records it believes clean) fails the second."""

from __future__ import annotations

import pytest

from internvl_data.checks.lines import LineCtx
from internvl_data.checks.records import _findings, check_record
from internvl_data.checks.registry import all_rules

Q, A = {"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}
IMG_Q = {"from": "human", "value": "<image>\nQ?"}

# Found by the validate driver across the blocks of a file, not by check_record (one record cannot repeat an id).
ACROSS_RECORDS = {"IVL224"}

FIRES: dict[str, dict] = {
    "IVL201": {"image": "a.jpg"},
    "IVL202": {"conversations": [{"from": "human"}, A]},
    "IVL203": {"conversations": [Q, {"from": "gpt", "text": "A."}]},
    "IVL204": {"image": None, "conversations": [IMG_Q, A]},
    "IVL205": {"image": {"path": "a.jpg"}, "conversations": [IMG_Q, A]},
    "IVL206": {"image": "a.jpg", "video": "v.mp4", "conversations": [IMG_Q, A]},
    "IVL207": {"conversations": [{"from": "user", "value": "hi"}, A]},
    "IVL208": {"conversations": [{"from": "system", "value": "Be brief."}, Q, A]},
    "IVL209": {"conversations": [Q, Q, A]},
    "IVL210": {"conversations": [A, Q, A]},
    "IVL211": {"conversations": [Q, {"from": "gpt", "value": ""}]},
    "IVL212": {"conversations": [Q, A, Q]},
    "IVL213": {"conversations": [Q, {"from": "gpt", "value": "done<|im_end|>"}]},
    "IVL214": {"image": "a.jpg", "conversations": [Q, A]},
    "IVL215": {"image": "a.jpg", "conversations": [Q, A, IMG_Q, A]},
    "IVL216": {"image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\n<image>\nQ?"}, A]},
    "IVL217": {"image": ["a.jpg", "b.jpg"], "conversations": [IMG_Q, A]},
    "IVL218": {"video": "v.mp4", "conversations": [Q, A]},
    "IVL219": {"video": "v.mp4", "conversations": [{"from": "human", "value": "<video> What happens?"}, A]},
    "IVL220": {"conversations": [IMG_Q, A]},
    "IVL221": {"conversations": [Q, {"from": "gpt", "value": "<ref>cat</ref><box>[10, 20, 30, 40]</box>"}]},
    "IVL222": {"conversations": [Q, {"from": "gpt", "value": "<ref>cat</ref><box>[[120, 40, 1920, 1080]]</box>"}]},
    "IVL223": {"length": "512", "conversations": [Q, A]},
    "IVL225": {"width": "640", "height": 480, "conversations": [Q, A]},
    "IVL226": {"image": [], "conversations": [Q, A]},
}


def _codes(findings: list) -> set[str]:
    return {f.code for f in findings}


def test_every_ivl2xx_rule_has_a_record_here() -> None:
    catalogue = {code for code in all_rules() if code.startswith("IVL2")}
    assert set(FIRES) | ACROSS_RECORDS == catalogue


@pytest.mark.parametrize("code", sorted(FIRES))
def test_check_record_reports_the_rule(code: str) -> None:
    ctx = LineCtx("d.jsonl", 1)
    assert code in _codes(_findings(FIRES[code], ctx)), "the record no longer fires the rule: fix the table"
    assert code in _codes(check_record(FIRES[code], ctx)), f"check_record's fast path misses {code}"


def test_a_clean_record_takes_the_fast_path() -> None:
    assert check_record({"image": "a.jpg", "conversations": [IMG_Q, A]}, LineCtx("d.jsonl", 1)) == []
