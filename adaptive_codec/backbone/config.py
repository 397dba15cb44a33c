"""The backbone's hyper-parameters, as data: read by the torch model and by the torch-free runtime."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from adaptive_codec.audio import INTERNAL_SAMPLE_RATE_HZ
from adaptive_codec.planning.rate import depth_for_bitrate
from adaptive_codec.profiles.builtin import BUILTIN_CLASSES

__all__ = ["BUILTIN_PROFILES", "BackboneConfig", "n_q_for_bitrate", "bitrate_for_n_q"]

#: Order of the built-in profile embeddings in the weights. Custom profiles
#: start from one of these (their ``base``) or carry a fine-tuned vector.
BUILTIN_PROFILES: tuple[str, ...] = BUILTIN_CLASSES


@dataclass(frozen=True)
class BackboneConfig:
    """Hyper-parameters of the backbone; stored next to the weights."""

    sample_rate_hz: int = INTERNAL_SAMPLE_RATE_HZ  # internal rate of the codec
    hop: int = 320  # MDCT hop: 24000 / 320 = 75 frames per second
    dim: int = 256  # channels of the ConvNeXt blocks
    encoder_blocks: int = 6
    decoder_blocks: int = 6
    kernel_size: int = 7  # depthwise convolution width (frames)
    mlp_ratio: int = 3  # pointwise MLP expansion
    latent_dim: int = 256  # dimension the RVQ quantizes
    n_levels: int = 16  # maximum RVQ depth
    codebook_size: int = 1024  # 10 bits per index
    code_dim: int = 8  # factorized lookup dimension
    cond_dim: int = 32  # profile embedding size
    profiles: tuple[str, ...] = field(default=BUILTIN_PROFILES)
    compress_exponent: float = 0.3  # power-law compression of MDCT input

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate_hz / self.hop

    @property
    def bits_per_index(self) -> float:
        return math.log2(self.codebook_size)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["profiles"] = list(self.profiles)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "BackboneConfig":
        d = dict(d)
        d["profiles"] = tuple(d.get("profiles", BUILTIN_PROFILES))
        return cls(**d)


def n_q_for_bitrate(bitrate_kbps: float, config: BackboneConfig, level_bits: Sequence[float] | None = None) -> int:
    """Number of RVQ levels of this backbone whose rate fits ``bitrate_kbps``.

    :func:`adaptive_codec.planning.rate.depth_for_bitrate` with the backbone's
    levels, index length and frame rate.
    """
    return depth_for_bitrate(bitrate_kbps, config.n_levels, config.bits_per_index, config.frame_rate_hz, level_bits)


def bitrate_for_n_q(n_q: int, config: BackboneConfig) -> float:
    """Fixed-length bitrate in kbps of ``n_q`` levels (before entropy coding)."""
    return n_q * config.bits_per_index * config.frame_rate_hz / 1000
