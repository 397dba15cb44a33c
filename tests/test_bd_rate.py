"""BD-rate / BD-quality on synthetic curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptive_codec.bench.bd_rate import bd_compare, bd_quality, bd_rate_percent, upper_envelope

RATES = np.array([1.5, 3.0, 6.0, 12.0])


def _quality(rate_kbps):
    # A concave, strictly increasing rate-quality curve (MOS-like).
    return 1.0 + 3.5 * (1 - np.exp(-np.asarray(rate_kbps) / 5.0))


@pytest.mark.parametrize("method", ["pchip", "cubic"])
@pytest.mark.parametrize("factor", [0.5, 0.8, 1.0, 1.25])
def test_scaled_rate_gives_known_bd_rate(method, factor):
    # Test = the anchor's qualities reached at factor x its rates: BD-rate is
    # exactly (factor - 1) * 100 % because log R differs by log(factor) everywhere.
    q = _quality(RATES)
    got = bd_compare(RATES, q, RATES * factor, q, method=method)
    assert got.rate_percent == pytest.approx((factor - 1) * 100, abs=1e-9)
    assert got.rate_reason == "" and got.dropped_points == 0
    assert got.quality_overlap == pytest.approx(1.0)
    assert (got.quality_low, got.quality_high) == pytest.approx((q.min(), q.max()))


def test_default_method_is_pchip_and_80_percent_rate_is_minus_20():
    q = _quality(RATES)
    assert bd_rate_percent(RATES, q, 0.8 * RATES, q) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate_percent(RATES, q, 0.8 * RATES, q) == bd_rate_percent(
        RATES, q, 0.8 * RATES, q, method="pchip")


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_quality_offset_gives_known_bd_quality(method):
    q = _quality(RATES)
    assert bd_quality(RATES, q, RATES, q + 0.3, method=method) == pytest.approx(0.3, abs=1e-9)
    assert bd_quality(RATES, q, RATES, q - 0.1, method=method) == pytest.approx(-0.1, abs=1e-9)


def test_log_linear_curves_hand_value():
    # Anchor q = ln R, test q = ln R + ln 2 (= the anchor at twice the rate):
    # the test needs half the rate -> -50 %; at equal rate it is ln 2 better.
    # PCHIP reproduces straight lines exactly, so the value is exact.
    rates = np.array([2.0, 4.0, 8.0, 16.0])
    qa, qt = np.log(rates), np.log(rates) + math.log(2)
    result = bd_compare(rates, qa, rates, qt)
    assert result.rate_percent == pytest.approx(-50.0, abs=1e-9)
    assert result.quality == pytest.approx(math.log(2), abs=1e-9)
    # Only [ln 4, ln 16] of the union [ln 2, ln 32] is shared.
    assert result.quality_overlap == pytest.approx(2 / 4)


def test_partial_overlap_and_unsorted_points():
    q = _quality(RATES)
    # Shifted ladder (only part of the range overlaps), points given in any order.
    rates_t = RATES[::-1] * 0.7
    got = bd_rate_percent(RATES, q, rates_t, _quality(RATES[::-1]))
    assert got == pytest.approx(-30.0, abs=1e-9)


def test_lower_is_better_metric():
    # A distance (dB, lower is better) falling with rate; test = anchor at 0.8x rate.
    dist = 10.0 - 2.0 * np.log2(RATES)
    result = bd_compare(RATES, dist, 0.8 * RATES, dist, higher_is_better=False)
    assert result.rate_percent == pytest.approx(-20.0, abs=1e-9)
    # At equal rate the test is log2(1/0.8) * 2 dB *lower* (better): negative.
    assert result.quality == pytest.approx(-2.0 * math.log2(1 / 0.8), abs=1e-9)
    assert (result.quality_low, result.quality_high) == pytest.approx((dist.min(), dist.max()))


def test_upper_envelope_drops_points_a_cheaper_point_beats():
    rate, quality = upper_envelope([12.0, 1.5, 3.0, 6.0, 6.0], [2.4, 2.0, 2.5, 2.3, 2.6])
    # 12 kbps (2.4) is beaten by 6 kbps (2.6); the duplicate 6 kbps keeps its best value.
    assert rate.tolist() == [1.5, 3.0, 6.0]
    assert quality.tolist() == [2.0, 2.5, 2.6]
    r, q = upper_envelope([1.0, 2.0, 4.0], [3.0, 3.0, 2.0])  # never rises: one point
    assert r.tolist() == [1.0] and q.tolist() == [3.0]


def test_non_monotone_curves_use_their_envelope():
    # Both curves dip at 6 kbps and fall at the top rung (as the real 0.dev1600
    # curves do); the test is the anchor at 0.8x rate. The envelope drops the
    # same 2 points of each curve and the answer stays exactly -20 %.
    q = np.array([2.0, 2.5, 2.4, 3.0, 2.9])
    rates = np.array([1.5, 3.0, 6.0, 12.0, 24.0])
    result = bd_compare(rates, q, 0.8 * rates, q)
    assert result.rate_percent == pytest.approx(-20.0, abs=1e-9)
    assert result.dropped_points == 4 and result.anchor_points == result.test_points == 3


def test_nearly_flat_noisy_curves_stay_bounded():
    # The real mixed-file ViSQOL curves of weights 0.dev1600 (adaptive-auto vs
    # adaptive-ambient): the old cubic fit on all points gave +6.7e35 %. PCHIP on
    # the envelope never extrapolates, so the rate ratio stays within the rates seen.
    auto = ([1.72, 3.21, 6.09, 12.3], [3.41, 3.43, 3.52, 3.41])
    ambient = ([1.60, 3.08, 5.94, 12.1], [3.41, 3.42, 3.52, 3.40])
    result = bd_compare(*ambient, *auto)
    assert math.isfinite(result.rate_percent)
    low, high = 1.60 / 6.09, 6.09 / 1.60
    assert 100 * (low - 1) <= result.rate_percent <= 100 * (high - 1)
    assert result.dropped_points == 2


def test_quality_that_never_rises_is_na_with_reason():
    q = _quality(RATES)
    result = bd_compare(RATES, [3.0, 2.9, 2.8, 2.7], RATES, q)
    assert math.isnan(result.rate_percent) and math.isnan(result.quality)
    assert result.rate_reason.startswith("anchor quality does not rise with rate")
    assert result.quality_reason == result.rate_reason


def test_non_overlapping_curves_are_na_with_reason():
    q = _quality(RATES)
    result = bd_compare(RATES, q, RATES, q + 10)
    assert math.isnan(result.rate_percent)
    assert "quality ranges do not overlap" in result.rate_reason
    assert "(anchor 1.91-4.18, test 11.9-14.2)" in result.rate_reason
    # Same rates, so BD-quality is still defined: +10 everywhere.
    assert result.quality == pytest.approx(10.0) and result.quality_reason == ""
    far = bd_compare(RATES, q, RATES * 100, q)
    assert math.isnan(far.quality) and "rate ranges do not overlap" in far.quality_reason


def test_degenerate_inputs_are_nan():
    q = _quality(RATES)
    assert math.isnan(bd_rate_percent(RATES[:1], q[:1], RATES, q))
    assert bd_compare(RATES[:1], q[:1], RATES, q).rate_reason == "anchor has 1 usable point (needs 2)"
    nan = bd_compare(RATES, q, RATES, [np.nan] * 4)
    assert math.isnan(nan.rate_percent) and nan.rate_reason == "test has 0 usable points (needs 2)"


def test_bad_method_and_shapes():
    with pytest.raises(ValueError, match="unknown BD method"):
        bd_rate_percent(RATES, _quality(RATES), RATES, _quality(RATES), method="akima")
    with pytest.raises(ValueError, match="equal length"):
        bd_rate_percent(RATES, _quality(RATES)[:3], RATES, _quality(RATES))
