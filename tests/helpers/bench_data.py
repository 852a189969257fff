"""Records written by the shared benchmark generator (../shared/bench/make_dataset.py), for contract tests."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
MAKE_DATASET = Path(os.environ.get("IVL_MAKE_DATASET", _REPO.parent / "shared" / "bench" / "make_dataset.py"))


def write_bench_lines(out: Path, n: int, seed: int = 0) -> Path | None:
    """Write ``n`` mixed make_dataset.py records under ``out``; None when the generator is not available."""
    if not MAKE_DATASET.is_file():
        return None
    spec = importlib.util.spec_from_file_location("make_dataset", MAKE_DATASET)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return Path(mod.write_lines(str(out), n, seed, 6))
