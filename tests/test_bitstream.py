"""The .acx bitstream: round trips, range reads, streaming writer, rejection of bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from _format_samples import LEVELS, make_stream, tiny_stream

from adaptive_codec.bitstream import (
    FORMAT_MAJOR,
    MAGIC,
    AcxChunk,
    AcxReader,
    AcxStream,
    AcxWriter,
    SegmentEntry,
    chunk_spans,
    read_acx,
    read_chunks_in_range,
    read_header,
    to_bytes,
    write_acx,
)
from adaptive_codec.entropy import decode_frames
from adaptive_codec.errors import AdaptiveCodecError, FormatError


def _decode_all(stream: AcxStream, model) -> np.ndarray:
    out = np.zeros((stream.channels, LEVELS, stream.n_frames), np.int64)
    for chunk in stream.chunks:
        depths, priors, _ = stream.frame_layout(chunk.channel, chunk.start_frame, chunk.end_frame)
        out[chunk.channel, :, chunk.start_frame : chunk.end_frame] = decode_frames(model, chunk.data, depths, priors, LEVELS)
    return out


def test_round_trip_bytes_path_and_fileobj(tmp_path):
    stream, codes, model = make_stream()
    data = to_bytes(stream)
    assert data[:4] == MAGIC and data[4] == FORMAT_MAJOR
    again = read_acx(data)
    assert again == stream
    assert again.profiles[1].parameters["loss_weights"] == {"mel": 1.0}  # custom profile embedded
    assert again.profiles[1].conditioning.dtype == np.float32
    path = tmp_path / "x.acx"
    write_acx(stream, path)
    assert path.read_bytes() == data
    assert read_acx(path) == stream
    assert read_acx(io.BytesIO(data)) == stream
    # The codes survive end to end, with the per-channel segment depths applied.
    decoded = _decode_all(again, model)
    for c in range(stream.channels):
        depths, _, _ = stream.frame_layout(c, 0, stream.n_frames)
        mask = np.arange(LEVELS)[:, None] < depths[None, :]
        np.testing.assert_array_equal(decoded[c], np.where(mask, codes[c], 0))


def test_deterministic():
    assert to_bytes(make_stream(seed=3)[0]) == to_bytes(make_stream(seed=3)[0])


def test_header_only():
    stream, _, _ = make_stream()
    data = to_bytes(stream)
    header = read_header(data)
    assert header == stream.header
    assert header.duration_s == pytest.approx(stream.length_samples / 44100)
    assert header.frame_rate_hz == 75.0
    # read_header does not need the payload at all.
    head_end = 8 + 12 + int.from_bytes(data[12:16], "little")
    assert read_header(data[:head_end]) == header
    assert header.to_dict()["profiles"][0]["name"] == "speech"


def test_range_read_returns_only_overlapping_chunks():
    stream, _, _ = make_stream(n_frames=1000, chunk_frames=225)
    data = to_bytes(stream)
    header, chunks = read_chunks_in_range(data, 300, 500)
    assert {(c.channel, c.start_frame) for c in chunks} == {(0, 225), (1, 225), (0, 450), (1, 450)}
    _, chunks = read_chunks_in_range(data, 0, 1, channels=[1])
    assert [(c.channel, c.start_frame) for c in chunks] == [(1, 0)]
    want = {(c.channel, c.start_frame): c.data for c in stream.chunks}
    assert all(want[(c.channel, c.start_frame)] == c.data for c in chunks)


def test_range_read_skips_bodies_of_other_chunks():
    stream, _, _ = make_stream(n_frames=1000, chunk_frames=225)
    data = bytearray(to_bytes(stream))
    # Damage the last DATA chunk's body: a range read of the start never looks at it...
    last = len(data) - 12 - 12 - 1
    data[last] ^= 0xFF
    _, chunks = read_chunks_in_range(bytes(data), 0, 10)
    assert chunks
    # ...while a full read checks every CRC.
    with pytest.raises(FormatError, match="CRC"):
        read_acx(bytes(data))


def test_streaming_writer(tmp_path):
    stream, _, _ = make_stream(n_frames=300, channels=1, chunk_frames=100)
    path = tmp_path / "s.acx"
    with AcxWriter(path, stream.header) as writer:
        for chunk in stream.chunks:
            writer.write_chunk(chunk)
            assert not path.exists()  # atomic: appears only on close
    assert read_acx(path) == stream
    with pytest.raises(FormatError, match="covers frames"):
        with AcxWriter(tmp_path / "short.acx", stream.header) as writer:
            writer.write_chunk(stream.chunks[0])
    assert not (tmp_path / "short.acx").exists()
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(FormatError, match="expected 0"):
        with AcxWriter(io.BytesIO(), stream.header) as writer:
            writer.write_chunk(stream.chunks[1])


def test_reader_iterates_lazily(tmp_path):
    stream, _, _ = make_stream(n_frames=450, channels=2)
    path = tmp_path / "l.acx"
    write_acx(stream, path)
    with AcxReader(path) as reader:
        assert reader.header == stream.header
        got = list(reader.iter_chunks())
    assert got == stream.chunks


def _rewrite_head(data: bytes, patch) -> bytes:
    """Apply ``patch`` to the HEAD body and fix its length and CRC (to test validation, not CRCs)."""
    length = int.from_bytes(data[12:16], "little")
    body = patch(bytearray(data[16 : 16 + length]))
    head = b"HEAD" + len(body).to_bytes(4, "little")
    crc = zlib.crc32(data[:8] + head + bytes(body)).to_bytes(4, "little")
    return data[:8] + head + bytes(body) + crc + data[16 + length + 4 :]


def test_rejects_wrong_magic_version_flags():
    data = to_bytes(tiny_stream())
    with pytest.raises(FormatError, match="not an .acx"):
        read_acx(b"RIFF" + data[4:])
    with pytest.raises(FormatError, match="version 2"):
        read_acx(data[:4] + b"\x02" + data[5:])
    with pytest.raises(FormatError, match="flags"):
        read_acx(data[:6] + b"\x01\x00" + data[8:])


def test_newer_minor_version_is_read():
    data = to_bytes(tiny_stream())
    newer = data[:5] + b"\x07" + data[6:]
    newer = _rewrite_head(newer, lambda body: body + b"future-field")  # extension fields are skipped
    assert read_acx(newer).n_frames == 2


def test_rejects_crc_truncation_and_trailing_bytes():
    data = to_bytes(tiny_stream())
    bad = bytearray(data)
    bad[30] ^= 1
    with pytest.raises(FormatError, match="CRC"):
        read_acx(bytes(bad))
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            read_acx(data[:cut])
    with pytest.raises(FormatError, match="trailing"):
        read_acx(data + b"\0")


def test_rejects_huge_declared_length_without_allocating():
    data = to_bytes(tiny_stream())
    huge = data[:12] + struct.pack("<I", 0xFFFFFFF0) + data[16:]
    with pytest.raises(FormatError, match="declares"):
        read_acx(huge)


def test_rejects_invalid_header_values():
    data = to_bytes(tiny_stream())
    # original_sample_rate_hz = 0 (first header field)
    with pytest.raises(FormatError, match="original_sample_rate_hz"):
        read_acx(_rewrite_head(data, lambda b: b"\0\0\0\0" + b[4:]))
    # channels = 0
    with pytest.raises(FormatError, match="channels"):
        read_acx(_rewrite_head(data, lambda b: b[:4] + b"\0\0" + b[6:]))


def test_writer_validates_segments():
    stream = tiny_stream()
    stream.segments = [SegmentEntry(0, 1, 0, 1, "speech", 1.0)]  # frame 1 uncovered
    with pytest.raises(FormatError, match="segments cover"):
        to_bytes(stream)
    stream.segments = [SegmentEntry(0, 2, 5, 1, "speech", 1.0)]
    with pytest.raises(FormatError, match="profile_index"):
        to_bytes(stream)
    stream = tiny_stream()
    stream.chunks = [AcxChunk(0, 0, 3, b"")]
    with pytest.raises(FormatError):
        to_bytes(stream)


def test_errors_are_package_errors():
    assert issubclass(FormatError, AdaptiveCodecError)
    with pytest.raises(AdaptiveCodecError):
        read_acx(b"")


def test_chunk_spans():
    assert list(chunk_spans(500, 225)) == [(0, 225), (225, 450), (450, 500)]
    assert list(chunk_spans(0, 225)) == []
