"""What every encoder and decoder stage reads: the loaded models and settings, as one value.

:class:`CodecParts` is built once by :class:`~adaptive_codec.codec.AdaptiveCodec`
and passed forward to the stages (:mod:`adaptive_codec.pipeline.encoder`,
:mod:`adaptive_codec.pipeline.decoder`); no stage calls back into the facade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from adaptive_codec.pipeline.signal import resampled_length
from adaptive_codec.planning.conditioning import EmbeddingTable, prior_and_vector
from adaptive_codec.planning.rate import DepthRule
from adaptive_codec.profiles import Profile
from adaptive_codec.profiles.registry import ProfileRegistry

if TYPE_CHECKING:
    from adaptive_codec.entropy.tables import EntropyModel
    from adaptive_codec.runtime.engine import RuntimeBackbone

__all__ = ["CodecParts"]


@dataclass
class CodecParts:
    """The backbone, its weights' identity, the entropy tables, the profiles and the chunking.

    Attributes
    ----------
    backbone : RuntimeBackbone
        The backbone's inference side (or the torch model behind the same
        interface, :class:`~adaptive_codec.backbone.inference.TorchBackbone`).
    weights_meta : dict
        ``weights_id`` and ``sha256`` of the loaded weights (recorded in every stream).
    entropy_model : EntropyModel
        Tables the RVQ indices are coded with.
    registry : ProfileRegistry
    chunk_frames : int
        Frames per entropy-coded chunk (the unit of range decoding).
    """

    backbone: "RuntimeBackbone"
    weights_meta: dict[str, str]
    entropy_model: "EntropyModel"
    registry: ProfileRegistry
    chunk_frames: int = 450

    @property
    def frame_rate_hz(self) -> float:
        return self.backbone.config.frame_rate_hz

    def embeddings(self) -> EmbeddingTable:
        """The backbone's built-in profile embeddings (read now, so a changed backbone is seen)."""
        weight = np.asarray(self.backbone.profile_vectors, dtype=np.float32)
        return EmbeddingTable(tuple(self.backbone.config.profiles), weight)

    def depth_rule(self) -> DepthRule:
        """How a profile's bitrate maps to a depth with this backbone and these tables."""
        cfg = self.backbone.config
        return DepthRule(cfg.n_levels, cfg.bits_per_index, cfg.frame_rate_hz, self.entropy_model.level_bits)

    def prior_and_vector(self, profile: Profile) -> tuple[int, np.ndarray]:
        """Entropy prior id and conditioning vector ``(cond_dim,)`` of ``profile``."""
        return prior_and_vector(profile, self.registry, self.embeddings())

    def n_frames(self, n_samples: int, sample_rate_hz: int) -> int:
        """Frames of a stream of ``n_samples`` samples at ``sample_rate_hz``."""
        cfg = self.backbone.config
        return self.backbone.mdct.n_frames(resampled_length(n_samples, sample_rate_hz, cfg.sample_rate_hz))
