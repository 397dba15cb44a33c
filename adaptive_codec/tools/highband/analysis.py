"""Encoder side of the high band: STFT framing of a block stream and band levels per codec frame.

:class:`Framer` cuts consecutive blocks into the grid's STFT frames (shared
with the decoder's synthesis); :class:`HighBandAnalyzer` is fed the
encoder's first read and keeps, per codec frame, the level of every fine
band (float16 dB: 16 bytes a frame, 4.3 MB an hour of audio), from which any
profile's coarser grid is formed later.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import scipy.fft

from adaptive_codec.tools.highband.grid import START_HZ, StftGrid, band_bins, fine_edges

__all__ = ["Framer", "BlockSynthesizer", "synthesize_blocks", "bin_power", "emitted_piece", "HighBandMeasure",
           "HighBandAnalyzer", "level_db", "SILENCE_DB"]

#: Level given to a band without energy (below any coded level).
SILENCE_DB = -200.0


def level_db(power: np.ndarray) -> np.ndarray:
    """``10·log10`` of a power, :data:`SILENCE_DB` for zero."""
    with np.errstate(divide="ignore"):
        return np.maximum(10 * np.log10(np.maximum(power, 0.0)), SILENCE_DB)


def bin_power(x: np.ndarray) -> np.ndarray:
    """Power of complex STFT bins (``|x|²`` without a square root)."""
    return x.real * x.real + x.imag * x.imag


class BlockSynthesizer(Protocol):
    """A decoder-side STFT tool (high band, parametric stereo): blocks in, blocks out, a tail at the end."""

    def push(self, block: np.ndarray) -> np.ndarray: ...

    def finish(self) -> np.ndarray: ...


def synthesize_blocks(synth: BlockSynthesizer, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Pass decoded blocks through ``synth`` (same total length, the last at ``synth.finish()``)."""
    for block in blocks:
        out = synth.push(block)
        if out.shape[1]:
            yield out
    out = synth.finish()
    if out.shape[1]:
        yield out


def emitted_piece(out: np.ndarray, start: int, stop: int, emitted: int) -> tuple[np.ndarray, int]:
    """The part of overlap-added output ``out (channels, n)`` not emitted yet, and the new emitted position.

    ``out[:, 0]`` is at stream position ``start``; samples before ``emitted``
    were returned by an earlier call and samples from ``stop`` on are not final.
    """
    lo = max(emitted, start)
    piece = out[:, lo - start : max(lo, stop) - start]
    return piece, lo + piece.shape[1]


class Framer:
    """Consecutive blocks ``(channels, samples)`` in, windowed STFT frames of the global grid out.

    Frame ``j`` covers samples ``[(j - 1)·H, (j + 1)·H)``; samples before
    ``first_sample`` (where the blocks start) and after the end count as 0.

    Parameters
    ----------
    grid : StftGrid
    channels : int
    first_sample : int
        Stream position of the first block's first sample.
    """

    def __init__(self, grid: StftGrid, channels: int, first_sample: int = 0) -> None:
        self.grid, self.channels = grid, channels
        h = grid.hop
        self.next_frame = first_sample // h
        self.buf_start = (self.next_frame - 1) * h  # stream position of buf[:, 0]
        self.buf = np.zeros((channels, first_sample - self.buf_start), np.float32)
        self.end = first_sample  # stream position after the last sample pushed

    def push(self, block: np.ndarray) -> tuple[int, np.ndarray]:
        """Add samples; returns (first frame index, frames ``(n, channels, N)``) now complete."""
        self.buf = np.concatenate([self.buf, np.asarray(block, np.float32)], axis=1)
        self.end += block.shape[-1]
        return self._frames(final=False)

    def finish(self) -> tuple[int, np.ndarray]:
        """The remaining frames, up to the last that holds a pushed sample (zero-padded)."""
        return self._frames(final=True)

    def _frames(self, final: bool) -> tuple[int, np.ndarray]:
        h, size = self.grid.hop, self.grid.size
        if final:
            # Every frame whose window starts before the end.
            last = -(-(self.end - self.buf_start) // h)  # frames j - next_frame < last
            pad = (last + 1) * h - self.buf.shape[1]
            if pad > 0:
                self.buf = np.concatenate([self.buf, np.zeros((self.channels, pad), np.float32)], axis=1)
        n = max(0, self.buf.shape[1] // h - 1)
        j0 = self.next_frame
        if n == 0:
            return j0, np.zeros((0, self.channels, size), np.float32)
        # A strided view (no copy): the caller windows it, which copies once.
        frames = np.lib.stride_tricks.sliding_window_view(self.buf[:, : (n + 1) * h], size, axis=1)[:, ::h]
        frames = frames.transpose(1, 0, 2)  # (n, channels, N)
        self.buf = self.buf[:, n * h :]
        self.buf_start += n * h
        self.next_frame += n
        return j0, frames


@dataclass(frozen=True)
class HighBandMeasure:
    """Band levels of the original above the crossover, per codec frame.

    Attributes
    ----------
    grid : StftGrid
    edges_hz : tuple of int
        Upper edges of the fine bands (from :data:`START_HZ`).
    levels_db : np.ndarray [shape=(n_frames, bands)], float16
        Mean power per rfft bin of the analysis STFT, divided by the
        window's energy, in dB (0 dB: white noise of unit variance).
    """

    grid: StftGrid
    edges_hz: tuple[int, ...]
    levels_db: np.ndarray

    @property
    def bin_counts(self) -> np.ndarray:
        return np.array([b - a for a, b in band_bins(self.grid, START_HZ, self.edges_hz)], np.float64)


class HighBandAnalyzer:
    """Stage of the encoder's first read: fine band levels per codec frame, block by block.

    Channels are averaged in power (a stereo pair's high band is shaped to
    their mean level).

    Parameters
    ----------
    grid : StftGrid
    channels : int
    """

    def __init__(self, grid: StftGrid, channels: int) -> None:
        self.grid = grid
        self.edges = fine_edges(grid.sample_rate_hz)
        bins = band_bins(grid, START_HZ, self.edges)
        self.framer = Framer(grid, channels)
        # Hann (the synthesis window squared): its sidelobes fall 18 dB an
        # octave, so a loud low band leaks below -140 dB into the high band
        # (the square-root Hann's -100 dB would hide a band-limited source's
        # empty top). Normalised by its energy, white noise reads the same.
        window = grid.window() ** 2
        self.window = window.astype(np.float32)
        self.norm = float(np.sum(window ** 2))
        self.k0, self.k1 = (bins[0][0], bins[-1][1]) if bins else (0, 0)
        self.starts = np.array([lo - self.k0 for lo, _ in bins], np.int64)
        self.counts = np.array([hi - lo for lo, hi in bins], np.float64)
        self._batches: list[np.ndarray] = []  # float16 dB rows of final codec frames, NaN: no STFT frame
        self._open: tuple[int, np.ndarray, int] | None = None  # the last codec frame: (index, power sums, count)
        self._done = 0  # codec frames [0, done) are in _batches

    def push(self, block: np.ndarray) -> None:
        """One block ``(channels, samples)`` of the input, in order."""
        self._add(*self.framer.push(block))

    def finish(self, n_frames: int) -> HighBandMeasure:
        """The levels of codec frames ``0..n_frames - 1`` (a frame no STFT frame fell in copies its left neighbour)."""
        self._add(*self.framer.finish())
        if self._open is not None:
            t, acc, count = self._open
            self._emit(np.array([t]), (acc / count)[None])
            self._open = None
        width = len(self.edges)
        rows = np.concatenate(self._batches) if self._batches else np.zeros((0, width), np.float16)
        rows = rows[:n_frames]
        if len(rows) < n_frames:
            rows = np.concatenate([rows, np.full((n_frames - len(rows), width), np.nan, np.float16)])
        last = np.full(width, SILENCE_DB, np.float16)
        for t in np.flatnonzero(np.isnan(rows[:, 0]) if width else []):
            rows[t] = rows[t - 1] if t else last
        return HighBandMeasure(self.grid, self.edges, rows)

    def _add(self, j0: int, frames: np.ndarray) -> None:
        if not len(frames) or not self.edges:
            return
        spec = scipy.fft.rfft(frames * self.window, axis=-1, overwrite_x=True)[:, :, self.k0 : self.k1]
        power = spec.real ** 2 + spec.imag ** 2
        power = power[:, 0] if power.shape[1] == 1 else power.mean(axis=1)  # (n, bins), channel mean
        bands = np.add.reduceat(power, self.starts, axis=1).astype(np.float64) / (self.counts * self.norm)
        ts = self.grid.codec_frame(np.arange(j0, j0 + len(frames)))
        # STFT frames are in order: sum each run of one codec frame.
        first = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]])
        sums = np.add.reduceat(bands, first, axis=0)
        counts = np.diff(np.r_[first, len(ts)])
        runs = ts[first]
        if self._open is not None and self._open[0] == runs[0]:
            sums[0] += self._open[1]
            counts[0] += self._open[2]
        elif self._open is not None:
            t, acc, count = self._open
            self._emit(np.array([t]), (acc / count)[None])
        # The last codec frame may go on in the next block.
        self._open = (int(runs[-1]), sums[-1], int(counts[-1]))
        if len(runs) > 1:
            self._emit(runs[:-1], sums[:-1] / counts[:-1, None])

    def _emit(self, frames: np.ndarray, power: np.ndarray) -> None:
        """Final mean powers ``(n, bands)`` of codec frames ``frames`` (increasing, from ``_done`` on)."""
        end = int(frames[-1]) + 1
        rows = np.full((end - self._done, len(self.edges)), np.nan)
        rows[frames - self._done] = level_db(power)
        self._batches.append(rows.astype(np.float16))
        self._done = end
