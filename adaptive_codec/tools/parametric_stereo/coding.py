"""Quantization and entropy coding of the stereo parameters, one payload per chunk span.

Per band and parameter frame: the ILD ``10·log10(P_L / P_R)`` in steps of
``step`` dB, clipped to ``±max_index`` steps, and the coherence
``Re(Σ L·conj R) / sqrt(P_L·P_R)`` as the nearest of :data:`ICC_LEVELS`
(HE-AAC v2's ICC levels). Bands quieter than :data:`SILENT_DB` below the
frame's loudest (or below an absolute floor) read as ILD 0, ICC 1: a
silent band has no image to keep.

Coding (``constriction``'s range coder, 32-bit words): for each parameter,
ILD first, then ICC: the span's first frame as band 0 absolute (uniform)
and each later band as the difference from the band below (table
``freq``); every later frame as each band's difference from the same band
in the previous frame (table ``time``). Two-sided geometric tables
quantized to integers (2**16 in all, every symbol >= 1): identical on
every machine. A decoded index is clamped to the alphabet.
"""

from __future__ import annotations

from functools import lru_cache

import constriction
import numpy as np

from adaptive_codec.errors import FormatError

__all__ = ["ICC_LEVELS", "SILENT_DB", "DECAY", "quantize", "encode_span", "decode_span", "PRECISION_BITS"]

PRECISION_BITS = 16
#: Coherence levels of the indices 0..7 (HE-AAC v2 parametric stereo's).
ICC_LEVELS = (1.0, 0.937, 0.84118, 0.60092, 0.36764, 0.0, -0.589, -1.0)
#: A band this far below the parameter frame's loudest band is treated as silent.
SILENT_DB = 60.0
#: Decay per unit of |difference|, per (parameter, table): fitted as
#: ``m / (1 + m)`` of the mean |difference| m on training clips (not held out).
DECAY = {("ild", "freq"): 0.39, ("ild", "time"): 0.35, ("icc", "freq"): 0.42, ("icc", "time"): 0.37}


def quantize(sums: np.ndarray, step_db: float, max_index: int) -> tuple[np.ndarray, np.ndarray]:
    """ILD and ICC indices ``(frames, bands)`` int64 of channel statistics ``(frames, 3, bands)``.

    ``sums[:, 0]``, ``sums[:, 1]``: power of left and right; ``sums[:, 2]``:
    ``Re(L·conj R)``, summed over the band's bins and the frame's STFT frames.
    """
    pl, pr, c = (np.asarray(sums[:, i], np.float64) for i in range(3))
    total = pl + pr
    loud = total.max(axis=1, keepdims=True) if total.size else total
    live = (total > loud * 10 ** (-SILENT_DB / 10)) & (total > 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        ild = 10 * np.log10(np.maximum(pl, 1e-30) / np.maximum(pr, 1e-30))
        icc = c / np.sqrt(np.maximum(pl * pr, 1e-60))
    ild_q = np.clip(np.round(ild / step_db), -max_index, max_index).astype(np.int64)
    levels = np.asarray(ICC_LEVELS)
    icc_q = np.argmin(np.abs(np.clip(icc, -1, 1)[..., None] - levels), axis=-1).astype(np.int64)
    ild_q[~live] = 0
    icc_q[~live] = 0
    return ild_q, icc_q


@lru_cache(maxsize=64)
def _model(param: str, table: str, size: int):
    """constriction model: ``table`` "abs" (uniform over ``size`` symbols) or a difference table."""
    if table == "abs":
        freq = np.full(size, (1 << PRECISION_BITS) // size, np.int64)
        freq[0] += (1 << PRECISION_BITS) - freq.sum()
    else:
        d = np.arange(-(size - 1), size)
        p = DECAY[(param, table)] ** np.abs(d)
        budget = (1 << PRECISION_BITS) - len(d)
        freq = 1 + np.floor(p / p.sum() * budget).astype(np.int64)
        freq[size - 1] += (1 << PRECISION_BITS) - freq.sum()
    return constriction.stream.model.Categorical(freq / float(1 << PRECISION_BITS), perfect=False)


def _alphabets(max_index: int) -> tuple[tuple[str, int, int], ...]:
    """(name, symbols, offset of index 0) of ILD and ICC."""
    return (("ild", 2 * max_index + 1, max_index), ("icc", len(ICC_LEVELS), 0))


def encode_span(ild_q: np.ndarray, icc_q: np.ndarray, max_index: int) -> bytes:
    """The payload of one span's indices ``(frames, bands)`` each (b"" for a span of no frames)."""
    if not len(ild_q):
        return b""
    encoder = constriction.stream.queue.RangeEncoder()
    for (name, size, offset), q in zip(_alphabets(max_index), (ild_q, icc_q)):
        sym = np.asarray(q, np.int64) + offset  # 0..size-1
        encoder.encode(sym[:1, 0].astype(np.int32), _model(name, "abs", size))
        if sym.shape[1] > 1:
            encoder.encode((np.diff(sym[0]) + size - 1).astype(np.int32), _model(name, "freq", size))
        if len(sym) > 1:
            encoder.encode((np.diff(sym, axis=0).ravel() + size - 1).astype(np.int32), _model(name, "time", size))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_span(data: bytes, n_frames: int, n_bands: int, max_index: int, where: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """ILD and ICC indices ``(n_frames, n_bands)`` int64 of a payload; one that is not is a :class:`FormatError`."""
    if n_frames == 0:
        if data:
            raise FormatError(f"{where}: payload of a span without parameter frames is not empty")
        return np.zeros((0, n_bands), np.int64), np.zeros((0, n_bands), np.int64)
    if not data:
        raise FormatError(f"{where}: empty payload for {n_frames} parameter frames")
    out = []
    try:
        decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, "<u4").astype(np.uint32))
        for name, size, offset in _alphabets(max_index):
            first = np.empty(n_bands, np.int64)
            first[0] = np.asarray(decoder.decode(_model(name, "abs", size), 1), np.int64)[0]
            if n_bands > 1:
                first[1:] = np.asarray(decoder.decode(_model(name, "freq", size), n_bands - 1), np.int64) - (size - 1)
            d = np.zeros((n_frames - 1, n_bands), np.int64)
            if n_frames > 1:
                d[:] = (np.asarray(decoder.decode(_model(name, "time", size), (n_frames - 1) * n_bands), np.int64)
                        - (size - 1)).reshape(n_frames - 1, n_bands)
            sym = np.cumsum(np.vstack([np.cumsum(first)[None], d]), axis=0)
            # Clamped (a valid stream never needs it): a corrupt one stays in range.
            out.append(np.clip(sym, 0, size - 1) - offset)
    except Exception as exc:  # constriction reports invalid data as generic errors
        raise FormatError(f"{where}: corrupt parametric-stereo payload ({exc})") from None
    return out[0], out[1]
