"""Resampling: the one owner of every resampler the package uses.

Three algorithms, each kept where results depend on it bit for bit:

* :func:`resample`, :func:`resample_signal` and :class:`StreamResampler`: the
  codec's own filter (below). Everything the codec codes or decodes goes
  through it, so the golden streams depend on it.
* :func:`resample_for_analysis` and :func:`analysis_stream_resampler`: soxr
  ("HQ"), fast; the classifier's features are computed through it, and the
  shipped classifier was trained on those features, so it must not change.
* :func:`resample_for_training`: torchaudio's default (Hann-windowed sinc,
  6 zero crossings), cheaper and softer; the backbone's training data and its
  evaluation scores were made with it.

The codec's filter is torchaudio's ``"kaiser_best"`` design (Kaiser-windowed
sinc, 64 zero crossings, rolloff 0.9476, beta 14.77: very low aliasing, flat
to ~95 % of Nyquist), and :func:`resample_signal` gives what
``torchaudio.functional.resample`` gives with those settings, to float
rounding. It is applied here as a polyphase matrix product instead of a
strided convolution: output sample ``j`` of group ``g`` is the dot product
of kernel row ``j`` with the input window that starts at ``g · step_in``.
Groups are made at least :data:`MIN_GROUP_OUTPUTS` outputs wide (by not fully
reducing the rate ratio), which keeps the product efficient for ratios such
as 48 kHz → 24 kHz where the convolution had one output channel (it was 10x
slower there).

:class:`StreamResampler` computes the same groups from a signal that arrives
in blocks, each as soon as its whole input window is known, so a long file
is resampled with bounded memory and exactly as if it were resampled whole.

The codec's filter is designed and applied in NumPy (float64 design, float32
product), so coding needs no torch; only :func:`resample_for_training` and a
torch tensor given to :func:`resample` import it (:func:`_torch`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import soxr

from adaptive_codec.errors import AudioError

__all__ = [
    "resample",
    "resample_signal",
    "StreamResampler",
    "PolyphaseFilter",
    "design_filter",
    "resample_for_analysis",
    "analysis_stream_resampler",
    "resample_for_training",
]

#: soxr quality of the analysis resampler (the classifier's features).
ANALYSIS_QUALITY = "HQ"

#: Filter half-length in zero crossings of the sinc.
LOWPASS_ZERO_CROSSINGS = 64
#: Cutoff as a fraction of the lower Nyquist frequency.
ROLLOFF = 0.9475937167399596
#: Kaiser window shape parameter.
KAISER_BETA = 14.769656459379492
#: Outputs per polyphase group at least (matrix-product width).
MIN_GROUP_OUTPUTS = 32
#: Bytes of input windows gathered per matrix product (bounds scratch memory).
_SCRATCH_BYTES = 1 << 21


def _torch() -> ModuleType:
    """``torch``, imported on first use (training resampling and tensor inputs only)."""
    import torch

    return torch


@dataclass(frozen=True)
class PolyphaseFilter:
    """A resampling filter in polyphase form.

    Attributes
    ----------
    step_in, step_out : int
        Input samples consumed and output samples produced per group.
    width : int
        Input samples of context on each side of a group.
    kernel : np.ndarray [shape=(2 * width + step_in, step_out)], float32
        Column ``j`` weights the window of a group into its output ``j``.
    """

    step_in: int
    step_out: int
    width: int
    kernel: np.ndarray

    @property
    def window(self) -> int:
        """Input samples that one group reads."""
        return 2 * self.width + self.step_in

    def output_length(self, n_in: int) -> int:
        """Output samples of an ``n_in``-sample signal: ``ceil(n_in · out / in)``."""
        return -(-n_in * self.step_out // self.step_in)


@functools.lru_cache(maxsize=16)
def design_filter(sr_from: int, sr_to: int) -> PolyphaseFilter:
    """The ``kaiser_best`` filter from ``sr_from`` Hz to ``sr_to`` Hz in polyphase form.

    Cached (a pure function of the two rates; the design costs a few ms of
    Bessel functions, every encode and decode asks for one). The kernel is
    shared: treat it as read-only.

    Parameters
    ----------
    sr_from, sr_to : int
        Positive sample rates in Hz.

    Returns
    -------
    PolyphaseFilter
    """
    g = math.gcd(int(sr_from), int(sr_to))
    orig, new = int(sr_from) // g, int(sr_to) // g
    # Widening the group by m leaves every tap where it was (all positions
    # below are ratios); it only makes the matrix product wider.
    m = max(1, -(-MIN_GROUP_OUTPUTS // min(orig, new)))
    orig, new = orig * m, new * m
    base = min(orig, new) * ROLLOFF
    width = math.ceil(LOWPASS_ZERO_CROSSINGS * orig / base)
    # float64 throughout, as torchaudio's design; rounded to float32 once.
    taps = np.arange(-width, width + orig, dtype=np.float64)[None, :] / orig
    t = (taps - np.arange(new, dtype=np.float64)[:, None] / new) * base
    t = np.clip(t, -LOWPASS_ZERO_CROSSINGS, LOWPASS_ZERO_CROSSINGS)
    window = np.i0(KAISER_BETA * np.sqrt(1 - (t / LOWPASS_ZERO_CROSSINGS) ** 2)) / np.i0(KAISER_BETA)
    t = t * math.pi
    sinc = np.where(t == 0, 1.0, np.sin(t) / np.where(t == 0, 1.0, t))
    kernel = (sinc * window * (base / orig)).astype(np.float32)
    return PolyphaseFilter(orig, new, width, np.ascontiguousarray(kernel.T))


def _apply(filt: PolyphaseFilter, padded: np.ndarray, n_groups: int) -> np.ndarray:
    """Outputs of ``n_groups`` groups whose windows start at ``padded[..., g · step_in]``."""
    lead = padded.shape[:-1]
    x = np.ascontiguousarray(padded, dtype=np.float32).reshape(-1, padded.shape[-1])
    out = np.empty((x.shape[0], n_groups * filt.step_out), np.float32)
    per_batch = max(1, _SCRATCH_BYTES // (4 * filt.window))
    for c in range(x.shape[0]):
        for g0 in range(0, n_groups, per_batch):
            g1 = min(n_groups, g0 + per_batch)
            seg = x[c, g0 * filt.step_in : (g1 - 1) * filt.step_in + filt.window]
            windows = np.lib.stride_tricks.sliding_window_view(seg, filt.window)[:: filt.step_in]
            target = out[c, g0 * filt.step_out : g1 * filt.step_out].reshape(g1 - g0, filt.step_out)
            # A strided view of the windows: BLAS reads it without a copy when its rows are contiguous.
            np.matmul(np.ascontiguousarray(windows), filt.kernel, out=target)
    return out.reshape(lead + (-1,))


def resample_signal(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample a whole signal.

    Parameters
    ----------
    audio : np.ndarray [shape=(..., samples)]
    sr_from, sr_to : int
        Positive sample rates in Hz.

    Returns
    -------
    np.ndarray [shape=(..., ceil(samples * sr_to / sr_from)), dtype=float32]
        The signal is taken as zero outside its samples.
    """
    stream = StreamResampler(sr_from, sr_to)
    head = stream.push(audio)
    return np.concatenate([head, stream.finish()], axis=-1)


def resample(audio: Any, sr_from: int, sr_to: int) -> Any:
    """Resample with the codec's high-quality windowed-sinc filter.

    Parameters
    ----------
    audio : np.ndarray or torch.Tensor [shape=(..., samples)]
    sr_from, sr_to : int
        Source and target sample rates in Hz.

    Returns
    -------
    np.ndarray or torch.Tensor [shape=(..., ceil(samples * sr_to / sr_from))]
        Same type as the input (NumPy in, float32 NumPy out). The input itself
        is returned when the rates are equal.

    Raises
    ------
    AudioError
        A rate that is not positive.

    Notes
    -----
    The filter is torchaudio's ``"kaiser_best"`` (Kaiser window, 64 zero
    crossings), applied by :func:`resample_signal`; :class:`StreamResampler`
    gives the same result for a signal read block by block.
    """
    if int(sr_from) <= 0 or int(sr_to) <= 0:
        raise AudioError(f"sample rates must be positive, got {sr_from} -> {sr_to}")
    if int(sr_from) == int(sr_to):
        return audio
    if hasattr(audio, "detach"):  # torch.Tensor: same type (and device) back
        y = resample_signal(audio.detach().cpu().numpy(), int(sr_from), int(sr_to))
        return _torch().from_numpy(y).to(audio.device)
    return resample_signal(np.asarray(audio, dtype=np.float32), int(sr_from), int(sr_to))


class StreamResampler:
    """Resample a signal that arrives block by block; output equals :func:`resample_signal`.

    Every output group is computed once its whole input window has arrived
    (or the stream has ended, when zeros stand in for what follows), so the
    output does not depend on how the input was cut. Memory: one block plus
    ``2 * width + step_in`` samples of history.

    Parameters
    ----------
    sr_from, sr_to : int
        Positive sample rates in Hz.

    Examples
    --------
    >>> rs = StreamResampler(48000, 24000)
    >>> out = [rs.push(block) for block in blocks] + [rs.finish()]   # doctest: +SKIP
    """

    def __init__(self, sr_from: int, sr_to: int) -> None:
        self.filter = design_filter(int(sr_from), int(sr_to))
        self._buffer: np.ndarray | None = None  # input from signal index _buffer_start on
        self._buffer_start = 0  # negative while the leading zeros are kept
        self._received = 0
        self._next_group = 0
        self._emitted = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        """Append ``block`` ``(..., n)``; returns the outputs it completes ``(..., m)``."""
        block = np.asarray(block, dtype=np.float32)
        if self._buffer is None:
            # The first window starts `width` samples before the signal: zeros.
            self._buffer = np.zeros(block.shape[:-1] + (self.filter.width,), dtype=np.float32)
            self._buffer_start = -self.filter.width
        elif block.shape[:-1] != self._buffer.shape[:-1]:
            raise ValueError(f"block shape {block.shape} does not continue {self._buffer.shape[:-1]}")
        self._buffer = np.concatenate([self._buffer, block], axis=-1)
        self._received += block.shape[-1]
        f = self.filter
        # Group g reads samples [g·step_in - width, (g+1)·step_in + width).
        ready = max(0, (self._received - f.width) // f.step_in)
        return self._emit(ready, final=False)

    def finish(self) -> np.ndarray:
        """The outputs that need the end of the signal (zeros after it)."""
        if self._buffer is None:
            return np.zeros(0, dtype=np.float32)
        f = self.filter
        total = f.output_length(self._received)
        before = self._emitted
        out = self._emit(-(-total // f.step_out), final=True)
        # The last group may reach past the output length; cut it there.
        return out[..., : max(0, total - before)]

    def _emit(self, end_group: int, final: bool) -> np.ndarray:
        f = self.filter
        g0, g1 = self._next_group, end_group
        lead = self._buffer.shape[:-1]
        if g1 <= g0:
            return np.zeros(lead + (0,), dtype=np.float32)
        lo = g0 * f.step_in - f.width  # signal index of the first window sample
        hi = lo + (g1 - g0 - 1) * f.step_in + f.window
        a, b = lo - self._buffer_start, hi - self._buffer_start
        have = self._buffer[..., a : min(self._buffer.shape[-1], b)]
        if b > self._buffer.shape[-1]:  # the end of the signal (final only): zeros after it
            have = np.pad(have, [(0, 0)] * len(lead) + [(0, b - self._buffer.shape[-1])])
        out = _apply(f, have, g1 - g0)
        self._next_group = g1
        self._emitted += out.shape[-1]
        keep = g1 * f.step_in - f.width  # first sample a later group reads
        if keep > self._buffer_start:
            self._buffer = self._buffer[..., keep - self._buffer_start :]
            self._buffer_start = keep
        return out


def resample_for_analysis(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample with soxr ("HQ"), the resampler of the classifier's features.

    For whole signals that feed the feature extractor (training data,
    benchmarks); :func:`analysis_stream_resampler` is the same filter for
    block streams.

    Parameters
    ----------
    audio : np.ndarray [shape=(samples,) or (samples, channels)]
        Note soxr's layout: frames first, unlike the package's
        ``(channels, samples)``.
    sr_from, sr_to : int
        Source and target sample rates in Hz.

    Returns
    -------
    np.ndarray [shape=(about samples * sr_to / sr_from,) or (..., channels)]
        The input's dtype (float32 or float64).
    """
    return soxr.resample(audio, sr_from, sr_to, quality=ANALYSIS_QUALITY)


def analysis_stream_resampler(sr_from: int, sr_to: int) -> soxr.ResampleStream:
    """A soxr ("HQ") stream resampler for mono float32 blocks (the features' input).

    Parameters
    ----------
    sr_from, sr_to : int
        Source and target sample rates in Hz.

    Returns
    -------
    soxr.ResampleStream
        ``resample_chunk(block, last=False)`` per ``(samples,)`` float32 block,
        then ``resample_chunk(empty, last=True)`` for the tail.
    """
    return soxr.ResampleStream(sr_from, sr_to, 1, dtype="float32", quality=ANALYSIS_QUALITY)


def resample_for_training(audio: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample with ``torchaudio.functional.resample``'s defaults.

    Hann-windowed sinc, 6 zero crossings, rolloff 0.99: cheaper and softer
    than :func:`resample`. The backbone's training clips and its evaluation
    scores were made with it; the codec path never uses it.

    Parameters
    ----------
    audio : np.ndarray [shape=(..., samples)]
    sr_from, sr_to : int
        Source and target sample rates in Hz.

    Returns
    -------
    np.ndarray [shape=(..., ceil(samples * sr_to / sr_from))]
        The input's dtype.
    """
    # torchaudio (with torch) is needed only here: the training and benchmark paths.
    import torchaudio

    return torchaudio.functional.resample(_torch().from_numpy(audio), sr_from, sr_to).numpy()
