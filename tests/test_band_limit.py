"""Band-limit augmentation of codec training crops (16 / 22.05 kHz sources seen at 24 kHz)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adaptive_codec.audio.resampling import resample_signal
from adaptive_codec.train.codec_data import CropSampler, band_limit

SR = 24000


def _music_24k(example_clip) -> np.ndarray:
    audio, rate = example_clip("music")
    return resample_signal(audio.mean(axis=0), rate, SR).astype(np.float32)


def _share_above(x: np.ndarray, hz: float) -> float:
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    return float(power[..., freqs > hz].sum() / power.sum())


def _cache(root: Path, audio: np.ndarray) -> Path:
    root.mkdir()
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    np.save(root / "music.npy", pcm)
    (root / "music.json").write_text(json.dumps(
        {"clips": [{"path": "music.flac", "source": "music", "offset": 0, "n_samples": int(pcm.size)}]}))
    return root


def test_band_limit_removes_the_top_and_keeps_the_rest(example_clip):
    x = _music_24k(example_clip)[: 2 * SR]
    assert _share_above(x, 8000) > 1e-6  # the example has content up there to remove
    y = band_limit(x, 8000.0, SR)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert _share_above(y, 8000) < 1e-12
    # Below the knee (0.92 x cutoff) the spectrum is untouched.
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    low = freqs < 0.92 * 8000
    np.testing.assert_allclose(np.fft.rfft(y)[low], np.fft.rfft(x)[low], rtol=1e-3, atol=1e-2)
    with pytest.raises(ValueError, match="cutoff_hz must be in"):
        band_limit(x, 12000.0, SR)


def test_sampler_band_limits_the_given_share_of_crops(example_clip, tmp_path):
    cache = _cache(tmp_path / "cache", _music_24k(example_clip))
    plain, _ = CropSampler([cache], SR // 2, seed=1).batch(40)
    # Off by default, and off draws nothing extra: the crops are those of a sampler without it.
    same, _ = CropSampler([cache], SR // 2, seed=1, bandlimit_prob=0.0).batch(40)
    assert np.array_equal(plain.numpy(), same.numpy())
    assert min(_share_above(c, 8000) for c in plain.numpy()) > 1e-7
    every, _ = CropSampler([cache], SR // 2, seed=1, bandlimit_prob=1.0, bandlimit_hz=[8000.0]).batch(40)
    assert max(_share_above(c, 8000) for c in every.numpy()) < 1e-10
    half, _ = CropSampler([cache], SR // 2, seed=1, bandlimit_prob=0.5,
                          bandlimit_hz=[8000.0, 11025.0]).batch(200)
    limited = [_share_above(c, 11025) < 1e-10 for c in half.numpy()]
    assert 0.35 < np.mean(limited) < 0.65
    # Level augmentation still applies after the filter.
    rms_db = 20 * np.log10(np.sqrt((every.numpy() ** 2).mean(axis=1)))
    assert rms_db.min() > -45 and rms_db.max() < -10
    with pytest.raises(ValueError, match="bandlimit_hz must list cutoffs"):
        CropSampler([cache], SR // 2, bandlimit_prob=0.5, bandlimit_hz=[13000.0])
    with pytest.raises(ValueError, match="bandlimit_prob must be in"):
        CropSampler([cache], SR // 2, bandlimit_prob=1.5)
