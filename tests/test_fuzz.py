"""Fuzzing the readers: mutated .acx / .aca bytes give only FormatError (or a valid result).

Mutations: bit flips, truncation, inserted / deleted bytes, random garbage,
overwritten length fields with huge values. Each example must finish quickly
(hypothesis deadline) and must not allocate much more than the input size.
Run the >= 10 000-case variants with ``pytest -m slow tests/test_fuzz.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from _format_samples import LEVELS, archive_members, make_stream, tiny_stream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptive_codec.container.aca import (
    create_archive,
    extract_archive,
    list_archive,
    read_member,
    verify_archive,
)
from adaptive_codec.container.acx import read_acx, read_chunks_in_range, read_header, to_bytes
from adaptive_codec.entropy.coder import decode_frames
from adaptive_codec.errors import AdaptiveCodecError, FormatError

# Channel 0's first segment is energy-adaptive, so mutations reach the depth map too.
_STREAM, _, _MODEL = make_stream(n_frames=40, channels=2, chunk_frames=16, cond_dim=4, adaptive=True)
VALID_ACX = to_bytes(_STREAM)
_MEMBERS = archive_members(2)
with tempfile.TemporaryDirectory() as _d:
    create_archive(Path(_d) / "a.aca", _MEMBERS)
    VALID_ACA = (Path(_d) / "a.aca").read_bytes()

SMALL_MEMBERS = [("a.acx", b"\x00\x01\x02\x03" * 4, {"duration_s": 1.0, "class_mix": {"speech": 1.0}}), ("d/b.acx", b"xyz", {})]
TINY_ACX = to_bytes(tiny_stream())
SMALL_ACX_MEMBERS = [("a.acx", TINY_ACX, {"duration_s": 0.04}), ("b.acx", TINY_ACX, {})]

ALLOC_SLACK_BYTES = 4 << 20  # parsing may allocate a few MiB of working memory, never "huge"


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """Apply 1-4 random mutations to ``base``."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "garbage", "huge", "replace_all"]))
        n = len(data)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if kind == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and n:
            del data[pos : pos + draw(st.integers(1, 16))]
        elif kind == "garbage" and n:
            junk = draw(st.binary(min_size=1, max_size=32))
            data[pos : pos + len(junk)] = junk
        elif kind == "huge" and n:
            width = draw(st.sampled_from([2, 4, 8]))
            value = draw(st.sampled_from([2 ** (8 * width) - 1, 2 ** (8 * width - 1), 2**31, 2**24, 10**9]))
            data[pos : pos + width] = (value % 2 ** (8 * width)).to_bytes(width, "little")
        elif kind == "replace_all":
            data = bytearray(draw(st.binary(max_size=256)))
    return bytes(data)


def _check_acx(data: bytes) -> None:
    tracemalloc.start()
    try:
        try:
            stream = read_acx(data)
        except FormatError:
            stream = None
        if stream is not None:
            # A mutation that still parses must decode without crashing.
            for chunk in stream.chunks:
                depths, priors, _ = stream.frame_layout(chunk.channel, chunk.start_frame, chunk.end_frame)
                adaptive = stream.adaptive_frames(chunk.channel, chunk.start_frame, chunk.end_frame)
                try:
                    decode_frames(_MODEL, chunk.data, depths, priors, stream.max_levels, adaptive=adaptive)
                except FormatError:
                    pass
        for reader in (read_header, lambda d: read_chunks_in_range(d, 10, 20)):
            try:
                reader(data)
            except FormatError:
                pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * len(data) + ALLOC_SLACK_BYTES, f"peak allocation {peak} bytes for a {len(data)}-byte input"


def _check_aca(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as top:
        d = Path(top) / "work"
        d.mkdir()
        path = d / "m.aca"
        path.write_bytes(data)
        tracemalloc.start()
        try:
            report = verify_archive(path)  # never raises for damage
            assert report.ok in (True, False)
            try:
                for entry in list_archive(path):
                    read_member(path, entry.name)
            except FormatError:
                assert not report.ok
            for salvage in (False, True):
                try:
                    extract_archive(path, d / f"out{salvage}", salvage=salvage)
                except AdaptiveCodecError:
                    pass
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 8 * len(data) + ALLOC_SLACK_BYTES
        # Nothing lands outside the extraction directories.
        assert [p.name for p in Path(top).iterdir()] == ["work"]
        assert {p.name for p in d.iterdir()} <= {"m.aca", "outFalse", "outTrue"}


FAST = settings(max_examples=200, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=10_000, deadline=5000, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FAST
@given(mutated(VALID_ACX))
def test_fuzz_acx(data):
    _check_acx(data)


@settings(FAST, max_examples=100)
@given(mutated(VALID_ACA))
def test_fuzz_aca(data):
    _check_aca(data)


@pytest.mark.slow
@SLOW
@given(mutated(VALID_ACX))
def test_fuzz_acx_slow(data):
    _check_acx(data)


@pytest.mark.slow
@SLOW
@given(mutated(VALID_ACA))
def test_fuzz_aca_slow(data):
    _check_aca(data)


def test_every_single_byte_change_of_acx_is_detected():
    for pos in range(len(VALID_ACX)):
        for delta in (0x01, 0x80, 0xFF):
            bad = bytearray(VALID_ACX)
            bad[pos] ^= delta
            with pytest.raises(FormatError):
                read_acx(bytes(bad))


@pytest.mark.parametrize("members", ["raw", "acx"])
def test_verify_detects_every_single_byte_change(tmp_path, members):
    """Raw members are stored as they are; .acx members with a dictionary and packed headers."""
    path = tmp_path / "small.aca"
    create_archive(path, SMALL_MEMBERS if members == "raw" else SMALL_ACX_MEMBERS)
    good = path.read_bytes()
    assert verify_archive(path).ok
    for pos in range(len(good)):
        for delta in (0x01, 0x80, 0xFF):
            bad = bytearray(good)
            bad[pos] ^= delta
            path.write_bytes(bytes(bad))
            assert not verify_archive(path).ok, f"change at byte {pos} (xor {delta:#x}) not detected"


def test_every_truncation_of_aca_is_detected(tmp_path):
    path = tmp_path / "t.aca"
    create_archive(path, SMALL_MEMBERS)
    good = path.read_bytes()
    for cut in range(len(good)):
        path.write_bytes(good[:cut])
        assert not verify_archive(path).ok
        with pytest.raises(FormatError):
            list_archive(path)


_INTERRUPTED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from adaptive_codec.container.aca import create_archive, append_to_archive

    path, marker, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

    def members():
        yield ("new/one.acx", b"N" * 100000, {"duration_s": 1.0})
        marker.write_text("started")
        time.sleep(60)  # killed here, half-way through the write
        yield ("new/two.acx", b"M", {})

    (create_archive if mode == "create" else append_to_archive)(path, members())
    """
)


@pytest.mark.parametrize("mode", ["create", "append"])
def test_interrupted_write_leaves_old_archive_intact(tmp_path, mode):
    path = tmp_path / "keep.aca"
    create_archive(path, _MEMBERS)
    before = path.read_bytes()
    marker = tmp_path / "marker"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_WRITER, str(path), str(marker), mode], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert path.read_bytes() == before
    assert verify_archive(path).ok
    leftovers = [p for p in tmp_path.iterdir() if p.name not in ("keep.aca", "marker")]
    assert leftovers, "the killed writer should have left its temporary file"
    for tmp in leftovers:
        assert tmp.name.startswith(".") and tmp.name.endswith(".tmp")
        with pytest.raises(FormatError):
            list_archive(tmp)
        assert not verify_archive(tmp).ok


def test_failed_write_in_process_removes_temp(tmp_path):
    path = tmp_path / "keep.aca"
    create_archive(path, _MEMBERS)
    before = path.read_bytes()

    def members():
        yield ("x.acx", b"1", {})
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        create_archive(path, members())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.aca"]


def test_huge_lengths_everywhere_are_rejected_cheaply():
    """Overwrite every 4- and 8-byte window of a small .acx with huge values."""
    for width in (4, 8):
        for pos in range(0, len(TINY_ACX) - width):
            bad = bytearray(TINY_ACX)
            bad[pos : pos + width] = b"\xff" * width
            _check_acx(bytes(bad))


def test_decoded_codes_of_valid_stream_unchanged():
    # Sanity: the fuzz base decodes to in-range indices.
    stream = read_acx(VALID_ACX)
    for chunk in stream.chunks:
        depths, priors, _ = stream.frame_layout(chunk.channel, chunk.start_frame, chunk.end_frame)
        adaptive = stream.adaptive_frames(chunk.channel, chunk.start_frame, chunk.end_frame)
        codes, depths = decode_frames(_MODEL, chunk.data, depths, priors, LEVELS, adaptive=adaptive, return_depths=True)
        assert codes.max() < 1024 and np.all(codes[depths.max() :] == 0)
