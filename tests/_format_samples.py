"""Small valid .acx / .aca samples shared by the format tests (not a test module)."""

from __future__ import annotations

import hashlib

import numpy as np

from adaptive_codec.container.acx import AcxChunk, AcxHeader, AcxStream, ProfileEntry, SegmentEntry, chunk_order
from adaptive_codec.planning.depth_allocation import allocate_depths
from adaptive_codec.entropy.coder import encode_frames
from adaptive_codec.entropy.tables import EntropyModel

LEVELS = 8
K = 1024


def entropy_model(seed: int = 0, contexts: int = 9) -> EntropyModel:
    """Random context-model tables (``contexts`` groups per level, the last one the start context)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(3, LEVELS, contexts, K)) * 3
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return EntropyModel.from_probabilities(probs, rng.integers(0, contexts, (LEVELS, K)), contexts - 1)


def make_stream(
    n_frames: int = 500,
    channels: int = 2,
    chunk_frames: int = 225,
    seed: int = 0,
    model: EntropyModel | None = None,
    cond_dim: int = 32,
    adaptive: bool = False,
) -> tuple[AcxStream, np.ndarray, EntropyModel]:
    """A stream with a built-in and two custom profiles and per-channel segments.

    With ``adaptive``, channel 0's first segment has energy-adaptive depth
    (depths from :func:`allocate_depths` on a synthetic energy curve).
    Returns the stream, the codes (channels, LEVELS, n_frames; 0 beyond each
    frame's depth when ``adaptive``) and the model.
    """
    model = model or entropy_model(seed)
    rng = np.random.default_rng(seed)
    profiles = [
        ProfileEntry.builtin("speech", 0),
        ProfileEntry("podcast", 0, {"base": "speech", "bitrate_kbps": 4.5, "loss_weights": {"mel": 1.0}}, np.linspace(-1, 1, cond_dim, dtype=np.float32)),
        ProfileEntry("orchestral", 1, {"bitrate_kbps": 6}, np.ones(cond_dim, np.float32)),
    ]
    cut = n_frames // 3
    segments = [
        SegmentEntry(0, cut, 1, 4, "podcast", 0.8, channel=0, adaptive=adaptive),
        SegmentEntry(cut, n_frames, 2, 8, "music", 0.6, channel=0),  # label not a profile name
    ]
    for c in range(1, channels):
        segments.append(SegmentEntry(0, n_frames, 0, 3, "speech", 0.95, channel=c))
    header = AcxHeader(
        original_sample_rate_hz=44100,
        channels=channels,
        length_samples=(n_frames - 1) * 588,  # 320 samples a frame at 24 kHz; the MDCT adds one frame
        internal_sample_rate_hz=24000,
        hop_samples=320,
        n_frames=n_frames,
        codebook_size=K,
        max_levels=LEVELS,
        weights_version="0.dev1200",
        weights_sha256_prefix=hashlib.sha256(b"weights").hexdigest()[:16],
        entropy_digest_prefix=model.digest()[:16],
        profiles=profiles,
        segments=segments,
        stereo_mode="independent" if channels > 1 else "mono",
        chunk_frames=chunk_frames,
    )
    codes = rng.integers(0, K, (channels, LEVELS, n_frames))
    depths = np.stack([header.frame_layout(c, 0, n_frames)[0] for c in range(channels)])
    if adaptive:
        energy = -2 + np.sin(np.arange(cut) / 5.0) * 2
        for a in range(0, cut, chunk_frames):  # per chunk span, as the codec allocates
            b = min(cut, a + chunk_frames)
            depths[0, a:b] = allocate_depths(energy[a:b], 4, 4.0, LEVELS, 10.0)
        codes = np.where(np.arange(LEVELS)[None, :, None] < depths[:, None, :], codes, 0)
    chunks = []
    for c, start, n in chunk_order(header):
        _, priors, _ = header.frame_layout(c, start, start + n)
        chunks.append(AcxChunk(c, start, n, encode_frames(model, codes[c, :, start : start + n], depths[c, start : start + n],
                                                          priors, adaptive=header.adaptive_frames(c, start, start + n))))
    return AcxStream.from_header(header, chunks), codes, model


def tiny_stream() -> AcxStream:
    """The worked example of docs/FORMAT.md: mono, 2 frames, a built-in and a custom profile, one chunk."""
    model = EntropyModel.uniform(1, 1, 16, precision_bits=8)
    header = AcxHeader(
        original_sample_rate_hz=16000,
        channels=1,
        length_samples=320,  # one hop: ceil(320 / 320) + 1 = 2 frames
        internal_sample_rate_hz=16000,
        hop_samples=320,
        n_frames=2,
        codebook_size=16,
        max_levels=1,
        weights_version="w1",
        weights_sha256_prefix="11" * 8,
        entropy_digest_prefix="22" * 8,
        profiles=[ProfileEntry.builtin("speech", 0), ProfileEntry("lecture", 0, {"n_q": 1}, np.array([0.5, -1.0], np.float32))],
        segments=[SegmentEntry(0, 1, 0, 1, "speech", 1.0), SegmentEntry(1, 2, 1, 1, "talk", 0.6)],
        stereo_mode="mono",
        chunk_frames=225,
    )
    data = encode_frames(model, np.array([[3, 12]]), np.array([1, 1]), np.array([0, 0]))
    return AcxStream.from_header(header, [AcxChunk(0, 0, 2, data)])


def archive_members(n: int = 3, seed: int = 0) -> list[tuple[str, bytes, dict]]:
    from adaptive_codec.container.acx import to_bytes

    out = []
    for i in range(n):
        stream, _, _ = make_stream(n_frames=20 + 7 * i, channels=1, chunk_frames=16, seed=seed + i, cond_dim=4)
        out.append((f"show/ep{i}.acx", to_bytes(stream), {"duration_s": 0.5 + i, "class_mix": {"speech": 0.25, "music": 0.75}, "original_size_bytes": 1000 * (i + 1)}))
    return out
