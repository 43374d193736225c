"""Atomic file writes: a file is either its old self or wholly the new one, never half-written.

A save keeps what it replaces: it writes through a symlink to the link's target, gives the new
file the old one's mode (and owner, where permitted), and refuses to replace anything that is
not a regular file (a FIFO, a directory). It never touches the process umask: the temporary
file is created with mode 0o666, which the umask trims as it trims any new file.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_active: set[str] = set()       # temporary files this process is writing right now
_active_lock = threading.Lock()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file in the same directory.

    On leaving the block normally the file is flushed, fsynced and renamed over ``path``
    (an atomic replace on POSIX and Windows alike), then the directory entry is synced. If the
    block raises anything, KeyboardInterrupt included, the temporary file is removed and
    ``path`` is left exactly as it was. Temporary files of earlier writes of ``path`` that a
    killed process left behind (``.NAME.PID-XXXXXXXX.tmp``, PID no longer running) are removed.
    """
    target = writable_target(path)
    remove_stale_temporaries(target)
    old = _stat_or_none(target)
    named: list[str] = []      # the temporary file's name, known before the file exists
    try:
        # inside the try: an interrupt that lands just after the file is made still removes it
        fd = _create_temporary(target, named)
        tmp = named[-1]
        with os.fdopen(fd, "wb") as f:
            if old is not None:
                _keep_owner_and_mode(f.fileno(), old)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        for name in named:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
        raise
    finally:
        with _active_lock:
            _active.difference_update(named)
    _fsync_directory(target.parent)


def writable_target(path: str | os.PathLike) -> Path:
    """The file a save of ``path`` writes: the target of a symlink, followed. A ValueError if
    it cannot be one (an empty path, a FIFO, a directory, a name too long for the folder once
    the temporary file's prefix and suffix are added); FileNotFoundError or PermissionError
    naming the folder if it is missing or not writable. Checks only: nothing is created."""
    if os.fspath(path) in ("", b""):
        raise ValueError("expected a file name, got an empty path ''")
    target = Path(os.path.realpath(path))
    old = _stat_or_none(target)
    if old is not None and not stat.S_ISREG(old.st_mode):
        kind = "a directory" if stat.S_ISDIR(old.st_mode) else \
               "a FIFO" if stat.S_ISFIFO(old.st_mode) else "not a regular file"
        raise ValueError(f"{path}: refusing to replace it: it is {kind}, not a file")
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: the folder {folder} is not writable")
    _check_name_length(path, target)
    return target


def _check_name_length(path: str | os.PathLike, target: Path) -> None:
    """The temporary file's name (``.NAME.PID-XXXXXXXX.tmp``) must fit the folder's limit on a
    name's bytes, or the save would fail only after an epoch's work."""
    try:
        limit = os.pathconf(target.parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not knowable here (Windows): the usual 255
        limit = 255
    longest = len(os.fsencode(_temporary_name(target.name, "0" * 8)))
    if longest > limit:
        spare = longest - len(os.fsencode(target.name))
        raise ValueError(f"{path}: the name is {len(os.fsencode(target.name))} bytes, and a save "
                         f"writes it through a temporary file named .NAME.PID-XXXXXXXX.tmp of "
                         f"{longest} bytes, more than the folder allows ({limit}); use a name of "
                         f"at most {limit - spare} bytes")


def _temporary_name(name: str, token: str) -> str:
    return f".{name}.{os.getpid()}-{token}.tmp"


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporary files of ``target`` that no running writer owns; return them."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d+)-[0-9a-f]{{8}}\.tmp")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            match = pattern.fullmatch(entry.name)
            if match is None or _still_writing(int(match.group(1)), entry.path):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _still_writing(pid: int, tmp: str) -> bool:
    if pid == os.getpid():
        with _active_lock:
            return tmp in _active
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):  # alive under another user (EPERM), or not knowable
        return True
    return True


def _create_temporary(target: Path, named: list[str]) -> int:
    """A new file beside ``target`` named after it and this process, mode 0o666 & ~umask; its
    name is appended to ``named`` (and marked as being written) before the file is made."""
    while True:
        tmp = str(target.parent / _temporary_name(target.name, secrets.token_hex(4)))
        with _active_lock:
            _active.add(tmp)
        named.append(tmp)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                           0o666)
        except FileExistsError:
            named.pop()         # another writer's: not ours to remove
            with _active_lock:
                _active.discard(tmp)


def _keep_owner_and_mode(fd: int, old: os.stat_result) -> None:
    """Give the new file the replaced file's owner (where permitted) and mode."""
    if hasattr(os, "fchown"):  # only root may give a file away; its group may still work
        for uid in (old.st_uid, -1):
            with contextlib.suppress(OSError):
                os.fchown(fd, uid, old.st_gid)
                break
    if hasattr(os, "fchmod"):  # after chown, which may clear setuid bits
        os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable; not every platform can open a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
