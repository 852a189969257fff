"""The trainer's data seam: cost of TrainDataset over SampleBuilder, and of the group_by_length lengths.

    python benchmarks/data_seam.py [--records 4000] [--repeats 3]

A tiny checkpoint with 448-pixel tiles (InternVL2 settings: thumbnail on, max_dynamic_patch 6 from the meta
file) and a mixture of text and single-image records (the fixture images, half with data_augment) in a temp
folder. (1) ms per sample: ``TrainDataset[i]`` (locate + read by byte offset + build + skip bookkeeping) vs
``SampleBuilder.build`` on the already parsed record, interleaved per record, fastest of ``--repeats``, so machine
load hits both alike. (2) lengths for group_by_length: every line's own ``length`` vs measured with the stats token
counter (records per second).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from internvl_data.pipeline.dataset import build_data, mixture_lengths  # noqa: E402
from internvl_train.tiny import write_tiny_checkpoint  # noqa: E402

IMAGES = ["photo_640x480.jpg", "street_900x500.jpg", "tall_300x1000.jpg", "square_448x448.jpg"]


def write_mixture(root: Path, n: int, with_length: bool) -> Path:
    shutil.copytree(REPO / "fixtures" / "valid" / "images", root / "images", dirs_exist_ok=True)
    rng = np.random.default_rng(0)
    words = "the a picture shows several coloured shapes on a plain background with some text".split()
    for name in ("text", "plain", "augmented"):
        with open(root / f"{name}.jsonl", "wb") as f:
            for k in range(n // 3):
                q = " ".join(rng.choice(words, 8 + k % 20))
                a = " ".join(rng.choice(words, 10 + k % 40))
                rec: dict = {"id": k, "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
                if name != "text":
                    rec["image"] = "images/" + IMAGES[k % len(IMAGES)]
                    rec["conversations"][0]["value"] = "<image>\n" + q
                if with_length:
                    rec["length"] = 100 + k
                f.write(orjson.dumps(rec) + b"\n")
    meta = {
        name: {"root": ".", "annotation": f"{name}.jsonl", "data_augment": name == "augmented", "repeat_time": 1}
        for name in ("text", "plain", "augmented")
    }
    meta["plain"]["max_dynamic_patch"] = meta["augmented"]["max_dynamic_patch"] = 6
    (root / "meta.json").write_text(json.dumps(meta))
    return root / "meta.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=4000)
    ap.add_argument("--samples", type=int, default=120, help="samples timed in (1)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        model = write_tiny_checkpoint(tmp_path / "ckpt", "qwen2", "300m", image_size=448)
        meta = write_mixture(tmp_path / "data", args.records, with_length=False)
        bundle = build_data(model, meta, overrides={"seed": 1})
        ds = bundle.dataset()
        step = max(1, len(ds) // args.samples)
        picks = list(range(0, len(ds), step))[: args.samples]
        records = [(bundle.mixture.read(i), bundle.mixture.locate(i)[0]) for i in picks]
        ours, direct = [], []
        for i, (rec, entry) in zip(picks, records):
            best_ours = best_direct = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                ds[i]
                t1 = time.perf_counter()
                bundle.builder.build(rec, entry, rng=bundle.mixture.rng_for(0, i))
                t2 = time.perf_counter()
                best_ours, best_direct = min(best_ours, t1 - t0), min(best_direct, t2 - t1)
            ours.append(best_ours)
            direct.append(best_direct)
        o, d = 1000 * sum(ours) / len(ours), 1000 * sum(direct) / len(direct)
        print(
            f"(1) {len(picks)} samples: TrainDataset[i] {o:.2f} ms, SampleBuilder.build {d:.2f} ms, ratio {o / d:.3f}"
        )

        t0 = time.perf_counter()
        measured, source = mixture_lengths(bundle)
        t_measured = time.perf_counter() - t0
        assert source == "measured"
        meta2 = write_mixture(tmp_path / "data2", args.records, with_length=True)
        bundle2 = build_data(model, meta2)
        t0 = time.perf_counter()
        given, source2 = mixture_lengths(bundle2)
        t_given = time.perf_counter() - t0
        assert source2 == "per-line length"
        n = len(measured)
        print(
            f"(2) lengths of {n} records: per-line `length` {t_given:.2f} s ({n / t_given:,.0f}/s), "
            f"measured {t_measured:.2f} s ({n / t_measured:,.0f}/s), ratio {t_measured / t_given:.1f}x"
        )


if __name__ == "__main__":
    main()
