"""Multi-resolution complex-STFT discriminator and its adversarial losses.

Reconstruction losses alone leave a codec's output over-smoothed and its
phase implausible at low bitrates (docs/training-journal.md, "What limits speech
quality"); an adversarial term is how EnCodec, DAC, Vocos and MDCTCodec get
plausible fine structure. This is the EnCodec/DAC-style multi-resolution STFT
discriminator: one small 2-D conv net per STFT size, each looking at the real
and imaginary parts (so it sees phase, which the MDCT decoder must get right),
with hinge losses and feature matching.

It is used only in training (``[train] adversarial_weight > 0``) and is never
shipped: inference cost is unchanged. On this project's 2-core CPU it roughly
multiplies the cost of a step several times over, so it is meant for GPU
sessions.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = [
    "STFTDiscriminator",
    "MultiResolutionDiscriminator",
    "discriminator_loss",
    "generator_loss",
]

#: One discriminator's output: final logits and every hidden feature map.
DiscriminatorOutput = tuple[torch.Tensor, list[torch.Tensor]]


class STFTDiscriminator(nn.Module):
    """A 2-D conv net over one resolution's complex STFT ``(real, imag)``.

    Parameters
    ----------
    n_fft : int
        FFT size; hop is ``n_fft // 4``, Hann window.
    channels : int
        Width of every hidden layer.
    """

    def __init__(self, n_fft: int, channels: int = 32) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # Time stays at full rate; frequency is halved by each strided layer
        # (the EnCodec MS-STFT-D layout), so the receptive field covers many
        # bins at modest cost.
        convs = [nn.Conv2d(2, channels, (3, 9), padding=(1, 4))]
        for dilation in (1, 2, 4):
            convs.append(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2),
                                   dilation=(dilation, 1), padding=(dilation, 4)))
        convs.append(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1)))
        self.convs = nn.ModuleList(weight_norm(c) for c in convs)
        self.out = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor) -> DiscriminatorOutput:
        """Logits ``(batch, 1, frames, bins')`` and hidden features of ``audio (batch, samples)``."""
        spec = torch.stft(audio, self.n_fft, hop_length=self.n_fft // 4, window=self.window,
                          return_complex=True, normalized=True)  # (B, F, T)
        x = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # (B, 2, T, F)
        features = []
        for conv in self.convs:
            x = nn.functional.leaky_relu(conv(x), 0.2)
            features.append(x)
        return self.out(x), features


class MultiResolutionDiscriminator(nn.Module):
    """One :class:`STFTDiscriminator` per FFT size.

    Parameters
    ----------
    n_ffts : tuple of int
        FFT sizes (at 24 kHz, 512/1024/2048 see 21/43/85 ms windows).
    channels : int
        Hidden width of each sub-discriminator.
    """

    def __init__(self, n_ffts: tuple[int, ...] = (512, 1024, 2048), channels: int = 32) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, channels) for n in n_ffts)

    def forward(self, audio: torch.Tensor) -> list[DiscriminatorOutput]:
        """Every sub-discriminator's output for ``audio (batch, samples)``."""
        return [d(audio) for d in self.discriminators]


def discriminator_loss(real: list[DiscriminatorOutput], fake: list[DiscriminatorOutput]) -> torch.Tensor:
    """Hinge loss of the discriminator: real logits above +1, fake below -1."""
    total = real[0][0].new_zeros(())
    for (logit_real, _), (logit_fake, _) in zip(real, fake):
        total = total + torch.relu(1 - logit_real).mean() + torch.relu(1 + logit_fake).mean()
    return total / len(real)


def generator_loss(
    real: list[DiscriminatorOutput], fake: list[DiscriminatorOutput]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hinge adversarial loss and feature-matching loss of the generator.

    Parameters
    ----------
    real : list
        Discriminator outputs on the reference audio (gradients are not needed:
        the features are targets).
    fake : list
        Outputs on the codec's output (gradients flow to the codec).

    Returns
    -------
    adversarial, feature_matching : torch.Tensor
        Scalars averaged over sub-discriminators. Feature matching is the L1
        distance of every hidden map divided by the mean magnitude of the real
        map, so layers of different scale weigh alike (as in MelGAN/EnCodec).
    """
    adversarial = fake[0][0].new_zeros(())
    matching = fake[0][0].new_zeros(())
    n_maps = 0
    for (_, feats_real), (logit_fake, feats_fake) in zip(real, fake):
        adversarial = adversarial + torch.relu(1 - logit_fake).mean()
        for fr, ff in zip(feats_real, feats_fake):
            fr = fr.detach()
            matching = matching + (ff - fr).abs().mean() / (fr.abs().mean() + 1e-5)
            n_maps += 1
    return adversarial / len(fake), matching / max(n_maps, 1)
