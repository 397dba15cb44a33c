"""benchmarks/stoi_bands.py: per-band STOI correlations that average to pystoi's STOI."""

from __future__ import annotations

import numpy as np
import pytest


def test_band_correlations_average_to_stoi(bench_script):
    pystoi = pytest.importorskip("pystoi", reason="pystoi comes with the bench extra")
    from adaptive_codec.audio import load_audio, resample, to_mono
    from adaptive_codec.resources import example_path

    audio, info = load_audio(example_path("speech"))
    x = np.asarray(resample(to_mono(audio), info.sample_rate_hz, 24000), np.float64)[: 4 * 24000]
    rng = np.random.default_rng(0)
    y = x + 0.3 * x.std() * rng.standard_normal(x.size)
    bands = bench_script("stoi_bands").band_correlations(x, y, 24000)
    assert bands.shape == (15,)
    assert bands.mean() == pytest.approx(pystoi.stoi(x, y, 24000), abs=1e-6)
    np.testing.assert_allclose(bench_script("stoi_bands").band_correlations(x, x, 24000), 1.0, atol=1e-6)


def test_missing_corpus_is_a_one_line_error(bench_script, tmp_path, capsys):
    assert bench_script("stoi_bands").main(["--corpus", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no corpus at")
