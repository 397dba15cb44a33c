"""Residual vector quantizer with factorized, L2-normalised codes.

Each level projects the residual to a small code space (``code_dim``),
L2-normalises it, looks up the nearest of ``codebook_size`` normalised
codewords (cosine similarity) and projects back. Low-dimensional normalised
lookups keep most codewords in use without EMA tricks (the DAC recipe);
k-means initialisation and dead-code replacement take care of the rest.

Quantizer dropout: during training every example uses a random number of
levels, so one model serves every bitrate; the profile (or ``--bitrate``)
picks the depth at encode time. Depths may also differ per frame (what
energy-adaptive depth codes, :mod:`adaptive_codec.planning.depth_allocation`), so
training can see the depth maps the encoder will send.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class QuantizedResult:
    """What :meth:`ResidualVQ.forward` returns.

    Attributes
    ----------
    quantized : torch.Tensor [shape=(batch, frames, dim)]
        Sum of each frame's first ``depths`` levels' reconstructions
        (straight-through).
    codes : torch.Tensor [shape=(batch, levels, frames)], int64
        Codeword index per level and frame (all levels, also unused ones).
    commitment_loss : torch.Tensor [shape=(batch,)]
        Encoder-side commitment loss over the used levels.
    codebook_loss : torch.Tensor [shape=(batch,)]
        Codebook-side loss over the used levels.
    soft_assignments : list of torch.Tensor
        Per level ``(batch, frames, codebook_size)`` softmax over codeword
        similarity; used for the differentiable rate estimate.
    depths : torch.Tensor [shape=(batch, frames)], int64
        Levels each frame used.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment_loss: torch.Tensor
    codebook_loss: torch.Tensor
    soft_assignments: list[torch.Tensor]
    depths: torch.Tensor


class VectorQuantizer(nn.Module):
    """One RVQ level: project, normalise, nearest codeword, project back."""

    def __init__(self, dim: int, codebook_size: int, code_dim: int) -> None:
        super().__init__()
        self.in_proj = nn.Linear(dim, code_dim)
        self.out_proj = nn.Linear(code_dim, dim)
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim))
        # Frames that picked each code since the last dead-code check.
        self.register_buffer("usage", torch.zeros(codebook_size), persistent=False)

    def normalized_codebook(self) -> torch.Tensor:
        return F.normalize(self.codebook, dim=-1)

    def encode(self, residual: torch.Tensor) -> torch.Tensor:
        """Indices ``(batch, frames)`` of the nearest codewords (highest cosine similarity).

        The projected residual is not normalised here: scaling it by its
        (positive) length does not change which codeword is nearest, so only
        :meth:`forward` pays for the normalisation its losses need.
        """
        return _nearest(self.in_proj(residual), self.normalized_codebook())

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``(batch, frames, dim)`` of indices ``(batch, frames)``."""
        return self.out_proj(F.embedding(codes, self.normalized_codebook()))

    def forward(self, residual: torch.Tensor, temperature: float):
        z_e = F.normalize(self.in_proj(residual), dim=-1)
        book = self.normalized_codebook()
        similarity = z_e @ book.T
        codes = similarity.argmax(-1)
        z_q = F.embedding(codes, book)
        # Per frame (batch, frames): the caller masks frames beyond their depth.
        commit = F.mse_loss(z_e, z_q.detach(), reduction="none").mean(dim=-1)
        codebook = F.mse_loss(z_q, z_e.detach(), reduction="none").mean(dim=-1)
        z_st = z_e + (z_q - z_e).detach()
        if self.training:
            with torch.no_grad():
                self.usage += torch.bincount(codes.flatten(), minlength=self.usage.numel())
        soft = torch.softmax(similarity / temperature, dim=-1)
        return self.out_proj(z_st), codes, commit, codebook, soft, z_e

    @torch.no_grad()
    def replace_dead_codes(self, samples: torch.Tensor, min_usage: float) -> int:
        """Re-seed codes used fewer than ``min_usage`` times with random inputs.

        Parameters
        ----------
        samples : torch.Tensor [shape=(n, code_dim)]
            Recent normalised encoder outputs of this level.
        """
        dead = (self.usage < min_usage).nonzero().flatten()
        if dead.numel() and samples.shape[0]:
            pick = torch.randint(0, samples.shape[0], (dead.numel(),), device=samples.device)
            noise = 0.01 * torch.randn_like(samples[pick])
            self.codebook.data[dead] = samples[pick] + noise
        self.usage.zero_()
        return int(dead.numel())


class ResidualVQ(nn.Module):
    """Residual VQ with quantizer dropout.

    Parameters
    ----------
    dim : int
        Latent dimension of the encoder output.
    n_levels : int
        Maximum number of quantizer levels.
    codebook_size : int
        Codewords per level (a power of two: ``log2`` bits per index).
    code_dim : int
        Dimension of the factorized lookup space.
    """

    def __init__(self, dim: int, n_levels: int, codebook_size: int, code_dim: int) -> None:
        super().__init__()
        self.n_levels = n_levels
        self.codebook_size = codebook_size
        self.levels = nn.ModuleList(
            VectorQuantizer(dim, codebook_size, code_dim) for _ in range(n_levels)
        )
        self._last_inputs: list[torch.Tensor] = []

    def forward(
        self, latent: torch.Tensor, n_q: torch.Tensor, temperature: float = 0.1
    ) -> QuantizedResult:
        """Quantize ``latent`` (batch, frames, dim).

        ``n_q`` is the number of levels per example ``(batch,)`` or per frame
        ``(batch, frames)``.
        """
        batch, frames = latent.shape[:2]
        depths = per_frame_depths(n_q, frames)
        residual = latent
        quantized = torch.zeros_like(latent)
        codes, softs = [], []
        commit = latent.new_zeros(batch)
        codebook = latent.new_zeros(batch)
        self._last_inputs = []
        for i, level in enumerate(self.levels):
            z, idx, c_loss, b_loss, soft, z_e = level(residual, temperature)
            active = (i < depths).to(latent.dtype)  # (B, T)
            quantized = quantized + z * active[..., None]
            # The residual keeps flowing through inactive levels so their
            # codes stay meaningful, but they add nothing to the output.
            residual = residual - z.detach()
            commit = commit + (c_loss * active).mean(-1)
            codebook = codebook + (b_loss * active).mean(-1)
            codes.append(idx)
            softs.append(soft)
            self._last_inputs.append(z_e.detach().reshape(-1, z_e.shape[-1]))
        return QuantizedResult(
            quantized=quantized,
            codes=torch.stack(codes, dim=1),
            commitment_loss=commit,
            codebook_loss=codebook,
            soft_assignments=softs,
            depths=depths,
        )

    @torch.no_grad()
    def encode(self, latent: torch.Tensor, n_q: int, depths: torch.Tensor | None = None) -> torch.Tensor:
        """Indices ``(batch, n_q, frames)`` of the first ``n_q`` levels.

        With ``depths`` ``(batch, frames)``, frame ``t`` is searched at its
        first ``depths[t]`` levels only (the others' indices are 0): the
        same indices where they are used, at the cost of the levels used.
        """
        if depths is not None:
            return self._encode_to_depths(latent, n_q, depths)
        residual = latent
        codes = []
        # zip, not self.levels[:n_q]: slicing a ModuleList builds a new module.
        for _, level in zip(range(n_q), self.levels):
            idx = level.encode(residual)
            residual = residual - level.decode(idx)
            codes.append(idx)
        return torch.stack(codes, dim=1)

    def _encode_to_depths(self, latent: torch.Tensor, n_q: int, depths: torch.Tensor) -> torch.Tensor:
        batch, frames, dim = latent.shape
        # Gathering and scattering the residual per level cost more than the
        # search saved; sorted, each level is one contiguous search.
        order, counts = _deepest_first(depths, n_q)
        residual = latent.reshape(-1, dim)[order].clone()
        out = torch.zeros(n_q, batch * frames, dtype=torch.long, device=latent.device)
        for i, level in zip(range(n_q), self.levels):
            n = counts[i]
            if n == 0:
                break
            idx = level.encode(residual[:n])
            residual[:n] -= level.decode(idx)
            out[i, order[:n]] = idx
        return out.reshape(n_q, batch, frames).transpose(0, 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Latent ``(batch, frames, dim)`` from indices ``(batch, n_q, frames)``."""
        out = 0
        for i, level in zip(range(codes.shape[1]), self.levels):
            out = out + level.decode(codes[:, i])
        return out

    @torch.no_grad()
    def decode_masked(self, codes: torch.Tensor, depths: torch.Tensor) -> torch.Tensor:
        """Latent ``(batch, frames, dim)`` from indices ``(batch, levels, frames)`` with a depth per frame.

        ``depths`` ``(batch, frames)``: frame ``t`` sums its first ``depths[t]``
        levels, so segments coded at different bitrates decode in one pass.
        Levels no frame uses are skipped, and a level every frame uses is
        added without a mask (multiplying by 1 changes nothing).
        """
        used = min(codes.shape[1], int(depths.max())) if depths.numel() else 0
        dim = self.levels[0].out_proj.out_features
        batch, frames = codes.shape[0], codes.shape[2]
        if used == 0 or bool((depths >= used).all()):
            out = torch.zeros(batch, frames, dim, device=codes.device)
            for i, level in zip(range(used), self.levels):
                out = out + level.decode(codes[:, i])
            return out
        # Each level decodes a prefix of the sorted frames instead of every
        # frame times a 0/1 mask.
        order, counts = _deepest_first(depths, used)
        flat_codes = codes[:, :used].transpose(0, 1).reshape(used, -1)[:, order]
        acc = torch.zeros(batch * frames, dim, device=codes.device)
        for i, level in zip(range(used), self.levels):
            n = counts[i]
            acc[:n] += level.decode(flat_codes[i, :n])
        out = torch.empty_like(acc)
        out[order] = acc
        return out.reshape(batch, frames, dim)

    @torch.no_grad()
    def kmeans_init(self, latent: torch.Tensor, n_iter: int = 10) -> None:
        """Initialise every level's codebook by k-means on a batch of latents.

        Parameters
        ----------
        latent : torch.Tensor [shape=(batch, frames, dim)]
        """
        residual = latent.reshape(-1, latent.shape[-1])
        for level in self.levels:
            z = F.normalize(level.in_proj(residual), dim=-1)
            k = level.codebook.shape[0]
            centroids = z[torch.randint(0, z.shape[0], (k,))].clone()
            for _ in range(n_iter):
                assign = (z @ F.normalize(centroids, dim=-1).T).argmax(-1)
                sums = torch.zeros_like(centroids).index_add_(0, assign, z)
                counts = torch.bincount(assign, minlength=k).float()[:, None]
                filled = counts[:, 0] > 0
                centroids[filled] = sums[filled] / counts[filled]
            level.codebook.data.copy_(F.normalize(centroids, dim=-1))
            idx = (z @ level.normalized_codebook().T).argmax(-1)
            residual = residual - level.decode(idx)

    @torch.no_grad()
    def replace_dead_codes(self, min_usage: float = 1.0) -> int:
        """Re-seed unused codewords of every level from the last batch."""
        total = 0
        for level, samples in zip(self.levels, self._last_inputs):
            total += level.replace_dead_codes(samples, min_usage)
        return total


#: Frames scored against the codebook at a time: a (256, 1024) float32
#: similarity block is 1 MiB, which stays in cache; a whole 18 s piece's
#: similarities (5.7 MiB per level) made the allocator hold ~65 MiB more.
_SEARCH_ROWS = 256


def per_frame_depths(n_q: torch.Tensor, frames: int) -> torch.Tensor:
    """Depths ``(batch, frames)`` from depths per example ``(batch,)`` or per frame."""
    if n_q.dim() == 1:
        return n_q[:, None].expand(-1, frames)
    if n_q.dim() != 2 or n_q.shape[1] != frames:
        raise ValueError(f"n_q must have shape (batch,) or (batch, {frames}), got {tuple(n_q.shape)}")
    return n_q


def _deepest_first(depths: torch.Tensor, n_levels: int) -> tuple[torch.Tensor, list[int]]:
    """Frames ``(batch * frames,)`` sorted by depth, deepest first, and how many use each level.

    The frames level ``i`` needs are then the first ``counts[i]`` of ``order``.
    """
    flat = depths.reshape(-1).clamp(0, n_levels)
    order = torch.argsort(flat, descending=True, stable=True)
    counts = [int(c) for c in (flat[None, :] > torch.arange(n_levels)[:, None]).sum(1)]
    return order, counts


def _nearest(z: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
    """Index ``(...)`` of the codeword (row of ``book``) with the largest dot product with ``z`` ``(..., d)``."""
    flat = z.reshape(-1, z.shape[-1])
    out = torch.empty(flat.shape[0], dtype=torch.long, device=z.device)
    for start in range(0, flat.shape[0], _SEARCH_ROWS):
        out[start : start + _SEARCH_ROWS] = _argmax_last(flat[start : start + _SEARCH_ROWS] @ book.T)
    return out.view(z.shape[:-1])


def _argmax_last(scores: torch.Tensor) -> torch.Tensor:
    """``scores.argmax(-1)``; on the CPU NumPy's (SIMD) argmax, ~10x faster than torch's.

    Both return the first index of the maximum, so ties resolve the same way.
    """
    if scores.device.type == "cpu" and not scores.requires_grad:
        return torch.from_numpy(scores.numpy().argmax(-1))
    return scores.argmax(-1)
