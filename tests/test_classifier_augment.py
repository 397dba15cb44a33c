"""Training-audio degradations (classifier_augment) on a real clip: each does what it says."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_codec.train.classifier_augment import OPERATIONS, augmented_copies, degrade


@pytest.fixture(scope="module")
def music(example_clip) -> tuple[np.ndarray, int]:
    audio, sr = example_clip("music")
    return np.ascontiguousarray(audio.mean(axis=0)[: 6 * sr], dtype=np.float32), sr


def _band_share(x: np.ndarray, sr: int, low_hz: float, high_hz: float) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sr)
    return float(power[(freqs >= low_hz) & (freqs < high_hz)].sum() / power.sum())


def test_telephone_band_is_300_to_3400_hz_at_8_khz(music):
    x, sr = music
    y, sr_out, step = OPERATIONS["telephone"](x, sr, np.random.default_rng(0))
    assert sr_out == 8000 and abs(len(y) / sr_out - len(x) / sr) < 0.01
    assert "telephone" in step
    assert _band_share(y, sr_out, 300, 3400) > 0.85
    assert _band_share(y, sr_out, 0, 100) < 0.01 * _band_share(x, sr, 0, 100)
    assert _band_share(x, sr, 300, 3400) < _band_share(y, sr_out, 300, 3400)


def test_lowpass_removes_the_band_above_its_cutoff(music):
    x, sr = music
    for seed in range(6):
        y, sr_out, step = OPERATIONS["lowpass"](x, sr, np.random.default_rng(seed))
        cutoff = float(step.split()[1]) * 1000
        assert sr_out == sr and len(y) == len(x)
        assert _band_share(y, sr, 1.25 * cutoff, sr / 2) < 1e-3 * max(_band_share(x, sr, 1.25 * cutoff, sr / 2), 1e-9) + 1e-6


@pytest.mark.parametrize("seed", [0, 1])  # one Opus, one MP3 round trip
def test_codec_round_trip_keeps_time_alignment(music, seed):
    x, sr = music
    y, sr_out, step = OPERATIONS["codec"](x, sr, np.random.default_rng(seed))
    assert sr_out == sr and len(y) == len(x)
    assert step.split()[0] in ("opus", "mp3")
    # Time-aligned (no codec delay left): the decoded signal correlates with the input sample by sample.
    assert np.corrcoef(x, y)[0, 1] > 0.8, step


def test_noise_and_reverb_keep_level_and_length(music):
    x, sr = music
    for name in ("noise", "reverb", "tilt", "level"):
        y, sr_out, _ = OPERATIONS[name](x, sr, np.random.default_rng(3))
        assert sr_out == sr and len(y) == len(x) and np.all(np.isfinite(y))
        assert 0.05 < np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2)) < 2.0, name
    noisy, _, step = OPERATIONS["noise"](x, sr, np.random.default_rng(3))
    snr = float(step.split(" at ")[1].split()[0])
    residual = noisy - x
    assert abs(10 * np.log10(np.mean(x**2) / np.mean(residual**2)) - snr) < 0.5


def test_copies_are_seeded_by_name_and_bounded(music):
    x, sr = music
    a = augmented_copies(x, sr, 3, "clip.flac")
    b = augmented_copies(x, sr, 3, "clip.flac")
    c = augmented_copies(x, sr, 3, "other.flac")
    assert [s for _, _, s in a] == [s for _, _, s in b]
    assert [s for _, _, s in a] != [s for _, _, s in c]
    for (ya, sra, steps), (yb, _, _) in zip(a, b):
        np.testing.assert_array_equal(ya, yb)
        assert 2 <= len(steps) <= 3 and np.max(np.abs(ya)) <= 1.0 and sra in (sr, 8000)
    y, sr_out, steps = degrade(x, sr, np.random.default_rng(0))
    assert not ({"telephone", "low-pass"} <= {s.split()[0] for s in steps})
