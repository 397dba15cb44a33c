"""The enhancement layer's coder, offline (issue 34, step 2): the MDCT residual, band-wise scalar quantized.

The layer codes ``R = X - C`` where ``X`` is the input's MDCT at the
backbone's rate (24 kHz, hop 320) and ``C`` the backbone's decoded MDCT; the
decoder adds the dequantized ``R`` to ``C`` before the inverse MDCT.

Step sizes need no side information: they come from the decoded band
energies of ``C`` (the decoder has them), through a simple masking model::

    step[t, b] = g · (E[t, b] + floor) ^ (alpha / 2),
    E[t, b] = max(mean C² in band b, spread · neighbours)

so ``alpha = 1`` keeps the noise-to-signal ratio the same in every band and
smaller ``alpha`` whitens the noise towards the absolute floor. ``g`` (one
value per chunk, 1/8-octave steps) is the rate knob. Because ``C`` comes
from a neural decoder that is deterministic only to float rounding, it only
scales the dequantized values (a rounding difference moves the output by
the same relative amount, it cannot desynchronise anything); the entropy
coder's probabilities depend on integers in the payload only: a Laplace
scale per band and 1 s segment, chosen from a fixed table by a 4-bit index
(0 = every value of the band is zero: none coded). Values quantized to zero
can be noise-filled at ``noise`` times the step.

This module is the prototype that :mod:`enhance_prototype` measures; the
stage in the package would hold the same functions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Band edges (Hz) of the 24 kHz MDCT (37.5 Hz per coefficient): about 1/3 octave above 1.6 kHz.
BAND_EDGES_HZ = (0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 2000, 2400, 2800, 3200, 3800, 4400,
                 5200, 6000, 7000, 8000, 9500, 12000)
#: Laplace scales (in steps) of indices 1..15; index 0 = a band-segment of zeros.
SCALES = 0.08 * 1.5 ** np.arange(15)
#: Prediction weights of the backbone's coefficients (index = nibble).
WEIGHTS = np.linspace(0.0, 1.0, 9)
#: Largest coded magnitude (values are clipped: costs error, never desync).
MAX_Q = 2047
#: Gain byte k of a chunk: g = 2 ** ((k - GAIN_ZERO) / GAIN_STEPS_PER_OCTAVE).
GAIN_ZERO = 128
GAIN_STEPS_PER_OCTAVE = 16


@dataclass(frozen=True)
class LayerConfig:
    """Quantizer and coder settings of the layer.

    Attributes
    ----------
    alpha : float
        Masking exponent: 1 = noise follows the band energy, 0 = flat noise.
    floor : float
        Absolute floor of the band power (MDCT coefficient², full scale ~ 1e2).
    spread : float
        Share of a neighbouring band's power that masks this band.
    deadzone : float
        Rounding offset taken off ``|r| / step + 0.5`` (0 = plain rounding).
    noise : float
        Noise filling of zeroed values, as a fraction of the step (0 = none).
    segment_frames : int
        Frames per Laplace-scale segment (75 = 1 s).
    lowest_hz : float
        Bands below this are not coded (DC and rumble).
    predict : bool
        Code ``X - w·C`` with a weight ``w`` in :data:`WEIGHTS` per band and
        segment (the least-squares one, rounded; a nibble each) instead of
        ``X - C``: where the backbone's waveform does not match the input
        (high bands), ``w`` near 0 codes the input itself.
    fill : bool
        With ``predict``: a value quantized to zero in a band with ``w`` < 1
        is reconstructed as the unpredicted part of the backbone's value,
        ``(1 - w)·C``, clipped to the quantizer's zero cell (the backbone's
        texture where the layer has no bits, at most as loud as the cell
        allows), instead of nothing.
    binary : bool
        With ``predict``: ``w`` is 0 or 1 only.
    """

    alpha: float = 0.6
    floor: float = 1e-6
    spread: float = 0.25
    deadzone: float = 0.15
    noise: float = 0.0
    segment_frames: int = 75
    lowest_hz: float = 0.0
    predict: bool = False
    fill: bool = True
    binary: bool = False


def band_bins(hop: int, internal_hz: int) -> np.ndarray:
    """Coefficient index of each edge of :data:`BAND_EDGES_HZ` ``(bands + 1,)``."""
    width = internal_hz / 2 / hop
    return np.array([int(round(e / width)) for e in BAND_EDGES_HZ])


def band_power(coef: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean square ``(frames, bands)`` of each band of coefficients ``(frames, hop)``."""
    return np.add.reduceat(coef.astype(np.float64) ** 2, edges[:-1], axis=1) / np.diff(edges)


def step_sizes(coef: np.ndarray, gain_index: int, cfg: LayerConfig, edges: np.ndarray,
               power: np.ndarray | None = None) -> np.ndarray:
    """Step per coefficient ``(frames, hop)`` from the decoded coefficients ``(frames, hop)``.

    ``power`` (:func:`band_power` of ``coef``) may be passed when already known.
    """
    power = band_power(coef, edges) if power is None else power
    masked = power.copy()
    masked[:, 1:] = np.maximum(masked[:, 1:], cfg.spread * power[:, :-1])
    masked[:, :-1] = np.maximum(masked[:, :-1], cfg.spread * power[:, 1:])
    g = 2.0 ** ((gain_index - GAIN_ZERO) / GAIN_STEPS_PER_OCTAVE)
    band_step = g * (masked + cfg.floor) ** (cfg.alpha / 2)
    return np.repeat(band_step, np.diff(edges), axis=1)


def quantize(residual: np.ndarray, step: np.ndarray, cfg: LayerConfig) -> np.ndarray:
    """Integer values ``(frames, hop)`` int32 of the residual with a dead zone."""
    mag = np.floor(np.abs(residual) / step + 0.5 - cfg.deadzone)
    return (np.sign(residual) * np.clip(mag, 0, MAX_Q)).astype(np.int32)


def dequantize(q: np.ndarray, step: np.ndarray, cfg: LayerConfig, seed: int = 0) -> np.ndarray:
    """Residual ``(frames, hop)`` float32 of the values; zeros noise-filled when ``cfg.noise`` > 0."""
    out = q * step
    if cfg.noise > 0:
        rng = np.random.default_rng(seed)  # the decoder's own: noise need not match the encoder's
        zero = q == 0
        out[zero] = cfg.noise * step[zero] * rng.uniform(-1.0, 1.0, int(zero.sum())) * np.sqrt(3.0)
    return out.astype(np.float32)


def _segments(frames: int, seg: int) -> list[tuple[int, int]]:
    return [(a, min(frames, a + seg)) for a in range(0, frames, seg)]


def _block_sums(values: np.ndarray, edges: np.ndarray, seg: int) -> np.ndarray:
    """Sums ``(segments, bands)`` of ``values`` ``(frames, hop)`` over each segment and band."""
    rows = np.add.reduceat(values, np.arange(0, values.shape[0], seg), axis=0)
    return np.add.reduceat(rows, edges[:-1], axis=1)


def _expand(per_block: np.ndarray, edges: np.ndarray, frames: int, seg: int) -> np.ndarray:
    """A ``(segments, bands)`` array spread over ``(frames, hop)``."""
    return np.repeat(np.repeat(per_block, np.diff(edges), axis=1), seg, axis=0)[:frames]


def _block_costs(q: np.ndarray, edges: np.ndarray, seg: int) -> tuple[np.ndarray, np.ndarray]:
    """Cost (nats) ``(segments, bands, scales)`` of each block under each of :data:`SCALES`, and its non-zeros.

    For the quantized Laplace of scale ``s``, ``P(0) = 1 - exp(-1/2s)`` and
    ``P(v) = exp(-|v|/s) sinh(1/2s)``, so a block's cost needs only its
    count of zeros, of non-zeros and the sum of magnitudes.
    """
    mag = np.abs(q).astype(np.float64)
    n_all = _block_sums(np.ones_like(mag), edges, seg)
    n_nonzero = _block_sums((mag > 0).astype(np.float64), edges, seg)
    total = _block_sums(mag, edges, seg)
    s = SCALES[None, None, :]
    log_p0 = np.log(-np.expm1(-0.5 / s))
    log_sinh = 0.5 / s + np.log(-np.expm1(-1.0 / s)) - np.log(2.0)  # log sinh(1/2s), stably
    cost = -(n_all - n_nonzero)[..., None] * log_p0 - n_nonzero[..., None] * log_sinh + total[..., None] / s
    return cost, n_nonzero


def scale_indices(q: np.ndarray, edges: np.ndarray, seg: int) -> np.ndarray:
    """Laplace-scale index ``(segments, bands)`` uint8 of each band and segment (0: all zeros).

    The scale of :data:`SCALES` under which the block costs fewest bits (:func:`_block_costs`).
    """
    cost, n_nonzero = _block_costs(q, edges, seg)
    return np.where(n_nonzero > 0, 1 + np.argmin(cost, axis=-1), 0).astype(np.uint8)


def estimated_bytes(q: np.ndarray, edges: np.ndarray, seg: int, predict: bool) -> float:
    """Size of :func:`encode_values`' payload of ``q`` without coding it (the range coder is within ~1 %)."""
    cost, n_nonzero = _block_costs(q, edges, seg)
    n_idx = n_nonzero.size
    head = 1 + (1 + predict) * ((n_idx + 1) // 2)
    return head + float(np.where(n_nonzero > 0, cost.min(axis=-1), 0.0).sum()) / math.log(2) / 8 + 4


def _block_scales(idx: np.ndarray, edges: np.ndarray, frames: int, seg: int) -> np.ndarray:
    """Block Laplace scale ``(frames, hop)`` of every value (0 where the block codes nothing)."""
    return _expand(np.concatenate([[0.0], SCALES])[idx], edges, frames, seg)


def _pack(nibbles: np.ndarray) -> bytes:
    flat = np.asarray(nibbles, np.uint8).reshape(-1)
    flat = np.append(flat, np.uint8(0)) if flat.size % 2 else flat
    return ((flat[0::2] << 4) | flat[1::2]).astype(np.uint8).tobytes()


def _unpack(data: bytes, n: int) -> np.ndarray:
    packed = np.frombuffer(data[: (n + 1) // 2], np.uint8)
    flat = np.empty(2 * packed.size, np.uint8)
    flat[0::2], flat[1::2] = packed >> 4, packed & 15
    return flat[:n]


def encode_values(q: np.ndarray, edges: np.ndarray, seg: int, gain_index: int,
                  weights: np.ndarray | None = None) -> bytes:
    """Payload of one chunk: gain byte, [weight nibbles], scale nibbles, range-coded values (frame-major)."""
    import constriction

    idx = scale_indices(q, edges, seg)
    scale = _block_scales(idx, edges, q.shape[0], seg)
    mask = scale > 0
    family = constriction.stream.model.QuantizedLaplace(-MAX_Q, MAX_Q + 1)
    enc = constriction.stream.queue.RangeEncoder()
    if mask.any():
        enc.encode(q[mask].astype(np.int32), family, np.zeros(int(mask.sum())), scale[mask])
    head = bytes([gain_index]) + (b"" if weights is None else _pack(weights))
    return head + _pack(idx) + enc.get_compressed().astype("<u4").tobytes()


def decode_values(payload: bytes, frames: int, edges: np.ndarray, seg: int,
                  predict: bool = False) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Values ``(frames, hop)`` int32, the gain index and the weight indices of :func:`encode_values`' payload."""
    import constriction

    gain_index = payload[0]
    n_idx = len(_segments(frames, seg)) * (len(edges) - 1)
    nb = (n_idx + 1) // 2
    pos = 1
    weights = None
    if predict:
        weights = _unpack(payload[pos:], n_idx).reshape(-1, len(edges) - 1)
        pos += nb
    idx = _unpack(payload[pos:], n_idx).reshape(-1, len(edges) - 1)
    pos += nb
    scale = _block_scales(idx, edges, frames, seg)
    mask = scale > 0
    q = np.zeros((frames, int(edges[-1])), np.int32)
    if mask.any():
        dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload[pos:], "<u4").astype(np.uint32))
        family = constriction.stream.model.QuantizedLaplace(-MAX_Q, MAX_Q + 1)
        q[mask] = dec.decode(family, np.zeros(int(mask.sum())), scale[mask])
    return q, gain_index, weights


def prediction_weights(target: np.ndarray, coef: np.ndarray, edges: np.ndarray, seg: int,
                       binary: bool = False) -> np.ndarray:
    """Index into :data:`WEIGHTS` ``(segments, bands)`` uint8: the least-squares weight of ``coef``, rounded."""
    xc = _block_sums(target.astype(np.float64) * coef, edges, seg)
    cc = _block_sums(coef.astype(np.float64) ** 2, edges, seg)
    w = np.clip(xc / np.maximum(cc, 1e-20), 0.0, 1.0)
    if binary:
        w = np.round(w)
    return np.argmin(np.abs(WEIGHTS[None, None, :] - w[..., None]), axis=-1).astype(np.uint8)


def predicted(coef: np.ndarray, weights: np.ndarray | None, edges: np.ndarray, seg: int) -> np.ndarray:
    """``coef`` scaled by each band and segment's weight (``coef`` itself without weights)."""
    if weights is None:
        return coef
    return (coef * _expand(WEIGHTS[weights], edges, coef.shape[0], seg)).astype(np.float32)


def reconstruct(coef: np.ndarray, q: np.ndarray, step: np.ndarray, weights: np.ndarray | None,
                cfg: LayerConfig, edges: np.ndarray) -> np.ndarray:
    """Enhanced coefficients ``(frames, hop)`` float32: ``w·C + q·step``, zero cells filled (``cfg.fill``)."""
    out = predicted(coef, weights, edges, cfg.segment_frames) + dequantize(q, step, cfg)
    if weights is not None and cfg.fill:
        w = _expand(WEIGHTS[weights], edges, coef.shape[0], cfg.segment_frames)
        cell = (0.5 + cfg.deadzone) * step
        zero = (q == 0) & (w < 1)
        out[zero] += np.clip((1 - w[zero]) * coef[zero], -cell[zero], cell[zero])
    return out.astype(np.float32)


def layer_values(target: np.ndarray, coef: np.ndarray, gain_index: int, cfg: LayerConfig, edges: np.ndarray,
                 power: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Values ``(frames, hop)``, prediction weights (or None) and steps of the layer at one gain index."""
    step = step_sizes(coef, gain_index, cfg, edges, power)
    weights = prediction_weights(target, coef, edges, cfg.segment_frames, cfg.binary) if cfg.predict else None
    q = quantize(target - predicted(coef, weights, edges, cfg.segment_frames), step, cfg)
    if cfg.lowest_hz > 0:
        q[:, : int(cfg.lowest_hz / (12000 / coef.shape[1]))] = 0
    return q, weights, step


def code_layer(target: np.ndarray, coef: np.ndarray, gain_index: int, cfg: LayerConfig,
               edges: np.ndarray, power: np.ndarray | None = None) -> tuple[bytes, np.ndarray]:
    """Payload and the decoder's enhanced coefficients ``(frames, hop)`` at one gain index."""
    q, weights, step = layer_values(target, coef, gain_index, cfg, edges, power)
    payload = encode_values(q, edges, cfg.segment_frames, gain_index, weights)
    return payload, reconstruct(coef, q, step, weights, cfg, edges)


def decode_layer(payload: bytes, coef: np.ndarray, cfg: LayerConfig, edges: np.ndarray) -> np.ndarray:
    """The decoder's side: enhanced coefficients ``(frames, hop)`` from the payload and the backbone's ``coef``."""
    q, gain_index, weights = decode_values(payload, coef.shape[0], edges, cfg.segment_frames, cfg.predict)
    return reconstruct(coef, q, step_sizes(coef, gain_index, cfg, edges), weights, cfg, edges)


def fit_gain(target: np.ndarray, coef: np.ndarray, budget_bytes: float, cfg: LayerConfig,
             edges: np.ndarray) -> tuple[bytes, np.ndarray] | None:
    """The finest gain whose payload fits ``budget_bytes``; None if even the coarsest does not.

    The search runs on :func:`estimated_bytes` (no range coding); the log
    size is nearly linear in the gain index, so the bracket is narrowed by
    interpolating in it. The chosen gain is then coded, and coarsened by a
    step while the real payload still exceeds the budget (rare: the estimate
    is within ~1 %).
    """
    power = band_power(coef, edges)
    sizes: dict[int, float] = {}

    def size(k: int) -> float:
        if k not in sizes:
            q, _, _ = layer_values(target, coef, k, cfg, edges, power)
            sizes[k] = math.log(estimated_bytes(q, edges, cfg.segment_frames, cfg.predict))
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
