"""The bitrate a user asks for (``--bitrate KBPS`` or ``--bitrate-scale X``, or neither) and the depth it buys.

:class:`Rate` is the request as it travels through the API (archive workers
pass it around before the codec, and torch, is loaded); :class:`DepthRule`
is the one place that maps a profile's bitrate under a request to an RVQ
depth. Light on imports: no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from adaptive_codec.errors import AdaptiveCodecError

__all__ = ["Rate", "MAX_BITRATE_KBPS", "check_bitrate", "target_kbps", "depth_for_bitrate", "DepthRule"]

#: Largest ``--bitrate`` accepted: far above any depth the codec has (about
#: 15 kbps a channel), so a larger number is a typo (bps for kbps).
MAX_BITRATE_KBPS = 1000.0


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

    @classmethod
    def of(cls, bitrate: "float | Rate | None" = None, scale: float | None = None) -> "Rate":
        """The request for ``bitrate`` (kbps or a Rate) and/or ``scale``; checked."""
        if isinstance(bitrate, Rate):
            if scale is not None:
                raise AdaptiveCodecError("give a bitrate or a bitrate scale, not both")
            return bitrate
        return cls(bitrate, scale)


def check_bitrate(bitrate_kbps: float | None, bitrate_scale: float | None) -> None:
    """One-line errors for ``--bitrate`` / ``--bitrate-scale`` values."""
    if bitrate_kbps is not None and bitrate_scale is not None:
        raise AdaptiveCodecError("give a bitrate or a bitrate scale, not both")
    if bitrate_kbps is not None and not (bitrate_kbps > 0 and math.isfinite(bitrate_kbps)):
        raise AdaptiveCodecError(f"bitrate must be a positive number of kbps, got {bitrate_kbps}")
    if bitrate_kbps is not None and bitrate_kbps > MAX_BITRATE_KBPS:
        raise AdaptiveCodecError(f"bitrate {bitrate_kbps:g} kbps is above the {MAX_BITRATE_KBPS:g} kbps limit "
                                 "(the unit is kbps, not bps)")
    if bitrate_scale is not None and not (bitrate_scale > 0 and math.isfinite(bitrate_scale)):
        raise AdaptiveCodecError(f"bitrate scale must be a positive number, got {bitrate_scale}")


def target_kbps(profile, rate: Rate) -> float | None:
    """The whole-stream bitrate ``rate`` asks of ``profile``'s segments (kbps), or None for a fixed depth.

    ``rate.kbps`` for every profile; else the profile's ``bitrate_kbps``
    times ``rate.scale``. A profile given as ``n_q`` (no bitrate) without
    ``--bitrate`` has no target: its depth is the request.
    """
    if rate.kbps is not None:
        return float(rate.kbps)
    if profile.n_q is not None or profile.bitrate_kbps is None:
        return None
    return float(profile.bitrate_kbps) * (1.0 if rate.scale is None else float(rate.scale))


def depth_for_bitrate(bitrate_kbps: float, n_levels: int, bits_per_index: float, frame_rate_hz: float,
                      level_bits: Sequence[float] | None = None) -> int:
    """Number of RVQ levels whose rate fits ``bitrate_kbps``.

    Without ``level_bits`` every index costs its fixed length:
    ``levels × bits_per_index × frame rate``. With ``level_bits`` (expected
    bits of an index at each level after entropy coding, from the entropy
    tables) the depth is the deepest whose summed expected rate fits, so a
    codec whose codes compress well gets more levels for the same bitrate.

    Returns
    -------
    int
        At least 1, at most ``n_levels``.
    """
    if level_bits is None:
        bps_per_level = bits_per_index * frame_rate_hz
        n_q = int(math.floor(bitrate_kbps * 1000 / bps_per_level + 1e-9))
    else:
        bits = np.asarray(level_bits, dtype=np.float64)[:n_levels]
        cumulative = np.cumsum(bits) * frame_rate_hz
        n_q = int(np.count_nonzero(cumulative <= bitrate_kbps * 1000 * (1 + 1e-9)))
    return max(1, min(n_levels, n_q))


@dataclass(frozen=True)
class DepthRule:
    """Profile + request -> RVQ depth, with the backbone's and entropy tables' costs as data.

    Attributes
    ----------
    n_levels : int
        Levels of the backbone's RVQ.
    bits_per_index : float
        Fixed length of an index (log2 of the codebook size).
    frame_rate_hz : float
    level_bits : np.ndarray [shape=(n_priors, n_levels)] or None
        Expected bits of an index per prior and level after entropy coding
        (the tables' ``level_bits``, cross-fitted on their training codes);
        None counts every index at its fixed length.
    reserved_kbps : Mapping of str to float
        Per profile name, the rate its frames already spend on coding tools
        (the high band), taken off the profile's bitrate before its depth is
        chosen, so the asked rate is the stream's.
    """

    n_levels: int
    bits_per_index: float
    frame_rate_hz: float
    level_bits: np.ndarray | None = field(default=None, repr=False)
    reserved_kbps: Mapping[str, float] = field(default_factory=dict)

    @property
    def needs_prior(self) -> bool:
        """Whether :meth:`depth` needs the profile's entropy prior id."""
        return self.level_bits is not None

    def depth(self, profile, rate: Rate, prior_id: int | None = None) -> int:
        """RVQ depth of ``profile`` under ``rate``.

        ``rate.kbps`` gives every profile that bitrate; ``rate.scale``
        multiplies the profile's own ``bitrate_kbps`` (or ``n_q``), so the
        profiles keep their relative allocation. ``prior_id`` is needed when
        :attr:`needs_prior`.
        """
        scale = 1.0 if rate.scale is None else float(rate.scale)
        if rate.kbps is None and profile.n_q is not None:
            return max(1, min(self.n_levels, int(round(profile.n_q * scale))))
        bits = None if self.level_bits is None else self.level_bits[prior_id]
        kbps = rate.kbps if rate.kbps is not None else profile.bitrate_kbps * scale
        kbps = max(kbps - self.reserved_kbps.get(profile.name, 0.0), 1e-3)
        return depth_for_bitrate(kbps, self.n_levels, self.bits_per_index, self.frame_rate_hz, bits)
