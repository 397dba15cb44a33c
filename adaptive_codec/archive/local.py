"""Archive back ends on this machine: in order in this process, or in a process pool.

Both call :func:`~adaptive_codec.archive.members.encode_member` on every
file and yield the members in input order, so the archive is the same
whichever runs it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from adaptive_codec.archive.members import encode_member, init_worker, worker_codec
from adaptive_codec.planning.rate import Rate

__all__ = ["encode_members"]


def _encode_one(path: Path, profile: str, rate: Rate, profiles_dirs: Sequence[str]) -> tuple[bytes, dict]:
    return encode_member(worker_codec(profiles_dirs), path, profile, rate)


def encode_members(files: list[tuple[Path, str]], profile: str, rate: Rate, profiles_dirs: Sequence[str],
                   jobs: int = 1, threads: int = 1) -> Iterator[tuple[str, bytes, dict]]:
    """Encode ``files`` and yield ``(member name, acx bytes, metadata)`` in input order.

    Parameters
    ----------
    files : list of (Path, str)
        Inputs and their member names.
    profile : str
        ``auto``, a profile name or a profile TOML path.
    rate : Rate
    profiles_dirs : sequence of str
        User profile folders.
    jobs : int
        Encoder processes (1: this process).
    threads : int
        Torch threads per encoder process.
    """
    dirs = [str(d) for d in profiles_dirs]
    bar = tqdm(total=len(files), unit="file", desc="encode", disable=None, file=sys.stderr)
    try:
        if jobs <= 1:
            init_worker(threads)
            for path, name in files:
                data, meta = _encode_one(path, profile, rate, dirs)
                bar.update(1)
                yield name, data, meta
        else:
            with ProcessPoolExecutor(jobs, initializer=init_worker, initargs=(threads,)) as pool:
                futures = [pool.submit(_encode_one, p, profile, rate, dirs) for p, _ in files]
                for (_, name), fut in zip(files, futures):
                    data, meta = fut.result()
                    bar.update(1)
                    yield name, data, meta
    finally:
        bar.close()
