"""Hostile ``.acx`` streams built from docs/FORMAT.md (issue 35), shared by the tests and the benchmark.

Not a test module. Every builder returns the bytes of one crafted stream with
valid CRCs, so the reader gets past the framing and meets the field that is
wrong. ``weights`` and ``digest`` are the 16-hex prefixes of the weights and
entropy tables the stream claims (the shipped ones for cases that must reach
the decoder); the default placeholders suffice for cases a reader refuses on
its own.

``python tests/_hostile_acx.py`` rewrites the committed corpus under
tests/hostile/ (the small, weights-independent cases).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from adaptive_codec.container.acx import FORMAT_MINOR, MAGIC, AcxHeader, ProfileEntry, SegmentEntry
from adaptive_codec.container.acx_header import expected_n_frames, serialize_header_body
from adaptive_codec.container.binary import crc32, varint_bytes

WEIGHTS = "11" * 8
DIGEST = "22" * 8
CORPUS = Path(__file__).resolve().parent / "hostile"


def frame(body: bytes, chunks: list[bytes], major: int = 3, body_has_sections: bool = False) -> bytes:
    """Preamble + header frame (CRC) + chunks (each with its index-bound CRC)."""
    # The body is the current writer's: minor 1 when it ends with extension sections, else 0.
    minor = FORMAT_MINOR if major == 3 and body_has_sections else 0
    pre = MAGIC + bytes([major, minor, 0, 0])
    length = varint_bytes(len(body))
    out = bytearray(pre + length + body + crc32(pre, length, body).to_bytes(4, "little"))
    for i, data in enumerate(chunks):
        n = varint_bytes(len(data))
        out += n + data + crc32(i.to_bytes(4, "little"), n, data).to_bytes(4, "little")
    return bytes(out)


def header(*, n_frames: int | None = None, length_samples: int = 72_000, channels: int = 1,
           chunk_frames: int = 450, segments: list[SegmentEntry] | None = None, n_q: int = 0,
           profiles: list[ProfileEntry] | None = None, weights: str = WEIGHTS, digest: str = DIGEST,
           rate_hz: int = 24_000) -> AcxHeader:
    """A header at the shipped layout (24 kHz, hop 320, 1024 codes, 16 levels); fields as given, unchecked."""
    implied = expected_n_frames(length_samples, rate_hz, 24_000, 320)
    n_frames = implied if n_frames is None else n_frames
    return AcxHeader(
        original_sample_rate_hz=rate_hz, channels=channels, length_samples=length_samples,
        internal_sample_rate_hz=24_000, hop_samples=320, n_frames=n_frames, codebook_size=1024,
        max_levels=16, weights_version="0.dev", weights_sha256_prefix=weights, entropy_digest_prefix=digest,
        profiles=profiles or [ProfileEntry.builtin("speech", 0)],
        segments=segments if segments is not None else [SegmentEntry(0, n_frames, 0, n_q, "speech")],
        stereo_mode="mono" if channels == 1 else "independent", chunk_frames=chunk_frames)


def n_chunks(h: AcxHeader) -> int:
    return -(-h.n_frames // h.chunk_frames) * h.channels


def memory_bomb_inconsistent(frames: int = 20_000_000) -> bytes:
    """3 s of length declaring ``frames`` frames, one chunk of 44,445 present (issue: 3.1 GB, exit 0)."""
    return frame(serialize_header_body(header(n_frames=frames)), [b""])


def memory_bomb_truncated(**kw) -> bytes:
    """A consistent 74-hour header (2·10^7 frames) with one chunk present: a truncated stream."""
    h = header(length_samples=(20_000_000 - 1) * 320, **kw)
    return frame(serialize_header_body(h), [b""])


def max_frames() -> bytes:
    """n_frames = 2^32 - 1 (issue: "internal error: MemoryError ... 128 GiB")."""
    return frame(serialize_header_body(header(n_frames=(1 << 32) - 1)), [b""])


def many_channels(channels: int = 255, frames: int = 1_000_000, **kw) -> bytes:
    """255 channels of 10^6 silent frames (issue: 23 s, 9.1 GB before the channel limit)."""
    h = header(length_samples=(frames - 1) * 320, channels=channels, chunk_frames=65_536, **kw)
    return frame(serialize_header_body(h), [b""] * n_chunks(h))


def length_mismatch() -> bytes:
    """length_samples of 10 h with the frames of 3 s (issue: info says 10 h, decode crashes)."""
    return frame(serialize_header_body(header(length_samples=10 * 3600 * 24_000, n_frames=226)), [b""])


def segments_gap() -> bytes:
    """Two segments that leave frame 100..101 uncovered."""
    h = header()
    h.segments = [SegmentEntry(0, 100, 0, 0, "speech"), SegmentEntry(101, h.n_frames, 0, 0, "speech")]
    body = serialize_header_body(h)  # rows store lengths: 100 + 125 frames, one short of 226
    return frame(body, [b""])


def cpu_bomb(segments: int = 20_000, **kw) -> bytes:
    """20,000 one-frame segments with chunk_frames = 1 (issue: 4 min 26 s in ``info``)."""
    h = header(length_samples=(segments - 1) * 320, chunk_frames=1,
               segments=[SegmentEntry(i, i + 1, 0, 0, "speech") for i in range(segments)], **kw)
    return frame(serialize_header_body(h), [b""] * n_chunks(h))


def symbol_bomb(**kw) -> bytes:
    """One 65,536-frame chunk at depth 16 (10^6 symbols) in 4 bytes: a CPU bomb for the entropy decoder."""
    frames = 65_536
    h = header(length_samples=(frames - 1) * 320, chunk_frames=frames, n_q=16, **kw)
    return frame(serialize_header_body(h), [b"\0\0\0\x3c"] * n_chunks(h))


def extreme_conditioning(stream: bytes, value: float = 3e38) -> bytes:
    """``stream`` (a valid single-profile stream) with its profile replaced by an embedded one at ``value``."""
    from adaptive_codec.container.acx import read_acx, to_bytes

    s = read_acx(stream)
    s.profiles = [ProfileEntry("loud", 0, {}, np.full(32, value, np.float32))]
    for seg in s.segments:
        seg.profile_index = 0
        seg.label = "loud"
    return to_bytes(s)


#: The committed corpus: name -> (builder, a word the refusal must contain).
CORPUS_CASES = {
    "memory_bomb_inconsistent.acx": (memory_bomb_inconsistent, "n_frames"),
    "memory_bomb_truncated.acx": (memory_bomb_truncated, "truncated"),
    "max_frames.acx": (max_frames, "n_frames"),
    "many_channels.acx": (lambda: many_channels(frames=10_000), "channels"),
    "length_mismatch.acx": (length_mismatch, "n_frames"),
    "segments_gap.acx": (segments_gap, "segments"),
}


def write_corpus() -> None:
    CORPUS.mkdir(exist_ok=True)
    for name, (build, _) in CORPUS_CASES.items():
        (CORPUS / name).write_bytes(build())


if __name__ == "__main__":
    write_corpus()
    sys.exit(0)
