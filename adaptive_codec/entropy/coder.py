"""Entropy coding of one chunk's RVQ indices (and depth map) with the entropy tables.

The tables (:class:`~adaptive_codec.entropy.tables.EntropyModel`) give each
index's distribution from its prior id, level and context (see
:mod:`adaptive_codec.entropy.tables`).

Frames of an energy-adaptive segment (:mod:`adaptive_codec.planning.depth_allocation`)
carry their own depth: those depths are coded first, frame by frame, each
given the previous frame's depth (0 before the chunk's first frame) with the
fixed table of :func:`~adaptive_codec.planning.depth_allocation.depth_frequencies`.

The coder is ``constriction``'s range coder (a queue: symbols decode in the
order they were encoded). Order inside one chunk: the adaptive frames'
depths, then level 0 for every frame with
depth >= 1 in ascending frame order, then level 1 for every frame with depth
>= 2, and so on. Level 0 decodes frame by frame (its context is the previous
frame); deeper levels have all their contexts once the level above is decoded.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import constriction
import numpy as np

from adaptive_codec.entropy.tables import EntropyModel, symbol_contexts
from adaptive_codec.errors import FormatError
from adaptive_codec.planning.depth_allocation import depth_frequencies

__all__ = ["encode_frames", "decode_frames", "fixed_length_bits", "ideal_bits", "frame_bits", "symbol_contexts",
           "min_symbol_bits", "SLACK_BITS"]

#: A range coder's output is at least the information content of what it
#: codes, less its 64-bit state; this much more slack guards the bound below
#: against the coder's own rounding of probabilities.
SLACK_BITS = 128
_MIN_BITS: "weakref.WeakKeyDictionary[EntropyModel, float]" = weakref.WeakKeyDictionary()


def min_symbol_bits(model: EntropyModel) -> float:
    """Fewest bits any one symbol of a chunk can cost: an index (most probable entry of any row) or a depth.

    A chunk of ``n`` bytes therefore holds at most ``(8·n + SLACK_BITS) / min_symbol_bits``
    symbols; :func:`decode_frames` refuses a layout asking for more before
    decoding anything, so a few crafted bytes cannot make it decode millions
    of symbols (0.096 bits per index for the shipped tables: about 83 per byte).
    """
    bits = _MIN_BITS.get(model)
    if bits is None:
        top = float(model.frequencies.max()) / float(1 << model.precision_bits)
        depth_top = max(float(depth_frequencies(q, model.n_levels).max()) / float(1 << 16)
                        for q in range(model.n_levels + 1))
        # Margin for constriction's own fixed-point rounding of the probabilities.
        bits = _MIN_BITS[model] = -math.log2(min(1.0, max(top, depth_top) + 2.0**-20))
    return bits


def _check_symbol_budget(n_symbols: int, n_bytes: int, model: EntropyModel) -> None:
    if n_symbols * min_symbol_bits(model) > 8 * n_bytes + SLACK_BITS:
        raise FormatError(f"entropy-coded payload of {n_bytes} bytes cannot hold the {n_symbols} symbols "
                          "its layout asks for")


def _validate_layout(model: EntropyModel, depths: np.ndarray, prior_ids: np.ndarray, max_levels: int, exc: type[Exception]) -> tuple[np.ndarray, np.ndarray]:
    depths = np.asarray(depths).astype(np.int64, copy=False).reshape(-1)
    prior_ids = np.asarray(prior_ids).astype(np.int64, copy=False).reshape(-1)
    if depths.shape != prior_ids.shape:
        raise exc(f"depths ({depths.size}) and prior_ids ({prior_ids.size}) differ in length")
    if depths.size:
        if depths.min() < 0 or depths.max() > min(max_levels, model.n_levels):
            raise exc(f"RVQ depth out of range 0..{min(max_levels, model.n_levels)}: {int(depths.min())}..{int(depths.max())}")
        if prior_ids.min() < 0 or prior_ids.max() >= model.n_priors:
            raise exc(f"prior id out of range 0..{model.n_priors - 1}: {int(prior_ids.min())}..{int(prior_ids.max())}")
    return depths, prior_ids


class _DepthModels:
    """constriction models of the depth-map table, one per previous depth (cached)."""

    def __init__(self, max_depth: int) -> None:
        self.max_depth = max_depth
        self._models: dict[int, Any] = {}

    def __call__(self, previous: int):
        model = self._models.get(previous)
        if model is None:
            probs = depth_frequencies(previous, self.max_depth).astype(np.float64) / float(1 << 16)
            model = self._models[previous] = constriction.stream.model.Categorical(probs, perfect=False)
        return model


def _adaptive_mask(adaptive: np.ndarray | None, n: int, exc: type[Exception]) -> np.ndarray:
    if adaptive is None:
        return np.zeros(n, bool)
    mask = np.asarray(adaptive, dtype=bool).reshape(-1)
    if mask.size != n:
        raise exc(f"adaptive mask has {mask.size} frames, expected {n}")
    return mask


def encode_frames(model: EntropyModel, codes: np.ndarray, depths: np.ndarray, prior_ids: np.ndarray,
                  adaptive: np.ndarray | None = None) -> bytes:
    """Entropy-code the active RVQ indices of a run of frames (one chunk).

    Parameters
    ----------
    model : EntropyModel
    codes : np.ndarray [shape=(max_levels, n_frames)], integers in ``[0, codebook_size)``
        Entries at ``level >= depths[f]`` are ignored (may hold anything).
    depths : np.ndarray [shape=(n_frames,)]
        RVQ depth (number of coded levels) of each frame, ``0..min(max_levels, n_levels)``.
    prior_ids : np.ndarray [shape=(n_frames,)]
        Prior (profile family) of each frame, ``0..n_priors-1``.
    adaptive : np.ndarray [shape=(n_frames,)], bool, optional
        Frames whose depth is coded in the chunk (energy-adaptive segments);
        the others' depths come from the segment table.

    Returns
    -------
    bytes
        Range-coder words, little-endian uint32 (length a multiple of 4; empty
        when no symbol is coded).
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (max_levels, n_frames), got {codes.shape}")
    depths, prior_ids = _validate_layout(model, depths, prior_ids, codes.shape[0], ValueError)
    if depths.size != codes.shape[1]:
        raise ValueError(f"codes have {codes.shape[1]} frames but depths has {depths.size}")
    adaptive = _adaptive_mask(adaptive, depths.size, ValueError)
    if depths.size == 0 or (depths.max() == 0 and not adaptive.any()):
        return b""
    active = np.arange(codes.shape[0])[:, None] < depths[None, :]
    used = codes[active]
    if used.size and (used.min() < 0 or used.max() >= model.codebook_size):
        raise ValueError(f"code out of range 0..{model.codebook_size - 1}")
    encoder = constriction.stream.queue.RangeEncoder()
    if adaptive.any():
        depth_model = _DepthModels(model.n_levels)
        for f in np.flatnonzero(adaptive).tolist():
            encoder.encode(int(depths[f]), depth_model(int(depths[f - 1]) if f else 0))
    for level in range(int(depths.max())):
        sel = np.flatnonzero(depths > level)
        ctx = symbol_contexts(model, codes, depths, level)[sel]
        for symbol, prior, context in zip(codes[level, sel].tolist(), prior_ids[sel].tolist(), ctx.tolist()):
            encoder.encode(symbol, model._model(prior, level, context))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_frames(model: EntropyModel, data: bytes, depths: np.ndarray, prior_ids: np.ndarray, max_levels: int,
                  adaptive: np.ndarray | None = None, return_depths: bool = False):
    """Inverse of :func:`encode_frames`.

    Parameters
    ----------
    model : EntropyModel
    data : bytes
    depths, prior_ids : np.ndarray [shape=(n_frames,)]
        As given to the encoder (they come from the bitstream's segment
        table); the depths of ``adaptive`` frames are ignored (decoded).
    max_levels : int
        Number of rows of the result.
    adaptive : np.ndarray [shape=(n_frames,)], bool, optional
        Frames whose depth is coded in the chunk.
    return_depths : bool
        Also return every frame's depth (decoded ones included).

    Returns
    -------
    codes : np.ndarray [shape=(max_levels, n_frames), dtype=int64]
        Entries at ``level >= depths[f]`` are 0.
    depths : np.ndarray [shape=(n_frames,), dtype=int64]
        Only with ``return_depths``.

    Raises
    ------
    FormatError
        If the data cannot be what the encoder produced for this layout
        (wrong length, missing or trailing words, out-of-range layout).
    """
    depths, prior_ids = _validate_layout(model, depths, prior_ids, max_levels, FormatError)
    adaptive = _adaptive_mask(adaptive, depths.size, FormatError)
    depths = depths.copy()
    depths[adaptive] = 0

    def result(out: np.ndarray):
        return (out, depths) if return_depths else out

    data = bytes(data)
    if len(data) % 4:
        raise FormatError(f"entropy-coded payload length {len(data)} is not a multiple of 4 bytes")
    out = np.zeros((max_levels, depths.size), dtype=np.int64)
    n_symbols = int(depths.sum()) + int(adaptive.sum())
    if n_symbols == 0:
        if data:
            raise FormatError(f"entropy-coded payload has {len(data)} bytes but codes no symbol")
        return result(out)
    if not data:
        raise FormatError(f"entropy-coded payload is empty but {n_symbols} symbols are expected")
    _check_symbol_budget(n_symbols, len(data), model)
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    priors = prior_ids.tolist()
    try:
        if adaptive.any():
            depth_model = _DepthModels(model.n_levels)
            for f in np.flatnonzero(adaptive).tolist():
                depths[f] = decoder.decode(depth_model(int(depths[f - 1]) if f else 0))
            if depths.max() > min(max_levels, model.n_levels):
                raise FormatError(f"decoded RVQ depth {int(depths.max())} exceeds {min(max_levels, model.n_levels)}")
            _check_symbol_budget(int(depths.sum()) + int(adaptive.sum()), len(data), model)
        # Level 0: each frame's context is its decoded predecessor.
        row = out[0]
        prev_coded = False
        for f, depth in enumerate(depths.tolist()):
            if depth:
                ctx = int(model.context_of[0, row[f - 1]]) if prev_coded else model.start_context
                row[f] = decoder.decode(model._model(priors[f], 0, ctx))
            prev_coded = depth > 0
        for level in range(1, int(depths.max())):
            sel = np.flatnonzero(depths > level)
            ctx = model.context_of[level, out[level - 1, sel]]
            values = [decoder.decode(model._model(priors[f], level, c)) for f, c in zip(sel.tolist(), ctx.tolist())]
            out[level, sel] = values
    except FormatError:
        raise
    except Exception as exc:  # constriction reports invalid data as generic errors
        raise FormatError(f"entropy-coded payload is corrupt: {exc}") from None
    if not decoder.maybe_exhausted():
        raise FormatError("entropy-coded payload has trailing data after the last symbol")
    if out.min() < 0 or out.max() >= model.codebook_size:
        raise FormatError("entropy-coded payload decodes to out-of-range indices")
    return result(out)


def fixed_length_bits(depths: np.ndarray, codebook_size: int) -> int:
    """Bits needed to store the same indices with fixed-length codes (``ceil(log2 K)`` each)."""
    return int(np.asarray(depths, dtype=np.int64).sum()) * math.ceil(math.log2(codebook_size))


def frame_bits(model: EntropyModel, codes: np.ndarray, depths: np.ndarray, prior_ids: np.ndarray) -> np.ndarray:
    """Information content (bits) of each frame's active indices under ``model``, as one chunk.

    Returns
    -------
    np.ndarray [shape=(n_frames,), dtype=float64]
    """
    codes = np.asarray(codes)
    depths, prior_ids = _validate_layout(model, depths, prior_ids, codes.shape[0], ValueError)
    table = model.bits_table()
    out = np.zeros(depths.size)
    for level in range(int(depths.max()) if depths.size else 0):
        sel = np.flatnonzero(depths > level)
        ctx = symbol_contexts(model, codes, depths, level)[sel]
        out[sel] += table[prior_ids[sel], level, ctx, codes[level, sel].astype(np.int64)]
    return out


def ideal_bits(model: EntropyModel, codes: np.ndarray, depths: np.ndarray, prior_ids: np.ndarray) -> float:
    """Information content (bits) of the active indices under ``model`` (the coder's target size)."""
    return float(frame_bits(model, codes, depths, prior_ids).sum())
