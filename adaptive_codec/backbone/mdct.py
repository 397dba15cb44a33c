"""Modified discrete cosine transform (MDCT) with perfect reconstruction.

The backbone works on MDCT coefficients rather than on a complex STFT: the
MDCT is real and critically sampled, so the decoder predicts real numbers
and needs no phase model, and the inverse transform (windowed overlap-add,
time-domain aliasing cancellation) turns any coefficient sequence into a
continuous waveform. That continuity is what keeps profile switches between
frames click-free.

Frames have ``2 * hop`` samples and a hop of ``hop`` samples; each frame gives
``hop`` coefficients. With the orthonormal basis below, ``imdct(mdct(x))``
equals ``x`` to float precision.

The forward transform is a product with the basis. The inverse is computed
the fast way: the DCT-IV of the coefficients (one complex FFT of ``hop / 2``
points between two twiddles) unfolded to the windowed frame; the same as the
basis product to float rounding in a third of the time on a CPU. (The
forward transform stays a product: the encoder's power-law compression
magnifies rounding differences of near-zero coefficients enough to flip an
RVQ index now and then, and encoding must match what the model was trained
and measured with.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _sine_window(hop: int) -> torch.Tensor:
    """Sine window of ``2 * hop`` samples, float64."""
    n = torch.arange(2 * hop, dtype=torch.float64)
    # Satisfies the Princen-Bradley condition w[n]^2 + w[n+N]^2 = 1.
    return torch.sin(math.pi * (n + 0.5) / (2 * hop))


def _mdct_basis(hop: int) -> torch.Tensor:
    """Windowed orthonormal MDCT basis, shape ``(hop, 2 * hop)``."""
    n = torch.arange(2 * hop, dtype=torch.float64)
    k = torch.arange(hop, dtype=torch.float64)
    phase = math.pi / hop * (n[None, :] + 0.5 + hop / 2) * (k[:, None] + 0.5)
    basis = math.sqrt(2.0 / hop) * _sine_window(hop)[None, :] * torch.cos(phase)
    return basis.float()


class MDCT(nn.Module):
    """Forward (basis product) and inverse (FFT-based DCT-IV + unfold) MDCT.

    Parameters
    ----------
    hop : int
        Hop size in samples (even); also the number of coefficients per frame.

    Attributes
    ----------
    basis : torch.Tensor [shape=(hop, 2 * hop)]
        The transform as a matrix: :meth:`frames` is ``windows @ basis.T``
        and :meth:`inverse_frames` overlap-adds ``coefficients @ basis``.
    """

    def __init__(self, hop: int) -> None:
        super().__init__()
        if hop % 2:
            raise ValueError(f"MDCT hop must be even (the DCT-IV uses a hop/2-point FFT), got {hop}")
        self.hop = hop
        self.register_buffer("basis", _mdct_basis(hop), persistent=False)
        self.register_buffer("window", _sine_window(hop).float(), persistent=False)
        h = torch.arange(hop // 2, dtype=torch.float64)
        # DCT-IV twiddles; the pre-twiddle carries the orthonormal scale.
        pre = torch.exp(-1j * math.pi * (h + 0.25) / hop) * math.sqrt(2.0 / hop)
        self.register_buffer("twiddle_pre", pre.to(torch.complex64), persistent=False)
        self.register_buffer("twiddle_post", torch.exp(-1j * math.pi * h / hop).to(torch.complex64),
                             persistent=False)

    def _dct4(self, u: torch.Tensor) -> torch.Tensor:
        """Scaled DCT-IV over the last axis: ``sqrt(2/N) Σ_n u[n] cos(π/N (n+½)(k+½))``."""
        z = torch.complex(u[..., 0::2], u.flip(-1)[..., 0::2]) * self.twiddle_pre
        y = torch.fft.fft(z, dim=-1) * self.twiddle_post
        # Even outputs are the real parts, odd ones the negated imaginary parts reversed.
        return torch.stack([y.real, -y.imag.flip(-1)], dim=-1).flatten(-2)

    def n_frames(self, n_samples: int) -> int:
        """Number of frames :meth:`forward` returns for ``n_samples`` samples."""
        return math.ceil(n_samples / self.hop) + 1

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """MDCT of a batch of waveforms.

        Parameters
        ----------
        audio : torch.Tensor [shape=(batch, samples)]

        Returns
        -------
        torch.Tensor [shape=(batch, hop, frames)]
            ``frames = ceil(samples / hop) + 1``; the signal is padded with
            ``hop`` zeros in front and zeros up to a whole frame at the end.
        """
        return self.frames(audio).transpose(1, 2)

    def frames(self, audio: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` in frame-major layout, as the backbone consumes it.

        Parameters
        ----------
        audio : torch.Tensor [shape=(batch, samples)]

        Returns
        -------
        torch.Tensor [shape=(batch, frames, hop)]
        """
        hop = self.hop
        n = audio.shape[-1]
        total = (math.ceil(n / hop) + 2) * hop
        padded = F.pad(audio, (hop, total - n - hop))
        windows = padded.unfold(-1, 2 * hop, hop)  # (B, T, 2*hop)
        return windows @ self.basis.T

    def inverse(self, coefficients: torch.Tensor, n_samples: int) -> torch.Tensor:
        """Inverse MDCT with overlap-add.

        Parameters
        ----------
        coefficients : torch.Tensor [shape=(batch, hop, frames)]
        n_samples : int
            Length of the original signal; the output is cut to it.

        Returns
        -------
        torch.Tensor [shape=(batch, n_samples)]
        """
        return self.inverse_frames(coefficients.transpose(1, 2), n_samples)

    def inverse_frames(self, coefficients: torch.Tensor, n_samples: int) -> torch.Tensor:
        """:meth:`inverse` of frame-major coefficients, as the decoder produces them.

        Parameters
        ----------
        coefficients : torch.Tensor [shape=(batch, frames, hop)]
        n_samples : int
            Length of the original signal; the output is cut to it.

        Returns
        -------
        torch.Tensor [shape=(batch, n_samples)]
        """
        hop, q = self.hop, self.hop // 2
        v = self._dct4(coefficients)
        # Unfold (v1, v2) to the frame (v2, -v2_r, -v1_r, -v1), windowed.
        v1, v2 = v[..., :q], v[..., q:]
        first = torch.cat([v2, -v2.flip(-1)], dim=-1) * self.window[:hop]
        second = torch.cat([-v1.flip(-1), -v1], dim=-1) * self.window[hop:]
        # Frames overlap by exactly one hop, so overlap-add is the first half
        # of each frame plus the second half of the frame before it.
        blocks = F.pad(first, (0, 0, 0, 1)) + F.pad(second, (0, 0, 1, 0))
        return blocks.reshape(blocks.shape[0], -1)[:, hop : hop + n_samples]
