"""Entropy coding of residual-VQ indices.

Every RVQ index of every frame is coded with a categorical distribution chosen
by the frame's *prior id* (the built-in profile family: 0 speech, 1 music,
2 ambient, ...) and the RVQ level. The distributions are stored as **integer
frequencies** that sum to exactly ``2 ** precision_bits`` with every symbol at
least 1, so

* any index ``0 <= i < codebook_size`` is codable, even one never seen in
  training, and
* the coder sees exactly the same numbers on every machine, which makes
  decoding bit-identical everywhere (the idea of EnCodec's
  ``build_stable_quantized_cdf``; floating-point softmax is evaluated once, when
  the table is built, and only the integers are shipped).

The coder is ``constriction``'s range coder (a queue: symbols are decoded in the
order they were encoded). Within one call the symbols are grouped by model,
``(prior_id, level)`` in ascending order and frames in ascending order inside a
group, so that each group is one vectorised constriction call; the decoder
knows ``depths`` and ``prior_ids`` (from the bitstream's segment table) and so
rebuilds the same order.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import FormatError

__all__ = [
    "DEFAULT_PRECISION_BITS",
    "EntropyModel",
    "quantize_probabilities",
    "encode_frames",
    "decode_frames",
    "fixed_length_bits",
    "ideal_bits",
]

DEFAULT_PRECISION_BITS = 16  # 2**16 total frequency: a never-seen index costs <= 16 bits
_MAX_PRECISION_BITS = 24  # constriction's categorical models work at 24-bit precision
_ROUNDOFF = 2.0**-40  # float noise below this is removed before quantizing (stability)


def quantize_probabilities(probabilities: np.ndarray, precision_bits: int) -> np.ndarray:
    """Turn probabilities into integer frequencies that sum to ``2 ** precision_bits``.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(..., K)]
        Non-negative, each row summing to about 1.
    precision_bits : int
        Total frequency is ``2 ** precision_bits``; needs ``2 ** precision_bits > K``.

    Returns
    -------
    np.ndarray [shape=(..., K), dtype=uint32]
        Every entry >= 1, every row sums exactly to ``2 ** precision_bits``.
        Each symbol gets ``1 + floor(p * (total - K))``; the remainder goes, one
        unit each, to the symbols with the largest fractional parts (ties to
        the lower index), so the result depends only on the input values.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    k = probs.shape[-1]
    total = 1 << precision_bits
    if total <= k:
        raise ValueError(f"2**precision_bits ({total}) must exceed the alphabet size {k}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("probabilities must be finite and non-negative")
    sums = probs.sum(-1, keepdims=True)
    if np.any(sums <= 0):
        raise ValueError("every probability row must have a positive sum")
    probs = probs / sums
    # Snap to a coarse grid so last-ulp differences between machines (SIMD
    # softmax, different BLAS) almost never change a floor() below.
    probs = np.floor(probs / _ROUNDOFF) * _ROUNDOFF
    scaled = probs * (total - k)
    base = np.floor(scaled)
    freqs = base.astype(np.int64) + 1
    remainder = total - freqs.sum(-1)  # in [0, K]
    frac = scaled - base
    flat_freqs = freqs.reshape(-1, k)
    flat_frac = frac.reshape(-1, k)
    flat_rem = np.asarray(remainder).reshape(-1)
    for row in range(flat_freqs.shape[0]):
        r = int(flat_rem[row])
        if r:
            order = np.argsort(-flat_frac[row], kind="stable")
            flat_freqs[row, order[:r]] += 1
    return flat_freqs.reshape(freqs.shape).astype(np.uint32)


@dataclass(eq=False)
class EntropyModel:
    """Integer categorical priors per (prior id, RVQ level).

    Parameters
    ----------
    frequencies : np.ndarray [shape=(n_priors, n_levels, codebook_size), dtype=uint32]
        Each row sums to ``2 ** precision_bits``; every entry >= 1.
    precision_bits : int
        log2 of the row total.
    """

    frequencies: np.ndarray
    precision_bits: int = DEFAULT_PRECISION_BITS
    _models: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        freqs = np.asarray(self.frequencies)
        if freqs.ndim != 3 or min(freqs.shape) < 1:
            raise FormatError(f"entropy model: frequencies must have shape (priors, levels, K), got {freqs.shape}")
        if not 1 <= int(self.precision_bits) <= _MAX_PRECISION_BITS:
            raise FormatError(f"entropy model: precision_bits must be in 1..{_MAX_PRECISION_BITS}, got {self.precision_bits}")
        if not np.issubdtype(freqs.dtype, np.integer):
            raise FormatError(f"entropy model: frequencies must be integers, got dtype {freqs.dtype}")
        if np.any(freqs < 1):
            raise FormatError("entropy model: every frequency must be >= 1 (every symbol codable)")
        sums = freqs.astype(np.int64).sum(-1)
        if np.any(sums != (1 << int(self.precision_bits))):
            raise FormatError(f"entropy model: every row must sum to 2**{self.precision_bits}")
        self.frequencies = freqs.astype(np.uint32)
        self.precision_bits = int(self.precision_bits)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_logits(cls, logits: Any, precision_bits: int = DEFAULT_PRECISION_BITS) -> "EntropyModel":
        """Build from learned logits (softmax, then integer quantization).

        Parameters
        ----------
        logits : np.ndarray or torch.Tensor [shape=(n_priors, n_levels, K)]
        precision_bits : int
        """
        if hasattr(logits, "detach"):  # torch.Tensor, without importing torch here
            logits = logits.detach().cpu().double().numpy()
        arr = np.asarray(logits, dtype=np.float64)
        if arr.ndim != 3:
            raise ValueError(f"logits must have shape (n_priors, n_levels, K), got {arr.shape}")
        arr = arr - arr.max(-1, keepdims=True)
        probs = np.exp(arr)
        return cls(quantize_probabilities(probs, precision_bits), precision_bits)

    @classmethod
    def from_counts(cls, counts: np.ndarray, precision_bits: int = DEFAULT_PRECISION_BITS) -> "EntropyModel":
        """Build from symbol counts of training codes, with add-one smoothing.

        Integer arithmetic only, so the table is identical on every machine.

        Parameters
        ----------
        counts : np.ndarray [shape=(n_priors, n_levels, K)], non-negative integers
        precision_bits : int
        """
        c = np.asarray(counts)
        if c.ndim != 3 or np.any(c < 0):
            raise ValueError("counts must be non-negative with shape (n_priors, n_levels, K)")
        c = c.astype(np.int64) + 1
        k = c.shape[-1]
        total = 1 << precision_bits
        if total <= k:
            raise ValueError(f"2**precision_bits ({total}) must exceed the alphabet size {k}")
        row = c.sum(-1, keepdims=True)
        # Python ints for the product: counts * 2**24 can overflow int64.
        scaled = c.astype(object) * (total - k)
        base = (scaled // row).astype(np.int64)
        rem_num = (scaled % row).astype(np.float64) / row  # only ranks remainders
        freqs = base + 1
        remainder = total - freqs.sum(-1)
        flat = freqs.reshape(-1, k)
        flat_frac = rem_num.reshape(-1, k)
        for i, r in enumerate(remainder.reshape(-1)):
            if r:
                flat[i, np.argsort(-flat_frac[i], kind="stable")[: int(r)]] += 1
        return cls(flat.reshape(freqs.shape).astype(np.uint32), precision_bits)

    @classmethod
    def uniform(cls, n_priors: int, n_levels: int, codebook_size: int, precision_bits: int = DEFAULT_PRECISION_BITS) -> "EntropyModel":
        """Uniform priors (the model an untrained backbone uses)."""
        return cls.from_counts(np.zeros((n_priors, n_levels, codebook_size), np.int64), precision_bits)

    # -- properties ---------------------------------------------------------
    @property
    def n_priors(self) -> int:
        return int(self.frequencies.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.frequencies.shape[1])

    @property
    def codebook_size(self) -> int:
        return int(self.frequencies.shape[2])

    def bits_table(self) -> np.ndarray:
        """Cost in bits of each symbol, ``-log2(freq / 2**precision)``, shape (priors, levels, K)."""
        return self.precision_bits - np.log2(self.frequencies.astype(np.float64))

    # -- serialization ------------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (for safetensors / npz) and a JSON-able metadata dict; no pickle."""
        meta = {
            "format": "adaptive-codec-entropy-model",
            "version": 1,
            "precision_bits": self.precision_bits,
            "shape": list(self.frequencies.shape),
            "digest": self.digest(),
        }
        return {"entropy_frequencies": self.frequencies.copy()}, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> "EntropyModel":
        """Inverse of :meth:`to_arrays`; checks the digest when the metadata has one."""
        try:
            freqs = np.asarray(arrays["entropy_frequencies"])
            precision = int(meta["precision_bits"])
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"entropy model: missing or invalid field {exc}") from None
        model = cls(freqs, precision)
        want = meta.get("digest")
        if want is not None and want != model.digest():
            raise FormatError(f"entropy model: digest mismatch (stored {str(want)[:16]}…, computed {model.digest()[:16]}…)")
        return model

    def digest(self) -> str:
        """SHA-256 (hex) of precision, shape and the little-endian uint32 tables."""
        h = hashlib.sha256()
        h.update(json.dumps({"precision_bits": self.precision_bits, "shape": list(self.frequencies.shape)}, sort_keys=True).encode())
        h.update(self.frequencies.astype("<u4").tobytes())
        return h.hexdigest()

    # -- constriction models (cached) ------------------------------------------------
    def _model(self, prior_id: int, level: int):
        key = (prior_id, level)
        model = self._models.get(key)
        if model is None:
            import constriction

            # Exact dyadic floats (freq / 2**precision) are the same on every
            # machine; perfect=False is constriction's deterministic fast path.
            probs = self.frequencies[prior_id, level].astype(np.float64) / float(1 << self.precision_bits)
            model = constriction.stream.model.Categorical(probs, perfect=False)
            self._models[key] = model
        return model


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


def _groups(depths: np.ndarray, prior_ids: np.ndarray):
    """Yield ``(prior_id, level, frame_indices)`` in the canonical coding order."""
    if depths.size == 0:
        return
    for prior in np.unique(prior_ids):
        frames_p = np.flatnonzero(prior_ids == prior)
        for level in range(int(depths[frames_p].max())):
            sel = frames_p[depths[frames_p] > level]
            if sel.size:
                yield int(prior), level, sel


def encode_frames(model: EntropyModel, codes: np.ndarray, depths: np.ndarray, prior_ids: np.ndarray) -> bytes:
    """Entropy-code the active RVQ indices of a run of frames.

    Parameters
    ----------
    model : EntropyModel
    codes : np.ndarray [shape=(max_levels, n_frames)], integers in ``[0, codebook_size)``
        Entries at ``level >= depths[f]`` are ignored (may hold anything).
    depths : np.ndarray [shape=(n_frames,)]
        RVQ depth (number of coded levels) of each frame, ``0..min(max_levels, n_levels)``.
    prior_ids : np.ndarray [shape=(n_frames,)]
        Prior (profile family) of each frame, ``0..n_priors-1``.

    Returns
    -------
    bytes
        Range-coder words, little-endian uint32 (length a multiple of 4; empty
        when no symbol is coded).
    """
    import constriction

    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must have shape (max_levels, n_frames), got {codes.shape}")
    depths, prior_ids = _validate_layout(model, depths, prior_ids, codes.shape[0], ValueError)
    if depths.size != codes.shape[1]:
        raise ValueError(f"codes have {codes.shape[1]} frames but depths has {depths.size}")
    encoder = constriction.stream.queue.RangeEncoder()
    for prior, level, sel in _groups(depths, prior_ids):
        symbols = codes[level, sel].astype(np.int64)
        if symbols.min() < 0 or symbols.max() >= model.codebook_size:
            raise ValueError(f"code out of range 0..{model.codebook_size - 1} at level {level}")
        encoder.encode(symbols.astype(np.int32), model._model(prior, level))
    return encoder.get_compressed().astype("<u4").tobytes()


def decode_frames(model: EntropyModel, data: bytes, depths: np.ndarray, prior_ids: np.ndarray, max_levels: int) -> np.ndarray:
    """Inverse of :func:`encode_frames`.

    Parameters
    ----------
    model : EntropyModel
    data : bytes
    depths, prior_ids : np.ndarray [shape=(n_frames,)]
        As given to the encoder (they come from the bitstream's segment table).
    max_levels : int
        Number of rows of the result.

    Returns
    -------
    np.ndarray [shape=(max_levels, n_frames), dtype=int64]
        Entries at ``level >= depths[f]`` are 0.

    Raises
    ------
    FormatError
        If the data cannot be what the encoder produced for this layout
        (wrong length, missing or trailing words, out-of-range layout).
    """
    import constriction

    depths, prior_ids = _validate_layout(model, depths, prior_ids, max_levels, FormatError)
    data = bytes(data)
    if len(data) % 4:
        raise FormatError(f"entropy-coded payload length {len(data)} is not a multiple of 4 bytes")
    out = np.zeros((max_levels, depths.size), dtype=np.int64)
    n_symbols = int(depths.sum())
    if n_symbols == 0:
        if data:
            raise FormatError(f"entropy-coded payload has {len(data)} bytes but codes no symbol")
        return out
    if not data:
        raise FormatError(f"entropy-coded payload is empty but {n_symbols} symbols are expected")
    # Each symbol costs at most precision_bits bits, so a short chunk cannot
    # make us decode a huge amount; the caller bounds n_frames.
    decoder = constriction.stream.queue.RangeDecoder(np.frombuffer(data, dtype="<u4").astype(np.uint32))
    try:
        for prior, level, sel in _groups(depths, prior_ids):
            out[level, sel] = decoder.decode(model._model(prior, level), int(sel.size))
    except Exception as exc:  # constriction reports invalid data as generic errors
        raise FormatError(f"entropy-coded payload is corrupt: {exc}") from None
    if not decoder.maybe_exhausted():
        raise FormatError("entropy-coded payload has trailing data after the last symbol")
    if out.size and (out.min() < 0 or out.max() >= model.codebook_size):
        raise FormatError("entropy-coded payload decodes to out-of-range indices")
    return out


def fixed_length_bits(depths: np.ndarray, codebook_size: int) -> int:
    """Bits needed to store the same indices with fixed-length codes (``ceil(log2 K)`` each)."""
    return int(np.asarray(depths, dtype=np.int64).sum()) * math.ceil(math.log2(codebook_size))


def ideal_bits(model: EntropyModel, codes: np.ndarray, depths: np.ndarray, prior_ids: np.ndarray) -> float:
    """Information content (bits) of the active indices under ``model`` (the coder's target size)."""
    codes = np.asarray(codes)
    depths, prior_ids = _validate_layout(model, depths, prior_ids, codes.shape[0], ValueError)
    table = model.bits_table()
    total = 0.0
    for prior, level, sel in _groups(depths, prior_ids):
        total += float(table[prior, level, codes[level, sel].astype(np.int64)].sum())
    return total
