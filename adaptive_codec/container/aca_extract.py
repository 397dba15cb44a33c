"""Writing extracted members under a target folder without escaping or clobbering it.

docs/FORMAT.md 3.7 is the rule. Every target is planned and checked before
the first write (:func:`check_targets`): names that collide once mapped to
``.wav``, a member that is also another's folder, existing files (without
``force``), symbolic links and non-folders on the way. The writes then walk
the tree with directory file descriptors (``os.open`` with ``dir_fd`` and
``O_NOFOLLOW``), never by path name, so a symbolic link swapped in by
another process after the checks cannot redirect a write: each file is
produced in a private folder (mode 0700) beside its target and renamed into
place relative to the folder's descriptor (a rename replaces a symbolic link,
it never follows one).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Sequence
from pathlib import Path

from adaptive_codec.errors import AdaptiveCodecError

__all__ = ["ExtractError", "TargetFolder", "check_targets", "write_bytes"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_SCRATCH_NAME = "member"  # the file's name inside the private folder (short: any target name fits)


class ExtractError(AdaptiveCodecError):
    """Extraction refused: the target exists (without ``force``) or would escape the target directory."""


def _open_dir(parent_fd: int, name: str, shown: str, create: bool) -> int | None:
    """Descriptor of folder ``name`` in ``parent_fd`` (created if asked); None if missing."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            kind = "a symbolic link" if _is_link(parent_fd, name) else "not a directory"
            raise ExtractError(f"refusing to extract into {shown}: it is {kind}") from None
        raise
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o777, dir_fd=parent_fd)
    return _open_dir(parent_fd, name, shown, create=False)


def _is_link(parent_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


class TargetFolder:
    """The extraction root, held open by descriptor; members are written relative to it.

    Parameters
    ----------
    path : path
        Created if missing (the user's own folder: a symbolic link here is followed).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(os.path.realpath(path))
        self.path.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "TargetFolder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _walk(self, parts: Sequence[str], create: bool) -> int | None:
        """Descriptor of the folder ``parts`` below the root (the caller closes it); None if missing."""
        fd = os.dup(self.fd)
        for i, part in enumerate(parts):
            try:
                nxt = _open_dir(fd, part, str(self.path.joinpath(*parts[: i + 1])), create)
            finally:
                os.close(fd)
            if nxt is None:
                return None
            fd = nxt
        return fd

    def check(self, rel: str, force: bool) -> None:
        """Refuse ``rel`` if a folder on its way is a link or a file, or it exists (without ``force``)."""
        parts = rel.split("/")
        fd = self._walk(parts[:-1], create=False)
        if fd is None:
            return
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        finally:
            os.close(fd)
        target = self.path / rel
        if stat.S_ISDIR(st.st_mode):
            raise ExtractError(f"refusing to extract {rel!r}: {target} is a directory")
        if not force:
            raise ExtractError(f"{target} already exists (use --force to overwrite)")

    def write(self, rel: str, produce: Callable[[str], None]) -> Path:
        """Create ``rel`` through ``produce(path)``, which writes a new file at ``path``; return the target.

        ``path`` lies in a private folder next to the target; the finished
        file is renamed over the target relative to its folder's descriptor.
        """
        parts = rel.split("/")
        fd = self._walk(parts[:-1], create=True)
        assert fd is not None
        scratch = f".aca-{secrets.token_hex(6)}.tmp"
        # The scratch file keeps the target's suffix: audio writers pick the container by it.
        scratch_file = _SCRATCH_NAME + os.path.splitext(parts[-1])[1][:16]
        try:
            os.mkdir(scratch, 0o700, dir_fd=fd)
            sfd = os.open(scratch, _DIR_FLAGS, dir_fd=fd)
            try:
                proc = f"/proc/self/fd/{sfd}"
                base = proc if os.path.isdir(proc) else str(self.path.joinpath(*parts[:-1], scratch))
                scratch_path = os.path.join(base, scratch_file)
                try:
                    produce(scratch_path)
                except AdaptiveCodecError as exc:  # name the target, not the scratch file
                    exc.args = tuple(str(a).replace(scratch_path, str(self.path / rel)) for a in exc.args)
                    raise
                os.rename(scratch_file, parts[-1], src_dir_fd=sfd, dst_dir_fd=fd)
            finally:
                for name in os.listdir(sfd):  # what a failed produce left
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=sfd)
                os.close(sfd)
                with contextlib.suppress(OSError):
                    os.rmdir(scratch, dir_fd=fd)
            with contextlib.suppress(OSError):
                os.fsync(fd)
        except IsADirectoryError:
            raise ExtractError(f"refusing to extract {rel!r}: {self.path / rel} is a directory") from None
        except OSError as exc:  # name the user's file, not the scratch one
            raise OSError(exc.errno, exc.strerror or str(exc), str(self.path / rel)) from exc
        except AdaptiveCodecError:
            if _disk_full(fd):  # libsndfile says "System error." for a full disk
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path / rel)) from None
            raise
        finally:
            os.close(fd)
        return self.path / rel


def _disk_full(fd: int) -> bool:
    try:
        st = os.statvfs(fd)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 20)


def check_targets(folder: TargetFolder, targets: Sequence[str], force: bool) -> None:
    """Check every target of an extraction before the first write (see :meth:`TargetFolder.check`)."""
    for rel in targets:
        folder.check(rel, force)


def write_bytes(data: bytes) -> Callable[[str], None]:
    """A ``produce`` function for :meth:`TargetFolder.write` that writes ``data`` (and fsyncs it)."""

    def produce(path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return produce
