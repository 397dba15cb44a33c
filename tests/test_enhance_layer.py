"""The enhancement layer's coder (adaptive_codec.tools.enhance) on real clips: round trip, rate knob, errors.

The "backbone's decoded MDCT" here is the MDCT of the clip at 24 kHz
after an 8-bit requantization and a 6 kHz low-pass (a stand-in with the
backbone's kind of error: small in the low band, everything above): the
coder only needs two MDCTs of the same frames.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from adaptive_codec.audio.resampling import resample
from adaptive_codec.backbone.mdct_numpy import NumpyMDCT
from adaptive_codec.errors import FormatError
from adaptive_codec.tools.enhance import (LayerConfig, band_bins, code_layer, decode_layer, decode_payload,
                                          encode_payload, estimated_bytes, fit_gain, table_digest)
from adaptive_codec.tools.enhance.quantizer import layer_values
from adaptive_codec.tools.enhance.tables import PRECISION_BITS, SCALES, frequency_table

HOP, RATE = 320, 24000
EDGES = band_bins(HOP, RATE)
CHUNK = 450  # frames of a 6 s chunk


def _snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - est).astype(np.float64) ** 2)))


@pytest.fixture(scope="module", params=["music", "speech"])
def pair(request, example_clip):
    audio, sr = example_clip(request.param)
    x = np.asarray(resample(audio.mean(axis=0), sr, RATE), np.float32)[: 6 * RATE]
    rough = np.round(x * 127) / 127
    rough = sosfilt(butter(8, 6000, fs=RATE, output="sos"), rough).astype(np.float32)
    mdct = NumpyMDCT(HOP)
    target, coef = mdct.frames(x), mdct.frames(rough)
    return request.param, target[:CHUNK], coef[:CHUNK]


def test_tables_are_integer_normalised_and_pinned():
    for k in range(1, len(SCALES) + 1):
        t = frequency_table(k)
        assert t.dtype == np.uint32 and t.min() >= 1 and int(t.sum()) == 1 << PRECISION_BITS
        assert np.all(np.diff(t[2047:].astype(np.int64)) <= 0)  # a Laplace: falls away from zero
    # The bytes every decoder must use; a machine building other tables would misdecode.
    assert table_digest() == "6b5d57f107819972d2bb23b67f940d8c71d60f8c57b7d66eafb5d5ec710a5cec"


@pytest.mark.parametrize("predict", [False, True])
def test_round_trip_decodes_the_encoders_values(pair, predict):
    _, target, coef = pair
    cfg = LayerConfig(alpha=1.0, predict=predict)
    q, weights, _ = layer_values(target, coef, 120, cfg, EDGES)
    payload = encode_payload(q, EDGES, cfg.segment_frames, 120, weights)
    q2, gain, w2 = decode_payload(payload, q.shape[0], EDGES, cfg.segment_frames, predict)
    assert gain == 120 and np.array_equal(q2, q)
    assert (w2 is None) == (not predict) and (weights is None or np.array_equal(w2, weights))
    # The byte estimate the rate control relies on is close to the real payload.
    assert abs(estimated_bytes(q, EDGES, cfg.segment_frames, predict) - len(payload)) <= 0.01 * len(payload) + 4


def test_gain_fits_the_budget_and_more_bits_give_more_snr(pair):
    name, target, coef = pair
    cfg = LayerConfig(alpha=1.0, predict=name == "music")
    base = _snr_db(target, coef)
    snrs = []
    for budget in (1500, 4500, 13500):  # 2, 6, 18 kbps over 6 s
        payload, out = fit_gain(target, coef, budget, cfg, EDGES)
        assert budget * 0.9 <= len(payload) <= budget
        decoded = decode_layer(payload, coef, cfg, EDGES)
        assert np.array_equal(decoded, out)  # the decoder rebuilds exactly what the encoder measured
        snrs.append(_snr_db(target, decoded))
    assert base < snrs[0] < snrs[1] < snrs[2]
    assert snrs[2] > base + 3


def test_chunks_decode_alone(pair):
    _, target, coef = pair
    cfg = LayerConfig(alpha=1.0, predict=True)
    half = CHUNK // 2
    p1, o1 = code_layer(target[:half], coef[:half], 124, cfg, EDGES)
    p2, o2 = code_layer(target[half:], coef[half:], 124, cfg, EDGES)
    assert np.array_equal(decode_layer(p2, coef[half:], cfg, EDGES), o2)
    assert np.array_equal(decode_layer(p1, coef[:half], cfg, EDGES), o1)


def test_corrupt_payloads_are_clear_errors(pair):
    _, target, coef = pair
    cfg = LayerConfig(alpha=1.0, predict=True)
    payload, _ = code_layer(target, coef, 124, cfg, EDGES)
    with pytest.raises(FormatError, match="shorter than its"):
        decode_layer(payload[:10], coef, cfg, EDGES)
    with pytest.raises(FormatError, match="whole 32-bit words"):
        decode_layer(payload[:-1], coef, cfg, EDGES)
    with pytest.raises(FormatError, match="prediction weight nibble"):
        decode_layer(payload[:1] + b"\xff" + payload[2:], coef, cfg, EDGES)


def test_all_zero_chunk_codes_no_words():
    z = np.zeros((CHUNK, HOP), np.float32)
    cfg = LayerConfig()
    payload, out = code_layer(z, z, 128, cfg, EDGES)
    assert len(payload) == 1 + (6 * 20 + 1) // 2 and not out.any()
    assert not decode_layer(payload, z, cfg, EDGES).any()


@pytest.mark.parametrize("kwargs, message", [({"alpha": -1}, "alpha"), ({"floor": 0}, "floor"),
                                             ({"deadzone": 0.5}, "deadzone"), ({"spread": 2}, "spread"),
                                             ({"segment_frames": 0}, "segment_frames")])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LayerConfig(**kwargs)
