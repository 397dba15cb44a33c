"""The layer's entropy model: fixed integer tables of a quantized Laplace, one per scale.

Each band and segment of a chunk (a block) codes its values with one of
:data:`SCALES` (a nibble in the payload; 0 = the block is all zeros and
codes nothing). The distribution of scale ``s`` over ``v`` in
``[-MAX_Q, MAX_Q]`` is the quantized Laplace ``P(0) = 1 - exp(-1/2s)``,
``P(v) = exp(-|v|/s) sinh(1/2s)``, turned into **integer frequencies**
summing to ``2 ** PRECISION_BITS`` by
:func:`adaptive_codec.entropy.tables.quantize_probabilities` (every value
at least 1, so any value is codable). The coder sees only these integers,
so decoding is identical on every machine; the float work that builds them
happens once per process and is snapped to a coarse grid first (the same
rule as the RVQ tables). :func:`table_digest` lets a test pin them.

The encoder picks each block's scale by the closed-form cost of the
continuous model (a block's cost needs only its count of zeros, of
non-zeros and the sum of magnitudes); the same cost estimates the payload
size. It errs high: the tables give every value at least one count (at
most 24 bits), the continuous model charges a rare large value of a
small-scale block more, so real payloads come out 0.3-0.8 % smaller on
the example clips (tests/test_enhance_layer.py holds it to 1 %).
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np

from adaptive_codec.entropy.tables import quantize_probabilities
from adaptive_codec.tools.enhance.quantizer import MAX_Q, block_sums

__all__ = ["PRECISION_BITS", "SCALES", "block_costs", "estimated_bytes", "frequency_table", "laplace_model",
           "scale_indices", "table_digest"]

#: Laplace scales (in steps) of nibbles 1..15; nibble 0 = a block of zeros.
SCALES = 0.08 * 1.5 ** np.arange(15)
#: Total frequency of every table (constriction's categorical models work at 24 bits).
PRECISION_BITS = 24
#: Range-coder words end the payload: at most this many bytes beyond the information.
CODER_SLACK_BYTES = 4


@lru_cache(maxsize=None)
def frequency_table(scale_index: int) -> np.ndarray:
    """Integer frequencies ``(2·MAX_Q + 1,)`` uint32 of nibble ``scale_index`` (1..15), value ``v`` at ``v + MAX_Q``."""
    if not 1 <= scale_index <= len(SCALES):
        raise ValueError(f"scale index must be in 1..{len(SCALES)}, got {scale_index}")
    s = float(SCALES[scale_index - 1])
    v = np.abs(np.arange(-MAX_Q, MAX_Q + 1, dtype=np.float64))
    p = np.exp(-v / s) * math.sinh(0.5 / s)
    p[MAX_Q] = -math.expm1(-0.5 / s)
    table = quantize_probabilities(p, PRECISION_BITS)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=None)
def laplace_model(scale_index: int):
    """constriction categorical model of :func:`frequency_table` (exact: frequencies / 2**24 are exact floats)."""
    import constriction

    probs = frequency_table(scale_index).astype(np.float64) / float(1 << PRECISION_BITS)
    return constriction.stream.model.Categorical(probs, perfect=False)


def table_digest() -> str:
    """SHA-256 (hex) of all 15 tables, little-endian uint32 in nibble order: equal on every machine."""
    h = hashlib.sha256()
    for k in range(1, len(SCALES) + 1):
        h.update(frequency_table(k).astype("<u4").tobytes())
    return h.hexdigest()


def block_costs(q: np.ndarray, edges: np.ndarray, seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Cost (nats) ``(segments, bands, scales)`` of each block of ``q`` ``(frames, bins)`` under each scale, and its non-zeros."""
    mag = np.abs(q).astype(np.float64)
    n_all = block_sums(np.ones_like(mag), edges, seg)
    n_nonzero = block_sums((mag > 0).astype(np.float64), edges, seg)
    total = block_sums(mag, edges, seg)
    s = SCALES[None, None, :]
    log_p0 = np.log(-np.expm1(-0.5 / s))
    log_sinh = 0.5 / s + np.log(-np.expm1(-1.0 / s)) - np.log(2.0)  # log sinh(1/2s), stably
    cost = -(n_all - n_nonzero)[..., None] * log_p0 - n_nonzero[..., None] * log_sinh + total[..., None] / s
    return cost, n_nonzero


def scale_indices(q: np.ndarray, edges: np.ndarray, seg: int) -> np.ndarray:
    """Scale nibble ``(segments, bands)`` uint8 of each block: the cheapest scale, 0 for an all-zero block."""
    cost, n_nonzero = block_costs(q, edges, seg)
    return np.where(n_nonzero > 0, 1 + np.argmin(cost, axis=-1), 0).astype(np.uint8)


def estimated_bytes(q: np.ndarray, edges: np.ndarray, seg: int, predict: bool) -> float:
    """Size of the layer payload of ``q`` (:func:`~adaptive_codec.tools.enhance.payload.encode_payload`) without coding it."""
    cost, n_nonzero = block_costs(q, edges, seg)
    n_idx = n_nonzero.size
    head = 1 + (1 + predict) * ((n_idx + 1) // 2)
    info = float(np.where(n_nonzero > 0, cost.min(axis=-1), 0.0).sum()) / math.log(2) / 8
    return head + info + (CODER_SLACK_BYTES if info > 0 else 0)
