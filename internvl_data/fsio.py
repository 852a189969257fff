"""The one way ivl-kit writes a file or folder it creates: atomically, with the user's umask, and without debris.

Every file we create (reports, manifests, caches, plots, rewritten annotation files, converted checkpoints) goes
through this module:

- :func:`write_atomic` (bytes or str) and :func:`atomic_file` (a context manager yielding a binary file object,
  for streamed writes) write a temporary file *in the destination folder*, ``fsync`` it, give it the mode a plain
  ``open()`` would (``0o666`` less the umask, or the mode of the file it replaces with ``keep_mode=True``) and
  ``os.replace`` it over the destination. Readers see the old file or the new one, never half of one.
- :func:`atomic_dir` does the same for a folder (a checkpoint): built under a temporary name beside the
  destination and renamed into place; an existing destination is swapped out and removed only after the rename.
- Every temporary path is named ``.<name>.<pid>-<random>.ivl-tmp`` (folders: ``...ivl-tmpdir``) and registered
  while it exists, so an exception, Ctrl-C or SIGTERM (see :func:`install_signal_handlers`) removes it. A SIGKILL
  cannot be caught: such leftovers are found next time (their pid is no longer running) and removed: every write
  first clears the leftovers named for its own destination, and :func:`sweep` clears a whole folder (``lengths``
  and ``convert`` call it on the folders they write to). Temporaries of older ivl-kit versions carry no pid, so they
  are reported, never removed (see :data:`LEGACY`). What was removed or found is kept as one-line notes
  (:func:`take_notes`) that :func:`internvl_data.cli.common.run_command` prints when the command ends.
- :func:`check_writable` checks an output location before the work starts, so a typo in ``-o`` fails in a
  second with a message naming the user's path, not after the whole run with the name of our temporary file.

Errors are :class:`~internvl_data.errors.OutputError` naming the user's destination (never the temporary file);
the original ``OSError`` is the ``__cause__``.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from internvl_data.errors import OutputError

TMP_SUFFIX = ".ivl-tmp"
TMPDIR_SUFFIX = ".ivl-tmpdir"
PAUSE_ENV = "IVL_TEST_PAUSE_BEFORE_RENAME"  # tests: seconds to sleep with the temporary complete, before the rename
_LEFTOVER = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.ivl-tmp(dir)?$")
_MKSTEMP = "[a-z0-9_]{8}"  # tempfile's random part
LEGACY = {  # temporaries of ivl-kit versions before this module (no pid: a run of them may still be going on)
    "a temporary file": re.compile(rf"^\..+\.{_MKSTEMP}\.(ivl-)?tmp$"),  # reports, manifests, lengths' files
    "a scratch folder of `ivl-data lengths`": re.compile(rf"^\.ivl-lengths-{_MKSTEMP}$"),
    "a half-written checkpoint of `ivl-train convert`": re.compile(r"^\..+\.tmp-[0-9a-f]{8}$"),
    "the previous checkpoint that `ivl-train convert` was replacing": re.compile(r"^\..+\.old-[0-9a-f]{8}$"),
}
_live: set[Path] = set()  # temporary paths of this process that exist right now
_notes: dict[str, None] = {}  # what this process removed or found (ordered, each once)
_lock = threading.Lock()


def umask() -> int:
    """The process umask, read without changing it where the system allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _lock:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 less the umask."""
    return 0o666 & ~umask()


def temp_path(dest: str | os.PathLike, folder: bool = False) -> Path:
    """A fresh temporary name beside ``dest`` (same folder, so the final rename stays on one file system)."""
    dest = Path(dest)
    suffix = TMPDIR_SUFFIX if folder else TMP_SUFFIX
    return dest.parent / f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}"


def _register(path: Path) -> None:
    with _lock:
        _live.add(path)


def _forget(path: Path) -> None:
    with _lock:
        _live.discard(path)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass
    _forget(path)


def cleanup() -> None:
    """Remove every temporary path this process still has (called on signals and at exit)."""
    with _lock:
        paths = list(_live)
    for p in paths:
        _remove(p)


def _pause() -> None:
    seconds = os.environ.get(PAUSE_ENV)
    if seconds:
        import time

        time.sleep(float(seconds))


def output_error(action: str, dest: Path, exc: OSError) -> OutputError:
    """The one-line :class:`OutputError` for a failed write: names the user's ``dest`` and the fix."""
    reason = exc.strerror or str(exc)
    fix = {
        errno.ENOSPC: "; free some space or write elsewhere",
        errno.EDQUOT: "; free some space or write elsewhere",
        errno.EACCES: "; choose a folder you can write to",
        errno.EPERM: "; choose a folder you can write to",
        errno.EROFS: "; the file system is read-only, write elsewhere",
        errno.ENOENT: "; create the folder first or fix the path",
    }.get(exc.errno or 0, "")
    return OutputError(f"cannot {action} {dest}: {reason}{fix}")


@contextmanager
def atomic_file(
    path: str | os.PathLike, *, keep_mode: bool = False, before_replace: Callable[[], None] | None = None
) -> Iterator[BinaryIO]:
    """Yield a binary file object; when the block ends normally its bytes replace ``path`` in one rename.

    The temporary file lives beside ``path`` and is removed on any exception (including KeyboardInterrupt and the
    SIGTERM of :func:`install_signal_handlers`). The new file gets ``0o666 & ~umask`` or, with ``keep_mode``, the
    mode of the file it replaces. Raises :class:`OutputError` naming ``path`` when the folder is missing or not
    writable or the disk is full. ``before_replace`` runs with the new bytes complete on disk, just before the
    rename (``lengths`` keeps the ``.bak`` there). Use for streamed writes; :func:`write_atomic` for bytes.
    """
    dest = Path(path)
    sweep(dest.parent, dest.name)  # a killed run's temporaries for this destination
    tmp = temp_path(dest)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise output_error("write", dest, exc) from exc
    _register(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
            mode = file_mode()
            if keep_mode:
                try:
                    mode = os.stat(dest).st_mode & 0o7777
                except OSError:
                    pass
            os.fchmod(fh.fileno(), mode)
        _pause()
        if before_replace is not None:
            before_replace()
        os.replace(tmp, dest)
        _forget(tmp)
    except OSError as exc:
        _remove(tmp)
        raise output_error("write", dest, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


def write_atomic(path: str | os.PathLike, data: bytes | str, *, keep_mode: bool = False) -> None:
    """Write ``data`` (str is UTF-8 encoded) to ``path`` atomically: see :func:`atomic_file`."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_file(path, keep_mode=keep_mode) as fh:
        fh.write(raw)


@contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; when the block ends normally it becomes ``path``.

    An existing ``path`` is renamed aside first and removed only after the new folder is in place (on a failed
    rename it is put back). On any exception the temporary folder is removed and ``path`` is untouched. Callers
    decide beforehand whether replacing ``path`` is allowed (``ivl-train convert`` refuses a folder that is not a
    checkpoint). On success every folder and file inside gets the mode the user's umask gives (some libraries
    write 0600 files).
    """
    dest = Path(path)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep(dest.parent, dest.name)  # a killed run's temporaries for this destination
        tmp = temp_path(dest, folder=True)
        tmp.mkdir()
    except OSError as exc:
        raise output_error("write", dest, exc) from exc
    _register(tmp)
    try:
        yield tmp
        _apply_umask(tmp)
        _pause()
        old = None
        if dest.exists() or dest.is_symlink():
            old = temp_path(dest, folder=True)
            _register(old)  # from here on, a signal removes the old copy only after it is restored below
            os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except BaseException:
            if old is not None:
                os.rename(old, dest)
                _forget(old)
            raise
        _forget(tmp)
        if old is not None:
            _remove(old)
    except OSError as exc:
        _remove(tmp)
        raise output_error("write", dest, exc) from exc
    except BaseException:
        _remove(tmp)
        raise


def _apply_umask(folder: Path) -> None:
    """Give a folder we built the modes a plain ``mkdir``/``open`` would (libraries write some files 0600)."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                os.chmod(p, 0o666 & ~mask)


@contextmanager
def temp_dir(beside: str | os.PathLike) -> Iterator[Path]:
    """A scratch folder beside ``beside`` (named like our other temporaries), removed on every exit path."""
    sweep(Path(beside).parent, Path(beside).name)  # a killed run's scratch folder
    tmp = temp_path(Path(beside), folder=True)
    try:
        tmp.mkdir(parents=False)
    except OSError as exc:
        raise output_error("write in", Path(beside).parent, exc) from exc
    _register(tmp)
    try:
        yield tmp
    finally:
        _remove(tmp)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _names(folder: str | os.PathLike, dest_name: str | None) -> list[str]:
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    if dest_name is not None:
        names = [n for n in names if n.startswith(f".{dest_name}.")]
    return names


def _scan(folder: str | os.PathLike, dest_name: str | None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """One listing of ``folder``: (our temporaries whose process no longer runs, [(an older version's temporary,
    what it is)]), only those for the destination ``dest_name`` when given."""
    ours: list[Path] = []
    legacy: list[tuple[Path, str]] = []
    for name in _names(folder, dest_name):
        m = _LEFTOVER.match(name)
        if m:
            if not _alive(int(m.group(1))):
                ours.append(Path(folder) / name)
        elif (what := next((w for w, pattern in LEGACY.items() if pattern.match(name)), None)) is not None:
            legacy.append((Path(folder) / name, what))
    return sorted(ours), sorted(legacy)


def leftovers(folder: str | os.PathLike, dest_name: str | None = None) -> list[Path]:
    """Temporary files and folders in ``folder`` left by an ivl-kit process that is no longer running (only those
    for the destination ``dest_name`` when given)."""
    return _scan(folder, dest_name)[0]


def sweep(folder: str | os.PathLike, dest_name: str | None = None) -> list[Path]:
    """Remove :func:`leftovers` in ``folder`` (a killed run's debris; only those for ``dest_name`` when given) and
    note each (``removed PATH, left by an interrupted run``); note an older version's temporaries (:data:`LEGACY`)
    without removing them. Returns what was removed. A leftover that cannot be removed (read-only folder) is left
    and not noted."""
    ours, legacy = _scan(folder, dest_name)
    removed = []
    for p in ours:
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError:
            continue
        removed.append(p)
        note(f"removed {p}, left by an interrupted run")
    for p, what in legacy:
        note(
            f"found {p}, {what} left by an interrupted run of an older ivl-kit; it names no process, so it is not "
            "removed: check it and delete it once no older ivl-kit runs on this folder"
        )
    return removed


def note(text: str) -> None:
    """Keep a one-line note for the end of the command (each text once)."""
    with _lock:
        _notes[text] = None


def take_notes() -> list[str]:
    """The notes so far, in order; forgets them."""
    with _lock:
        out = list(_notes)
        _notes.clear()
    return out


def check_writable(path: str | os.PathLike, *, folder: bool = False) -> None:
    """Fail now (:class:`OutputError`) when ``path`` cannot be written later: its folder missing or read-only,
    ``path`` a directory (for a file) or a file (for a folder). Creates nothing."""
    dest = Path(path)
    if folder:
        if dest.exists() and not dest.is_dir():
            raise OutputError(f"cannot write into {dest}: it is a file, not a folder")
        probe = dest if dest.is_dir() else _existing_parent(dest)
    else:
        if dest.is_dir():
            raise OutputError(f"cannot write {dest}: it is a folder; name a file")
        if not dest.parent.is_dir():
            raise OutputError(f"cannot write {dest}: folder {dest.parent} does not exist; create it or fix the path")
        probe = dest.parent
    try:
        read_only = bool(os.statvfs(probe).f_flag & getattr(os, "ST_RDONLY", 1))
    except OSError:
        read_only = False
    if read_only:
        raise OutputError(f"cannot write {dest}: {probe} is on a read-only file system; write elsewhere")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {dest}: folder {probe} is not writable; choose a folder you can write to")


def _existing_parent(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


# -- signals ---------------------------------------------------------------------------------------------------


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so every ``finally`` and ``except BaseException`` runs (temporary
    files removed, workers stopped); the dispatcher turns it into exit 128 + signal number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    if _holding:
        _held.append(signum)  # acted on when the signals_deferred() block ends
        return
    _raise_for(signum)


def _raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


_holding = False  # a signals_deferred() block runs
_held: list[int] = []  # the signals it received


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM/SIGHUP (with :func:`install_signal_handlers`' handlers) until the block ends, then
    raise for the first one received. For native code that cannot take an exception raised inside it (torch's C++
    import path aborts the process). Nests; a no-op outside the main thread."""
    global _holding
    if threading.current_thread() is not threading.main_thread() or _holding:
        yield
        return
    _holding = True
    try:
        yield
    finally:
        _holding = False
        received = _held[:1]
        _held.clear()
    if received:
        _raise_for(received[0])


def _on_unraisable(args: sys.UnraisableHookArgs) -> None:
    """Python swallows an exception raised inside a finalizer (``__del__``, a weakref callback such as
    ``weakref.finalize``, a generator closed when collected) and the command would run on. When that exception is
    one our signal handler raised, the signal is sent again 50 ms later from another thread, so the handler runs
    once the finalizer has returned; any other exception goes to the previous hook (which prints it)."""
    exc = args.exc_value
    if isinstance(exc, Terminated):
        signum = exc.signum
    elif isinstance(exc, KeyboardInterrupt):
        signum = signal.SIGINT
    else:
        _previous_unraisablehook(args)
        return
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signum))
    timer.daemon = True  # never holds the exit up
    _resends.append(timer)
    timer.start()


def cancel_resends() -> None:
    """The command is stopping already: a signal still to be re-sent (:func:`_on_unraisable`) is not needed."""
    while _resends:
        _resends.pop().cancel()


_resends: list[threading.Timer] = []


_previous_unraisablehook = sys.unraisablehook


def install_signal_handlers() -> dict[int, object]:
    """SIGINT raises KeyboardInterrupt and SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (the CLI
    dispatchers call this), also when it arrives inside a finalizer (:func:`_on_unraisable`); returns the previous
    handlers for :func:`restore_signal_handlers`."""
    global _previous_unraisablehook
    old: dict[int, object] = {}
    if threading.current_thread() is not threading.main_thread():
        return old
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None:
            old[sig] = signal.signal(sig, _on_signal)
    if sys.unraisablehook is not _on_unraisable:
        _previous_unraisablehook, sys.unraisablehook = sys.unraisablehook, _on_unraisable
    return old


def restore_signal_handlers(old: dict[int, object]) -> None:
    for sig, handler in old.items():
        if signal.getsignal(sig) is signal.SIG_IGN:  # the command chose to ignore it while stopping: keep that
            continue
        signal.signal(sig, handler)  # type: ignore[arg-type]
    if old and sys.unraisablehook is _on_unraisable:
        sys.unraisablehook = _previous_unraisablehook


# -- inputs ----------------------------------------------------------------------------------------------------


def check_input_file(path: str | os.PathLike, what: str = "the meta JSON file") -> None:
    """Raise :class:`~internvl_data.errors.UsageError` unless ``path`` is a regular file (or a link to one).

    One answer for every command: a FIFO (which would block forever without a writer), process substitution
    (``<(cat meta.json)``: relative paths inside resolve against ``/dev/fd``, and the manifest cannot hash it), a
    folder or a device is refused before anything is opened.
    """
    import stat

    from internvl_data.errors import UsageError

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file; pass {what}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot access: {exc.strerror or exc}") from None
    if stat.S_ISREG(st.st_mode):
        return
    kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO or pipe" if stat.S_ISFIFO(st.st_mode) else "a device"
    raise UsageError(f"{path}: is {kind}, not a regular file; save {what} to a file and pass its path")
