"""Structure-aware fuzzing of the .acx reader (issue 35, item 7).

tests/test_fuzz.py mutates valid bytes, so most cases die at a CRC. Here
hypothesis builds streams field by field with valid CRCs: sizes at and
beyond the bounds of docs/FORMAT.md 2.5, fields that contradict each other
(n_frames vs length_samples, segments that do not tile, chunk counts that do
not match), many segments, chunks that are empty, random or validly coded.
Every case must end in a valid stream or a FormatError (never another
exception), within a time bound and allocating little more than its size.
The fast default runs a few hundred cases; ``pytest -m slow`` runs 10,000.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest
import _hostile_acx as H
from _format_samples import LEVELS, entropy_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_codec.container.acx import AcxHeader, ProfileEntry, SegmentEntry, read_acx, read_chunks_in_range, read_header
from adaptive_codec.container.acx_header import expected_n_frames, serialize_header_body
from adaptive_codec.entropy.coder import decode_frames, encode_frames
from adaptive_codec.errors import FormatError

MODEL = entropy_model(0)
CASE_SECONDS = 2.0
ALLOC_SLACK_BYTES = 8 << 20

_RATES = [1, 8000, 16000, 24000, 44100, 48000, 1_000_000, 1_000_001]
_HOPS = [1, 160, 320, 65_536, 65_537]
_CHUNKS = [1, 2, 16, 450, 65_536, 65_537]


@st.composite
def hostile_streams(draw) -> bytes:
    """One crafted stream: a header (maybe contradictory) and chunks with valid CRCs."""
    # Most cases keep the stream sane but for one or two fields, so they get
    # past the header to the chunks and the entropy decoder; one in three
    # draws every field from the extremes.
    wild = draw(st.integers(0, 2)) == 0

    def pick(sane, extreme):
        return draw(st.sampled_from(extreme if wild or draw(st.integers(0, 9)) == 0 else sane))

    rate = pick([24_000, 44_100, 16_000], _RATES)
    internal = pick([24_000], [24_000, 1, 1_000_000])
    hop = pick([320], _HOPS)
    length = draw(st.one_of(st.integers(0, 40_000), st.sampled_from([1 << 48, (1 << 48) + 1, 10**12]))) \
        if wild else draw(st.integers(0, 40_000))
    implied = expected_n_frames(length, rate, internal, hop)
    n_frames = draw(st.one_of(
        st.just(implied), st.just(implied),
        st.integers(-2, 2).map(lambda d: max(0, implied + d)),
        st.sampled_from([0, 2 * 10**7, (1 << 32) - 1, 1 << 32]))) if wild else implied
    n_frames = min(n_frames, (1 << 64) - 1)  # what a varint can hold
    channels = pick([1, 1, 2], [1, 2, 3, 8, 9, 255])
    chunk_frames = pick([16, 450, 1], _CHUNKS)
    max_levels = pick([LEVELS], [LEVELS, 1, 64, 65])
    profiles = [ProfileEntry.builtin("speech", 0),
                ProfileEntry("custom", pick([0, 1, 2], [0, 3, 255]), {},
                             np.full(pick([4, 32], [0, 4096]), pick([0.5], [0.5, 3e38]), np.float32))]
    # Segment rows: a tiling of n_frames, perturbed or not. Row attributes come
    # from a seeded generator: thousands of hypothesis draws per case are slow.
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    per_channel = draw(st.booleans()) and channels <= 8
    many = draw(st.sampled_from([False, False, False, True]))
    perturb = draw(st.integers(0, 9)) == 0  # a gap, an overlap or a short table
    profile_choices = [0, 1, 2] if wild else [0, 1]
    depth_choices = [0, 1, 3, LEVELS, LEVELS + 1, 64] if wild else [0, 1, 3, LEVELS]
    segments: list[SegmentEntry] = []
    for ch in (range(channels) if per_channel else [None]):
        limit = min(n_frames, 1000)
        count = limit if many else int(rng.integers(1, 7))
        cuts = np.unique(rng.integers(1, max(2, limit), max(0, count - 1))) if count > 1 else []
        bounds = [0] + [int(c) for c in cuts if c < n_frames] + [n_frames]
        if perturb:
            bounds[-1] = max(bounds[-2] + 1, bounds[-1] + int(rng.choice([-1, 1, 5])))
        for a, b in zip(bounds, bounds[1:]):
            if b > a:
                segments.append(SegmentEntry(
                    a, b, int(rng.choice(profile_choices)), int(rng.choice(depth_choices)),
                    str(rng.choice(["speech", "custom", "x" * 255])), 1.0, channel=ch,
                    adaptive=bool(rng.integers(0, 2))))
    h = AcxHeader(
        original_sample_rate_hz=rate, channels=channels, length_samples=length, internal_sample_rate_hz=internal,
        hop_samples=hop, n_frames=n_frames, codebook_size=pick([1024], [1024, 2, 65_536]),
        max_levels=max_levels, weights_version="w", weights_sha256_prefix=H.WEIGHTS, entropy_digest_prefix=MODEL.digest()[:16],
        profiles=profiles, segments=segments, stereo_mode="mono", chunk_frames=chunk_frames)
    body = serialize_header_body(h)
    declared = -(-n_frames // chunk_frames) * channels
    n_chunks = min(declared, 200) + pick([0], [0, -1, 1])
    kind = draw(st.sampled_from(["empty", "random", "coded", "coded"]))
    chunks = []
    for i in range(max(0, n_chunks)):
        if kind == "empty":
            chunks.append(b"")
        elif kind == "random":
            chunks.append(rng.bytes(4 * int(rng.integers(0, 8))))
        else:
            chunks.append(_coded_chunk(h, i, rng))
    return H.frame(body, chunks)


def _coded_chunk(h: AcxHeader, index: int, rng: np.random.Generator) -> bytes:
    """The chunk a writer would produce for this header's layout (or random bytes where it cannot)."""
    ch, span = index % max(h.channels, 1), index // max(h.channels, 1)
    lo, hi = span * h.chunk_frames, min(h.n_frames, (span + 1) * h.chunk_frames)
    if hi - lo > 2000:  # coding that many random frames is slow and reaches nothing new
        return rng.bytes(64)
    try:
        depths, priors, _ = h.frame_layout(ch, lo, hi)
        adaptive = h.adaptive_frames(ch, lo, hi)
        depths = np.minimum(depths, LEVELS)
        codes = rng.integers(0, 1024, (LEVELS, hi - lo))
        return encode_frames(MODEL, codes, depths, np.minimum(priors, 2), adaptive=adaptive)
    except (ValueError, FormatError, IndexError):
        return rng.bytes(4)


def check_stream(data: bytes, seconds: float | None = CASE_SECONDS * 4) -> None:
    """Reading, range reading and entropy decoding end in a result or a FormatError, fast, in bounded memory.

    ``seconds`` bounds the time under tracemalloc (which slows Python code
    two to three times); None skips the time check.
    """
    t0 = time.perf_counter()
    tracemalloc.start()
    try:
        for read in (read_header, lambda d: read_chunks_in_range(d, 5, 40)):
            try:
                read(data)
            except FormatError:
                pass
        try:
            stream = read_acx(data)
        except FormatError:
            stream = None
        for chunk in stream.chunks if stream is not None else []:
            depths, priors, _ = stream.frame_layout(chunk.channel, chunk.start_frame, chunk.end_frame)
            try:
                decode_frames(MODEL, chunk.data, depths, priors, stream.max_levels,
                              adaptive=stream.adaptive_frames(chunk.channel, chunk.start_frame, chunk.end_frame))
            except FormatError:
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(data) + ALLOC_SLACK_BYTES, f"peak allocation {peak} bytes for a {len(data)}-byte input"
    assert seconds is None or time.perf_counter() - t0 < seconds


FAST = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
SLOW = settings(FAST, max_examples=10_000)


@FAST
@given(hostile_streams())
def test_structure_aware_fuzz_acx(data):
    check_stream(data)


@pytest.mark.slow
@SLOW
@given(hostile_streams())
def test_structure_aware_fuzz_acx_slow(data):
    check_stream(data)


# cpu_bomb at 2,000 segments: tracemalloc makes its 20,000 chunks take 20 s
# (tests/test_hostile_acx.py runs the full size through the command line).
@pytest.mark.parametrize("build", [lambda: H.cpu_bomb(2000), H.symbol_bomb, H.memory_bomb_truncated, H.many_channels])
def test_crafted_bombs_within_bounds(build):
    data = build()
    check_stream(data, seconds=None)  # memory
    t0 = time.perf_counter()
    try:
        read_acx(data)
    except FormatError:
        pass
    assert time.perf_counter() - t0 < CASE_SECONDS * 2  # loosely: benchmarks/hostile_acx.py measures it
