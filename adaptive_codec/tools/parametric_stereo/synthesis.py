"""Decoder side of parametric stereo: left and right from the decoded mid and a decorrelated copy.

Per STFT frame and band, with ``X`` the decoded mid's spectrum (of unit
power, say) and ``D`` a decorrelated copy of the same power::

    L = (1 + a)·X + b·D        R = (1 - a)·X - b·D

so ``(L + R) / 2 = X`` (the mid is kept as decoded). For a coded ILD
``r = P_L / P_R`` and coherence ``rho``, the original's mid has power
``(P_L + P_R + 2·rho·sqrt(P_L·P_R)) / 4``; normalised to 1, ``P_R = 4 / (r + 1 + 2·rho·sqrt(r))``,
``P_L = r·P_R``, and ``a = (P_L - P_R) / 4``, ``b² = (P_L + P_R - 2·rho·sqrt(P_L·P_R)) / 4 - a²``
give left and right exactly those powers and that coherence.

``D``: every bin of ``X`` delayed by 1..3 STFT frames (a fixed pseudo-random
choice per bin) and turned by a fixed pseudo-random phase, then scaled per
band to ``X``'s power in the frame, never above 2× in amplitude (after a
loud frame the delayed copy would otherwise smear it into a quiet one: the
transient handling of HE-AAC's decorrelator in one line). Parameters are
interpolated linearly between the centres of parameter frames, so they never
step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.fft

from adaptive_codec.tools.highband.analysis import Framer, bin_power, emitted_piece
from adaptive_codec.tools.highband.grid import StftGrid

__all__ = ["mix_gains", "ParametricSynthesizer", "MAX_DELAY", "DECORRELATOR_SEED"]

#: Longest delay of the decorrelator, in STFT frames (3 hops: 20 ms).
MAX_DELAY = 3
DECORRELATOR_SEED = 0x50535452
#: Largest amplitude gain of the decorrelated copy towards the mid's band power.
MAX_DECORRELATOR_GAIN = 2.0


def mix_gains(ild_db: np.ndarray, icc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` of the mixing rule (module docstring) for ILDs (dB) and coherences of any one shape."""
    r = 10.0 ** (np.asarray(ild_db, np.float64) / 10)
    rho = np.asarray(icc, np.float64)
    sr = np.sqrt(r)
    # A mid near zero (opposite channels) has nothing to rebuild them from: keep the rule bounded.
    den = np.maximum(r + 1 + 2 * rho * sr, 0.1 * (r + 1))
    pr = 4.0 / den
    pl = r * pr
    a = (pl - pr) / 4
    b = np.sqrt(np.maximum((pl + pr - 2 * rho * np.sqrt(pl * pr)) / 4 - a * a, 0.0))
    return a, b


class ParametricSynthesizer:
    """Decoded blocks (mid on every channel) in, left/right out (delayed by one STFT hop).

    Parameters
    ----------
    grid : StftGrid
    starts : np.ndarray [shape=(bands,)]
        First rfft bin of every band.
    gains : callable
        ``gains(j)`` for STFT frame indices ``j (n,)``: mixing gains ``a, b``
        of shape ``(n, bands)`` each (:func:`mix_gains` of the frame's parameters).
    first_sample : int
        Stream position of the first block's first sample.
    """

    def __init__(self, grid: StftGrid, starts: np.ndarray, gains: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 first_sample: int = 0) -> None:
        self.grid, self.gains = grid, gains
        self.starts = np.asarray(starts, np.int64)
        n_bins = grid.size // 2 + 1
        self.widths = np.diff(np.append(self.starts, n_bins))
        self.framer = Framer(grid, 1, first_sample)
        self.window = grid.window().astype(np.float32)
        self.emitted = first_sample
        self.tail = np.zeros((2, grid.hop), np.float32)
        rng = np.random.default_rng(DECORRELATOR_SEED)
        self.delay = rng.integers(1, MAX_DELAY + 1, n_bins)
        self.phase = np.exp(2j * np.pi * rng.random(n_bins)).astype(np.complex64)
        self.history = np.zeros((MAX_DELAY, n_bins), np.complex64)  # spectra of the last frames, oldest first

    def push(self, block: np.ndarray) -> np.ndarray:
        """Output ``(2, n)`` for the samples now final (``n`` may differ from the block's)."""
        return self._out(*self.framer.push(block.mean(axis=0, keepdims=True)), final=False)

    def finish(self) -> np.ndarray:
        """The rest of the output, up to the last pushed sample."""
        return self._out(*self.framer.finish(), final=True)

    def _out(self, j0: int, frames: np.ndarray, final: bool) -> np.ndarray:
        h = self.grid.hop
        n = len(frames)
        if n == 0:
            return np.zeros((2, 0), np.float32)
        wet = self._stereo(j0, frames[:, 0])  # (n, 2, N)
        acc = np.zeros((2, (n + 1) * h), np.float32)
        acc[:, :h] += self.tail
        acc[:, : n * h] += wet[:, :, :h].transpose(1, 0, 2).reshape(2, n * h)
        acc[:, h : (n + 1) * h] += wet[:, :, h:].transpose(1, 0, 2).reshape(2, n * h)
        self.tail = acc[:, n * h :]
        start = (j0 - 1) * h  # stream position of acc[:, 0]
        stop = self.framer.end if final else start + n * h
        piece, self.emitted = emitted_piece(acc, start, stop, self.emitted)
        return piece

    def _stereo(self, j0: int, frames: np.ndarray) -> np.ndarray:
        """Left and right of STFT frames ``j0, j0 + 1, ...`` of the mid ``(n, N)``: windowed ``(n, 2, N)``."""
        n = len(frames)
        x = scipy.fft.rfft(frames * self.window, axis=-1).astype(np.complex64)  # (n, bins)
        full = np.concatenate([self.history, x])
        self.history = full[-MAX_DELAY:]
        rows = MAX_DELAY + np.arange(n)[:, None] - self.delay[None, :]
        d = full[rows, np.arange(x.shape[1])[None, :]] * self.phase
        px = np.add.reduceat(bin_power(x), self.starts, axis=-1)
        pd = np.add.reduceat(bin_power(d), self.starts, axis=-1)
        g = np.minimum(np.sqrt(px / np.maximum(pd, 1e-30)), MAX_DECORRELATOR_GAIN)
        a, b = self.gains(np.arange(j0, j0 + n))
        ga = np.repeat(a, self.widths, axis=-1).astype(np.float32)
        gb = np.repeat(b * g, self.widths, axis=-1).astype(np.float32)
        left = (1 + ga) * x + gb * d
        right = (1 - ga) * x - gb * d
        return scipy.fft.irfft(np.stack([left, right], axis=1), n=self.grid.size, axis=-1) * self.window
