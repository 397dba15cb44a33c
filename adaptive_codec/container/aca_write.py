"""Writing an ``.aca`` archive so that concurrent writers cannot lose each other's work.

docs/FORMAT.md 3.8 is the rule. Every write goes to a temporary sibling
(``.NAME.XXXXXXXX.tmp``, locked with ``flock`` while it is written) and is
published at the end:

* a new archive with :func:`os.link` (fails if the name appeared meanwhile:
  two ``create`` without ``--force`` cannot both succeed);
* a replacement (``append``, ``create --force``) with :func:`os.replace`,
  only while holding an exclusive ``flock`` on the archive being replaced,
  taken before its bytes are read and checked to still be the file under the
  name. A second writer meets the lock and stops with
  :class:`ArchiveBusyError`; one that locked an inode already replaced sees
  the name moved on and retries on the new file.

A killed writer leaves its temporary file behind (never a partial archive);
:func:`leftover_temp_files` finds those next to an archive (unlocked, so no
process is writing them), and salvage recovers their members.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from adaptive_codec.errors import AdaptiveCodecError

__all__ = ["ArchiveBusyError", "ArchiveExistsError", "ArchiveTarget", "archive_writer", "temp_prefix",
           "leftover_temp_files"]

_TEMP_NAME_CHARS = 200  # of the archive's name in its temp name: stays under 255 bytes
_LOCK_RETRIES = 8  # a name replaced between open and lock again and again: give up


class ArchiveBusyError(AdaptiveCodecError):
    """Another process holds the archive's write lock (``append``, ``create --force``)."""


class ArchiveExistsError(AdaptiveCodecError):
    """A new archive's name was taken (by another process) before it could be published."""


@dataclass
class ArchiveTarget:
    """The archive being written: its path and, when one is replaced, the locked old file."""

    path: Path
    old_fd: int | None  # the replaced archive, opened and locked; None for a new archive


def temp_prefix(path: Path) -> str:
    """Start of the temporary files' names of the archive ``path`` (``.NAME.``)."""
    return f".{path.name[:_TEMP_NAME_CHARS]}."


def _lock_existing(path: Path) -> int | None:
    """Open ``path`` and take its exclusive write lock; None if it does not exist."""
    for _ in range(_LOCK_RETRIES):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ArchiveBusyError(f"{path}: archive is being written by another process") from None
        except OSError:
            os.close(fd)  # a file system without flock: no lock, as before
            raise
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        mine = os.fstat(fd)
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)  # replaced while we waited for the lock: lock the new file
    raise ArchiveBusyError(f"{path}: archive keeps being replaced by another process")


def _publish_new(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ArchiveExistsError(f"{path} already exists (another process created it meanwhile; "
                                 "use --force to overwrite)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        # No hard links here (FAT, some network file systems): the best we can do.
        if os.path.lexists(path):
            raise ArchiveExistsError(f"{path} already exists (use --force to overwrite)") from None
        os.rename(tmp, path)
        return
    os.unlink(tmp)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # best effort: not every system allows it
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


@contextlib.contextmanager
def archive_writer(path: str | os.PathLike, *, replace: bool, must_exist: bool = False
                   ) -> Iterator[tuple[BinaryIO, ArchiveTarget]]:
    """Open a locked temporary sibling of ``path``; publish it over ``path`` on success.

    Parameters
    ----------
    path : path
        The archive.
    replace : bool
        Allow replacing an existing archive (under its lock). False: the
        archive must not exist when the write is published.
    must_exist : bool
        ``append``: the archive must exist (and is locked for the whole write).

    Yields
    ------
    (file object, ArchiveTarget)
        Write the new archive to the file object; read the old one (if any)
        from ``ArchiveTarget.path`` while the lock is held.

    Raises
    ------
    ArchiveBusyError, ArchiveExistsError
        Another process is writing the archive, or created it meanwhile.
    OSError
        Naming the archive (not the temporary file), e.g. "No space left on device".
    """
    path = Path(path)
    old_fd = _lock_existing(path) if (replace or must_exist) else None
    if old_fd is None and must_exist:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if old_fd is None and not replace and os.path.lexists(path):
        raise ArchiveExistsError(f"{path} already exists (use --force to overwrite)")
    folder = path.parent if str(path.parent) else Path(".")
    tmp = folder / f"{temp_prefix(path)}{secrets.token_hex(4)}.tmp"
    published = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # live, not left over (leftover_temp_files)
            with os.fdopen(fd, "wb") as fh:
                fd = -1
                yield fh, ArchiveTarget(path, old_fd)
                fh.flush()
                os.fsync(fh.fileno())
                if old_fd is not None:
                    os.replace(tmp, path)  # we hold the lock of the file under this name
                else:
                    _publish_new(tmp, path)
                published = True
        finally:
            if fd >= 0:
                os.close(fd)
    except OSError as exc:
        if exc.filename in (str(tmp), tmp) or exc.filename is None:
            # Say which archive could not be written, not which temporary file.
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        if not published:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if old_fd is not None:
            os.close(old_fd)
    _fsync_folder(folder)


def leftover_temp_files(path: str | os.PathLike) -> list[tuple[Path, bool]]:
    """Temporary files of the archive ``path`` in its folder: ``(file, being written now)``.

    A temporary file nobody holds the lock of is left over from an
    interrupted write; ``archive extract --salvage`` recovers its members.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    prefix = temp_prefix(path)
    out = []
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(".tmp"))
    except OSError:
        return []
    for name in names:
        try:
            fd = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            busy = False
        except BlockingIOError:
            busy = True
        except OSError:
            busy = False
        finally:
            os.close(fd)
        out.append((folder / name, busy))
    return out
