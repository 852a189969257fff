"""``-`` as the META argument: the meta JSON comes from standard input (``ivl-data validate -``, ``stats -``).

Relative ``root`` and ``annotation`` paths resolve against the current folder, as the official loader resolves
them. The text is copied to a hidden temporary file in the current folder (so that the meta loader resolves as for
a meta file there), removed afterwards; findings and messages name it ``-``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from internvl_data.errors import UsageError

STDIN = "-"


@contextmanager
def materialized(path: str) -> Iterator[str]:
    """``path`` itself, or for ``-`` a temporary copy of standard input in the current folder."""
    if path != STDIN:
        yield path
        return
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("META is `-` but standard input is a terminal; pipe the meta JSON in: ... | ivl-data CMD -")
    data = sys.stdin.buffer.read()
    try:
        fd, tmp = tempfile.mkstemp(prefix=".ivl-stdin-", suffix=".json", dir=".")
    except OSError as exc:
        raise UsageError(f"META `-`: cannot write a temporary copy in the current folder: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield os.path.relpath(tmp)
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
