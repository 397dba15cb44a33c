"""Codec training settings: the ``[train]`` TOML table and the learning-rate cooldown."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptive_codec.backbone.model import BackboneConfig
from adaptive_codec.cli.app import app
from adaptive_codec.profiles import ProfileRegistry
from adaptive_codec.train.codec import CodecTrainer, TrainConfig, TrainConfigError

TINY = BackboneConfig(dim=16, encoder_blocks=1, decoder_blocks=1, latent_dim=16, n_levels=2,
                      codebook_size=16, code_dim=4, cond_dim=4)


def _toml(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "train.toml"
    path.write_text("[train]\n" + body + "\n")
    return path


def test_constant_rate_by_default():
    cfg = TrainConfig(learning_rate=3e-4)
    assert {cfg.learning_rate_at(s) for s in (0, 1, 10_000, 10**7)} == {3e-4}


def test_cooldown_is_linear_then_flat():
    cfg = TrainConfig(learning_rate=1e-3, decay_start_step=100, decay_steps=50, final_lr_ratio=0.1)
    assert cfg.learning_rate_at(99) == 1e-3
    assert cfg.learning_rate_at(100) == 1e-3
    assert cfg.learning_rate_at(125) == pytest.approx(0.55e-3)
    assert cfg.learning_rate_at(150) == pytest.approx(1e-4)
    assert cfg.learning_rate_at(10_000) == pytest.approx(1e-4)
    rates = [cfg.learning_rate_at(s) for s in range(90, 160)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_toml_round_trip(tmp_path):
    cfg = TrainConfig.from_toml(_toml(tmp_path, "decay_start_step = 20000\ndecay_steps = 2000\n"
                                                "final_lr_ratio = 0.2\nlearning_rate = 1"))
    assert (cfg.decay_start_step, cfg.decay_steps, cfg.final_lr_ratio) == (20000, 2000, 0.2)
    assert isinstance(cfg.learning_rate, float) and cfg.learning_rate == 1.0


@pytest.mark.parametrize("body, message", [
    ("final_lr_ratio = 1.5", "final_lr_ratio must be in [0, 1]"),
    ("decay_steps = -1", "must be >= 0"),
    ("decay_steps = 2.5", "decay_steps: expected int, got 2.5"),
    ("learning_rate = 0.0", "learning_rate must be > 0"),
    ("threads = true", "threads: expected int"),
    ("warmup = 10", "unknown [train] keys: warmup"),
    ("x = [", "invalid TOML"),
    ("class_weights = {podcast = 2.0}", "class_weights: unknown classes podcast"),
    ("class_weights = {speech = -1.0}", "class_weights must be finite, >= 0"),
    ("class_weights = {speech = 0, music = 0, ambient = 0}", "not all 0"),
    ("class_weights = {speech = \"2\"}", "class_weights: expected numbers, got speech = '2'"),
    ("class_weights = 2.0", "class_weights: expected dict"),
    ("bandlimit_prob = 1.5", "bandlimit_prob must be in [0, 1]"),
    ("bandlimit_prob = 0.5\nbandlimit_hz = [16000]", "bandlimit_hz must list cutoffs in \\(0, 12000\\)"),
    ("bandlimit_prob = 0.5\nbandlimit_hz = []", "bandlimit_hz must list cutoffs"),
    ("bandlimit_hz = [\"8k\"]", "bandlimit_hz: expected a list of numbers"),
])
def test_bad_settings_are_named(tmp_path, body, message):
    with pytest.raises(TrainConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig.from_toml(_toml(tmp_path, body))


def test_bandlimit_from_toml(tmp_path):
    cfg = TrainConfig.from_toml(_toml(tmp_path, "bandlimit_prob = 0.25\nbandlimit_hz = [8000, 11025.0]"))
    assert cfg.bandlimit_prob == 0.25 and cfg.bandlimit_hz == [8000.0, 11025.0]
    assert TrainConfig().bandlimit_prob == 0.5  # the shipped weights' setting
    assert TrainConfig.from_toml(_toml(tmp_path, "bandlimit_prob = 0")).bandlimit_prob == 0.0


def test_class_weights_from_toml(tmp_path):
    cfg = TrainConfig.from_toml(_toml(tmp_path, "class_weights = {speech = 2, ambient = 0.5}"))
    assert cfg.class_weights == {"speech": 2.0, "ambient": 0.5}


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(TrainConfigError, match="cannot read"):
        TrainConfig.from_toml(tmp_path / "absent.toml")


def test_cli_reports_bad_config_in_one_line(tmp_path):
    from typer.testing import CliRunner

    path = _toml(tmp_path, "final_lr_ratio = 3.0")
    result = CliRunner().invoke(app, ["train", "codec", "--data", str(tmp_path), "--config", str(path),
                                      "--run-dir", str(tmp_path / "run"), "--max-steps", "0"])
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == [f"error: {path}: [train] final_lr_ratio must be in [0, 1], got 3.0"]
    assert not (tmp_path / "run").exists()


def test_trainer_applies_the_cooldown_and_resumes_on_it(tmp_path, noise_training_cache):
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=2, crop_s=0.2, learning_rate=1e-3, decay_start_step=1,
                      decay_steps=2, final_lr_ratio=0.5, checkpoint_every=1000,
                      dead_code_every=1000, caches=[str(noise_training_cache)])
    trainer = CodecTrainer(tmp_path / "run", cfg, ProfileRegistry.default(()), backbone_config=TINY)
    seen = []
    for _ in range(4):
        trainer.train_step()
        seen.append(trainer.opt.param_groups[0]["lr"])
    assert seen == pytest.approx([1e-3, 1e-3, 0.75e-3, 0.5e-3])
    trainer.save_checkpoint()
    # A resumed run picks the schedule up at its step, not at the start.
    resumed = CodecTrainer(tmp_path / "run", cfg, ProfileRegistry.default(()))
    resumed.train_step()
    assert resumed.step == 5
    assert resumed.opt.param_groups[0]["lr"] == pytest.approx(0.5e-3)


def test_adaptive_depth_training_uses_the_encoders_depth_maps(tmp_path, noise_training_cache):
    """Speech (depth_slope 4) trains on energy-allocated depths; music keeps one depth."""
    torch.manual_seed(0)
    tiny4 = BackboneConfig(dim=16, encoder_blocks=1, decoder_blocks=1, latent_dim=16, n_levels=8,
                           codebook_size=16, code_dim=4, cond_dim=4)
    cfg = TrainConfig(batch_size=2, crop_s=0.2, adaptive_depth=True, checkpoint_every=1000,
                      dead_code_every=1000, caches=[str(noise_training_cache)])
    registry = ProfileRegistry.default(())
    trainer = CodecTrainer(tmp_path / "run", cfg, registry, backbone_config=tiny4)
    names = trainer.model.config.profiles
    ids = torch.tensor([names.index("speech"), names.index("music")])
    energy = torch.cat([torch.full((2, 20), -1.0), torch.full((2, 20), -4.0)], dim=1)
    depths = trainer._depth_fn(ids, torch.tensor([4, 4]))(energy)
    assert depths.shape == (2, 40)
    assert int(depths[0, :18].min()) > int(depths[0, 22:].max())  # loud frames get more levels
    assert float(depths[0].float().mean()) <= 4
    assert depths[1].tolist() == [4] * 40
    row = trainer.train_step()
    assert all(torch.isfinite(torch.tensor(v)) for v in row.values())
    off = CodecTrainer(tmp_path / "off", TrainConfig(caches=[str(noise_training_cache)]), registry,
                       backbone_config=tiny4)
    assert off._depth_fn(ids, torch.tensor([4, 4])) is None


def test_ensure_caches_builds_once_and_respects_the_cap(tmp_path):
    """--extra folders are cached once per (folder, cap); build=False (DDP ranks > 0) only names them."""
    import shutil

    from adaptive_codec.resources import example_path
    from adaptive_codec.train.cache_paths import cache_dir_for
    from adaptive_codec.train.codec_data import ensure_caches

    pool = tmp_path / "pool"
    pool.mkdir()
    shutil.copy(example_path("speech"), pool / "a.flac")
    shutil.copy(example_path("speech"), pool / "b.flac")
    (pool / "manifest.csv").write_text("path,label,duration_s\na.flac,speech,3600\nb.flac,speech,3600\n")
    root = tmp_path / "caches"
    assert ensure_caches([], [pool], 1.0, root, build=False) == [cache_dir_for(pool, root, 1.0)]
    assert not root.exists()
    (cache,) = ensure_caches([], [pool], 1.0, root)
    assert (cache / "done").exists() and (cache / "speech.npy").exists()
    # A 1-hour cap takes one of the two "hour-long" clips.
    assert len(json.loads((cache / "speech.json").read_text())["clips"]) == 1
    stamp = (cache / "speech.npy").stat().st_mtime_ns
    assert ensure_caches([], [pool], 1.0, root) == [cache]  # finished: not built again
    assert (cache / "speech.npy").stat().st_mtime_ns == stamp


def test_caches_expand_a_quoted_home_folder(tmp_path, monkeypatch):
    """A quoted "~/pool" names the shell-expanded folder's cache and its clips (pandas expands ~, Path does not)."""
    import shutil

    from adaptive_codec.resources import example_path
    from adaptive_codec.train.cache_paths import cache_dir_for
    from adaptive_codec.train.codec_data import ensure_caches

    monkeypatch.setenv("HOME", str(tmp_path))
    pool = tmp_path / "pool"
    pool.mkdir()
    shutil.copy(example_path("speech"), pool / "a.flac")
    (pool / "manifest.csv").write_text("path,label,duration_s\na.flac,speech,3\n")
    root = tmp_path / "caches"
    assert cache_dir_for(Path("~/pool"), root, 1.0) == cache_dir_for(pool, root, 1.0)
    (cache,) = ensure_caches([], [Path("~/pool")], 1.0, root)
    assert len(json.loads((cache / "speech.json").read_text())["clips"]) == 1


def test_a_cache_of_unreadable_clips_is_an_error_not_an_empty_cache(tmp_path):
    """If no clip of a folder can be read, the build stops with one line instead of marking an empty cache done."""
    from adaptive_codec.errors import AdaptiveCodecError
    from adaptive_codec.train.codec_data import ensure_caches

    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "a.flac").write_bytes(b"not audio")
    (pool / "manifest.csv").write_text("path,label,duration_s\na.flac,speech,3\nmissing.flac,music,3\n")
    with pytest.raises(AdaptiveCodecError, match=r"no clip for cache .* could be read or used \(2 tried; first: .*pool/(a|missing)\.flac"):
        ensure_caches([], [pool], 1.0, tmp_path / "caches")
    assert not list((tmp_path / "caches").glob("*/done"))


def test_a_cache_of_only_unusable_clips_is_an_error(tmp_path):
    """Files that decode but are all too short or non-finite leave nothing to train on: one line, no ``done``."""
    import soundfile as sf

    from adaptive_codec.errors import AdaptiveCodecError
    from adaptive_codec.train.codec_data import ensure_caches

    pool = tmp_path / "pool"
    pool.mkdir()
    sf.write(pool / "short.wav", np.zeros(1000, np.float32), 24000)
    (pool / "manifest.csv").write_text("path,label,duration_s\nshort.wav,speech,0.04\n")
    with pytest.raises(AdaptiveCodecError, match=r"could be read or used \(1 tried; first: .*short\.wav: shorter than 0\.5 s\)"):
        ensure_caches([], [pool], 1.0, tmp_path / "caches")
    assert not list((tmp_path / "caches").glob("*/done"))


def test_a_pool_manifest_without_durations_is_a_clear_error(tmp_path):
    """The per-class hour cap needs duration_s: a manifest without it is named, not an AttributeError."""
    from adaptive_codec.errors import AdaptiveCodecError
    from adaptive_codec.train.codec_data import pool_clips

    (tmp_path / "manifest.csv").write_text("path,label\na.flac,speech\n")
    with pytest.raises(AdaptiveCodecError, match=r"manifest.csv: missing column\(s\) duration_s"):
        pool_clips(tmp_path, {"speech": 1.0})
