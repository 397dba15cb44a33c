"""BD table, per-class headline and the routing target on synthetic summaries with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from adaptive_codec.bench.comparison import (BD_COLUMNS, bd_interval, bd_table, headline_table,
                                             routing_target)

RATES = [1.5, 3.0, 6.0, 12.0]
MOS = [2.0, 2.5, 3.0, 3.5]


def _rows(system, kind, rates, visqol, label="mixed"):
    return [{"label": label, "system": system, "kind": kind, "nominal_kbps": n,
             "bitrate_kbps": r, "visqol": q} for n, r, q in zip(RATES, rates, visqol)]


def _summary(auto_factor_vs_speech: float, music=None) -> pd.DataFrame:
    """adaptive-auto reaches adaptive-speech's qualities at ``auto_factor_vs_speech`` x its rates."""
    speech_rates = [r * 1.25 for r in RATES]
    rows = (_rows("adaptive-auto", "adaptive", [r * auto_factor_vs_speech for r in speech_rates], MOS)
            + _rows("adaptive-speech", "profile", speech_rates, MOS)
            + _rows("adaptive-music", "profile", [r * 2.0 for r in RATES], music or MOS)
            + _rows("opus", "baseline", [5.0, 5.0, 6.0, 12.0], [2.2, 2.2, 2.9, 2.8])
            + [{"label": "mixed", "system": "flac", "kind": "lossless", "nominal_kbps": math.nan,
                "bitrate_kbps": 300.0, "visqol": math.nan}])
    return pd.DataFrame(rows)


def test_bd_table_pairs_values_and_notes():
    bd = bd_table(_summary(0.8), ["visqol"])
    assert tuple(bd.columns) == BD_COLUMNS
    get = {(r.test, r.anchor): r for r in bd.itertuples()}
    # auto vs every fixed profile and Opus; each profile vs Opus; never FLAC.
    assert set(get) == {("adaptive-auto", "adaptive-music"), ("adaptive-auto", "adaptive-speech"),
                        ("adaptive-auto", "opus"), ("adaptive-music", "opus"),
                        ("adaptive-speech", "opus")}
    assert get[("adaptive-auto", "adaptive-speech")].bd_rate_percent == pytest.approx(-20.0)
    assert get[("adaptive-auto", "adaptive-music")].bd_rate_percent == pytest.approx(-50.0)
    assert get[("adaptive-auto", "adaptive-speech")].note == ""
    opus = get[("adaptive-auto", "opus")]
    # Opus: the duplicate 5 kbps rung is one point; 12 kbps (2.8) is under 6 kbps (2.9).
    assert opus.anchor_points == 2 and opus.dropped_points == 1
    assert "under the upper envelope: anchor 1 of 3" in opus.note
    assert math.isfinite(opus.bd_rate_percent)


def test_routing_target_met_names_the_best_profile():
    target = routing_target(bd_table(_summary(0.8), ["visqol"]))
    # auto saves 20 % vs speech and 50 % vs music: speech is the best fixed profile.
    assert target.verdict == "met" and target.best_profile == "adaptive-speech"
    assert target.bd_rate_percent == pytest.approx(-20.0)
    assert "-20.0 % against adaptive-speech" in target.sentence and target.sentence.endswith("met")
    assert set(target.comparisons.anchor) == {"adaptive-speech", "adaptive-music", "opus"}


def test_routing_target_not_met():
    target = routing_target(bd_table(_summary(0.9), ["visqol"]))
    assert target.verdict == "not met" and target.best_profile == "adaptive-speech"
    assert target.bd_rate_percent == pytest.approx(-10.0)
    assert "NOT MET" in target.sentence


def test_routing_target_undetermined_when_a_profile_is_na():
    # Music's quality never rises with rate: its BD-rate is n/a, and the one
    # computed (-20 % vs speech) does not decide the target on its own.
    bd = bd_table(_summary(0.8, music=[3.0, 2.9, 2.8, 2.7]), ["visqol"])
    target = routing_target(bd)
    assert target.verdict == "undetermined" and target.best_profile == "adaptive-speech"
    assert "adaptive-music: BD-rate n/a: anchor quality does not rise with rate" in target.sentence
    # ...but one computed BD-rate above the threshold decides it.
    bd = bd_table(_summary(0.95, music=[3.0, 2.9, 2.8, 2.7]), ["visqol"])
    assert routing_target(bd).verdict == "not met"


def test_routing_target_without_mixed_files():
    bd = bd_table(_summary(0.8), ["visqol"])
    target = routing_target(bd, label="speech")
    assert target.verdict == "undetermined" and "no speech files" in target.sentence


def test_headline_table_per_class():
    summary = pd.concat([_summary(0.8), pd.DataFrame(
        _rows("adaptive-auto", "adaptive", RATES, MOS, label="speech")
        + _rows("adaptive-speech", "profile", RATES, MOS, label="speech"))])
    head = headline_table(bd_table(summary, ["visqol"])).set_index("label")
    assert head.loc["mixed", "best fixed profile"] == "adaptive-speech"
    assert head.loc["mixed", "BD-rate vs best fixed profile (%)"] == pytest.approx(-20.0)
    assert head.loc["speech", "BD-rate vs best fixed profile (%)"] == pytest.approx(0.0)
    assert math.isnan(head.loc["speech", "BD-rate vs Opus (%)"])  # no Opus rows for speech


def _per_clip(n_clips: int, test_factor: float, noise: float, seed: int = 0) -> pd.DataFrame:
    """Per-clip results: each clip's curve is MOS + a clip offset (+ noise on the test system);
    the test system spends ``test_factor`` x the anchor's bits."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_clips):
        offset = rng.normal(0, 0.3)
        for system, factor, jitter in (("anchor", 1.0, 0.0), ("test", test_factor, noise)):
            for n, q in zip(RATES, MOS):
                rows.append({"clip": f"c{c}", "label": "mixed", "system": system, "nominal_kbps": n,
                             "bitrate_kbps": n * factor, "visqol": q + offset + rng.normal(0, jitter) if jitter else q + offset,
                             "error": ""})
    return pd.DataFrame(rows)


def test_bd_interval_of_a_clear_saving_excludes_zero():
    iv = bd_interval(_per_clip(8, 0.8, 0.0), "mixed", "test", "anchor", "visqol", n_resamples=200)
    # Every clip saves exactly 20 %: the clip offsets shift both curves alike (paired draw).
    assert iv.n_clips == 8 and iv.rate_valid == 200 and iv.share_test_cheaper == 1.0
    assert iv.rate_low == pytest.approx(-20.0, abs=1.0) and iv.rate_high == pytest.approx(-20.0, abs=1.0)
    assert "fewer bits in 100% of 200 resamples" in iv.sentence("mixed files")


def test_bd_interval_of_noise_straddles_zero():
    iv = bd_interval(_per_clip(10, 1.0, 0.15, seed=3), "mixed", "test", "anchor", "visqol",
                     n_resamples=300, level=0.9)
    assert iv.rate_low < 0 < iv.rate_high
    assert iv.quality_low < 0 < iv.quality_high
    assert 0.05 < iv.share_test_cheaper < 0.95
    again = bd_interval(_per_clip(10, 1.0, 0.15, seed=3), "mixed", "test", "anchor", "visqol",
                        n_resamples=300, level=0.9)
    assert again == iv  # seeded


def test_bd_interval_needs_two_clips():
    iv = bd_interval(_per_clip(1, 0.8, 0.0), "mixed", "test", "anchor", "visqol")
    assert iv.n_clips == 1 and math.isnan(iv.rate_low)
    assert iv.sentence() == "no bootstrap interval: 1 clips"
    with pytest.raises(ValueError, match="level"):
        bd_interval(_per_clip(3, 0.8, 0.0), "mixed", "test", "anchor", "visqol", level=1.5)
