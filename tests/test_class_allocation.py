"""benchmarks/class_allocation.py: the predicted mixture curve and the decision rule."""

from __future__ import annotations

import math

import pytest


def _tables(ca):
    return {
        "speech": ca.DepthTable(kbps=(1.0, 2.0, 3.0), visqol=(3.0, 3.5, 4.0), clips=2),
        "music": ca.DepthTable(kbps=(2.0, 4.0, 6.0), visqol=(2.0, 3.0, 3.6), clips=2),
        "ambient": ca.DepthTable(kbps=(0.5, 1.0, 1.5), visqol=(4.0, 4.1, 4.2), clips=2),
    }


def test_mixture_curve_is_the_share_weighted_mean_per_rung(bench_script):
    ca = bench_script("class_allocation")
    tables = _tables(ca)
    depths = [{"speech": 1, "music": 2, "ambient": 3}, {"speech": 3, "music": 3, "ambient": 1}]
    rates, quals = ca.mixture_curve(tables, depths)
    assert rates == pytest.approx([(1.0 + 4.0 + 1.5) / 3, (3.0 + 6.0 + 0.5) / 3])
    assert quals == pytest.approx([(3.0 + 3.0 + 4.2) / 3, (4.0 + 3.6 + 4.0) / 3])
    rates, quals = ca.mixture_curve(tables, depths, {"speech": 1, "music": 0, "ambient": 1})
    assert rates == pytest.approx([(1.0 + 1.5) / 2, (3.0 + 0.5) / 2])
    with pytest.raises(ValueError, match="weights"):
        ca.mixture_curve(tables, depths, {"speech": 0, "music": 0, "ambient": 0})


def test_moving_bits_to_the_steeper_class_predicts_a_saving(bench_script):
    ca = bench_script("class_allocation")
    from adaptive_codec.bench.bd_rate import bd_rate_percent

    tables = _tables(ca)
    # Ambient is nearly flat, music steep: ambient's bits buy more as music's.
    even = [{"speech": d, "music": d, "ambient": d} for d in (1, 2, 3)]
    tilted = [{"speech": d, "music": d, "ambient": 1} for d in (1, 2, 3)]
    assert bd_rate_percent(*ca.mixture_curve(tables, even), *ca.mixture_curve(tables, tilted)) < 0



@pytest.mark.parametrize("train, test, chosen", [
    ({"s": 0.0, "a": -5.0, "b": -4.0}, {"a": -1.0, "b": -9.0}, "a"),  # training split decides
    ({"s": 0.0, "a": -2.0}, {"a": -9.0}, "s"),                      # not past --min-gain
    ({"s": 0.0, "a": -5.0}, {"a": +0.5}, "s"),                      # held-out disagrees
    ({"s": 0.0, "a": -5.0}, {"a": math.nan}, "s"),                  # held-out n/a
    ({"s": math.nan, "a": math.nan}, {}, "s"),                      # nothing measurable
])
def test_choose(bench_script, train, test, chosen):
    ca = bench_script("class_allocation")
    got, why = ca.choose(train, test, "s", -3.0)
    assert got == chosen and why


def test_mixed_parts_reads_the_manifest_source_lists(bench_script, tmp_path):
    ca = bench_script("class_allocation")
    (tmp_path / "manifest.csv").write_text(
        "path,label,source,license\n"
        "speech/a.flac,speech,somewhere,cc0\n"
        'mixed/m0.flac,mixed,"concatenation (hard cuts) of: speech/a.flac; music/b.flac",derived\n'
        'mixed/m1.flac,mixed,"concatenation (0.5 s crossfades) of: music/b.flac; ambient/c.flac",derived\n'
        "mixed/m2.flac,mixed,hand-made,derived\n")
    assert ca.mixed_parts(tmp_path) == {"speech/a.flac", "music/b.flac", "ambient/c.flac"}


def test_sample_corpus_clips_is_seeded_sorted_and_honours_exclude(corpus_dir):
    from adaptive_codec.train.codec_data import corpus_clips, sample_corpus_clips

    every = sample_corpus_clips(corpus_dir, "train", "music")
    assert every == sorted(c.path for c in corpus_clips(corpus_dir, "train") if c.label == "music")
    some = sample_corpus_clips(corpus_dir, "train", "music", limit=5, seed=3)
    assert len(some) == 5 and some == sorted(some) and set(some) <= set(every)
    assert sample_corpus_clips(corpus_dir, "train", "music", limit=5, seed=3) == some
    assert sample_corpus_clips(corpus_dir, "train", "music", limit=5, seed=4) != some
    gone = {p.relative_to(corpus_dir).as_posix() for p in some[:2]}
    rest = sample_corpus_clips(corpus_dir, "train", "music", exclude=gone)
    assert len(rest) == len(every) - 2 and not set(some[:2]) & set(rest)


def test_a_corrupt_tables_cache_is_a_one_line_error(bench_script, corpus_dir, tmp_path, capsys):
    ca = bench_script("class_allocation")
    bad = tmp_path / "tables.json"
    bad.write_text("{not json")
    assert ca.main(["--corpus", str(corpus_dir), "--tables", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad}: unreadable tables cache") and "\n" not in err


def test_a_cache_of_other_settings_is_refused(bench_script, corpus_dir, tmp_path, capsys):
    ca = bench_script("class_allocation")
    cache = tmp_path / "tables.json"
    cache.write_text('{"settings": {"weights": "someone-else"}}')
    assert ca.main(["--corpus", str(corpus_dir), "--tables", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {cache} holds tables measured with") and "\n" not in err
