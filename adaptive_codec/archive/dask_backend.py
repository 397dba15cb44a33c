"""Dask back end for archives at cluster scale (``archive create --scheduler``).

The client expands the inputs, submits one task per file and writes the
archive itself (atomically, members in input order); workers return encoded
``.acx`` bytes. A file longer than one processing piece
(:data:`~adaptive_codec.backbone.streaming.CHUNK_FRAMES` frames, 18 s) whose
single task would leave workers idle (few long files) is split so that its
pieces run on several workers at once:

1. ``_prepare_long`` (one task) loads, classifies and resamples the file and
   records exactly the tensors that single-process encoding would feed the
   backbone, piece by piece (through :class:`_PieceBackbone`, which stands in
   for the backbone inside :meth:`AdaptiveCodec.encode_to`);
2. ``_encode_pieces`` (one task per group of consecutive pieces) runs the
   backbone on recorded pieces; a file gets about as many groups as its share
   of the work in worker slots (two tasks per slot in all), so few long files
   keep many workers busy without flooding the scheduler;
3. ``_assemble_long`` runs :meth:`AdaptiveCodec.encode_to` again with the
   recorded plan (no classification) and the pieces' codes replayed in order.

Pieces are aligned with the bitstream's chunks and are the same tensors as in
single-process mode, so the archive is byte-identical to ``--jobs 1`` (on the
same machine type). Codec errors (a corrupt file) fail only their file, are
not retried and are reported; other exceptions are retried ``retries`` times,
and tasks of a worker that dies are rescheduled by Dask.
"""

from __future__ import annotations

import copy
import io
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.planning.rate import Rate, rate_kwargs

#: Memory limit of each worker of a LocalCluster (Dask pauses, then restarts, a worker above it).
DEFAULT_MEMORY_LIMIT = "3GiB"
#: Times a task that raised something other than a codec error is retried.
DEFAULT_RETRIES = 2
#: Dask config that stops nannies from exporting ``MALLOC_TRIM_THRESHOLD_`` to workers:
#: setting it turns off glibc's dynamic mmap threshold, so every large torch
#: tensor is mmap'ed and unmapped again, which made the codec 2x slower in workers.
TORCH_FRIENDLY_DASK_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


@dataclass(frozen=True)
class TaskError:
    """A codec error raised in a task, returned instead of raised (never retried)."""

    message: str


@dataclass
class FileFailure:
    """An input that could not be encoded (reported and skipped)."""

    path: Path
    name: str
    message: str


# -- cluster -------------------------------------------------------------------

@contextmanager
def dask_client(scheduler: str = "local", workers: int | None = None,
                memory_limit: str = DEFAULT_MEMORY_LIMIT, processes: bool = True) -> Iterator[Any]:
    """A Dask client: a new ``LocalCluster`` for ``"local"``, else a scheduler address.

    Parameters
    ----------
    scheduler : str
        ``"local"`` or an address such as ``tcp://10.0.0.5:8786``.
    workers : int, optional
        Workers of the local cluster (default: CPU count); one thread each,
        since the codec runs one torch thread per worker.
    memory_limit : str
        Per-worker memory limit of the local cluster.
    processes : bool
        Workers as processes (default) or threads of this process.

    Notes
    -----
    Local worker processes start without ``MALLOC_TRIM_THRESHOLD_`` (see
    :data:`TORCH_FRIENDLY_DASK_CONFIG`); workers of an existing cluster get
    whatever their nanny's configuration says (docs/SCALING.md).
    """
    import dask
    from distributed import Client, LocalCluster

    if scheduler == "local":
        n = workers or os.cpu_count() or 1
        with dask.config.set(TORCH_FRIENDLY_DASK_CONFIG), \
                LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                             memory_limit=memory_limit, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            yield client
    else:
        with Client(scheduler) as client:
            yield client


# -- worker side -----------------------------------------------------------------

_CODECS: dict[tuple[str, ...], Any] = {}


def cached_codec(profiles_dirs: Sequence[str]):
    """This process's codec, loaded once per process and profile folders.

    Shared by Dask workers and the ``--jobs`` process pool of ``archive``.
    """
    from adaptive_codec.codec import AdaptiveCodec

    key = tuple(str(d) for d in profiles_dirs)
    if key not in _CODECS:
        _CODECS[key] = AdaptiveCodec.default(profiles_dirs=key)
    return _CODECS[key]


def _codec(profiles_dirs: Sequence[str]):
    """The Dask worker's codec, on one thread."""
    import torch

    torch.set_num_threads(1)  # one worker = one thread; oversubscription is 10x slower
    return cached_codec(profiles_dirs)


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
        import soundfile as sf

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


def encode_member(codec, path: Path, profile: str, bitrate: float | Rate | None) -> tuple[bytes, dict]:
    """One archive member: ``.acx`` bytes and metadata of a file read block by block.

    The FLAC reference size is measured on the same read, so memory stays
    bounded by a block whatever the file's length (``--jobs`` and Dask).
    """
    from adaptive_codec.audio.files import audio_info

    info = audio_info(path)
    flac = FlacSizeCounter(info.sample_rate_hz, info.channels)
    buf = io.BytesIO()
    plan, info = codec.encode_file(buf, path, profile=profile, **rate_kwargs(bitrate), on_block=flac.write)
    meta = member_metadata(path, info, plan, codec.frame_rate_hz)
    meta["flac_size_bytes"] = flac.close()
    return buf.getvalue(), meta


def _encode_file(path: Path, profile: str, bitrate: float | Rate | None,
                 profiles_dirs: Sequence[str]) -> tuple[bytes, dict] | TaskError:
    """Task: one whole file → (``.acx`` bytes, metadata)."""
    try:
        return encode_member(_codec(profiles_dirs), path, profile, bitrate)
    except AdaptiveCodecError as exc:
        return TaskError(str(exc))


class _PieceBackbone:
    """Stands in for the backbone in ``encode_to``: records or replays ``encode_codes``.

    Parameters
    ----------
    real : Backbone
        Everything but ``encode_codes`` is delegated to it.
    replay : list of (torch.Tensor, torch.Tensor), optional
        Codes and frame log-energies to return, in call order; without it,
        calls are recorded as ``(audio (1, samples), cond (1, frames, cond_dim),
        n_q)`` and zeros returned.
    """

    def __init__(self, real, replay: list | None = None) -> None:
        self._real = real
        self._replay = None if replay is None else list(replay)
        self.recorded: list[tuple[Any, Any, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def encode_codes(self, audio, cond, n_q: int, *, with_energy: bool = False, depth_fn=None):
        import torch

        if self._replay is None:
            self.recorded.append((audio.clone(), cond.clone(), int(n_q)))
            frames = self._real.mdct.n_frames(audio.shape[-1])
            codes = torch.zeros((audio.shape[0], n_q, frames), dtype=torch.long)
            energy = torch.zeros((audio.shape[0], frames))
        else:
            if not self._replay:
                raise RuntimeError("replayed encoding asked for more pieces than were recorded")
            codes, energy = self._replay.pop(0)
        if depth_fn is not None:
            # The workers searched every level (same indices where used); the
            # call still allocates the frames' depths, as in a local encode.
            depth_fn(energy)
        return (codes, energy) if with_energy else codes

    def unused(self) -> int:
        return len(self._replay or [])


def _proxy_codec(codec, backbone: _PieceBackbone, plan=None):
    proxy = copy.copy(codec)
    proxy.backbone = backbone
    if plan is not None:
        proxy.plan = lambda *args, **kwargs: plan
    return proxy


@dataclass
class _Prepared:
    """A long file's recorded plan, metadata and backbone inputs (stays on its worker)."""

    plan: list
    meta: dict
    pieces: list = field(repr=False)


def _prepare_long(path: Path, profile: str, bitrate: float | Rate | None,
                  profiles_dirs: Sequence[str]) -> _Prepared | TaskError:
    """Task: load, classify and record the backbone inputs of a long file."""
    from adaptive_codec.audio.files import load_audio

    try:
        codec = _codec(profiles_dirs)
        audio, info = load_audio(path)
        recorder = _PieceBackbone(codec.backbone)
        plan = _proxy_codec(codec, recorder).encode_to(
            io.BytesIO(), audio, info.sample_rate_hz, profile=profile, **rate_kwargs(bitrate))
        return _Prepared(plan, member_metadata(path, info, plan, codec.frame_rate_hz, audio), recorder.recorded)
    except AdaptiveCodecError as exc:
        return TaskError(str(exc))


def _head(prepared: _Prepared | TaskError) -> tuple[list, dict, int] | TaskError:
    """Task: the small part of a prepared file (plan, metadata, number of pieces)."""
    if isinstance(prepared, TaskError):
        return prepared
    return prepared.plan, prepared.meta, len(prepared.pieces)


def _take_pieces(prepared: _Prepared, start: int, stop: int) -> list[tuple[Any, Any, int]]:
    """Task: recorded pieces ``start:stop`` (runs where the prepared file is; moves only them)."""
    return prepared.pieces[start:stop]


def _encode_pieces(pieces: list[tuple[Any, Any, int]], profiles_dirs: Sequence[str]) -> list:
    """Task: backbone codes ``(1, n_q, frames)`` and frame log-energies of recorded pieces, in order."""
    import torch

    backbone = _codec(profiles_dirs).backbone
    with torch.no_grad():
        return [backbone.encode_codes(audio, cond, n_q, with_energy=True) for audio, cond, n_q in pieces]


def _assemble_long(path: Path, profile: str, bitrate: float | Rate | None, profiles_dirs: Sequence[str],
                   head: tuple[list, dict, int], *groups: list) -> tuple[bytes, dict] | TaskError:
    """Task: encode the file again with the recorded plan and the pieces' codes."""
    from adaptive_codec.audio.files import load_audio

    plan, meta, _ = head
    try:
        codec = _codec(profiles_dirs)
        audio, info = load_audio(path)
        replay = _PieceBackbone(codec.backbone, replay=[c for group in groups for c in group])
        buf = io.BytesIO()
        _proxy_codec(codec, replay, plan).encode_to(
            buf, audio, info.sample_rate_hz, profile=profile, **rate_kwargs(bitrate))
    except AdaptiveCodecError as exc:
        return TaskError(str(exc))
    if replay.unused():
        raise RuntimeError(f"{path}: {replay.unused()} encoded piece(s) were not used")
    return buf.getvalue(), meta


# -- client side -------------------------------------------------------------------

class DaskArchiveEncoder:
    """Encode files on a Dask cluster; :meth:`members` feeds ``create_archive``.

    Parameters
    ----------
    client : distributed.Client
    files : list of (Path, str)
        Inputs and their member names, in archive order.
    profile : str
        ``auto``, a profile name or a profile TOML path.
    bitrate_kbps : float or Rate, optional
        A bitrate override in kbps, or a :class:`~adaptive_codec.planning.rate.Rate`
        (override or scale of each profile's bitrate).
    profiles_dirs : sequence of str
        User profile folders (must be readable by the workers).
    retries : int
        Retries of a task that raised something other than a codec error.
    split_long_files : bool, optional
        Split files longer than one processing piece (18 s) across workers:
        always (True), never (False), or, by default, only a file longer than
        half the audio per worker (it would otherwise finish long after the
        rest). Splitting costs some CPU (the file is loaded twice), and with
        many files per worker it gains nothing.
    on_file_done : callable, optional
        Called with the member name whenever a file finishes (or fails).
    """

    def __init__(self, client, files: list[tuple[Path, str]], profile: str = "auto",
                 bitrate_kbps: float | Rate | None = None, profiles_dirs: Sequence[str] = (),
                 retries: int = DEFAULT_RETRIES, split_long_files: bool | None = None,
                 on_file_done: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.files = list(files)
        self.args = (profile, bitrate_kbps, [str(d) for d in profiles_dirs])
        self.retries = retries
        self.split_long_files = split_long_files
        self.on_file_done = on_file_done
        self.failures: list[FileFailure] = []

    def _submit(self, func, *args, **kwargs):
        return self.client.submit(func, *args, retries=self.retries, pure=False, **kwargs)

    def _files_to_split(self) -> dict[int, int]:
        """``{file index: piece groups}`` of the files to split (at least 2 groups each)."""
        from adaptive_codec.audio.files import audio_info
        from adaptive_codec.backbone.streaming import CHUNK_FRAMES

        if self.split_long_files is False:
            return {}
        durations = []
        for path, _ in self.files:
            try:
                durations.append(audio_info(path).duration_s)
            except AdaptiveCodecError:
                durations.append(0.0)  # its file task reports the problem
        slots = max(1, sum(self.client.nthreads().values()))  # worker threads
        total = sum(durations) or 1.0
        out = {}
        for i, d in enumerate(durations):
            pieces = int(d * 75 // CHUNK_FRAMES) + 1  # 75 frames/s; per channel
            # Forced: every piece its own task; default: the file's share of 2 tasks per slot.
            groups = pieces if self.split_long_files else min(pieces, round(2 * slots * d / total))
            if groups >= 2:
                out[i] = groups
        return out

    def members(self) -> Iterator[tuple[str, bytes, dict]]:
        """Yield ``(name, acx_bytes, metadata)`` in input order; failures go to :attr:`failures`.

        Raises
        ------
        AdaptiveCodecError
            When no input could be encoded (so no empty archive is written).
        """
        import sys

        from distributed import as_completed
        from tqdm import tqdm

        role: dict[Any, tuple[str, int]] = {}  # future -> (kind, file index)
        futures = []
        split = self._files_to_split()
        groups_of: dict[int, int] = {}
        for i, (path, _) in enumerate(self.files):
            if i in split:
                prepared = self._submit(_prepare_long, path, *self.args)
                fut = self._submit(_head, prepared)
                role[fut] = ("head", i)
                role[prepared] = ("prepared", i)  # keeps it alive until its pieces are taken
                groups_of[i] = split[i]
            else:
                fut = self._submit(_encode_file, path, *self.args)
                role[fut] = ("file", i)
            futures.append(fut)
        prepared_of = {i: f for f, (k, i) in role.items() if k == "prepared"}
        done: dict[int, tuple[bytes, dict] | None] = {}
        bar = tqdm(total=len(self.files), unit="file", desc="encode", disable=None,
                   file=sys.stderr)
        pending = as_completed(futures, with_results=False)
        del futures  # a finished file's bytes are released once the client has them
        next_out = 0
        for fut in pending:
            kind, i = role.pop(fut)
            result = self._result(fut, i)
            if kind == "head" and not isinstance(result, _Failed):
                assemble = self._submit_pieces(i, result, prepared_of.pop(i), groups_of[i])
                role[assemble] = ("file", i)
                pending.add(assemble)
                continue
            prepared_of.pop(i, None)
            done[i] = None if isinstance(result, _Failed) else result
            bar.update(1)
            if self.on_file_done is not None:
                self.on_file_done(self.files[i][1])
            while next_out in done:
                item = done.pop(next_out)
                if item is not None:
                    yield self.files[next_out][1], item[0], item[1]
                next_out += 1
        bar.close()
        if self.failures and len(self.failures) == len(self.files):
            raise AdaptiveCodecError(f"no input could be encoded (first: {self.failures[0].message})")

    def _submit_pieces(self, i: int, head, prepared, groups: int):
        """Submit the piece groups of file ``i`` and the task that assembles them."""
        path = self.files[i][0]
        n_pieces = head[2]  # recorded backbone calls, all channels
        groups = max(1, min(groups, n_pieces))
        bounds = [round(k * n_pieces / groups) for k in range(groups + 1)]
        dirs = self.args[2]
        codes = [self._submit(_encode_pieces, self._submit(_take_pieces, prepared, a, b), dirs)
                 for a, b in zip(bounds, bounds[1:])]
        return self._submit(_assemble_long, path, *self.args, head, *codes)

    def _result(self, fut, i: int):
        path, name = self.files[i]
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - a task that failed after its retries
            result = TaskError(f"{type(exc).__name__}: {exc}")
        if isinstance(result, TaskError):
            self.failures.append(FileFailure(path, name, result.message))
            return _Failed()
        return result


class _Failed:
    """Marker of a file whose task failed (already recorded in ``failures``)."""


__all__ = ["DaskArchiveEncoder", "FileFailure", "TaskError", "dask_client", "member_metadata",
           "DEFAULT_MEMORY_LIMIT", "DEFAULT_RETRIES", "TORCH_FRIENDLY_DASK_CONFIG"]
