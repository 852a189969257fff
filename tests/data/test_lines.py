"""lines.py (byte-offset streaming, ranges, line counts) and checks_lines.py (IVL0xx) with exact positions."""

from __future__ import annotations

from pathlib import Path

import pytest

from internvl_data.checks.lines import LineCtx, check_line
from internvl_data.formats import lines
from internvl_data.formats.lines import count_lines, iter_lines


def write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "d.jsonl"
    p.write_bytes(data)
    return p


def test_iter_lines_numbers_offsets_and_final_line(tmp_path: Path) -> None:
    p = write(tmp_path, b'{"a":1}\n\n{"b":2}\r\nlast')
    assert list(iter_lines(p)) == [(1, 0, b'{"a":1}'), (2, 8, b""), (3, 9, b'{"b":2}\r'), (4, 18, b"last")]
    assert count_lines(p) == 4


def test_final_newline_is_not_a_line(tmp_path: Path) -> None:
    p = write(tmp_path, b"a\nb\n")
    assert list(iter_lines(p)) == [(1, 0, b"a"), (2, 2, b"b")]
    assert count_lines(p) == 2
    assert count_lines(write(tmp_path, b"")) == 0


def test_iter_lines_from_the_middle(tmp_path: Path) -> None:
    p = write(tmp_path, b"aa\nbb\ncc\ndd\n")
    assert list(iter_lines(p, 3, 9, first_lineno=2)) == [(2, 3, b"bb"), (3, 6, b"cc")]


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 22])
@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_ranges_at_line_starts_join_to_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, n: int
) -> None:
    data = b"".join(b"x" * (k % 13) + b"\n" for k in range(3000)) + b"tail"
    p = write(tmp_path, data)
    monkeypatch.setattr(lines, "CHUNK", chunk if chunk > 1000 else chunk * 997)
    whole = list(iter_lines(p))
    starts = sorted({0} | {data.index(b"\n", len(data) * k // n) + 1 for k in range(1, n)})
    ranges = [(a, b, data.count(b"\n", 0, a) + 1) for a, b in zip(starts, [*starts[1:], len(data)])]
    parts = [t for start, end, first in ranges for t in iter_lines(p, start, end, first)]
    assert parts == whole
    assert count_lines(p) == len(whole) == 3001


def run(raw: bytes, long_line: int = 1 << 20) -> tuple[object, list[tuple[str, int, int, str]]]:
    ctx = LineCtx("d.jsonl", line=5, dataset="ds", long_line=long_line)
    obj, found = check_line(raw, ctx)
    assert all(f.path == "d.jsonl" and f.line == 5 and f.dataset == "ds" for f in found)
    return obj, [(f.code, f.col, f.severity.value, f.message) for f in found]


def test_clean_line() -> None:
    assert run(b'{"id": 1, "conversations": []}') == ({"id": 1, "conversations": []}, [])


@pytest.mark.parametrize(
    "raw,want",
    [
        (b"", ("IVL002", 0, "error", "blank line")),
        (b"  \t", ("IVL002", 0, "error", "blank line")),
        (b"\xef\xbb\xbf{}", ("IVL003", 1, "error", "line starts with a UTF-8 byte order mark")),
        (
            b"\xef\xbb\xbf{",
            (
                "IVL003",
                1,
                "error",
                "line starts with a UTF-8 byte order mark (and the rest of the line is not valid JSON either)",
            ),
        ),
        (b'{"v": "caf\xe9"}', ("IVL005", 11, "error", "invalid UTF-8 byte 0xe9 at byte 11")),
        (
            b'{"v": "\xc3\xa9", x}',
            ("IVL001", 12, "error", "invalid JSON: Expecting property name enclosed in double quotes at column 12"),
        ),  # characters
        (
            b'{"a": 1,}',
            ("IVL001", 9, "error", "invalid JSON: Expecting property name enclosed in double quotes at column 9"),
        ),
        (
            b'{"a": NaN}',
            ("IVL001", 1, "error", "invalid JSON (rejected by orjson: number out of range or NaN/Infinity)"),
        ),
        (b"[1, 2]", ("IVL006", 0, "error", "line is a JSON array, not an object")),
        (b'"text"', ("IVL006", 0, "error", "line is a JSON string, not an object")),
    ],
)
def test_unusable_lines(raw: bytes, want: tuple) -> None:
    assert run(raw) == (None, [want])


def test_crlf_and_long_line_keep_the_record() -> None:
    obj, found = run(b'{"a": "' + b"x" * 50 + b'"}\r', long_line=20)
    assert obj == {"a": "x" * 50}
    assert found == [
        ("IVL007", 0, "warning", "line is 60 bytes long (threshold 20)"),
        ("IVL004", 60, "info", "line ends with CRLF"),
    ]


def test_duplicate_keys_at_any_depth_and_spacing() -> None:
    raw = b'{"id": 1, "conversations": [{"from": "human", "from" : "gpt", "value": "a"}], "id": 2}'
    obj, found = run(raw)
    assert obj["id"] == 2
    assert [(c, col) for c, col, _, _ in found] == [("IVL008", 47), ("IVL008", 79)]
    assert found[0][3] == "key 'from' appears twice in $.conversations[0]; the parser keeps only the last value"


@pytest.mark.parametrize("sep", [b" :", b"\t:", b" \t :"])
def test_duplicate_key_with_whitespace_before_its_colon(sep: bytes) -> None:
    """One occurrence written `"id" :`: the `":` count alone equals the key count, so it cannot clear the line."""
    raw = b'{"id": 1, "id"' + sep + b' 2, "conversations": [{"from": "human", "value": "Image-1: a"}]}'
    obj, found = run(raw)
    assert obj["id"] == 2
    assert [(c, col, m) for c, col, _, m in found] == [
        ("IVL008", 11, "key 'id' appears twice in $; the parser keeps only the last value")
    ]


def test_colons_inside_values_are_not_duplicates() -> None:
    raw = b'{"id": 1, "conversations": [{"from": "human", "value": "Image-1: \\"a\\": b"}]}'
    assert run(raw)[1] == []
