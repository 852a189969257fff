"""InternVL dynamic-resolution tiling (docs/official-behaviour.md §3.4): grid choice, tile counts, pixel-exact tiles.

`find_grid` and `num_tiles` are pure arithmetic (no PIL work) and cached, so the stats engineer can call them
on millions of header sizes. `dynamic_preprocess` reproduces the official tiles pixel for pixel.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "DEFAULT_MAX_DYNAMIC_PATCH",
    "candidate_grids",
    "dynamic_preprocess",
    "find_grid",
    "grid",
    "grid_boxes",
    "num_tiles",
    "tile_budget",
]

# The one default for max_dynamic_patch, used whenever no source says otherwise (a model config without the
# field, stats and validate without --model): 6, the official config class's default and the value every
# official InternVL2 fine-tune script passes (docs/decisions.md, "One default for max_dynamic_patch").
DEFAULT_MAX_DYNAMIC_PATCH = 6


class TileOverride(Protocol):
    """A dataset as the tile budget sees it: ``formats.models.DatasetEntry`` or ``stats.types.Dataset``."""

    @property
    def max_dynamic_patch(self) -> int | None: ...


def tile_budget(dataset: TileOverride | None, model_max: int, n_images: int = 1) -> int:
    """The most tiles one image of a record may get (the only place this rule is written).

    The dataset's own ``max_dynamic_patch`` when it sets one, else ``model_max`` (the checkpoint's value, or
    :data:`DEFAULT_MAX_DYNAMIC_PATCH`); the ``n_images`` images of a multi-image record share it as
    ``max(1, budget // n_images)`` (docs/official-behaviour.md §1.6).
    """
    own = dataset.max_dynamic_patch if dataset is not None else None
    budget = own or model_max
    return max(1, budget // n_images) if n_images > 1 else budget


@lru_cache(maxsize=256)
def candidate_grids(min_num: int, max_num: int) -> tuple[tuple[int, int], ...]:
    """Candidate (cols, rows) grids in the official order.

    The official code sorts a Python ``set`` by area with a stable sort, so the order inside one area is
    CPython's set order. Tuples of small ints hash deterministically (no PYTHONHASHSEED effect), so building
    the very same set the same way reproduces that order exactly.
    """
    grids = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    }
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


@lru_cache(maxsize=1 << 16)
def find_grid(w: int, h: int, min_num: int, max_num: int, tile: int) -> tuple[int, int]:
    """Return the official (cols, rows) grid for a ``w`` x ``h`` image (``find_closest_aspect_ratio``).

    Nearest aspect ratio wins; on an exact float tie the later (larger) grid wins only when the image has
    more than half the pixels of that grid's canvas (``w*h > 0.5*tile*tile*cols*rows``), which makes the
    choice depend on the tile size. ``min_num > max_num`` gives no candidates and thus (1, 1).
    """
    aspect = w / h
    area = w * h
    best_diff = float("inf")
    best = (1, 1)
    for cand in candidate_grids(min_num, max_num):
        diff = abs(aspect - cand[0] / cand[1])
        if diff < best_diff:
            best_diff = diff
            best = cand
        elif diff == best_diff and area > 0.5 * tile * tile * cand[0] * cand[1]:
            best = cand
    return best


def grid(w: int, h: int, min_num: int, max_num: int, tile: int, use_thumbnail: bool) -> tuple[int, int, bool]:
    """``(cols, rows, thumbnail)`` of ``dynamic_preprocess`` for a ``w`` x ``h`` image (thumbnail only if > 1 tile)."""
    cols, rows = find_grid(w, h, min_num, max_num, tile)
    return cols, rows, use_thumbnail and cols * rows != 1


@lru_cache(maxsize=1 << 16)
def num_tiles(w: int, h: int, min_num: int, max_num: int, tile: int, use_thumbnail: bool) -> int:
    """Tiles ``dynamic_preprocess`` yields for a ``w`` x ``h`` image: cols*rows, plus 1 thumbnail if > 1."""
    cols, rows, thumb = grid(w, h, min_num, max_num, tile, use_thumbnail)
    return cols * rows + thumb


def grid_boxes(cols: int, rows: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Row-major crop boxes of a ``cols`` x ``rows`` grid of ``tile``-pixel squares."""
    return [
        ((k % cols) * tile, (k // cols) * tile, (k % cols + 1) * tile, (k // cols + 1) * tile)
        for k in range(cols * rows)
    ]


def dynamic_preprocess(
    img: Image.Image, min_num: int, max_num: int, tile: int, use_thumbnail: bool
) -> list[Image.Image]:
    """Official tiles of ``img``: bicubic resize of the whole image, row-major crops, thumbnail last if > 1.

    ``img`` should already be RGB (the official loader does ``convert('RGB')``); PIL's default filter for RGB
    is bicubic and is named explicitly here.
    """
    from PIL import Image

    cols, rows, thumb = grid(img.width, img.height, min_num, max_num, tile, use_thumbnail)
    resized = img.resize((tile * cols, tile * rows), Image.Resampling.BICUBIC)
    tiles = [resized.crop(box) for box in grid_boxes(cols, rows, tile)]
    if thumb:
        tiles.append(img.resize((tile, tile), Image.Resampling.BICUBIC))
    return tiles
