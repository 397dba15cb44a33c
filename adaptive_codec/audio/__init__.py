"""Audio stage: files in and out, the in-memory array convention, resampling.

The first stage of the pipeline and its public names; the modules hold one
idea each:

* :mod:`~adaptive_codec.audio.files`: read (whole or in blocks), write
  (atomically), :class:`AudioInfo`, :data:`AUDIO_SUFFIXES`.
* :mod:`~adaptive_codec.audio.signal`: the ``(channels, samples)`` float32
  convention, validation, mono downmix, limits, :data:`INTERNAL_SAMPLE_RATE_HZ`.
* :mod:`~adaptive_codec.audio.resampling`: every resampler the package uses.

Importing it stays light (NumPy, soundfile, soxr; torch loads on first use).
"""

from adaptive_codec.audio.files import (
    AUDIO_SUFFIXES,
    AudioInfo,
    AudioWriter,
    audio_info,
    iter_audio_blocks,
    load_audio,
    save_audio,
)
from adaptive_codec.audio.resampling import (
    StreamResampler,
    analysis_stream_resampler,
    resample,
    resample_for_analysis,
    resample_for_training,
    resample_signal,
)
from adaptive_codec.audio.signal import (
    INTERNAL_SAMPLE_RATE_HZ,
    MAX_CHANNELS,
    MAX_SAMPLE_RATE_HZ,
    MIN_SAMPLE_RATE_HZ,
    as_channels_first,
    to_mono,
    validate_audio,
)

__all__ = [
    # files
    "AUDIO_SUFFIXES",
    "AudioInfo",
    "AudioWriter",
    "audio_info",
    "iter_audio_blocks",
    "load_audio",
    "save_audio",
    # arrays
    "INTERNAL_SAMPLE_RATE_HZ",
    "MAX_CHANNELS",
    "MIN_SAMPLE_RATE_HZ",
    "MAX_SAMPLE_RATE_HZ",
    "as_channels_first",
    "to_mono",
    "validate_audio",
    # resampling
    "StreamResampler",
    "analysis_stream_resampler",
    "resample",
    "resample_for_analysis",
    "resample_for_training",
    "resample_signal",
]
