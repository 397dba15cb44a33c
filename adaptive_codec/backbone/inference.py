"""The torch model behind the runtime's interface: NumPy arrays in, NumPy arrays out.

:class:`TorchBackbone` offers the methods of
:class:`adaptive_codec.runtime.engine.RuntimeBackbone` on a
:class:`~adaptive_codec.backbone.model.Backbone`, so the pipeline runs on
either: the torch model is the reference the runtime is tested and measured
against, and what training-time evaluation codes with.
"""

from __future__ import annotations

import numpy as np
import torch

from adaptive_codec.backbone.mdct_numpy import NumpyMDCT, analyse_signal
from adaptive_codec.backbone.model import Backbone

__all__ = ["TorchBackbone"]


class TorchBackbone:
    """A torch :class:`Backbone` (eval mode) with the runtime's array interface.

    Parameters
    ----------
    model : Backbone
    meta : dict, optional
        The weights' metadata (``weights_id``, ``sha256``).
    """

    executor = "torch"

    def __init__(self, model: Backbone, meta: dict[str, str] | None = None) -> None:
        self.model = model
        self.config = model.config
        self.meta = dict(meta or {})
        self.mdct = model.mdct
        self._numpy_mdct = NumpyMDCT(model.config.hop)

    @property
    def profile_vectors(self) -> np.ndarray:
        """Built-in profile embeddings ``(profiles, cond_dim)`` float32 (read now: a trained model changes)."""
        return self.model.profile_embedding.weight.detach().cpu().numpy().astype(np.float32)

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.model.parameters()))

    @property
    def prior_logits(self) -> np.ndarray:
        return self.model.prior_logits.detach().cpu().numpy()

    def n_frames(self, n_samples: int) -> int:
        return self.model.mdct.n_frames(n_samples)

    def analyse(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The codec's encoder analysis (:func:`~adaptive_codec.backbone.mdct_numpy.analyse_signal`).

        The runtime's NumPy analysis rather than :meth:`Backbone.analyse`:
        both compute the same transform, but float32 BLAS sums differ in
        the last bit between kernels, and the codes of two backbones should
        differ only where their stacks do (see :mod:`adaptive_codec.backbone.mdct_numpy`).
        """
        return analyse_signal(self._numpy_mdct, samples, self.config.compress_exponent)

    @torch.inference_mode()
    def quantize(self, features: np.ndarray, cond: np.ndarray, n_q: int,
                 depths: np.ndarray | None = None) -> np.ndarray:
        f = torch.from_numpy(np.ascontiguousarray(features, np.float32))[None]
        c = torch.from_numpy(np.ascontiguousarray(cond, np.float32))[None]
        d = None if depths is None else torch.from_numpy(np.asarray(depths, np.int64))[None]
        return self.model.quantize(f, c, n_q, d)[0].numpy()

    @torch.inference_mode()
    def latent(self, codes: np.ndarray, depths: np.ndarray) -> np.ndarray:
        c = torch.from_numpy(np.asarray(codes).astype(np.int64))[None]
        d = torch.from_numpy(np.asarray(depths, dtype=np.int64))[None]
        return self.model.quantizer.decode_masked(c, d)[0].numpy()

    @torch.inference_mode()
    def coefficients(self, codes: np.ndarray, depths: np.ndarray, cond: np.ndarray) -> np.ndarray:
        latent = torch.from_numpy(self.latent(codes, depths))[None]
        decoded = self.model.decoder(latent, torch.from_numpy(np.ascontiguousarray(cond, np.float32))[None])
        return self.model.synthesis_coefficients(decoded).transpose(1, 2)[0].numpy()

    @torch.inference_mode()
    def inverse_mdct(self, coefficients: np.ndarray, n_samples: int) -> np.ndarray:
        coef = torch.from_numpy(np.ascontiguousarray(coefficients, np.float32))[None]
        return self.model.mdct.inverse_frames(coef, n_samples)[0].numpy()


def torch_backbone(path) -> TorchBackbone:
    """The torch model of a weights file behind the runtime's interface.

    Raises
    ------
    ModelError
        The file is not readable backbone weights.
    """
    from adaptive_codec.backbone.weights import load_weights
    from adaptive_codec.errors import ModelError

    try:
        model, meta = load_weights(path)
    except ValueError as exc:
        raise ModelError(str(exc)) from None
    return TorchBackbone(model, meta)


def torch_model(backbone) -> Backbone:
    """The torch :class:`Backbone` behind any backbone: itself, a TorchBackbone's, or reloaded from a runtime's weights file.

    Training-side tools (fine-tuning a profile, exporting weights) need the
    differentiable model whatever the codec runs on.

    Raises
    ------
    ModelError
        A runtime backbone that was not loaded from a file.
    """
    from adaptive_codec.errors import ModelError

    if isinstance(backbone, Backbone):
        return backbone
    if isinstance(backbone, TorchBackbone):
        return backbone.model
    source = getattr(backbone, "source", None)
    if source is None:
        raise ModelError("this backbone has no weights file to load the torch model from")
    return torch_backbone(source).model
