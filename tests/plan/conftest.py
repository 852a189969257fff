"""Fixtures of the planner tests: transformers' warnings off."""

from __future__ import annotations

from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
