"""Dask back end for archives at cluster scale (``archive create --scheduler``).

The client expands the inputs, submits one task per file and writes the
archive itself (atomically, members in input order); workers return encoded
``.acx`` bytes (:func:`~adaptive_codec.archive.members.encode_member`). A file
longer than one processing piece
(:data:`~adaptive_codec.backbone.streaming.CHUNK_FRAMES` frames, 18 s) whose
single task would leave workers idle (few long files) is split so that its
pieces run on several workers at once, through the same pipeline stages:

1. ``_prepare_long`` (one task) loads the file, measures and classifies it,
   plans it, builds the stream header and cuts the backbone's pieces
   (:func:`~adaptive_codec.pipeline.signal.backbone_pieces`);
2. ``_encode_pieces`` (one task per group of consecutive pieces) runs each
   piece through the backbone and its channel's depth allocation stage
   (:func:`~adaptive_codec.pipeline.signal.code_piece`); a file gets about as
   many groups as its share of the work in worker slots (two tasks per slot in
   all), so few long files keep many workers busy without flooding the scheduler;
3. ``_assemble_long`` gathers the pieces' indices in order, allocates the
   depths from their frame energies and entropy-codes the stream
   (:func:`~adaptive_codec.pipeline.encoder.write_stream`).

Pieces are aligned with the bitstream's chunks and are the same arrays as in
single-process mode, so the archive is byte-identical to ``--jobs 1`` (on the
same machine type). Codec errors (a corrupt file) fail only their file, are
not retried and are reported; other exceptions are retried ``retries`` times,
and tasks of a worker that dies are rescheduled by Dask.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask
import numpy as np
from distributed import Client, LocalCluster, as_completed
from tqdm import tqdm

from adaptive_codec.archive.members import encode_member, member_metadata, worker_codec
from adaptive_codec.audio import audio_info, load_audio
from adaptive_codec.backbone.streaming import CHUNK_FRAMES, SignalPiece
from adaptive_codec.container.acx_header import AcxHeader
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.pipeline.encoder import CodedChannels, build_header, coded_levels, coding_stage, rate_stage, write_stream
from adaptive_codec.pipeline.signal import BLOCK_SECONDS, array_blocks, backbone_pieces, code_piece
from adaptive_codec.planning.conditioning import FrameConditioning
from adaptive_codec.planning.plan import PlannedSegment
from adaptive_codec.planning.rate import Rate
from adaptive_codec.threads import pin_threads

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

def _codec(profiles_dirs: Sequence[str]):
    """The Dask worker's codec, on one thread."""
    pin_threads(1)  # one worker = one thread; oversubscription is 10x slower
    return worker_codec(profiles_dirs)


def _encode_file(path: Path, profile: str, rate: Rate,
                 profiles_dirs: Sequence[str]) -> tuple[bytes, dict] | TaskError:
    """Task: one whole file → (``.acx`` bytes, metadata)."""
    try:
        return encode_member(_codec(profiles_dirs), path, profile, rate)
    except AdaptiveCodecError as exc:
        return TaskError(str(exc))


@dataclass
class _Prepared:
    """A long file's header, plan, metadata and backbone pieces (stays on its worker)."""

    header: AcxHeader
    plan: list[PlannedSegment]
    meta: dict
    pieces: list[tuple[int, SignalPiece]] = field(repr=False)


def _prepare_long(path: Path, profile: str, rate: Rate, profiles_dirs: Sequence[str]) -> _Prepared | TaskError:
    """Task: load, measure, classify and plan a long file; cut its backbone pieces."""
    try:
        codec = _codec(profiles_dirs)
        audio, info = load_audio(path)
        sr = info.sample_rate_hz
        block = max(1, int(BLOCK_SECONDS * sr))
        scan, plan = codec.measure_and_plan(lambda: array_blocks(audio, block), sr, profile, rate)
        header = build_header(codec.parts, scan, sr, plan)
        pieces = list(backbone_pieces(codec.backbone, array_blocks(audio, block), sr, scan.n_samples,
                                      header.stereo_mode == "mid_side", coded_levels(header)))
        return _Prepared(header, plan, member_metadata(path, info, plan, codec.frame_rate_hz, audio), pieces)
    except AdaptiveCodecError as exc:
        return TaskError(str(exc))


def _head(prepared: _Prepared | TaskError) -> tuple[AcxHeader, list, dict, int] | TaskError:
    """Task: the small part of a prepared file (header, plan, metadata, number of pieces)."""
    if isinstance(prepared, TaskError):
        return prepared
    return prepared.header, prepared.plan, prepared.meta, len(prepared.pieces)


def _take_pieces(prepared: _Prepared, start: int, stop: int) -> list[tuple[int, SignalPiece]]:
    """Task: pieces ``start:stop`` (runs where the prepared file is; moves only them)."""
    return prepared.pieces[start:stop]


def _encode_pieces(header: AcxHeader, plan: list, pieces: list[tuple[int, SignalPiece]],
                   profiles_dirs: Sequence[str]) -> list[tuple[int, int, int, np.ndarray, np.ndarray]]:
    """Task: ``(channel, start frame, end frame, indices, frame log-energies)`` of each piece, in order."""
    parts = _codec(profiles_dirs).parts
    cond = FrameConditioning(header, 0, parts.embeddings())  # rows per piece: memory does not grow with the file
    levels, allocators = coding_stage(parts, header, plan)  # under rate control: full depth, no allocators
    out = []
    for ch, piece in pieces:
        codes, energy = code_piece(parts.backbone, piece, cond, levels[ch], allocators[ch])
        out.append((ch, piece.start_frame, piece.end_frame, codes, energy))
    return out


def _assemble_long(profiles_dirs: Sequence[str], head: tuple[AcxHeader, list, dict, int],
                   *groups: list) -> tuple[bytes, dict]:
    """Task: the pieces' indices in order, their depths allocated, entropy-coded into the stream."""
    header, plan, meta, n_pieces = head
    parts = _codec(profiles_dirs).parts
    levels, allocators = coding_stage(parts, header, plan)
    stage = rate_stage(parts, header, plan)
    results = [r for group in groups for r in group]
    if len(results) != n_pieces:
        raise RuntimeError(f"{len(results)} encoded piece(s) for {n_pieces} cut")
    buf = io.BytesIO()
    if stage is not None:  # rate control: spans coded in order as the pieces come in
        with stage:
            for ch, a, b, piece_codes, energy in sorted(results, key=lambda r: (r[1], r[0])):
                stage.add(ch, a, piece_codes, energy)
            stage.finish(buf)
        return buf.getvalue(), meta
    codes = [np.zeros((max(1, depth), header.n_frames), np.int16) for depth in levels]
    for ch, a, b, piece_codes, energy in results:
        codes[ch][:, a:b] = piece_codes
        if allocators[ch] is not None:
            allocators[ch].allocate(a, b, energy)
    depths = [alloc.finish() if alloc is not None else header.frame_layout(ch, 0, header.n_frames)[0]
              for ch, alloc in enumerate(allocators)]
    write_stream(parts, buf, header, CodedChannels(codes, depths))
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
        self.args = (profile, Rate.of(bitrate_kbps), [str(d) for d in profiles_dirs])
        self.retries = retries
        self.split_long_files = split_long_files
        self.on_file_done = on_file_done
        self.failures: list[FileFailure] = []

    def _submit(self, func, *args, **kwargs):
        return self.client.submit(func, *args, retries=self.retries, pure=False, **kwargs)

    def _files_to_split(self) -> dict[int, int]:
        """``{file index: piece groups}`` of the files to split (at least 2 groups each)."""
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
        n_pieces = head[3]  # backbone pieces, all channels
        groups = max(1, min(groups, n_pieces))
        bounds = [round(k * n_pieces / groups) for k in range(groups + 1)]
        dirs = self.args[2]
        header, plan = head[0], head[1]
        codes = [self._submit(_encode_pieces, header, plan, self._submit(_take_pieces, prepared, a, b), dirs)
                 for a, b in zip(bounds, bounds[1:])]
        return self._submit(_assemble_long, dirs, head, *codes)

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
