"""Degradations of training audio: what archives hold, not what studios release.

The classifier must recognise speech, music and ambience after the things
that happen to real recordings on their way into an archive: another level,
a tilted spectrum (cheap microphones, loudspeakers), a telephone band
(300-3400 Hz, 8 kHz), a low-pass at 4, 8 or 11 kHz (old resampling, AM/FM
radio, low-rate codecs), a lossy round trip through MP3 or Opus at low
rates, background noise and room reverberation. :func:`degrade` applies a
random chain of two or three of these; :func:`augmented_copies` makes
several seeded copies of one clip, so a file's copies are the same on every
run (the feature cache relies on it).

Copies keep the clip's label and recording group: they are trained on,
never scored (flagged ``augmented``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import scipy.signal as sps
import soxr

__all__ = ["AUGMENT_VERSION", "OPERATIONS", "augmented_copies", "degrade"]

#: Bumped when an operation changes (part of the feature-cache key).
AUGMENT_VERSION = 2

_Op = Callable[[np.ndarray, int, np.random.Generator], tuple[np.ndarray, int, str]]


def _level(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    # Quieter copies only down to -20 dB: the silence gate (-60 dBFS) must not swallow them.
    gain_db = rng.uniform(-20.0, 3.0)
    return np.clip(x * 10 ** (gain_db / 20), -1.0, 1.0), sr, f"level {gain_db:+.0f} dB"


def _tilt(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    slope = rng.uniform(-4.0, 4.0)  # dB per octave around 1 kHz
    spectrum = np.fft.rfft(x)
    # Flat below 100 Hz and at most +-12 dB: a tilt, not a sub-bass boost.
    freqs = np.maximum(np.fft.rfftfreq(len(x), 1.0 / sr), 100.0)
    gain_db = np.clip(slope * np.log2(freqs / 1000.0), -12.0, 12.0)
    y = np.fft.irfft(spectrum * 10 ** (gain_db / 20), n=len(x))
    return y.astype(np.float32), sr, f"tilt {slope:+.1f} dB/oct"


def _telephone(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    sos = sps.butter(4, [300.0, min(3400.0, 0.45 * sr)], btype="bandpass", fs=sr, output="sos")
    y = sps.sosfilt(sos, x).astype(np.float32)
    return (soxr.resample(y, sr, 8000) if sr != 8000 else y), 8000, "telephone 300-3400 Hz"


def _lowpass(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    cutoffs = [c for c in (4000.0, 8000.0, 11000.0) if c < 0.45 * sr] or [0.4 * sr]
    cutoff = float(rng.choice(cutoffs))
    sos = sps.butter(8, cutoff, btype="lowpass", fs=sr, output="sos")
    return sps.sosfilt(sos, x).astype(np.float32), sr, f"low-pass {cutoff / 1000:.0f} kHz"


def _codec(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    # The benchmark's own Opus baseline (Ogg/libopus via PyAV) and an MP3 round trip via PyAV.
    from adaptive_codec.bench.baselines import OpusBaseline

    if rng.random() < 0.5:
        kbps = float(rng.choice([8.0, 12.0, 16.0, 24.0]))
        codec = OpusBaseline()
        y = codec.decode(codec.encode(x, sr, kbps), sr, len(x))
        return y.astype(np.float32), sr, f"opus {kbps:.0f} kbps"
    kbps = int(rng.choice([32, 48, 64]))
    return _mp3_round_trip(x, sr, kbps), sr, f"mp3 {kbps} kbps"


def _mp3_round_trip(x: np.ndarray, sr: int, kbps: int) -> np.ndarray:
    import fractions
    import io

    import av

    rate = 22050 if kbps < 48 else 44100  # LAME's usual rates for these bitrates
    y = soxr.resample(x, sr, rate) if sr != rate else x
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="mono")
        stream.bit_rate = kbps * 1000
        block = rate
        for start in range(0, len(y), block):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y[start:start + block][None, :],
                                                                    dtype=np.float32), format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = fractions.Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    parts = []
    with av.open(io.BytesIO(buf.getvalue()), "r") as inp:
        for frame in inp.decode(audio=0):
            parts.append(frame.to_ndarray().reshape(-1).astype(np.float32))
    decoded = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    decoded = soxr.resample(decoded, rate, sr) if sr != rate else decoded
    out_len = len(x)
    return np.pad(decoded[:out_len], (0, max(0, out_len - len(decoded)))).astype(np.float32)


def _noise(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    # Coloured Gaussian noise (white to brown) at 10-30 dB SNR: hiss, hum-free room noise, tape.
    snr_db = rng.uniform(10.0, 30.0)
    exponent = rng.uniform(0.0, 2.0)  # power spectrum ~ 1 / f^exponent
    spectrum = np.fft.rfft(rng.standard_normal(len(x)))
    freqs = np.maximum(np.fft.rfftfreq(len(x), 1.0 / sr), 20.0)
    noise = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=len(x))
    gain = np.sqrt(np.mean(x**2) / (np.mean(noise**2) + 1e-20) / 10 ** (snr_db / 10))
    return (x + gain * noise).astype(np.float32), sr, f"noise 1/f^{exponent:.1f} at {snr_db:.0f} dB SNR"


def _reverb(x: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, int, str]:
    # Exponentially decaying noise as a room response (RT60 0.2-1.2 s), mixed with the dry signal.
    rt60 = rng.uniform(0.2, 1.2)
    t = np.arange(int(rt60 * sr)) / sr
    response = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    response[0] = 0.0
    response /= np.sqrt(np.sum(response**2)) + 1e-12
    wet = sps.fftconvolve(x, response)[: len(x)]
    mix = rng.uniform(0.2, 0.7)
    y = (1 - mix) * x + mix * wet * np.sqrt(np.mean(x**2) / (np.mean(wet**2) + 1e-20))
    return y.astype(np.float32), sr, f"reverb RT60 {rt60:.1f} s, {mix:.0%} wet"


#: Name -> operation ``(audio, sample_rate_hz, rng) -> (audio, sample_rate_hz, description)``.
OPERATIONS: dict[str, _Op] = {
    "level": _level,
    "tilt": _tilt,
    "telephone": _telephone,
    "lowpass": _lowpass,
    "codec": _codec,
    "noise": _noise,
    "reverb": _reverb,
}
# Band limits and codecs go last: noise and reverb happen in the room, before the channel.
_ORDER = ("level", "tilt", "noise", "reverb", "lowpass", "codec", "telephone")


def degrade(audio: np.ndarray, sample_rate_hz: int, rng: np.random.Generator) -> tuple[np.ndarray, int, list[str]]:
    """Apply a random chain of two or three degradations.

    Parameters
    ----------
    audio : np.ndarray [shape=(samples,)], float32
        Mono audio in [-1, 1].
    sample_rate_hz : int
    rng : np.random.Generator

    Returns
    -------
    audio : np.ndarray [shape=(samples',)], float32
        The degraded audio (fewer samples when resampled to 8 kHz).
    sample_rate_hz : int
        Its rate (8000 after the telephone band, else unchanged).
    steps : list of str
        What was done, in order.
    """
    chosen = set(rng.choice(len(_ORDER), size=int(rng.integers(2, 4)), replace=False))
    if {_ORDER.index("telephone"), _ORDER.index("lowpass")} <= chosen:
        chosen.discard(_ORDER.index("lowpass"))  # the telephone band is already narrower
    x, sr, steps = np.asarray(audio, dtype=np.float32), int(sample_rate_hz), []
    for i, name in enumerate(_ORDER):
        if i in chosen and len(x):
            x, sr, step = OPERATIONS[name](x, sr, rng)
            steps.append(step)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 1.0:  # reverb and tilt can push peaks over full scale; a real chain would limit
        x = x / peak
    return x.astype(np.float32), sr, steps


def augmented_copies(audio: np.ndarray, sample_rate_hz: int, n_copies: int, seed_text: str
                     ) -> list[tuple[np.ndarray, int, list[str]]]:
    """``n_copies`` degraded copies of one clip, seeded by ``seed_text`` (e.g. its path).

    Returns
    -------
    list of (audio, sample_rate_hz, steps)
        As :func:`degrade` returns them.
    """
    seed = int.from_bytes(hashlib.sha1(seed_text.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    return [degrade(audio, sample_rate_hz, rng) for _ in range(n_copies)]
