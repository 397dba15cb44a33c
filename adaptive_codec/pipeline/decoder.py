"""The decoder: the encoder's stages backwards, from an ``.acx`` stream to audio blocks.

::

    header ─► compatibility (weights, entropy tables, frame layout)     check_compatible
           ─► chunks of the time range ─► entropy decoding              entropy.coder.decode_frames
           ─► per-frame conditioning from the profile table             planning.conditioning.frame_conditioning
           ─► backbone synthesis, 24 kHz ─► original rate, left/right   pipeline.signal.decode_blocks
           ─► the exact samples of the range                            cut

Decoding needs no classifier and no profile files: the profile table names
each built-in profile (whose embedding is in the weights) and carries every
custom profile's conditioning vector. It does need the exact weights and
entropy tables the stream names; any others are a clear error, never
garbage audio.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from adaptive_codec.backbone.streaming import context_frames
from adaptive_codec.container.acx import AcxReader
from adaptive_codec.container.acx_header import AcxHeader
from adaptive_codec.entropy.coder import decode_frames
from adaptive_codec.entropy.selection import ENTROPY_TABLE_NAME
from adaptive_codec.errors import AdaptiveCodecError, FormatError
from adaptive_codec.pipeline.parts import CodecParts
from adaptive_codec.pipeline.signal import decode_blocks, resampled_length
from adaptive_codec.planning.conditioning import frame_conditioning

__all__ = ["check_compatible", "decode_range", "cut"]


def check_compatible(parts: CodecParts, header: AcxHeader) -> None:
    """Refuse a stream written with other weights, other entropy tables or another frame layout."""
    if header.weights_sha256_prefix != parts.weights_meta["sha256"][:16]:
        raise FormatError(
            f"stream was encoded with backbone weights {header.weights_id}; this installation "
            f"has {parts.weights_meta['weights_id']} - install the adaptive-codec version "
            "that wrote it to decode it")
    if header.entropy_digest_prefix != parts.entropy_model.digest()[:16]:
        raise FormatError(
            f"stream was coded with entropy tables {header.entropy_digest_prefix}; this "
            f"installation uses {parts.entropy_model.digest()[:16]} with the same weights "
            f"(a rebuilt or missing {ENTROPY_TABLE_NAME}?)")
    cfg = parts.backbone.config
    if (header.hop_samples, header.internal_sample_rate_hz, header.codebook_size) != (
            cfg.hop, cfg.sample_rate_hz, cfg.codebook_size):
        raise FormatError("stream's frame layout does not match the installed backbone")


def decode_range(parts: CodecParts, reader: AcxReader, start_s: float | None,
                 end_s: float | None) -> tuple[int, Iterator[np.ndarray]]:
    """Entropy-decode what a time range needs; returns (samples, lazy audio blocks).

    Parameters
    ----------
    reader : AcxReader
        An open stream.
    start_s, end_s : float, optional
        The range in seconds (default: the whole stream).

    Returns
    -------
    n_samples : int
        Samples per channel of the range at the original rate.
    blocks : iterator of np.ndarray [shape=(channels, samples)]
        Exactly the range, synthesised as they are consumed.
    """
    header = reader.header
    check_compatible(parts, header)
    if header.stereo_mode not in ("mono", "independent", "mid_side"):
        raise FormatError(f"unsupported stereo mode {header.stereo_mode!r}")
    cfg = parts.backbone.config
    sr = header.original_sample_rate_hz
    duration = header.length_samples / sr
    start_s = 0.0 if start_s is None else float(start_s)
    end_s = duration if end_s is None else min(float(end_s), duration)
    if not (0 <= start_s < end_s):
        raise AdaptiveCodecError(
            f"empty or invalid time range {start_s:g}..{end_s:g} s (file is {duration:.3f} s)")
    hop = cfg.hop
    n_internal = resampled_length(header.length_samples, sr, cfg.sample_rate_hz)
    # Internal sample blocks to synthesise, with margin for the resampler,
    # starting on a block whose time is a whole original-rate sample.
    margin_s = 0.05 if (start_s > 0 or end_s < duration) else 0.0
    step = cfg.sample_rate_hz // math.gcd(hop * sr, cfg.sample_rate_hz)
    a = max(0, int(math.floor((start_s - margin_s) * cfg.sample_rate_hz / hop)))
    a -= a % step
    b = min(-(-n_internal // hop), int(math.ceil((end_s + margin_s) * cfg.sample_rate_hz / hop)))
    ctx = context_frames(parts.backbone)
    fa, fb = max(0, a - ctx), min(header.n_frames, b + 1 + ctx)
    codes = np.zeros((header.channels, header.max_levels, header.n_frames), np.int16)
    depth_all = np.zeros((header.channels, header.n_frames), np.int64)
    for chunk in reader.iter_chunks(fa, fb):
        ch, lo, hi = chunk.channel, chunk.start_frame, chunk.end_frame
        depths, priors, _ = header.frame_layout(ch, lo, hi)
        codes[ch][:, lo:hi], depth_all[ch, lo:hi] = decode_frames(
            parts.entropy_model, chunk.data, depths, priors, header.max_levels,
            adaptive=header.adaptive_frames(ch, lo, hi), return_depths=True)
    table = parts.embeddings()
    conds = [torch.from_numpy(frame_conditioning(header, ch, table))
             if any(seg.n_q for seg in header.segments_for_channel(ch)) else None
             for ch in range(header.channels)]
    blocks = decode_blocks(parts.backbone, list(codes), list(depth_all), conds, n_internal, sr,
                           header.stereo_mode == "mid_side", (a, b))
    # Map the synthesised internal range back onto original-rate samples.
    first = a * hop * sr // cfg.sample_rate_hz
    s0 = int(round(start_s * sr))
    s1 = header.length_samples if end_s >= duration else int(round(end_s * sr))
    return s1 - s0, cut(blocks, first, s0, s1, header.channels)


def cut(blocks: Iterable[np.ndarray], first: int, s0: int, s1: int, channels: int) -> Iterator[np.ndarray]:
    """The part of consecutive ``blocks`` (the first at sample ``first``) in ``[s0, s1)``."""
    pos, emitted = first, 0
    for block in blocks:
        lo, hi = max(pos, s0), min(pos + block.shape[-1], s1)
        if hi > lo:
            yield block[:, lo - pos : hi - pos]
            emitted += hi - lo
        pos += block.shape[-1]
    if emitted < s1 - s0:  # never expected: the range is synthesised with margin
        yield np.zeros((channels, s1 - s0 - emitted), np.float32)
