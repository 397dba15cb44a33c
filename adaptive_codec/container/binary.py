"""Small binary primitives shared by the ``.acx`` and ``.aca`` formats.

* :class:`Reader` reads little-endian fields (and LEB128 varints) from an in-memory buffer whose
  size was already bounded by the caller; every read checks the remaining
  length first, so a hostile length field can never make us allocate more
  than the buffer we already hold.
* :class:`Writer` is the mirror image.
* Field layouts are plain lists of ``(name, type)`` so that docs/FORMAT.md's
  field tables can be checked against the code (tests/test_format_doc.py).
* :func:`atomic_write` writes a file through a temporary sibling and renames it.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Sequence

from adaptive_codec.errors import FormatError

Layout = Sequence[tuple[str, str]]

# type name -> (struct code, size in bytes); strN = uintN byte length + UTF-8,
# vstr = varint byte length + UTF-8; varint = unsigned LEB128, minimal, <= 10 bytes.
_SCALARS = {
    "u8": ("<B", 1),
    "u16": ("<H", 2),
    "u32": ("<I", 4),
    "u64": ("<Q", 8),
    "f32": ("<f", 4),
    "f64": ("<d", 8),
}
_STRINGS = {"str8": "u8", "str16": "u16", "str32": "u32", "vstr": "varint"}
MAX_VARINT_BYTES = 10  # enough for any u64
_MAX_JSON_DEPTH = 16


def crc32(*parts: bytes) -> int:
    """CRC-32 (zlib / ISO-HDLC polynomial) of the concatenated parts."""
    value = 0
    for part in parts:
        value = zlib.crc32(part, value)
    return value & 0xFFFFFFFF


def varint_bytes(value: int) -> bytes:
    """Unsigned LEB128 encoding of ``0 <= value < 2**64`` (7 bits per byte, low bits first)."""
    if not 0 <= value < 1 << 64:
        raise FormatError(f"cannot write {value} as a varint (needs 0..2**64-1)")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def parse_varint(read_byte, where: str, what: str) -> int:
    """Decode a varint from ``read_byte()`` (returns an int 0..255, or None at end of data).

    Rejects encodings longer than 10 bytes, values of 2**64 or more and
    non-minimal encodings (a final 0x00 byte after others), so every value has
    exactly one byte form and CRCs cover canonical bytes.
    """
    value = 0
    for i in range(MAX_VARINT_BYTES):
        byte = read_byte()
        if byte is None:
            raise FormatError(f"{where}: truncated {what} (varint)")
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise FormatError(f"{where}: {what} is a non-minimal varint")
            if value >= 1 << 64:
                raise FormatError(f"{where}: {what} varint exceeds 64 bits")
            return value
    raise FormatError(f"{where}: {what} varint is longer than {MAX_VARINT_BYTES} bytes")


def fixed_size(layout: Layout) -> int:
    """Size in bytes of a layout made only of fixed-size fields."""
    total = 0
    for _name, kind in layout:
        total += _field_size(kind)
    return total


def _field_size(kind: str) -> int:
    if kind in _SCALARS:
        return _SCALARS[kind][1]
    if kind.startswith("bytes"):
        return int(kind[5:])
    raise ValueError(f"field type {kind!r} has no fixed size")


class Reader:
    """Bounded little-endian reader over bytes.

    Parameters
    ----------
    buf : bytes
    where : str
        What is being read (e.g. ``"HEAD chunk at byte 8"``), used in error messages.
    """

    def __init__(self, buf: bytes, where: str) -> None:
        self.buf = memoryview(buf)
        self.pos = 0
        self.where = where

    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.remaining():
            raise FormatError(f"{self.where}: truncated {what}: needs {n} bytes at offset {self.pos}, {self.remaining()} left")
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out

    def _next_byte(self) -> int | None:
        if self.pos >= len(self.buf):
            return None
        self.pos += 1
        return self.buf[self.pos - 1]

    def field(self, kind: str, what: str) -> Any:
        if kind in _SCALARS:
            code, size = _SCALARS[kind]
            return struct.unpack(code, self.take(size, what))[0]
        if kind == "varint":
            at = self.pos
            try:
                return parse_varint(self._next_byte, self.where, what)
            except FormatError:
                self.pos = at
                raise
        if kind in _STRINGS:
            n = self.field(_STRINGS[kind], what + " length")
            raw = self.take(n, what)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise FormatError(f"{self.where}: {what} is not valid UTF-8") from None
        if kind.startswith("bytes"):
            return self.take(int(kind[5:]), what)
        raise ValueError(f"unknown field type {kind!r}")

    def fields(self, layout: Layout) -> dict[str, Any]:
        return {name: self.field(kind, name) for name, kind in layout}

    def payloads(self, layout: Layout, count: int) -> tuple[bytes, ...]:
        """``count`` byte strings, each after its length written by ``layout`` (one field)."""
        (name, _), = layout
        return tuple(self.take(self.fields(layout)[name], "payload") for _ in range(count))

    def expect_end(self, allow_trailing: bool = False) -> None:
        if self.remaining() and not allow_trailing:
            raise FormatError(f"{self.where}: {self.remaining()} unexpected trailing bytes at offset {self.pos}")


class Writer:
    """Little-endian writer, the mirror of :class:`Reader`."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def field(self, kind: str, value: Any, what: str = "field") -> None:
        if kind in _SCALARS:
            code, _ = _SCALARS[kind]
            try:
                self.buf += struct.pack(code, value)
            except struct.error as exc:
                raise FormatError(f"cannot write {what}={value!r} as {kind}: {exc}") from None
        elif kind == "varint":
            self.buf += varint_bytes(int(value))
        elif kind in _STRINGS:
            raw = value.encode("utf-8")
            self.field(_STRINGS[kind], len(raw), what + " length")
            self.buf += raw
        elif kind.startswith("bytes"):
            if len(value) != int(kind[5:]):
                raise FormatError(f"cannot write {what}: needs {kind[5:]} bytes, got {len(value)}")
            self.buf += value
        else:
            raise ValueError(f"unknown field type {kind!r}")

    def fields(self, layout: Layout, values: dict[str, Any]) -> None:
        for name, kind in layout:
            self.field(kind, values[name], name)

    def payloads(self, layout: Layout, payloads: Iterable[bytes]) -> None:
        """Byte strings, each after its length written by ``layout`` (one field): :meth:`Reader.payloads`."""
        (name, _), = layout
        for p in payloads:
            self.fields(layout, {name: len(p)})
            self.buf += p

    def bytes(self) -> bytes:
        return bytes(self.buf)


def json_depth_ok(value: Any, depth: int = 0) -> bool:
    """True if ``value`` nests at most ``_MAX_JSON_DEPTH`` levels (no recursion bombs)."""
    if depth > _MAX_JSON_DEPTH:
        return False
    if isinstance(value, dict):
        return all(json_depth_ok(v, depth + 1) for v in value.values())
    if isinstance(value, list):
        return all(json_depth_ok(v, depth + 1) for v in value)
    return True


def stream_size(fileobj: BinaryIO) -> int:
    """Total size of a seekable binary file object (position is restored)."""
    here = fileobj.tell()
    end = fileobj.seek(0, os.SEEK_END)
    fileobj.seek(here)
    return end


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.

    The temporary name starts with ``.`` and ends with ``.tmp`` so it is never
    taken for a finished file. On any exception the temporary file is removed
    and ``path`` is untouched; a killed process may leave the ``.tmp`` behind
    but never a partial ``path``.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    # mkstemp creates the file private (0600); a finished file gets the usual
    # permissions (0666 minus the umask), like any other file the user writes.
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)
    except OSError:
        pass
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # Make the rename durable too (best effort; not all systems allow it).
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
