"""Stereo coding tools: how the two channels of a mid/side stream share its budget.

Two channels are coded as mid ``(L + R) / 2`` and side ``(L - R) / 2``. Rate
control (:mod:`adaptive_codec.planning.rate_control`) gives the pair the
asked total; within it, the side codes ``max(1, q // divisor)`` levels of
each mid row's ``q`` (a side below -30 dB of the mid is not coded at all).
:func:`side_divisor` chooses the divisor by the asked total, from
``benchmarks/stereo_rate.py``: per-channel ViSQOL (left and right scored
separately) and the inter-channel level error per octave band on the
corpus' held-out stereo clips, at equal total bytes (docs/RESULTS.md,
"Rate control").

NumPy-free and torch-free: a rule on numbers, read by the encoder stage.
"""

from __future__ import annotations

import math

__all__ = ["SIDE_DIVISORS", "side_divisor"]

#: ``(up to this total kbps, divisor)``, in order; the last row covers every
#: higher rate. Below 8 kbps a side at a quarter of the mid's depth leaves
#: the mid more bits (ambient +0.04 ViSQOL at 6 kbps, music level); at the
#: rates where the mid is deep anyway half depth keeps the image.
SIDE_DIVISORS: tuple[tuple[float, int], ...] = ((8.0, 4), (math.inf, 2))


def side_divisor(total_kbps: float | None) -> int:
    """Divisor of the side channel's depth for a stream asked ``total_kbps`` (None: no target, 2)."""
    if total_kbps is None or not math.isfinite(total_kbps):
        return SIDE_DIVISORS[-1][1]
    for limit, divisor in SIDE_DIVISORS:
        if total_kbps <= limit:
            return divisor
    return SIDE_DIVISORS[-1][1]
