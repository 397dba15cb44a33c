"""BD-rate / BD-quality on synthetic curves with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptive_codec.bench.bd_rate import bd_quality, bd_rate_percent

RATES = np.array([1.5, 3.0, 6.0, 12.0])


def _quality(rate_kbps):
    # A concave, strictly increasing rate-quality curve (MOS-like).
    return 1.0 + 3.5 * (1 - np.exp(-np.asarray(rate_kbps) / 5.0))


@pytest.mark.parametrize("method", ["cubic", "pchip"])
@pytest.mark.parametrize("factor", [0.5, 0.8, 1.0, 1.25])
def test_scaled_rate_gives_known_bd_rate(method, factor):
    # Test = the anchor's qualities reached at factor x its rates: BD-rate is
    # exactly (factor - 1) * 100 % because log R differs by log(factor) everywhere.
    q = _quality(RATES)
    got = bd_rate_percent(RATES, q, RATES * factor, q, method=method)
    assert got == pytest.approx((factor - 1) * 100, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_quality_offset_gives_known_bd_quality(method):
    q = _quality(RATES)
    assert bd_quality(RATES, q, RATES, q + 0.3, method=method) == pytest.approx(0.3, abs=1e-9)
    assert bd_quality(RATES, q, RATES, q - 0.1, method=method) == pytest.approx(-0.1, abs=1e-9)


def test_log_linear_curves_hand_value():
    # Anchor q = ln R, test q = ln R + ln 2 (= the anchor at twice the rate):
    # the test needs half the rate -> -50 %; at equal rate it is ln 2 better.
    rates = np.array([2.0, 4.0, 8.0, 16.0])
    qa, qt = np.log(rates), np.log(rates) + math.log(2)
    assert bd_rate_percent(rates, qa, rates, qt) == pytest.approx(-50.0, abs=1e-9)
    assert bd_quality(rates, qa, rates, qt) == pytest.approx(math.log(2), abs=1e-9)


def test_partial_overlap_and_unsorted_points():
    q = _quality(RATES)
    # Shifted ladder (only part of the range overlaps), points given in any order.
    rates_t = RATES[::-1] * 0.7
    got = bd_rate_percent(RATES, q, rates_t, _quality(RATES[::-1]))
    assert got == pytest.approx(-30.0, abs=1e-9)


def test_degenerate_inputs_are_nan():
    q = _quality(RATES)
    assert math.isnan(bd_rate_percent(RATES[:1], q[:1], RATES, q))
    assert math.isnan(bd_rate_percent(RATES, q, RATES, q + 10))  # no quality overlap
    assert math.isnan(bd_rate_percent(RATES, [np.nan] * 4, RATES, q))


def test_pchip_rejects_non_monotone_and_bad_method():
    with pytest.raises(ValueError, match="monotone"):
        bd_rate_percent(RATES, [1, 2, 1.5, 3], RATES, [1, 2, 2.5, 3], method="pchip")
    with pytest.raises(ValueError, match="unknown BD method"):
        bd_rate_percent(RATES, _quality(RATES), RATES, _quality(RATES), method="akima")
