"""Encoder side of parametric stereo: the parameter grid and per-band channel statistics of the original.

STFT frames come from the high band's grid (:class:`~adaptive_codec.tools.highband.grid.StftGrid`:
hop of half a codec frame, square-root Hann), so the decoder's synthesis
frames are the same. Every STFT frame belongs to a codec frame
(``StftGrid.codec_frame``) and so to a parameter frame: a chunk span's
frames ``[s, e)`` are cut into parameter frames of ``param_frames`` codec
frames from ``s`` on, so a span's parameters decode on their own.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from adaptive_codec.tools.highband.analysis import Framer
from adaptive_codec.tools.highband.grid import StftGrid

__all__ = ["BAND_EDGES_HZ", "ParamGrid", "band_edges", "band_starts", "StereoAnalyzer"]

#: Upper band edges (Hz): 125 Hz wide up to 500 Hz (the STFT's bins are
#: 75 Hz; bass and kick are often panned apart), then about half an octave;
#: the last band ends at half the sample rate.
BAND_EDGES_HZ = (125, 250, 375, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000)


def band_edges(sample_rate_hz: int) -> tuple[int, ...]:
    """:data:`BAND_EDGES_HZ` cut at half the sample rate (the last band ends there)."""
    nyquist = sample_rate_hz // 2
    edges = [e for e in BAND_EDGES_HZ if e < nyquist]
    if edges and nyquist - edges[-1] < 500:  # no band narrower than 500 Hz at the top
        edges = edges[:-1]
    return tuple(edges) + (nyquist,)


def band_starts(grid: StftGrid, edges_hz: tuple[int, ...]) -> np.ndarray:
    """First rfft bin of every band ``[0, e0), [e0, e1), ...`` (band 0 starts at bin 0), int64."""
    return np.array([0] + [grid.bins(lo, hi)[0] for lo, hi in zip(edges_hz[:-1], edges_hz[1:])], np.int64)


class ParamGrid:
    """Which parameter frame each codec frame belongs to.

    Parameters
    ----------
    n_frames, chunk_frames, param_frames : int
        Codec frames of the stream, per chunk span, per parameter frame.
    """

    def __init__(self, n_frames: int, chunk_frames: int, param_frames: int) -> None:
        self.n_frames, self.chunk_frames, self.param_frames = n_frames, chunk_frames, param_frames
        self.per_span = -(-chunk_frames // param_frames)
        self.n_spans = -(-n_frames // chunk_frames)

    def span_count(self, span: int) -> int:
        """Parameter frames of chunk span ``span``."""
        a = span * self.chunk_frames
        return -(-(min(a + self.chunk_frames, self.n_frames) - a) // self.param_frames)

    def index(self, t: np.ndarray) -> np.ndarray:
        """Global parameter-frame index of codec frames ``t`` (clipped to the stream): span-major."""
        t = np.clip(np.asarray(t, np.int64), 0, max(self.n_frames - 1, 0))
        s = t // self.chunk_frames
        return s * self.per_span + (t - s * self.chunk_frames) // self.param_frames

    @property
    def size(self) -> int:
        """Slots of the span-major index (the last span may use fewer)."""
        return self.n_spans * self.per_span


class StereoAnalyzer:
    """Stage of the encoder's first read: per parameter frame and band, L and R power and their cross term.

    Memory: 24 bytes a band and parameter frame (16 MB an hour of audio
    with 15 bands every 80 ms).

    Parameters
    ----------
    grid : StftGrid
    edges_hz : tuple of int
        Upper band edges (:func:`band_edges`).
    chunk_frames, param_frames : int
    """

    def __init__(self, grid: StftGrid, edges_hz: tuple[int, ...], chunk_frames: int, param_frames: int) -> None:
        self.grid, self.edges = grid, tuple(edges_hz)
        self.starts = band_starts(grid, self.edges)
        self.chunk_frames, self.param_frames = chunk_frames, param_frames
        self.framer = Framer(grid, 2)
        self.window = grid.window().astype(np.float32)
        self.sums = np.zeros((0, 3, len(self.edges)), np.float64)  # (param frame slot, [PL, PR, Re LR*], band)
        self.per_span = -(-chunk_frames // param_frames)

    def push(self, block: np.ndarray) -> None:
        """One block ``(2, samples)`` of the input, in order."""
        self._add(*self.framer.push(block))

    def finish(self, n_frames: int) -> np.ndarray:
        """Sums ``(ParamGrid.size, 3, bands)``: power of L, of R and ``Re(L·conj R)``, per slot and band."""
        self._add(*self.framer.finish())
        size = ParamGrid(n_frames, self.chunk_frames, self.param_frames).size
        out = np.zeros((size, 3, len(self.edges)), np.float64)
        n = min(size, len(self.sums))
        out[:n] = self.sums[:n]
        return out

    def _add(self, j0: int, frames: np.ndarray) -> None:
        if not len(frames):
            return
        spec = scipy.fft.rfft(frames * self.window, axis=-1)  # (n, 2, bins)
        left, right = spec[:, 0], spec[:, 1]
        stats = np.stack([left.real ** 2 + left.imag ** 2, right.real ** 2 + right.imag ** 2,
                          left.real * right.real + left.imag * right.imag], axis=1)  # (n, 3, bins)
        bands = np.add.reduceat(stats, self.starts, axis=-1)
        t = self.grid.codec_frame(np.arange(j0, j0 + len(frames)))
        s = t // self.chunk_frames
        slot = s * self.per_span + (t - s * self.chunk_frames) // self.param_frames
        need = int(slot.max()) + 1
        if need > len(self.sums):
            grown = np.zeros((max(need, 2 * len(self.sums)), 3, len(self.edges)), np.float64)
            grown[: len(self.sums)] = self.sums
            self.sums = grown
        np.add.at(self.sums, slot, bands)
