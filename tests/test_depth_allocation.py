"""Energy-adaptive RVQ depth: allocation, its coding, and what it buys on real speech."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from adaptive_codec.planning.depth_allocation import allocate_depths, depth_bounds, depth_frequencies, depth_map_bits
from adaptive_codec.entropy.coder import decode_frames, encode_frames
from adaptive_codec.entropy.tables import EntropyModel
from adaptive_codec.errors import FormatError, ProfileError
from adaptive_codec.profiles import Profile

K, LEVELS, BITS = 1024, 16, 10.0


def _speech_like_energy(n: int, seed: int = 0) -> np.ndarray:
    """log10 energies: syllables (~4 Hz) at -2..-1 with pauses at -6."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 75
    e = -1.5 + 0.5 * np.sin(2 * np.pi * 4 * t) + 0.2 * rng.standard_normal(n)
    e[(t % 2.0) > 1.4] = -6.0
    return e


@pytest.mark.parametrize("previous", [0, 3, 16])
def test_depth_table_is_exact_and_peaked(previous):
    freq = depth_frequencies(previous, LEVELS)
    assert freq.dtype == np.int64 and freq.shape == (LEVELS + 1,)
    assert int(freq.sum()) == 1 << 16 and freq.min() >= 1
    assert int(freq.argmax()) == previous
    # Further steps are never more likely than nearer ones.
    steps = np.abs(np.arange(LEVELS + 1) - previous)
    for k in range(1, steps.max()):
        assert freq[steps == k + 1].max() <= freq[steps == k].min()
    with pytest.raises(ValueError):
        depth_frequencies(LEVELS + 1, LEVELS)


def test_allocation_keeps_the_budget_and_follows_energy():
    e = _speech_like_energy(450)
    d = allocate_depths(e, 8, 4.0, LEVELS, BITS)
    lo, hi = depth_bounds(8, LEVELS)
    assert d.min() >= lo and d.max() <= hi
    # Indices plus the depth map cost no more than 8 fixed levels per frame.
    total = d.sum() * BITS + depth_map_bits(d, 0, LEVELS)
    assert total <= 8 * BITS * e.size
    assert d.mean() > 7.5  # and the budget is used, not wasted
    pauses = e < -5
    assert d[pauses].mean() < 4 < d[~pauses].mean()
    # Louder frame, never fewer levels (monotone in the smoothed energy).
    np.testing.assert_array_equal(allocate_depths(e, 8, 0.0, LEVELS, BITS), 8)


def test_allocation_budgets_in_bits_per_level():
    """With each level at its own expected bits, the *bits* stay at the budget, not the mean depth."""
    e = _speech_like_energy(450)
    bits = np.linspace(6.5, 9.5, LEVELS)  # deep levels compress worse, as in the shipped tables
    cost = np.concatenate([[0.0], np.cumsum(bits)])
    d = allocate_depths(e, 8, 4.0, LEVELS, bits)
    budget = cost[8] * e.size
    spent = cost[d].sum() + depth_map_bits(d, 0, LEVELS)
    assert spent <= budget and spent > 0.98 * budget
    # Counting levels at one price would overspend these bits: loud frames
    # take the expensive deep levels that quiet frames give up cheaply.
    by_levels = allocate_depths(e, 8, 4.0, LEVELS, float(bits.mean()))
    assert cost[by_levels].sum() + depth_map_bits(by_levels, 0, LEVELS) > budget
    assert d.mean() < by_levels.mean() <= 8
    # One price for every level, given once or per level: the same depths.
    np.testing.assert_array_equal(allocate_depths(e, 8, 4.0, LEVELS, np.full(LEVELS, BITS)),
                                  allocate_depths(e, 8, 4.0, LEVELS, BITS))
    for bad in (np.full(LEVELS - 1, BITS), np.r_[np.full(LEVELS - 1, BITS), 0.0], [float("nan")] * LEVELS):
        with pytest.raises(ValueError, match="bits_per_level"):
            allocate_depths(e, 8, 4.0, LEVELS, bad)


@pytest.mark.parametrize("n_q", [1, 2, 8, 16])
def test_allocation_edge_cases(n_q):
    for e in (np.zeros(0), np.full(1, -3.0), np.full(40, -3.0), _speech_like_energy(7)):
        d = allocate_depths(e, n_q, 4.0, LEVELS, BITS)
        assert d.shape == e.shape and d.dtype == np.int64
        if d.size:
            lo, hi = depth_bounds(n_q, LEVELS)
            assert lo <= d.min() and d.max() <= hi and d.mean() <= n_q


def test_adaptive_frames_round_trip_through_the_coder():
    rng = np.random.default_rng(0)
    model = EntropyModel.from_logits(rng.normal(size=(2, LEVELS, K)))
    n = 300
    codes = rng.integers(0, K, (LEVELS, n))
    adaptive = np.zeros(n, bool)
    adaptive[50:250] = True
    depths = np.full(n, 4)
    depths[adaptive] = allocate_depths(_speech_like_energy(200), 8, 4.0, LEVELS, BITS)
    priors = np.zeros(n, np.int64)
    data = encode_frames(model, codes, depths, priors, adaptive=adaptive)
    layout = np.where(adaptive, 8, depths)  # what the segment table says: the budget
    out, got = decode_frames(model, data, layout, priors, LEVELS, adaptive=adaptive, return_depths=True)
    np.testing.assert_array_equal(got, depths)
    np.testing.assert_array_equal(out, np.where(np.arange(LEVELS)[:, None] < depths, codes, 0))
    # Without the mask the same bytes are not a valid chunk.
    with pytest.raises(FormatError):
        decode_frames(model, data, layout, priors, LEVELS)
    # A depth beyond the stream's levels is refused, not decoded.
    with pytest.raises(FormatError):
        decode_frames(model, data, layout, priors, 4, adaptive=adaptive)


def test_profile_depth_slope_is_validated():
    assert Profile("p", bitrate_kbps=6.0).depth_slope == 0.0
    assert Profile.from_dict({"name": "p", "bitrate_kbps": 6.0, "depth_slope": 2}).depth_slope == 2.0
    for bad in (-1, 17, "4", float("nan")):
        with pytest.raises(ProfileError, match="depth_slope"):
            Profile.from_dict({"name": "p", "bitrate_kbps": 6.0, "depth_slope": bad})
    p = Profile("p", bitrate_kbps=6.0, depth_slope=4.0)
    assert Profile.from_dict(p.to_dict()) == p


@pytest.fixture(scope="module")
def codec():
    from adaptive_codec import AdaptiveCodec

    return AdaptiveCodec.default()


def test_speech_profile_codes_adaptive_segments(codec, example_clip):
    from adaptive_codec.container.acx import read_acx

    audio, sr = example_clip("speech")
    data = codec.encode(audio[:, : 4 * sr], sr, profile="speech")
    stream = read_acx(data)
    # Stereo is mid/side: the mid is energy-adaptive, the side keeps a fixed depth.
    assert stream.stereo_mode == "mid_side"
    assert all(s.adaptive == (s.channel == 0) for s in stream.segments if s.n_q)
    out, out_sr = codec.decode(data)
    assert out.shape == (audio.shape[0], 4 * sr) and out_sr == sr and np.isfinite(out).all()
    # The whole decode and a range decode agree (chunks carry their depth maps).
    part, _ = codec.decode(data, start_s=1.0, end_s=3.0)
    np.testing.assert_allclose(part, out[:, sr : 3 * sr], atol=2e-4)


def test_adaptive_depth_beats_fixed_depth_on_real_speech(codec, example_clip):
    """About the same bytes, better PESQ-WB: the reason the speech profile enables it.

    The allocator budgets each level at the tables' expected bits and pays
    for the depth map, but those are means over all frames and a loud
    frame's indices cost more than the mean, so the bytes come out a little
    above fixed depth (0.dev47856: 2.2 %, 4,487 vs 4,391 bytes, PESQ-WB
    2.51 -> 2.83; 0.dev40852: 3.5 %; docs/training-journal.md, "Energy-adaptive
    depth"): bounded at 5 %.
    """
    from adaptive_codec.bench.metrics import pesq_wb

    audio, sr = example_clip("speech")
    x = audio[0, : 6 * sr]
    speech = codec.registry.get("speech")
    assert speech.depth_slope > 0
    scores, sizes = {}, {}
    for slope in (0.0, speech.depth_slope):
        data = codec.encode(x, sr, profile=dataclasses.replace(speech, depth_slope=slope))
        y, _ = codec.decode(data)
        assert y.shape == x.shape  # mono in, mono out
        scores[slope], sizes[slope] = pesq_wb(x, y, sr), len(data)
    assert sizes[speech.depth_slope] <= 1.05 * sizes[0.0], sizes
    assert scores[speech.depth_slope] > scores[0.0] + 0.05, scores


def test_depth_limited_search_and_masked_decode_match_the_full_ones():
    """Searching each frame only at its own levels finds the same indices; decoding a prefix per level sums the same."""
    import torch

    from adaptive_codec.backbone.model import Backbone, BackboneConfig

    torch.manual_seed(0)
    model = Backbone(BackboneConfig(dim=32, latent_dim=32, encoder_blocks=1, decoder_blocks=1, codebook_size=64)).eval()
    rvq = model.quantizer
    latent = torch.randn(2, 120, 32)
    depths = torch.randint(0, 17, (2, 120))
    full = rvq.encode(latent, 16)
    limited = rvq.encode(latent, 16, depths)
    used = torch.arange(16)[None, :, None] < depths[:, None, :]
    assert torch.equal(full[used], limited[used]) and not limited[~used].any()
    with torch.no_grad():
        expected = sum(level.decode(full[:, i]) * (depths > i)[..., None] for i, level in enumerate(rvq.levels))
    torch.testing.assert_close(rvq.decode_masked(full, depths), expected, rtol=0, atol=1e-6)


def test_chunk_size_that_does_not_divide_the_encoder_pieces(codec, example_clip):
    """Chunks of 400 frames do not tile the encoder's 1350-frame pieces: depths are allocated after encoding."""
    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.container.acx import read_acx
    from adaptive_codec.entropy.coder import decode_frames

    audio, sr = example_clip("speech")
    x = audio[0, : 8 * sr]
    other = AdaptiveCodec(codec.backbone, codec.weights_meta, codec.registry, chunk_frames=400,
                          entropy_model=codec.entropy_model)
    data = other.encode(x, sr, profile="speech")
    stream = read_acx(data)
    assert stream.chunk_frames == 400 and all(s.adaptive for s in stream.segments)
    for chunk in stream.chunks:
        layout, priors, _ = stream.frame_layout(0, chunk.start_frame, chunk.end_frame)
        _, depths = decode_frames(codec.entropy_model, chunk.data, layout, priors, stream.max_levels,
                                  adaptive=stream.adaptive_frames(0, chunk.start_frame, chunk.end_frame),
                                  return_depths=True)
        assert depths.min() < layout[0] < depths.max() and depths.mean() <= layout[0]
    y, _ = other.decode(data)
    reference, _ = codec.decode(codec.encode(x, sr, profile="speech"))
    # Same allocation rule on other spans: close to the default chunking's output.
    assert np.corrcoef(y, reference)[0, 1] > 0.9
