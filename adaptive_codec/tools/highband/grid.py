"""The high band's time-frequency grid: STFT frames on a global sample grid, bands, codec-frame mapping.

The encoder measures the original and the decoder shapes its regenerated
band on the same grid, so both agree on which STFT frame belongs to which
codec frame (and so to which segment, profile and envelope value) without
storing anything but the band edges and the envelope's frame length.

STFT: hop ``H`` = half a codec frame at the original rate (294 samples at
44.1 kHz, 320 at 48 kHz), window ``N = 2H``, square-root periodic Hann for
analysis and synthesis (they overlap-add to 1: perfect reconstruction).
Frame ``j`` covers samples ``[(j - 1)·H, (j + 1)·H)`` of the whole stream,
whatever range is decoded, so a range decode computes the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["START_HZ", "FINE_EDGES_HZ", "StftGrid", "band_bins", "fine_edges", "merge_edges"]

#: Crossover: the backbone runs at 24 kHz, so its output ends at 12 kHz,
#: and the resampler's passband already at 11.4 kHz; the band from 11 kHz
#: on is measured, and the decoder adds only what the decoded signal lacks.
START_HZ = 11000
#: Upper edges of the finest bands the encoder measures; a profile's bands
#: are unions of these (:func:`merge_edges`). Narrower low, as the ear's
#: bands and the energy of real recordings (which falls with frequency).
FINE_EDGES_HZ = (12000, 13000, 14000, 15000, 16500, 18000, 20000, 24000)


@dataclass(frozen=True)
class StftGrid:
    """STFT geometry at the original rate, tied to the backbone's frames.

    Parameters
    ----------
    sample_rate_hz : int
        The original (output) rate.
    internal_rate_hz : int
        The backbone's rate (24000).
    hop_samples : int
        The backbone's hop at ``internal_rate_hz`` (320).
    """

    sample_rate_hz: int
    internal_rate_hz: int
    hop_samples: int

    @property
    def hop(self) -> int:
        """STFT hop ``H`` in original-rate samples."""
        return max(1, round(self.sample_rate_hz * self.hop_samples / (2 * self.internal_rate_hz)))

    @property
    def size(self) -> int:
        return 2 * self.hop

    def window(self) -> np.ndarray:
        """Square-root periodic Hann ``(N,)``, float64: analysis and synthesis window."""
        n = self.size
        return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n))

    def codec_frame(self, j: np.ndarray) -> np.ndarray:
        """Codec frame (at the internal rate) whose time span holds the centre of STFT frame ``j``.

        Codec frame ``t`` is centred on internal sample ``t·hop``; exact
        integer arithmetic, so encoder and decoder agree everywhere.
        """
        j = np.asarray(j, np.int64)
        sr, hop = self.sample_rate_hz, self.hop_samples
        return (2 * j * self.hop * self.internal_rate_hz + sr * hop) // (2 * sr * hop)

    def bins(self, lo_hz: float, hi_hz: float) -> tuple[int, int]:
        """rfft bins ``[a, b)`` with ``lo_hz <= f < hi_hz`` (the Nyquist bin in the band ending there)."""
        n, sr = self.size, self.sample_rate_hz
        a = int(np.ceil(lo_hz * n / sr - 1e-9))
        b = n // 2 + 1 if 2 * hi_hz >= sr else int(np.ceil(hi_hz * n / sr - 1e-9))
        return a, max(a, b)


def band_bins(grid: StftGrid, start_hz: int, edges_hz: tuple[int, ...]) -> list[tuple[int, int]]:
    """The rfft bin range of every band ``[start, e0), [e0, e1), ...``."""
    lows = (start_hz,) + tuple(edges_hz[:-1])
    return [grid.bins(lo, hi) for lo, hi in zip(lows, edges_hz)]


def fine_edges(sample_rate_hz: int) -> tuple[int, ...]:
    """:data:`FINE_EDGES_HZ` cut at half the sample rate (the last band ends there); () at <= 24 kHz.

    Nothing above 24 kHz is coded (nobody hears it).
    """
    nyquist = min(sample_rate_hz // 2, FINE_EDGES_HZ[-1])
    if nyquist <= FINE_EDGES_HZ[0]:
        return ()
    edges = [e for e in FINE_EDGES_HZ if e < nyquist]
    return tuple(edges) + (nyquist,) if nyquist - (edges[-1] if edges else START_HZ) >= 500 or not edges \
        else tuple(edges[:-1]) + (nyquist,)


def merge_edges(edges: tuple[int, ...], n_bands: int) -> tuple[int, ...]:
    """``n_bands`` bands as unions of the fine bands ``edges`` (all of them when they are fewer)."""
    m = len(edges)
    if n_bands >= m:
        return tuple(edges)
    return tuple(edges[round((i + 1) * m / n_bands) - 1] for i in range(n_bands))
