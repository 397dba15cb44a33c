"""Bjøntegaard delta rate and delta quality between two rate-quality curves.

Method (G. Bjøntegaard, VCEG-M33, 2001): fit log-rate as a function of
quality for each curve, integrate both fits over the quality interval the
two curves share, and turn the mean log-rate difference into a percentage.
``method="cubic"`` is the original least-squares cubic polynomial (degree
``min(3, points - 1)``); ``method="pchip"`` is the piecewise-cubic
monotone interpolation used by the later common implementations (VCEG-AL22
and JVET's spreadsheet), which needs quality strictly increasing with rate.

BD-rate < 0 means the *test* curve needs fewer bits than the *anchor* for
the same quality (e.g. -20 % = 20 % smaller files).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["bd_rate_percent", "bd_quality"]

METHODS = ("cubic", "pchip")


def _clean(rate_kbps: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rate_kbps, dtype=np.float64)
    q = np.asarray(quality, dtype=np.float64)
    if r.shape != q.shape or r.ndim != 1:
        raise ValueError(f"rate and quality must be 1-D of equal length, got {r.shape}, {q.shape}")
    keep = np.isfinite(r) & np.isfinite(q) & (r > 0)
    r, q = r[keep], q[keep]
    order = np.argsort(r)
    return np.log(r[order]), q[order]


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Integral over [lo, hi] of y as a function of x (x = the integration axis)."""
    if method == "cubic":
        coeffs = np.polyfit(x, y, min(3, x.size - 1))
        antiderivative = np.polyint(coeffs)
        return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator

        # Points arrive in rate order; quality must rise strictly with rate.
        if np.any(np.diff(x) <= 0):
            raise ValueError("pchip needs quality strictly increasing with rate "
                             "(monotone curves); use method='cubic'")
        return float(PchipInterpolator(x, y).integrate(lo, hi))
    raise ValueError(f"unknown BD method {method!r}; choose one of {METHODS}")


def bd_rate_percent(anchor_rate_kbps: Sequence[float], anchor_quality: Sequence[float],
                    test_rate_kbps: Sequence[float], test_quality: Sequence[float],
                    *, method: str = "cubic") -> float:
    """Average bitrate difference of *test* vs *anchor* at equal quality, in percent.

    Parameters
    ----------
    anchor_rate_kbps, anchor_quality : sequence of float
        The reference curve (at least 2 points with finite values).
    test_rate_kbps, test_quality : sequence of float
        The curve being compared.
    method : {"cubic", "pchip"}

    Returns
    -------
    float
        ``(exp(mean(log R_test - log R_anchor)) - 1) * 100`` over the shared
        quality range; NaN when a curve has fewer than 2 usable points or the
        quality ranges do not overlap.
    """
    ra, qa = _clean(anchor_rate_kbps, anchor_quality)
    rt, qt = _clean(test_rate_kbps, test_quality)
    if ra.size < 2 or rt.size < 2:
        return math.nan
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    if not hi > lo:
        return math.nan
    # log-rate as a function of quality
    mean_a = _integral(qa, ra, lo, hi, method) / (hi - lo)
    mean_t = _integral(qt, rt, lo, hi, method) / (hi - lo)
    return float((math.exp(mean_t - mean_a) - 1.0) * 100.0)


def bd_quality(anchor_rate_kbps: Sequence[float], anchor_quality: Sequence[float],
               test_rate_kbps: Sequence[float], test_quality: Sequence[float],
               *, method: str = "cubic") -> float:
    """Average quality difference of *test* minus *anchor* at equal bitrate.

    Same fit as :func:`bd_rate_percent` with the axes swapped (quality as a
    function of log-rate) over the shared log-rate range; in the quality
    metric's unit (e.g. ViSQOL MOS points). NaN as for :func:`bd_rate_percent`.
    """
    ra, qa = _clean(anchor_rate_kbps, anchor_quality)
    rt, qt = _clean(test_rate_kbps, test_quality)
    if ra.size < 2 or rt.size < 2:
        return math.nan
    lo, hi = max(ra.min(), rt.min()), min(ra.max(), rt.max())
    if not hi > lo:
        return math.nan
    mean_a = _integral(ra, qa, lo, hi, method) / (hi - lo)
    mean_t = _integral(rt, qt, lo, hi, method) / (hi - lo)
    return float(mean_t - mean_a)
