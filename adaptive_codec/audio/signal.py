"""In-memory audio: the array convention, channel policy, limits and validation.

Array convention
----------------
Audio is a float32 array shaped ``(channels, samples)``; functions that take
audio also accept a mono ``(samples,)`` array (or a torch tensor of either
shape) and treat it as one channel. Samples are nominally in [-1, 1]; louder
values are kept, not clipped, except when writing an integer PCM file.

Mono/stereo policy
------------------
* The codec decodes to the input's channel count, so stereo stays stereo
  (it codes two channels as mid/side, see :mod:`adaptive_codec.codec`; no
  silent downmix).
* The content classifier listens to the mono downmix (:func:`to_mono`), so all
  channels of a segment are routed to the same profile.
* At most :data:`MAX_CHANNELS` channels are accepted.

Sample rates
------------
Files keep their original sample rate as metadata
(:class:`~adaptive_codec.audio.files.AudioInfo`); the backbone runs at
:data:`INTERNAL_SAMPLE_RATE_HZ` and the codec resamples with
:func:`~adaptive_codec.audio.resampling.resample` on the way in and back to
the original rate on the way out.

Errors
------
Every problem with the input is an :class:`~adaptive_codec.errors.AudioError`
whose message names the file (if any) and the problem. Silence is valid input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptive_codec.errors import AudioError

__all__ = [
    "INTERNAL_SAMPLE_RATE_HZ",
    "MAX_CHANNELS",
    "MIN_SAMPLE_RATE_HZ",
    "MAX_SAMPLE_RATE_HZ",
    "as_channels_first",
    "validate_audio",
    "check_layout",
    "to_mono",
]

#: Sample rate the backbone codec runs at.
INTERNAL_SAMPLE_RATE_HZ = 24_000
#: More channels than this is almost certainly a transposed array or a
#: multitrack stem bundle; both are better rejected than coded slowly.
MAX_CHANNELS = 8
#: Below 8 kHz there is too little band for speech to survive a codec.
MIN_SAMPLE_RATE_HZ = 8_000
#: Highest rate libsndfile formats commonly use in practice (192 kHz masters).
MAX_SAMPLE_RATE_HZ = 192_000


def as_channels_first(audio: Any) -> np.ndarray:
    """Return ``audio`` as a float32 ``(channels, samples)`` NumPy array.

    Parameters
    ----------
    audio : np.ndarray or torch.Tensor [shape=(samples,) or (channels, samples)]
        Floating-point samples, or integer PCM (scaled to [-1, 1)).

    Returns
    -------
    np.ndarray [shape=(channels, samples), dtype=float32]
        A view when no conversion is needed.

    Raises
    ------
    AudioError
        Not 1-D or 2-D, or not a numeric dtype.
    """
    if hasattr(audio, "detach"):  # torch.Tensor without importing torch here
        audio = audio.detach().cpu().numpy()
    arr = np.asarray(audio)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    elif arr.ndim != 2:
        raise AudioError(
            f"audio must have shape (samples,) or (channels, samples), got {arr.shape}"
        )
    if np.issubdtype(arr.dtype, np.integer):
        # Integer PCM: full scale maps to 1.0 like soundfile does.
        arr = arr.astype(np.float32) / float(-np.iinfo(arr.dtype).min)
    elif not np.issubdtype(arr.dtype, np.floating):
        raise AudioError(f"audio must be floating point or integer PCM, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=False)


def validate_audio(audio: Any, sample_rate_hz: int, *, name: str | None = None) -> None:
    """Check that audio is something the codec accepts.

    Parameters
    ----------
    audio : np.ndarray or torch.Tensor [shape=(samples,) or (channels, samples)]
    sample_rate_hz : int
    name : str, optional
        File name or other label to put at the front of error messages.

    Raises
    ------
    AudioError
        Empty audio, NaN/inf samples, more than :data:`MAX_CHANNELS`
        channels, or a sample rate outside
        [:data:`MIN_SAMPLE_RATE_HZ`, :data:`MAX_SAMPLE_RATE_HZ`].
        All-zero (silent) audio is valid.
    """
    prefix = f"{name}: " if name else ""
    arr = as_channels_first(audio)
    channels, n_samples = arr.shape
    # More "channels" than samples is what a (samples, channels) array looks
    # like; a real 9-channel recording gets no such hint.
    hint = " (is the array transposed? expected (channels, samples))" if channels > n_samples else ""
    check_layout(channels, sample_rate_hz, name=name, hint=hint)
    if n_samples == 0:
        raise AudioError(f"{prefix}audio is empty (0 samples)")
    if not np.isfinite(arr).all():
        raise AudioError(f"{prefix}audio contains NaN or infinite samples")


def check_layout(channels: int, sample_rate_hz: int, *, name: str | None = None, hint: str = "") -> None:
    """Check a channel count and sample rate (a file's header, before any sample is read).

    Parameters
    ----------
    channels : int
    sample_rate_hz : int
    name : str, optional
        File name or other label to put at the front of error messages.
    hint : str
        Appended to the too-many-channels message (:func:`validate_audio`'s
        transposed-array hint).

    Raises
    ------
    AudioError
        No channels, more than :data:`MAX_CHANNELS`, or a rate outside
        [:data:`MIN_SAMPLE_RATE_HZ`, :data:`MAX_SAMPLE_RATE_HZ`].
    """
    prefix = f"{name}: " if name else ""
    if channels > MAX_CHANNELS:
        raise AudioError(f"{prefix}{channels} channels is more than the {MAX_CHANNELS} supported{hint}")
    if channels <= 0:
        raise AudioError(f"{prefix}audio is empty (0 channels)")
    if not (MIN_SAMPLE_RATE_HZ <= int(sample_rate_hz) <= MAX_SAMPLE_RATE_HZ):
        raise AudioError(
            f"{prefix}sample rate {sample_rate_hz} Hz is outside the supported range "
            f"{MIN_SAMPLE_RATE_HZ}-{MAX_SAMPLE_RATE_HZ} Hz"
        )


def to_mono(audio: Any) -> np.ndarray:
    """Average all channels (the classifier's view of a recording).

    Parameters
    ----------
    audio : np.ndarray or torch.Tensor [shape=(samples,) or (channels, samples)]

    Returns
    -------
    np.ndarray [shape=(samples,), dtype=float32]
    """
    arr = as_channels_first(audio)
    if arr.shape[0] == 1:
        return arr[0]
    return arr.mean(axis=0, dtype=np.float32)
