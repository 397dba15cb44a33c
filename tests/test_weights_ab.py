"""benchmarks/weights_ab.py: the A/B that picks a checkpoint before it ships."""

from __future__ import annotations

import numpy as np
import pytest
import torch


def test_index_kbps_matches_the_training_rate_term(bench_script):
    from adaptive_codec.audio import load_audio, resample, to_mono
    from adaptive_codec.backbone.losses import rate_bits
    from adaptive_codec.backbone.weights import load_weights
    from adaptive_codec.resources import example_path, weights_dir

    model, _ = load_weights(weights_dir() / "backbone.safetensors")
    audio, info = load_audio(example_path("speech"))
    x = np.asarray(resample(to_mono(audio), info.sample_rate_hz, 24000), np.float32)[: 3 * 24000]
    kbps = bench_script("weights_ab").index_kbps(model, x, "speech", 6)

    with torch.no_grad():
        cond = model.profile_vector("speech")[None, None, :]
        codes = model.encode_codes(torch.from_numpy(x)[None], cond, 6)
        prior = model.prior_logits[model.config.profiles.index("speech")][None]
        # rate_bits walks the levels of its soft assignments: 6 dummy ones
        soft = [torch.zeros(1, codes.shape[-1], prior.shape[-1]) for _ in range(6)]
        _, per_frame = rate_bits(soft, codes, prior, torch.tensor([6]))
    frames_per_s = codes.shape[-1] / (len(x) / 24000)
    assert kbps == pytest.approx(float(per_frame) * frames_per_s / 1000, rel=1e-4)
    assert 0.5 < kbps < 6 * model.config.bits_per_index * frames_per_s / 1000


@pytest.mark.parametrize("args, message", [
    (["--corpus", "{tmp}/nowhere", "{weights}"], "error: no corpus at"),
    (["--corpus", "{corpus}", "{tmp}/missing.safetensors"], "no such weights file"),
    (["--corpus", "{corpus}", "--depths", "4,x", "{weights}"], "expected integers"),
])
def test_bad_arguments_are_one_line_errors(bench_script, tmp_path, capsys, args, message):
    from adaptive_codec.resources import weights_dir

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "manifest.csv").write_text("path,label,source\n")
    fill = {"tmp": tmp_path, "corpus": tmp_path / "corpus", "weights": weights_dir() / "backbone.safetensors"}
    assert bench_script("weights_ab").main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_file_that_is_not_weights_is_a_one_line_error(bench_script, tmp_path, capsys):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "manifest.csv").write_text("path,label,source\n")
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not safetensors")
    assert bench_script("weights_ab").main(["--corpus", str(tmp_path / "corpus"), str(bogus)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable safetensors" in err[0]


def test_score_reports_each_metric_per_depth(bench_script):
    pytest.importorskip("visqol", reason="visqol-python comes with the bench extra")
    from adaptive_codec.audio import load_audio, resample, to_mono
    from adaptive_codec.resources import example_path, weights_dir

    audio, info = load_audio(example_path("speech"))
    x = np.asarray(resample(to_mono(audio), info.sample_rate_hz, 24000), np.float32)[: 3 * 24000]
    out = bench_script("weights_ab").score(weights_dir() / "backbone.safetensors", {"speech": [(x, 24000)]}, [2, 8])
    assert set(out) == {f"speech {m}@{d}" for m in ("mel", "PESQ-WB", "STOI", "ViSQOL") for d in (2, 8)} | {"speech kbps@8"}
    # more levels, better on every metric of a real clip
    assert out["speech mel@8"] < out["speech mel@2"] and out["speech STOI@8"] > out["speech STOI@2"]
    assert 1.0 <= out["speech ViSQOL@2"] < out["speech ViSQOL@8"] <= 5.0


def test_native_rate_scores_a_16_khz_clip_on_its_own_band(bench_script):
    """--native-rate: the clip is coded at 24 kHz and scored at 16 kHz against the untouched original."""
    from adaptive_codec.audio import load_audio, resample, to_mono
    from adaptive_codec.resources import example_path, weights_dir

    audio, info = load_audio(example_path("speech"))
    x16 = np.asarray(resample(to_mono(audio), info.sample_rate_hz, 16000), np.float32)[: 3 * 16000]
    out = bench_script("weights_ab").score(weights_dir() / "backbone.safetensors", {"speech": [(x16, 16000)]},
                                           [8], with_visqol=False)
    assert set(out) == {"speech mel@8", "speech PESQ-WB@8", "speech STOI@8", "speech kbps@8"}
    # a real decode of the clip, not a misaligned or wrong-rate one
    assert out["speech STOI@8"] > 0.8 and out["speech PESQ-WB@8"] > 1.8


@pytest.mark.parametrize("native", [False, True])
def test_an_unreadable_corpus_clip_is_a_one_line_error(bench_script, tmp_path, capsys, native):
    from adaptive_codec.resources import weights_dir

    (tmp_path / "corpus").mkdir()
    # a held-out source (the split is by source) whose file is missing
    (tmp_path / "corpus" / "manifest.csv").write_text(
        "path,label,source\n" + "".join(f"speech/{i}.flac,speech,src{i}\n" for i in range(40)))
    rc = bench_script("weights_ab").main(["--corpus", str(tmp_path / "corpus"), str(weights_dir() / "backbone.safetensors")]
                                         + (["--native-rate"] if native else []))
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot read the held-out clips" in err[0], err
