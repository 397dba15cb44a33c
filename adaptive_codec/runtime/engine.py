"""The backbone's inference side without torch: analysis, RVQ search and synthesis on NumPy arrays.

:class:`RuntimeBackbone` is what the pipeline stages call (through
:class:`~adaptive_codec.pipeline.parts.CodecParts`); the torch model offers
the same methods in :class:`adaptive_codec.backbone.inference.TorchBackbone`.
The exact transforms (MDCT, inverse MDCT) and the power-law compression
(:mod:`adaptive_codec.backbone.mdct_numpy`, which the torch backbone's
analysis uses too), the residual-VQ nearest-neighbour search and the code
lookups run in NumPy; only the two ConvNeXt stacks run on a pluggable executor (ONNX Runtime,
:mod:`adaptive_codec.runtime.onnx`, or NumPy, :mod:`adaptive_codec.runtime.numpy_stacks`),
each of which computes ``encode(features, cond) -> latent`` and
``decode(latent, cond) -> decoder output``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from adaptive_codec.backbone.config import BackboneConfig
from adaptive_codec.backbone.mdct_numpy import NumpyMDCT, analyse_signal
from adaptive_codec.runtime.weights import BackboneArrays

__all__ = ["StackExecutor", "RuntimeBackbone", "constant_rows"]

#: Frames scored against a codebook at a time (a 1 MiB float32 block that stays in cache).
_SEARCH_ROWS = 256


class StackExecutor(Protocol):
    """Runs the backbone's two ConvNeXt stacks on one piece (``frames`` rows)."""

    def encode(self, features: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """Latent ``(frames, latent_dim)`` of features ``(frames, hop + 1)``; cond ``(frames or 1, cond_dim)``."""

    def decode(self, latent: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """Decoder output ``(frames, hop)`` of a latent ``(frames, latent_dim)``."""


def constant_rows(cond: np.ndarray) -> np.ndarray:
    """``cond[:1]`` when every row equals the first (one profile: FiLM computes one row), else ``cond``."""
    cond = np.ascontiguousarray(cond, dtype=np.float32)
    if cond.shape[0] > 1 and bool((cond == cond[:1]).all()):
        return cond[:1]
    return cond


class _Level:
    """One RVQ level's projections and L2-normalised codebook, float32."""

    def __init__(self, arrays: dict[str, np.ndarray], prefix: str) -> None:
        self.in_w_t = np.ascontiguousarray(arrays[f"{prefix}.in_proj.weight"].T)
        self.in_b = arrays[f"{prefix}.in_proj.bias"]
        self.out_w_t = np.ascontiguousarray(arrays[f"{prefix}.out_proj.weight"].T)
        self.out_b = arrays[f"{prefix}.out_proj.bias"]
        book = arrays[f"{prefix}.codebook"]
        # F.normalize: divide by max(norm, 1e-12).
        norm = np.sqrt((book * book).sum(-1, keepdims=True))
        self.book = (book / np.maximum(norm, np.float32(1e-12))).astype(np.float32)
        self.book_t = np.ascontiguousarray(self.book.T)

    def encode(self, residual: np.ndarray) -> np.ndarray:
        """Indices ``(n,)`` of the codewords with the highest cosine similarity to ``residual`` ``(n, dim)``."""
        z = residual @ self.in_w_t + self.in_b
        out = np.empty(z.shape[0], np.int64)
        for start in range(0, z.shape[0], _SEARCH_ROWS):
            out[start : start + _SEARCH_ROWS] = (z[start : start + _SEARCH_ROWS] @ self.book_t).argmax(-1)
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Reconstruction ``(n, dim)`` of indices ``(n,)``."""
        return self.book[codes] @ self.out_w_t + self.out_b


def _deepest_first(depths: np.ndarray, n_levels: int) -> tuple[np.ndarray, list[int]]:
    """Frames sorted by depth, deepest first (stable), and how many frames use each level."""
    flat = np.clip(np.asarray(depths, np.int64).reshape(-1), 0, n_levels)
    order = np.argsort(-flat, kind="stable")
    counts = [int(c) for c in (flat[None, :] > np.arange(n_levels)[:, None]).sum(1)]
    return order, counts


class RuntimeBackbone:
    """The backbone for inference: weights as arrays, stacks on an executor.

    Parameters
    ----------
    weights : BackboneArrays
        The weights' tensors, config and identity.
    stacks : StackExecutor
        Runs the encoder and decoder ConvNeXt stacks.
    executor : str
        Name of the executor (``"onnxruntime"`` or ``"numpy"``), for reports.
    source : Path, optional
        The weights file (training tools reload the torch model from it).

    Attributes
    ----------
    config : BackboneConfig
    mdct : NumpyMDCT
    profile_vectors : np.ndarray [shape=(profiles, cond_dim)], float32
        The built-in profile embeddings.
    prior_logits : np.ndarray [shape=(profiles, levels, codebook_size)], float32
        The weights' per-level priors (the entropy coder's fallback).
    meta : dict
        ``weights_id``, ``sha256`` and the file's metadata.
    """

    def __init__(self, weights: BackboneArrays, stacks: StackExecutor, executor: str,
                 source: Path | None = None) -> None:
        a = weights.arrays
        self.source = source
        self.config: BackboneConfig = weights.config
        self.meta = dict(weights.meta)
        self.stacks = stacks
        self.executor = executor
        self.mdct = NumpyMDCT(self.config.hop)
        self.profile_vectors = a["profile_embedding.weight"]
        self.prior_logits = a["prior_logits"]
        self.out_scale = np.float32(a["out_scale"])
        self.levels = [_Level(a, f"quantizer.levels.{i}") for i in range(self.config.n_levels)]
        #: Values in the weights file (the torch model's parameter count).
        self.n_parameters = int(sum(v.size for v in a.values()))

    def n_frames(self, n_samples: int) -> int:
        """Frames the codec produces for ``n_samples`` samples at the internal rate."""
        return self.mdct.n_frames(n_samples)

    # -- encoder side ---------------------------------------------------------
    def analyse(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Encoder features and frame energies of a mono internal-rate signal.

        Parameters
        ----------
        samples : np.ndarray [shape=(samples,)], float32

        Returns
        -------
        features : np.ndarray [shape=(frames, hop + 1)], float32
            Power-law compressed MDCT coefficients and log10 frame energy / 5.
        log_energy : np.ndarray [shape=(frames,)], float32
            Each frame's log10 mean squared MDCT coefficient.
        """
        return analyse_signal(self.mdct, samples, self.config.compress_exponent)

    def quantize(self, features: np.ndarray, cond: np.ndarray, n_q: int,
                 depths: np.ndarray | None = None) -> np.ndarray:
        """RVQ indices ``(n_q, frames)`` int64 of analysed frames.

        Parameters
        ----------
        features : np.ndarray [shape=(frames, hop + 1)]
        cond : np.ndarray [shape=(frames, cond_dim)]
        n_q : int
            Levels to compute.
        depths : np.ndarray [shape=(frames,)], optional
            Levels to search per frame (indices beyond are 0); without it
            every frame is searched at ``n_q`` levels.
        """
        latent = self.stacks.encode(np.ascontiguousarray(features, np.float32), constant_rows(cond))
        frames = latent.shape[0]
        out = np.zeros((n_q, frames), np.int64)
        if depths is None:
            residual = latent
            for i, level in zip(range(n_q), self.levels):
                out[i] = idx = level.encode(residual)
                residual = residual - level.decode(idx)
            return out
        # Sorted deepest first, each level searches one contiguous prefix.
        order, counts = _deepest_first(depths, n_q)
        residual = latent[order]
        for i, level in zip(range(n_q), self.levels):
            n = counts[i]
            if n == 0:
                break
            idx = level.encode(residual[:n])
            residual[:n] -= level.decode(idx)
            out[i, order[:n]] = idx
        return out

    # -- decoder side ---------------------------------------------------------
    def latent(self, codes: np.ndarray, depths: np.ndarray) -> np.ndarray:
        """Quantized latent ``(frames, latent_dim)``: each frame sums its first ``depths`` levels.

        Parameters
        ----------
        codes : np.ndarray [shape=(levels, frames)]
        depths : np.ndarray [shape=(frames,)]
        """
        codes = np.asarray(codes, np.int64)
        frames = codes.shape[1]
        used = min(codes.shape[0], int(depths.max())) if depths.size else 0
        if used == 0 or bool((depths >= used).all()):
            out = np.zeros((frames, self.config.latent_dim), np.float32)
            for i, level in zip(range(used), self.levels):
                out = out + level.decode(codes[i])
            return out
        order, counts = _deepest_first(depths, used)
        flat = codes[:used][:, order]
        acc = np.zeros((frames, self.config.latent_dim), np.float32)
        for i, level in zip(range(used), self.levels):
            n = counts[i]
            acc[:n] += level.decode(flat[i, :n])
        out = np.empty_like(acc)
        out[order] = acc
        return out

    def coefficients(self, codes: np.ndarray, depths: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """Decoded MDCT coefficients ``(frames, hop)`` float32 of indices ``(levels, frames)``."""
        decoded = self.stacks.decode(self.latent(codes, depths), constant_rows(cond))
        # Power-2 expansion of the decoder's square-root domain.
        return decoded * np.abs(decoded) * self.out_scale

    def inverse_mdct(self, coefficients: np.ndarray, n_samples: int) -> np.ndarray:
        """Audio ``(n_samples,)`` float32 from coefficient frames ``(frames, hop)``."""
        return self.mdct.inverse_frames(coefficients, n_samples)
