"""The ``.acx`` bitstream: one encoded recording.

docs/FORMAT.md is the normative byte-level specification; this module follows
it field by field (the layouts below are checked against its tables by
tests/test_format_doc.py). In short::

    preamble  "ACX1" major minor flags                         8 bytes
    chunk     tag(4) body_length(u32) body crc32(u32)          HEAD, DATA..., ENDS

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

from ._acx_header import (
    NO_CHANNEL,
    AcxHeader,
    ProfileEntry,
    SegmentEntry,
    parse_header_body,
    serialize_header_body,
    validate_header,
)
from ._binary import Reader, Writer, atomic_write, crc32, stream_size
from .errors import FormatError

__all__ = [
    "MAGIC",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "NO_CHANNEL",
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
]

MAGIC = b"ACX1"
FORMAT_MAJOR = 1  # incompatible changes bump this; readers reject other majors
FORMAT_MINOR = 0  # compatible additions (ancillary chunks, trailing header fields)
MAX_CHUNK_BODY_BYTES = 1 << 26  # 64 MiB: far above a few seconds of any sane payload

PREAMBLE_LAYOUT = [("magic", "bytes4"), ("format_major", "u8"), ("format_minor", "u8"), ("flags", "u16")]
CHUNK_FRAME_LAYOUT = [("tag", "bytes4"), ("body_length_bytes", "u32")]  # then body, then crc32 u32
DATA_LAYOUT = [("channel_index", "u16"), ("start_frame", "u32"), ("frame_count", "u32")]  # then coded bytes
ENDS_LAYOUT = [("data_chunk_count", "u32"), ("payload_total_bytes", "u64")]
PREAMBLE_BYTES = 8
CHUNK_OVERHEAD_BYTES = 12  # tag + length + crc32

TAG_HEAD, TAG_DATA, TAG_ENDS = b"HEAD", b"DATA", b"ENDS"


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
        Output of :func:`adaptive_codec.entropy.encode_frames` for those frames.
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
    """The ``(start_frame, end_frame)`` of each DATA chunk a writer should emit per channel."""
    for start in range(0, n_frames, chunk_frames):
        yield start, min(n_frames, start + chunk_frames)


# --------------------------------------------------------------------------- writing
def _chunk_bytes(tag: bytes, body: bytes, crc_prefix: bytes = b"") -> bytes:
    """Frame a chunk; ``crc_prefix`` (the preamble, for HEAD) is covered by the CRC but not written."""
    if len(body) > MAX_CHUNK_BODY_BYTES:
        raise FormatError(f"{tag.decode()} chunk body of {len(body)} bytes exceeds the {MAX_CHUNK_BODY_BYTES}-byte limit")
    head = tag + len(body).to_bytes(4, "little")
    return head + body + crc32(crc_prefix, head, body).to_bytes(4, "little")


def _preamble() -> bytes:
    w = Writer()
    w.fields(PREAMBLE_LAYOUT, {"magic": MAGIC, "format_major": FORMAT_MAJOR, "format_minor": FORMAT_MINOR, "flags": 0})
    return w.bytes()


def _data_body(header: AcxHeader, chunk: AcxChunk) -> bytes:
    _check_chunk(header, chunk.channel, chunk.start_frame, chunk.n_frames, "chunk to write")
    w = Writer()
    w.fields(DATA_LAYOUT, {"channel_index": chunk.channel, "start_frame": chunk.start_frame, "frame_count": chunk.n_frames})
    return w.bytes() + bytes(chunk.data)


def _check_chunk(header: AcxHeader, channel: int, start: int, n: int, where: str) -> None:
    if not 0 <= channel < header.channels:
        raise FormatError(f"{where}: channel {channel} out of range 0..{header.channels - 1}")
    if not 1 <= n <= header.chunk_frames:
        raise FormatError(f"{where}: frame count {n} out of range 1..{header.chunk_frames}")
    if start < 0 or start + n > header.n_frames:
        raise FormatError(f"{where}: frames {start}..{start + n} exceed the file's {header.n_frames} frames")


class AcxWriter:
    """Write an ``.acx`` incrementally: header now, chunks as they are encoded.

    Use as a context manager. With a path the file appears atomically (temp
    file + rename) when the block exits without error; with a file object the
    bytes go straight to it. Chunks of each channel must come in frame order
    and, at close, cover all ``n_frames`` frames.
    """

    def __init__(self, target: str | os.PathLike | BinaryIO, header: AcxHeader) -> None:
        validate_header(header, "header to write")
        self.header = header
        self._target = target
        self._ctx = None
        self._fh: BinaryIO | None = None
        self._next_frame = [0] * header.channels
        self._count = 0
        self._payload = 0

    def __enter__(self) -> "AcxWriter":
        if isinstance(self._target, (str, os.PathLike)):
            self._ctx = atomic_write(self._target)
            self._fh = self._ctx.__enter__()
        else:
            self._fh = self._target
        pre = _preamble()
        self._fh.write(pre + _chunk_bytes(TAG_HEAD, serialize_header_body(self.header), crc_prefix=pre))
        return self

    def write_chunk(self, chunk: AcxChunk) -> None:
        if chunk.channel < self.header.channels and chunk.start_frame != self._next_frame[chunk.channel]:
            raise FormatError(f"chunk for channel {chunk.channel} starts at frame {chunk.start_frame}, expected {self._next_frame[chunk.channel]}")
        body = _data_body(self.header, chunk)
        assert self._fh is not None, "use AcxWriter as a context manager"
        self._fh.write(_chunk_bytes(TAG_DATA, body))
        self._next_frame[chunk.channel] = chunk.end_frame
        self._count += 1
        self._payload += len(chunk.data)

    def _finish(self) -> None:
        missing = [c for c, f in enumerate(self._next_frame) if f != self.header.n_frames]
        if missing:
            raise FormatError(f"channel {missing[0]} covers frames 0..{self._next_frame[missing[0]]} of {self.header.n_frames}")
        w = Writer()
        w.fields(ENDS_LAYOUT, {"data_chunk_count": self._count, "payload_total_bytes": self._payload})
        assert self._fh is not None
        self._fh.write(_chunk_bytes(TAG_ENDS, w.bytes()))

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
    """Write ``stream`` to a path (atomically) or a binary file object."""
    with AcxWriter(target, stream.header) as writer:
        for chunk in stream.chunks:
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
        Seekable sources are read lazily; unseekable ones are read into memory.

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

    def _read_frame(self) -> tuple[bytes, int, int]:
        """Read a chunk's tag and length; return ``(tag, body_length, offset)`` after bounding it."""
        at = self._pos()
        head = self._read_exact(8, "chunk header")
        tag, length = head[:4], int.from_bytes(head[4:], "little")
        left = self._size - at - CHUNK_OVERHEAD_BYTES
        if length > MAX_CHUNK_BODY_BYTES or length > left:
            raise FormatError(f"acx: chunk {tag!r} at byte {at} declares {length} body bytes; only {max(left, 0)} remain (limit {MAX_CHUNK_BODY_BYTES})")
        self._last_head = head
        return tag, length, at

    def _read_body(self, tag: bytes, length: int, at: int, crc_prefix: bytes = b"") -> bytes:
        body = self._read_exact(length, f"{tag!r} chunk body")
        stored = int.from_bytes(self._read_exact(4, "chunk CRC"), "little")
        if crc32(crc_prefix, self._last_head, body) != stored:
            raise FormatError(f"acx: CRC mismatch in {tag!r} chunk at byte {at}")
        return body

    def _read_head(self) -> AcxHeader:
        pre_bytes = self._read_exact(PREAMBLE_BYTES, "preamble")
        pre = Reader(pre_bytes, "acx preamble").fields(PREAMBLE_LAYOUT)
        if pre["magic"] != MAGIC:
            raise FormatError(f"not an .acx file: magic {pre['magic']!r}, expected {MAGIC!r}")
        if pre["format_major"] != FORMAT_MAJOR:
            raise FormatError(f"unsupported .acx format version {pre['format_major']}.{pre['format_minor']} (this reader supports {FORMAT_MAJOR}.x)")
        if pre["flags"] != 0:
            raise FormatError(f"acx: unknown flags 0x{pre['flags']:04x} in preamble")
        self.format_minor = pre["format_minor"]
        tag, length, at = self._read_frame()
        if tag != TAG_HEAD:
            raise FormatError(f"acx: expected HEAD chunk at byte {at}, found {tag!r}")
        body = self._read_body(tag, length, at, crc_prefix=pre_bytes)
        header = parse_header_body(body, f"HEAD chunk at byte {at}", allow_trailing=self.format_minor > FORMAT_MINOR)
        self._data_start = self._pos()
        return header

    def iter_chunks(self, start_frame: int = 0, end_frame: int | None = None, channels: list[int] | None = None, check_complete: bool = True) -> Iterator[AcxChunk]:
        """Yield the DATA chunks overlapping ``[start_frame, end_frame)`` in file order.

        Chunks outside the range are skipped without reading (or checking)
        their bodies. With the full range and ``check_complete`` the whole
        payload structure is checked (contiguous chunks per channel, the ENDS
        record), so truncation at a chunk boundary is detected.
        """
        h = self.header
        end_frame = h.n_frames if end_frame is None else end_frame
        full = start_frame <= 0 and end_frame >= h.n_frames and channels is None
        self._fh.seek(self._base + self._data_start)
        next_frame = [0] * h.channels
        count = payload = 0
        while True:
            if self._pos() >= self._size:
                raise FormatError(f"acx: truncated: no ENDS chunk after {count} DATA chunks (byte {self._pos()})")
            tag, length, at = self._read_frame()
            if tag == TAG_DATA:
                if length < 10:
                    raise FormatError(f"acx: DATA chunk at byte {at} is too short ({length} bytes)")
                # A full read checks the CRC before trusting any field; a range
                # read peeks at the 10 fixed bytes to skip unwanted bodies.
                body = self._read_body(tag, length, at) if full else self._read_exact(10, "DATA chunk fields")
                fixed = Reader(body[:10], f"DATA chunk at byte {at}").fields(DATA_LAYOUT)
                ch, s, n = fixed["channel_index"], fixed["start_frame"], fixed["frame_count"]
                _check_chunk(h, ch, s, n, f"acx: DATA chunk at byte {at}")
                if full and check_complete and s != next_frame[ch]:
                    raise FormatError(f"acx: DATA chunk at byte {at} starts at frame {s}; channel {ch} continues at {next_frame[ch]}")
                next_frame[ch] = s + n
                count += 1
                payload += length - 10
                wanted = s < end_frame and s + n > start_frame and (channels is None or ch in channels)
                if wanted:
                    if not full:
                        self._fh.seek(self._base + at + 8)
                        body = self._read_body(tag, length, at)
                    yield AcxChunk(ch, s, n, body[10:])
                else:
                    self._fh.seek(self._base + at + 8 + length + 4)
                    if self._pos() > self._size:
                        raise FormatError(f"acx: truncated DATA chunk at byte {at}")
            elif tag == TAG_ENDS:
                body = self._read_body(tag, length, at)
                r = Reader(body, f"ENDS chunk at byte {at}")
                ends = r.fields(ENDS_LAYOUT)
                r.expect_end(allow_trailing=self.format_minor > FORMAT_MINOR)
                if ends["data_chunk_count"] != count or ends["payload_total_bytes"] != payload:
                    raise FormatError(f"acx: ENDS chunk at byte {at} records {ends['data_chunk_count']} chunks / {ends['payload_total_bytes']} bytes, found {count} / {payload}")
                if self._pos() != self._size:
                    raise FormatError(f"acx: {self._size - self._pos()} trailing bytes after the ENDS chunk")
                if full and check_complete:
                    short = [c for c, f in enumerate(next_frame) if f != h.n_frames]
                    if short:
                        raise FormatError(f"acx: channel {short[0]} payload ends at frame {next_frame[short[0]]} of {h.n_frames}")
                return
            elif tag[:1].islower() and self.format_minor > FORMAT_MINOR:
                self._read_body(tag, length, at)  # ancillary chunk of a newer minor version: skip
            else:
                raise FormatError(f"acx: unknown chunk type {tag!r} at byte {at}")


def read_acx(source: str | os.PathLike | bytes | BinaryIO) -> AcxStream:
    """Read and fully check an ``.acx`` (every CRC, chunk coverage, ENDS record)."""
    with AcxReader(source) as reader:
        chunks = list(reader.iter_chunks())
        return AcxStream.from_header(reader.header, chunks)


def read_header(source: str | os.PathLike | bytes | BinaryIO) -> AcxHeader:
    """Read only the preamble and HEAD chunk (for ``info``); the payload is not touched."""
    with AcxReader(source) as reader:
        return reader.header


def read_chunks_in_range(source: str | os.PathLike | bytes | BinaryIO, start_frame: int, end_frame: int, channels: list[int] | None = None) -> tuple[AcxHeader, list[AcxChunk]]:
    """Header and the DATA chunks overlapping frames ``[start_frame, end_frame)`` (for ``decode --start/--end``)."""
    with AcxReader(source) as reader:
        return reader.header, list(reader.iter_chunks(start_frame, end_frame, channels))
