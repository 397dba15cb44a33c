"""Multi-process training with ``torchrun`` and ``DistributedDataParallel``.

``torchrun --nproc_per_node=N -m adaptive_codec train codec …`` sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables;
:func:`init_from_env` reads them and joins the process group (``gloo`` on
CPU, ``nccl`` on CUDA). Without them everything here is a no-op, so one
process trains exactly as before.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in a (possibly) distributed run.

    Parameters
    ----------
    rank : int
        Global rank (0 writes checkpoints, logs, evaluations, exports).
    world_size : int
        Number of processes; 1 means not distributed.
    local_rank : int
        Rank on this node (picks the CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def wrap(self, module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``DistributedDataParallel(module)`` when distributed (syncs rank 0's parameters)."""
        if not self.active or isinstance(module, torch.nn.parallel.DistributedDataParallel):
            return module
        ids = [device.index] if device.type == "cuda" else None
        # Buffers are statistics (code usage); they are summed explicitly when used.
        with warnings.catch_warnings():  # broadcast_buffers: still the way to keep them rank-local
            warnings.simplefilter("ignore", FutureWarning)
            return torch.nn.parallel.DistributedDataParallel(
                module, device_ids=ids, broadcast_buffers=False)

    def any_rank(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any (e.g. a rank's time is up)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)

    def all_reduce_usage(self, quantizer: torch.nn.Module) -> None:
        """Sum every level's code-usage counts over ranks (same dead codes everywhere)."""
        if not self.active:
            return
        for level in quantizer.levels:
            dist.all_reduce(level.usage, op=dist.ReduceOp.SUM)

    def all_reduce_sum(self, tensor: torch.Tensor) -> None:
        """Sum ``tensor`` over ranks in place (no-op in a single process)."""
        if not self.active:
            return
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def broadcast_parameters(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (after a random re-seed)."""
        if not self.active:
            return
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)


def _comm_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def context_from_env() -> DistContext:
    """Rank, world size and local rank from torchrun's environment (defaults: one process)."""
    return DistContext(rank=int(os.environ.get("RANK", 0)),
                       world_size=int(os.environ.get("WORLD_SIZE", 1)),
                       local_rank=int(os.environ.get("LOCAL_RANK", 0)))


def init_from_env(device: str) -> tuple[DistContext, str]:
    """Join torchrun's process group if there is one.

    Parameters
    ----------
    device : str
        ``cpu`` or ``cuda``; with CUDA each process takes ``cuda:LOCAL_RANK``.

    Returns
    -------
    ctx : DistContext
    device : str
        The device this process should train on.
    """
    ctx = context_from_env()
    if not ctx.active:
        return ctx, device
    if device.startswith("cuda"):
        torch.cuda.set_device(ctx.local_rank)
        device = f"cuda:{ctx.local_rank}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return ctx, device


def shutdown() -> None:
    """Leave the process group (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
