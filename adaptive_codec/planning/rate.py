"""The bitrate a user asks for: ``--bitrate KBPS`` or ``--bitrate-scale X`` (or neither).

Light on imports: archive workers pass a :class:`Rate` around before the
codec (and torch) is loaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from adaptive_codec.errors import AdaptiveCodecError

__all__ = ["Rate", "rate_kwargs", "check_bitrate"]


@dataclass(frozen=True)
class Rate:
    """A bitrate choice passed through archive encoding: ``--bitrate`` or ``--bitrate-scale`` (or neither).

    Checked on construction (:func:`check_bitrate`), so a bad value fails
    before any file is encoded.
    """

    kbps: float | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        check_bitrate(self.kbps, self.scale)


def rate_kwargs(bitrate: float | Rate | None) -> dict[str, float | None]:
    """``bitrate_kbps`` / ``bitrate_scale`` keyword arguments of :meth:`AdaptiveCodec.encode` for ``bitrate``."""
    if isinstance(bitrate, Rate):
        return {"bitrate_kbps": bitrate.kbps, "bitrate_scale": bitrate.scale}
    return {"bitrate_kbps": bitrate}


def check_bitrate(bitrate_kbps: float | None, bitrate_scale: float | None) -> None:
    """One-line errors for ``--bitrate`` / ``--bitrate-scale`` values."""
    if bitrate_kbps is not None and bitrate_scale is not None:
        raise AdaptiveCodecError("give a bitrate or a bitrate scale, not both")
    if bitrate_kbps is not None and not (bitrate_kbps > 0 and math.isfinite(bitrate_kbps)):
        raise AdaptiveCodecError(f"bitrate must be a positive number of kbps, got {bitrate_kbps}")
    if bitrate_scale is not None and not (bitrate_scale > 0 and math.isfinite(bitrate_scale)):
        raise AdaptiveCodecError(f"bitrate scale must be a positive number, got {bitrate_scale}")
