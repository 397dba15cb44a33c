"""Content features for the speech / music / ambient classifier.

Every feature of a chunk is derived from ONE short-time Fourier transform at a
fixed internal analysis rate (16 kHz by default), so the features do not depend
on the file's sample rate and cost little. Frame-level descriptors (mel shape,
MFCC, spectral contrast, flatness, rolloff, harmonicity, ...) are summarised
per analysis window (~1 s, hop ~0.5 s) by their mean and standard deviation,
plus window-level descriptors: the chroma profile sorted by strength (tonal,
but key-invariant), envelope modulation in 1-3 / 3-6 / 6-12 Hz bands,
low-energy-frame ratio, spectral flux, voicing and pitch contour. Temporal
context adds their mean and std over neighbouring windows and the window's
level relative to its neighbours.

All descriptors are level-invariant on purpose: the same recording played
10 dB quieter must get the same label. The absolute level is returned
separately (``WindowFeatures.level_dbfs``) for the explicit silence gate.

Streaming: :func:`stream_window_features` takes blocks of audio and yields
features window by window with bounded memory. Every window only uses frames
that lie completely inside it, so the result does not depend on how the input
is cut into blocks; :func:`window_features` is the same code with one block.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from adaptive_codec.analysis.feature_dsp import _base_names, _frame_features, _window_stats
from adaptive_codec.audio import analysis_stream_resampler, audio_info, iter_audio_blocks

__all__ = [
    "FEATURE_VERSION",
    "FeatureConfig",
    "WindowFeatures",
    "feature_names",
    "file_window_features",
    "stream_window_features",
    "window_features",
]

#: Bumped whenever the meaning or order of the feature vector changes; a saved
#: classifier records it and refuses to load against a different version.
FEATURE_VERSION = 3


@dataclass(frozen=True)
class FeatureConfig:
    """Analysis parameters; stored with every classifier artifact.

    Parameters
    ----------
    sample_rate_hz : int
        Internal analysis rate; input is resampled to it (16 kHz keeps the
        bands that separate speech, music and ambience and halves the cost).
    window_s : float
        Length of one classification window in seconds.
    hop_s : float
        Step between windows in seconds (windows overlap when < window_s).
    n_fft : int
        STFT frame length in samples at the analysis rate (64 ms at 16 kHz:
        enough frequency resolution for chroma).
    frame_hop : int
        STFT hop in samples (20 ms at 16 kHz: fast enough for 4 Hz
        syllable-rate modulation); ``hop_s`` must be a multiple of it.
    n_mels : int
        Number of mel bands of the mel-shape statistics.
    n_mfcc : int
        Number of MFCCs, without c0 (c0 is the level).
    fmax_hz : float
        Every spectral feature ignores content above this frequency. Files
        reach us with very different band limits (16 kHz speech, resampled
        44.1 kHz music, MP3 low-passes); keeping clear of the analysis
        Nyquist stops the classifier from learning the band limit of its
        training sources instead of their content.
    contrast_fmin_hz : float
        Upper edge of the lowest spectral-contrast band (the others are
        octaves above it).
    contrast_bands : int
        Number of spectral-contrast octave bands (the top edge
        ``contrast_fmin_hz * 2**contrast_bands`` must not exceed ``fmax_hz``).
    context_windows : int
        Temporal context: every window also gets the mean and std of its
        features over this many neighbouring windows on each side (2: a 3 s
        span). One second is often ambiguous (a pause, a drum break, a bird
        call); the context cut grouped-CV errors by about half.
    """

    sample_rate_hz: int = 16000
    window_s: float = 1.0
    hop_s: float = 0.5
    n_fft: int = 1024
    frame_hop: int = 320
    n_mels: int = 40
    n_mfcc: int = 13
    fmax_hz: float = 7000.0
    contrast_fmin_hz: float = 100.0
    contrast_bands: int = 6
    context_windows: int = 2

    def __post_init__(self) -> None:
        if self.sample_rate_hz < 4000:
            raise ValueError(f"sample_rate_hz must be >= 4000, got {self.sample_rate_hz}")
        if not 0 < self.hop_s <= self.window_s:
            raise ValueError(f"need 0 < hop_s <= window_s, got hop_s={self.hop_s}, window_s={self.window_s}")
        if self.window_samples < self.n_fft:
            raise ValueError("window_s must be at least one STFT frame (n_fft samples)")
        for name, seconds in (("window_s", self.window_s), ("hop_s", self.hop_s)):
            samples = seconds * self.sample_rate_hz
            if abs(samples - round(samples)) > 1e-6 or round(samples) % self.frame_hop:
                raise ValueError(f"{name}={seconds} s is not a whole number of frame_hop={self.frame_hop} samples")
        if self.context_windows < 0:
            raise ValueError(f"context_windows must be >= 0, got {self.context_windows}")
        if not 1000 <= self.fmax_hz < self.sample_rate_hz / 2:
            raise ValueError(f"fmax_hz must be in [1000, sample_rate_hz / 2), got {self.fmax_hz}")
        if self.contrast_fmin_hz * 2**self.contrast_bands > self.fmax_hz:
            raise ValueError("contrast_fmin_hz * 2**contrast_bands must not exceed fmax_hz")

    @property
    def window_samples(self) -> int:
        """Window length in samples at the analysis rate."""
        return round(self.window_s * self.sample_rate_hz)

    @property
    def hop_samples(self) -> int:
        """Window hop in samples at the analysis rate."""
        return round(self.hop_s * self.sample_rate_hz)

    @property
    def frames_per_window(self) -> int:
        """STFT frames lying completely inside one window."""
        return (self.window_samples - self.n_fft) // self.frame_hop + 1

    def to_dict(self) -> dict:
        """Plain-JSON form (stored in classifier artifacts)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        return cls(**data)


@dataclass(frozen=True)
class WindowFeatures:
    """Features of consecutive analysis windows.

    Attributes
    ----------
    start_s : np.ndarray [shape=(n_windows,)]
        Start time of each window in seconds from the start of the input.
    end_s : np.ndarray [shape=(n_windows,)]
        End time of each window (``start_s + window_s``, or the end of the
        input when it is shorter than one window).
    values : np.ndarray [shape=(n_windows, n_features)], float32
        Level-invariant feature vectors, columns named by :func:`feature_names`.
    level_dbfs : np.ndarray [shape=(n_windows,)]
        Mean power of the window in dB relative to full scale (silence gate).
    """

    start_s: np.ndarray
    end_s: np.ndarray
    values: np.ndarray
    level_dbfs: np.ndarray

    def __len__(self) -> int:
        return len(self.start_s)

    @staticmethod
    def concatenate(parts: Iterable[WindowFeatures], n_features: int) -> WindowFeatures:
        """Join consecutive pieces (e.g. the blocks of a stream)."""
        parts = list(parts)
        if not parts:
            empty = np.zeros(0)
            return WindowFeatures(empty, empty, np.zeros((0, n_features), np.float32), empty)
        return WindowFeatures(
            np.concatenate([p.start_s for p in parts]),
            np.concatenate([p.end_s for p in parts]),
            np.concatenate([p.values for p in parts]),
            np.concatenate([p.level_dbfs for p in parts]),
        )


def feature_names(config: FeatureConfig = FeatureConfig()) -> list[str]:
    """Names of the columns of :attr:`WindowFeatures.values`.

    Parameters
    ----------
    config : FeatureConfig
        Analysis parameters (band counts change the length).

    Returns
    -------
    list of str [length=n_features]
    """
    base = _base_names(config)
    if config.context_windows == 0:
        return base
    return (base + [f"context_mean_{n}" for n in base] + [f"context_std_{n}" for n in base]
            + ["context_relative_level_db", "context_level_std_db"])


def _to_mono_float(block: np.ndarray) -> np.ndarray:
    """(samples,) or (channels, samples) -> float32 mono (channel mean)."""
    block = np.asarray(block, dtype=np.float32)
    if block.ndim == 2:
        block = block.mean(axis=0)
    elif block.ndim != 1:
        raise ValueError(f"audio must have shape (samples,) or (channels, samples), got {block.shape}")
    # Non-finite samples would poison every statistic of the window.
    return np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)


# Window levels below this count as this in the context level statistics
# (digital silence would otherwise dominate them).
_LEVEL_FLOOR_DBFS = -80.0


def _with_context(base: Iterable[WindowFeatures], k: int) -> Iterator[WindowFeatures]:
    """Append mean/std over +-k neighbouring windows to every window's features.

    Also the window's level relative to the context's mean level and the
    level's spread over the context (both in units of 10 dB, level-invariant):
    a pause in speech is far quieter than its neighbours, a stretch of
    ambience next to speech is not.

    A window is emitted once its k right neighbours are known (or the stream
    has ended), so the output does not depend on how the input was cut.
    Context is clipped at the start and end of the stream.
    """
    history = np.zeros((0, 0), np.float32)  # up to k windows already emitted (left context)
    pending: list[WindowFeatures] = []

    def flush(final: bool) -> Iterator[WindowFeatures]:
        nonlocal history, pending
        if not pending:
            return
        todo = WindowFeatures.concatenate(pending, pending[0].values.shape[1])
        n_emit = len(todo) if final else len(todo) - k
        if n_emit <= 0:
            return
        # The level rides along as a last column (then leaves as relative level).
        level = np.maximum(todo.level_dbfs, _LEVEL_FLOOR_DBFS)[:, None] / 10
        values_and_level = np.hstack([todo.values, level])
        left = history if len(history) else np.zeros((0, values_and_level.shape[1]), np.float32)
        full = np.concatenate([left, values_and_level]).astype(np.float64)
        rows = len(left) + np.arange(n_emit)
        lo, hi = np.maximum(rows - k, 0), np.minimum(rows + k + 1, len(full))
        zero = np.zeros((1, full.shape[1]))
        sum1 = np.concatenate([zero, np.cumsum(full, axis=0)])
        sum2 = np.concatenate([zero, np.cumsum(full**2, axis=0)])
        count = (hi - lo)[:, None]
        mean = (sum1[hi] - sum1[lo]) / count
        std = np.sqrt(np.maximum((sum2[hi] - sum2[lo]) / count - mean**2, 0.0))
        relative_level = level[:n_emit, 0] - mean[:, -1]
        values = np.hstack([todo.values[:n_emit], mean[:, :-1], std[:, :-1], relative_level[:, None],
                            std[:, -1:]]).astype(np.float32)
        yield WindowFeatures(todo.start_s[:n_emit], todo.end_s[:n_emit], values, todo.level_dbfs[:n_emit])
        history = full[: len(left) + n_emit][-k:].astype(np.float32) if k else history
        rest = slice(n_emit, None)
        pending = [WindowFeatures(todo.start_s[rest], todo.end_s[rest], todo.values[rest], todo.level_dbfs[rest])]

    for part in base:
        pending.append(part)
        yield from flush(final=False)
    yield from flush(final=True)


def stream_window_features(
    blocks: Iterable[np.ndarray], *, sample_rate_hz: int, config: FeatureConfig = FeatureConfig()
) -> Iterator[WindowFeatures]:
    """Features of a stream of audio blocks, window by window.

    Memory is bounded by one block plus one window, whatever the stream length.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(samples,) or (channels, samples)]
        Consecutive pieces of one recording at ``sample_rate_hz``.
    sample_rate_hz : int
        Sample rate of the blocks.
    config : FeatureConfig
        Analysis parameters.

    Yields
    ------
    WindowFeatures
        Features of the windows completed by each block (held back by
        ``config.context_windows`` windows for their right context). A stream
        shorter than one window yields a single window covering all of it.
    """
    base = _stream_base_features(blocks, sample_rate_hz=sample_rate_hz, config=config)
    if config.context_windows == 0:
        return base
    return _with_context(base, config.context_windows)


def _stream_base_features(
    blocks: Iterable[np.ndarray], *, sample_rate_hz: int, config: FeatureConfig
) -> Iterator[WindowFeatures]:
    """:func:`stream_window_features` without temporal context."""
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    resampler = None
    if sample_rate_hz != config.sample_rate_hz:
        resampler = analysis_stream_resampler(sample_rate_hz, config.sample_rate_hz)
    W, H, L = config.window_samples, config.hop_samples, config.frames_per_window
    hop_frames = H // config.frame_hop
    buffer = np.zeros(0, np.float32)
    consumed = 0  # analysis-rate samples dropped from the front of the buffer
    n_done = 0  # windows emitted so far

    def emit(last: bool) -> Iterator[WindowFeatures]:
        nonlocal buffer, consumed, n_done
        n_ready = (len(buffer) - W) // H + 1 if len(buffer) >= W else 0
        if n_ready > 0:
            used = (n_ready - 1) * H + W
            frames = _frame_features(buffer[:used], config)
            starts = np.arange(n_ready) * hop_frames
            values, level = _window_stats(frames, starts, L, config)
            start_s = (consumed + np.arange(n_ready) * H) / config.sample_rate_hz
            yield WindowFeatures(start_s, start_s + config.window_s, values, level)
            n_done += n_ready
            buffer = buffer[n_ready * H :]
            consumed += n_ready * H
        elif last and n_done == 0 and len(buffer) > 0:
            # Shorter than one window: one window over everything there is.
            short = np.pad(buffer, (0, max(0, config.n_fft - len(buffer))))
            frames = _frame_features(short, config)
            values, level = _window_stats(frames, np.array([0]), frames.values.shape[1], config)
            yield WindowFeatures(np.zeros(1), np.array([len(buffer) / config.sample_rate_hz]), values, level)
            n_done = 1

    for block in blocks:
        mono = _to_mono_float(block)
        if resampler is not None:
            mono = resampler.resample_chunk(mono, last=False)
        buffer = np.concatenate([buffer, mono])
        yield from emit(last=False)
    if resampler is not None:
        buffer = np.concatenate([buffer, resampler.resample_chunk(np.zeros(0, np.float32), last=True)])
    yield from emit(last=True)


def window_features(
    y: np.ndarray, *, sample_rate_hz: int, config: FeatureConfig = FeatureConfig()
) -> WindowFeatures:
    """Features of every analysis window of an in-memory signal.

    Parameters
    ----------
    y : np.ndarray [shape=(samples,) or (channels, samples)]
        Audio at ``sample_rate_hz`` (channels are averaged).
    sample_rate_hz : int
        Sample rate of ``y``.
    config : FeatureConfig
        Analysis parameters.

    Returns
    -------
    WindowFeatures
        ``values`` has shape (n_windows, len(feature_names(config))).
    """
    parts = stream_window_features([y], sample_rate_hz=sample_rate_hz, config=config)
    return WindowFeatures.concatenate(parts, len(feature_names(config)))


def file_window_features(
    path: str | os.PathLike[str],
    *,
    config: FeatureConfig = FeatureConfig(),
    block_s: float = 60.0,
    progress: Callable[[float], None] | None = None,
) -> WindowFeatures:
    """Features of an audio file, read in blocks (bounded memory).

    Parameters
    ----------
    path : str or os.PathLike
        Any file soundfile can read.
    config : FeatureConfig
        Analysis parameters.
    block_s : float
        Seconds of audio read per block.
    progress : callable, optional
        Called with the number of seconds processed after every block.

    Returns
    -------
    WindowFeatures

    Raises
    ------
    AudioError
        Missing, unreadable or corrupt file.
    """
    sr = audio_info(path).sample_rate_hz
    blocks = iter_audio_blocks(path, max(1, int(block_s * sr)))

    def reported() -> Iterator[np.ndarray]:
        for block in blocks:
            yield block
            # After the block's windows are done (the generator resumes here).
            if progress is not None:
                progress(block.shape[-1] / sr)

    parts = list(stream_window_features(reported(), sample_rate_hz=sr, config=config))
    return WindowFeatures.concatenate(parts, len(feature_names(config)))
