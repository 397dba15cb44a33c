"""Entropy coding of RVQ indices: round trips, determinism, integer tables, savings."""

from __future__ import annotations

import numpy as np
import pytest

from adaptive_codec.entropy.coder import decode_frames, encode_frames, fixed_length_bits, ideal_bits
from adaptive_codec.entropy.tables import EntropyModel, quantize_probabilities, symbol_contexts
from adaptive_codec.errors import FormatError

K = 1024
LEVELS = 8


def _model(seed: int = 0, scale: float = 3.0, contexts: int = 5) -> EntropyModel:
    """Random tables with ``contexts`` context groups per level (1 = unconditional)."""
    rng = np.random.default_rng(seed)
    if contexts == 1:
        return EntropyModel.from_logits(rng.normal(size=(3, LEVELS, K)) * scale)
    logits = rng.normal(size=(3, LEVELS, contexts, K)) * scale
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    return EntropyModel.from_probabilities(probs, rng.integers(0, contexts, (LEVELS, K)), contexts - 1)


def _masked(codes: np.ndarray, depths: np.ndarray) -> np.ndarray:
    mask = np.arange(codes.shape[0])[:, None] < depths[None, :]
    return np.where(mask, codes, 0)


@pytest.mark.parametrize(
    "seed,n_frames,depth_choices,prior_choices",
    [
        (0, 300, [8], [0]),
        (1, 257, [1, 2, 4, 8], [0, 1, 2]),
        (2, 1, [3], [2]),
        (3, 500, [0, 5], [1]),
        (4, 64, [0, 1, 2, 3, 4, 5, 6, 7, 8], [0, 1, 2]),
    ],
)
@pytest.mark.parametrize("contexts", [1, 5])
def test_round_trip(seed, n_frames, depth_choices, prior_choices, contexts):
    rng = np.random.default_rng(seed)
    model = _model(seed, contexts=contexts)
    codes = rng.integers(0, K, (LEVELS, n_frames))
    depths = rng.choice(depth_choices, n_frames)
    priors = rng.choice(prior_choices, n_frames)
    data = encode_frames(model, codes, depths, priors)
    assert len(data) % 4 == 0
    out = decode_frames(model, data, depths, priors, LEVELS)
    assert out.dtype == np.int64 and out.shape == (LEVELS, n_frames)
    np.testing.assert_array_equal(out, _masked(codes, depths))


def test_empty_input():
    model = _model()
    empty = np.zeros(0, np.int64)
    assert encode_frames(model, np.zeros((LEVELS, 0), np.int64), empty, empty) == b""
    assert decode_frames(model, b"", empty, empty, LEVELS).shape == (LEVELS, 0)
    zero_depth = np.zeros(5, np.int64)
    assert encode_frames(model, np.zeros((LEVELS, 5)), zero_depth, zero_depth) == b""
    np.testing.assert_array_equal(decode_frames(model, b"", zero_depth, zero_depth, LEVELS), 0)


def test_ignores_inactive_levels():
    rng = np.random.default_rng(5)
    model = _model()
    codes = rng.integers(0, K, (LEVELS, 50))
    depths = np.full(50, 3)
    priors = np.zeros(50, np.int64)
    garbage = codes.copy()
    garbage[3:] = -7  # out-of-range values above the depth must not matter
    assert encode_frames(model, codes, depths, priors) == encode_frames(model, garbage, depths, priors)


def test_deterministic_bytes():
    rng = np.random.default_rng(6)
    codes = rng.integers(0, K, (LEVELS, 200))
    depths = rng.integers(0, LEVELS + 1, 200)
    priors = rng.integers(0, 3, 200)
    a = encode_frames(_model(1), codes, depths, priors)
    b = encode_frames(_model(1), codes, depths, priors)  # a freshly built model
    assert a == b
    assert _model(1).digest() == _model(1).digest()
    assert _model(1).digest() != _model(2).digest()


def test_integer_tables_sum_exactly_and_every_symbol_codable():
    model = EntropyModel.from_logits(np.concatenate([np.full((1, LEVELS, K), -1e4), np.zeros((2, LEVELS, K))]) + np.eye(K)[None, None, 0] * 2e4)
    freqs = model.frequencies
    assert freqs.dtype == np.uint32 and freqs.shape == (3, LEVELS, 1, K)
    assert np.all(freqs.astype(np.int64).sum(-1) == 1 << model.precision_bits)
    assert freqs.min() >= 1
    # Every index, including ones with ~zero learned probability, round-trips.
    codes = np.tile(np.arange(K), (LEVELS, 1))
    depths = np.full(K, LEVELS)
    for prior in range(3):
        priors = np.full(K, prior)
        out = decode_frames(model, encode_frames(model, codes, depths, priors), depths, priors, LEVELS)
        np.testing.assert_array_equal(out, codes)


@pytest.mark.parametrize("precision", [11, 16, 24])
def test_quantize_probabilities_exact(precision):
    rng = np.random.default_rng(precision)
    probs = rng.dirichlet(np.full(K, 0.05), size=4)
    freqs = quantize_probabilities(probs, precision)
    assert np.all(freqs.astype(np.int64).sum(-1) == 1 << precision)
    assert freqs.min() >= 1


def test_from_counts_add_one_smoothing():
    counts = np.zeros((3, 2, K), np.int64)
    counts[0, 0, 7] = 10_000
    model = EntropyModel.from_counts(counts)
    f = model.frequencies[:, :, 0]
    assert np.all(f.astype(np.int64).sum(-1) == 1 << 16)
    assert f[0, 0, 7] > 0.8 * (1 << 16)
    assert f.min() >= 1
    # Uniform counts give (near) uniform tables.
    assert f[1, 1].max() - f[1, 1].min() <= 1


def test_savings_on_skewed_distribution():
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.full(K, 0.02), size=(3, LEVELS))  # heavily skewed, like trained RVQ usage
    n = 3000
    priors = rng.integers(0, 3, n)
    depths = rng.integers(1, LEVELS + 1, n)
    cdf = np.cumsum(p, -1)  # (3, LEVELS, K); inverse-CDF sampling, vectorised per level
    u = rng.random((LEVELS, n))
    codes = np.stack([(u[lv, :, None] > cdf[priors, lv]).sum(-1) for lv in range(LEVELS)]).clip(0, K - 1)
    counts = np.zeros((3, LEVELS, K), np.int64)
    np.add.at(counts, (priors[None, :].repeat(LEVELS, 0), np.arange(LEVELS)[:, None].repeat(n, 1), codes), 1)
    model = EntropyModel.from_counts(counts)
    data = encode_frames(model, codes, depths, priors)
    fixed = fixed_length_bits(depths, K)
    actual = 8 * len(data)
    assert actual < 0.85 * fixed  # >= 15 % saved
    assert abs(actual - ideal_bits(model, codes, depths, priors)) < 0.01 * actual + 64
    np.testing.assert_array_equal(decode_frames(model, data, depths, priors, LEVELS), _masked(codes, depths))


def test_arrays_round_trip_and_digest_check():
    model = _model(3)
    arrays, meta = model.to_arrays()
    import json

    meta = json.loads(json.dumps(meta))  # must be JSON-able
    again = EntropyModel.from_arrays(arrays, meta)
    assert again.digest() == model.digest()
    np.testing.assert_array_equal(again.frequencies, model.frequencies)
    meta["digest"] = "0" * 64
    with pytest.raises(FormatError):
        EntropyModel.from_arrays(arrays, meta)
    bad = arrays["entropy_frequencies"].copy()
    bad[0, 0, 0, 0] += 1  # row no longer sums to 2**precision
    with pytest.raises(FormatError):
        EntropyModel.from_arrays({**arrays, "entropy_frequencies": bad}, {"precision_bits": 16, "start_context": 4})
    with pytest.raises(FormatError):  # a context map pointing past the tables
        EntropyModel.from_arrays({**arrays, "entropy_context_of": arrays["entropy_context_of"] + 5}, {"precision_bits": 16, "start_context": 4})
    # Tables without contexts (shape (priors, levels, K)) still load.
    flat = _model(3, contexts=1)
    again = EntropyModel.from_arrays({"entropy_frequencies": flat.frequencies[:, :, 0]}, {"precision_bits": 16})
    assert again.digest() == flat.digest()


def test_from_logits_accepts_torch():
    torch = pytest.importorskip("torch")
    logits = torch.randn(3, LEVELS, K, generator=torch.Generator().manual_seed(0))
    a = EntropyModel.from_logits(logits)
    b = EntropyModel.from_logits(logits.numpy())
    assert a.digest() == b.digest()


def test_decode_rejects_bad_data():
    rng = np.random.default_rng(8)
    model = _model()
    codes = rng.integers(0, K, (LEVELS, 40))
    depths = np.full(40, 4)
    priors = np.zeros(40, np.int64)
    data = encode_frames(model, codes, depths, priors)
    with pytest.raises(FormatError):
        decode_frames(model, data[:-1], depths, priors, LEVELS)  # not whole words
    with pytest.raises(FormatError):
        decode_frames(model, b"", depths, priors, LEVELS)
    with pytest.raises(FormatError):
        decode_frames(model, b"\0\0\0\0", np.zeros(3), np.zeros(3), LEVELS)  # bytes but no symbols
    with pytest.raises(FormatError):
        decode_frames(model, data, np.full(40, 9), priors, LEVELS)  # depth beyond levels
    with pytest.raises(FormatError):
        decode_frames(model, data, depths, np.full(40, 3), LEVELS)  # unknown prior
    # Corrupt words decode to *something* or fail, but never hang or crash.
    for i in range(0, len(data), 4):
        bad = bytearray(data)
        bad[i] ^= 0xFF
        try:
            out = decode_frames(model, bytes(bad), depths, priors, LEVELS)
            assert out.shape == (LEVELS, 40)
        except FormatError:
            pass


def test_contexts_follow_the_documented_rule():
    model = _model(9)
    codes = np.array([[5, 7, 9, 11], [1, 2, 3, 4]])
    depths = np.array([2, 0, 1, 2])
    ctx0 = symbol_contexts(model, codes, depths, 0)
    # Frame 0 and frame 2 (after an uncoded frame) start fresh; frame 3 follows frame 2.
    assert ctx0[0] == model.start_context and ctx0[2] == model.start_context
    assert ctx0[3] == model.context_of[0, 9]
    ctx1 = symbol_contexts(model, codes, depths, 1)
    assert ctx1[0] == model.context_of[1, 5] and ctx1[3] == model.context_of[1, 11]


def test_digest_covers_context_maps():
    a = _model(4)
    remapped = a.context_of.copy()
    remapped[2, 0] = (remapped[2, 0] + 1) % a.n_contexts
    b = EntropyModel(a.frequencies, remapped, a.start_context, a.precision_bits)
    assert a.digest() != b.digest()
    c = EntropyModel(a.frequencies, a.context_of, (a.start_context + 1) % a.n_contexts, a.precision_bits)
    assert a.digest() != c.digest()


def test_context_model_beats_static_priors_on_residual_structure():
    """Codes whose level l depends on level l-1 (as residual VQ codes do) compress far better with contexts."""
    rng = np.random.default_rng(11)
    groups = 8
    n = 4000
    group_of = rng.integers(0, groups, K)
    # Each group of the level above favours its own small set of 32 codes.
    favoured = rng.integers(0, K, (groups, 32))
    codes = np.zeros((LEVELS, n), np.int64)
    codes[0] = rng.integers(0, K, n)
    for level in range(1, LEVELS):
        g = group_of[codes[level - 1]]
        codes[level] = np.where(rng.random(n) < 0.9, favoured[g, rng.integers(0, 32, n)], rng.integers(0, K, n))
    depths = np.full(n, LEVELS)
    priors = np.zeros(n, np.int64)
    counts = np.zeros((1, LEVELS, groups + 1, K))
    ctx_of = np.tile(group_of, (LEVELS, 1))
    model_shape = EntropyModel.from_probabilities(np.ones((1, LEVELS, groups + 1, K)), ctx_of, groups)
    for level in range(LEVELS):
        np.add.at(counts[0, level], (symbol_contexts(model_shape, codes, depths, level), codes[level]), 1)
    contextual = EntropyModel.from_probabilities(counts + 0.1, ctx_of, groups)
    static = EntropyModel.from_counts(counts.sum(2).astype(np.int64))
    with_ctx = len(encode_frames(contextual, codes, depths, priors))
    without = len(encode_frames(static, codes, depths, priors))
    assert with_ctx < 0.75 * without
    np.testing.assert_array_equal(decode_frames(contextual, encode_frames(contextual, codes, depths, priors), depths, priors, LEVELS), codes)
    assert abs(8 * with_ctx - ideal_bits(contextual, codes, depths, priors)) < 0.01 * 8 * with_ctx + 64


def test_table_file_round_trip(tmp_path):
    model = _model(12)
    path = model.save(tmp_path / "entropy.safetensors", weights_id="0.dev1+abcd", weights_sha256="ab" * 32,
                      provenance={"minutes": 1.5})
    again, meta = EntropyModel.load(path)
    assert again.digest() == model.digest()
    assert meta["weights_id"] == "0.dev1+abcd" and meta["weights_sha256"] == "ab" * 32
    assert meta["provenance"] == {"minutes": 1.5}
    assert again.frequencies.shape == (3, LEVELS, 5, K)
    (tmp_path / "junk.safetensors").write_bytes(b"not a table")
    with pytest.raises(FormatError):
        EntropyModel.load(tmp_path / "junk.safetensors")
