"""Archive members: one function encodes a file into an ``.acx`` member and its metadata.

The serial and process-pool back ends (:mod:`adaptive_codec.archive.local`)
and the Dask back end (:mod:`adaptive_codec.archive.dask_backend`) all call
:func:`encode_member` (Dask's split long files run the same pipeline stages
piece by piece), so an archive is byte-identical whichever back end wrote it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import soundfile as sf

import adaptive_codec
from adaptive_codec.audio import AUDIO_SUFFIXES, MAX_CHANNELS, audio_info
from adaptive_codec.container.aca_names import normalize_member_name
from adaptive_codec.errors import AdaptiveCodecError, AudioError
from adaptive_codec.planning.rate import Rate
from adaptive_codec.threads import pin_threads

if TYPE_CHECKING:
    from adaptive_codec.codec import AdaptiveCodec

__all__ = ["expand_inputs", "probe_inputs", "worker_codec", "init_worker", "encode_member", "member_metadata", "flac_size_bytes",
           "FlacSizeCounter"]

#: This process's codecs by profile folders (a worker loads the weights once, not once per file).
_CODECS: dict[tuple[str, ...], "AdaptiveCodec"] = {}


def expand_inputs(inputs: Sequence[Path], recursive: bool) -> list[tuple[Path, str]]:
    """Audio files of ``inputs`` (files, and folders with ``recursive``) and their member names.

    A file becomes ``<stem>.acx``; a file found in a folder keeps its path
    below the folder's parent (``shows/ep1.flac`` -> ``shows/ep1.acx``).

    Raises
    ------
    AdaptiveCodecError
        A missing input, one that is no regular file (a FIFO), a folder
        without ``recursive``, no audio at all, a member name the archive
        format refuses (a component over 255 bytes, control characters), or
        two inputs with the same member name.
    """
    out = []
    for item in inputs:
        if item.is_dir():
            if not recursive:
                raise AdaptiveCodecError(f"{item} is a folder (use --recursive)")
            for f in sorted(item.rglob("*")):
                if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES:
                    rel = f.relative_to(item.parent).as_posix()
                    out.append((f, str(Path(rel).with_suffix(".acx").as_posix())))
        elif item.is_file():
            out.append((item, item.with_suffix(".acx").name))
        elif item.exists():  # a FIFO would block the reader, a device never ends
            raise AdaptiveCodecError(f"{item}: not a regular file")
        else:
            raise AdaptiveCodecError(f"{item}: no such file")
    for path, name in out:  # before any encoding: a name no extraction could write is refused now
        try:
            normalize_member_name(name)
        except AdaptiveCodecError as exc:
            raise AdaptiveCodecError(f"{path}: cannot be archived: {exc}") from None
    if not out:
        raise AdaptiveCodecError("no audio files to archive")
    names = [n for _, n in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AdaptiveCodecError(f"two inputs map to the member name {dupes[0]!r}")
    return out


def probe_inputs(files: Sequence[tuple[Path, str]]) -> None:
    """Read every input's header (rate, channels, length) before any model loads.

    A file the codec cannot take (corrupt, empty, 9+ channels, an odd rate)
    fails here in a fraction of a second, with the file named, instead of
    after the backbone has loaded and earlier members were encoded.

    Raises
    ------
    AudioError
        The first input whose header the codec refuses.
    """
    for path, _ in files:
        audio_info(path)


def worker_codec(profiles_dirs: Sequence[str]) -> "AdaptiveCodec":
    """This process's codec, loaded once per process and profile folders.

    Shared by Dask workers and the ``--jobs`` process pool of ``archive``.
    """
    key = tuple(str(d) for d in profiles_dirs)
    if key not in _CODECS:
        # adaptive_codec.AdaptiveCodec: the package's one lazy import of the codec (torch).
        _CODECS[key] = adaptive_codec.AdaptiveCodec.default(profiles_dirs=key)
    return _CODECS[key]


def init_worker(threads: int) -> None:
    """Set up an encoding process: ``threads`` torch threads (one per worker avoids oversubscription)."""
    pin_threads(threads)


def member_metadata(path: Path, info, plan, frame_rate_hz: float, audio=None) -> dict:
    """Archive metadata of one member (every mode: ``--jobs`` and Dask).

    With ``audio`` (float32 ``(channels, samples)``) the size of a 16-bit FLAC
    of the input is recorded too, the lossless reference `archive` reports.
    """
    total = sum(s.end_frame - s.start_frame for s in plan) or 1
    mix: dict[str, float] = {}
    for s in plan:
        mix[s.label] = mix.get(s.label, 0.0) + (s.end_frame - s.start_frame) / total
    # Routing, sample rate and channels are in the member's .acx header: the
    # archive index does not repeat them (container overhead, issue 6).
    meta = {"original_size_bytes": path.stat().st_size, "duration_s": info.duration_s,
            "class_mix": {label: round(share, 4) for label, share in mix.items()},
            "source_name": path.name}
    if audio is not None:
        meta["flac_size_bytes"] = flac_size_bytes(audio, info.sample_rate_hz)
    return meta


def flac_size_bytes(audio, sample_rate_hz: int) -> int:
    """Bytes of a 16-bit FLAC of ``audio`` ``(channels, samples)`` (libsndfile defaults)."""
    counter = FlacSizeCounter(sample_rate_hz, audio.shape[0])
    counter.write(audio)
    return counter.close()


class FlacSizeCounter:
    """Size of a 16-bit FLAC of audio given block by block, without keeping the bytes.

    Parameters
    ----------
    sample_rate_hz, channels : int
    """

    def __init__(self, sample_rate_hz: int, channels: int) -> None:
        self._sink = _CountingSink()
        self._file = sf.SoundFile(self._sink, "w", samplerate=int(sample_rate_hz), channels=int(channels),
                                  format="FLAC", subtype="PCM_16")

    def write(self, block) -> None:
        """Append ``block`` ``(channels, samples)``."""
        self._file.write(block.T)

    def close(self) -> int:
        """Finish the stream; returns its size in bytes."""
        self._file.close()
        return self._sink.size


class _CountingSink(io.RawIOBase):
    """A seekable binary sink that only records how far it was written."""

    def __init__(self) -> None:
        self.pos = 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True  # libsndfile's virtual I/O asks; FLAC writing never reads

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        self.pos += n
        self.size = max(self.size, self.pos)
        return n

    def read(self, n: int = -1) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.pos = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence] + offset
        return self.pos

    def tell(self) -> int:
        return self.pos


def encode_member(codec: "AdaptiveCodec", path: Path, profile: str, bitrate: float | Rate | None
                  ) -> tuple[bytes, dict]:
    """One archive member: ``.acx`` bytes and metadata of a file read block by block.

    The FLAC reference size is measured on the same read, so memory stays
    bounded by a block whatever the file's length (``--jobs`` and Dask).
    """
    before = _identity(path)
    info = audio_info(path)
    if info.channels > MAX_CHANNELS:  # checked before any buffer or FLAC writer is sized by it
        raise AudioError(f"{path}: {info.channels} channels is more than the {MAX_CHANNELS} supported")
    try:
        flac = FlacSizeCounter(info.sample_rate_hz, info.channels)
        buf = io.BytesIO()
        plan, info = codec.encode_file(buf, path, profile=profile, rate=Rate.of(bitrate), on_block=flac.write)
        meta = member_metadata(path, info, plan, codec.frame_rate_hz)
        meta["flac_size_bytes"] = flac.close()
    except AdaptiveCodecError as exc:
        if _identity(path) != before:
            raise AudioError(f"{path}: the file changed while it was being encoded") from exc
        if str(path) not in str(exc):  # name the input: the archive holds many
            raise AudioError(f"{path}: {exc}") if isinstance(exc, AudioError) else \
                AdaptiveCodecError(f"{path}: {exc}") from exc
        raise
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        # The encoder reads the file twice (analysis, then coding): a file
        # rewritten in between, or one libsndfile cannot write as FLAC.
        if _identity(path) != before:
            raise AudioError(f"{path}: the file changed while it was being encoded") from exc
        raise AudioError(f"{path}: could not be encoded ({exc})") from exc
    if _identity(path) != before:
        raise AudioError(f"{path}: the file changed while it was being encoded")
    return buf.getvalue(), meta


def _identity(path: Path) -> tuple[int, int, int, int]:
    """What changes when a file is rewritten: device, inode, size, modification time."""
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns
