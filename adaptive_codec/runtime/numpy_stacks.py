"""The backbone's ConvNeXt stacks in plain NumPy (one of the runtime's two executors).

Layer for layer what :class:`adaptive_codec.backbone.model.ConvNeXtStack`
computes: linear in, blocks of depthwise conv → LayerNorm → FiLM → pointwise
MLP (exact, erf GELU) with a scaled residual, LayerNorm, linear out.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from adaptive_codec.backbone.config import BackboneConfig

__all__ = ["NumpyStacks"]

_EPS = np.float32(1e-5)  # torch's LayerNorm default
_SQRT_HALF = np.float32(np.sqrt(0.5))


def _layer_norm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + _EPS)


class _Stack:
    def __init__(self, a: dict[str, np.ndarray], prefix: str, n_blocks: int, kernel: int) -> None:
        def t(name: str) -> np.ndarray:
            return np.ascontiguousarray(a[f"{prefix}.{name}"].T)

        self.kernel = kernel
        self.inp = (t("inp.weight"), a[f"{prefix}.inp.bias"])
        self.out = (t("out.weight"), a[f"{prefix}.out.bias"])
        self.norm = (a[f"{prefix}.norm.weight"], a[f"{prefix}.norm.bias"])
        self.blocks = []
        for i in range(n_blocks):
            p = f"blocks.{i}"
            self.blocks.append(dict(
                dw=np.ascontiguousarray(a[f"{prefix}.{p}.dwconv.weight"][:, 0, :].T),  # (kernel, dim)
                dw_b=a[f"{prefix}.{p}.dwconv.bias"],
                film=(t(f"{p}.film.weight"), a[f"{prefix}.{p}.film.bias"]),
                pw1=(t(f"{p}.pw1.weight"), a[f"{prefix}.{p}.pw1.bias"]),
                pw2=(t(f"{p}.pw2.weight"), a[f"{prefix}.{p}.pw2.bias"]),
                gamma=a[f"{prefix}.{p}.gamma"]))

    def __call__(self, x: np.ndarray, cond: np.ndarray) -> np.ndarray:
        x = x @ self.inp[0] + self.inp[1]
        frames, half = x.shape[0], self.kernel // 2
        padded = np.zeros((frames + 2 * half, x.shape[1]), np.float32)
        for blk in self.blocks:
            padded[half : half + frames] = x
            h = padded[0:frames] * blk["dw"][0]
            for j in range(1, self.kernel):
                h += padded[j : j + frames] * blk["dw"][j]
            h += blk["dw_b"]
            film = cond @ blk["film"][0] + blk["film"][1]
            scale, shift = film[:, : x.shape[1]], film[:, x.shape[1] :]
            h = _layer_norm(h) * (1 + scale) + shift
            u = h @ blk["pw1"][0] + blk["pw1"][1]
            u *= 0.5 * (1 + erf(u * _SQRT_HALF))
            h = u @ blk["pw2"][0] + blk["pw2"][1]
            x = x + h * blk["gamma"]
        x = _layer_norm(x) * self.norm[0] + self.norm[1]
        return x @ self.out[0] + self.out[1]


class NumpyStacks:
    """Encoder and decoder stacks of a backbone from its float32 arrays (``encoder.*``, ``decoder.*``)."""

    def __init__(self, arrays: dict[str, np.ndarray], config: BackboneConfig) -> None:
        self._encoder = _Stack(arrays, "encoder", config.encoder_blocks, config.kernel_size)
        self._decoder = _Stack(arrays, "decoder", config.decoder_blocks, config.kernel_size)

    def encode(self, features: np.ndarray, cond: np.ndarray) -> np.ndarray:
        return self._encoder(features, cond)

    def decode(self, latent: np.ndarray, cond: np.ndarray) -> np.ndarray:
        return self._decoder(latent, cond)
