"""The one error base class of ``internvl_data``, and the exit code each kind of error means.

Every exception the package raises on purpose derives from :class:`IvlDataError`; its message is one line (or a
few ``path:line: ...`` lines) naming the user's file and the fix, and its ``exit_code`` is what the command line
exits with (``internvl_data.cli.common.run_command`` is the one place that prints it):

- 1 (:class:`DataError`): the data was checked and has problems (a meta file that is not JSON, a dataset entry
  that is not an object): the user fixes the data.
- 2 (:class:`UsageError`, :class:`OutputError`, :class:`ModelSetupError`): nothing could be checked: a bad
  option, a missing or unreadable input, an output location that cannot be written, a checkpoint or template
  that cannot be used.

Library code raises these and never prints or exits; only the CLI maps them to messages and codes.
"""

from __future__ import annotations


class IvlDataError(Exception):
    """Base of every deliberate ``internvl_data`` error; ``exit_code`` is the CLI's exit status for it."""

    exit_code = 2

    def __init__(self, message: str = "", *, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.exit_code = code


class UsageError(IvlDataError):
    """A bad invocation or unusable input (exit 2; pass ``code=1`` for problems found in the user's data)."""

    @property
    def code(self) -> int:  # the name the stats/lengths commands used before the common base
        return self.exit_code


class DataError(IvlDataError):
    """The input was read and is wrong (exit 1): the message lists ``path:line: problem`` lines."""

    exit_code = 1


class OutputError(IvlDataError, OSError):
    """An output file or folder cannot be written (exit 2); names the user's path, never a temporary file."""


class ModelSetupError(IvlDataError):
    """A ``--model`` checkpoint, its tokenizer or the ``--template`` cannot be used (exit 2)."""
