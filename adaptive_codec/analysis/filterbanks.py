"""The classifier's mel and chroma filter banks and framing, in NumPy: librosa's, value for value.

The shipped classifier was trained on features made with
``librosa.filters.mel`` (Slaney mel scale and norm), ``librosa.filters.chroma``
(default tuning, octave weighting, C first) and ``librosa.util.frame``. These
are the same computations in the same order and dtypes, so the features are
identical, without librosa (and numba, ~210 MB) in the base install;
``tests/test_features.py`` compares them with librosa where it is installed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mel_filters", "chroma_filters", "frame"]

_F_SP = 200.0 / 3  # Slaney mel scale: linear below 1 kHz ...
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0  # ... logarithmic above


def _hz_to_mel(hz: float) -> float:
    return _MIN_LOG_MEL + np.log(hz / _MIN_LOG_HZ) / _LOGSTEP if hz >= _MIN_LOG_HZ else hz / _F_SP


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    freqs = _F_SP * mels
    log_t = mels >= _MIN_LOG_MEL
    freqs[log_t] = _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels[log_t] - _MIN_LOG_MEL))
    return freqs


def mel_filters(sr: float, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised mel filter bank ``(n_mels, 1 + n_fft // 2)`` float32 (``librosa.filters.mel``)."""
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])  # about constant energy per band
    weights *= enorm[:, np.newaxis]
    return weights


def _normalize_columns(s: np.ndarray) -> np.ndarray:
    """Each column over its L2 norm (columns below float64's tiny are left alone)."""
    length = np.sum(np.abs(s).astype(float) ** 2, axis=0, keepdims=True) ** (1.0 / 2)
    length[length < np.finfo(s.dtype).tiny] = 1.0
    out = np.empty_like(s)
    out[:] = s / length
    return out


def chroma_filters(sr: float, n_fft: int, n_chroma: int = 12) -> np.ndarray:
    """Chroma filter bank ``(n_chroma, 1 + n_fft // 2)`` float32 (``librosa.filters.chroma`` defaults)."""
    ctroct, octwidth = 5.0, 2.0
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    a440 = 440.0 * 2.0 ** (0.0 / n_chroma)
    frqbins = n_chroma * np.log2(frequencies / (float(a440) / 16))
    # The 0 Hz bin: 1.5 octaves below bin 1 (50 % rotated, broad).
    frqbins = np.concatenate(([frqbins[0] - 1.5 * n_chroma], frqbins))
    binwidthbins = np.concatenate((np.maximum(frqbins[1:] - frqbins[:-1], 1.0), [1]))
    d = np.subtract.outer(frqbins, np.arange(0, n_chroma, dtype="d")).T
    n_chroma2 = np.round(float(n_chroma) / 2)
    d = np.remainder(d + n_chroma2 + 10 * n_chroma, n_chroma) - n_chroma2
    wts = np.exp(-0.5 * (2 * d / np.tile(binwidthbins, (n_chroma, 1))) ** 2)
    wts = _normalize_columns(wts)
    wts *= np.tile(np.exp(-0.5 * (((frqbins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1))
    wts = np.roll(wts, -3 * (n_chroma // 12), axis=0)  # start at C
    return np.ascontiguousarray(wts[:, : int(1 + n_fft / 2)], dtype=np.float32)


def frame(y: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """Frames of a 1-D signal as a strided view ``(frame_length, n_frames)`` (``librosa.util.frame``).

    ``n_frames = 1 + (len(y) - frame_length) // hop_length``; raises ValueError
    when the signal is shorter than one frame.
    """
    if y.shape[-1] < frame_length:
        raise ValueError(f"input is too short (n={y.shape[-1]}) for frame_length={frame_length}")
    return np.lib.stride_tricks.sliding_window_view(y, frame_length)[::hop_length].T
