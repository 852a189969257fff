"""The one exception the checkpoint bridge raises for unusable input (the CLI turns it into exit 2)."""

from __future__ import annotations


class CheckpointError(Exception):
    """A checkpoint that cannot be read or written; the message names the file and the fix."""
