"""Adversarial training parts: the STFT discriminator, its losses and the trainer's use of them."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from adaptive_codec.backbone.discriminator import (
    MultiResolutionDiscriminator,
    discriminator_loss,
    generator_loss,
)
from adaptive_codec.backbone.model import BackboneConfig
from adaptive_codec.profiles import ProfileRegistry
from adaptive_codec.train.codec import CodecTrainer, TrainConfig, _append_csv

TINY = BackboneConfig(dim=16, encoder_blocks=1, decoder_blocks=1, latent_dim=16, n_levels=2,
                      codebook_size=16, code_dim=4, cond_dim=4)


def test_discriminator_shapes_and_silence():
    torch.manual_seed(0)
    disc = MultiResolutionDiscriminator(n_ffts=(256, 512), channels=4)
    for audio in (torch.randn(2, 4800) * 0.1, torch.zeros(2, 4800)):
        outs = disc(audio)
        assert len(outs) == 2
        for (logits, feats), n_fft in zip(outs, (256, 512)):
            frames = 4800 // (n_fft // 4) + 1
            assert logits.shape[:3] == (2, 1, frames)
            assert len(feats) == 5 and all(torch.isfinite(f).all() for f in feats)
            assert torch.isfinite(logits).all()


def _fake_output(logit: float, feature: float):
    return [(torch.full((2, 1, 3, 3), logit), [torch.full((2, 4, 3, 3), feature)])]


def test_hinge_losses_have_known_values():
    # A discriminator that separates by more than the margin pays nothing.
    assert discriminator_loss(_fake_output(2.0, 1.0), _fake_output(-2.0, 1.0)) == 0
    # Undecided (all logits 0): 1 for real + 1 for fake.
    assert discriminator_loss(_fake_output(0.0, 1.0), _fake_output(0.0, 1.0)) == pytest.approx(2.0)
    adv, fm = generator_loss(_fake_output(0.0, 1.0), _fake_output(0.5, 1.0))
    assert adv == pytest.approx(0.5) and fm == pytest.approx(0.0, abs=1e-6)
    _, fm = generator_loss(_fake_output(0.0, 2.0), _fake_output(0.0, 1.0))
    assert fm == pytest.approx(0.5, rel=1e-4)  # |1 - 2| / 2


def test_trainer_trains_and_checkpoints_the_discriminator(tmp_path, noise_training_cache):
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=2, crop_s=0.2, adversarial_weight=0.1, adversarial_start_step=1,
                      discriminator_channels=4, checkpoint_every=1000, dead_code_every=1000,
                      caches=[str(noise_training_cache)])
    trainer = CodecTrainer(tmp_path / "run", cfg, ProfileRegistry.default(()), backbone_config=TINY)
    before = {k: v.clone() for k, v in trainer.disc.state_dict().items()}
    first = trainer.train_step()
    assert "d_loss" not in first  # before adversarial_start_step
    assert all(torch.equal(v, trainer.disc.state_dict()[k]) for k, v in before.items())
    row = trainer.train_step()
    assert {"d_loss", "g_adv", "feature_matching"} <= set(row)
    assert all(np.isfinite(row[k]) for k in ("d_loss", "g_adv", "feature_matching", "loss"))
    assert any(not torch.equal(v, trainer.disc.state_dict()[k]) for k, v in before.items())
    trainer.save_checkpoint()
    resumed = CodecTrainer(tmp_path / "run", cfg, ProfileRegistry.default(()))
    for k, v in trainer.disc.state_dict().items():
        assert torch.equal(v, resumed.disc.state_dict()[k])
    # A run with the discriminator off resumes the same checkpoint and ignores it.
    plain = CodecTrainer(tmp_path / "run", TrainConfig(batch_size=2, crop_s=0.2,
                         caches=cfg.caches), ProfileRegistry.default(()))
    assert plain.disc is None and "d_loss" not in plain.train_step()


def test_log_gains_columns_switched_on_mid_run(tmp_path):
    path = tmp_path / "log.csv"
    _append_csv(path, {"step": 50, "loss": 1.5})
    _append_csv(path, {"step": 100, "loss": 1.25, "d_loss": 2.0})
    _append_csv(path, {"step": 150, "loss": 1.0})
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows] == ["50", "100", "150"]
    assert [r["d_loss"] for r in rows] == ["", "2", ""]
    assert rows[1]["loss"] == "1.25"
