"""Frame-level DSP behind :mod:`adaptive_codec.analysis.features` (one STFT per chunk).

Private module: :mod:`adaptive_codec.analysis.features` is the public interface. Split
out to keep each module to one idea: this one turns samples into per-frame
descriptors and per-window statistics; ``features`` handles configuration,
windowing, temporal context and streaming.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import scipy.fft

from adaptive_codec.analysis.filterbanks import chroma_filters, frame, mel_filters

if TYPE_CHECKING:
    from adaptive_codec.analysis.features import FeatureConfig

# Floor added before logarithms: -100 dB re full scale, far below any real
# recording, so silence gives finite (and constant) features.
_EPS = 1e-10

# A frame counts as voiced (pitched) when its normalised autocorrelation peak
# exceeds this: loud frames of read speech sit at 0.75-0.9, rain, paper and
# keyboard noise at 0.2-0.4 (measured on corpus clips).
_VOICED = 0.6
# Two consecutive voiced frames hold "the same pitch" within a quarter tone.
_STEADY_OCT = 1 / 24
# ... and "glide" (intonation, vibrato) within a minor third.
_GLIDE_OCT = 1 / 4


class Frames(NamedTuple):
    """Per-frame analysis of one chunk (all arrays share the last axis t)."""

    values: np.ndarray  # (n_frame_features, t) level-invariant descriptors, _frame_names order
    log_mel: np.ndarray  # (n_mels, t) log-mel power in dB (spectral flux)
    power_db: np.ndarray  # (t,) frame power in dBFS (level, energy statistics)
    pitch_oct: np.ndarray  # (t,) autocorrelation pitch candidate, octaves re 100 Hz
    chroma: np.ndarray  # (12, t) pitch-class profile, sums to 1 per frame


# Per-frame descriptors summarised by mean and std, in this order. Chroma is
# not among them: its 12 bins name the key, and a model given the bins learns
# the keys of its training songs; the window's profile enters sorted instead
# (``chroma_sorted_*``: how tonal, not which notes).
def _frame_names(config: FeatureConfig) -> list[str]:
    return (
        [f"mel_shape_{i}" for i in range(config.n_mels)]
        + [f"mfcc_{i}" for i in range(1, config.n_mfcc + 1)]
        + [f"contrast_{i}" for i in range(config.contrast_bands + 1)]
        + ["flatness", "rolloff", "centroid", "bandwidth", "zcr", "harmonicity", "chroma_peak"]
    )


def _base_names(config: FeatureConfig) -> list[str]:
    """Names of the per-window features before temporal context is added."""
    frame = _frame_names(config)
    return (
        [f"{n}_mean" for n in frame]
        + [f"{n}_std" for n in frame]
        + [f"mfcc_delta_{i}_std" for i in range(1, config.n_mfcc + 1)]
        + ["flux_mean", "flux_std", "energy_std_db", "low_energy_ratio", "modulation_4hz", "onset_periodicity",
           "spectral_stationarity", "chroma_flux"]
        + [f"chroma_sorted_{i}_mean" for i in range(12)]
        + _VOICING_NAMES
    )


# Window-level descriptors of voicing, pitch and envelope modulation (see _voicing_stats).
_VOICING_NAMES = [
    "harmonicity_loud", "flatness_loud", "harmonicity_p10", "harmonicity_p90", "voiced_ratio",
    "voicing_changes_hz", "pitch_std_oct", "pitch_steady_ratio", "pitch_glide_ratio",
    "modulation_1_3hz", "modulation_6_12hz",
]


def _n_bins(config: FeatureConfig) -> int:
    """STFT bins at or below ``fmax_hz``."""
    return int(config.fmax_hz * config.n_fft / config.sample_rate_hz) + 1


def _spectral_contrast(power: np.ndarray, freqs: np.ndarray, floor: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Peak-to-valley ratio (dB) per octave band, like librosa's, within fmax.

    Returns shape (contrast_bands + 1, t): band 0 is [0, fmin), then octaves.
    """
    edges = [0.0] + [config.contrast_fmin_hz * 2**k for k in range(config.contrast_bands + 1)]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        band = np.sort(power[(freqs >= lo) & (freqs < hi)], axis=0)
        q = max(1, int(round(0.02 * len(band))))  # librosa's quantile=0.02
        peak, valley = band[-q:].mean(axis=0), band[:q].mean(axis=0)
        out.append(10 * np.log10((peak + floor) / (valley + floor)))
    return np.stack(out)


@functools.lru_cache(maxsize=8)
def _filters(config: FeatureConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Analysis window, mel and chroma filter banks and DCT matrix (cached)."""
    sr, n_fft = config.sample_rate_hz, config.n_fft
    hann = np.hanning(n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
    n_bins = _n_bins(config)
    mel = mel_filters(sr, n_fft, config.n_mels, 30.0, config.fmax_hz)
    mel = mel[:, :n_bins].astype(np.float32)
    chroma = chroma_filters(sr, n_fft)[:, :n_bins].astype(np.float32)
    dct = scipy.fft.dct(np.eye(config.n_mels), type=2, norm="ortho", axis=0)[1 : config.n_mfcc + 1].astype(np.float32)
    return hann, mel, chroma, dct


def _frame_features(y: np.ndarray, config: FeatureConfig) -> Frames:
    """Per-frame descriptors from one STFT.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], float32, n >= n_fft
        Mono signal at the analysis rate.

    Returns
    -------
    Frames
        Descriptors, log-mel power, frame power, pitch candidate and chroma,
        all with t = 1 + (n - n_fft) // frame_hop frames.
    """
    sr, n_fft, hop = config.sample_rate_hz, config.n_fft, config.frame_hop
    hann, mel_fb, chroma_fb, dct = _filters(config)
    # center=False: frame j covers samples [j*hop, j*hop + n_fft), so a frame
    # belongs to exactly the windows that contain it (block-independent).
    frames = frame(y, n_fft, hop)  # view, (n_fft, t)
    power_t = np.mean(frames**2, axis=0)
    signs = np.signbit(frames)
    zcr = np.mean(signs[1:] != signs[:-1], axis=0)
    # scipy's FFT keeps float32 (numpy's would upcast): the one STFT, (1 + n_fft/2, t)
    spec = scipy.fft.rfft(frames * hann[:, None], axis=0)
    n_bins = _n_bins(config)
    power = (np.abs(spec[:n_bins]) ** 2).astype(np.float32)  # band-limited to fmax_hz
    freqs = (np.arange(n_bins) * sr / n_fft).astype(np.float32)
    nyquist = config.fmax_hz
    # Floors relative to the frame's own power (-60 dB), not absolute: a
    # quieter copy of a sound then gets the same features, and the spectral
    # holes of lossy-coded sources (MP3/Vorbis, most music and ambience in
    # our data) do not dominate valleys and flatness.
    floor = 1e-6 * power.mean(axis=0) + _EPS

    mel = mel_fb @ power
    log_mel = 10 * np.log10(mel + floor)
    mel_shape = log_mel - log_mel.mean(axis=0, keepdims=True)  # spectral shape, level removed
    mfcc = dct @ log_mel
    chroma = chroma_fb @ power
    chroma /= chroma.sum(axis=0, keepdims=True) + _EPS
    chroma_peak = chroma.max(axis=0)
    contrast = _spectral_contrast(power, freqs, floor, config)
    total = power.sum(axis=0) + _EPS
    flatness = np.exp(np.mean(np.log(power + floor), axis=0)) / (np.mean(power, axis=0) + floor)
    rolloff = freqs[np.argmax(np.cumsum(power, axis=0) >= 0.85 * total, axis=0)] / nyquist
    centroid = (freqs @ power) / total
    bandwidth = np.sqrt(((freqs[:, None] - centroid) ** 2 * power).sum(axis=0) / total)
    # Harmonicity: peak of the normalised autocorrelation (Wiener-Khinchin on
    # the same spectrum) over pitch lags 60-500 Hz; high for voice and tones.
    # Only the lower half of the spectrum is used (pitch lives there), which
    # halves the cost: lags are then in units of 2 samples.
    half = n_fft // 4 + 1
    acf = scipy.fft.irfft(power[:half], n=n_fft // 2, axis=0)
    lo, hi = int(sr / 2 / 500), int(sr / 2 / 60)
    lag = lo + np.argmax(acf[lo:hi], axis=0)
    harmonicity = np.take_along_axis(acf, lag[None], axis=0)[0] / (acf[0] + _EPS)
    pitch_oct = np.log2(sr / 2 / lag / 100.0).astype(np.float32)
    stacked = np.vstack(
        [
            mel_shape,
            mfcc,
            contrast,
            np.log10(flatness + _EPS)[None],
            rolloff[None],
            (centroid / nyquist)[None],
            (bandwidth / nyquist)[None],
            zcr[None],
            harmonicity[None],
            chroma_peak[None],
        ]
    ).astype(np.float32)
    return Frames(stacked, log_mel, 10 * np.log10(power_t + _EPS), pitch_oct, chroma)


def _windows(x: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """View ``x[..., s:s+length]`` for every start; shape (..., n_windows, length)."""
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=-1)
    return view[..., starts, :]


def _window_stats(
    frames: Frames, starts: np.ndarray, length: int, config: FeatureConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Summarise frames ``[s, s+length)`` for every start; returns (values, level_dbfs)."""
    names = _frame_names(config)
    n_frame = len(names)
    log_mel, power_db = frames.log_mel, frames.power_db
    win = _windows(frames.values, starts, length)  # (d, w, L)
    chroma = _windows(frames.chroma, starts, length)  # (12, w, L)
    mean = win.mean(axis=-1).T
    std = win.std(axis=-1).T
    mfcc = win[config.n_mels : config.n_mels + config.n_mfcc]
    delta_std = np.diff(mfcc, axis=-1).std(axis=-1).T if length > 1 else np.zeros((len(starts), config.n_mfcc))
    # Positive spectral flux between consecutive frames (onset strength).
    mel_win = _windows(log_mel, starts, length)
    if length > 1:
        flux = np.maximum(np.diff(mel_win, axis=-1), 0).mean(axis=0)  # (w, L-1)
    else:
        flux = np.zeros((len(starts), 1), np.float32)
    energy = _windows(power_db, starts, length)  # (w, L)
    lin = 10 ** (energy / 10)
    level_dbfs = 10 * np.log10(lin.mean(axis=-1) + _EPS)
    low_energy = np.mean(lin < 0.5 * lin.mean(axis=-1, keepdims=True), axis=-1)
    # Syllable-rate (3-6 Hz) share of the energy-envelope modulation spectrum.
    env = energy - energy.mean(axis=-1, keepdims=True)
    mod = np.abs(np.fft.rfft(env, axis=-1)) ** 2
    mod_hz = np.fft.rfftfreq(length, d=config.frame_hop / config.sample_rate_hz)
    band = (mod_hz >= 3) & (mod_hz <= 6)
    modulation = mod[:, band].sum(-1) / (mod[:, 1:].sum(-1) + _EPS)
    # Rhythmic regularity: best normalised autocorrelation of the flux at
    # beat-like lags (0.2-0.5 s); music is periodic, speech and ambience less.
    onset_periodicity = _periodicity(flux, config)
    # Sustained notes keep the spectral shape and pitch class from frame to
    # frame; syllables and noise bursts do not (sung vs spoken voice).
    if length > 1:
        shape = win[: config.n_mels]
        a, b = shape[..., :-1], shape[..., 1:]
        cosine = (a * b).sum(axis=0) / (np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0)) + _EPS)
        stationarity = cosine.mean(axis=-1)
        chroma_flux = np.abs(np.diff(chroma, axis=-1)).sum(axis=0).mean(axis=-1)
    else:
        stationarity = chroma_flux = np.zeros(len(starts), np.float32)
    # Key-invariant chroma: the window's pitch-class profile sorted by strength.
    chroma_sorted = -np.sort(-chroma.mean(axis=-1).T, axis=1)
    voicing = _voicing_stats(win[names.index("harmonicity")], win[names.index("flatness")],
                             _windows(frames.pitch_oct, starts, length), lin, mod, mod_hz, config)
    values = np.hstack(
        [
            mean,
            std,
            delta_std,
            flux.mean(axis=-1, keepdims=True),
            flux.std(axis=-1, keepdims=True),
            energy.std(axis=-1, keepdims=True) / 10,
            low_energy[:, None],
            modulation[:, None],
            onset_periodicity[:, None],
            stationarity[:, None],
            chroma_flux[:, None],
            chroma_sorted,
            voicing,
        ]
    ).astype(np.float32)
    assert values.shape[1] == len(_base_names(config)) == 2 * n_frame + config.n_mfcc + 8 + 12 + len(_VOICING_NAMES)
    return values, level_dbfs


def _voicing_stats(
    harmonicity: np.ndarray, log_flatness: np.ndarray, pitch_oct: np.ndarray, power: np.ndarray,
    modulation: np.ndarray, modulation_hz: np.ndarray, config: FeatureConfig,
) -> np.ndarray:
    """Voicing, pitch-contour and modulation descriptors, shape (w, len(_VOICING_NAMES)).

    Speech alternates voiced syllables and unvoiced gaps a few times a second
    and glides in pitch; held musical notes keep their pitch; rustling,
    typing, barking and rain are loud without being voiced. Inputs are
    windowed frame arrays of shape (w, L); ``power`` is linear frame power.
    """
    w, L = harmonicity.shape
    weights = power / (power.sum(axis=-1, keepdims=True) + _EPS)
    # What the loud frames sound like (the quiet ones of speech are pauses).
    harmonicity_loud = (harmonicity * weights).sum(axis=-1)
    flatness_loud = (log_flatness * weights).sum(axis=-1)
    ordered = np.sort(harmonicity, axis=-1)
    p10, p90 = ordered[:, round(0.1 * (L - 1))], ordered[:, round(0.9 * (L - 1))]
    voiced = harmonicity > _VOICED
    voiced_ratio = voiced.mean(axis=-1)
    span_s = L * config.frame_hop / config.sample_rate_hz
    changes_hz = np.abs(np.diff(voiced.astype(np.int8), axis=-1)).sum(axis=-1) / span_s
    n_voiced = voiced.sum(axis=-1)
    mean_pitch = (pitch_oct * voiced).sum(axis=-1) / np.maximum(n_voiced, 1)
    pitch_var = (((pitch_oct - mean_pitch[:, None]) ** 2) * voiced).sum(axis=-1) / np.maximum(n_voiced, 1)
    pitch_std = np.sqrt(pitch_var)
    pairs = voiced[:, 1:] & voiced[:, :-1]
    step = np.abs(np.diff(pitch_oct, axis=-1))
    n_pairs = np.maximum(pairs.sum(axis=-1), 1)
    steady = (pairs & (step < _STEADY_OCT)).sum(axis=-1) / n_pairs
    glide = (pairs & (step >= _STEADY_OCT) & (step < _GLIDE_OCT)).sum(axis=-1) / n_pairs
    total = modulation[:, 1:].sum(axis=-1) + _EPS
    slow = modulation[:, (modulation_hz >= 1) & (modulation_hz < 3)].sum(axis=-1) / total
    fast = modulation[:, (modulation_hz > 6) & (modulation_hz <= 12)].sum(axis=-1) / total
    return np.stack([harmonicity_loud, flatness_loud, p10, p90, voiced_ratio, changes_hz, pitch_std, steady,
                     glide, slow, fast], axis=1)


def _periodicity(flux: np.ndarray, config: FeatureConfig) -> np.ndarray:
    frame_s = config.frame_hop / config.sample_rate_hz
    lo, hi = round(0.2 / frame_s), round(0.5 / frame_s)
    n = flux.shape[-1]
    if n <= lo + 2:
        return np.zeros(flux.shape[0], np.float32)
    centred = flux - flux.mean(axis=-1, keepdims=True)
    spec = np.fft.rfft(centred, n=2 * n, axis=-1)
    acf = np.fft.irfft(np.abs(spec) ** 2, axis=-1)[:, : min(hi, n - 1) + 1]
    return acf[:, lo:].max(axis=-1) / (acf[:, 0] + _EPS)
