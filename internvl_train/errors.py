"""The error base class of ``internvl_train`` (``ivl-train`` turns it into one line and its ``exit_code``).

Every exception the package raises on purpose derives from :class:`IvlTrainError`; the command line maps it in
``internvl_data.cli.common.run_command`` (the one place for both packages). Exit 2: nothing could be done (a
checkpoint that cannot be read, an output that may not be replaced); 1: the input was read and is wrong.
"""

from __future__ import annotations


class IvlTrainError(Exception):
    """Base of every deliberate ``internvl_train`` error; ``exit_code`` is the CLI's exit status for it."""

    exit_code = 2


class CheckpointError(IvlTrainError):
    """A checkpoint that cannot be read or written; the message names the file and the fix."""
