"""Video frame sampling and reading (docs/official-behaviour.md §3.9)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from internvl_data.pipeline.video import VideoError, choose_num_frames, read_frames, sample_frame_indices


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_middle():
    # linspace(0, 100, 9).astype(int) = 0 12 25 37 50 62 75 87 100; ranges (lo, next-1); middle (lo+hi)//2
    assert sample_frame_indices(8, 100, "middle") == [5, 18, 30, 43, 55, 68, 80, 93]
    assert sample_frame_indices(4, 4, "middle") == [0, 1, 2, 3]
    assert sample_frame_indices(1, 7, "middle") == [3]


def test_short_video_is_padded_with_the_last_index():
    assert sample_frame_indices(8, 5, "middle") == [0, 1, 2, 3, 4, 4, 4, 4]
    assert sample_frame_indices(3, 1, "middle") == [0, 0, 0]


def test_rand_picks_inside_each_interval_excluding_its_last_frame():
    for seed in range(20):
        got = sample_frame_indices(8, 100, "rand", rng=rng(seed))
        edges = np.linspace(0, 100, 9).astype(int)
        assert len(got) == 8
        for k, i in enumerate(got):
            assert edges[k] <= i <= edges[k + 1] - 2
    assert sample_frame_indices(8, 100, "rand", rng=rng(1)) == sample_frame_indices(8, 100, "rand", rng=rng(1))
    picks = {tuple(sample_frame_indices(8, 100, "rand", rng=rng(s))) for s in range(10)}
    assert len(picks) > 5


def test_rand_empty_interval_falls_back_to_sorted_subset():
    # vlen 10, 8 frames: edges 0 1 2 3 5 6 7 8 10 -> interval (0, 0) is empty -> random sorted subset of 8
    got = sample_frame_indices(8, 10, "rand", rng=rng(4))
    assert got == sorted(got) and len(set(got)) == 8 and all(0 <= i < 10 for i in got)
    assert got == sorted(int(i) for i in rng(4).permutation(10)[:8])
    # shorter than requested: subset of all frames, then padded
    short = sample_frame_indices(6, 3, "rand", rng=rng(0))
    assert short == [0, 1, 2, 2, 2, 2]


def test_fps_method():
    # 100 frames at 30 fps = 3.33 s; fps1 -> times 0.5 1.5 2.5 (3.5 > duration) -> 15 45 75
    assert sample_frame_indices(0, 100, "fps1", fps=30.0) == [15, 45, 75]
    assert sample_frame_indices(0, 100, "fps1", fps=30.0, max_num_frames=2) == [15, 45]
    # fps0.5 -> delta 2: time 1.0 -> 30; 3.0 -> 90
    assert sample_frame_indices(0, 100, "fps0.5", fps=30.0) == [30, 90]
    # round half to even, as np.around: 0.25 s * 10 fps = 2.5 -> 2; 0.75 * 10 = 7.5 -> 8
    assert sample_frame_indices(0, 10, "fps2", fps=10.0) == [2, 8]
    # indices at or past vlen are dropped
    assert sample_frame_indices(0, 3, "fps1", fps=2.0) == [1]


def test_bad_inputs():
    with pytest.raises(VideoError, match="no frames"):
        sample_frame_indices(8, 0, "middle")
    with pytest.raises(ValueError, match="unknown sampling method 'uniform'"):
        sample_frame_indices(8, 10, "uniform")
    with pytest.raises(ValueError, match="fpsN with a number"):
        sample_frame_indices(8, 10, "fpsx", fps=30.0)
    with pytest.raises(ValueError, match="positive video fps"):
        sample_frame_indices(8, 10, "fps1")


def test_choose_num_frames():
    counts = [choose_num_frames(8, 32, rng(s)) for s in range(200)]
    assert min(counts) == 8 and max(counts) == 32
    assert choose_num_frames(8, 32, rng(3)) == int(rng(3).integers(8, 33))
    assert choose_num_frames(5, 5, rng(0)) == 5
    with pytest.raises(ValueError, match="min_num_frame 9 > max_num_frame 8"):
        choose_num_frames(9, 8, rng(0))


LEVELS = 12  # frame k is a uniform grey of level 20 * (k % 12) + 10 (the codec is lossy by a few levels)


def _nearest_frames(frames: list[Image.Image]) -> list[int]:
    return [int(round((float(np.asarray(f).mean()) - 10) / 20)) for f in frames]


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory) -> str:
    av = pytest.importorskip("av")
    path = str(tmp_path_factory.mktemp("video") / "grey.mp4")
    with av.open(path, "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"qscale": "1"}
        for k in range(LEVELS * 2):  # 24 frames at 10 fps, grey levels repeat every 12 frames
            data = np.full((48, 64, 3), 20 * (k % LEVELS) + 10, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(data, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_read_frames_decord_middle(clip_path):
    pytest.importorskip("decord")
    frames = read_frames(clip_path, 4, "middle")
    assert [f.size for f in frames] == [(64, 48)] * 4 and all(f.mode == "RGB" for f in frames)
    # 24 frames, 4 intervals of 6: middles 2 8 14 20 -> grey levels 2 8 2 8
    assert _nearest_frames(frames) == [2, 8, 2, 8]


def test_read_frames_clip_window(clip_path):
    pytest.importorskip("decord")
    # clip 0.5 s .. 1.3 s at 10 fps: vlen int(8.0) = 8, offset 5; middles 0 2 4 6 -> 5 7 9 11
    frames = read_frames(clip_path, 4, "middle", clip=(0.5, 1.3))
    assert _nearest_frames(frames) == [5, 7, 9, 11]
    # official float arithmetic kept: (1.4 - 0.6) * 10 = 7.999999999999999 -> vlen 7, offset 6;
    # linspace(0, 7, 5) -> 0 1 3 5 7; middles 0 1 3 5 -> 6 7 9 11
    frames = read_frames(clip_path, 4, "middle", clip=(0.6, 1.4))
    assert _nearest_frames(frames) == [6, 7, 9, 11]
    with pytest.raises(VideoError, match=r"clip \[1.0, 9.0\] is outside the video \(24 frames at 10 fps"):
        read_frames(clip_path, 4, "middle", clip=(1.0, 9.0))
    with pytest.raises(VideoError, match=r"clip must be \[start, end\] in seconds, got \['0', 1\]"):
        read_frames(clip_path, 4, "middle", clip=("0", 1))


def test_read_frames_rand_is_seeded(clip_path):
    pytest.importorskip("decord")
    a = read_frames(clip_path, 3, "rand", rng=rng(5))
    b = read_frames(clip_path, 3, "rand", rng=rng(5))
    assert [np.asarray(x).tobytes() for x in a] == [np.asarray(x).tobytes() for x in b]
    expected = [i % LEVELS for i in sample_frame_indices(3, 24, "rand", rng=rng(5))]
    assert _nearest_frames(a) == expected


def test_unreadable_video(tmp_path):
    pytest.importorskip("decord")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(VideoError, match="cannot open video"):
        read_frames(str(bad), 4, "middle")


def test_frame_folder(tmp_path):
    for k in [10, 2, 1]:
        Image.new("RGB", (8, 8), (10 * k, 0, 0)).save(tmp_path / f"frame_{k}.jpg", quality=100)
    Image.new("RGB", (8, 8), (0, 0, 0)).save(tmp_path / "cover.jpg", quality=100)  # no number: sorts first
    folder = str(tmp_path) + "/"
    whole = read_frames(folder, 8, "middle")  # 4 frames <= 8: all of them, no padding
    assert [int(np.asarray(f)[0, 0, 0]) // 10 for f in whole] == [0, 1, 2, 10]
    two = read_frames(folder, 2, "middle")  # 4 frames > 2: intervals (0,1) (2,3) -> 0, 2
    assert [int(np.asarray(f)[0, 0, 0]) // 10 for f in two] == [0, 2]


def test_gif_keeps_each_sampled_frame_once(tmp_path):
    frames = [Image.new("P", (8, 8), k) for k in range(5)]
    for f in frames:
        f.putpalette([v for i in range(256) for v in (i * 40 % 256, 0, 0)])
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    got = read_frames(str(tmp_path / "a.gif"), 8, "middle")  # indices 0 1 2 3 4 4 4 4 -> 5 distinct frames
    assert [int(np.asarray(f)[0, 0, 0]) for f in got] == [0, 40, 80, 120, 160]
