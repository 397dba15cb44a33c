"""Entropy tables tied to weights: fitting, the `train entropy` build, loading, fallback, mismatch."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch

from adaptive_codec.codec import AdaptiveCodec
from adaptive_codec.entropy.selection import ENTROPY_TABLE_NAME, EntropyTableWarning, entropy_model_for
from adaptive_codec.entropy.coder import decode_frames, encode_frames
from adaptive_codec.entropy.tables import EntropyModel
from adaptive_codec.errors import FormatError
from adaptive_codec.train.entropy import EntropyBuildConfig, bits_per_index, fit_context_model

K = 1024


@pytest.fixture(scope="module")
def codec():
    torch.set_num_threads(1)
    return AdaptiveCodec.default()


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory, example_clip):
    """A training-audio cache (the layout `train codec` builds) from 3 s of each bundled example."""
    from adaptive_codec.audio import save_audio
    from adaptive_codec.train.codec_data import Clip, build_cache

    root = tmp_path_factory.mktemp("entropy-cache")
    clips = []
    for label in ("speech", "music", "ambient"):
        audio, sr = example_clip(label)
        path = root / f"{label}.wav"
        save_audio(path, audio[..., : 3 * sr], sr)
        clips.append(Clip(path, label, f"example:{label}"))
    build_cache(clips, root / "cache")
    return root / "cache"


def _markov_codes(rng, n_frames: int, levels: int, group_of: np.ndarray, favoured: np.ndarray) -> np.ndarray:
    """Codes whose level l depends on level l-1's group, as residual VQ codes do."""
    codes = np.zeros((levels, n_frames), np.int64)
    codes[0] = rng.integers(0, K, n_frames)
    for level in range(1, levels):
        g = group_of[codes[level - 1]]
        pick = favoured[g, rng.integers(0, favoured.shape[1], n_frames)]
        codes[level] = np.where(rng.random(n_frames) < 0.8, pick, rng.integers(0, K, n_frames))
    return codes


def _markov_clips(rng, levels: int, groups: int, frames: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Clips of :func:`_markov_codes` with the given frame counts (one context structure), and codebooks."""
    group_of = rng.integers(0, groups, K)
    favoured = rng.integers(0, K, (groups, 16))
    clips = [_markov_codes(rng, n, levels, group_of, favoured) for n in frames]
    return clips, [rng.normal(size=(K, 8)) for _ in range(levels)]


def test_fit_finds_the_context_structure_and_generalises():
    rng = np.random.default_rng(0)
    levels, groups = 4, 8
    clips, books = _markov_clips(rng, levels, groups, [8000] * 4 + [1500])
    train, held_out = clips[:4], clips[4:]
    config = EntropyBuildConfig(groups=groups, cluster_rounds=10, kmeans_rounds=5)
    model = fit_context_model({0: train}, 3, books, config)
    assert model.frequencies.shape == (3, levels, groups + 1, K) and model.start_context == groups
    static = EntropyModel.from_counts(np.stack([np.stack([np.bincount(np.concatenate([t[lv] for t in train]), minlength=K) for lv in range(levels)])] * 3))
    with_ctx = bits_per_index(model, held_out, 0, levels)
    without = bits_per_index(static, held_out, 0, levels)
    assert with_ctx < without - 0.75  # contexts are worth most of a bit per index here
    # A prior without data gets the all-class tables.
    np.testing.assert_array_equal(model.frequencies[1], model.frequencies[2])


def test_expected_level_bits_are_cross_fitted_and_capped():
    from adaptive_codec.train.entropy import expected_level_bits

    levels, groups = 3, 8
    clips, books = _markov_clips(np.random.default_rng(0), levels, groups, [4000] * 4)
    config = EntropyBuildConfig(groups=groups, cluster_rounds=5, kmeans_rounds=5)
    bits = expected_level_bits({0: clips}, 2, books, config)
    assert bits.shape == (2, levels)
    fixed = np.log2(K)
    # Level 0 is uniform: about its fixed length (capped there); deeper levels follow their context.
    assert fixed - 0.2 < bits[0, 0] <= fixed
    assert np.all(bits[0, 1:] < fixed - 1.0)
    # Cross-fitted, so not below what the tables fitted on everything pay on their own codes.
    model = fit_context_model({0: clips}, 2, books, config)
    assert np.all(bits[0] >= model.mean_level_bits(clips, 0) - 0.02)
    np.testing.assert_allclose(bits[1], bits[0])  # a prior without codes gets the others' mean
    # A lone clip cannot be cross-fitted: no fold has data on both sides, so fixed length.
    np.testing.assert_allclose(expected_level_bits({0: clips[:1]}, 1, books, config), fixed)


def test_build_writes_a_table_the_codec_uses(codec, tiny_cache, tmp_path):
    from adaptive_codec.train.entropy import build_entropy_tables

    out = tmp_path / ENTROPY_TABLE_NAME
    lines = []
    config = EntropyBuildConfig(minutes_per_class=0.04, groups=4, cluster_rounds=3, kmeans_rounds=3)
    provenance = build_entropy_tables(codec, [tiny_cache], out, config, echo=lines.append)
    assert out.is_file() and lines and "wrote" in lines[-1]
    assert set(provenance["training_minutes"]) == {"speech", "music", "ambient"}
    model, meta = EntropyModel.load(out)
    assert meta["weights_sha256"] == codec.weights_meta["sha256"]
    assert meta["provenance"]["config"]["groups"] == 4
    # Same weights: the codec takes the table; the stream names it and round-trips.
    loaded = entropy_model_for(codec.backbone, codec.weights_meta, out)
    assert loaded.digest() == model.digest()
    user = AdaptiveCodec(codec.backbone, codec.weights_meta, codec.registry, entropy_model=loaded)
    audio = np.random.default_rng(1).normal(0, 0.05, 24000).astype(np.float32)
    blob = user.encode(audio, 24000, profile="music")
    y, sr = user.decode(blob)
    assert sr == 24000 and y.shape == audio.shape
    # Expected bits per level come with the tables, measured on their training codes.
    assert model.level_bits is not None and model.level_bits.shape == (model.n_priors, model.n_levels)
    assert np.all((model.level_bits > 0) & (model.level_bits <= 16))
    # Deterministic: the same build gives the same table.
    again = build_entropy_tables(codec, [tiny_cache], tmp_path / "again.safetensors", config, echo=lambda _: None)
    assert EntropyModel.load(tmp_path / "again.safetensors")[0].digest() == model.digest()
    assert again["training_minutes"] == provenance["training_minutes"]


def test_collect_codes_caps_each_clip_and_each_class(codec, tiny_cache):
    from adaptive_codec.train.entropy import collect_codes

    bb = codec.backbone
    rate = bb.config.frame_rate_hz
    capped = collect_codes(bb, [tiny_cache], ["speech", "music"], EntropyBuildConfig(minutes_per_class=1.0, max_clip_s=1.0))
    for arrs in capped.values():
        assert arrs and all(a.shape == (bb.config.n_levels, bb.mdct.n_frames(24000)) for a in arrs)
    whole = collect_codes(bb, [tiny_cache], ["speech"], EntropyBuildConfig(minutes_per_class=1.0, max_clip_s=600.0))
    assert whole["speech"][0].shape[1] == pytest.approx(3 * rate, abs=2)  # the whole 3 s clip
    budget = collect_codes(bb, [tiny_cache], ["speech"], EntropyBuildConfig(minutes_per_class=0.02, max_clip_s=600.0))
    assert budget["speech"][0].shape[1] == bb.mdct.n_frames(int(0.02 * 60 * 24000))  # the class budget cuts it


def test_table_for_other_weights_falls_back_with_a_warning(codec, tmp_path):
    rng = np.random.default_rng(2)
    shape = (3, codec.backbone.config.n_levels, 3, K)
    model = EntropyModel.from_probabilities(rng.random(shape) + 0.1, rng.integers(0, 3, shape[1::2]), 2)
    path = model.save(tmp_path / ENTROPY_TABLE_NAME, weights_id="0.dev1+0000", weights_sha256="00" * 32)
    with pytest.warns(EntropyTableWarning, match="built for weights 0.dev1"):
        fallback = entropy_model_for(codec.backbone, codec.weights_meta, path)
    assert fallback.n_contexts == 1
    with pytest.warns(EntropyTableWarning, match="no entropy tables"):
        entropy_model_for(codec.backbone, codec.weights_meta, tmp_path / "missing.safetensors")
    # A stream coded with the fallback is refused by a codec using the shipped table, clearly.
    plain = AdaptiveCodec(codec.backbone, codec.weights_meta, codec.registry, entropy_model=fallback)
    blob = plain.encode(np.zeros(4800, np.float32) + 0.01, 24000, profile="speech")
    if codec.entropy_model.digest() != fallback.digest():
        with pytest.raises(FormatError, match="entropy tables"):
            codec.decode(blob)
    assert plain.decode(blob)[0].shape == (4800,)


def test_shipped_table_matches_the_shipped_weights(codec):
    """The shipped entropy.safetensors was built for the shipped weights (else: rebuild it)."""
    from adaptive_codec.resources import weights_dir

    table = weights_dir() / ENTROPY_TABLE_NAME
    assert table.is_file(), "run `adaptive-codec train entropy` (docs/TRAINING.md)"
    _, meta = EntropyModel.load(table)
    assert meta["weights_sha256"] == codec.weights_meta["sha256"], (
        f"{table} is for {meta['weights_id']}, the weights are {codec.weights_meta['weights_id']}: "
        "rebuild it with `adaptive-codec train entropy` (docs/TRAINING.md)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", EntropyTableWarning)
        AdaptiveCodec.default()
    assert codec.entropy_model.n_contexts > 1


def test_decode_reads_file_objects_from_their_position(codec, example_clip):
    audio, sr = example_clip("speech")
    blob = codec.encode(audio[..., : sr], sr, profile="speech")
    expected, _ = codec.decode(blob)
    got, got_sr = codec.decode(io.BytesIO(blob))
    assert got_sr == sr
    np.testing.assert_array_equal(got, expected)
    fh = io.BytesIO(b"other data" + blob)
    fh.seek(10)
    np.testing.assert_array_equal(codec.decode(fh, start_s=0.2, end_s=0.6)[0], codec.decode(blob, start_s=0.2, end_s=0.6)[0])


def test_real_codes_round_trip_through_the_shipped_tables(codec, example_clip):
    """Codes of real audio, every depth the profiles use, decode bit-exactly."""
    from adaptive_codec.backbone.streaming import encode_signal

    audio, sr = example_clip("music")
    from adaptive_codec.audio import resample, to_mono

    x = np.asarray(resample(to_mono(audio)[: 2 * sr], sr, 24000), np.float32)
    bb = codec.backbone
    n = bb.mdct.n_frames(x.size)
    codes = encode_signal(bb, x, np.repeat(bb.profile_vectors[1][None], n, 0), bb.config.n_levels)
    depths = np.random.default_rng(3).choice([0, 1, 4, 8, 16], n)
    priors = np.full(n, 1)
    data = encode_frames(codec.entropy_model, codes, depths, priors)
    out = decode_frames(codec.entropy_model, data, depths, priors, bb.config.n_levels)
    mask = np.arange(bb.config.n_levels)[:, None] < depths[None]
    np.testing.assert_array_equal(out, np.where(mask, codes, 0))


def test_train_entropy_command(tiny_cache, tmp_path):
    from typer.testing import CliRunner

    from adaptive_codec.cli.app import app

    runner = CliRunner()
    out = tmp_path / "table.safetensors"
    result = runner.invoke(app, ["train", "entropy", "--cache", str(tiny_cache), "--minutes-per-class", "0.04",
                                 "--max-clip-seconds", "2", "--groups", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.is_file()
    assert EntropyModel.load(out)[0].n_contexts == 5
    result = runner.invoke(app, ["train", "entropy", "--out", str(tmp_path / "none.safetensors")])
    assert result.exit_code == 1 and "no training audio" in result.output
    assert "Traceback" not in result.output


def test_level_bits_are_the_mean_code_length_and_survive_a_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    counts = np.zeros((1, 2, 8), np.int64)
    counts[0, 0, 3] = 1000  # level 0 nearly always index 3: cheap; level 1 uniform: 3 bits
    model = EntropyModel.from_counts(counts)
    codes = [np.stack([np.full(50, 3), rng.integers(0, 8, 50)])]
    bits = model.mean_level_bits(codes, 0)
    assert bits[0] < 0.1 and bits[1] == pytest.approx(3.0)
    with_bits = model.with_level_bits(bits[None])
    assert with_bits.digest() == model.digest()  # decoding does not depend on them
    with_bits.save(tmp_path / "t.safetensors", weights_id="w", weights_sha256="0" * 64)
    loaded, _ = EntropyModel.load(tmp_path / "t.safetensors")
    np.testing.assert_allclose(loaded.level_bits, bits[None], rtol=1e-6)
    assert EntropyModel.from_counts(counts).level_bits is None
    with pytest.raises(FormatError, match="level_bits"):
        model.with_level_bits(np.full((1, 2), np.nan))
    with pytest.raises(ValueError, match="shape"):
        model.mean_level_bits([np.zeros((1, 5), np.int64)], 0)


def test_depth_follows_the_tables_expected_bits(codec):
    """Codes that compress well buy more levels for the same bitrate; fixed-length without level_bits."""
    speech = codec.registry.get("speech")
    cfg = codec.backbone.config
    plain = codec.entropy_model.with_level_bits(None)
    fixed = AdaptiveCodec(codec.backbone, codec.weights_meta, codec.registry, entropy_model=plain)
    assert fixed.depth_for(speech) == 8  # 6 kbps / (10 bits x 75 frames/s)
    cheap = np.full((plain.n_priors, plain.n_levels), 8.0)  # 600 bit/s per level
    tuned = AdaptiveCodec(codec.backbone, codec.weights_meta, codec.registry,
                          entropy_model=plain.with_level_bits(cheap))
    assert tuned.depth_for(speech) == 10  # 10 x 600 = 6000 bit/s fits, 11 levels do not
    assert tuned.depth_for(speech, bitrate_kbps=1.2) == 2
    assert tuned.depth_for(speech, bitrate_kbps=0.1) == 1  # never below one level
    assert tuned.depth_for(speech, bitrate_kbps=100.0) == cfg.n_levels
    assert tuned.depth_for(speech, bitrate_scale=0.5) == 5
    import io

    from adaptive_codec.container.acx import read_acx

    buf = io.BytesIO()
    noise = np.random.default_rng(2).normal(0, 0.05, 24000).astype(np.float32)
    plan = tuned.encode_to(buf, noise, 24000, profile="speech")
    # The plan's nominal depth follows the tables; rate control then codes the stream to the asked total.
    assert [s.n_q for s in plan] == [10] and read_acx(buf.getvalue()).asked_bps == 6000
