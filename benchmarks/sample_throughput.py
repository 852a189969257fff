"""Samples/s of record -> model inputs, ours vs a plain transcription of the official path, same run.

    python benchmarks/sample_throughput.py [--data DIR] [--per-kind 300,120,60,120] [--threads 2,1]

``--data`` is a folder written by ``python ../shared/bench/make_dataset.py DIR`` (created there when missing).
Settings: tile 448, thumbnail on, max_dynamic_patch 12, no augmentation, no padding, template
``internlm2-chat`` with the tiny ``internlm2`` tokenizer of tests/helpers (the same tokenizer object for
both sides, so only the pipelines differ). One process; T threads per run: the baseline under
``torch.set_num_threads(T)``, ours under ``internvl_data.pipeline.transforms.set_num_threads(T)``.

Baseline = the official ``__getitem__`` written plainly: ``Image.open().convert('RGB')``, the official
``dynamic_preprocess``, per-tile ToTensor + Normalize in torch, ``torch.stack``; text through the official
``preprocess_internlm`` (full-string tokenization plus the per-part length arithmetic). Ours =
``SampleBuilder.build``. Image work is timed on its own for both; ours' token work = build - image work. Each record's steps
run back to back, fastest of ``--repeats``, so other load on the machine hits both sides alike.
Pixel tensors must be identical (asserted for every measured sample); ids and labels are compared too.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from internvl_data.formats.models import record_kind  # noqa: E402
from internvl_data.pipeline.mixture import Mixture  # noqa: E402
from internvl_data.pipeline.modelinfo import ModelInfo  # noqa: E402
from internvl_data.pipeline.sample import SampleBuilder  # noqa: E402
from internvl_data.pipeline.tokenizer import load_tokenizer  # noqa: E402
from internvl_data.pipeline.transforms import (  # noqa: E402
    TileTransform,
    load_rgb,
    map_threads,
    retain_freed_memory,
    set_num_threads,
)
from tests.helpers.tokenizers import write_model_dir  # noqa: E402

MAKE_DATASET = REPO.parent / "shared" / "bench" / "make_dataset.py"
TILE, MAX_PATCH, TOKENS_PER_TILE, MAX_LEN = 448, 12, 256, 16384
KINDS = ("text", "single", "multi", "mixed")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SYSTEM = "你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。"
USER, ASSISTANT, SEP = "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>"


# -- baseline: the official path, written plainly ---------------------------------------------------------------


def official_dynamic_preprocess(image, min_num=1, max_num=6, image_size=448, use_thumbnail=False):
    w, h = image.size
    aspect = w / h
    ratios = {
        (i, j)
        for n in range(min_num, max_num + 1)
        for i in range(1, n + 1)
        for j in range(1, n + 1)
        if min_num <= i * j <= max_num
    }
    ratios = sorted(ratios, key=lambda x: x[0] * x[1])
    best_diff, best = float("inf"), (1, 1)
    for r in ratios:
        diff = abs(aspect - r[0] / r[1])
        if diff < best_diff:
            best_diff, best = diff, r
        elif diff == best_diff and w * h > 0.5 * image_size * image_size * r[0] * r[1]:
            best = r
    tw, th = image_size * best[0], image_size * best[1]
    resized = image.resize((tw, th))
    cols = tw // image_size
    tiles = [
        resized.crop(
            (
                (i % cols) * image_size,
                (i // cols) * image_size,
                (i % cols + 1) * image_size,
                (i // cols + 1) * image_size,
            )
        )
        for i in range(best[0] * best[1])
    ]
    if use_thumbnail and len(tiles) != 1:
        tiles.append(image.resize((image_size, image_size)))
    return tiles


def official_transform(img):
    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (TILE, TILE):
        img = img.resize((TILE, TILE), Image.BICUBIC)
    x = torch.from_numpy(np.array(img, np.uint8, copy=True)).view(TILE, TILE, 3).permute(2, 0, 1).contiguous()
    x = x.to(torch.float32).div(255)
    return x.sub_(torch.tensor(MEAN).view(3, 1, 1)).div_(torch.tensor(STD).view(3, 1, 1))


def official_pixels(record, root):
    """pixel_values and num_image_token_list as the official __getitem__ builds them."""
    kind = record_kind(record)
    if kind == "text":
        white = Image.new("RGB", (224, 224), (255, 255, 255))
        tiles = official_dynamic_preprocess(white, 1, 1, TILE, True)
        return torch.stack([official_transform(t) for t in tiles]), []
    paths = [record["image"]] if kind == "single" else record["image"]
    budget = MAX_PATCH if kind == "single" else max(1, MAX_PATCH // len(paths))
    pixels, counts = [], []
    for p in paths:
        image = Image.open(os.path.join(root, p)).convert("RGB")
        tiles = official_dynamic_preprocess(image, 1, budget, TILE, True)
        pixels += [official_transform(t) for t in tiles]
        counts.append(TOKENS_PER_TILE * len(tiles))
    return torch.stack(pixels), counts


def official_preprocess_internlm(record, tokenizer, token_counts):
    """``preprocess_internlm`` (docs/official-behaviour.md §4.3-4.4), padding off (group_by_length)."""
    convs = [dict(c) for c in record["conversations"]]
    kind = record_kind(record)
    if kind == "single" and "<image>" not in convs[0]["value"]:
        convs[0]["value"] = "<image>\n" + convs[0]["value"]
    if convs[0]["from"] != "human":
        convs = convs[1:]
    text = "<|im_start|>system\n" + SYSTEM + SEP
    for k, c in enumerate(convs):
        assert c["from"] == ("human", "gpt")[k % 2]
        text += (USER, ASSISTANT)[k % 2] + c["value"].strip() + SEP
    for n in token_counts:
        text = text.replace("<image>", "<img>" + "<IMG_CONTEXT>" * n + "</img>", 1)
    ids = tokenizer([text], return_tensors="pt", padding=False, max_length=MAX_LEN, truncation=True).input_ids
    labels = ids.clone()
    target = labels[0]
    total_len = int(target.ne(tokenizer.pad_token_id).sum())
    cur = 1
    target[:cur] = -100
    parts = text.split(ASSISTANT)
    n = len(tokenizer(parts[0] + ASSISTANT).input_ids) - 1
    target[cur : cur + n] = -100
    cur += n
    for part in parts[1:-1]:
        a, q = part.split(USER)
        cur += len(tokenizer(a).input_ids) - 1
        n = len(tokenizer(USER + q + ASSISTANT).input_ids) - 1
        target[cur : cur + n] = -100
        cur += n
    cur += len(tokenizer(parts[-1]).input_ids) - 1
    target[cur:] = -100
    if cur < MAX_LEN and cur != total_len:
        target[:] = -100
    return ids[0], labels[0]


# -- ours -------------------------------------------------------------------------------------------------------


def our_pixels(record, root, transform):
    """The pixel half of SampleBuilder.build, alone (same functions, same budgets)."""
    kind = record_kind(record)
    if kind == "text":
        return transform.dummy()
    paths = [record["image"]] if kind == "single" else record["image"]
    budget = MAX_PATCH if kind == "single" else max(1, MAX_PATCH // len(paths))
    images = map_threads(lambda p: load_rgb(os.path.join(root, p)), paths)
    arrays = [transform.image(img, 1, budget, True) for img in images]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def our_two_thread_path(record, root, transform):
    """Seconds of ours' image work on 2 idle cores, from single-threaded stage times (``--clock cpu``).

    Follows the schedule of ``map_threads`` + ``TileTransform.image`` with one helper thread: images are
    decoded by whichever thread is free; then per image the helper resizes the thumbnail while the caller
    resizes the canvas. Ignores memory-bandwidth and GIL contention.
    """
    kind = record_kind(record)
    if kind == "text":
        return _clock(transform.dummy)[0]
    paths = [record["image"]] if kind == "single" else record["image"]
    budget = MAX_PATCH if kind == "single" else max(1, MAX_PATCH // len(paths))
    decode, images = zip(*(_clock(load_rgb, os.path.join(root, p)) for p in paths))
    free = [0.0, 0.0]  # map_threads: whoever is free first takes the next image
    for d in decode:
        free[free.index(min(free))] += d
    total = max(free)
    for img in images:
        whole = _clock(transform.image, img, 1, budget, True)[0]
        thumb = _clock(transform._thumbnail_into, img, np.empty((1, 3, TILE, TILE), np.float32))[0]
        if len(transform.image(img, 1, budget, True)) == 1:
            thumb = 0.0
        total += max(whole - thumb, thumb)
    return total


# -- harness ----------------------------------------------------------------------------------------------------


CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of the process, all its threads)


def _clock(fn, *args):
    start = CLOCK()
    out = fn(*args)
    return CLOCK() - start, out


def measure(kind, items, builder, tokenizer, transform, repeats):
    """Seconds for baseline image, baseline tokens, ours image, ours tokens; plus ids/labels equality counts.

    The four steps run back to back for each record (so load from other processes hits both sides alike)
    and each record keeps its fastest of ``repeats`` runs.
    """
    totals = np.zeros(5)
    same_ids = same_labels = 0
    for rec, entry in items:
        best = np.full(5, np.inf)
        for _ in range(repeats):
            t0, (ref, token_counts) = _clock(official_pixels, rec, entry.root_path)
            t1, (ids, labels) = _clock(official_preprocess_internlm, rec, tokenizer, token_counts)
            t2, mine = _clock(our_pixels, rec, entry.root_path, transform)
            t3, sample = _clock(builder.build, rec, entry)
            t4 = our_two_thread_path(rec, entry.root_path, transform) if CLOCK is time.process_time else np.nan
            best = np.fmin(best, [t0, t1, t2, t3, t4])
        assert np.array_equal(ref.numpy(), mine), f"{kind} record {rec.get('id')}: pixel values differ"
        assert np.array_equal(ref.numpy(), sample.pixel_values), f"{kind} record {rec.get('id')}: sample pixels"
        same_ids += np.array_equal(ids.numpy(), sample.input_ids)
        same_labels += np.array_equal(labels.numpy(), sample.labels)
        best[3] = max(best[3] - best[2], 0.0)  # ours' token work: build minus its image work
        totals += best
    return (*totals, same_ids, same_labels)


def ensure_dataset(folder: Path) -> Path:
    if not (folder / "meta.json").exists():
        print(f"writing the benchmark dataset to {folder} ...", file=sys.stderr)
        subprocess.run([sys.executable, str(MAKE_DATASET), str(folder)], check=True)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "ivl-bench-data"))
    parser.add_argument("--per-kind", default="300,120,60,120", help="records measured for text,single,multi,mixed")
    parser.add_argument("--threads", default="2,1", help="thread counts (torch for the baseline, transforms for ours)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per record; the fastest counts")
    parser.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="transforms.retain_freed_memory() first (process-wide: both sides benefit)",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="cpu: process CPU time, a load-independent estimate of single-threaded (--threads 1) "
        "wall time on a quiet machine; meaningless with more threads",
    )
    args = parser.parse_args()
    if args.keep_freed_memory:
        print(f"retain_freed_memory: {retain_freed_memory()}")
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    counts = dict(zip(KINDS, (int(x) for x in args.per_kind.split(","))))
    mix = Mixture(str(ensure_dataset(Path(args.data)) / "meta.json"))
    model_dir = write_model_dir(tempfile.mkdtemp(prefix="ivl-bench-model-"), "internlm2-chat", "internlm2")
    tokenizer = load_tokenizer(model_dir)
    tokenizer.model_max_length = MAX_LEN
    builder = SampleBuilder(tokenizer, ModelInfo.from_dir(model_dir), max_seq_length=MAX_LEN)
    transform = TileTransform(TILE)
    start, groups = 0, {}
    for name, size in mix.dataset_sizes().items():
        kind = name.split("_", 1)[1]
        groups[kind] = [(mix.read(i), mix.locate(i)[0]) for i in range(start, start + min(size, counts[kind]))]
        start += size
    for items in groups.values():  # warm the page cache and lazy imports for both sides
        for rec, entry in items[:3]:
            official_pixels(rec, entry.root_path), builder.build(rec, entry)
        for rec, entry in items:
            for p in [rec["image"]] if isinstance(rec.get("image"), str) else rec.get("image") or []:
                Path(entry.root_path, p).read_bytes()
    rows = []
    for threads in (int(x) for x in args.threads.split(",")):
        torch.set_num_threads(threads)
        set_num_threads(threads)
        for kind, items in groups.items():
            b_img, b_tok, o_img, o_tok, o_img2, same_ids, same_labels = measure(
                kind, items, builder, tokenizer, transform, args.repeats
            )
            n = len(items)
            rows.append(
                (
                    kind,
                    threads,
                    n,
                    n / b_img,
                    n / b_tok,
                    n / (b_img + b_tok),
                    n / o_img,
                    n / o_tok,
                    n / (o_img + o_tok),
                    (b_img + b_tok) / (o_img + o_tok),
                    same_ids,
                    same_labels,
                    n / (o_img2 + o_tok),
                )
            )
    cpu = args.clock == "cpu"
    header = (
        "kind",
        "thr",
        "n",
        "base img/s",
        "base tok/s",
        "base samples/s",
        "ours img/s",
        "ours tok/s",
        "ours samples/s",
        "ratio",
        "ids==",
        "labels==",
    ) + (("ours 2 idle cores, est. samples/s",) if cpu else ())
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for kind, thr, n, *nums, same_ids, same_labels, est in rows:
        cells = [kind, str(thr), str(n)] + [f"{x:.1f}" for x in nums[:-1]] + [f"{nums[-1]:.2f}x"]
        cells += [f"{same_ids}/{n}", f"{same_labels}/{n}"] + ([f"{est:.1f}"] if cpu else [])
        print("| " + " | ".join(cells) + " |")
    print(f"clock: {args.clock}; pixel values identical for every measured sample (asserted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
