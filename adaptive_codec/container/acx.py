"""The ``.acx`` bitstream: one encoded recording.

docs/FORMAT.md is the normative byte-level specification; this module follows
it field by field (the layouts below are checked against its tables by
tests/test_format_doc.py). In short::

    preamble  "ACX1" major minor flags                          8 bytes
    header    header_length (varint) body crc32(u32)
    chunk     coded_length (varint) coded bytes crc32(u32)      x n_chunks, then end of file

Chunks come in a fixed order (for each ``chunk_frames`` span, channel 0, 1,
...), so their position in time needs no bytes; each chunk's CRC also covers
its index, so chunks cannot be swapped unnoticed.

Layered API (after EnCodec's ``compress.py``): :func:`write_acx` /
:func:`read_acx` on paths or file objects, :func:`to_bytes` as a thin wrapper,
:func:`read_header` for ``info``, :class:`AcxWriter` to stream chunks out with
bounded memory and :class:`AcxReader` / :func:`read_chunks_in_range` to read
only what a frame range needs.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field, fields
from typing import Any, BinaryIO, Iterator

from adaptive_codec.container.acx_header import (
    NO_CHANNEL,
    STEREO_MODES,
    AcxHeader,
    ProfileEntry,
    SegmentEntry,
    parse_header_body,
    serialize_header_body,
    validate_header,
)
from adaptive_codec.container.binary import MAX_VARINT_BYTES, Reader, Writer, atomic_write, crc32, parse_varint, stream_size, varint_bytes
from adaptive_codec.errors import FormatError

__all__ = [
    "MAGIC",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "NO_CHANNEL",
    "STEREO_MODES",
    "AcxHeader",
    "AcxStream",
    "AcxChunk",
    "ProfileEntry",
    "SegmentEntry",
    "AcxWriter",
    "AcxReader",
    "write_acx",
    "to_bytes",
    "read_acx",
    "read_header",
    "read_chunks_in_range",
    "chunk_spans",
    "chunk_order",
]

MAGIC = b"ACX1"
FORMAT_MAJOR = 3  # incompatible changes bump this; readers reject other majors
#: Majors this reader accepts: 2 (every frame at its segment's depth) is read
#: as before; it is what 3 writes when no segment is energy-adaptive, less
#: one depth_mode byte per segment row.
READABLE_MAJORS = (2, 3)
FORMAT_MINOR = 2  # compatible additions (header extension sections); written only when used
MAX_CHUNK_BODY_BYTES = 1 << 26  # 64 MiB: far above a few seconds of any sane payload
MAX_HEADER_BYTES = 1 << 24  # 16 MiB: 255 embedded profiles of 4096 floats fit easily

PREAMBLE_LAYOUT = [("magic", "bytes4"), ("format_major", "u8"), ("format_minor", "u8"), ("flags", "u16")]
HEADER_FRAME_LAYOUT = [("header_length_bytes", "varint")]  # then body, then crc32 u32
CHUNK_LAYOUT = [("coded_length_bytes", "varint")]  # then coded bytes, then crc32 u32
PREAMBLE_BYTES = 8
CRC_BYTES = 4
MIN_CHUNK_BYTES = 1 + CRC_BYTES  # an empty chunk: length varint 0 and its CRC


@dataclass
class AcxChunk:
    """Entropy-coded RVQ indices of ``n_frames`` frames of one channel.

    Attributes
    ----------
    channel : int
        Channel index (0-based).
    start_frame : int
        First frame (at the internal frame rate) the chunk covers.
    n_frames : int
        Number of frames, ``1..chunk_frames``.
    data : bytes
        Output of :func:`adaptive_codec.entropy.coder.encode_frames` for those frames.
    """

    channel: int
    start_frame: int
    n_frames: int
    data: bytes

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.n_frames


@dataclass(eq=False)
class AcxStream(AcxHeader):
    """A whole ``.acx`` file: every header field of :class:`AcxHeader` plus the payload chunks."""

    chunks: list[AcxChunk] = field(default_factory=list)

    @property
    def header(self) -> AcxHeader:
        return AcxHeader(**{f.name: getattr(self, f.name) for f in fields(AcxHeader)})

    @classmethod
    def from_header(cls, header: AcxHeader, chunks: list[AcxChunk] | None = None) -> "AcxStream":
        return cls(**{f.name: getattr(header, f.name) for f in fields(AcxHeader)}, chunks=list(chunks or []))

    def payload_bytes(self) -> int:
        return sum(len(c.data) for c in self.chunks)


def chunk_spans(n_frames: int, chunk_frames: int) -> Iterator[tuple[int, int]]:
    """The ``(start_frame, end_frame)`` of each chunk span (one DATA chunk per channel each)."""
    for start in range(0, n_frames, chunk_frames):
        yield start, min(n_frames, start + chunk_frames)


def chunk_order(header: AcxHeader) -> Iterator[tuple[int, int, int]]:
    """``(channel, start_frame, n_frames)`` of every chunk, in file order."""
    for start, end in chunk_spans(header.n_frames, header.chunk_frames):
        for channel in range(header.channels):
            yield channel, start, end - start


def _chunk_crc(index: int, length_field: bytes, coded: bytes) -> int:
    """CRC-32 of the chunk's index (u32 LE), its length field and its coded bytes."""
    return crc32(index.to_bytes(4, "little"), length_field, coded)


# --------------------------------------------------------------------------- writing
def _preamble(header: AcxHeader) -> bytes:
    # A stream without extension sections stays 3.0, readable as such everywhere.
    # Minor 1 for the high band and rate record, 2 for parametric stereo (a 3.1 reader skips it).
    minor = 2 if header.stereo_params is not None else (
        1 if header.highband is not None or header.asked_bps or header.rate_limit else 0)
    w = Writer()
    w.fields(PREAMBLE_LAYOUT, {"magic": MAGIC, "format_major": FORMAT_MAJOR, "format_minor": minor, "flags": 0})
    return w.bytes()


def _header_bytes(header: AcxHeader) -> bytes:
    """Preamble + header frame (length, body, CRC over preamble, length and body)."""
    body = serialize_header_body(header)
    if len(body) > MAX_HEADER_BYTES:
        raise FormatError(f"header of {len(body)} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
    pre, length = _preamble(header), varint_bytes(len(body))
    return pre + length + body + crc32(pre, length, body).to_bytes(CRC_BYTES, "little")


def _chunk_bytes(index: int, data: bytes) -> bytes:
    if len(data) > MAX_CHUNK_BODY_BYTES:
        raise FormatError(f"chunk {index} of {len(data)} bytes exceeds the {MAX_CHUNK_BODY_BYTES}-byte limit")
    length = varint_bytes(len(data))
    return length + data + _chunk_crc(index, length, data).to_bytes(CRC_BYTES, "little")


class AcxWriter:
    """Write an ``.acx`` incrementally: header now, chunks as they are encoded.

    Use as a context manager. With a path the file appears atomically (temp
    file + rename) when the block exits without error; with a file object the
    bytes go straight to it. Chunks must come in file order
    (:func:`chunk_order`: for each span, channel 0, 1, ...) and, at close,
    all of them must have been written.
    """

    def __init__(self, target: str | os.PathLike | BinaryIO, header: AcxHeader) -> None:
        validate_header(header, "header to write")
        self.header = header
        self._target = target
        self._ctx = None
        self._fh: BinaryIO | None = None
        self._order = list(chunk_order(header))
        self._count = 0

    def __enter__(self) -> "AcxWriter":
        if isinstance(self._target, (str, os.PathLike)):
            self._ctx = atomic_write(self._target)
            self._fh = self._ctx.__enter__()
        else:
            self._fh = self._target
        self._fh.write(_header_bytes(self.header))
        return self

    def write_chunk(self, chunk: AcxChunk) -> None:
        if self._count >= len(self._order):
            raise FormatError(f"chunk for channel {chunk.channel} at frame {chunk.start_frame}: the file has only {len(self._order)} chunks")
        want = self._order[self._count]
        if (chunk.channel, chunk.start_frame, chunk.n_frames) != want:
            raise FormatError(f"chunk (channel {chunk.channel}, frames {chunk.start_frame}+{chunk.n_frames}) out of order: "
                              f"expected channel {want[0]} at frame {want[1]} ({want[2]} frames)")
        assert self._fh is not None, "use AcxWriter as a context manager"
        self._fh.write(_chunk_bytes(self._count, bytes(chunk.data)))
        self._count += 1

    def _finish(self) -> None:
        if self._count != len(self._order):
            channel, start, _ = self._order[self._count]
            raise FormatError(f"channel {channel} covers frames 0..{start} of {self.header.n_frames}: "
                              f"{self._count} of {len(self._order)} chunks written")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        except BaseException as err:
            if self._ctx is not None:
                self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        if self._ctx is not None:
            self._ctx.__exit__(exc_type, exc, tb)


def write_acx(stream: AcxStream, target: str | os.PathLike | BinaryIO) -> None:
    """Write ``stream`` to a path (atomically) or a binary file object; chunks in any order."""
    position = {(channel, start): i for i, (channel, start, _) in enumerate(chunk_order(stream.header))}
    chunks = sorted(stream.chunks, key=lambda c: position.get((c.channel, c.start_frame), len(position)))
    with AcxWriter(target, stream.header) as writer:
        for chunk in chunks:
            writer.write_chunk(chunk)


def to_bytes(stream: AcxStream) -> bytes:
    """The ``.acx`` bytes of ``stream``."""
    buf = io.BytesIO()
    write_acx(stream, buf)
    return buf.getvalue()


# --------------------------------------------------------------------------- reading
class AcxReader:
    """Sequential reader of an ``.acx`` source with bounded memory.

    Parameters
    ----------
    source : path, bytes or binary file object
        Seekable sources are read lazily from their current position (which
        is where the file starts); unseekable ones are read into memory.

    Attributes
    ----------
    header : AcxHeader
        Parsed and validated on construction.
    """

    def __init__(self, source: str | os.PathLike | bytes | bytearray | memoryview | BinaryIO) -> None:
        self._own = False
        if isinstance(source, (bytes, bytearray, memoryview)):
            fh: BinaryIO = io.BytesIO(bytes(source))
        elif isinstance(source, (str, os.PathLike)):
            fh = open(source, "rb")
            self._own = True
        else:
            fh = source
            if not (hasattr(fh, "seekable") and fh.seekable()):
                fh = io.BytesIO(fh.read())
        self._fh = fh
        try:
            self._base = fh.tell()
            self._size = stream_size(fh) - self._base
            self.header = self._read_head()
        except BaseException:
            self.close()
            raise

    @property
    def data_offset(self) -> int:
        """Bytes of preamble and header: where the first chunk starts, from the file's start."""
        return self._data_start

    def close(self) -> None:
        if self._own:
            self._fh.close()

    def __enter__(self) -> "AcxReader":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _pos(self) -> int:
        return self._fh.tell() - self._base

    def _read_exact(self, n: int, what: str) -> bytes:
        at = self._pos()
        data = self._fh.read(n)
        if len(data) != n:
            raise FormatError(f"acx: truncated {what} at byte {at}: needs {n} bytes, file has {len(data)}")
        return data

    def _read_length(self, what: str, limit: int) -> tuple[int, bytes, int]:
        """Read a varint length field; return ``(value, its bytes, its offset)`` after bounding it."""
        at = self._pos()
        raw = bytearray()

        def next_byte() -> int | None:
            b = self._fh.read(1) if len(raw) < MAX_VARINT_BYTES else b""
            if not b:
                return None
            raw.append(b[0])
            return b[0]

        value = parse_varint(next_byte, f"acx: byte {at}", what)
        left = self._size - self._pos() - CRC_BYTES
        if value > limit or value > left:
            raise FormatError(f"acx: {what} at byte {at} declares {value} bytes; only {max(left, 0)} remain (limit {limit})")
        return value, bytes(raw), at

    def _read_head(self) -> AcxHeader:
        pre_bytes = self._read_exact(PREAMBLE_BYTES, "preamble")
        pre = Reader(pre_bytes, "acx preamble").fields(PREAMBLE_LAYOUT)
        if pre["magic"] != MAGIC:
            raise FormatError(f"not an .acx file: magic {pre['magic']!r}, expected {MAGIC!r}")
        if pre["format_major"] not in READABLE_MAJORS:
            raise FormatError(f"unsupported .acx format version {pre['format_major']}.{pre['format_minor']} "
                              f"(this reader supports {' and '.join(f'{m}.x' for m in READABLE_MAJORS)}; "
                              "re-encode the source audio)")
        if pre["flags"] != 0:
            raise FormatError(f"acx: unknown flags 0x{pre['flags']:04x} in preamble")
        self.format_major = pre["format_major"]
        self.format_minor = pre["format_minor"]
        length, raw, at = self._read_length("header_length_bytes", MAX_HEADER_BYTES)
        body = self._read_exact(length, "header")
        stored = int.from_bytes(self._read_exact(CRC_BYTES, "header CRC"), "little")
        if crc32(pre_bytes, raw, body) != stored:
            raise FormatError(f"acx: CRC mismatch in the header at byte {at}")
        newer_minor = self.format_major == FORMAT_MAJOR and self.format_minor > FORMAT_MINOR
        header = parse_header_body(body, f"acx header at byte {at}", allow_trailing=newer_minor,
                                   format_major=self.format_major, format_minor=self.format_minor)
        self._data_start = self._pos()
        return header

    def check_payload_size(self) -> None:
        """Refuse a header that declares more chunks than the file can hold.

        Every chunk takes at least a 1-byte length and a 4-byte CRC, so this
        costs nothing and catches a truncated or absurd stream (a few bytes
        declaring millions of frames) before any chunk is read or anything
        is sized from ``n_frames``. :meth:`iter_chunks` calls it first;
        :func:`read_header` does not (it needs no payload).
        """
        n_chunks = self.header.n_chunks
        left = self._size - self._data_start
        if n_chunks * MIN_CHUNK_BYTES > left:
            raise FormatError(f"acx: truncated: the header declares {n_chunks} chunks "
                              f"(at least {n_chunks * MIN_CHUNK_BYTES} bytes), only {left} bytes follow it")

    def iter_chunks(self, start_frame: int = 0, end_frame: int | None = None, channels: list[int] | None = None) -> Iterator[AcxChunk]:
        """Yield the DATA chunks overlapping ``[start_frame, end_frame)`` in file order.

        Chunks outside the range are skipped by their length field without
        reading (or checking) their bytes, and reading stops after the last
        span the range needs. A read of the whole range checks every CRC,
        that every chunk is present and that nothing follows the last one.
        """
        h = self.header
        self.check_payload_size()
        end_frame = h.n_frames if end_frame is None else end_frame
        full = start_frame <= 0 and end_frame >= h.n_frames and channels is None
        self._fh.seek(self._base + self._data_start)
        for index, (ch, start, n) in enumerate(chunk_order(h)):
            if start >= end_frame and not full:
                return
            if self._pos() >= self._size:
                raise FormatError(f"acx: truncated: {index} of {h.n_chunks} chunks present (byte {self._pos()})")
            length, raw, at = self._read_length(f"chunk {index} coded_length_bytes", MAX_CHUNK_BODY_BYTES)
            wanted = start < end_frame and start + n > start_frame and (channels is None or ch in channels)
            if not wanted:
                self._fh.seek(self._base + self._pos() + length + CRC_BYTES)
                continue
            coded = self._read_exact(length, f"chunk {index}")
            stored = int.from_bytes(self._read_exact(CRC_BYTES, "chunk CRC"), "little")
            if _chunk_crc(index, raw, coded) != stored:
                raise FormatError(f"acx: CRC mismatch in chunk {index} (channel {ch}, frame {start}) at byte {at}")
            yield AcxChunk(ch, start, n, coded)
        if full and self._pos() != self._size:
            raise FormatError(f"acx: {self._size - self._pos()} trailing bytes after the last chunk")


def read_acx(source: str | os.PathLike | bytes | BinaryIO) -> AcxStream:
    """Read and fully check an ``.acx`` (every CRC, every chunk present, nothing after the last)."""
    with AcxReader(source) as reader:
        chunks = list(reader.iter_chunks())
        return AcxStream.from_header(reader.header, chunks)


def read_header(source: str | os.PathLike | bytes | BinaryIO) -> AcxHeader:
    """Read only the preamble and header (for ``info``); the payload is not touched."""
    with AcxReader(source) as reader:
        return reader.header


def read_chunks_in_range(source: str | os.PathLike | bytes | BinaryIO, start_frame: int, end_frame: int, channels: list[int] | None = None) -> tuple[AcxHeader, list[AcxChunk]]:
    """Header and the DATA chunks overlapping frames ``[start_frame, end_frame)`` (for ``decode --start/--end``)."""
    with AcxReader(source) as reader:
        return reader.header, list(reader.iter_chunks(start_frame, end_frame, channels))
