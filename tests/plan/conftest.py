"""Fixtures of the planner tests."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
