"""Quantization and entropy coding of the high-band envelope, one payload per chunk span.

Levels are quantized in steps of ``step`` dB (index 0: silent band; index
``q >= 1``: ``-floor + (q - 1)·step`` dB) with hysteresis: a frame keeps
its band's previous index while the level stays within ``HYSTERESIS``
steps of it, so a steady band costs almost nothing. The indices are coded
with ``constriction``'s range coder:

- a span's first frame: band 0 absolute (uniform), then each band as the
  difference from the band below (table ``freq``);
- every later frame: each band as the difference from the same band in
  the previous frame, with the context ``min(|Δ of the band below|, 2)``
  (band 0: its own table), since onsets move all bands together.

Symbols are coded in batches of one table each (band 0 of every frame,
then band by band, each band's frames grouped by context), so decoding
is a few constriction calls per span, not one per value.

The tables are two-sided geometric distributions quantized to integers
(2**16 in all, every symbol >= 1), so coding is identical on every machine.
A decoded index is clamped to the alphabet (never an absurd level).
"""

from __future__ import annotations

from functools import lru_cache

import constriction
import numpy as np

from adaptive_codec.errors import FormatError

__all__ = ["HYSTERESIS", "quantize", "dequantize_db", "encode_span", "decode_span", "PRECISION_BITS"]

PRECISION_BITS = 16
#: A band keeps its previous index while its level is within this many steps of it.
HYSTERESIS = 0.7
#: Decay per unit of |difference| of each table: frequency difference in a
#: span's first frame, time difference of band 0, time difference given the
#: band below moved by 0, 1, >= 2 steps: the maximum-likelihood fits
#: ``m / (1 + m)`` of the mean |difference| m on 16 training clips at 44.1/48 kHz
#: (music and ambient; 4 and 8 bands, 2-4 codec frames a value agree within 0.05).
DECAY = {"freq": 0.60, "band0": 0.55, 0: 0.23, 1: 0.47, 2: 0.78}


def quantize(levels_db: np.ndarray, step_db: float, floor_db: float, level_count: int) -> np.ndarray:
    """Indices ``(frames, bands)`` int64 of levels ``(frames, bands)`` in dB, with hysteresis over frames."""
    x = np.asarray(levels_db, np.float64)
    raw = np.clip(np.floor((x + floor_db) / step_db + 0.5) + 1, 0, level_count - 1).astype(np.int64)
    raw[x < -floor_db - step_db / 2] = 0
    out = raw.copy()
    limit = HYSTERESIS * step_db
    # A recurrence along frames, band by band: Python floats (a few thousand values a span).
    for b in range(out.shape[1]):
        levels, indices = x[:, b].tolist(), raw[:, b].tolist()
        prev = indices[0] if indices else 0
        for f in range(1, len(indices)):
            q = indices[f]
            if not (prev > 0 and q > 0 and abs(levels[f] - (-floor_db + (prev - 1) * step_db)) < limit):
                prev = q
            indices[f] = prev
        out[:, b] = indices
    return out


def dequantize_db(q: np.ndarray, step_db: float, floor_db: float) -> np.ndarray:
    """Level in dB of indices ``q`` (-inf for 0)."""
    q = np.asarray(q)
    return np.where(q > 0, -floor_db + (q - 1) * step_db, -np.inf)


@lru_cache(maxsize=64)
def _model(kind, level_count: int):
    """constriction model of a table: ``kind`` "abs" (uniform over indices) or a :data:`DECAY` key."""
    if kind == "abs":
        n = level_count
        freq = np.full(n, (1 << PRECISION_BITS) // n, np.int64)
        freq[0] += (1 << PRECISION_BITS) - freq.sum()
    else:
        d = np.arange(-(level_count - 1), level_count)
        p = DECAY[kind] ** np.abs(d)
        n = len(d)
        budget = (1 << PRECISION_BITS) - n
        freq = 1 + np.floor(p / p.sum() * budget).astype(np.int64)
        freq[level_count - 1] += (1 << PRECISION_BITS) - freq.sum()
    return constriction.stream.model.Categorical(freq / float(1 << PRECISION_BITS), perfect=False)


def encode_span(q: np.ndarray, level_count: int) -> bytes:
    """The payload of one span's indices ``(frames, bands)`` (frames with a high band only)."""
    if not len(q):
        return b""
    q = np.asarray(q, np.int64)
    encoder = constriction.stream.queue.RangeEncoder()
    offset = level_count - 1

    def put(kind, symbols: np.ndarray) -> None:
        if len(symbols):
            encoder.encode(symbols.astype(np.int32), _model(kind, level_count))

    put("abs", q[:1, 0])
    put("freq", np.diff(q[0]) + offset)
    d = np.diff(q, axis=0)  # time differences of frames 1..
    put("band0", d[:, 0] + offset)
    for b in range(1, q.shape[1]):
        ctx = np.minimum(np.abs(d[:, b - 1]), 2)
        for c in (0, 1, 2):
            put(c, d[ctx == c, b] + offset)
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_span(data: bytes, n_frames: int, n_bands: int, level_count: int, where: str) -> np.ndarray:
    """Indices ``(n_frames, n_bands)`` int64 of a payload; a payload that is not one is a :class:`FormatError`."""
    if n_frames == 0:
        if data:
            raise FormatError(f"{where}: payload of a span without high band is not empty")
        return np.zeros((0, n_bands), np.int64)
    if not data:
        raise FormatError(f"{where}: empty payload for {n_frames} envelope frames")
    offset = level_count - 1
    try:
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, "<u4").astype(np.uint32))

        def get(kind, n: int) -> np.ndarray:
            if n == 0:
                return np.zeros(0, np.int64)
            return np.asarray(decoder.decode(_model(kind, level_count), n), np.int64)

        first = np.empty(n_bands, np.int64)
        first[0] = get("abs", 1)[0]
        first[1:] = get("freq", n_bands - 1) - offset
        d = np.zeros((n_frames - 1, n_bands), np.int64)
        d[:, 0] = get("band0", n_frames - 1) - offset
        for b in range(1, n_bands):
            ctx = np.minimum(np.abs(d[:, b - 1]), 2)
            for c in (0, 1, 2):
                sel = ctx == c
                d[sel, b] = get(c, int(sel.sum())) - offset
    except Exception as exc:  # constriction reports invalid data as generic errors
        raise FormatError(f"{where}: corrupt high-band payload ({exc})") from None
    # Clamped (a valid stream never needs it): a corrupt one gives levels in range, never absurd ones.
    return np.clip(np.cumsum(np.vstack([np.cumsum(first)[None], d]), axis=0), 0, offset)
