"""benchmarks/entropy_context.py: the parametric context model finds structure that is there, and only then."""

from __future__ import annotations

import numpy as np


K = 64


def _geometry(rng):
    """Codebooks and projections of two RVQ levels (K = 64, code_dim 8, latent_dim 6); level 1 reuses level 0's book."""
    book = rng.standard_normal((K, 8))
    book /= np.linalg.norm(book, axis=1, keepdims=True)
    in_weights = [rng.standard_normal((8, 6)) for _ in range(2)]
    out_layers = [(rng.standard_normal((6, 8)), np.zeros(6)) for _ in range(2)]
    return [book, book], in_weights, out_layers


def _codes(rng, frames: int, dependent: bool) -> np.ndarray:
    """Level 1 copies level 0's index when ``dependent`` (a linear function of the previous level's codeword)."""
    level0 = rng.integers(0, K, frames)
    return np.stack([level0, level0.copy() if dependent else rng.integers(0, K, frames)])


def _held_out_bits(script, dependent: bool) -> float:
    from adaptive_codec.entropy.tables import EntropyModel

    books, in_w, out_l = _geometry(np.random.default_rng(0))
    train = _codes(np.random.default_rng(1), 4000, dependent)
    held = _codes(np.random.default_rng(2), 1000, dependent)
    model = EntropyModel.uniform(1, 2, K)
    x = script.context_features(train, books, in_w, out_l, 1, same_level=False)[2:-2]
    tab = script.table_log_probs(model, train, 0, 1)[2:-2]
    w, kappa, power = script.fit_level(x, train[1][2:-2], tab, books[1])
    hx = script.context_features(held, books, in_w, out_l, 1, same_level=False)[2:-2]
    htab = script.table_log_probs(model, held, 0, 1)[2:-2]
    return float(script.code_lengths((hx @ w) @ books[1].T, htab, held[1][2:-2], kappa, power).mean())


def test_predictable_level_costs_fewer_bits(bench_script):
    script = bench_script("entropy_context")
    assert _held_out_bits(script, dependent=True) < 2.0  # log2(64) = 6 bits without the context


def test_independent_level_costs_the_table(bench_script):
    script = bench_script("entropy_context")
    # No structure: the fit must fall back to (about) the uniform table, not overfit below it.
    assert abs(_held_out_bits(script, dependent=False) - 6.0) < 0.1


def test_features_see_only_lower_levels_unless_asked(bench_script):
    script = bench_script("entropy_context")
    books, in_w, out_l = _geometry(np.random.default_rng(0))
    codes = _codes(np.random.default_rng(3), 50, dependent=False)
    lower = script.context_features(codes, books, in_w, out_l, 1, same_level=False)
    changed = codes.copy()
    changed[1] = (changed[1] + 1) % K  # the level being predicted
    assert np.array_equal(lower, script.context_features(changed, books, in_w, out_l, 1, same_level=False))
    one = codes.copy()
    one[1, 25] = (one[1, 25] + 1) % K
    before = script.context_features(codes, books, in_w, out_l, 1, same_level=True)
    after = script.context_features(one, books, in_w, out_l, 1, same_level=True)
    # Frame 25's own index never enters its features; its neighbours' features see it.
    assert np.array_equal(before[25], after[25])
    assert not np.array_equal(before[24], after[24]) and not np.array_equal(before[26], after[26])
    with_same = before
    assert lower.shape[1] + 4 * 8 == with_same.shape[1]


def test_missing_corpus_is_a_one_line_error(bench_script, tmp_path, capsys):
    assert bench_script("entropy_context").main(["--corpus", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: corpus not found")


def test_bad_arguments_are_one_line_errors(bench_script, tmp_path, capsys):
    script = bench_script("entropy_context")
    assert script.main(["--corpus", str(tmp_path), "--minutes", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --minutes must be > 0, got 0"
    (tmp_path / "cache").mkdir()
    assert script.main(["--corpus", str(tmp_path), "--cache", str(tmp_path / "cache"),
                        "--weights", str(tmp_path / "nope.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: backbone weights not found")


def test_default_caches_are_the_ones_train_codec_builds(bench_script, tmp_path):
    from adaptive_codec.train.cache_paths import cache_dir_for

    script = bench_script("entropy_context")
    caches = script.default_caches()
    # Same folders as `train codec --extra DIR` (default cap 4 h) makes, one per --extra folder.
    assert caches == [cache_dir_for(d, extra_hours=4.0) for d in script.DEFAULT_EXTRA]
    assert caches[0].name.startswith("train-pool-all4-")
    # A corpus's training split, another cap and another folder are other caches.
    corpus = cache_dir_for(tmp_path / "corpus", tmp_path)
    assert corpus.parent == tmp_path and corpus.name.startswith("corpus-train-")
    assert cache_dir_for(tmp_path / "corpus", tmp_path, 4.0) != corpus
    assert cache_dir_for(tmp_path / "pool", tmp_path, 4.0) != cache_dir_for(tmp_path / "pool", tmp_path, 2.0)
    assert cache_dir_for(tmp_path / "a" / "pool", tmp_path, 4.0) != cache_dir_for(tmp_path / "b" / "pool", tmp_path, 4.0)
