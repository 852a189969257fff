"""The one place where an error becomes an exit code and a one-line message (``ivl-data`` and ``ivl-train``).

Exit codes: 0 clean; 1 the data was checked and has problems (:class:`~internvl_data.errors.DataError`, findings);
2 nothing could be checked (a usage error, a missing input, an output that cannot be written, an unusable model,
a missing extra, an internal error); 130 Ctrl-C; 128 + N another signal N (SIGTERM: 143). Library code raises
(``IvlDataError``, ``IvlTrainError``) and never prints or exits; commands return their own 0/1 and leave every
other outcome to :func:`run_command`. No traceback reaches the user unless ``IVL_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from internvl_data.errors import IvlDataError

DISTRIBUTION = "ivl-kit"  # what `pip install` names (the extras come from its metadata)
INTERRUPTED = 130


def message(prog: str, command: str | None, exc: BaseException) -> tuple[int, str]:
    """``(exit code, text for stderr)`` for an exception that reached the command line."""
    from internvl_data.fsio import Terminated

    where = f"{prog} {command}" if command else prog
    if isinstance(exc, Terminated):
        return 128 + exc.signum, f"{where}: stopped by signal {exc.signum}; nothing was left half-written"
    if isinstance(exc, KeyboardInterrupt):
        return INTERRUPTED, f"{where}: interrupted"
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int) and _ours(exc):
        text = str(exc)
        if code == 1 and text.split(":", 1)[0] and _is_located(text):
            return code, text  # `path:line: problem` lines speak for themselves
        return code, f"{where}: error: {text}"
    if isinstance(exc, ModuleNotFoundError):
        extra = _extra_of(exc.name)
        if extra:
            return 2, (
                f"{where}: {exc.name} is not installed; install the {extra} extra: pip install '{DISTRIBUTION}[{extra}]'"
            )
    if isinstance(exc, MemoryError):
        return 2, f"{where}: error: out of memory; use fewer --jobs or a machine with more memory"
    if isinstance(exc, OSError) and exc.filename and ".ivl-tmp" not in str(exc.filename):
        verb = "write" if exc.errno in _WRITE_ERRNOS else "access"
        return 2, f"{where}: error: cannot {verb} {exc.filename}: {exc.strerror or exc}"
    return 2, f"{prog}: internal error: {type(exc).__name__}: {exc} (set IVL_DEBUG=1 for the traceback)"


_WRITE_ERRNOS = (28, 30, 122)  # ENOSPC, EROFS, EDQUOT


def _ours(exc: BaseException) -> bool:
    return isinstance(exc, IvlDataError) or type(exc).__module__.split(".")[0] in ("internvl_data", "internvl_train")


def _is_located(text: str) -> bool:
    import re

    return all(re.match(r"^.+:\d+: ", line) for line in text.splitlines() if line)


def run_command(prog: str, command: str | None, body: Callable[[argparse.Namespace], int], args) -> int:
    """Run one command: SIGTERM/SIGHUP stop it like Ctrl-C (temporary files removed), every error -> code."""
    from internvl_data import fsio

    previous = fsio.install_signal_handlers()
    fsio.take_notes()  # the notes printed at the end are this command's (library calls before it keep none)
    try:
        return int(body(args))
    except BrokenPipeError:  # `ivl-data ... | head`
        _silence_stdout()
        return 0
    except BaseException as exc:  # the one place that turns every exception into an exit code
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, KeyboardInterrupt):
            fsio.cancel_resends()
            _ignore_further_interrupts()
        fsio.cleanup()
        if os.environ.get("IVL_DEBUG") and not isinstance(exc, KeyboardInterrupt):
            import traceback

            traceback.print_exc()
        code, text = message(prog, command, exc)
        try:
            print(text, file=sys.stderr)
        except (OSError, ValueError):
            pass
        return code
    finally:
        fsio.restore_signal_handlers(previous)
        for note in fsio.take_notes():  # leftovers of killed runs removed or found (fsio.sweep)
            try:
                print(f"{prog} {command}: {note}" if command else f"{prog}: {note}", file=sys.stderr)
            except (OSError, ValueError):
                pass


def _ignore_further_interrupts() -> None:
    """The command is already stopping: a second Ctrl-C (a terminal delivers one to the whole process group, pool
    shutdown included) must not turn the documented exit code into a death by signal."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _extra_of(module: str | None) -> str | None:
    """The extra of this distribution that installs ``module`` (read from its metadata), or None: a module that no
    extra provides is a broken install, reported as an internal error."""
    import re
    from importlib import metadata

    if not module:
        return None
    try:
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        return None
    extras: dict[str, str] = {}  # normalised requirement name -> extra, 'transformers<6,>=5; extra == "model"'
    for req in requires:
        found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*).*;\s*extra\s*==\s*[\"'](\w+)[\"']", req)
        if found:
            extras.setdefault(re.sub(r"[-_.]+", "-", found[1]).lower(), found[2])
    top = module.partition(".")[0]
    if (extra := extras.get(re.sub(r"[-_.]+", "-", top).lower())) is not None:
        return extra
    # an import name that is not its distribution's name (google -> protobuf); slow, so only now
    return next(
        (extras[d.lower()] for d in metadata.packages_distributions().get(top, ()) if d.lower() in extras), None
    )
