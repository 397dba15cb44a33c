"""The layer's payload of one chunk: gain byte, nibbles, range-coded values; and the gain search that sizes it.

Layout (all of it depends only on the chunk itself: no prediction across
chunks, so any chunk decodes alone)::

    u8        gain index (GAIN_ZERO = unit gain, 1/16 octave per step)
    nibbles   prediction weights, (segments × bands), with ``predict`` only
    nibbles   Laplace-scale indices, (segments × bands); 0 = block of zeros
    u32 LE…   constriction range-coder words: the values of every block with
              a non-zero nibble, grouped by nibble 1..15, frame-major inside

Nibbles are packed two per byte, high nibble first, padded with a zero
nibble to a whole byte.
"""

from __future__ import annotations

import math

import numpy as np

from adaptive_codec.errors import FormatError
from adaptive_codec.tools.enhance.quantizer import (GAIN_STEPS_PER_OCTAVE, GAIN_ZERO, MAX_Q, WEIGHTS, LayerConfig,
                                                    band_power, expand, layer_values, reconstruct, segment_count,
                                                    step_sizes)
from adaptive_codec.tools.enhance.tables import SCALES, estimated_bytes, laplace_model, scale_indices

__all__ = ["code_layer", "decode_layer", "decode_payload", "encode_payload", "fit_gain"]


def _pack(nibbles: np.ndarray) -> bytes:
    flat = np.asarray(nibbles, np.uint8).reshape(-1)
    flat = np.append(flat, np.uint8(0)) if flat.size % 2 else flat
    return ((flat[0::2] << 4) | flat[1::2]).astype(np.uint8).tobytes()


def _unpack(data: bytes, n: int) -> np.ndarray:
    packed = np.frombuffer(data[: (n + 1) // 2], np.uint8)
    flat = np.empty(2 * packed.size, np.uint8)
    flat[0::2], flat[1::2] = packed >> 4, packed & 15
    return flat[:n]


def _blocks(idx: np.ndarray, edges: np.ndarray, frames: int, seg: int) -> np.ndarray:
    """Nibble ``(frames, bins)`` of the block every value belongs to."""
    return expand(idx, edges, frames, seg)


def encode_payload(q: np.ndarray, edges: np.ndarray, seg: int, gain_index: int,
                   weights: np.ndarray | None = None) -> bytes:
    """Payload of one chunk's values ``q`` ``(frames, bins)`` int32 in ``[-MAX_Q, MAX_Q]``.

    ``weights`` ``(segments, bands)`` are the prediction nibbles (None without prediction).
    """
    import constriction

    if not 0 <= gain_index <= 255:
        raise ValueError(f"gain index must be in 0..255, got {gain_index}")
    idx = scale_indices(q, edges, seg)
    per_value = _blocks(idx, edges, q.shape[0], seg)
    enc = constriction.stream.queue.RangeEncoder()
    for k in range(1, len(SCALES) + 1):
        sel = per_value == k
        if sel.any():
            enc.encode((q[sel] + MAX_Q).astype(np.int32), laplace_model(k))
    head = bytes([gain_index]) + (b"" if weights is None else _pack(weights))
    return head + _pack(idx) + enc.get_compressed().astype("<u4").tobytes()


def decode_payload(payload: bytes, frames: int, edges: np.ndarray, seg: int,
                   predict: bool) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Values ``(frames, bins)`` int32, gain index and prediction nibbles of :func:`encode_payload`'s payload.

    Raises
    ------
    FormatError
        A payload too short for its nibbles, a weight nibble out of range,
        range-coder words that do not decode, or trailing words.
    """
    import constriction

    n_idx = segment_count(frames, seg) * (len(edges) - 1)
    nb = (n_idx + 1) // 2
    need = 1 + nb * (1 + predict)
    if len(payload) < need:
        raise FormatError(f"enhancement payload of {len(payload)} bytes is shorter than its {need}-byte head")
    gain_index = payload[0]
    pos = 1
    weights = None
    if predict:
        weights = _unpack(payload[pos:], n_idx).reshape(-1, len(edges) - 1)
        if weights.max(initial=0) >= len(WEIGHTS):
            raise FormatError(f"enhancement payload has a prediction weight nibble above {len(WEIGHTS) - 1}")
        pos += nb
    idx = _unpack(payload[pos:], n_idx).reshape(-1, len(edges) - 1)
    pos += nb
    words = payload[pos:]
    if len(words) % 4:
        raise FormatError(f"enhancement payload's range-coder part is {len(words)} bytes, not whole 32-bit words")
    per_value = _blocks(idx, edges, frames, seg)
    q = np.zeros((frames, int(edges[-1])), np.int32)
    if not idx.any():
        if words:
            raise FormatError("enhancement payload has coded words but no block to decode")
        return q, gain_index, weights
    if not words:
        raise FormatError("enhancement payload codes blocks but has no range-coder words")
    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(words, "<u4").astype(np.uint32))
    try:
        for k in range(1, len(SCALES) + 1):
            sel = per_value == k
            n = int(sel.sum())
            if n:
                q[sel] = np.asarray(dec.decode(laplace_model(k), n), np.int64) - MAX_Q
    except Exception as exc:  # constriction reports invalid data as generic errors
        raise FormatError(f"enhancement payload is corrupt: {exc}") from None
    if not dec.maybe_exhausted():
        raise FormatError("enhancement payload has trailing data after its last value")
    return q, gain_index, weights


def code_layer(target: np.ndarray, coef: np.ndarray, gain_index: int, cfg: LayerConfig, edges: np.ndarray,
               power: np.ndarray | None = None) -> tuple[bytes, np.ndarray]:
    """Payload and the decoder's enhanced coefficients ``(frames, hop)`` of one chunk at one gain index.

    ``target`` is the input's MDCT and ``coef`` the backbone's decoded MDCT, both ``(frames, hop)``.
    """
    q, weights, step = layer_values(target, coef, gain_index, cfg, edges, power)
    payload = encode_payload(q, edges, cfg.segment_frames, gain_index, weights)
    return payload, reconstruct(coef, q, step, weights, cfg, edges)


def decode_layer(payload: bytes, coef: np.ndarray, cfg: LayerConfig, edges: np.ndarray) -> np.ndarray:
    """The decoder's side: enhanced coefficients ``(frames, hop)`` float32 from one chunk's payload and ``coef``."""
    q, gain_index, weights = decode_payload(payload, coef.shape[0], edges, cfg.segment_frames, cfg.predict)
    top = int(edges[-1])
    return reconstruct(coef, q, step_sizes(coef[:, :top], gain_index, cfg, edges), weights, cfg, edges)


def fit_gain(target: np.ndarray, coef: np.ndarray, budget_bytes: float, cfg: LayerConfig,
             edges: np.ndarray) -> tuple[bytes, np.ndarray] | None:
    """Payload and enhanced coefficients at the finest gain whose payload fits ``budget_bytes``; None if none fits.

    The search runs on :func:`~adaptive_codec.tools.enhance.tables.estimated_bytes`
    (no range coding); the log size is nearly linear in the gain index, so
    the bracket is narrowed by interpolating in it. The chosen gain is then
    coded, and coarsened a step at a time while the real payload still
    exceeds the budget (rare: the estimate is within ~1 %, and above the
    real size on the clips measured).
    """
    top = int(edges[-1])
    power = band_power(coef[:, :top], edges)
    sizes: dict[int, float] = {}

    def size(k: int) -> float:
        if k not in sizes:
            q, _, _ = layer_values(target, coef, k, cfg, edges, power)
            sizes[k] = math.log(max(estimated_bytes(q, edges, cfg.segment_frames, cfg.predict), 1.0))
        return sizes[k]

    goal = math.log(max(budget_bytes, 1.0))
    lo, hi = GAIN_ZERO - 2 * GAIN_STEPS_PER_OCTAVE, GAIN_ZERO + 2 * GAIN_STEPS_PER_OCTAVE
    while lo > 0 and size(lo) <= goal:  # lo must not fit, hi must
        lo = max(0, lo - 2 * GAIN_STEPS_PER_OCTAVE)
    while hi < 255 and size(hi) > goal:
        hi = min(255, hi + 2 * GAIN_STEPS_PER_OCTAVE)
    if size(lo) <= goal:
        hi = lo
    while hi - lo > 1:
        s_lo, s_hi = size(lo), size(hi)
        guess = lo + (s_lo - goal) / max(s_lo - s_hi, 1e-9) * (hi - lo)
        mid = min(hi - 1, max(lo + 1, int(round(guess))))
        if size(mid) <= goal:
            hi = mid
        else:
            lo = mid
    for k in range(hi, 256):
        payload, out = code_layer(target, coef, k, cfg, edges, power)
        if len(payload) <= budget_bytes:
            return payload, out
    return None
