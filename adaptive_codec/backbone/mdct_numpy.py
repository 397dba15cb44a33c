"""The backbone's MDCT and encoder analysis in NumPy: the transform of :mod:`adaptive_codec.backbone.mdct`, to float rounding.

The exact transforms stay outside any exported graph: the forward transform
is the same float32 product with the windowed orthonormal basis (built in
float64, rounded once), the inverse the same FFT-based DCT-IV (single
precision) unfolded and overlap-added. See the torch module's docstring for
why the forward transform stays a basis product.

:func:`analyse_signal` (MDCT, power-law compression, frame energy) is the
codec's encoder analysis for EVERY backbone, the runtime's and the torch
model's (:class:`~adaptive_codec.backbone.inference.TorchBackbone`): a float32
sum of 2·hop products depends on the BLAS kernel that computes it (OpenBLAS'
AVX2 kernels differ from torch's MKL in the last bit of about 2 % of the
coefficients), the compression magnifies such differences of near-zero
coefficients, and a near-tie RVQ index flips. One implementation gives both
backbones the same encoder input bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["NumpyMDCT", "analyse_signal"]


def _sine_window(hop: int) -> np.ndarray:
    """Sine window of ``2 * hop`` samples, float64 (Princen-Bradley: ``w[n]² + w[n+N]² = 1``)."""
    n = np.arange(2 * hop, dtype=np.float64)
    return np.sin(math.pi * (n + 0.5) / (2 * hop))


class NumpyMDCT:
    """Forward (basis product) and inverse (FFT-based DCT-IV + unfold) MDCT, frame-major.

    Parameters
    ----------
    hop : int
        Hop in samples (even); also the coefficients per frame.
    """

    def __init__(self, hop: int) -> None:
        if hop % 2:
            raise ValueError(f"MDCT hop must be even (the DCT-IV uses a hop/2-point FFT), got {hop}")
        self.hop = hop
        n = np.arange(2 * hop, dtype=np.float64)
        k = np.arange(hop, dtype=np.float64)
        phase = math.pi / hop * (n[None, :] + 0.5 + hop / 2) * (k[:, None] + 0.5)
        basis = math.sqrt(2.0 / hop) * _sine_window(hop)[None, :] * np.cos(phase)
        #: (2·hop, hop) float32: windows @ basis_t are the coefficients.
        self.basis_t = np.ascontiguousarray(basis.astype(np.float32).T)
        self.window = _sine_window(hop).astype(np.float32)
        h = np.arange(hop // 2, dtype=np.float64)
        # DCT-IV twiddles; the pre-twiddle carries the orthonormal scale.
        self.twiddle_pre = (np.exp(-1j * math.pi * (h + 0.25) / hop) * math.sqrt(2.0 / hop)).astype(np.complex64)
        self.twiddle_post = np.exp(-1j * math.pi * h / hop).astype(np.complex64)

    def n_frames(self, n_samples: int) -> int:
        """Frames of an ``n_samples``-sample signal: ``ceil(n_samples / hop) + 1``."""
        return math.ceil(n_samples / self.hop) + 1

    def frames(self, audio: np.ndarray) -> np.ndarray:
        """MDCT of a mono signal.

        Parameters
        ----------
        audio : np.ndarray [shape=(samples,)], float32

        Returns
        -------
        np.ndarray [shape=(frames, hop)], float32
            Padded with ``hop`` zeros in front and zeros up to a whole frame at the end.
        """
        hop = self.hop
        n = audio.shape[-1]
        total = (math.ceil(n / hop) + 2) * hop
        padded = np.zeros(total, np.float32)
        padded[hop : hop + n] = audio
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * hop)[::hop]  # (T, 2·hop) view
        return windows @ self.basis_t

    def _dct4(self, u: np.ndarray) -> np.ndarray:
        """Scaled DCT-IV over the last axis: ``sqrt(2/N) Σ_n u[n] cos(π/N (n+½)(k+½))``."""
        z = (u[..., 0::2] + 1j * u[..., ::-1][..., 0::2]).astype(np.complex64) * self.twiddle_pre
        y = np.fft.fft(z, axis=-1) * self.twiddle_post
        # Even outputs are the real parts, odd ones the negated imaginary parts reversed.
        out = np.empty(u.shape, np.float32)
        out[..., 0::2] = y.real
        out[..., 1::2] = -y.imag[..., ::-1]
        return out

    def inverse_frames(self, coefficients: np.ndarray, n_samples: int) -> np.ndarray:
        """Inverse MDCT with overlap-add of frame-major coefficients.

        Parameters
        ----------
        coefficients : np.ndarray [shape=(frames, hop)], float32
        n_samples : int
            Output length (the signal is cut to it).

        Returns
        -------
        np.ndarray [shape=(n_samples,)], float32
        """
        hop, q = self.hop, self.hop // 2
        v = self._dct4(np.asarray(coefficients, np.float32))
        v1, v2 = v[:, :q], v[:, q:]
        # Unfold (v1, v2) to the frame (v2, -v2_r, -v1_r, -v1), windowed.
        first = np.concatenate([v2, -v2[:, ::-1]], axis=-1) * self.window[:hop]
        second = np.concatenate([-v1[:, ::-1], -v1], axis=-1) * self.window[hop:]
        # Frames overlap by one hop: each block is a frame's first half plus the previous frame's second half.
        blocks = np.zeros((v.shape[0] + 1, hop), np.float32)
        blocks[:-1] += first
        blocks[1:] += second
        return blocks.reshape(-1)[hop : hop + n_samples]


def analyse_signal(mdct: NumpyMDCT, samples: np.ndarray, compress_exponent: float) -> tuple[np.ndarray, np.ndarray]:
    """Encoder features and frame energies of a mono internal-rate signal.

    What :meth:`adaptive_codec.backbone.model.Backbone.analysis` computes,
    in float32 NumPy.

    Parameters
    ----------
    mdct : NumpyMDCT
    samples : np.ndarray [shape=(samples,)], float32
    compress_exponent : float
        Exponent of the power-law compression of the coefficients.

    Returns
    -------
    features : np.ndarray [shape=(frames, hop + 1)], float32
        Power-law compressed MDCT coefficients and log10 frame energy / 5.
    log_energy : np.ndarray [shape=(frames,)], float32
        Each frame's log10 mean squared MDCT coefficient.
    """
    coef = mdct.frames(np.asarray(samples, np.float32))
    p = np.float32(compress_exponent)
    features = np.empty((coef.shape[0], coef.shape[1] + 1), np.float32)
    features[:, :-1] = np.sign(coef) * np.power(np.abs(coef) + np.float32(1e-8), p)
    energy = (coef * coef).mean(-1, dtype=np.float32) + np.float32(1e-10)
    features[:, -1] = np.log10(energy) / np.float32(5)
    return features, features[:, -1] * np.float32(5)
