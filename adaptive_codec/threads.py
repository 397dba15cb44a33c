"""Thread pinning: the one place that sets how many threads the codec's math uses.

Every entry point that runs the backbone (CLI commands, ``--jobs`` pool
workers, Dask workers, benchmark workers, training) calls :func:`pin_threads`
instead of setting a library's thread count itself. With BLAS/OpenMP pools
left at the core count, busy-waiting threads made the codec about 10x slower
on a shared 2-core machine, so parallel workers pin to one thread each.

The count applies to the runtime's ONNX Runtime sessions (made after the
call), NumPy's BLAS pool (the runtime's transforms and RVQ search) and, where
torch is already imported (training, the torch reference), torch's intra-op
pool. torch is never imported here: inference runs without it.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["pin_threads", "pinned_threads"]

_PINNED: list[int] = []  # the last count pinned in this process
_LIMITS: list[Any] = []  # threadpoolctl limiters kept alive


def pinned_threads() -> int:
    """Threads the last :func:`pin_threads` set in this process (1 if never called)."""
    return _PINNED[-1] if _PINNED else 1


def pin_threads(n: int, *, native_pools: bool = False) -> Any:
    """Use ``n`` threads (at least 1) for the codec's math in this process.

    Parameters
    ----------
    n : int
        Threads for the runtime's sessions, the BLAS pool and (if imported)
        torch's intra-op parallelism; values below 1 mean 1.
    native_pools : bool
        Also limit numba to ``n`` threads, for workers that compute metrics
        beside the codec.

    Returns
    -------
    object or None
        The threadpoolctl limiter of the BLAS/OpenMP pools (the limit holds
        while the process runs).
    """
    n = max(1, int(n))
    _PINNED[:] = [n]
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    limits = None
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(n)
        _LIMITS[:] = [limits]
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass
    if native_pools:
        try:
            import numba

            numba.set_num_threads(n)
        except (ImportError, ValueError):
            pass
    return limits
