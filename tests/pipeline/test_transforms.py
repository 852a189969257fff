"""Per-tile transform (docs/official-behaviour.md §3.5): exact float32 values, fast path equality, seeded JPEG augmentation."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from internvl_data.pipeline.tiling import dynamic_preprocess, num_tiles
from internvl_data.pipeline.transforms import NORMALIZE, TileTransform, load_rgb

MEAN, STD = NORMALIZE["imagenet"]


def _noise(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4}[mode]
    data = np.random.default_rng(seed).integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    return Image.fromarray(data, mode)


def torch_reference(tile: Image.Image, size: int, mean=MEAN, std=STD) -> np.ndarray:
    """The official chain written plainly: RGB, PIL bicubic resize, then ToTensor (/255) and Normalize.

    The arithmetic is torch's when torch is installed, else the same float32 steps in numpy.
    """
    tile = tile.convert("RGB")
    if tile.size != (size, size):
        tile = tile.resize((size, size), Image.BICUBIC)
    data = np.array(tile, np.uint8, copy=True)
    try:
        import torch
    except ImportError:
        x = data.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        return (x - np.asarray(mean, np.float32).reshape(3, 1, 1)) / np.asarray(std, np.float32).reshape(3, 1, 1)
    x = torch.from_numpy(data).permute(2, 0, 1).contiguous().float().div(255)
    return x.sub_(torch.tensor(mean).view(3, 1, 1)).div_(torch.tensor(std).view(3, 1, 1)).numpy()


def test_torch_and_numpy_float32_steps_agree():
    torch = pytest.importorskip("torch")
    data = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)  # every byte value
    for mean, std in NORMALIZE.values():
        x = torch.from_numpy(data).permute(2, 0, 1).float().div(255)
        x = x.sub_(torch.tensor(mean).view(3, 1, 1)).div_(torch.tensor(std).view(3, 1, 1)).numpy()
        y = data.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        y = (y - np.asarray(mean, np.float32).reshape(3, 1, 1)) / np.asarray(std, np.float32).reshape(3, 1, 1)
        assert np.array_equal(x, y)


@pytest.mark.parametrize("normalize", sorted(NORMALIZE))
def test_single_tile_matches_torch_reference(normalize):
    tile = _noise(64, 64, seed=1)
    got = TileTransform(64, normalize=normalize)(tile)
    assert got.dtype == np.float32 and got.shape == (3, 64, 64)
    assert np.array_equal(got, torch_reference(tile, 64, *NORMALIZE[normalize]))


def test_tile_of_other_size_and_mode_is_converted_and_resized():
    rgba = _noise(50, 30, seed=2, mode="RGBA")
    got = TileTransform(32)(rgba)
    assert got.shape == (3, 32, 32)
    assert np.array_equal(got, torch_reference(rgba, 32))  # alpha dropped, not composited
    gray = Image.fromarray(np.full((16, 16), 100, np.uint8), "L")
    assert np.array_equal(TileTransform(16)(gray), torch_reference(gray, 16))


@pytest.mark.parametrize(("w", "h"), [(1, 500), (500, 1), (57, 31), (1920, 1080), (640, 480), (100, 100)])
@pytest.mark.parametrize("thumb", [True, False])
def test_image_fast_path_equals_tiles_then_reference(w, h, thumb):
    img = _noise(w, h, seed=w + h)
    transform = TileTransform(112)
    fast = transform.image(img, 1, 12, thumb)
    tiles = dynamic_preprocess(img, 1, 12, 112, thumb)
    assert fast.shape == (num_tiles(w, h, 1, 12, 112, thumb), 3, 112, 112)
    assert np.array_equal(fast, transform.stack(tiles))
    assert np.array_equal(fast, np.stack([torch_reference(t, 112) for t in tiles]))


def test_pinned_pixel_values():
    img = Image.fromarray(
        np.fromfunction(lambda y, x, c: (x * 3 + y * 5 + c * 70) % 256, (90, 160, 3), dtype=np.int64).astype(np.uint8)
    )
    pv = TileTransform(56).image(img, 1, 6, True)  # pins guard against silent changes in PIL or numpy
    assert pv.shape == (3, 3, 56, 56)  # 160x90 -> 2x1 grid + thumbnail
    assert pv[0, :, 0, 0].tolist() == pytest.approx([-2.0665297508239746, -0.7577030062675476, 0.6879304647445679])
    assert hashlib.sha256(pv.tobytes()).hexdigest()[:16] == "32f72e7420f56810"


def test_dummy_tile_is_white_normalised_and_read_only():
    transform = TileTransform(448)
    dummy = transform.dummy()
    assert dummy.shape == (1, 3, 448, 448) and dummy.dtype == np.float32
    white = ((np.float32(255) / np.float32(255)) - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    for c in range(3):
        assert np.all(dummy[0, c] == white[c])
    assert not dummy.flags.writeable
    assert transform.dummy() is dummy
    reference = torch_reference(dynamic_preprocess(Image.new("RGB", (224, 224), "white"), 1, 1, 448, True)[0], 448)
    assert np.array_equal(dummy[0], reference)


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_augment_is_seeded_jpeg_per_tile():
    tiles = [_noise(32, 32, seed=s) for s in range(4)]
    a = TileTransform(32, augment=True, seed=7).stack(tiles)
    b = TileTransform(32, augment=True, seed=7).stack(tiles)
    assert np.array_equal(a, b)
    qualities = np.random.default_rng(7).integers(75, 101, size=4)  # one draw per tile, in tile order
    assert len(set(qualities.tolist())) > 1
    for k, q in enumerate(qualities):
        assert np.array_equal(a[k], torch_reference(_jpeg(tiles[k], int(q)), 32))
    assert not np.array_equal(a, TileTransform(32).stack(tiles))


def test_augment_uses_callers_rng_and_image_path():
    img = _noise(100, 60, seed=5)
    t = TileTransform(32, augment=True, seed=0)
    one = t.image(img, 1, 6, True, rng=np.random.default_rng(3))
    two = t.image(img, 1, 6, True, rng=np.random.default_rng(3))
    assert np.array_equal(one, two)
    tiles = dynamic_preprocess(img, 1, 6, 32, True)
    qualities = np.random.default_rng(3).integers(75, 101, size=len(tiles))
    assert np.array_equal(one, np.stack([torch_reference(_jpeg(x, int(q)), 32) for x, q in zip(tiles, qualities)]))


def test_unknown_normalize_is_rejected():
    with pytest.raises(ValueError, match="unknown normalize 'foo'"):
        TileTransform(448, normalize="foo")


def test_load_rgb(tmp_path):
    src = _noise(20, 10, seed=9, mode="RGBA")
    src.save(tmp_path / "a.png")
    _noise(20, 10, seed=9).save(tmp_path / "b.png")
    a, b = load_rgb(str(tmp_path / "a.png")), load_rgb(str(tmp_path / "b.png"))
    assert a.mode == b.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(src)[..., :3])
    assert np.array_equal(np.asarray(b), np.asarray(Image.open(tmp_path / "b.png").convert("RGB")))


def test_helper_thread_gives_the_same_values():
    from internvl_data.pipeline import transforms

    img = _noise(300, 170, seed=11)
    single = TileTransform(64).image(img, 1, 12, True)
    transforms.set_num_threads(2)
    try:
        threaded = [TileTransform(64).image(img, 1, 12, True) for _ in range(3)]
    finally:
        transforms.set_num_threads(1)
    assert single.shape == (num_tiles(300, 170, 1, 12, 64, True), 3, 64, 64)
    assert all(np.array_equal(single, t) for t in threaded)


@pytest.mark.parametrize("threads", [1, 3])
def test_map_threads_keeps_order_and_raises_the_first_failure(threads):
    from internvl_data.pipeline import transforms

    transforms.set_num_threads(threads)
    try:
        assert transforms.map_threads(lambda x: x * x, list(range(7))) == [0, 1, 4, 9, 16, 25, 36]
        assert transforms.map_threads(str, []) == []

        def fail_odd(x: int) -> int:
            if x % 2:
                raise ValueError(f"bad {x}")
            return x

        with pytest.raises(ValueError, match="bad 1"):
            transforms.map_threads(fail_odd, [0, 1, 2, 3])
        with pytest.raises(ValueError, match="bad 3"):
            transforms.map_threads(fail_odd, [0, 2, 3, 5])
    finally:
        transforms.set_num_threads(1)


def test_image_inside_map_threads_does_not_wait_on_its_own_pool():
    from internvl_data.pipeline import transforms

    imgs = [_noise(120, 60, seed=s) for s in range(3)]
    expected = [TileTransform(32).image(img, 1, 6, True) for img in imgs]
    transforms.set_num_threads(2)
    try:
        got = transforms.map_threads(lambda img: TileTransform(32).image(img, 1, 6, True), imgs)
    finally:
        transforms.set_num_threads(1)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_images_as_tasks_equal_one_image_at_a_time_and_raise_the_first_failure(threads):
    from internvl_data.pipeline import transforms

    imgs = [_noise(w, h, seed=s) for s, (w, h) in enumerate([(300, 170), (40, 40), (90, 400), (500, 60)])]
    budgets = [6, 1, 12, 3]
    t = TileTransform(32)
    expected = [t.image(img, 1, b, True) for img, b in zip(imgs, budgets)]
    transforms.set_num_threads(threads)
    try:
        got = t.images([lambda img=img: img for img in imgs], 1, budgets, True)

        def broken(k: int):
            def load():
                raise OSError(f"cannot decode {k}")

            return load

        loaders = [lambda: imgs[0], broken(1), lambda: imgs[2], broken(3)]
        with pytest.raises(OSError, match="cannot decode 1"):
            t.images(loaders, 1, budgets, True)
    finally:
        transforms.set_num_threads(1)
    assert [g[1] for g in got] == [img.size for img in imgs]
    from internvl_data.pipeline.tiling import find_grid

    grids = [find_grid(img.width, img.height, 1, b, 32) for img, b in zip(imgs, budgets)]
    assert [g[2] for g in got] == [(c, r, c * r > 1) for c, r in grids]
    assert [len(g[0]) for g in got] == [len(e) for e in expected] and len(expected[1]) == 1
    assert all(np.array_equal(g[0], e) for g, e in zip(got, expected))


def test_retain_freed_memory_takes_effect_on_glibc():
    import platform

    from internvl_data.pipeline import transforms

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert transforms.retain_freed_memory() is True
