"""Tile grids, tile counts and pixel-exact tiles (docs/official-behaviour.md §3.4)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from internvl_data.pipeline.tiling import candidate_grids, dynamic_preprocess, find_grid, grid, num_tiles


def spec_grid(w: int, h: int, min_num: int, max_num: int, tile: int) -> tuple[int, int]:
    """Brute-force transcription of the §3.4 prose, candidates sorted by (area, cols)."""
    cands = sorted(
        {(i, j) for i in range(1, max_num + 1) for j in range(1, max_num + 1) if min_num <= i * j <= max_num},
        key=lambda g: (g[0] * g[1], g[0]),
    )
    best, best_diff = (1, 1), float("inf")
    for i, j in cands:
        diff = abs(w / h - i / j)
        if diff < best_diff:
            best, best_diff = (i, j), diff
        elif diff == best_diff and w * h > 0.5 * tile * tile * i * j:
            best = (i, j)
    return best


# §3.4 worked examples: (W, H) -> (grid, tiles) for max 6 and max 12, S=448, thumbnail on.
TABLE = [
    ((448, 448), (1, 1), 1, (1, 1), 1),
    ((500, 500), (1, 1), 1, (1, 1), 1),
    ((224, 224), (1, 1), 1, (1, 1), 1),
    ((1000, 1000), (2, 2), 5, (3, 3), 10),
    ((800, 600), (3, 2), 7, (4, 3), 13),
    ((640, 480), (3, 2), 7, (4, 3), 13),
    ((1920, 1080), (2, 1), 3, (4, 2), 9),
    ((1080, 1920), (1, 2), 3, (2, 4), 9),
    ((897, 1152), (2, 3), 7, (3, 4), 13),
    ((3000, 500), (6, 1), 7, (6, 1), 7),
]


@pytest.mark.parametrize(("size", "grid6", "tiles6", "grid12", "tiles12"), TABLE)
def test_reference_table(size, grid6, tiles6, grid12, tiles12):
    w, h = size
    assert find_grid(w, h, 1, 6, 448) == grid6
    assert num_tiles(w, h, 1, 6, 448, True) == tiles6
    assert find_grid(w, h, 1, 12, 448) == grid12
    assert num_tiles(w, h, 1, 12, 448, True) == tiles12


@pytest.mark.parametrize(
    ("w", "h", "grid", "tiles"),
    [
        (1, 500, (1, 12), 13),  # extreme portrait: tallest grid, upscaled
        (500, 1, (12, 1), 13),
        (57, 31, (2, 1), 3),  # aspect 1.84 -> 2:1 even for a tiny image
        (1920, 1080, (4, 2), 9),
    ],
)
def test_named_sizes(w, h, grid, tiles):
    assert find_grid(w, h, 1, 12, 448) == grid == spec_grid(w, h, 1, 12, 448)
    assert num_tiles(w, h, 1, 12, 448, True) == tiles
    assert num_tiles(w, h, 1, 12, 448, False) == tiles - 1


def test_tie_break_depends_on_tile_size():
    # Square images tie between 1x1, 2x2, 3x3: the larger grid wins only above half its canvas pixels.
    # Tile 28: 2x2 needs w*h > 1568, 3x3 needs > 3528.
    assert find_grid(39, 39, 1, 12, 28) == (1, 1)
    assert find_grid(40, 40, 1, 12, 28) == (2, 2)
    assert find_grid(59, 59, 1, 12, 28) == (2, 2)
    assert find_grid(60, 60, 1, 12, 28) == (3, 3)
    assert find_grid(60, 60, 1, 12, 448) == (1, 1)
    assert find_grid(634, 634, 1, 12, 448) == (2, 2)  # 634^2 = 401956 > 401408
    assert find_grid(633, 633, 1, 12, 448) == (1, 1)


def test_tie_break_flips_found_by_search():
    """Every size where the tile size changes the answer agrees with the transcription."""
    flips = []
    for w in range(1, 130, 3):
        for h in range(1, 130, 3):
            small, large = find_grid(w, h, 1, 12, 14), find_grid(w, h, 1, 12, 448)
            assert small == spec_grid(w, h, 1, 12, 14)
            assert large == spec_grid(w, h, 1, 12, 448)
            if small != large:
                flips.append((w, h, small, large))
    assert len(flips) > 20
    assert (28, 28, (2, 2), (1, 1)) in flips  # 784 > 0.5*196*4 but not > 0.5*196*9


@pytest.mark.parametrize("max_num", [1, 6, 12, 24, 40])
@pytest.mark.parametrize("tile", [28, 224, 448])
def test_matches_transcription(max_num, tile):
    for w in range(1, 1500, 37):
        for h in range(1, 1500, 41):
            assert find_grid(w, h, 1, max_num, tile) == spec_grid(w, h, 1, max_num, tile), (w, h)


def test_min_num_above_one_and_empty_range():
    assert find_grid(448, 448, 2, 6, 448) == (2, 2)  # 1x1 is not a candidate: the next square grid wins
    # 500x400 (aspect 1.25) is equally far from 1:2 and 2:1, both of area 2: the first in the official order
    # stays unless the image exceeds half the canvas, which happens at tile 28 but not at 448.
    assert candidate_grids(2, 2) == ((1, 2), (2, 1))
    assert find_grid(500, 400, 2, 2, 448) == (1, 2)
    assert find_grid(500, 400, 2, 2, 28) == (2, 1)
    assert find_grid(10, 10, 3, 2, 448) == (1, 1)  # min_num > max_num: no candidates
    assert num_tiles(10, 10, 3, 2, 448, True) == 1
    assert find_grid(5000, 100, 1, 1, 448) == (1, 1)


def test_grid_has_a_thumbnail_only_beyond_one_tile():
    assert grid(800, 600, 1, 12, 448, True) == (4, 3, True)
    assert grid(800, 600, 1, 12, 448, False) == (4, 3, False)
    assert grid(448, 448, 1, 12, 448, True) == (1, 1, False)
    assert grid(448, 448, 2, 6, 448, True) == (2, 2, True)


def test_candidate_order_is_the_official_set_order():
    grids = candidate_grids(1, 6)
    assert [g[0] * g[1] for g in grids] == sorted(g[0] * g[1] for g in grids)
    assert set(grids) == {(i, j) for i in range(1, 7) for j in range(1, 7) if i * j <= 6}
    # CPython set order of these tuples inside an area (pinned: it is what the official code iterates).
    assert grids[:3] == ((1, 1), (1, 2), (2, 1))


def _synthetic(w: int, h: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w - 1, 1), yy * 255 // max(h - 1, 1), (xx + yy) % 256], axis=-1)
    noise = rng.integers(0, 40, size=(h, w, 3))
    return Image.fromarray(((base + noise) % 256).astype(np.uint8), "RGB")


def _independent_tiles(img: Image.Image, max_num: int, tile: int, thumb: bool) -> list[np.ndarray]:
    """Straight from the prose: resize to the grid canvas, crop row-major, thumbnail of the original last."""
    cols, rows = spec_grid(img.width, img.height, 1, max_num, tile)
    canvas = np.asarray(img.resize((cols * tile, rows * tile), Image.BICUBIC))
    tiles = [canvas[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] for r in range(rows) for c in range(cols)]
    if thumb and len(tiles) > 1:
        tiles.append(np.asarray(img.resize((tile, tile), Image.BICUBIC)))
    return tiles


@pytest.mark.parametrize(("w", "h"), [(1, 500), (500, 1), (57, 31), (1920, 1080), (300, 200), (40, 40)])
@pytest.mark.parametrize("thumb", [True, False])
def test_dynamic_preprocess_pixels(w, h, thumb):
    img = _synthetic(w, h)
    tile = 28 if (w, h) == (40, 40) else 112
    got = dynamic_preprocess(img, 1, 12, tile, thumb)
    want = _independent_tiles(img, 12, tile, thumb)
    assert len(got) == len(want) == num_tiles(w, h, 1, 12, tile, thumb)
    for g, ref in zip(got, want):
        assert g.size == (tile, tile)
        assert np.array_equal(np.asarray(g), ref)


def test_pinned_tiles_checksum():
    tiles = dynamic_preprocess(_synthetic(300, 200, seed=3), 1, 6, 112, True)
    assert len(tiles) == 7
    data = np.stack([np.asarray(t) for t in tiles])
    assert data[0, 0, 0].tolist() == [34, 3, 6]
    assert int(data.sum()) == 33_709_026
    assert hashlib.sha256(data.tobytes()).hexdigest()[:16] == "15b3517a674f9078"
