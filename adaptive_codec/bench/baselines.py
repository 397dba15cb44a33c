"""Reference codecs for the benchmark, behind one small interface.

A baseline codes **mono** float audio ``(samples,)`` at any sample rate and
returns the decoded signal at the same rate and length, plus the exact bytes
it would store. To add one, subclass :class:`Baseline`, implement
:meth:`~Baseline.encode` and :meth:`~Baseline.decode`, and add the class to
:data:`BASELINES` (an explicit registry: config files name its keys).

Sizes are those of a real file: Opus in an Ogg container (what ``opusenc``
or ffmpeg would write, pages and headers included), AAC-LC as an ADTS
stream, MP3 as FFmpeg's mp3 muxer writes it (LAME info frame included),
FLAC with its headers, Codec2's raw frame file.
"""

from __future__ import annotations

import fractions
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["BASELINES", "AacBaseline", "Baseline", "Codec2Baseline", "FlacBaseline", "Mp3Baseline",
           "OpusBaseline", "make_baseline"]


def _fit_length(x: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad ``x`` to ``n_samples``."""
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if x.size >= n_samples:
        return x[:n_samples]
    return np.concatenate([x, np.zeros(n_samples - x.size, np.float32)])


def _resample(x: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    from adaptive_codec.audio import resample

    return np.asarray(resample(np.asarray(x, np.float32), sr_from, sr_to), dtype=np.float32)


def _mux_mono(out, stream, x: np.ndarray, rate: int, block: int, fmt: str = "flt") -> None:
    """Encode mono float ``x`` [shape=(samples,)] at ``rate`` Hz in ``block``-sample frames into ``out``, then flush."""
    import av

    time_base = fractions.Fraction(1, rate)
    for start in range(0, x.size, block):
        chunk = np.ascontiguousarray(x[start:start + block][None, :], dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format=fmt, layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = time_base
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


class Baseline:
    """A reference codec.

    Attributes
    ----------
    name : str
        Key in :data:`BASELINES` and the ``system`` column of ``results.csv``.
    lossless : bool
        Codes losslessly (size reference only; the bitrate is ignored and the
        benchmark skips quality metrics for it).
    speech_only : bool
        Only meant for speech (run on clips labelled ``speech`` only).
    """

    name: str = "baseline"
    lossless: bool = False
    speech_only: bool = False

    def available(self) -> str | None:
        """``None`` when usable here, else a one-line reason (e.g. tool not installed)."""
        return None

    def encode(self, audio: np.ndarray, sample_rate_hz: int, bitrate_kbps: float | None) -> bytes:
        """Code mono ``audio`` [shape=(samples,)] at about ``bitrate_kbps`` (nominal); the stored bytes."""
        raise NotImplementedError

    def decode(self, data: bytes, sample_rate_hz: int, n_samples: int) -> np.ndarray:
        """Decode ``data`` to mono float32 [shape=(n_samples,)] at ``sample_rate_hz``."""
        raise NotImplementedError

    def encode_decode(self, audio: np.ndarray, sample_rate_hz: int,
                      bitrate_kbps: float | None) -> tuple[np.ndarray, int]:
        """Round trip: ``(decoded [shape=(samples,)], n_bytes)``."""
        data = self.encode(audio, sample_rate_hz, bitrate_kbps)
        return self.decode(data, sample_rate_hz, int(np.asarray(audio).size)), len(data)


class OpusBaseline(Baseline):
    """Opus (libopus through PyAV/FFmpeg) at 48 kHz in an Ogg container.

    Parameters
    ----------
    application : {"audio", "voip", "lowdelay"}
        libopus' tuning ("audio" is the general-purpose default).
    frame_duration_ms : float
        Opus frame length (2.5, 5, 10, 20, 40 or 60 ms).
    vbr : {"on", "off", "constrained"}
        "off" is hard CBR.

    Notes
    -----
    Input is resampled to 48 kHz (Opus' native rate) and the decoder's output
    back to the input rate. libopus' lowest useful rate is about 6 kbps: asked
    for less, it still spends about 4.5 kbps, which ``bitrate_kbps`` (from
    the bytes) shows. The Ogg pages add about 0.7 kbps at low rates, counted.
    """

    name = "opus"
    SAMPLE_RATE_HZ = 48_000

    APPLICATIONS = ("audio", "voip", "lowdelay")
    FRAME_DURATIONS_MS = (2.5, 5.0, 10.0, 20.0, 40.0, 60.0)
    VBR_MODES = ("on", "off", "constrained")

    def __init__(self, application: str = "audio", frame_duration_ms: float = 20.0,
                 vbr: str = "on") -> None:
        # Checked here so a bad [opus] table is a config error, not one error row per clip.
        if application not in self.APPLICATIONS:
            raise ValueError(f"application must be one of {', '.join(self.APPLICATIONS)}, "
                             f"got {application!r}")
        if frame_duration_ms not in self.FRAME_DURATIONS_MS:
            raise ValueError(f"frame_duration_ms must be one of "
                             f"{', '.join(f'{d:g}' for d in self.FRAME_DURATIONS_MS)}, "
                             f"got {frame_duration_ms!r}")
        if vbr not in self.VBR_MODES:
            raise ValueError(f"vbr must be one of {', '.join(self.VBR_MODES)}, got {vbr!r}")
        self.application = application
        self.frame_duration_ms = frame_duration_ms
        self.vbr = vbr

    def available(self) -> str | None:
        try:
            import av

            av.codec.Codec("libopus", "w")
        except Exception as exc:  # noqa: BLE001 - any import/codec failure means unavailable
            return f"PyAV with libopus not available ({exc}); install adaptive-codec[bench]"
        return None

    def encode(self, audio: np.ndarray, sample_rate_hz: int, bitrate_kbps: float | None) -> bytes:
        import av

        if bitrate_kbps is None:
            raise ValueError("opus needs a bitrate")
        x = _resample(audio, sample_rate_hz, self.SAMPLE_RATE_HZ)
        buf = io.BytesIO()
        with av.open(buf, "w", format="ogg") as out:
            stream = out.add_stream("libopus", rate=self.SAMPLE_RATE_HZ, layout="mono")
            stream.bit_rate = int(round(bitrate_kbps * 1000))
            stream.codec_context.options = {
                "application": self.application,
                "frame_duration": f"{self.frame_duration_ms:g}",
                "vbr": self.vbr,
            }
            _mux_mono(out, stream, x, self.SAMPLE_RATE_HZ, 960 * 50)  # 1 s blocks: the encoder re-frames
        return buf.getvalue()

    def decode(self, data: bytes, sample_rate_hz: int, n_samples: int) -> np.ndarray:
        import av

        parts = []
        with av.open(io.BytesIO(data), "r") as inp:
            for frame in inp.decode(audio=0):
                arr = frame.to_ndarray()
                # Planar (1, n) or packed (1, n * channels); mono either way.
                parts.append(arr.reshape(-1).astype(np.float32))
                rate = frame.sample_rate
        y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        # The demuxer has already dropped Opus' pre-skip: output is time-aligned.
        y = _fit_length(y, int(round(n_samples * rate / sample_rate_hz)))
        return _fit_length(_resample(y, rate, sample_rate_hz), n_samples)


class FlacBaseline(Baseline):
    """FLAC, 16-bit, at the input's rate (libsndfile): the lossless size reference."""

    name = "flac"
    lossless = True

    def encode(self, audio: np.ndarray, sample_rate_hz: int, bitrate_kbps: float | None) -> bytes:
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.clip(np.asarray(audio, np.float32), -1.0, 1.0), int(sample_rate_hz),
                 format="FLAC", subtype="PCM_16")
        return buf.getvalue()

    def decode(self, data: bytes, sample_rate_hz: int, n_samples: int) -> np.ndarray:
        import soundfile as sf

        y, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return _fit_length(y[:, 0], n_samples)


class Codec2Baseline(Baseline):
    """Codec2 (speech only, 8 kHz) through Debian's ``c2enc`` / ``c2dec`` tools.

    The mode is the highest Codec2 rate at or below the requested bitrate
    (the lowest mode when below all). Stores Codec2's raw frame file.
    Unavailable (skipped with a note) where the tools are not installed
    (``apt install codec2``).
    """

    name = "codec2"
    speech_only = True
    SAMPLE_RATE_HZ = 8_000
    MODES_BPS: tuple[tuple[int, str], ...] = (
        (3200, "3200"), (2400, "2400"), (1600, "1600"), (1400, "1400"),
        (1300, "1300"), (1200, "1200"), (700, "700C"), (450, "450"))

    def available(self) -> str | None:
        if not (shutil.which("c2enc") and shutil.which("c2dec")):
            return "codec2 tools c2enc/c2dec not installed (apt install codec2)"
        return None

    def mode_for(self, bitrate_kbps: float | None) -> str:
        """The Codec2 mode name used for ``bitrate_kbps``."""
        bps = 3200 if bitrate_kbps is None else bitrate_kbps * 1000
        for rate, mode in self.MODES_BPS:
            if rate <= bps:
                return mode
        return self.MODES_BPS[-1][1]

    def encode(self, audio: np.ndarray, sample_rate_hz: int, bitrate_kbps: float | None) -> bytes:
        x = _resample(audio, sample_rate_hz, self.SAMPLE_RATE_HZ)
        pcm = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
        self._mode = self.mode_for(bitrate_kbps)
        with tempfile.TemporaryDirectory() as tmp:
            raw, bits = Path(tmp) / "in.raw", Path(tmp) / "out.bit"
            raw.write_bytes(pcm.tobytes())
            subprocess.run(["c2enc", self._mode, str(raw), str(bits)], check=True,
                           capture_output=True)
            # The mode is needed to decode; keep it in one leading byte index.
            index = [m for _, m in self.MODES_BPS].index(self._mode)
            return bytes([index]) + bits.read_bytes()

    def decode(self, data: bytes, sample_rate_hz: int, n_samples: int) -> np.ndarray:
        mode = self.MODES_BPS[data[0]][1]
        with tempfile.TemporaryDirectory() as tmp:
            bits, raw = Path(tmp) / "in.bit", Path(tmp) / "out.raw"
            bits.write_bytes(data[1:])
            subprocess.run(["c2dec", mode, str(bits), str(raw)], check=True, capture_output=True)
            y = np.frombuffer(raw.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
        y = _fit_length(y, int(round(n_samples * self.SAMPLE_RATE_HZ / sample_rate_hz)))
        return _fit_length(_resample(y, self.SAMPLE_RATE_HZ, sample_rate_hz), n_samples)


def _lame_sample_rate(bitrate_kbps: float, input_rate_hz: int) -> int:
    """The MP3 sample rate LAME itself picks for a CBR ``bitrate_kbps`` (its ``optimum_samplefreq``).

    LAME derives a low-pass from the bitrate (its ``optimum_bandwidth`` table,
    interpolated) and takes the lowest MPEG rate that carries it; FFmpeg's
    libmp3lame wrapper does not resample, so the baseline does what the
    ``lame`` command line would.
    """
    kbps = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
    lowpass = (2000, 3700, 3900, 5500, 7000, 7500, 10000, 11000, 13500, 15100, 15600, 17000, 17500,
               18600, 19400, 19700, 20500)
    cut = float(np.interp(bitrate_kbps, kbps, lowpass))
    rate = 48_000
    for limit, candidate in ((15960, 44100), (15250, 32000), (11220, 24000), (9970, 22050), (7230, 16000),
                             (5420, 12000), (4510, 11025), (3970, 8000)):
        if cut <= limit:
            rate = candidate
    for candidate in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000):
        if min(rate, input_rate_hz) <= candidate:
            return candidate
    return 48_000


class _PyAVBaseline(Baseline):
    """A lossy codec of FFmpeg's through PyAV: mono, at a coding rate picked from the bitrate.

    Subclasses set the encoder, the container the bytes are stored in, and
    :meth:`coding_rate`. The decoder's output is resampled back to the input
    rate and aligned by dropping the encoder's priming samples.
    """

    encoder = ""
    container = ""

    def available(self) -> str | None:
        try:
            import av

            av.codec.Codec(self.encoder, "w")
        except Exception as exc:  # noqa: BLE001 - any import/codec failure means unavailable
            return f"PyAV with {self.encoder} not available ({exc}); install adaptive-codec[bench]"
        return None

    def coding_rate(self, bitrate_kbps: float, input_rate_hz: int) -> int:
        """The sample rate (Hz) the codec runs at for ``bitrate_kbps``."""
        raise NotImplementedError

    def encode(self, audio: np.ndarray, sample_rate_hz: int, bitrate_kbps: float | None) -> bytes:
        import av

        if bitrate_kbps is None:
            raise ValueError(f"{self.name} needs a bitrate")
        rate = self.coding_rate(bitrate_kbps, sample_rate_hz)
        x = _resample(audio, sample_rate_hz, rate)
        buf = io.BytesIO()
        with av.open(buf, "w", format=self.container) as out:
            stream = out.add_stream(self.encoder, rate=rate, layout="mono")
            stream.bit_rate = int(round(bitrate_kbps * 1000))
            ctx = stream.codec_context
            ctx.open()
            # These encoders take whole frames of their own size, in their own sample format.
            fmt = "flt" if ctx.format.name == "flt" else "fltp"
            frame_size = ctx.frame_size or 1152
            padded = np.concatenate([x, np.zeros(-x.size % frame_size, np.float32)])
            _mux_mono(out, stream, padded, rate, frame_size, fmt)
        # The coding rate leads the stored bytes (4 bytes): the decoder needs
        # it before it can size its output, as a file's header would carry it.
        return int(rate).to_bytes(4, "little") + buf.getvalue()

    def priming_samples(self, data: bytes) -> int:
        """Encoder delay (samples at the coding rate) the decoded stream starts with."""
        return 0

    def decode(self, data: bytes, sample_rate_hz: int, n_samples: int) -> np.ndarray:
        import av

        rate = int.from_bytes(data[:4], "little")
        parts = []
        with av.open(io.BytesIO(data[4:]), "r", format=self.container) as inp:
            for frame in inp.decode(audio=0):
                parts.append(frame.to_ndarray().reshape(-1).astype(np.float32))
                rate = frame.sample_rate
        y = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        y = y[self.priming_samples(data):]
        y = _fit_length(y, int(round(n_samples * rate / sample_rate_hz)))
        return _fit_length(_resample(y, rate, sample_rate_hz), n_samples)


class AacBaseline(_PyAVBaseline):
    """AAC-LC (FFmpeg's native ``aac`` encoder through PyAV) in an ADTS stream, as a ``.aac`` file stores it.

    Notes
    -----
    The coding rate follows the bitrate (16 kHz below 16 kbps, 24 kHz below
    32, 32 kHz below 48, the input's rate above), as AAC encoders' own
    presets do at low rates: at 6 kbps and 44.1 kHz the encoder would spend
    its bits on a band it then has to cut. The 1,024 priming samples FFmpeg's
    encoder starts with (ADTS has no field for them) are dropped on decoding.
    The 7-byte ADTS header of every 1,024-sample frame is counted.
    """

    name = "aac"
    encoder = "aac"
    container = "adts"
    PRIMING_SAMPLES = 1024

    def coding_rate(self, bitrate_kbps: float, input_rate_hz: int) -> int:
        for limit, rate in ((16, 16_000), (32, 24_000), (48, 32_000)):
            if bitrate_kbps < limit:
                return min(rate, int(input_rate_hz))
        return int(input_rate_hz)

    def priming_samples(self, data: bytes) -> int:
        return self.PRIMING_SAMPLES


class Mp3Baseline(_PyAVBaseline):
    """MP3 (LAME through PyAV's libmp3lame) at the sample rate LAME would pick for the bitrate.

    Notes
    -----
    The file is what FFmpeg's mp3 muxer writes, with LAME's info frame; the
    decoder skips the encoder delay the info frame records, so the output is
    time-aligned. MPEG-2.5 at 8 kHz bottoms out at 8 kbps: asked for less, it
    still spends 8 kbps, which ``bitrate_kbps`` (from the bytes) shows.
    """

    name = "mp3"
    encoder = "libmp3lame"
    container = "mp3"

    def coding_rate(self, bitrate_kbps: float, input_rate_hz: int) -> int:
        return _lame_sample_rate(bitrate_kbps, int(input_rate_hz))


#: Baselines by the name used in ``--baselines`` and config files.
BASELINES: dict[str, type[Baseline]] = {
    "opus": OpusBaseline,
    "flac": FlacBaseline,
    "codec2": Codec2Baseline,
    "aac": AacBaseline,
    "mp3": Mp3Baseline,
}


def make_baseline(name: str, options: dict | None = None) -> Baseline:
    """Instantiate a registered baseline; ``options`` are its constructor's keyword arguments."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return BASELINES[name](**(options or {}))
