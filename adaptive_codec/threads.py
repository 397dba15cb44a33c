"""Thread pinning: the one place that sets how many threads the codec's math uses.

Every entry point that runs the backbone (CLI commands, ``--jobs`` pool
workers, Dask workers, benchmark workers, training) calls :func:`pin_threads`
instead of setting torch's thread count itself. With BLAS/OpenMP pools left
at the core count, busy-waiting threads made the codec about 10x slower on a
shared 2-core machine, so parallel workers pin to one thread each.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pin_threads"]


def pin_threads(n: int, *, native_pools: bool = False) -> Any:
    """Use ``n`` threads (at least 1) for torch's intra-op work in this process.

    Parameters
    ----------
    n : int
        Threads for torch's intra-op parallelism; values below 1 mean 1.
    native_pools : bool
        Also limit the BLAS/OpenMP pools (threadpoolctl) and numba to ``n``
        threads, for workers that compute metrics beside the codec.

    Returns
    -------
    object or None
        With ``native_pools``, the threadpoolctl limiter: keep a reference
        for as long as the limit should hold.
    """
    import torch  # the single lazy torch import of the entry points

    n = max(1, int(n))
    torch.set_num_threads(n)
    if not native_pools:
        return None
    limits = None
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(n)
    except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
        pass
    try:
        import numba

        numba.set_num_threads(n)
    except (ImportError, ValueError):
        pass
    return limits
