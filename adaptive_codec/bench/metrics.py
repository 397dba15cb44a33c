"""Quality metrics between a reference and a decoded signal.

Every function takes two 1-D float arrays of the same length (mono; the
caller aligns and trims) and the sample rate in Hz, and resamples internally
to the rate its metric is defined at. Each docstring gives the range and the
unit. Implementations come from maintained packages where they exist
(``visqol-python``, ``pesq``, ``pystoi``, ``pyloudnorm``: the ``bench``
extra); the spectral distances and SI-SDR are ours and are tested against
hand-checked values.

Which metric to steer by: PESQ-WB / STOI for speech and ViSQOL for every
class. SI-SDR is close to meaningless for generative codecs at low rates
(a codec that gets the phase wrong scores very low), and a log-mel distance
with a tiny absolute floor rewards matching near-silent cells, so the mel
distance here is floored relative to the reference's peak.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from adaptive_codec.audio import INTERNAL_SAMPLE_RATE_HZ, resample

__all__ = [
    "METRICS",
    "Metric",
    "loudness_diff_lu",
    "mel_distance_db",
    "pesq_wb",
    "si_sdr_db",
    "stft_distance",
    "stoi",
    "visqol",
]

VISQOL_SAMPLE_RATE_HZ = 48_000  # ViSQOL v3 audio mode is defined at 48 kHz
SPEECH_SAMPLE_RATE_HZ = 16_000  # PESQ wide-band and our STOI input
ANALYSIS_SAMPLE_RATE_HZ = INTERNAL_SAMPLE_RATE_HZ  # mel / STFT distances: the codec's internal rate


def _mono(x: np.ndarray) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"metrics take mono 1-D signals, got shape {arr.shape}")
    return arr


def _pair(reference: np.ndarray, degraded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, deg = _mono(reference), _mono(degraded)
    if ref.shape != deg.shape:
        raise ValueError(f"reference and degraded lengths differ: {ref.size} vs {deg.size}")
    return ref, deg


def _resampled(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    return np.asarray(resample(x.astype(np.float32), sr_from, sr_to), dtype=np.float64)


# -- ViSQOL -------------------------------------------------------------------

_VISQOL_API = None


def _visqol_api():
    global _VISQOL_API
    if _VISQOL_API is None:
        from visqol import VisqolApi  # optional (the bench extra): imported when first scored

        api = VisqolApi()
        api.create(mode="audio")
        _VISQOL_API = api
    return _VISQOL_API


def visqol(reference: np.ndarray, degraded: np.ndarray, sample_rate_hz: int) -> float:
    """ViSQOL v3 MOS-LQO in **audio mode** at 48 kHz (``visqol-python``).

    Range about 1 (bad) to 4.73 (the score of identical signals); higher is
    better. Both signals are resampled to 48 kHz. Audio mode is used for every
    class: the package's speech mode without its optional lattice model
    over-predicts MOS by 1-2 points on degraded speech.
    """
    ref, deg = _pair(reference, degraded)
    ref = _resampled(ref, sample_rate_hz, VISQOL_SAMPLE_RATE_HZ)
    deg = _resampled(deg, sample_rate_hz, VISQOL_SAMPLE_RATE_HZ)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_visqol_api().measure_from_arrays(ref, deg, VISQOL_SAMPLE_RATE_HZ).moslqo)


# -- speech metrics -------------------------------------------------------------


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sample_rate_hz: int) -> float:
    """PESQ wide-band MOS-LQO (ITU-T P.862.2, ``pesq`` package) at 16 kHz.

    Range 1.04 to 4.64; higher is better. Meaningful for speech only. Returns
    NaN when PESQ finds no utterance (e.g. silence).
    """
    from pesq import PesqError, pesq  # optional (the bench extra)

    ref, deg = _pair(reference, degraded)
    ref = _resampled(ref, sample_rate_hz, SPEECH_SAMPLE_RATE_HZ)
    deg = _resampled(deg, sample_rate_hz, SPEECH_SAMPLE_RATE_HZ)
    try:
        return float(pesq(SPEECH_SAMPLE_RATE_HZ, ref, deg, "wb"))
    except (PesqError, ValueError):
        return math.nan


def stoi(reference: np.ndarray, degraded: np.ndarray, sample_rate_hz: int) -> float:
    """Short-time objective intelligibility (``pystoi``, classic STOI).

    Range 0 to 1 (identical signals: 1); higher is better. Meaningful for
    speech only. Computed from 16 kHz signals (pystoi works at 10 kHz inside).
    """
    from pystoi import stoi as _stoi  # optional (the bench extra)

    ref, deg = _pair(reference, degraded)
    ref = _resampled(ref, sample_rate_hz, SPEECH_SAMPLE_RATE_HZ)
    deg = _resampled(deg, sample_rate_hz, SPEECH_SAMPLE_RATE_HZ)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(_stoi(ref, deg, SPEECH_SAMPLE_RATE_HZ, extended=False))


# -- spectral distances -----------------------------------------------------------

#: (n_fft, n_mels) of the multi-scale mel distance; hop is n_fft / 4.
MEL_SCALES: tuple[tuple[int, int], ...] = ((512, 64), (1024, 80), (2048, 128))
#: n_fft of the multi-resolution STFT distance; hop is n_fft / 4.
STFT_SCALES: tuple[int, ...] = (512, 1024, 2048)


def mel_distance_db(reference: np.ndarray, degraded: np.ndarray, sample_rate_hz: int,
                    *, floor_db: float = 60.0) -> float:
    """Multi-scale log-mel distance in dB, floored relative to the reference's peak.

    For each of :data:`MEL_SCALES` (at 24 kHz, Hann windows, power mel
    spectrogram), the mean over all time-frequency cells of
    ``|10 log10(D + f) - 10 log10(R + f)|`` where ``f`` is the reference's
    loudest cell ``floor_db`` dB down; the result is the mean over scales.
    Range 0 (identical) upwards, in dB; lower is better. The relative floor
    keeps near-silent cells (where any codec "matches" noise) from dominating.
    """
    import torch  # heavy: keeps `import adaptive_codec.bench.metrics` torch-free
    import torchaudio

    ref, deg = _pair(reference, degraded)
    ref = _resampled(ref, sample_rate_hz, ANALYSIS_SAMPLE_RATE_HZ)
    deg = _resampled(deg, sample_rate_hz, ANALYSIS_SAMPLE_RATE_HZ)
    r, d = torch.from_numpy(ref), torch.from_numpy(deg)
    total = 0.0
    for n_fft, n_mels in MEL_SCALES:
        mel = torchaudio.transforms.MelSpectrogram(
            ANALYSIS_SAMPLE_RATE_HZ, n_fft=n_fft, hop_length=n_fft // 4, n_mels=n_mels,
            power=2.0).double()
        m_ref, m_deg = mel(r), mel(d)
        floor = float(m_ref.max()) * 10 ** (-floor_db / 10) + 1e-20
        total += float((10 * (torch.log10(m_deg + floor) - torch.log10(m_ref + floor))).abs().mean())
    return total / len(MEL_SCALES)


def stft_distance(reference: np.ndarray, degraded: np.ndarray, sample_rate_hz: int) -> float:
    """Multi-resolution STFT spectral convergence (unitless).

    For each of :data:`STFT_SCALES` (at 24 kHz, Hann windows):
    ``|| |D| - |R| ||_F / || |R| ||_F`` over magnitude spectrograms; the mean
    over scales. 0 for identical signals, 1 for a silent output; lower is
    better. Dominated by the loud cells, the complement of the mel distance.
    Returns NaN for a silent reference.
    """
    import torch  # heavy, as in mel_distance_db

    ref, deg = _pair(reference, degraded)
    ref = _resampled(ref, sample_rate_hz, ANALYSIS_SAMPLE_RATE_HZ)
    deg = _resampled(deg, sample_rate_hz, ANALYSIS_SAMPLE_RATE_HZ)
    r, d = torch.from_numpy(ref), torch.from_numpy(deg)
    values = []
    for n_fft in STFT_SCALES:
        win = torch.hann_window(n_fft, dtype=torch.float64)
        s_ref = torch.stft(r, n_fft, n_fft // 4, window=win, return_complex=True).abs()
        s_deg = torch.stft(d, n_fft, n_fft // 4, window=win, return_complex=True).abs()
        norm = float(torch.linalg.norm(s_ref))
        if norm == 0.0:
            return math.nan
        values.append(float(torch.linalg.norm(s_deg - s_ref)) / norm)
    return float(np.mean(values))


# -- waveform and level ------------------------------------------------------------


def si_sdr_db(reference: np.ndarray, degraded: np.ndarray, sample_rate_hz: int | None = None) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019).

    ``10 log10(||a r||^2 / ||a r - d||^2)`` with ``a = <d, r> / ||r||^2``
    (no mean removal). Higher is better; capped at 100 dB for (near)
    identical signals; NaN for a silent reference. ``sample_rate_hz`` is
    unused (kept for a uniform signature). Near meaningless for generative
    codecs at low rates: report it, don't steer by it.
    """
    ref, deg = _pair(reference, degraded)
    energy = float(ref @ ref)
    if energy == 0.0:
        return math.nan
    target = (float(deg @ ref) / energy) * ref
    noise = float(((deg - target) ** 2).sum())
    signal = float((target**2).sum())
    if noise <= signal * 1e-10:
        return 100.0
    if signal == 0.0:
        return -100.0
    return float(10 * math.log10(signal / noise))


def loudness_diff_lu(reference: np.ndarray, degraded: np.ndarray, sample_rate_hz: int) -> float:
    """Integrated loudness of the decoded minus the reference's, in LU (dB).

    ITU-R BS.1770-4 integrated loudness (``pyloudnorm``). 0 is ideal; negative
    means the codec made it quieter. NaN when either signal is too short
    (< 0.4 s) or silent (gated out).
    """
    import pyloudnorm  # optional (the bench extra)

    ref, deg = _pair(reference, degraded)
    if ref.size < int(0.4 * sample_rate_hz):
        return math.nan
    meter = pyloudnorm.Meter(sample_rate_hz)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a, b = meter.integrated_loudness(ref), meter.integrated_loudness(deg)
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return float(b - a)


# -- registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A metric as the benchmark uses it.

    Attributes
    ----------
    column : str
        Column name in ``results.csv`` (carries the unit).
    function : callable
        ``function(reference, degraded, sample_rate_hz) -> float``.
    higher_is_better : bool
    speech_only : bool
        Scored only on clips labelled ``speech`` (PESQ, STOI).
    description : str
    """

    column: str
    function: Callable[[np.ndarray, np.ndarray, int], float]
    higher_is_better: bool
    speech_only: bool
    description: str


#: Every metric by its config name (explicit registry; config files name keys of this dict).
METRICS: dict[str, Metric] = {
    "visqol": Metric("visqol", visqol, True, False, "ViSQOL v3 audio mode MOS-LQO (1-4.73)"),
    "pesq_wb": Metric("pesq_wb", pesq_wb, True, True, "PESQ-WB MOS-LQO (1.04-4.64), speech"),
    "stoi": Metric("stoi", stoi, True, True, "STOI (0-1), speech"),
    "mel_distance": Metric("mel_distance_db", mel_distance_db, False, False,
                           "multi-scale log-mel distance, floor 60 dB below peak (dB)"),
    "stft_distance": Metric("stft_distance", stft_distance, False, False,
                            "multi-resolution STFT spectral convergence (0 = identical)"),
    "si_sdr": Metric("si_sdr_db", si_sdr_db, True, False, "SI-SDR (dB)"),
    "loudness_diff": Metric("loudness_diff_lu", loudness_diff_lu, False, False,
                            "integrated loudness decoded - reference (LU; 0 ideal)"),
}
