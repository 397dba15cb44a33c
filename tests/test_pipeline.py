"""The encoder's stages used one by one: the depth allocation stage, the rate rule, the piece path.

The facade (:class:`AdaptiveCodec`) only wires these stages, so calling them
by hand must give the facade's bytes; the Dask back end's split path (pieces
coded independently, then assembled) must too.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch

from adaptive_codec.audio import load_audio
from adaptive_codec.backbone.model import n_q_for_bitrate
from adaptive_codec.codec import AdaptiveCodec
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.pipeline.encoder import (
    build_header,
    code_channels,
    coding_stage,
    rate_stage,
    write_stream,
)
from adaptive_codec.pipeline.signal import array_blocks, backbone_pieces, code_piece
from adaptive_codec.container.acx import read_header
from adaptive_codec.planning.conditioning import FrameConditioning, frame_conditioning
from adaptive_codec.planning.depth_allocation import AdaptiveSegment, DepthAllocator, allocate_depths
from adaptive_codec.planning.rate import DepthRule, Rate, depth_for_bitrate
from adaptive_codec.resources import example_path


@pytest.fixture(scope="module")
def codec():
    torch.set_num_threads(1)
    return AdaptiveCodec.default()


@pytest.fixture(scope="module")
def speech():
    audio, info = load_audio(example_path("speech"))
    return audio[:1, : 8 * info.sample_rate_hz], info.sample_rate_hz  # mono: the left channel


def _energy(n: int, seed: int = 0) -> np.ndarray:
    """Log energies with loud and quiet stretches, like speech with pauses."""
    rng = np.random.default_rng(seed)
    return (np.repeat(rng.uniform(-6, -1, n // 25 + 1), 25)[:n] + rng.normal(0, 0.2, n)).astype(np.float32)


def test_allocator_allocates_each_span_of_each_chunk_like_allocate_depths():
    n, cf = 1000, 90
    seg_a = AdaptiveSegment(0, 410, 6, 2.5, 11.0)
    seg_b = AdaptiveSegment(600, 1000, 4, 2.5, 11.0)
    nominal = np.full(n, 3, np.int64)
    nominal[:410], nominal[600:] = 6, 4
    energy = _energy(n)
    allocator = DepthAllocator(nominal, [seg_a, seg_b], cf, 16)
    allocator.allocate(0, n, energy)
    depths = allocator.finish()
    expected = nominal.copy()
    for seg in (seg_a, seg_b):
        a = seg.start_frame
        while a < seg.end_frame:
            b = min(seg.end_frame, (a // cf + 1) * cf)
            previous = int(expected[a - 1]) if a % cf else 0
            expected[a:b] = allocate_depths(energy[a:b], seg.n_q, seg.slope, 16, 11.0, previous=previous)
            a = b
    np.testing.assert_array_equal(depths, expected)
    assert (depths[410:600] == 3).all()  # the fixed segment keeps its depth
    assert depths[:410].min() < 6 < depths[:410].max()


def test_allocator_gives_the_same_depths_whatever_the_pieces():
    n, cf = 1000, 90
    segs = [AdaptiveSegment(0, 1000, 5, 3.0, 11.0)]
    energy = _energy(n, 1)
    whole = DepthAllocator(np.full(n, 5), segs, cf, 16)
    whole.allocate(0, n, energy)
    pieced = DepthAllocator(np.full(n, 5), segs, cf, 16)
    searched = []
    for a, b in [(0, 135), (135, 500), (500, 1000)]:  # pieces that cut chunks in two
        searched.append(pieced.allocate(a, b, energy[a:b]))
    np.testing.assert_array_equal(pieced.finish(), whole.finish())
    # A frame of a chunk still missing energies is searched at the segment's largest depth.
    assert (searched[0][90:135] == 10).all()


def test_allocator_refuses_to_finish_without_energies():
    allocator = DepthAllocator(np.full(200, 5), [AdaptiveSegment(0, 200, 5, 3.0, 11.0)], 90, 16)
    allocator.allocate(0, 90, _energy(90))
    with pytest.raises(ValueError, match="no frame energies"):
        allocator.finish()


def test_rate_request_and_depth_rule(codec):
    assert Rate.of(6.0) == Rate(6.0) and Rate.of(None, 0.5) == Rate(scale=0.5)
    assert Rate.of(Rate(scale=2.0)) is not None
    with pytest.raises(AdaptiveCodecError, match="not both"):
        Rate.of(Rate(3.0), 0.5)
    with pytest.raises(AdaptiveCodecError, match="positive"):
        Rate.of(-1.0)
    cfg = codec.backbone.config
    for kbps in (0.5, 1.5, 3.0, 6.0, 12.0, 100.0):
        assert depth_for_bitrate(kbps, cfg.n_levels, cfg.bits_per_index, cfg.frame_rate_hz) == \
            n_q_for_bitrate(kbps, cfg)
    rule = DepthRule(cfg.n_levels, cfg.bits_per_index, cfg.frame_rate_hz, None)
    speech = codec.registry.get("speech")
    assert rule.depth(speech, Rate(3.0)) == n_q_for_bitrate(3.0, cfg)
    assert rule.depth(speech, Rate(scale=2.0)) == n_q_for_bitrate(2 * speech.bitrate_kbps, cfg)
    # With the tables' expected bits a bitrate buys more levels than at fixed length.
    tables = codec.parts.depth_rule()
    assert tables.needs_prior and tables.depth(speech, Rate(), 0) >= rule.depth(speech, Rate())


def test_stages_by_hand_give_the_facades_bytes(codec, speech):
    audio, sr = speech
    expected = codec.encode(audio[0], sr, profile="auto")
    block = 4 * sr
    scan, plan = codec.measure_and_plan(lambda: array_blocks(audio, block), sr, "auto", Rate())
    header = build_header(codec.parts, scan, sr, plan)
    levels, allocators = coding_stage(codec.parts, header, plan)
    assert allocators == [None] and levels == [codec.backbone.config.n_levels]  # rate control: full depth
    cond = FrameConditioning(header, 0, codec.parts.embeddings())
    buf = io.BytesIO()
    with rate_stage(codec.parts, header, plan) as stage:
        for ch, piece in backbone_pieces(codec.backbone, array_blocks(audio, block), sr, scan.n_samples, False, levels):
            stage.add(ch, piece.start_frame, *code_piece(codec.backbone, piece, cond, levels[ch]))
        written, outcome = stage.finish(buf)
    assert buf.getvalue() == expected
    assert any(s.adaptive for s in written.segments)  # the speech profile allocates depths per frame
    assert abs(outcome.ratio - 1) <= 0.03 and outcome.actual_bps == len(expected) * 8 / (audio.shape[-1] / sr)


def test_fixed_depth_stages_by_hand_give_the_facades_bytes(codec, speech):
    """A profile given as n_q (no rate to reach) keeps the fixed-depth path: header first, chunks as coded."""
    audio, sr = speech
    fixed = dataclasses.replace(codec.registry.get("music"), name="music_nq", n_q=6, bitrate_kbps=None,
                                base="music")
    expected = codec.encode(audio[0], sr, profile=fixed)
    block = 4 * sr
    scan, plan = codec.measure_and_plan(lambda: array_blocks(audio, block), sr, fixed, Rate())
    assert plan[0].target_kbps is None and rate_stage(codec.parts, build_header(codec.parts, scan, sr, plan), plan) is None
    header = build_header(codec.parts, scan, sr, plan)
    coded = code_channels(codec.parts, header, plan, array_blocks(audio, block))
    buf = io.BytesIO()
    write_stream(codec.parts, buf, header, coded)
    assert buf.getvalue() == expected
    assert read_header(expected).asked_bps == 0 and [s.n_q for s in header.segments] == [6]


def test_pieces_coded_apart_and_assembled_give_the_same_bytes(codec, speech):
    """The Dask split path without a cluster: every piece on a fresh 'worker', then assembly."""
    audio, sr = speech
    audio = np.concatenate([audio, audio, audio], axis=-1)  # 24 s: two backbone pieces
    expected = codec.encode(audio[0], sr, profile="speech")
    block = 4 * sr
    parts = codec.parts
    scan, plan = codec.measure_and_plan(lambda: array_blocks(audio, block), sr, "speech", Rate())
    header = build_header(parts, scan, sr, plan)
    levels, allocators = coding_stage(parts, header, plan)
    pieces = list(backbone_pieces(parts.backbone, array_blocks(audio, block), sr, scan.n_samples, False, levels))
    assert len(pieces) == 2
    cond = torch.from_numpy(frame_conditioning(header, 0, parts.embeddings()))
    results = [(ch, piece.start_frame, piece.end_frame,
                *code_piece(parts.backbone, piece, cond, levels[ch], allocators[ch]))
               for ch, piece in reversed(pieces)]  # any order, any worker
    buf = io.BytesIO()
    with rate_stage(parts, header, plan) as stage:
        for ch, a, b, piece_codes, energy in sorted(results, key=lambda r: r[1]):
            stage.add(ch, a, piece_codes, energy)
        stage.finish(buf)
    assert buf.getvalue() == expected
