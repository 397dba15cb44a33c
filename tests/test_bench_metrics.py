"""Benchmark metrics against hand-checked values (adaptive_codec.bench.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptive_codec.bench import metrics as M


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


@pytest.fixture(scope="module")
def speech16(example_clip):
    audio, sr = example_clip("speech")
    from adaptive_codec.audio import resample, to_mono

    return np.asarray(resample(to_mono(audio), sr, 16000), np.float64)[: 16000 * 4], 16000


def test_si_sdr_identical_is_capped():
    x = _noise(8000)
    assert M.si_sdr_db(x, x) == 100.0


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0, 37.5])
def test_si_sdr_known_snr(snr_db):
    # Noise made orthogonal to the reference: the optimal scale is exactly 1,
    # so SI-SDR equals the SNR by construction.
    ref = _noise(16000, 1)
    n = _noise(16000, 2)
    n -= (n @ ref) / (ref @ ref) * ref
    n *= math.sqrt((ref @ ref) / (n @ n) / 10 ** (snr_db / 10))
    assert M.si_sdr_db(ref, ref + n) == pytest.approx(snr_db, abs=1e-9)


def test_si_sdr_is_scale_invariant():
    ref = _noise(4000, 3)
    deg = ref + 0.3 * _noise(4000, 4)
    assert M.si_sdr_db(ref, 0.25 * deg) == pytest.approx(M.si_sdr_db(ref, deg), abs=1e-9)


def test_si_sdr_hand_value():
    # r = [1, 0], d = [1, 1]: a = 1, target = [1, 0], noise = [0, 1] -> 0 dB.
    assert M.si_sdr_db(np.array([1.0, 0.0]), np.array([1.0, 1.0])) == pytest.approx(0.0)
    # d = [2, 1]: a = 2, target = [2, 0], noise [0, 1] -> 10 log10(4) dB.
    assert M.si_sdr_db(np.array([1.0, 0.0]), np.array([2.0, 1.0])) == pytest.approx(
        10 * math.log10(4))


def test_si_sdr_silent_reference_is_nan():
    assert math.isnan(M.si_sdr_db(np.zeros(100), _noise(100)))


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="lengths differ"):
        M.si_sdr_db(np.ones(10), np.ones(11))


def test_spectral_distances_identical_are_zero(speech16):
    x, sr = speech16
    assert M.mel_distance_db(x, x, sr) == pytest.approx(0.0, abs=1e-9)
    assert M.stft_distance(x, x, sr) == pytest.approx(0.0, abs=1e-9)


def test_stft_distance_hand_values(speech16):
    x, sr = speech16
    # Silent output: || 0 - |R| || / || |R| || = 1 exactly.
    assert M.stft_distance(x, np.zeros_like(x), sr) == pytest.approx(1.0, abs=1e-9)
    # Half the amplitude: || |R|/2 - |R| || / || |R| || = 0.5 (resampling is linear).
    assert M.stft_distance(x, 0.5 * x, sr) == pytest.approx(0.5, abs=1e-6)


def test_mel_distance_gain_and_floor(speech16):
    x, sr = speech16
    # White noise: every cell is far above the relative floor, so a 6.02 dB
    # gain change moves every cell by 6.02 dB (to within the floor's effect).
    noise = _noise(24000, 8)
    assert M.mel_distance_db(noise, 0.5 * noise, 24000) == pytest.approx(20 * math.log10(2), abs=0.01)
    # Speech has many cells near the floor, which move less: between 0 and 6.02 dB.
    d = M.mel_distance_db(x, 0.5 * x, sr)
    assert 0.5 < d < 6.03
    # Silence is penalised by at most the floor depth (60 dB) and far more than a gain change.
    silent = M.mel_distance_db(x, np.zeros_like(x), sr)
    assert d < silent <= 60.0 + 1e-6
    # Adding noise 80 dB below the peak hides under the relative floor.
    quiet = x + 1e-4 * np.max(np.abs(x)) * _noise(x.size, 5)
    assert M.mel_distance_db(x, quiet, sr) < 0.5


def test_loudness_identical_and_gain(speech16):
    x, sr = speech16
    assert M.loudness_diff_lu(x, x, sr) == pytest.approx(0.0, abs=1e-9)
    assert M.loudness_diff_lu(x, 0.5 * x, sr) == pytest.approx(20 * math.log10(0.5), abs=0.05)
    assert math.isnan(M.loudness_diff_lu(x[:1000], x[:1000], sr))


def test_pesq_stoi_identical_are_perfect(speech16):
    x, sr = speech16
    assert M.pesq_wb(x, x, sr) == pytest.approx(4.64, abs=0.01)
    assert M.stoi(x, x, sr) == pytest.approx(1.0, abs=1e-6)


def test_pesq_stoi_degrade_with_noise(speech16):
    x, sr = speech16
    noisy = x + 0.3 * np.std(x) * _noise(x.size, 6)
    assert M.pesq_wb(x, noisy, sr) < 3.0
    assert M.stoi(x, noisy, sr) < 0.99


def test_pesq_on_silence_is_nan():
    assert math.isnan(M.pesq_wb(np.zeros(32000), np.zeros(32000), 16000))


def test_visqol_identical_and_degraded(speech16):
    x, sr = speech16
    x = x[: 2 * sr]
    same = M.visqol(x, x, sr)
    assert same == pytest.approx(4.73, abs=0.01)  # the audio-mode maximum
    noisy = M.visqol(x, x + 0.3 * np.std(x) * _noise(x.size, 7), sr)
    assert 1.0 <= noisy < same - 1.0


def test_registry_columns_are_unique_and_callable():
    columns = [m.column for m in M.METRICS.values()]
    assert len(set(columns)) == len(columns)
    assert {k for k, m in M.METRICS.items() if m.speech_only} == {"pesq_wb", "stoi"}


def test_training_eval_mel_distance_is_the_bench_metric_in_bels():
    # train.codec_eval logs the same distance in log10 units (bels): a 6.02 dB gain
    # change on white noise is 0.602 there; argument order is (estimate, reference).
    from adaptive_codec.train.codec_eval import mel_distance

    noise = _noise(24000, 8).astype(np.float32)
    assert mel_distance(0.5 * noise, noise, 24000) == pytest.approx(2 * math.log10(2), abs=0.001)
    quieter_ref = mel_distance(noise, 0.1 * noise, 24000)  # floor follows the *reference*
    assert quieter_ref == pytest.approx(M.mel_distance_db(0.1 * noise, noise, 24000) / 10)
