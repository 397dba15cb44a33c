"""Content features: shapes, finiteness on awkward input, level invariance, streaming."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_codec.analysis.features import (
    FeatureConfig,
    WindowFeatures,
    feature_names,
    file_window_features,
    stream_window_features,
    window_features,
)

CONFIG = FeatureConfig()
N_FEATURES = len(feature_names(CONFIG))


def _noise(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def _tone(seconds: float, sr: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_feature_names_are_unique_and_match_values():
    names = feature_names(CONFIG)
    assert len(names) == len(set(names))
    feats = window_features(_noise(3.0, 16000), sample_rate_hz=16000)
    assert feats.values.shape == (len(feats), N_FEATURES)


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 44100, 48000])
def test_window_count_and_times_do_not_depend_on_sample_rate(sr):
    feats = window_features(_noise(5.0, sr), sample_rate_hz=sr)
    # 5 s, 1 s windows every 0.5 s -> 9 windows
    assert len(feats) == 9
    np.testing.assert_allclose(feats.start_s, np.arange(9) * 0.5)
    np.testing.assert_allclose(feats.end_s, feats.start_s + 1.0)
    assert feats.values.dtype == np.float32
    assert np.isfinite(feats.values).all()


@pytest.mark.parametrize(
    "name, signal",
    [
        ("silence", np.zeros(32000, np.float32)),
        ("noise", _noise(2.0, 16000)),
        ("clipped", np.clip(10 * _tone(2.0, 16000), -1, 1)),
        ("dc", np.full(32000, 0.5, np.float32)),
        ("impulse", np.eye(1, 32000, 16000, dtype=np.float32)[0]),
        ("nan", np.where(np.arange(32000) % 100 == 0, np.nan, _noise(2.0, 16000)).astype(np.float32)),
    ],
)
def test_features_are_finite_on_awkward_signals(name, signal):
    feats = window_features(signal, sample_rate_hz=16000)
    assert feats.values.shape == (3, N_FEATURES)
    assert np.isfinite(feats.values).all(), name
    assert np.isfinite(feats.level_dbfs).all(), name


def test_silence_has_very_low_level():
    feats = window_features(np.zeros(32000, np.float32), sample_rate_hz=16000)
    assert (feats.level_dbfs < -90).all()


def test_stereo_is_the_channel_mean():
    left, right = _noise(2.0, 22050, seed=1), _noise(2.0, 22050, seed=2)
    stereo = window_features(np.stack([left, right]), sample_rate_hz=22050)
    mono = window_features((left + right) / 2, sample_rate_hz=22050)
    np.testing.assert_allclose(stereo.values, mono.values, rtol=1e-5, atol=1e-5)


def test_features_are_level_invariant(example_clip):
    audio, sr = example_clip("music")
    loud = window_features(audio[:, : 4 * sr], sample_rate_hz=sr)
    quiet = window_features(audio[:, : 4 * sr] * 0.1, sample_rate_hz=sr)
    np.testing.assert_allclose(loud.level_dbfs - 20, quiet.level_dbfs, atol=0.01)
    # Exact but for resampler rounding noise in the spectral holes of the
    # (Vorbis-decoded) clip, which does not scale with the level.
    diff = np.abs(loud.values - quiet.values)
    spread = loud.values.std(axis=0) + 1e-3
    assert np.median(diff) < 0.01 and (diff / spread).max() < 0.3


def test_shorter_than_one_window_gives_one_window():
    feats = window_features(_tone(0.3, 44100), sample_rate_hz=44100)
    assert len(feats) == 1
    assert feats.start_s[0] == 0.0
    assert feats.end_s[0] == pytest.approx(0.3, abs=1e-3)
    assert np.isfinite(feats.values).all()
    tiny = window_features(np.ones(10, np.float32) * 0.1, sample_rate_hz=8000)
    assert len(tiny) == 1 and np.isfinite(tiny.values).all()


def test_empty_input_gives_no_windows():
    feats = window_features(np.zeros(0, np.float32), sample_rate_hz=16000)
    assert len(feats) == 0 and feats.values.shape == (0, N_FEATURES)


@pytest.mark.parametrize("sr, block", [(16000, 7001), (44100, 30000)])
def test_streaming_equals_one_shot(sr, block):
    signal = _noise(6.0, sr) + _tone(6.0, sr)
    whole = window_features(signal, sample_rate_hz=sr)
    blocks = [signal[i : i + block] for i in range(0, len(signal), block)]
    streamed = WindowFeatures.concatenate(stream_window_features(blocks, sample_rate_hz=sr), N_FEATURES)
    np.testing.assert_allclose(streamed.start_s, whole.start_s)
    # Resampling in blocks may differ in the last bits only.
    np.testing.assert_allclose(streamed.values, whole.values, rtol=1e-3, atol=1e-3)


def test_new_input_never_changes_earlier_windows():
    signal = _noise(6.0, 16000)
    first = window_features(signal[: 4 * 16000], sample_rate_hz=16000)
    longer = window_features(signal, sample_rate_hz=16000)
    # All but the last windows, whose right context was cut by the end of input.
    settled = len(first) - CONFIG.context_windows
    np.testing.assert_allclose(longer.values[:settled], first.values[:settled], rtol=1e-5, atol=1e-5)
    assert not np.allclose(longer.values[len(first) - 1], first.values[-1])


def test_file_features_match_in_memory(example_clip):
    from tests.conftest import EXAMPLES_DIR

    audio, sr = example_clip("speech")
    seen = []
    from_file = file_window_features(EXAMPLES_DIR / "speech.flac", block_s=2.0, progress=seen.append)
    in_memory = window_features(audio, sample_rate_hz=sr)
    np.testing.assert_allclose(from_file.values, in_memory.values, rtol=1e-3, atol=1e-3)
    assert sum(seen) == pytest.approx(audio.shape[-1] / sr)


def test_custom_window_and_hop():
    config = FeatureConfig(window_s=2.0, hop_s=1.0)
    feats = window_features(_noise(5.0, 16000), sample_rate_hz=16000, config=config)
    assert len(feats) == 4
    np.testing.assert_allclose(feats.start_s, [0, 1, 2, 3])


@pytest.mark.parametrize(
    "kwargs",
    [dict(hop_s=0.0), dict(hop_s=2.0), dict(hop_s=0.51), dict(window_s=0.03), dict(contrast_bands=8)],
)
def test_invalid_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        FeatureConfig(**kwargs)


def test_config_round_trips_through_dict():
    config = FeatureConfig(window_s=2.0, hop_s=1.0, n_mels=32)
    assert FeatureConfig.from_dict(config.to_dict()) == config


def _harmonic(seconds: float, sr: int, f0: float) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.1 * sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))).astype(np.float32)


def test_voicing_features_tell_a_voiced_sound_from_noise():
    names = feature_names(CONFIG)
    col = {n: names.index(n) for n in ("voiced_ratio", "harmonicity_loud", "pitch_steady_ratio", "pitch_std_oct")}
    voiced = window_features(_harmonic(3.0, 16000, 200.0), sample_rate_hz=16000).values
    noise = window_features(_noise(3.0, 16000), sample_rate_hz=16000).values
    assert voiced[:, col["voiced_ratio"]].min() > 0.9 and noise[:, col["voiced_ratio"]].max() < 0.1
    assert voiced[:, col["harmonicity_loud"]].min() > noise[:, col["harmonicity_loud"]].max() + 0.3
    # A held note: every voiced step keeps the pitch, which does not spread.
    assert voiced[:, col["pitch_steady_ratio"]].min() > 0.9
    assert voiced[:, col["pitch_std_oct"]].max() < 0.05


def test_chroma_profile_does_not_name_the_key():
    names = feature_names(CONFIG)
    cols = [i for i, n in enumerate(names) if n.startswith("chroma_sorted_")]
    assert len(cols) == 12 and not any(n.startswith("chroma_0") for n in names)
    a = window_features(_harmonic(3.0, 16000, 220.0), sample_rate_hz=16000).values[:, cols]
    b = window_features(_harmonic(3.0, 16000, 220.0 * 2 ** (5 / 12)), sample_rate_hz=16000).values[:, cols]
    # Equal but for the chroma filters' coarse resolution at low pitches (15.6 Hz bins).
    np.testing.assert_allclose(a, b, atol=0.1)
    assert (np.diff(a, axis=1) <= 1e-6).all()  # sorted, strongest first


def test_relative_level_marks_a_pause_among_louder_neighbours():
    names = feature_names(CONFIG)
    relative = names.index("context_relative_level_db")
    steady = window_features(_noise(6.0, 16000), sample_rate_hz=16000).values[:, relative]
    np.testing.assert_allclose(steady, 0.0, atol=0.05)
    paused = _noise(6.0, 16000)
    paused[2 * 16000 : 4 * 16000] *= 0.01  # 40 dB quieter for 2 s
    values = window_features(paused, sample_rate_hz=16000).values[:, relative]
    assert values[5] < -1.0  # centred on the pause: more than 10 dB below its context
    # Level-invariant like everything else (above the -80 dBFS floor of the level statistics).
    np.testing.assert_allclose(window_features(paused * 0.5, sample_rate_hz=16000).values[:, relative], values,
                               atol=1e-3)


def test_filter_banks_equal_librosa():
    """The NumPy filter banks and framing are librosa's, value for value (the shipped classifier's features)."""
    librosa = pytest.importorskip("librosa", reason="librosa is in the train/bench extras")
    from adaptive_codec.analysis.filterbanks import chroma_filters, frame, mel_filters

    for sr, n_fft, n_mels, fmax in [(16000, 1024, 40, 7000.0), (22050, 2048, 128, 11025.0)]:
        assert np.array_equal(mel_filters(sr, n_fft, n_mels, 30.0, fmax),
                              librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=30.0, fmax=fmax))
        assert np.array_equal(chroma_filters(sr, n_fft), librosa.filters.chroma(sr=sr, n_fft=n_fft))
    y = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    assert np.array_equal(frame(y, 1024, 320), librosa.util.frame(y, frame_length=1024, hop_length=320))
