"""Issue 13 item 12: one pixel limit. An image over media.probe.MAX_PIXELS is IVL307 in validate and in render's
sample builder alike, never decoded, and PIL's DecompressionBombWarning is never printed raw."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from internvl_data.media.probe import MAX_PIXELS
from internvl_data.validator.options import ValidateOptions


def _png(path: Path, w: int, h: int) -> Path:
    from PIL import Image

    Image.new("1", (w, h)).save(path)  # 1-bit: a few KB on disk, w*h pixels once decoded
    return path


def test_one_limit_everywhere() -> None:
    assert ValidateOptions().max_pixels == MAX_PIXELS == 89_478_485


@pytest.mark.parametrize("side", [10_000, 14_000])  # 100 MP (PIL warns) and 196 MP (PIL raises)
def test_the_sample_builder_reports_ivl307_without_a_pil_warning(tmp_path: Path, side: int) -> None:
    from internvl_data.pipeline.sample import SampleBuilder, SampleError

    img = _png(tmp_path / "big.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning PIL emits fails the test
        with pytest.raises(SampleError) as info:
            SampleBuilder._open(None, str(tmp_path), "big.png")  # type: ignore[arg-type]
    assert info.value.code == "IVL307"
    assert str(info.value) == f"{img}: the image has more than {MAX_PIXELS:,} pixels (IVL307); shrink it"
