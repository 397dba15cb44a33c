"""The shared backbone codec: MDCT front end, ConvNeXt encoder/decoder, RVQ.

``audio (24 kHz) ─► MDCT (hop 320: 75 frames/s) ─► power-law compression
─► ConvNeXt encoder (FiLM by profile) ─► residual VQ ─► ConvNeXt decoder
(FiLM by profile) ─► MDCT coefficients ─► inverse MDCT ─► audio``

The profile conditioning is a vector per frame, so the profile can change
from one frame to the next; the decoder's convolutions and the MDCT's
overlap-add make the change continuous.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# The configuration is torch-free (the runtime reads it too); re-exported here.
from adaptive_codec.backbone.config import BUILTIN_PROFILES, BackboneConfig, bitrate_for_n_q, n_q_for_bitrate
from adaptive_codec.backbone.mdct import MDCT
from adaptive_codec.backbone.quantizer import QuantizedResult, ResidualVQ

__all__ = ["BUILTIN_PROFILES", "BackboneConfig", "bitrate_for_n_q", "n_q_for_bitrate", "ConvNeXtBlock",
           "ConvNeXtStack", "BackboneOutput", "Backbone"]

class ConvNeXtBlock(nn.Module):
    """Depthwise conv → LayerNorm → FiLM → pointwise MLP, residual.

    Operates on ``(batch, frames, dim)``.
    """

    def __init__(self, dim: int, kernel_size: int, mlp_ratio: int, cond_dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.film = nn.Linear(cond_dim, 2 * dim)
        self.pw1 = nn.Linear(dim, mlp_ratio * dim)
        self.pw2 = nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), 0.1))
        # FiLM starts as the identity so conditioning is learned, not imposed.
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # The depthwise conv runs as a 2-D conv on a (batch, dim, 1, frames)
        # view of x: its strides are channels-last, which oneDNN reads and
        # writes directly, so the frame-major layout needs no transposed
        # copies (a Conv1d on x.transpose(1, 2) made two; 30 % of a block).
        k = self.dwconv.kernel_size[0]
        h = F.conv2d(x.transpose(1, 2).unsqueeze(2), self.dwconv.weight.unsqueeze(2),
                     self.dwconv.bias, padding=(0, k // 2), groups=self.dwconv.groups)
        h = h.squeeze(2).transpose(1, 2)
        scale, shift = self.film(cond).chunk(2, dim=-1)
        h = torch.addcmul(shift, self.norm(h), 1 + scale)  # norm(h) * (1 + scale) + shift
        h = self.pw2(F.gelu(self.pw1(h)))
        return torch.addcmul(x, h, self.gamma)  # x + gamma * h


class ConvNeXtStack(nn.Module):
    """Linear in → FiLM-conditioned ConvNeXt blocks → LayerNorm → linear out.

    The encoder (MDCT features → latent) and the decoder (latent → MDCT
    coefficients) are both one of these, on ``(batch, frames, channels)``.
    """

    def __init__(self, in_dim: int, out_dim: int, n_blocks: int, cfg: BackboneConfig) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, cfg.dim)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.kernel_size, cfg.mlp_ratio, cfg.cond_dim)
            for _ in range(n_blocks)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, out_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[1] > 1 and not cond.requires_grad and bool((cond == cond[:, :1]).all()):
            # One profile over the whole piece (the usual case at inference):
            # FiLM computes one row and broadcasts it, not one row per frame.
            cond = cond[:, :1]
        x = self.inp(x)
        for block in self.blocks:
            x = block(x, cond)
        return self.out(self.norm(x))


@dataclass
class BackboneOutput:
    """Training-time forward result.

    Attributes
    ----------
    audio : torch.Tensor [shape=(batch, samples)]
    quantized : QuantizedResult
    coefficients : torch.Tensor [shape=(batch, hop, frames)]
        Decoded MDCT coefficients.
    """

    audio: torch.Tensor
    quantized: QuantizedResult
    coefficients: torch.Tensor


class Backbone(nn.Module):
    """Profile-conditioned MDCT codec with residual VQ.

    Parameters
    ----------
    config : BackboneConfig
    """

    def __init__(self, config: BackboneConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or BackboneConfig()
        self.mdct = MDCT(cfg.hop)
        self.profile_embedding = nn.Embedding(len(cfg.profiles), cfg.cond_dim)
        nn.init.normal_(self.profile_embedding.weight, std=0.5)
        self.encoder = ConvNeXtStack(cfg.hop + 1, cfg.latent_dim, cfg.encoder_blocks, cfg)
        self.quantizer = ResidualVQ(cfg.latent_dim, cfg.n_levels, cfg.codebook_size, cfg.code_dim)
        self.decoder = ConvNeXtStack(cfg.latent_dim, cfg.hop, cfg.decoder_blocks, cfg)
        # Fixed output scale: the decoder predicts compressed coefficients
        # in a unit range; this expands them back to MDCT amplitudes.
        self.out_scale = nn.Parameter(torch.tensor(1.0))
        # Entropy-model prior per profile and RVQ level (logits over codewords):
        # trained on the codes themselves; quantized and shipped for coding.
        self.prior_logits = nn.Parameter(
            torch.zeros(len(cfg.profiles), cfg.n_levels, cfg.codebook_size)
        )

    # -- conditioning -----------------------------------------------------
    def profile_vector(self, name: str) -> torch.Tensor:
        """Embedding ``(cond_dim,)`` of a built-in profile by name."""
        try:
            i = self.config.profiles.index(name)
        except ValueError:
            raise KeyError(
                f"backbone has no embedding for profile {name!r}; built-ins: "
                + ", ".join(self.config.profiles)
            ) from None
        return self.profile_embedding.weight[i]

    def frame_conditioning(self, profile_ids: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, cond_dim)`` from built-in ids ``(batch,)`` or ``(batch, frames)``."""
        emb = self.profile_embedding(profile_ids)
        return emb[:, None, :] if emb.dim() == 2 else emb

    # -- transforms -------------------------------------------------------
    def analysis(self, audio: torch.Tensor) -> torch.Tensor:
        """Encoder input features ``(batch, frames, hop + 1)`` from audio ``(batch, samples)``."""
        coef = self.mdct.frames(audio)  # (B, T, hop)
        p = self.config.compress_exponent
        compressed = coef.sign() * (coef.abs() + 1e-8).pow(p)
        # Log frame energy as an extra channel so loudness is explicit.
        energy = torch.log10(coef.pow(2).mean(-1, keepdim=True) + 1e-10) / 5
        return torch.cat([compressed, energy], dim=-1)

    def synthesis_coefficients(self, decoded: torch.Tensor) -> torch.Tensor:
        """MDCT coefficients ``(batch, hop, frames)`` from decoder output ``(batch, frames, hop)``."""
        # Power-2 expansion: the decoder works in a square-root domain,
        # which evens out the loud/quiet dynamic range it must produce.
        return (decoded * decoded.abs() * self.out_scale).transpose(1, 2)

    def synthesis(self, decoded: torch.Tensor, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio from decoder output ``(batch, frames, hop)``; returns (audio, coefficients)."""
        coef = self.synthesis_coefficients(decoded)
        return self.mdct.inverse_frames(coef.transpose(1, 2), n_samples), coef

    # -- training forward ---------------------------------------------------
    def forward(
        self, audio: torch.Tensor, cond: torch.Tensor, n_q: torch.Tensor, depth_fn=None
    ) -> BackboneOutput:
        """Encode, quantize with ``n_q[b]`` levels and decode a batch.

        Parameters
        ----------
        audio : torch.Tensor [shape=(batch, samples)]
        cond : torch.Tensor [shape=(batch, frames or 1, cond_dim)]
        n_q : torch.Tensor [shape=(batch,) or (batch, frames)], int
        depth_fn : callable, optional
            ``depth_fn(log_energy (batch, frames)) -> depths (batch, frames)``
            replaces ``n_q`` by per-frame depths, as the depth allocation
            stage does at inference, so training can see the encoder's depth maps.
        """
        features = self.analysis(audio)
        if depth_fn is not None:
            # The analysis' last channel is log10(energy) / 5.
            n_q = depth_fn(features[..., -1].detach() * 5).to(audio.device)
        latent = self.encoder(features, cond)
        q = self.quantizer(latent, n_q)
        decoded = self.decoder(q.quantized, cond)
        out, coef = self.synthesis(decoded, audio.shape[-1])
        return BackboneOutput(audio=out, quantized=q, coefficients=coef)

    # -- inference --------------------------------------------------------
    @torch.no_grad()
    def analyse(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Analysis features and frame energies of audio ``(batch, samples)``.

        Returns
        -------
        features : torch.Tensor [shape=(batch, frames, channels)]
            What :meth:`quantize` takes.
        log_energy : torch.Tensor [shape=(batch, frames)]
            Each frame's log10 mean squared MDCT coefficient (what the depth
            allocation stage spends bits by).
        """
        features = self.analysis(audio)
        # The analysis' last channel is log10(energy) / 5.
        return features, features[..., -1] * 5

    @torch.no_grad()
    def quantize(self, features: torch.Tensor, cond: torch.Tensor, n_q: int,
                 depths: torch.Tensor | None = None) -> torch.Tensor:
        """RVQ indices ``(batch, n_q, frames)`` of analysed frames (see :meth:`analyse`).

        ``depths`` ``(batch, frames)`` limits each frame's search to the
        levels it will code (indices beyond are 0); without it every frame
        is searched at ``n_q`` levels.
        """
        return self.quantizer.encode(self.encoder(features, cond), n_q, depths)

    @torch.no_grad()
    def encode_codes(self, audio: torch.Tensor, cond: torch.Tensor, n_q: int, *, with_energy: bool = False):
        """RVQ indices ``(batch, n_q, frames)`` for audio ``(batch, samples)``, every frame at ``n_q`` levels.

        With ``with_energy``, also each frame's log10 energy ``(batch, frames)``.
        """
        features, energy = self.analyse(audio)
        codes = self.quantize(features, cond, n_q)
        return (codes, energy) if with_energy else codes

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor, cond: torch.Tensor, n_samples: int) -> torch.Tensor:
        """Audio ``(batch, n_samples)`` from indices ``(batch, n_q, frames)``."""
        decoded = self.decoder(self.quantizer.decode(codes), cond)
        return self.synthesis(decoded, n_samples)[0]
