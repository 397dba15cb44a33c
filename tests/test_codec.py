"""AdaptiveCodec end to end with the shipped weights and bundled examples."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from adaptive_codec.audio import load_audio
from adaptive_codec.container.acx import read_header
from adaptive_codec.codec import AdaptiveCodec
from adaptive_codec.tools.stereo import side_divisor
from adaptive_codec.errors import AdaptiveCodecError, FormatError, ProfileError
from adaptive_codec.resources import example_path


@pytest.fixture(scope="module")
def codec():
    torch.set_num_threads(1)
    return AdaptiveCodec.default()


@pytest.fixture(scope="module")
def speech():
    audio, info = load_audio(example_path("speech"))
    return audio[:, : 3 * info.sample_rate_hz], info.sample_rate_hz


@pytest.mark.parametrize("sr,channels,n", [(24000, 1, 24000), (16000, 1, 16001),
                                           (44100, 2, 30001), (8000, 1, 7999)])
def test_decode_restores_rate_channels_and_exact_length(codec, speech, sr, channels, n):
    from adaptive_codec.audio import resample

    audio, sr0 = speech
    x = np.asarray(resample(audio[:channels], sr0, sr))[:, :n]
    blob = codec.encode(x if channels > 1 else x[0], sr, profile="speech")
    y, sr2 = codec.decode(blob)
    assert sr2 == sr
    assert y.shape == ((n,) if channels == 1 else (channels, n))
    assert np.isfinite(y).all()


def test_encode_is_deterministic_and_header_describes_it(codec, speech):
    audio, sr = speech
    a = codec.encode(audio, sr, profile="music")
    b = codec.encode(audio, sr, profile="music")
    assert a == b
    header = read_header(a)
    assert header.channels == 2 and header.original_sample_rate_hz == sr
    assert header.length_samples == audio.shape[-1]
    assert [p.name for p in header.profiles] == ["music"]
    # music.toml's 7.5 kbps is the whole stream's rate (header, both channels), measured
    assert header.asked_bps == 7500 and header.rate_limit == 0
    assert abs(len(a) * 8 / (audio.shape[-1] / sr) / 7500 - 1) <= 0.03


def test_bitrate_override_sets_the_actual_rate(codec, speech):
    """--bitrate is the whole stream's rate: reached within 3 %, or capped at the deepest setting and said."""
    audio, sr = speech
    mono = audio[0]
    duration = mono.size / sr
    sizes, mean_depth = {}, {}
    for kbps in (1.5, 6.0, 12.0):
        blob = codec.encode(mono, sr, profile="speech", bitrate_kbps=kbps)
        header = read_header(blob)
        actual = len(blob) * 8 / duration
        assert header.asked_bps == kbps * 1000
        if header.rate_limit == 0:
            assert abs(actual / (kbps * 1000) - 1) <= 0.03, (kbps, actual)
        else:  # above what 16 levels cost on this clip: every frame at the deepest depth
            assert header.rate_limit == 1 and actual < kbps * 1000 * 0.97
        sizes[kbps] = len(blob)
        rows = header.segments_for_channel(0)
        mean_depth[kbps] = sum(s.n_q * (s.end_frame - s.start_frame) for s in rows) / header.n_frames
    assert sizes[1.5] < sizes[6.0] < sizes[12.0]
    assert mean_depth[1.5] < mean_depth[6.0] < mean_depth[12.0]


def test_range_decode_matches_full_decode(codec, speech):
    audio, sr = speech
    blob = codec.encode(audio[0], sr, profile="speech")
    full, _ = codec.decode(blob)
    part, _ = codec.decode(blob, start_s=1.0, end_s=2.0)
    assert part.shape == (sr,)
    np.testing.assert_allclose(part, full[sr : 2 * sr], atol=2e-3)


def test_silence_is_valid_input(codec):
    blob = codec.encode(np.zeros(24000, np.float32), 24000, profile="ambient")
    y, _ = codec.decode(blob)
    assert y.shape == (24000,) and np.abs(y).max() < 0.05


def test_auto_routes_mixed_example_to_several_profiles(codec):
    audio, info = load_audio(example_path("mixed"))
    blob = codec.encode(audio, info.sample_rate_hz, profile="auto")
    header = read_header(blob)
    assert {p.name for p in header.profiles} >= {"speech", "music"}
    frames = [(s.start_frame, s.end_frame) for s in header.segments]
    assert frames[0][0] == 0 and frames[-1][1] == header.n_frames
    assert all(a[1] == b[0] for a, b in zip(frames, frames[1:]))


def test_profile_switch_is_continuous(codec):
    """Around a profile switch the output has no click: no energy burst at the boundary."""
    audio, info = load_audio(example_path("music"))
    x = np.asarray(audio[0, : 4 * info.sample_rate_hz])
    from adaptive_codec.planning.plan import PlannedSegment

    n_frames = codec.backbone.mdct.n_frames(
        int(np.ceil(x.size * 24000 / info.sample_rate_hz)))
    speech_p, music_p = codec.registry.get("speech"), codec.registry.get("music")
    split = n_frames // 2
    codec_plan = codec.plan

    def two_profiles(*args, **kwargs):
        return [PlannedSegment(0, split, speech_p, 8, "speech", 1.0),
                PlannedSegment(split, n_frames, music_p, 8, "music", 1.0)]

    codec.plan = two_profiles
    try:
        y, sr = codec.decode(codec.encode(x, info.sample_rate_hz))
    finally:
        codec.plan = codec_plan
    boundary = int(split * codec.backbone.config.hop * sr / 24000)
    win = int(0.01 * sr)
    diff = np.diff(y)
    around = np.mean(diff[boundary - win : boundary + win] ** 2)
    inside = np.mean(diff[win : boundary - 4 * win] ** 2)
    assert around < 4 * inside + 1e-9


def test_unknown_profile_and_bad_bitrate_are_clear_errors(codec, speech):
    audio, sr = speech
    with pytest.raises(ProfileError, match="speech"):
        codec.encode(audio, sr, profile="no-such-profile")
    with pytest.raises(AdaptiveCodecError, match="bitrate"):
        codec.encode(audio, sr, profile="speech", bitrate_kbps=-3)
    with pytest.raises(AdaptiveCodecError, match="bitrate scale must be a positive number"):
        codec.encode(audio, sr, profile="speech", bitrate_scale=float("nan"))
    with pytest.raises(AdaptiveCodecError, match="not both"):
        codec.encode(audio, sr, bitrate_kbps=6, bitrate_scale=0.5)


def test_bitrate_scale_keeps_each_profiles_allocation(codec):
    """--bitrate-scale multiplies every routed profile's own bitrate (the split between classes stays)."""
    audio, info = load_audio(example_path("mixed"))

    def depth_at(name, **rate):
        return codec.depth_for(codec.registry.get(name), **rate)

    # Depths follow each profile's expected bits per index (entropy tables):
    # speech's 6 kbps, music's 7.5 and ambient's 4.5, then scaled.
    depth = {p: depth_at(p) for p in ("speech", "music", "ambient")}
    assert depth == {"speech": depth_at("speech", bitrate_kbps=6.0), "music": depth_at("music", bitrate_kbps=7.5),
                     "ambient": depth_at("ambient", bitrate_kbps=4.5)}
    assert depth_at("ambient", bitrate_scale=2.0) == depth_at("ambient", bitrate_kbps=9.0) > depth["ambient"]
    assert depth_at("speech", bitrate_scale=0.5) == depth_at("speech", bitrate_kbps=3.0) < depth["speech"]
    half = {p: depth_at(p, bitrate_scale=0.5) for p in depth}
    frames = codec.n_frames(audio.shape[-1], info.sample_rate_hz)
    plain = codec.plan(audio, info.sample_rate_hz, frames)
    scaled = codec.plan(audio, info.sample_rate_hz, frames, bitrate_scale=0.5)
    assert [(s.start_frame, s.profile.name) for s in scaled] == [(s.start_frame, s.profile.name) for s in plain]
    assert len({s.profile.name for s in plain}) > 1
    assert [s.n_q for s in scaled] == [half[s.profile.name] for s in plain]
    # The stream's total follows the scaled profile rates, frame-weighted over the routed segments.
    blob = codec.encode(audio, info.sample_rate_hz, bitrate_scale=0.5)
    header = read_header(blob)
    rates = {"speech": 3000, "music": 3750, "ambient": 2250}
    asked = sum(rates[s.profile.name] * (s.end_frame - s.start_frame) for s in plain) / frames
    assert abs(header.asked_bps - asked) <= 1
    assert abs(len(blob) * 8 / (audio.shape[-1] / info.sample_rate_hz) / asked - 1) <= 0.03
    # Deeper where the profile's rate is higher: music's rows above ambient's on average.
    depth_of = {}
    for s in header.segments:
        name = header.profiles[s.profile_index].name
        n, total = depth_of.get(name, (0, 0))
        depth_of[name] = (n + s.end_frame - s.start_frame, total + s.n_q * (s.end_frame - s.start_frame))
    mean = {k: t / n for k, (n, t) in depth_of.items()}
    assert mean["music"] > mean["ambient"]


def test_corrupt_and_foreign_streams_are_rejected(codec, speech):
    audio, sr = speech
    blob = bytearray(codec.encode(audio[0], sr, profile="speech"))
    with pytest.raises(FormatError):
        codec.decode(bytes(blob[: len(blob) // 2]))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(FormatError):
        codec.decode(bytes(blob))


def test_stream_from_other_weights_is_a_clear_error(codec, speech, tmp_path):
    from adaptive_codec.backbone.inference import torch_model
    from adaptive_codec.backbone.weights import export_weights

    audio, sr = speech
    blob = codec.encode(audio[0], sr, profile="speech")
    other_path = export_weights(torch_model(codec.backbone), tmp_path / "other.safetensors", steps=1,
                                version="other")
    other = AdaptiveCodec.default(weights=other_path)
    with pytest.raises(FormatError, match="weights"):
        other.decode(blob)


def test_custom_profile_embeds_and_decodes_without_its_toml(codec, speech, tmp_path):
    from adaptive_codec.profiles import ProfileRegistry

    toml = tmp_path / "lecture.toml"
    toml.write_text('name = "lecture"\nbase = "speech"\nlabels = ["lecture"]\nbitrate_kbps = 3.0\n'
                    'rate_lambda = 0.01\n[loss_weights]\nmel = 1.0\n')
    user = AdaptiveCodec(codec.backbone, codec.weights_meta,
                         ProfileRegistry.default([tmp_path]))
    audio, sr = speech
    blob = user.encode(audio[0], sr, profile="lecture")
    header = read_header(blob)
    assert header.profiles[0].name == "lecture" and header.profiles[0].prior_id == 0
    # The plain codec (no --profiles-dir) decodes it: the profile table is in the stream.
    y, _ = codec.decode(blob)
    assert y.shape == audio[0].shape


def test_train_profile_writes_a_conditioning_the_codec_uses(codec, tmp_path):
    """`train profile`: tune a custom profile's embedding, then encode with it."""
    from adaptive_codec.audio import save_audio
    from adaptive_codec.profiles import ProfileRegistry
    from adaptive_codec.train.profile import profile_for_tuning, tune_profile

    data = tmp_path / "data"
    data.mkdir()
    audio, info = load_audio(example_path("speech"))
    for i in range(2):  # two short files: one to tune on, one held out
        part = audio[0, i * 2 * info.sample_rate_hz : (i + 1) * 2 * info.sample_rate_hz]
        save_audio(data / f"talk{i}.flac", part, info.sample_rate_hz)
    toml = tmp_path / "talk.toml"
    toml.write_text('name = "talk"\nbase = "speech"\nlabels = ["talk"]\nbitrate_kbps = 3.0\n'
                    'conditioning = "talk.safetensors"\n[loss_weights]\nmel = 1.0\n')
    profile, target = profile_for_tuning(toml)  # talk.safetensors does not exist yet
    result = tune_profile(codec, profile, data, target, steps=2, batch_size=2, progress=False)
    assert result.output == tmp_path / "talk.safetensors" and result.output.exists()
    assert result.steps == 2 and result.kept in ("tuned", "base")
    user = AdaptiveCodec(codec.backbone, codec.weights_meta, ProfileRegistry.default([tmp_path]))
    blob = user.encode(np.zeros(4800, np.float32) + 0.01, 24000, profile="talk")
    entry = read_header(blob).profiles[0]
    assert entry.name == "talk" and entry.prior_id == 0
    from safetensors.numpy import load_file

    np.testing.assert_array_equal(entry.conditioning, load_file(str(result.output))["embedding"])


def test_stereo_is_mid_side_and_dual_mono_spends_nothing_on_side(codec, speech):
    audio, sr = speech
    dual = np.stack([audio[0], audio[0]])
    blob = codec.encode(dual, sr, profile="speech")
    header = read_header(blob)
    assert header.stereo_mode == "mid_side"
    assert [s.n_q for s in header.segments_for_channel(1)] == [0]
    y, _ = codec.decode(blob)
    np.testing.assert_array_equal(y[0], y[1])
    mono_size = len(codec.encode(audio[0], sr, profile="speech"))
    assert len(blob) < 1.1 * mono_size + 200

    # A real side at a rate that codes it (lower totals: the mid + parametric stereo).
    wide = np.stack([audio[0], np.roll(audio[0], 4000)])
    header = read_header(codec.encode(wide, sr, profile="speech", bitrate_kbps=12))
    assert header.stereo_params is None
    mid_depth = header.segments_for_channel(0)[0].n_q
    assert [s.n_q for s in header.segments_for_channel(1)] == [max(1, mid_depth // side_divisor(12.0))]
    assert 1 <= header.segments_for_channel(1)[0].n_q < mid_depth


# -- block streaming (bounded memory) == whole-signal processing ----------------------


@pytest.mark.parametrize("kbps", [12.0, None])
def test_block_streaming_equals_whole_signal_processing(codec, speech, monkeypatch, kbps):
    """Many small input blocks and decoder pieces give what one block and one piece give.

    At 12 kbps the pair is mid/side; at the speech profile's rate, the mid +
    parametric stereo (whose analysis and synthesis see the same blocks).

    One block means the whole signal resampled at once and one backbone
    pass per chunk; one decoder piece means the whole internal signal
    synthesised and resampled at once (the pre-streaming path).
    """
    import adaptive_codec.backbone.streaming as streaming
    import adaptive_codec.pipeline.signal as codec_stream

    audio, sr = speech  # stereo 44.1 kHz: mid/side, resampling both ways
    x = np.stack([audio[0], np.roll(audio[1], 300)])  # a real side channel
    monkeypatch.setattr(codec_stream, "BLOCK_SECONDS", 1e6)
    whole_blob = codec.encode(x, sr, profile="speech", bitrate_kbps=kbps)
    monkeypatch.setattr(streaming, "CHUNK_FRAMES", 10**6)
    whole, _ = codec.decode(whole_blob)
    monkeypatch.setattr(codec_stream, "BLOCK_SECONDS", 0.37)
    blob = codec.encode(x, sr, profile="speech", bitrate_kbps=kbps)
    monkeypatch.setattr(streaming, "CHUNK_FRAMES", 45)
    y, _ = codec.decode(blob)
    if kbps is None:
        assert read_header(blob).stereo_params is not None
    else:
        assert read_header(blob).segments_for_channel(1)[0].n_q > 0
    assert blob == whole_blob  # the same codes, bit for bit
    assert y.shape == whole.shape == x.shape
    np.testing.assert_allclose(y, whole, atol=1e-5)
    part, _ = codec.decode(blob, start_s=1.3, end_s=2.1)
    np.testing.assert_allclose(part, whole[:, round(1.3 * sr) : round(2.1 * sr)], atol=2e-3)


@pytest.mark.parametrize("name,profile", [("mixed", "auto"), ("speech", "music")])
def test_encode_file_equals_encode_of_loaded_audio(codec, tmp_path, name, profile):
    path = example_path(name)
    audio, info = load_audio(path)
    plan, got_info = codec.encode_file(tmp_path / "f.acx", path, profile=profile)
    blob = codec.encode(audio, info.sample_rate_hz, profile=profile)
    assert (tmp_path / "f.acx").read_bytes() == blob
    assert got_info == info
    # Rate control cuts rows where it changes depth: the routing is the runs of profiles.
    header = read_header(blob)
    rows = [(s.start_frame, header.profiles[s.profile_index].name, s.label) for s in header.segments_for_channel(0)]
    runs = [r for i, r in enumerate(rows) if i == 0 or r[1:] != rows[i - 1][1:]]
    assert [(s.start_frame, s.profile.name, s.label) for s in plan] == runs


def test_decode_to_file_equals_decode(codec, speech, tmp_path):
    audio, sr = speech
    blob = codec.encode(audio, sr, profile="speech")
    n, sr2 = codec.decode_to(blob, tmp_path / "y.wav", subtype="FLOAT")
    y, _ = codec.decode(blob)
    written, info = load_audio(tmp_path / "y.wav")
    assert (n, sr2, info.channels) == (audio.shape[1], sr, 2)
    np.testing.assert_array_equal(written, y)
    n, _ = codec.decode_to(blob, tmp_path / "part.wav", start_s=0.5, end_s=1.0, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(tmp_path / "part.wav")[0], codec.decode(blob, 0.5, 1.0)[0])
    assert n == sr // 2
