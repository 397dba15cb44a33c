"""Small valid .acx / .aca samples shared by the format tests (not a test module)."""

from __future__ import annotations

import hashlib

import numpy as np

from adaptive_codec.bitstream import AcxChunk, AcxHeader, AcxStream, ProfileEntry, SegmentEntry, chunk_spans
from adaptive_codec.entropy import EntropyModel, encode_frames

LEVELS = 8
K = 1024


def entropy_model(seed: int = 0) -> EntropyModel:
    rng = np.random.default_rng(seed)
    return EntropyModel.from_logits(rng.normal(size=(3, LEVELS, K)) * 3)


def make_stream(
    n_frames: int = 500,
    channels: int = 2,
    chunk_frames: int = 225,
    seed: int = 0,
    model: EntropyModel | None = None,
    cond_dim: int = 32,
) -> tuple[AcxStream, np.ndarray, EntropyModel]:
    """A stereo stream with a custom profile, shared and per-channel segments.

    Returns the stream, the codes (channels, LEVELS, n_frames) and the model.
    """
    model = model or entropy_model(seed)
    rng = np.random.default_rng(seed)
    profiles = [
        ProfileEntry("speech", 0, {"bitrate_kbps": 3.0, "description": "built-in"}, np.arange(cond_dim, dtype=np.float32) / 7),
        ProfileEntry("podcast", 0, {"base": "speech", "bitrate_kbps": 4.5, "loss_weights": {"mel": 1.0}}, np.linspace(-1, 1, cond_dim, dtype=np.float32)),
        ProfileEntry("music", 1, {"bitrate_kbps": 6}, np.ones(cond_dim, np.float32)),
    ]
    cut = n_frames // 3
    segments = [
        SegmentEntry(0, cut, 1, 4, "podcast", 0.8, channel=0),
        SegmentEntry(cut, n_frames, 2, 8, "music", 0.6, channel=0),
    ]
    for c in range(1, channels):
        segments.append(SegmentEntry(0, n_frames, 0, 3, "speech", 0.95, channel=c))
    header = AcxHeader(
        original_sample_rate_hz=44100,
        channels=channels,
        length_samples=n_frames * 588,
        internal_sample_rate_hz=24000,
        hop_samples=320,
        n_frames=n_frames,
        codebook_size=K,
        max_levels=LEVELS,
        weights_id="0.dev1200+1a2b3c4d5e6f7a8b",
        weights_sha256=hashlib.sha256(b"weights").hexdigest(),
        entropy_model_digest=model.digest(),
        profiles=profiles,
        segments=segments,
        stereo_mode="dual_mono" if channels > 1 else "mono",
        chunk_frames=chunk_frames,
    )
    codes = rng.integers(0, K, (channels, LEVELS, n_frames))
    chunks = []
    for start, end in chunk_spans(n_frames, chunk_frames):
        for c in range(channels):
            depths, priors, _ = header.frame_layout(c, start, end)
            chunks.append(AcxChunk(c, start, end - start, encode_frames(model, codes[c, :, start:end], depths, priors)))
    return AcxStream.from_header(header, chunks), codes, model


def tiny_stream() -> AcxStream:
    """The worked example of docs/FORMAT.md: mono, 2 frames, one profile, one chunk."""
    model = EntropyModel.uniform(1, 1, 16, precision_bits=8)
    header = AcxHeader(
        original_sample_rate_hz=16000,
        channels=1,
        length_samples=640,
        internal_sample_rate_hz=16000,
        hop_samples=320,
        n_frames=2,
        codebook_size=16,
        max_levels=1,
        weights_id="w1",
        weights_sha256="11" * 32,
        entropy_model_digest="22" * 32,
        profiles=[ProfileEntry("speech", 0, {"n_q": 1}, np.array([0.5, -1.0], np.float32))],
        segments=[SegmentEntry(0, 2, 0, 1, "speech", 1.0)],
        stereo_mode="mono",
        chunk_frames=225,
    )
    data = encode_frames(model, np.array([[3, 12]]), np.array([1, 1]), np.array([0, 0]))
    return AcxStream.from_header(header, [AcxChunk(0, 0, 2, data)])


def archive_members(n: int = 3, seed: int = 0) -> list[tuple[str, bytes, dict]]:
    from adaptive_codec.bitstream import to_bytes

    out = []
    for i in range(n):
        stream, _, _ = make_stream(n_frames=20 + 7 * i, channels=1, chunk_frames=16, seed=seed + i, cond_dim=4)
        out.append((f"show/ep{i}.acx", to_bytes(stream), {"duration_s": 0.5 + i, "class_mix": {"speech": 0.25, "music": 0.75}, "original_size_bytes": 1000 * (i + 1)}))
    return out
