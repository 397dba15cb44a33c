"""The enhancement layer's quantizer: the MDCT residual, band by band, with steps from the decoded band energies.

The layer codes ``R = X - w·C`` where ``X`` is the input's MDCT at the
backbone's rate (24 kHz, hop 320), ``C`` the backbone's decoded MDCT and
``w`` a prediction weight per band and segment (or 1 without prediction);
the decoder adds the dequantized ``R`` to ``w·C`` before the inverse MDCT.

Step sizes need no side information: they come from the decoded band
energies of ``C`` (the decoder has them), through a simple masking model::

    step[t, b] = g · (E[t, b] + floor) ^ (alpha / 2),
    E[t, b] = max(mean C² in band b, spread · neighbours)

so ``alpha = 1`` keeps the noise-to-signal ratio the same in every band and
smaller ``alpha`` whitens the noise towards the absolute floor. ``g`` (one
byte per chunk, 1/16-octave steps) is the rate knob. ``C`` comes from a
neural decoder that is deterministic only to float rounding, so it only
scales dequantized values: a rounding difference moves the output by the
same relative amount and cannot desynchronise the entropy coder, whose
probabilities depend on integers in the payload only
(:mod:`~adaptive_codec.tools.enhance.tables`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BAND_EDGES_HZ", "GAIN_STEPS_PER_OCTAVE", "GAIN_ZERO", "MAX_Q", "WEIGHTS", "LayerConfig", "band_bins",
           "band_power", "block_sums", "dequantize", "expand", "layer_values", "predicted", "prediction_weights",
           "quantize", "reconstruct", "segment_count", "step_sizes"]

#: Band edges (Hz) of the 24 kHz MDCT (37.5 Hz per coefficient): about 1/3 octave above 1.6 kHz.
BAND_EDGES_HZ = (0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 2000, 2400, 2800, 3200, 3800, 4400,
                 5200, 6000, 7000, 8000, 9500, 12000)
#: Prediction weights of the backbone's coefficients (index = nibble 0..8).
WEIGHTS = np.linspace(0.0, 1.0, 9)
#: Largest coded magnitude (larger values are clipped: that costs error, never desync).
MAX_Q = 2047
#: Gain byte k of a chunk: g = 2 ** ((k - GAIN_ZERO) / GAIN_STEPS_PER_OCTAVE).
GAIN_ZERO = 128
GAIN_STEPS_PER_OCTAVE = 16


@dataclass(frozen=True)
class LayerConfig:
    """Quantizer settings of the layer (what encoder and decoder must agree on).

    Attributes
    ----------
    alpha : float
        Masking exponent: 1 = noise follows the band energy, 0 = flat noise.
    floor : float
        Absolute floor of the band power (MDCT coefficient², full scale ~ 1e2).
    spread : float
        Share of a neighbouring band's power that masks this band.
    deadzone : float
        Rounding offset taken off ``|r| / step + 0.5`` (0 = plain rounding), in ``[0, 0.5)``.
    segment_frames : int
        Frames per block of one Laplace scale and prediction weight (75 = 1 s at hop 320).
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
    """

    alpha: float = 0.6
    floor: float = 1e-6
    spread: float = 0.25
    deadzone: float = 0.15
    segment_frames: int = 75
    predict: bool = False
    fill: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 4.0:
            raise ValueError(f"alpha must be in [0, 4], got {self.alpha}")
        if not self.floor > 0:
            raise ValueError(f"floor must be > 0, got {self.floor}")
        if not 0.0 <= self.spread <= 1.0:
            raise ValueError(f"spread must be in [0, 1], got {self.spread}")
        if not 0.0 <= self.deadzone < 0.5:
            raise ValueError(f"deadzone must be in [0, 0.5), got {self.deadzone}")
        if not 1 <= int(self.segment_frames) <= 65535 or int(self.segment_frames) != self.segment_frames:
            raise ValueError(f"segment_frames must be an integer in 1..65535, got {self.segment_frames}")


def band_bins(hop: int, internal_hz: int) -> np.ndarray:
    """Coefficient index ``(bands + 1,)`` of each edge of :data:`BAND_EDGES_HZ` for ``hop`` coefficients at ``internal_hz``."""
    width = internal_hz / 2 / hop
    return np.array([int(round(e / width)) for e in BAND_EDGES_HZ])


def segment_count(frames: int, seg: int) -> int:
    """Number of ``seg``-frame blocks covering ``frames`` frames (the last may be short)."""
    return -(-frames // seg)


def band_power(coef: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean square ``(frames, bands)`` float64 of each band of coefficients ``(frames, hop)``."""
    return np.add.reduceat(coef.astype(np.float64) ** 2, edges[:-1], axis=1) / np.diff(edges)


def block_sums(values: np.ndarray, edges: np.ndarray, seg: int) -> np.ndarray:
    """Sums ``(segments, bands)`` of ``values`` ``(frames, hop)`` over each segment and band."""
    rows = np.add.reduceat(values, np.arange(0, values.shape[0], seg), axis=0)
    return np.add.reduceat(rows, edges[:-1], axis=1)


def expand(per_block: np.ndarray, edges: np.ndarray, frames: int, seg: int) -> np.ndarray:
    """A ``(segments, bands)`` array spread over ``(frames, hop)``."""
    return np.repeat(np.repeat(per_block, np.diff(edges), axis=1), seg, axis=0)[:frames]


def step_sizes(coef: np.ndarray, gain_index: int, cfg: LayerConfig, edges: np.ndarray,
               power: np.ndarray | None = None) -> np.ndarray:
    """Step ``(frames, hop)`` float64 of every coefficient from the decoded coefficients ``(frames, hop)``.

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
    """Integer values ``(frames, hop)`` int32 in ``[-MAX_Q, MAX_Q]`` of the residual, with a dead zone."""
    mag = np.floor(np.abs(residual) / step + 0.5 - cfg.deadzone)
    return (np.sign(residual) * np.clip(mag, 0, MAX_Q)).astype(np.int32)


def dequantize(q: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Residual ``(frames, hop)`` float32 of the values (zeros stay zero)."""
    return (q * step).astype(np.float32)


def prediction_weights(target: np.ndarray, coef: np.ndarray, edges: np.ndarray, seg: int) -> np.ndarray:
    """Index into :data:`WEIGHTS` ``(segments, bands)`` uint8: the least-squares weight of ``coef``, clipped and rounded."""
    xc = block_sums(target.astype(np.float64) * coef, edges, seg)
    cc = block_sums(coef.astype(np.float64) ** 2, edges, seg)
    w = np.clip(xc / np.maximum(cc, 1e-20), 0.0, 1.0)
    return np.argmin(np.abs(WEIGHTS[None, None, :] - w[..., None]), axis=-1).astype(np.uint8)


def predicted(coef: np.ndarray, weights: np.ndarray | None, edges: np.ndarray, seg: int) -> np.ndarray:
    """``coef`` ``(frames, hop)`` scaled by each band and segment's weight (``coef`` itself without weights)."""
    if weights is None:
        return coef
    return (coef * expand(WEIGHTS[weights], edges, coef.shape[0], seg)).astype(np.float32)


def reconstruct(coef: np.ndarray, q: np.ndarray, step: np.ndarray, weights: np.ndarray | None,
                cfg: LayerConfig, edges: np.ndarray) -> np.ndarray:
    """Enhanced coefficients ``(frames, hop)`` float32: ``w·C + q·step``, zero cells filled (``cfg.fill``).

    Coefficients above the last band edge (none at 24 kHz, hop 320) keep the backbone's value.
    """
    out = np.array(coef, dtype=np.float32, copy=True)
    top = int(edges[-1])
    c = coef[:, :top]
    body = predicted(c, weights, edges, cfg.segment_frames) + dequantize(q, step)
    if weights is not None and cfg.fill:
        w = expand(WEIGHTS[weights], edges, coef.shape[0], cfg.segment_frames)
        cell = (0.5 + cfg.deadzone) * step
        zero = (q == 0) & (w < 1)
        body[zero] += np.clip((1 - w[zero]) * c[zero], -cell[zero], cell[zero])
    out[:, :top] = body
    return out


def layer_values(target: np.ndarray, coef: np.ndarray, gain_index: int, cfg: LayerConfig, edges: np.ndarray,
                 power: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Values ``(frames, bins)`` int32, prediction weights ``(segments, bands)`` (or None) and steps at one gain index.

    ``target`` and ``coef`` are ``(frames, hop)``; ``bins = edges[-1]`` (all of ``hop`` at 24 kHz).
    """
    top = int(edges[-1])
    target, coef = target[:, :top], coef[:, :top]
    step = step_sizes(coef, gain_index, cfg, edges, power)
    weights = prediction_weights(target, coef, edges, cfg.segment_frames) if cfg.predict else None
    q = quantize(target - predicted(coef, weights, edges, cfg.segment_frames), step, cfg)
    return q, weights, step
