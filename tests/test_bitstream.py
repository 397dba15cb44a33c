"""The .acx bitstream: round trips, range reads, streaming writer, rejection of bad input."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from _format_samples import LEVELS, make_stream, tiny_stream

from adaptive_codec.container.acx import (
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
from adaptive_codec.container.binary import varint_bytes
from adaptive_codec.entropy.coder import decode_frames
from adaptive_codec.errors import AdaptiveCodecError, FormatError


def _decode_all(stream: AcxStream, model) -> np.ndarray:
    out = np.zeros((stream.channels, LEVELS, stream.n_frames), np.int64)
    for chunk in stream.chunks:
        depths, priors, _ = stream.frame_layout(chunk.channel, chunk.start_frame, chunk.end_frame)
        out[chunk.channel, :, chunk.start_frame : chunk.end_frame] = decode_frames(model, chunk.data, depths, priors, LEVELS)
    return out


def test_adaptive_segment_round_trip():
    """A depth_mode 1 segment: the row survives, and each frame's coded depth and codes come back."""
    stream, codes, model = make_stream(n_frames=400, channels=2, chunk_frames=100, adaptive=True)
    again = read_acx(to_bytes(stream))
    assert again == stream and [s.adaptive for s in again.segments] == [True, False, False]
    for c in range(stream.channels):
        for chunk in (ch for ch in again.chunks if ch.channel == c):
            lo, hi = chunk.start_frame, chunk.end_frame
            layout, priors, _ = again.frame_layout(c, lo, hi)
            out, depths = decode_frames(model, chunk.data, layout, priors, LEVELS,
                                        adaptive=again.adaptive_frames(c, lo, hi), return_depths=True)
            np.testing.assert_array_equal(out, codes[c, :, lo:hi])
            mask = again.adaptive_frames(c, lo, hi)
            np.testing.assert_array_equal(depths[~mask], layout[~mask])
            if mask.any():  # coded depths: varied, within the budget, covering every non-zero code
                assert len(set(depths[mask].tolist())) > 1 and depths[mask].mean() <= 4
                deepest = np.where(out.any(0), LEVELS - np.argmax(out[::-1] != 0, axis=0), 0)
                assert np.all(deepest[mask] <= depths[mask])


def test_round_trip_bytes_path_and_fileobj(tmp_path):
    stream, codes, model = make_stream()
    data = to_bytes(stream)
    assert data[:4] == MAGIC and data[4] == FORMAT_MAJOR
    again = read_acx(data)
    assert again == stream
    assert again.profiles[1].parameters["loss_weights"] == {"mel": 1.0}  # custom profile embedded
    assert again.profiles[1].conditioning.dtype == np.float32
    assert again.profiles[0].is_builtin and again.profiles[0].conditioning.size == 0  # built-in: a reference
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
    assert read_header(data[:_header_end(data)]) == header
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
    # Damage the last chunk's coded bytes: a range read of the start never looks at it...
    last = len(data) - 4 - 1
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
    with pytest.raises(FormatError, match="out of order"):
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


def _header_span(data: bytes) -> tuple[int, int]:
    """(start, end) of the header body: after the preamble and its varint length."""
    value, shift, pos = 0, 0, 8
    while True:
        value |= (data[pos] & 0x7F) << shift
        shift += 7
        pos += 1
        if not data[pos - 1] & 0x80:
            return pos, pos + value


def _header_end(data: bytes) -> int:
    return _header_span(data)[1] + 4


def _rewrite_head(data: bytes, patch) -> bytes:
    """Apply ``patch`` to the header body and fix its length and CRC (to test validation, not CRCs)."""
    start, end = _header_span(data)
    body = bytes(patch(bytearray(data[start:end])))
    length = varint_bytes(len(body))
    crc = zlib.crc32(data[:8] + length + body).to_bytes(4, "little")
    return data[:8] + length + body + crc + data[end + 4 :]


def test_rejects_wrong_magic_version_flags():
    data = to_bytes(tiny_stream())
    with pytest.raises(FormatError, match="not an .acx"):
        read_acx(b"RIFF" + data[4:])
    for major in (1, 4):
        with pytest.raises(FormatError, match=f"version {major}"):
            read_acx(data[:4] + bytes([major]) + data[5:])
    with pytest.raises(FormatError, match="flags"):
        read_acx(data[:6] + b"\x01\x00" + data[8:])


def test_format_2_stream_is_read():
    """Format 2 = format 3 without segment rows' depth_mode byte: old files still decode."""
    stream = tiny_stream()
    data = to_bytes(stream)
    # tiny_stream's two rows end with n_q, depth_mode, label_ref, confidence:
    # drop each row's depth_mode (0) byte; rows are 6 bytes before the
    # 2-byte rate record (3.2) at the body's end, which format 2 lacks too.
    body_start = 9
    body = data[body_start : body_start + data[8]]
    row0, row1 = body[-14:-8], body[-8:-2]
    assert row0[3] == 0 and row1[3] == 0 and body[-2:] == b"\0\0"
    old_body = body[:-14] + row0[:3] + row0[4:] + row1[:3] + row1[4:]
    old = b"ACX1\x02" + data[5:8]
    old = _rewrite_head(old + data[8:], lambda _body: old_body)
    parsed = read_acx(old)
    assert [(s.start_frame, s.end_frame, s.n_q, s.label, s.adaptive) for s in parsed.segments] == \
        [(s.start_frame, s.end_frame, s.n_q, s.label, False) for s in stream.segments]
    assert [c.data for c in parsed.chunks] == [c.data for c in stream.chunks]
    with pytest.raises(FormatError):  # a format 3 body read as format 2 does not parse
        read_acx(b"ACX1\x02" + data[5:])


def test_unknown_depth_mode_is_rejected():
    data = to_bytes(tiny_stream())
    with pytest.raises(FormatError, match="depth_mode 7"):
        read_acx(_rewrite_head(data, lambda body: body[:-5] + b"\x07" + body[-4:]))


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
    start, _ = _header_span(data)
    huge = data[:8] + varint_bytes(0xFFFFFFFFF0) + data[start:]
    with pytest.raises(FormatError, match="declares"):
        read_acx(huge)
    end = _header_end(data)  # the chunk's length field
    with pytest.raises(FormatError, match="declares"):
        read_acx(data[:end] + varint_bytes(1 << 40) + data[end + 1 :])


def test_rejects_overlong_and_non_minimal_varints():
    data = to_bytes(tiny_stream())
    start, _ = _header_span(data)
    with pytest.raises(FormatError, match="non-minimal"):
        read_acx(data[:8] + bytes([data[8] | 0x80, 0x00]) + data[start:])
    with pytest.raises(FormatError, match="longer than"):
        read_acx(data[:8] + b"\xff" * 11 + data[start:])


def test_rejects_invalid_header_values():
    data = to_bytes(tiny_stream())
    # original_sample_rate_hz = 0 (first header field, a 2-byte varint for 16000)
    with pytest.raises(FormatError, match="original_sample_rate_hz"):
        read_acx(_rewrite_head(data, lambda b: b"\0" + b[2:]))
    # channels = 0 (the byte after it)
    with pytest.raises(FormatError, match="channels"):
        read_acx(_rewrite_head(data, lambda b: b[:2] + b"\0" + b[3:]))


def test_swapped_chunks_fail_their_crc():
    stream, _, _ = make_stream(n_frames=40, channels=2, chunk_frames=20)
    # Two chunks with identical coded bytes: only the chunk index in the CRC tells them apart.
    for c in stream.chunks:
        c.data = stream.chunks[0].data
    data = to_bytes(stream)
    first = _header_end(data)
    size = (len(data) - first) // 4
    chunks = [data[first + i * size : first + (i + 1) * size] for i in range(4)]
    swapped = data[:first] + chunks[1] + chunks[0] + chunks[2] + chunks[3]
    with pytest.raises(FormatError, match="CRC mismatch in chunk 0"):
        read_acx(swapped)


def test_file_object_is_read_from_its_position():
    stream, _, _ = make_stream(n_frames=100, channels=1)
    data = to_bytes(stream)
    fh = io.BytesIO(b"prefix" + data)
    fh.seek(6)
    assert read_acx(fh) == stream
    fh.seek(6)
    with AcxReader(fh) as reader:  # header, then chunks, through one reader
        assert reader.header == stream.header
        assert list(reader.iter_chunks()) == stream.chunks


def test_format_1_files_are_rejected_with_a_clear_error():
    old = b"ACX1\x01\x00\x00\x00HEAD" + bytes(40)
    with pytest.raises(FormatError, match=r"version 1\.0 .*re-encode"):
        read_acx(old)


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
