"""Entropy tables: integer frequencies of RVQ indices per prior, level and context.

Every coded RVQ index ``x[l, f]`` (level ``l``, frame ``f``) is coded with a
categorical distribution chosen by three integers:

* the frame's **prior id** ``p`` (the built-in profile family its segment's
  profile codes with: 0 speech, 1 music, 2 ambient, ...);
* the **level** ``l``;
* a **context** ``c``: at level 0 the group of the *previous frame's* level-0
  index, at level ``l >= 1`` the group of the *same frame's* level ``l - 1``
  index. ``context_of[l]`` maps a codebook index to its group (groups are
  clusters of codewords with similar successor statistics, fitted on
  training audio); a level-0 frame with no coded predecessor in its chunk
  uses ``start_context``.

Conditioning on the previous level is what makes residual VQ codes
compressible: which residual is left depends on the codeword just used. On
held-out corpus clips it saves about three times the bits of per-level
static priors (docs/TRAINING.md, "Entropy tables").

The distributions are **integer frequencies** summing to exactly
``2 ** precision_bits`` with every symbol at least 1, so any index is codable
(even one never seen in training) and the coder sees the same numbers on
every machine: decoding is bit-identical everywhere (the idea of EnCodec's
``build_stable_quantized_cdf``; floating-point work happens once, when the
table is built, and only integers are shipped). :mod:`adaptive_codec.entropy.coder`
codes chunks of frames with these tables.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from adaptive_codec.errors import FormatError

__all__ = ["DEFAULT_PRECISION_BITS", "TABLE_FORMAT", "EntropyModel", "quantize_probabilities", "symbol_contexts",
           "level0_contexts"]

DEFAULT_PRECISION_BITS = 16  # 2**16 total frequency: a never-seen index costs <= 16 bits
_MAX_PRECISION_BITS = 24  # constriction's categorical models work at 24-bit precision
_ROUNDOFF = 2.0**-40  # float noise below this is removed before quantizing (stability)
TABLE_FORMAT = "adaptive-codec-entropy/2"  # metadata "format" of a table file
_MAX_CONTEXTS = 1 << 16


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
    freqs = (base.astype(np.int64) + 1).reshape(-1, k)
    frac = (scaled - base).reshape(-1, k)
    remainder = total - freqs.sum(-1)  # in [0, K] per row
    # Rank fractional parts once for all rows (stable: ties to the lower index)
    # and give one unit to each row's first `remainder` symbols.
    order = np.argsort(-frac, axis=-1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(k)[None, :].repeat(len(order), 0), axis=-1)
    freqs += rank < remainder[:, None]
    return freqs.reshape(probs.shape).astype(np.uint32)


@dataclass(eq=False)
class EntropyModel:
    """Integer categorical tables per (prior id, RVQ level, context).

    Parameters
    ----------
    frequencies : np.ndarray [shape=(n_priors, n_levels, n_contexts, codebook_size)]
        Unsigned integers; each row sums to ``2 ** precision_bits``; every entry >= 1.
    context_of : np.ndarray [shape=(n_levels, codebook_size)]
        Context group of each conditioning index, in ``[0, n_contexts)``: at
        level 0 of the previous frame's level-0 index, at level ``l >= 1`` of
        the same frame's level ``l - 1`` index.
    start_context : int
        Context of a level-0 index whose previous frame is not coded in the chunk.
    precision_bits : int
        log2 of the row total.
    level_bits : np.ndarray [shape=(n_priors, n_levels)], optional
        Expected code length (bits) of an index at each level, cross-fitted on
        the tables' training codes (:func:`adaptive_codec.train.entropy.expected_level_bits`):
        what the encoder expects a level to cost when it maps a bitrate to a
        depth (:func:`adaptive_codec.backbone.model.n_q_for_bitrate`). Not
        needed to decode, so not part of :meth:`digest`.
    """

    frequencies: np.ndarray
    context_of: np.ndarray
    start_context: int = 0
    precision_bits: int = DEFAULT_PRECISION_BITS
    level_bits: np.ndarray | None = None
    _models: dict = field(default_factory=dict, init=False, repr=False)
    _digest: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        freqs = np.asarray(self.frequencies)
        ctx = np.asarray(self.context_of)
        if freqs.ndim != 4 or min(freqs.shape) < 1:
            raise FormatError(f"entropy model: frequencies must have shape (priors, levels, contexts, K), got {freqs.shape}")
        n_priors, n_levels, n_contexts, k = freqs.shape
        if not 1 <= int(self.precision_bits) <= _MAX_PRECISION_BITS:
            raise FormatError(f"entropy model: precision_bits must be in 1..{_MAX_PRECISION_BITS}, got {self.precision_bits}")
        if (1 << int(self.precision_bits)) <= k:
            raise FormatError(f"entropy model: 2**precision_bits must exceed the codebook size {k}")
        if n_contexts > _MAX_CONTEXTS:
            raise FormatError(f"entropy model: at most {_MAX_CONTEXTS} contexts, got {n_contexts}")
        if not np.issubdtype(freqs.dtype, np.integer) or not np.issubdtype(ctx.dtype, np.integer):
            raise FormatError("entropy model: frequencies and context maps must be integers")
        if np.any(freqs < 1):
            raise FormatError("entropy model: every frequency must be >= 1 (every symbol codable)")
        if np.any(freqs.astype(np.int64).sum(-1) != (1 << int(self.precision_bits))):
            raise FormatError(f"entropy model: every row must sum to 2**{self.precision_bits}")
        if ctx.shape != (n_levels, k):
            raise FormatError(f"entropy model: context_of must have shape ({n_levels}, {k}), got {ctx.shape}")
        if ctx.size and (ctx.min() < 0 or ctx.max() >= n_contexts):
            raise FormatError(f"entropy model: context_of values must lie in 0..{n_contexts - 1}")
        if not 0 <= int(self.start_context) < n_contexts:
            raise FormatError(f"entropy model: start_context {self.start_context} out of range 0..{n_contexts - 1}")
        if self.level_bits is not None:
            bits = np.asarray(self.level_bits, dtype=np.float64)
            if bits.shape != (n_priors, n_levels) or not np.all(np.isfinite(bits)) or np.any(bits <= 0) \
                    or np.any(bits > self.precision_bits):
                raise FormatError(f"entropy model: level_bits must be ({n_priors}, {n_levels}) values in "
                                  f"(0, {self.precision_bits}], got shape {bits.shape}")
            self.level_bits = bits
        self.frequencies = freqs.astype(np.uint32)
        self.context_of = ctx.astype(np.int64)
        self.start_context = int(self.start_context)
        self.precision_bits = int(self.precision_bits)

    # -- construction -------------------------------------------------------
    @classmethod
    def unconditional(cls, frequencies: np.ndarray, precision_bits: int = DEFAULT_PRECISION_BITS) -> "EntropyModel":
        """A model without contexts from tables of shape ``(n_priors, n_levels, K)``."""
        freqs = np.asarray(frequencies)
        if freqs.ndim != 3:
            raise FormatError(f"entropy model: unconditional frequencies must have shape (priors, levels, K), got {freqs.shape}")
        return cls(freqs[:, :, None, :], np.zeros(freqs.shape[1:], np.int64), 0, precision_bits)

    @classmethod
    def from_probabilities(cls, probabilities: np.ndarray, context_of: np.ndarray, start_context: int,
                           precision_bits: int = DEFAULT_PRECISION_BITS) -> "EntropyModel":
        """Quantize probability tables ``(n_priors, n_levels, n_contexts, K)`` into a model."""
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.ndim != 4:
            raise ValueError(f"probabilities must have shape (priors, levels, contexts, K), got {probs.shape}")
        return cls(quantize_probabilities(probs, precision_bits), context_of, start_context, precision_bits)

    @classmethod
    def from_logits(cls, logits: Any, precision_bits: int = DEFAULT_PRECISION_BITS) -> "EntropyModel":
        """Unconditional model from learned logits ``(n_priors, n_levels, K)`` (softmax, then integers).

        This is the fallback model of weights without a matching table file.
        """
        if hasattr(logits, "detach"):  # torch.Tensor, without importing torch here
            logits = logits.detach().cpu().double().numpy()
        arr = np.asarray(logits, dtype=np.float64)
        if arr.ndim != 3:
            raise ValueError(f"logits must have shape (n_priors, n_levels, K), got {arr.shape}")
        probs = np.exp(arr - arr.max(-1, keepdims=True))
        return cls.unconditional(quantize_probabilities(probs, precision_bits), precision_bits)

    @classmethod
    def from_counts(cls, counts: np.ndarray, precision_bits: int = DEFAULT_PRECISION_BITS) -> "EntropyModel":
        """Unconditional model from symbol counts ``(n_priors, n_levels, K)``, add-one smoothed.

        Integer arithmetic only, so the table is identical on every machine.
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
        rem = (scaled % row).astype(np.float64) / row  # only ranks remainders
        freqs = (base + 1).reshape(-1, k)
        flat_rem = rem.reshape(-1, k)
        for i, r in enumerate((total - freqs.sum(-1)).tolist()):
            if r:
                freqs[i, np.argsort(-flat_rem[i], kind="stable")[:r]] += 1
        return cls.unconditional(freqs.reshape(c.shape), precision_bits)

    @classmethod
    def uniform(cls, n_priors: int, n_levels: int, codebook_size: int, precision_bits: int = DEFAULT_PRECISION_BITS) -> "EntropyModel":
        """Uniform tables (the model of an untrained backbone)."""
        return cls.from_counts(np.zeros((n_priors, n_levels, codebook_size), np.int64), precision_bits)

    # -- properties ---------------------------------------------------------
    @property
    def n_priors(self) -> int:
        return int(self.frequencies.shape[0])

    @property
    def n_levels(self) -> int:
        return int(self.frequencies.shape[1])

    @property
    def n_contexts(self) -> int:
        return int(self.frequencies.shape[2])

    @property
    def codebook_size(self) -> int:
        return int(self.frequencies.shape[3])

    def bits_table(self) -> np.ndarray:
        """Cost in bits of each symbol, ``-log2(freq / 2**precision)``, shape (priors, levels, contexts, K)."""
        return self.precision_bits - np.log2(self.frequencies.astype(np.float64))

    def with_level_bits(self, level_bits: np.ndarray | None) -> "EntropyModel":
        """The same tables with ``level_bits`` (expected bits per index and level) attached."""
        return EntropyModel(self.frequencies, self.context_of, self.start_context, self.precision_bits,
                            None if level_bits is None else np.asarray(level_bits, dtype=np.float64))

    def mean_level_bits(self, codes: Sequence[np.ndarray], prior_id: int) -> np.ndarray:
        """Mean code length (bits) at every level of ``codes`` coded with prior ``prior_id``.

        Parameters
        ----------
        codes : sequence of np.ndarray [shape=(n_levels, frames)]
            Clips coded at full depth, each as one chunk (contexts restart).
        prior_id : int

        Returns
        -------
        np.ndarray [shape=(n_levels,)]
            ``log2(codebook_size)`` where ``codes`` has no frames.
        """
        table = self.bits_table()
        total, frames = np.zeros(self.n_levels), 0
        for c in codes:
            c = np.asarray(c)
            if c.ndim != 2 or c.shape[0] < self.n_levels:
                raise ValueError(f"codes must have shape ({self.n_levels}, frames), got {c.shape}")
            c = c[: self.n_levels]
            depths = np.full(c.shape[1], self.n_levels)
            for level in range(c.shape[0]):
                ctx = symbol_contexts(self, c, depths, level)
                total[level] += table[prior_id, level, ctx, c[level].astype(np.int64)].sum()
            frames += c.shape[1]
        if frames == 0:
            return np.full(self.n_levels, math.log2(self.codebook_size))
        return total / frames

    # -- serialization ------------------------------------------------------
    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays (for safetensors) and a JSON-able metadata dict; no pickle.

        Frequencies are stored as uint16 when they fit (precision <= 16 bits).
        """
        dtype = np.uint16 if self.frequencies.max() <= np.iinfo(np.uint16).max else np.uint32
        ctx_dtype = np.uint16 if self.n_contexts <= 1 << 16 else np.uint32
        meta = {
            "format": TABLE_FORMAT,
            "precision_bits": self.precision_bits,
            "shape": list(self.frequencies.shape),
            "start_context": self.start_context,
            "digest": self.digest(),
        }
        arrays = {
            "entropy_frequencies": self.frequencies.astype(dtype),
            "entropy_context_of": self.context_of.astype(ctx_dtype),
        }
        if self.level_bits is not None:
            arrays["entropy_level_bits"] = self.level_bits.astype(np.float32)
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> "EntropyModel":
        """Inverse of :meth:`to_arrays`; checks the digest when the metadata has one."""
        try:
            freqs = np.asarray(arrays["entropy_frequencies"])
            precision = int(meta["precision_bits"])
            level_bits = arrays.get("entropy_level_bits")
            if freqs.ndim == 3:  # a table without contexts
                model = cls.unconditional(freqs, precision).with_level_bits(level_bits)
            else:
                model = cls(freqs, np.asarray(arrays["entropy_context_of"]), int(meta["start_context"]), precision,
                            level_bits)
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"entropy model: missing or invalid field {exc}") from None
        want = meta.get("digest")
        if want is not None and want != model.digest():
            raise FormatError(f"entropy model: digest mismatch (stored {str(want)[:16]}…, computed {model.digest()[:16]}…)")
        return model

    def save(self, path: str | os.PathLike, *, weights_id: str, weights_sha256: str,
             provenance: dict[str, Any] | None = None) -> Path:
        """Write the tables as safetensors (atomically), tied to one backbone weights file.

        Parameters
        ----------
        weights_id, weights_sha256 : str
            The weights the tables were counted with; :meth:`load` callers
            check them against the weights they use.
        provenance : dict, optional
            JSON-able build information (data, command, held-out results).
        """
        path = Path(path)
        arrays, meta = self.to_arrays()
        strings = {k: json.dumps(v) if not isinstance(v, str) else v for k, v in meta.items()}
        strings.update(weights_id=weights_id, weights_sha256=weights_sha256,
                       provenance=json.dumps(provenance or {}, sort_keys=True))
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            save_file(arrays, str(tmp), metadata=strings)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # shipped next to the weights: readable like them
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> tuple["EntropyModel", dict[str, Any]]:
        """Read a table file written by :meth:`save`; returns the model and its metadata.

        Raises
        ------
        FormatError
            If the file is not an entropy table or fails its digest check.
        """
        try:
            with safe_open(str(path), framework="numpy") as fh:
                raw = dict(fh.metadata() or {})
                arrays = {k: fh.get_tensor(k) for k in fh.keys()}
        except (SafetensorError, OSError) as exc:
            raise FormatError(f"{path}: not a readable entropy table ({exc})") from None
        if raw.get("format") != TABLE_FORMAT:
            raise FormatError(f"{path}: not an adaptive-codec entropy table (format {raw.get('format')!r}, expected {TABLE_FORMAT!r})")
        try:
            meta = {k: (v if k in ("format", "weights_id", "weights_sha256", "digest") else json.loads(v)) for k, v in raw.items()}
        except ValueError:
            raise FormatError(f"{path}: entropy table metadata is not valid JSON") from None
        return cls.from_arrays(arrays, meta), meta

    def digest(self) -> str:
        """SHA-256 (hex) of precision, shape, start context, context maps and tables (docs/FORMAT.md section 4)."""
        # Hashing 3 MB of tables costs ~5 % of a short clip's encode+decode;
        # the tables are never modified after construction (the cached
        # constriction models rely on that too), so hash once.
        if self._digest is not None:
            return self._digest
        h = hashlib.sha256()
        head = {"precision_bits": self.precision_bits, "shape": list(self.frequencies.shape), "start_context": self.start_context}
        h.update(json.dumps(head, sort_keys=True).encode())
        h.update(self.context_of.astype("<u4").tobytes())
        h.update(self.frequencies.astype("<u4").tobytes())
        self._digest = h.hexdigest()
        return self._digest

    # -- constriction models (cached) ------------------------------------------------
    def _model(self, prior_id: int, level: int, context: int):
        key = (prior_id, level, context)
        model = self._models.get(key)
        if model is None:
            import constriction

            # Exact dyadic floats (freq / 2**precision) are the same on every
            # machine; perfect=False is constriction's deterministic fast path.
            # Encoder and decoder must both build concrete models this way:
            # constriction's model *family* quantizes differently.
            probs = self.frequencies[prior_id, level, context].astype(np.float64) / float(1 << self.precision_bits)
            model = constriction.stream.model.Categorical(probs, perfect=False)
            self._models[key] = model
        return model


def level0_contexts(model: EntropyModel, level0: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """Context of every frame's level-0 index: its predecessor's group, or the start context."""
    ctx = np.full(depths.size, model.start_context, np.int64)
    if depths.size > 1:
        has_prev = depths[:-1] > 0
        ctx[1:][has_prev] = model.context_of[0, level0[:-1][has_prev]]
    return ctx


def symbol_contexts(model: EntropyModel, codes: np.ndarray, depths: np.ndarray, level: int) -> np.ndarray:
    """Context of every frame's index at ``level`` (meaningful where ``depths > level``).

    Parameters
    ----------
    codes : np.ndarray [shape=(max_levels, n_frames)]
        Indices; rows ``level - 1`` (and row 0 for ``level == 0``) must be valid
        where they are coded.
    depths : np.ndarray [shape=(n_frames,)]
    level : int

    Returns
    -------
    np.ndarray [shape=(n_frames,), dtype=int64]
    """
    if level == 0:
        return level0_contexts(model, np.asarray(codes[0]).astype(np.int64).clip(0, model.codebook_size - 1), depths)
    prev = np.where(depths > level - 1, codes[level - 1], 0).astype(np.int64)
    return model.context_of[level, prev.clip(0, model.codebook_size - 1)]
