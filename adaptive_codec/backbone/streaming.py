"""Chunked encode/decode of long signals with bounded memory.

The encoder and decoder are non-causal convolution stacks with a finite
receptive field (``blocks × (kernel // 2)`` frames each side), and MDCT frame
``t`` covers samples ``[(t - 1)·hop, (t + 1)·hop)``. Processing a chunk of
frames with ``context`` extra frames on both sides therefore gives the same
frames as processing the whole signal, up to float rounding, as long as
``context`` exceeds the receptive field. Memory is bounded by the chunk size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .model import Backbone

#: Frames per processing piece (18 s at 75 frames/s): a multiple of the
#: bitstream's default chunk (225 frames), so work split on bitstream chunks
#: (e.g. across Dask workers) can use exactly the same pieces.
CHUNK_FRAMES = 1350


def context_frames(model: Backbone) -> int:
    """Margin (frames) that makes chunked processing match whole-signal processing."""
    cfg = model.config
    blocks = max(cfg.encoder_blocks, cfg.decoder_blocks)
    return blocks * (cfg.kernel_size // 2) + 2


def n_frames(model: Backbone, n_samples: int) -> int:
    """Frames the codec produces for ``n_samples`` samples at the internal rate."""
    return model.mdct.n_frames(n_samples)


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(total, start + size)


@torch.no_grad()
def encode_signal(
    model: Backbone,
    audio: np.ndarray,
    cond: torch.Tensor,
    max_levels: int,
    chunk_frames: int = CHUNK_FRAMES,
) -> np.ndarray:
    """RVQ indices of a mono internal-rate signal, chunk by chunk.

    Parameters
    ----------
    model : Backbone
    audio : np.ndarray [shape=(samples,)], float32
    cond : torch.Tensor [shape=(frames, cond_dim)]
        Profile conditioning of every frame.
    max_levels : int
        Levels to compute (the largest depth any frame uses).
    chunk_frames : int

    Returns
    -------
    np.ndarray [shape=(max_levels, frames)], int16
    """
    hop = model.config.hop
    total = n_frames(model, audio.shape[-1])
    ctx = context_frames(model)
    codes = np.zeros((max_levels, total), dtype=np.int16)
    for a, b in _chunks(total, chunk_frames):
        fa = max(0, a - ctx - 1)  # first frame whose samples we feed
        fb = min(total, b + ctx)
        # Frame t covers samples [(t-1)·hop, (t+1)·hop); feeding samples from
        # fa·hop makes local frame j equal global frame fa + j.
        piece = audio[fa * hop : (fb + 1) * hop]
        x = torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32))[None]
        c = cond[fa : fa + model.mdct.n_frames(piece.shape[-1])][None]
        local = model.encode_codes(x, _fit(c, model.mdct.n_frames(piece.shape[-1])), max_levels)
        codes[:, a:b] = local[0, :, a - fa : b - fa].numpy()
    return codes


@torch.no_grad()
def decode_signal(
    model: Backbone,
    codes: np.ndarray,
    depths: np.ndarray,
    cond: torch.Tensor,
    n_samples: int,
    chunk_frames: int = CHUNK_FRAMES,
    block_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """Mono internal-rate signal from RVQ indices, chunk by chunk.

    Parameters
    ----------
    codes : np.ndarray [shape=(levels, frames)]
    depths : np.ndarray [shape=(frames,)]
        Levels used by each frame (indices at deeper levels are ignored).
    cond : torch.Tensor [shape=(frames, cond_dim)]
    n_samples : int
        Length of the whole signal.
    block_range : (int, int), optional
        Synthesise only samples ``[a·hop, min(n_samples, b·hop))``; only the
        codes of frames ``a - context .. b + context`` are read.

    Returns
    -------
    np.ndarray [shape=(samples,)], float32
        The whole signal, or the requested range.
    """
    hop = model.config.hop
    total = codes.shape[1]
    ctx = context_frames(model)
    blocks = -(-n_samples // hop)  # sample blocks of hop samples
    first, last = block_range if block_range is not None else (0, blocks)
    first, last = max(0, first), min(blocks, last)
    offset = first * hop
    out = np.zeros(max(0, min(n_samples, last * hop) - offset), dtype=np.float32)
    for a0, b0 in _chunks(last - first, chunk_frames):
        a, b = a0 + first, b0 + first
        # Samples of blocks [a, b) need coefficient frames a..b inclusive.
        fa, fb = max(0, a - ctx), min(total, b + 1 + ctx)
        c = torch.from_numpy(codes[:, fa:fb].astype(np.int64))[None]
        d = torch.from_numpy(np.asarray(depths[fa:fb], dtype=np.int64))[None]
        latent = model.quantizer.decode_masked(c, d)
        decoded = model.decoder(latent, cond[fa:fb][None])
        coef = model.synthesis_coefficients(decoded)[:, :, a - fa : b + 1 - fa]
        piece = model.mdct.inverse(coef, (b - a) * hop)[0].numpy()
        end = min(n_samples, b * hop)
        out[a * hop - offset : end - offset] = piece[: end - a * hop]
    return out


def _fit(c: torch.Tensor, frames: int) -> torch.Tensor:
    """Pad conditioning with its last frame up to ``frames`` (end-of-signal frames)."""
    if c.shape[1] >= frames:
        return c[:, :frames]
    return torch.cat([c, c[:, -1:].expand(-1, frames - c.shape[1], -1)], dim=1)
