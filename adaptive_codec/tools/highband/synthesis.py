"""Decoder side of the high band: regenerate 12 kHz and up from the decoded low band, shaped to the envelope.

Per STFT frame of the decoded signal (at the original rate), every band
above the crossover is filled with a mix of

- a *patch*: the decoded 5-11 kHz band translated up, complex values moved
  by an even number of bins (so its phase stays coherent from frame to
  frame with hop ``N/2``), repeated as often as the high band needs;
- *noise*: complex Gaussian, a fixed table's row chosen by the frame's
  index on the stream's grid (the same in a range decode as in the whole),

each normalised to unit power in the band, mixed ``noise`` : ``1 - noise``
in power, then scaled to the power the decoded signal lacks in the band
(the decoded level less what the backbone's output already has there) and overlap-added (square-root
Hann synthesis window). Noise frames are incoherent, so their power halves
in the overlap-add; they are scaled up by 2 to compensate. Frames without
a high band (silent bands, profiles without it) add nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import scipy.fft

from adaptive_codec.tools.highband.analysis import Framer, bin_power, emitted_piece
from adaptive_codec.tools.highband.grid import StftGrid

__all__ = ["PATCH_LOW_HZ", "PATCH_HIGH_HZ", "HighBandSynthesizer"]

#: Source of the patch: the decoded band the backbone codes well.
PATCH_LOW_HZ, PATCH_HIGH_HZ = 5000, 11000
#: Seed of the noise table.
NOISE_SEED = 0x48494748
#: Frames of noise in the table (prime: frame j uses row 7919·j mod 251,
#: so no pattern repeats within 251 frames, 0.8 s at 44.1 kHz).
NOISE_ROWS = 251
#: STFT frames shaped at a time.
BATCH_FRAMES = 128


class HighBandSynthesizer:
    """Decoded blocks in, the same blocks with the regenerated high band added out (delayed by one STFT hop).

    Parameters
    ----------
    grid : StftGrid
    bands : list of (int, int)
        rfft bin range of every band.
    noise : float
        Noise share of the band power, 0..1.
    levels : callable
        ``levels(j)`` for STFT frame indices ``j (n,)``: the decoded levels
        ``(n, bands)`` in dB (``-inf``: nothing in that band).
    channels : int
    first_sample : int
        Stream position of the first block's first sample.
    """

    def __init__(self, grid: StftGrid, bands: list[tuple[int, int]], noise: float,
                 levels: Callable[[np.ndarray], np.ndarray], channels: int, first_sample: int = 0) -> None:
        self.grid, self.bands, self.levels, self.channels = grid, bands, levels, channels
        self.noise = float(min(max(noise, 0.0), 1.0))
        self.framer = Framer(grid, channels, first_sample)
        self.window = grid.window().astype(np.float32)
        self.norm = float(np.sum(self.window ** 2))
        self.first, self.emitted = first_sample, first_sample
        self.tail = np.zeros((channels, grid.hop), np.float32)  # overlap-add carried into the next frames
        lo, hi = grid.bins(PATCH_LOW_HZ, PATCH_HIGH_HZ)
        width = max(2, (hi - lo) // 2 * 2)  # even: a coherent translation
        self.k0 = bands[0][0]
        k_end = bands[-1][1]
        k = np.arange(self.k0, k_end)
        self.source = hi - width + (k - self.k0) % width  # patch source of every high bin
        self.source = np.clip(self.source, 0, grid.size // 2)
        self.source_lo = min(int(self.source.min()), self.k0)
        self.starts = np.array([a - self.k0 for a, _ in bands])
        self.counts = np.array([c - a for a, c in bands], np.float64)
        self.widths = np.array([c - a for a, c in bands], np.int64)
        self.noise_table = _noise_table(len(self.source))
        self.noise_power = np.add.reduceat(bin_power(self.noise_table), self.starts, axis=-1) / self.counts

    def push(self, block: np.ndarray) -> np.ndarray:
        """Output ``(channels, n)`` for the samples now final (``n`` may differ from the block's)."""
        return self._out(*self.framer.push(block), final=False)

    def finish(self) -> np.ndarray:
        """The rest of the output, up to the last pushed sample."""
        return self._out(*self.framer.finish(), final=True)

    def _out(self, j0: int, frames: np.ndarray, final: bool) -> np.ndarray:
        h = self.grid.hop
        n = len(frames)
        if n == 0:
            return np.zeros((self.channels, 0), np.float32)
        j = np.arange(j0, j0 + n)
        targets = self.levels(j)  # (n, bands) dB
        ola = np.empty((n, self.channels, h), np.float32)
        # In batches whose arrays stay in the cache (a block's frames are megabytes). Input
        # samples [(j - 1)h, jh) are finished by frame j: its first half and the previous frame's second.
        for a in range(0, n, BATCH_FRAMES):
            b = min(a + BATCH_FRAMES, n)
            wet = self._high_band(j[a:b], frames[a:b], targets[a:b])  # (b - a, channels, N)
            part = ola[a:b]
            np.copyto(part, wet[:, :, :h])
            part[0] += self.tail
            part[1:] += wet[:-1, :, h:]
            self.tail = wet[-1, :, h:].copy()
            part += frames[a:b, :, :h]  # the dry signal
        out = ola.transpose(1, 0, 2).reshape(self.channels, n * h)
        start = (j0 - 1) * h  # stream position of out[:, 0]
        stop = self.framer.end if final else start + n * h
        piece, self.emitted = emitted_piece(out, start, stop, self.emitted)
        return piece

    def _high_band(self, j: np.ndarray, frames: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """The regenerated band of frames ``j``: windowed time frames ``(n, channels, N)`` float32."""
        active = np.isfinite(targets).any(axis=1)
        if active.all():
            return self._shaped(j, frames, targets)
        out = np.zeros((len(j), self.channels, self.grid.size), np.float32)
        if active.any():
            idx = np.flatnonzero(active)
            out[idx] = self._shaped(j[idx], frames[idx], targets[idx])
        return out

    def _shaped(self, j: np.ndarray, frames: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Windowed time frames ``(m, channels, N)`` of the band shaped to ``targets (m, bands)`` dB."""
        spec = scipy.fft.rfft(frames * self.window, axis=-1, overwrite_x=True)  # (m, channels, bins) complex64
        k0, k1, lo = self.k0, self.k0 + len(self.source), self.source_lo
        power = bin_power(spec[:, :, lo:k1])  # the bins read: the patch's source and the band
        count = self.counts
        target = np.where(np.isfinite(targets), 10 ** (np.minimum(targets, 60.0) / 10), 0.0) * self.norm
        # Only what the decoded signal lacks (near the crossover it has some).
        have = np.add.reduceat(power[:, :, k0 - lo :], self.starts, axis=-1).mean(axis=1) / count
        add = np.maximum(target - have, 0.0)[:, None, :]  # (m, 1, bands)
        pp = np.add.reduceat(power[:, :, self.source - lo], self.starts, axis=-1) / count  # (m, channels, bands)
        share = np.where(pp > 1e-12 * add + 1e-30, self.noise, 1.0)  # a silent low band: noise only
        gp = np.sqrt(add * (1 - share) / np.maximum(pp, 1e-30)).astype(np.float32)
        # The spectrum's own buffer holds the band: the patch is read (copied) before it is overwritten.
        high = spec
        np.multiply(spec[:, :, self.source], np.repeat(gp, self.widths, axis=-1), out=high[:, :, k0:k1])
        high[:, :, :k0] = 0
        high[:, :, k1:] = 0
        noisy = np.flatnonzero((share > 0).any(axis=(1, 2)))  # with no noise share, only silent low bands
        if len(noisy):
            rows = (j[noisy] * 7919) % len(self.noise_table)  # a fixed table, stepped through by frame index
            gz = np.sqrt(2 * add[noisy] * share[noisy] / self.noise_power[rows]).astype(np.float32)
            high[noisy, :, k0:k1] += np.repeat(gz, self.widths, axis=-1) * self.noise_table[rows]
        out = scipy.fft.irfft(high, n=self.grid.size, axis=-1, overwrite_x=True)
        out *= self.window
        return out


@lru_cache(maxsize=8)
def _noise_table(n_bins: int) -> np.ndarray:
    """The fixed noise ``(NOISE_ROWS, 1, n_bins)`` complex (read-only: shared by every synthesizer)."""
    rng = np.random.default_rng(NOISE_SEED)
    # One noise for every channel: a dual-mono stream stays dual mono.
    z = rng.standard_normal((NOISE_ROWS, 1, 2, n_bins)).astype(np.float32)
    table = z[:, :, 0] + 1j * z[:, :, 1]
    table.flags.writeable = False
    return table
