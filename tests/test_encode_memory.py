"""Encode memory does not grow with the input (issue 35: the 10-hour target).

The encoder writes every chunk as soon as it is final (:class:`ChunkStream`)
and makes conditioning rows per piece (:class:`FrameConditioning`); both must
give exactly the bytes of the whole-array path (:func:`code_channels` +
:func:`write_stream`, which the Dask back end assembles), for every channel
layout and chunk size. Peak RSS against input length is measured by
``benchmarks/long_file_memory.py``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from adaptive_codec.audio import load_audio
from adaptive_codec.codec import AdaptiveCodec
from adaptive_codec.pipeline.encoder import (
    ChunkStream,
    build_header,
    code_channels,
    coded_levels,
    coding_stage,
    encode_stream,
    rate_stage,
    write_stream,
)
from adaptive_codec.pipeline.signal import array_blocks, backbone_pieces, code_piece
from adaptive_codec.planning.conditioning import FrameConditioning, frame_conditioning
from adaptive_codec.planning.rate import Rate
from adaptive_codec.resources import example_path


@pytest.fixture(scope="module")
def clips():
    torch.set_num_threads(1)
    speech, info = load_audio(example_path("speech"))
    music, _ = load_audio(example_path("music"))
    return speech, music, info.sample_rate_hz


def _both_paths(codec: AdaptiveCodec, audio: np.ndarray, sr: int, profile: str) -> tuple[bytes, bytes]:
    """The streamed encoder's bytes, and the rate stage's given every channel's indices at once."""
    block = 4 * sr
    scan, plan = codec.measure_and_plan(lambda: array_blocks(audio, block), sr, profile, Rate())
    streamed = io.BytesIO()
    encode_stream(codec.parts, streamed, lambda: array_blocks(audio, block), sr, scan, plan)
    header = build_header(codec.parts, scan, sr, plan)
    levels, _ = coding_stage(codec.parts, header, plan)
    cond = FrameConditioning(header, 0, codec.parts.embeddings())
    codes = [np.zeros((max(lv, 1), header.n_frames), np.int16) for lv in levels]
    energy = np.zeros(header.n_frames, np.float32)
    for ch, piece in backbone_pieces(codec.backbone, array_blocks(audio, block), sr, scan.n_samples,
                                     header.stereo_mode == "mid_side", levels):
        codes[ch][:, piece.start_frame : piece.end_frame], e = code_piece(codec.backbone, piece, cond, levels[ch])
        if ch == 0:
            energy[piece.start_frame : piece.end_frame] = e
    whole = io.BytesIO()
    with rate_stage(codec.parts, header, plan) as stage:
        for ch, lv in enumerate(levels):
            if lv > 0:
                stage.add(ch, 0, codes[ch], energy if ch == 0 else None)
        stage.finish(whole)
    return streamed.getvalue(), whole.getvalue()


_LAYOUTS = [("mid_side", 450), ("near_mono", 100)]  # 100 does not divide the backbone's 1350-frame pieces
_MORE = [("mono", 450), ("mono", 100), ("mid_side", 100), ("near_mono", 450), ("three", 450), ("three", 100)]


@pytest.mark.parametrize("layout, chunk_frames",
                         _LAYOUTS + [pytest.param(*case, marks=pytest.mark.slow) for case in _MORE])
def test_streamed_chunks_equal_the_whole_array_path(clips, layout, chunk_frames):
    speech, music, sr = clips
    n = 20 * sr  # two backbone pieces
    mixed = np.concatenate([speech, music], axis=-1)[:, :n]
    audio = {"mono": mixed[:1], "mid_side": mixed,
             "near_mono": np.stack([mixed[0], mixed[0] * 0.999]),  # side below -30 dB: not coded
             "three": np.concatenate([mixed, mixed[:1] * 0.5])}[layout]
    codec = AdaptiveCodec.default() if chunk_frames == 450 else _codec(chunk_frames)
    streamed, whole = _both_paths(codec, np.ascontiguousarray(audio), sr, "auto" if layout != "three" else "speech")
    assert streamed == whole


def _codec(chunk_frames: int) -> AdaptiveCodec:
    base = AdaptiveCodec.default()
    return AdaptiveCodec(base.backbone, base.weights_meta, base.registry, classifier=base.classifier,
                         chunk_frames=chunk_frames, entropy_model=base.entropy_model)


def test_chunk_stream_keeps_about_one_piece(clips):
    speech, _, sr = clips
    codec = AdaptiveCodec.default()
    audio = np.concatenate([speech[:1]] * 4, axis=-1)  # 44 s: three pieces
    scan, plan = codec.measure_and_plan(lambda: array_blocks(audio, 4 * sr), sr, "ambient", Rate())
    header = build_header(codec.parts, scan, sr, plan)
    levels = coded_levels(header)
    chunks = ChunkStream(codec.parts, header, levels, [None])
    written, held = 0, []
    for start in range(0, header.n_frames, 1350):
        end = min(header.n_frames, start + 1350)
        chunks.add(0, start, np.zeros((levels[0], end - start), np.int16))
        written += len(list(chunks.ready()))
        held.append(sum(c.shape[1] for _, c in chunks._pieces[0]))
    assert written == -(-header.n_frames // header.chunk_frames)
    assert max(held) < header.chunk_frames  # written chunks' indices are dropped at once


def test_frame_conditioning_rows_equal_the_whole_stream(clips):
    speech, music, sr = clips
    codec = AdaptiveCodec.default()
    audio = np.concatenate([speech, music, speech], axis=-1)
    scan, plan = codec.measure_and_plan(lambda: array_blocks(audio, 4 * sr), sr, "auto", Rate())
    header = build_header(codec.parts, scan, sr, plan)
    table = codec.parts.embeddings()
    for ch in range(header.channels):
        whole = frame_conditioning(header, ch, table)
        lazy = FrameConditioning(header, ch, table)
        for a, b in [(0, 10), (0, header.n_frames), (17, 1400), (header.n_frames - 5, header.n_frames + 40),
                     (-30, 12)]:
            np.testing.assert_array_equal(lazy.rows(a, b), whole[max(0, a) : b])
