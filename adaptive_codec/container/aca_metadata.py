"""Metadata values of ``.aca`` index entries: what readers accept (docs/FORMAT.md 3.5).

``list`` and ``verify`` report these values and ``append`` writes them back,
so a value no reader could print or re-encode (an infinite number, a class
share of -3) is refused where the index is read, with the member's name.
"""

from __future__ import annotations

import math
from typing import Any

from adaptive_codec.errors import FormatError

__all__ = ["check_metadata"]


def check_metadata(meta: dict[str, Any], where: str) -> None:
    """Refuse metadata values a reader would misreport: non-finite numbers, shares outside [0, 1].

    ``class_mix`` maps labels to fractions of the duration (each in [0, 1],
    summing to at most 1 plus rounding); ``flac_size_bytes`` and any other
    ``*_bytes`` value is an integer >= 0; no number anywhere is infinite
    (JSON's ``1e400`` parses as infinity).
    """
    def finite(value: Any) -> bool:
        if isinstance(value, float):
            return math.isfinite(value)
        if isinstance(value, dict):
            return all(finite(v) for v in value.values())
        if isinstance(value, list):
            return all(finite(v) for v in value)
        return True

    if not finite(meta):
        raise FormatError(f"{where}: holds a number that is not finite")
    mix = meta.get("class_mix", {})
    if not isinstance(mix, dict) or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                            for x in mix.values()):
        raise FormatError(f"{where}: class_mix must map labels to numbers")
    if not all(0.0 <= x <= 1.0 for x in mix.values()) or sum(mix.values()) > 1.0 + 1e-3 * max(1, len(mix)):
        raise FormatError(f"{where}: class_mix shares must lie in [0, 1] and sum to at most 1")
    for key, value in meta.items():
        if key.endswith("_bytes") and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise FormatError(f"{where}: {key} must be an integer >= 0, got {value!r}")
