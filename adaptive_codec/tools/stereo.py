"""Stereo coding tools: which tool codes a stereo pair at an asked rate, and how mid/side shares it.

At low totals (:data:`PARAMETRIC_UP_TO_KBPS`) the pair is coded as its mid
alone plus parametric stereo (:mod:`adaptive_codec.tools.parametric_stereo`:
per-band level difference and coherence, a few hundred bits per second);
above, as true mid/side.

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

__all__ = ["SIDE_DIVISORS", "side_divisor", "PARAMETRIC_UP_TO_KBPS", "STEREO_TOOLS", "stereo_tool"]

#: Asked totals (kbps) up to which a rate-controlled stereo stream uses
#: parametric stereo rather than mid/side: chosen on per-channel ViSQOL and
#: ILD error at equal total bytes (benchmarks/stereo_rate.py).
PARAMETRIC_UP_TO_KBPS = 8.0
#: What :func:`stereo_tool` may answer (and a caller may force).
STEREO_TOOLS = ("mid_side", "parametric")

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


def stereo_tool(total_kbps: float | None, choice: str = "auto") -> str:
    """The stereo tool of a stream asked ``total_kbps`` (None: fixed depths, mid/side).

    ``choice`` "auto" picks by rate; "mid_side" or "parametric" forces one
    (benchmarks compare them at the same rate).
    """
    if choice != "auto":
        if choice not in STEREO_TOOLS:
            raise ValueError(f"stereo tool must be auto, {' or '.join(STEREO_TOOLS)}, got {choice!r}")
        return choice
    if total_kbps is None or not math.isfinite(total_kbps):
        return "mid_side"
    return "parametric" if total_kbps <= PARAMETRIC_UP_TO_KBPS else "mid_side"
