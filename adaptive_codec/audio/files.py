"""Audio files: reading (whole or block by block), writing (atomically) and metadata.

Every file is read at its original sample rate and channel count into the
array convention of :mod:`adaptive_codec.audio.signal` (float32
``(channels, samples)``) and validated there; :class:`AudioInfo` keeps what
the file held. Writers take the same arrays and never leave a half-written
file under the final name.

Errors
------
Every problem with a file is an :class:`~adaptive_codec.errors.AudioError`
whose message names the file and the problem (missing, unreadable,
truncated, NaN samples, too many channels, not a regular file, changed
while it was read, ...); a failed write names the output, never the
temporary file, and says why (e.g. "No space left on device"). Silence is
valid input.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from adaptive_codec.audio.signal import as_channels_first, check_layout, validate_audio
from adaptive_codec.errors import AudioError

__all__ = [
    "AUDIO_SUFFIXES",
    "AudioInfo",
    "audio_info",
    "load_audio",
    "iter_audio_blocks",
    "save_audio",
    "AudioWriter",
]

#: File suffixes the codec treats as audio when it expands folders (archive inputs,
#: training and benchmark corpora); anything libsndfile reads can still be named directly.
AUDIO_SUFFIXES: frozenset[str] = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au"})

# libsndfile's log says "data : 192000 (should be 95978)" when a WAV/AIFF
# header promises more bytes than the file holds.
_SHOULD_BE = re.compile(r"^\s*(\w+)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Streaming writers leave these placeholder sizes in headers; such files are
# not truncated, the writer just never went back to fill the size in.
_PLACEHOLDER_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}


@dataclass(frozen=True)
class AudioInfo:
    """What a file held before any conversion.

    Attributes
    ----------
    sample_rate_hz : int
        Original sample rate.
    channels : int
        Original channel count.
    n_samples : int
        Samples per channel.
    duration_s : float
        ``n_samples / sample_rate_hz``.
    format : str
        libsndfile container name, e.g. ``"WAV"``, ``"FLAC"``, ``"OGG"``.
    subtype : str
        libsndfile encoding, e.g. ``"PCM_16"``, ``"VORBIS"``, ``"OPUS"``.
    """

    sample_rate_hz: int
    channels: int
    n_samples: int
    duration_s: float
    format: str
    subtype: str


def _check_path(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        raise AudioError(f"{p}: no such file") from None
    except OSError as exc:
        raise AudioError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"{p}: is a directory, not an audio file")
    if not stat.S_ISREG(mode):
        # A pipe or device can be read only once (and opening a FIFO blocks
        # until someone writes to it); the encoder reads its input twice.
        raise AudioError(f"{p}: not a regular file (a pipe, device or socket); "
                         "save the audio to a file first")
    return p


def _system_reason(exc: BaseException) -> str:
    """libsndfile's reason for ``exc``, with the OS's words for its "System error."

    libsndfile reports every failed read or write of the OS as "System
    error."; the errno it saw is still in cffi's errno when the exception is
    raised, so a full disk says "No space left on device".
    """
    reason = str(exc).split(":", 1)[-1].strip() or "unknown error"
    if "System error" in reason:
        code = getattr(getattr(sf, "_ffi", None), "errno", 0)
        if code:
            return os.strerror(code)
    return reason


def _open(p: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(p)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        # libsndfile's own wording ("Format not recognised.") is useful, but
        # it repeats the path; keep only the reason.
        raise AudioError(f"{p}: not a readable audio file ({_system_reason(exc)})") from exc


def _stamp(p: Path) -> tuple[int, int, int, int]:
    """What identifies a file's contents cheaply: device, inode, size, modification time."""
    st = os.stat(p)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _truncation_problem(f: sf.SoundFile) -> str | None:
    """Return why libsndfile's log says the file is truncated, or None."""
    log = f.extra_info
    for chunk, declared, actual in _SHOULD_BE.findall(log):
        declared_i, actual_i = int(declared), int(actual)
        if declared_i not in _PLACEHOLDER_SIZES and actual_i < declared_i:
            return f"{chunk} chunk declares {declared_i} bytes but only {actual_i} are present"
    if "lacks an end-of-stream bit" in log:
        return "Ogg stream ends without its end-of-stream page"
    return None


def _check_complete(p: Path, f: sf.SoundFile, declared: int, n_read: int) -> None:
    """Raise AudioError if ``n_read`` decoded samples mean the file is truncated."""
    problem = _truncation_problem(f)
    # MP3 without a Xing/LAME header only has an estimated length; allow
    # it to be off by a few percent before calling the file truncated.
    expected = int(declared * 0.9) if f.format == "MP3" else declared
    if problem is None and 0 < expected and n_read < expected:
        problem = f"header declares {declared} samples but only {n_read} could be decoded"
    if problem is not None:
        raise AudioError(f"{p}: truncated audio file: {problem}")


def _info_from(f: sf.SoundFile, n_samples: int) -> AudioInfo:
    return AudioInfo(
        sample_rate_hz=int(f.samplerate),
        channels=int(f.channels),
        n_samples=int(n_samples),
        duration_s=n_samples / f.samplerate if f.samplerate else 0.0,
        format=str(f.format),
        subtype=str(f.subtype),
    )


def audio_info(path: str | os.PathLike[str]) -> AudioInfo:
    """Read a file's metadata without decoding its samples.

    Parameters
    ----------
    path : str or PathLike
        Any file libsndfile reads (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF, ...).

    Returns
    -------
    AudioInfo
        ``n_samples`` is what the header declares; :func:`load_audio` checks
        that the samples are really there.

    Raises
    ------
    AudioError
        Missing, unreadable or unsupported file; not a regular file; more
        channels or a sample rate outside what the codec accepts; no
        samples, or a header that promises more bytes than the file holds
        (decoding may find more truncation: :func:`load_audio`).
    """
    p = _check_path(path)
    with _open(p) as f:
        check_layout(f.channels, f.samplerate, name=str(p))
        # Both are known from the header alone: a command fails on them
        # before it loads a model, not after a first read of the file.
        if f.frames == 0:
            raise AudioError(f"{p}: audio is empty (0 samples)")
        problem = _truncation_problem(f)
        if problem is not None:
            raise AudioError(f"{p}: truncated audio file: {problem}")
        return _info_from(f, f.frames)


def load_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole file at its original sample rate and channel count.

    Parameters
    ----------
    path : str or PathLike
        Any file libsndfile reads (WAV, FLAC, Ogg Vorbis/Opus, MP3, AIFF, ...).

    Returns
    -------
    audio : np.ndarray [shape=(channels, samples), dtype=float32]
    info : AudioInfo
        Original sample rate, channels, length and encoding.

    Raises
    ------
    AudioError
        Missing, unreadable, corrupt, truncated or empty file, NaN/inf
        samples, too many channels or an unsupported sample rate.

    Notes
    -----
    The whole file is decoded into memory; use :func:`iter_audio_blocks` for
    long recordings.
    """
    p = _check_path(path)
    with _open(p) as f:
        check_layout(f.channels, f.samplerate, name=str(p))
        declared = f.frames
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise AudioError(f"{p}: corrupt or truncated audio ({_system_reason(exc)})") from exc
        _check_complete(p, f, declared, data.shape[0])
        info = _info_from(f, data.shape[0])
    audio = np.ascontiguousarray(data.T)
    validate_audio(audio, info.sample_rate_hz, name=str(p))
    return audio, info


def iter_audio_blocks(path: str | os.PathLike[str], block_samples: int) -> "AudioBlocks":
    """Decode a file block by block with bounded memory.

    Parameters
    ----------
    path : str or PathLike
        Audio file.
    block_samples : int
        Samples per channel in each block (the last block may be shorter).

    Returns
    -------
    AudioBlocks
        An iterator of np.ndarray [shape=(channels, <=block_samples), dtype=float32];
        its ``path`` names the file (the encoder's messages use it).

    Raises
    ------
    AudioError
        As :func:`load_audio` (missing file, bad channels or rate: at once);
        NaN/inf is checked per block, truncation and a file that changed
        while it was read after the last block (so the blocks before have
        been yielded).
    """
    return AudioBlocks(path, block_samples)


class AudioBlocks:
    """The blocks of one read of an audio file (:func:`iter_audio_blocks`).

    An iterator of float32 ``(channels, <=block_samples)`` arrays that knows
    the file it reads (``path``), so a later stage can name it, e.g. when
    the second of the encoder's two reads finds a different length.

    Parameters
    ----------
    path : str or PathLike
    block_samples : int

    Raises
    ------
    AudioError
        As :func:`iter_audio_blocks`.
    """

    def __init__(self, path: str | os.PathLike[str], block_samples: int) -> None:
        if block_samples <= 0:
            raise ValueError(f"block_samples must be positive, got {block_samples}")
        self.path = p = _check_path(path)
        # Checked now, not on the first next(): a 9-channel file fails
        # before the caller sets anything up for it.
        with _open(p) as f:
            check_layout(f.channels, f.samplerate, name=str(p))
            if f.frames == 0:
                raise AudioError(f"{p}: audio is empty (0 samples)")
        self._blocks = self._read(block_samples)

    def __iter__(self) -> "AudioBlocks":
        return self

    def __next__(self) -> np.ndarray:
        return next(self._blocks)

    def close(self) -> None:
        """Stop reading (closes the file)."""
        self._blocks.close()

    def _read(self, block_samples: int) -> Iterator[np.ndarray]:
        p = self.path
        before = _stamp(p)  # before opening: a file replaced after this is caught too
        with _open(p) as f:
            check_layout(f.channels, f.samplerate, name=str(p))  # the file may have been replaced
            declared = f.frames
            n_read = 0
            try:
                for block in f.blocks(blocksize=block_samples, dtype="float32", always_2d=True):
                    out = np.ascontiguousarray(block.T)
                    if not np.isfinite(out).all():
                        raise AudioError(f"{p}: audio contains NaN or infinite samples")
                    n_read += out.shape[1]
                    yield out
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise AudioError(f"{p}: corrupt or truncated audio ({_system_reason(exc)})") from exc
            if _stamp(p) != before:
                raise AudioError(f"{p}: the file changed while it was being read; "
                                 "encode a copy that nothing else writes to")
            _check_complete(p, f, declared, n_read)


def save_audio(
    path: str | os.PathLike[str],
    audio: Any,
    sample_rate_hz: int,
    *,
    subtype: str | None = None,
) -> Path:
    """Write audio atomically: to a temporary file beside ``path``, then rename.

    A crash or a full disk therefore never leaves a half-written file under
    the final name.

    Parameters
    ----------
    path : str or PathLike
        Destination; the container comes from the suffix (``.wav``, ``.flac``,
        ``.ogg``, ``.opus``, ``.mp3``, ...).
    audio : np.ndarray or torch.Tensor [shape=(samples,) or (channels, samples)]
    sample_rate_hz : int
    subtype : str, optional
        libsndfile subtype, e.g. ``"PCM_24"``; default: the container's
        default (PCM_16 for WAV/FLAC, Vorbis for ``.ogg``, Opus for ``.opus``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    AudioError
        Invalid audio, unknown container, or the writer failed.
    """
    p = Path(path)
    arr = as_channels_first(audio)
    validate_audio(arr, sample_rate_hz, name=str(p))
    with AudioWriter(p, sample_rate_hz, arr.shape[0], subtype=subtype) as writer:
        writer.write(arr)
    return p


class AudioWriter:
    """Write audio block by block, atomically: temporary file, renamed at the end.

    A context manager: the file appears under ``path`` only when the block
    exits without an exception; otherwise the partial file is removed.

    Parameters
    ----------
    path : str or PathLike
        Destination; the container comes from the suffix, as in :func:`save_audio`.
    sample_rate_hz : int
    channels : int
    subtype : str, optional
        libsndfile subtype; default: the container's default.

    Raises
    ------
    AudioError
        Unknown container, bad rate or channel count, or the writer failed.
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate_hz: int, channels: int, *,
                 subtype: str | None = None) -> None:
        self.path = p = Path(path)
        validate_audio(np.zeros((channels, 1), np.float32), sample_rate_hz, name=str(p))
        suffix = p.suffix.lower().lstrip(".")
        self._format = {"opus": "OGG", "oga": "OGG", "aif": "AIFF"}.get(suffix, suffix.upper())
        if suffix == "opus" and subtype is None:
            subtype = "OPUS"
        if self._format not in sf.available_formats():
            raise AudioError(f"{p}: unsupported output format {p.suffix!r}")
        effective = subtype or sf.default_subtype(self._format) or ""
        # libsndfile wraps around instead of clipping when converting loud
        # floats to integers; clip so a 1.01 peak does not become a click.
        self._clip = effective.startswith("PCM") or effective in ("ULAW", "ALAW")
        self.sample_rate_hz, self.channels, self._subtype = int(sample_rate_hz), int(channels), subtype
        self.samples_written = 0
        self._file: sf.SoundFile | None = None
        self._tmp: str | None = None

    def __enter__(self) -> "AudioWriter":
        p = self.path
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        except OSError as exc:
            # The temporary name would only confuse: say what could not be written.
            raise AudioError(f"{p}: could not write audio ({exc.strerror or exc})") from exc
        os.close(fd)
        try:
            self._file = sf.SoundFile(self._tmp, "w", samplerate=self.sample_rate_hz,
                                      channels=self.channels, format=self._format, subtype=self._subtype)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            os.unlink(self._tmp)
            raise AudioError(f"{p}: could not write audio ({_system_reason(exc)})") from exc
        return self

    def write(self, block: Any) -> None:
        """Append ``block`` ``(channels, samples)`` (or ``(samples,)`` for mono)."""
        arr = as_channels_first(block)
        if arr.shape[0] != self.channels:
            raise AudioError(f"{self.path}: block has {arr.shape[0]} channels, file has {self.channels}")
        if not np.isfinite(arr).all():
            raise AudioError(f"{self.path}: audio contains NaN or infinite samples")
        if self._clip:
            arr = np.clip(arr, -1.0, 1.0)
        try:
            self._file.write(arr.T)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            raise AudioError(f"{self.path}: could not write audio ({_system_reason(exc)})") from exc
        self.samples_written += arr.shape[1]

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._file.close()
            if exc_type is None:
                if self.samples_written == 0:
                    raise AudioError(f"{self.path}: audio is empty (0 samples)")
                # mkstemp creates the file private (0600); give it the mode a plain
                # open() would have, or keep the mode of the file being replaced.
                os.chmod(self._tmp, _mode_for(self.path))
                os.replace(self._tmp, self.path)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(f"{self.path}: could not write audio ({_system_reason(err)})") from err
        except OSError as err:
            raise AudioError(f"{self.path}: could not write audio ({err.strerror or err})") from err
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


def _mode_for(path: Path) -> int:
    """Permission bits for a new file at ``path``: existing file's, else umask's."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        pass
    umask = os.umask(0o022)  # reading the umask means setting it; put it back
    os.umask(umask)
    return 0o666 & ~umask
