"""Bjøntegaard delta rate and delta quality between two rate-quality curves.

Method, as in the maintained implementations (JCT-VC/JVET common test
conditions' spreadsheet, VCEG-AL22, the ``bjontegaard`` package's
``method="pchip"``, Google's ``visual_metrics.py``):

1. **Clean**: drop points with a non-finite value or a rate <= 0; sort by rate.
2. **Upper envelope**: keep only the operating points that no cheaper point
   beats, i.e. each kept point has strictly higher quality than every point
   at a lower (or equal) rate. A point whose quality is no better than a
   cheaper one's is one nobody would choose, and it makes quality a
   non-invertible function of rate, which BD-rate needs. The number of points
   dropped is reported, never hidden.
3. **Interpolate** log-rate as a function of quality with a piecewise-cubic
   Hermite interpolant (PCHIP; monotone, so it never overshoots between
   points the way the original cubic least-squares fit does on flat curves).
4. **Integrate only over the overlap**: the quality interval both curves
   cover; no extrapolation. The mean log-rate difference over that interval
   becomes a percentage: ``(exp(mean(ln R_test - ln R_anchor)) - 1) * 100``.

BD-quality swaps the axes: quality as a function of log-rate over the shared
log-rate interval, in the quality metric's unit.

"n/a" (NaN with a one-line ``reason``) when a curve has fewer than 2 usable
points, fewer than 2 points on its upper envelope (its quality never rises
with rate), or the two curves share no interval. ``method="cubic"`` (the
original VCEG-M33 least-squares cubic, degree ``min(3, points - 1)``, on the
envelope points) is kept to compare with older numbers.

BD-rate < 0 means the *test* curve needs fewer bits than the *anchor* for
the same quality (e.g. -20 % = 20 % smaller files).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BDResult", "METHODS", "bd_compare", "bd_quality", "bd_rate_percent", "upper_envelope"]

METHODS = ("pchip", "cubic")


@dataclass(frozen=True)
class BDResult:
    """Both Bjøntegaard deltas of a test curve against an anchor, and how they were found.

    Attributes
    ----------
    rate_percent : float
        BD-rate in percent (negative: the test needs fewer bits); NaN when n/a.
    quality : float
        BD-quality, test minus anchor at equal rate, in the metric's unit
        (for a lower-is-better metric, negative is better); NaN when n/a.
    rate_reason, quality_reason : str
        Empty when the value was computed, else why it is n/a (one line).
    anchor_points, test_points : int
        Points on each curve's upper envelope (the points the fit used).
    anchor_usable, test_usable : int
        Points with finite values and a positive rate, before the envelope.
    quality_low, quality_high : float
        The shared quality interval BD-rate integrates over (metric unit);
        NaN when there is none.
    quality_overlap : float
        Width of that interval / width of the union of both curves' quality
        ranges (0-1); a small overlap means BD-rate describes a small part
        of the curves.
    """

    rate_percent: float
    quality: float
    rate_reason: str
    quality_reason: str
    anchor_points: int
    test_points: int
    anchor_usable: int
    test_usable: int
    quality_low: float
    quality_high: float
    quality_overlap: float

    @property
    def dropped_points(self) -> int:
        """Usable points of both curves left out because a cheaper point was at least as good."""
        return self.anchor_usable + self.test_usable - self.anchor_points - self.test_points


def _clean(rate_kbps: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate_kbps, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise ValueError(f"rate and quality must be 1-D of equal length, got {r.shape}, {q.shape}")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    return r[keep], q[keep]


def upper_envelope(rate_kbps: Sequence[float], quality: Sequence[float]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The operating points no cheaper point beats (quality: higher is better).

    Parameters
    ----------
    rate_kbps, quality : sequence of float
        One curve, in any order; non-finite values and rates <= 0 are dropped.

    Returns
    -------
    rate_kbps, quality : ndarray [shape=(k,)]
        Both strictly increasing: each point's quality is strictly higher
        than that of every point at a lower or equal rate.
    """
    r, q = _clean(rate_kbps, quality)
    # By rate, and at equal rate the best quality first, so it is the one kept.
    order = np.lexsort((-q, r))
    keep_r, keep_q = [], []
    best = -math.inf
    for rate, value in zip(r[order], q[order]):
        if value > best:
            keep_r.append(rate)
            keep_q.append(value)
            best = value
    return np.asarray(keep_r, np.float64), np.asarray(keep_q, np.float64)


def _mean_over(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Mean of y(x) over [lo, hi], y interpolated through the points (x strictly increasing)."""
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator

        return float(PchipInterpolator(x, y, extrapolate=False).integrate(lo, hi)) / (hi - lo)
    if method == "cubic":
        antiderivative = np.polyint(np.polyfit(x, y, min(3, x.size - 1)))
        return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo)) / (hi - lo)
    raise ValueError(f"unknown BD method {method!r}; choose one of {', '.join(METHODS)}")


def _shared(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Shared interval of two value ranges and its share of their union."""
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    overlap = max(hi - lo, 0.0) / union if union > 0 else 0.0
    return float(lo), float(hi), float(overlap)


def bd_compare(anchor_rate_kbps: Sequence[float], anchor_quality: Sequence[float],
               test_rate_kbps: Sequence[float], test_quality: Sequence[float],
               *, higher_is_better: bool = True, method: str = "pchip") -> BDResult:
    """BD-rate and BD-quality of *test* against *anchor* (method in the module docstring).

    Parameters
    ----------
    anchor_rate_kbps, anchor_quality : sequence of float
        The reference curve: actual bitrates and the quality measured at each.
    test_rate_kbps, test_quality : sequence of float
        The curve being compared.
    higher_is_better : bool
        False for distances (e.g. mel distance in dB): the envelope and the
        integration then work on the negated values, and ``quality`` is
        reported in the metric's own sign.
    method : {"pchip", "cubic"}

    Returns
    -------
    BDResult
    """
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; choose one of {', '.join(METHODS)}")
    sign = 1.0 if higher_is_better else -1.0
    curves = []
    for name, rate, quality in (("anchor", anchor_rate_kbps, anchor_quality),
                                ("test", test_rate_kbps, test_quality)):
        r, q = _clean(rate, sign * np.asarray(quality, dtype=np.float64))
        er, eq = upper_envelope(r, q)
        curves.append((name, r.size, np.log(er), eq))
    (_, n_a, lr_a, q_a), (_, n_t, lr_t, q_t) = curves

    reason = ""
    for name, n, lr, _ in curves:
        if n < 2:
            reason = f"{name} has {n} usable point{'s' if n != 1 else ''} (needs 2)"
            break
        if lr.size < 2:
            reason = (f"{name} quality does not rise with rate (1 of {n} points on its upper "
                      "envelope)")
            break
    q_lo = q_hi = overlap = math.nan
    rate_pct = quality_delta = math.nan
    rate_reason = quality_reason = reason
    if not reason:
        lo, hi, overlap = _shared(q_a, q_t)
        q_lo, q_hi = sorted((sign * lo, sign * hi)) if hi > lo else (math.nan, math.nan)
        if hi > lo:
            mean_a = _mean_over(q_a, lr_a, lo, hi, method)
            mean_t = _mean_over(q_t, lr_t, lo, hi, method)
            rate_pct = (math.exp(mean_t - mean_a) - 1.0) * 100.0
        else:
            rate_reason = (f"quality ranges do not overlap (anchor {_span(sign * q_a)}, "
                           f"test {_span(sign * q_t)})")
        lo_r, hi_r, _ = _shared(lr_a, lr_t)
        if hi_r > lo_r:
            quality_delta = sign * (_mean_over(lr_t, q_t, lo_r, hi_r, method)
                                    - _mean_over(lr_a, q_a, lo_r, hi_r, method))
        else:
            quality_reason = (f"rate ranges do not overlap (anchor {_span(np.exp(lr_a))} kbps, "
                              f"test {_span(np.exp(lr_t))} kbps)")
    return BDResult(rate_percent=float(rate_pct), quality=float(quality_delta),
                    rate_reason=rate_reason, quality_reason=quality_reason,
                    anchor_points=int(q_a.size), test_points=int(q_t.size),
                    anchor_usable=int(n_a), test_usable=int(n_t), quality_low=float(q_lo), quality_high=float(q_hi),
                    quality_overlap=float(overlap))


def _span(values: np.ndarray) -> str:
    return f"{float(np.min(values)):.3g}-{float(np.max(values)):.3g}"


def bd_rate_percent(anchor_rate_kbps: Sequence[float], anchor_quality: Sequence[float],
                    test_rate_kbps: Sequence[float], test_quality: Sequence[float],
                    *, higher_is_better: bool = True, method: str = "pchip") -> float:
    """Average bitrate difference of *test* vs *anchor* at equal quality, in percent.

    :func:`bd_compare`'s ``rate_percent``: NaN when n/a (see its ``rate_reason``).
    """
    return bd_compare(anchor_rate_kbps, anchor_quality, test_rate_kbps, test_quality,
                      higher_is_better=higher_is_better, method=method).rate_percent


def bd_quality(anchor_rate_kbps: Sequence[float], anchor_quality: Sequence[float],
               test_rate_kbps: Sequence[float], test_quality: Sequence[float],
               *, higher_is_better: bool = True, method: str = "pchip") -> float:
    """Average quality difference of *test* minus *anchor* at equal bitrate, in the metric's unit.

    :func:`bd_compare`'s ``quality``: NaN when n/a (see its ``quality_reason``).
    """
    return bd_compare(anchor_rate_kbps, anchor_quality, test_rate_kbps, test_quality,
                      higher_is_better=higher_is_better, method=method).quality
