"""The high-band tool: 44.1/48 kHz streams come back with their band above 12 kHz, at a known cost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt, welch

from adaptive_codec.audio import load_audio
from adaptive_codec.codec import AdaptiveCodec
from adaptive_codec.container.acx import read_header, to_bytes
from adaptive_codec.container.acx_header import parse_header_body, serialize_header_body
from adaptive_codec.errors import FormatError, ProfileError
from adaptive_codec.profiles import Profile
from adaptive_codec.resources import example_path
from adaptive_codec.tools.highband.coding import decode_span, encode_span, quantize
from adaptive_codec.threads import pin_threads
from adaptive_codec.tools.highband.grid import StftGrid


@pytest.fixture(scope="module")
def codec():
    pin_threads(1)
    return AdaptiveCodec.default()


@pytest.fixture(scope="module")
def music():
    """The bundled 44.1 kHz music clip, mono, 5 s."""
    audio, info = load_audio(example_path("music"))
    return np.asarray(audio.mean(axis=0)[: 5 * info.sample_rate_hz], np.float32), info.sample_rate_hz


def band_levels_db(x: np.ndarray, sr: int, edges=(12000, 14000, 16000, 19000, 22000)) -> np.ndarray:
    """Mean power (dB) of ``x`` in each band (Welch, 2048-sample Hann segments)."""
    f, p = welch(x, sr, nperseg=2048)
    return np.array([10 * np.log10(p[(f >= lo) & (f < hi)].mean() + 1e-30) for lo, hi in zip(edges, edges[1:])])


def without_highband(codec, name: str) -> Profile:
    return dataclasses.replace(codec.registry.get(name), highband_bands=0)


def test_envelope_coding_round_trips_and_bad_payloads_are_errors():
    rng = np.random.default_rng(3)
    levels = -50 + np.cumsum(rng.normal(0, 2.0, (120, 6)), axis=0)
    q = quantize(levels, 3.0, 90.0, 36)
    data = encode_span(q, 36)
    assert np.array_equal(decode_span(data, *q.shape, 36, "span"), q)
    # Within half a step plus the hysteresis of the level.
    assert np.abs(levels - (-90 + (q - 1) * 3.0)).max() <= 0.7 * 3.0 + 1e-9  # levels stay above -90 dB
    with pytest.raises(FormatError, match="empty payload"):
        decode_span(b"", 4, 6, 36, "span 0")
    # Garbage decodes (range coders accept any words) to indices in range only.
    garbage = decode_span(bytes(range(40)), 50, 6, 36, "span 0")
    assert garbage.min() >= 0 and garbage.max() <= 35


def test_grid_maps_stft_frames_to_codec_frames_exactly():
    for sr in (32000, 44100, 48000):
        grid = StftGrid(sr, 24000, 320)
        j = np.arange(1000)
        t = grid.codec_frame(j)
        centre_s = j * grid.hop / sr
        # The codec frame whose 13.3 ms span holds the STFT frame's centre.
        assert np.all(np.abs(centre_s - t / 75) <= 0.5 / 75 + 1e-9)


def test_full_band_stream_restores_the_high_band_at_its_level(codec, music):
    x, sr = music
    data = codec.encode(x, sr, profile="music", bitrate_kbps=6)
    header = read_header(data)
    assert data[5] == 1 and header.highband is not None  # format 3.1 with its section
    assert header.highband.band_edges_hz[-1] <= sr // 2
    y, sr_out = codec.decode(data)
    assert sr_out == sr and y.shape == x.shape and np.isfinite(y).all()
    plain, _ = codec.decode(codec.encode(x, sr, profile=without_highband(codec, "music"), bitrate_kbps=6))
    ref, got, cut = band_levels_db(x, sr), band_levels_db(y, sr), band_levels_db(plain, sr)
    assert np.mean(np.abs(got - ref)[:3]) <= 3.0, (ref, got)  # 12-19 kHz
    assert got[3] <= ref[3] + 3  # 19-22 kHz: at this clip's noise floor, not coded, nothing added
    assert np.all(cut[:3] < ref[:3] - 10)  # without the tool the band is gone


def test_asked_rate_includes_the_high_band(codec, music):
    x, sr = music
    data = codec.encode(x, sr, profile="music", bitrate_kbps=6)
    header = read_header(data)
    high_kbps = 8 * header.highband.payload_bytes / (header.n_frames / header.frame_rate_hz) / 1000
    assert 0.05 < high_kbps < 1.0
    # The whole stream, high band included, is what was asked; the backbone gets what it leaves.
    total_kbps = 8 * len(data) / header.duration_s / 1000
    assert header.asked_bps == 6000 and abs(total_kbps / 6 - 1) <= 0.03, total_kbps
    plain = codec.encode(x, sr, profile=without_highband(codec, "music"), bitrate_kbps=6)
    assert abs(8 * len(plain) / header.duration_s / 1000 / 6 - 1) <= 0.03
    assert len(data) - header.highband.payload_bytes < len(plain)


def test_sources_without_a_high_band_spend_nothing(codec, music):
    x, sr = music
    band_limited = sosfiltfilt(butter(12, 8000, fs=sr, output="sos"), x).astype(np.float32)
    for audio, rate in ((band_limited, sr), (x[: sr * 2 : 2], sr // 2), (np.zeros(sr, np.float32), sr)):
        data = codec.encode(audio, rate, profile="music", bitrate_kbps=6)
        assert read_header(data).highband is None  # no high-band section
    # An MP3-like 16 kHz cut: the bands above it are not coded.
    cut16 = sosfiltfilt(butter(16, 16000, fs=sr, output="sos"), x).astype(np.float32)
    edges = read_header(codec.encode(cut16, sr, profile="music", bitrate_kbps=6)).highband.band_edges_hz
    assert 16000 <= edges[-1] <= 18000


def test_a_30_reader_decodes_a_31_stream_without_its_high_band(codec, music):
    x, sr = music
    data = codec.encode(x[: sr * 2], sr, profile="music", bitrate_kbps=6)
    header = read_header(data)
    body = serialize_header_body(header)
    # What a 3.0 reader does with a newer minor's header: the trailing sections are skipped.
    old = parse_header_body(body, "acx header", allow_trailing=True, format_minor=0)
    assert old.highband is None
    assert dataclasses.replace(old, highband=header.highband, asked_bps=header.asked_bps,
                               rate_limit=header.rate_limit) == header
    assert parse_header_body(body, "acx header", format_minor=1) == header


def test_corrupt_or_truncated_section_is_a_clear_error(codec, music):
    x, sr = music
    data = codec.encode(x[: sr * 2], sr, profile="music", bitrate_kbps=6)
    header = read_header(data)
    body = serialize_header_body(header)
    with pytest.raises(FormatError, match="high-band|extension"):
        parse_header_body(body[:-3], "acx header", format_minor=1)
    with pytest.raises(FormatError, match="CRC"):
        bad = bytearray(data)
        bad[len(body) - 2] ^= 0xFF
        read_header(bytes(bad))
    # A payload that is garbage but framed right (CRC recomputed): levels stay in range, audio finite.
    from adaptive_codec.container.acx import AcxStream, read_acx

    stream = read_acx(data)
    sec = header.highband
    junk = tuple(bytes(i % 256 for i in range(len(p))) if p else p for p in sec.payloads)
    forged = dataclasses.replace(header, highband=dataclasses.replace(sec, payloads=junk))
    try:
        y, _ = codec.decode(to_bytes(AcxStream.from_header(forged, stream.chunks)))
    except FormatError as exc:
        assert "high-band" in str(exc)
    else:
        assert np.isfinite(y).all() and np.abs(y).max() < 8


def test_range_decode_and_file_encode_match_the_whole(codec, music, tmp_path):
    from adaptive_codec.audio import save_audio

    x, sr = music
    path = tmp_path / "m.flac"
    save_audio(path, x[None], sr)
    out = tmp_path / "m.acx"
    codec.encode_file(out, path, profile="music", bitrate_kbps=6)
    stored, _ = load_audio(path)
    data = codec.encode(stored, sr, profile="music", bitrate_kbps=6)
    assert out.read_bytes() == data  # chunked (file blocks) equals whole (array)
    whole, _ = codec.decode(data)
    part, _ = codec.decode(data, 1.5, 3.5)
    a, b = int(1.5 * sr), int(3.5 * sr)
    assert part.shape[-1] == b - a
    err = np.sqrt(np.mean((part - whole[a:b]) ** 2))
    assert err <= 0.05 * np.sqrt(np.mean(whole[a:b] ** 2)) + 1e-6


def test_no_click_where_the_high_band_switches_on(codec, music):
    """A profile without the high band next to one with it: no energy burst at the boundary."""
    from adaptive_codec.planning.plan import PlannedSegment

    x, sr = music
    n_frames = codec.n_frames(x.size, sr)
    split = n_frames // 2
    off, on = without_highband(codec, "speech"), codec.registry.get("music")
    original = codec.plan

    def two_profiles(*args, **kwargs):
        return [PlannedSegment(0, split, off, 8, "speech", 1.0), PlannedSegment(split, n_frames, on, 8, "music", 1.0)]

    codec.plan = two_profiles
    try:
        data = codec.encode(x, sr)
        y, _ = codec.decode(data)
    finally:
        codec.plan = original
    assert read_header(data).highband.enabled_profiles == (1,)
    boundary = int(split * 320 * sr / 24000)
    win = int(0.01 * sr)
    high = sosfiltfilt(butter(8, 12000, "highpass", fs=sr, output="sos"), y)
    d = np.diff(high)
    around = np.mean(d[boundary - win : boundary + win] ** 2)
    after = np.mean(d[boundary + 4 * win : boundary + 40 * win] ** 2)
    assert around < 4 * after + 1e-12
    # The first half has no regenerated band, the second has it.
    assert np.mean(high[win : boundary - 4 * win] ** 2) < 0.1 * np.mean(high[boundary + 4 * win :] ** 2)


def test_profile_keys_are_validated(tmp_path):
    base = 'name = "x"\nbitrate_kbps = 6.0\n'
    for line, message in (("highband_bands = 9", "highband_bands"), ("highband_frames = 0", "highband_frames"),
                          ("highband_noise = 1.5", "highband_noise"), ('highband_bands = "4"', "integer")):
        path = tmp_path / "x.toml"
        path.write_text(base + line + "\n")
        with pytest.raises(ProfileError, match=rf"x.toml:3: .*{message}"):
            Profile.from_toml(path)
    path = tmp_path / "x.toml"
    path.write_text(base + "highband_bands = 0\n")
    profile = Profile.from_toml(path)
    assert profile.highband_bands == 0 and Profile.from_dict(profile.to_dict()).highband_bands == 0


def test_rate_table_is_validated_and_picks_the_resolution_by_rate(tmp_path):
    base = 'name = "x"\nbitrate_kbps = 6.0\n'
    for line, message in (("highband_rates = [[0, 4]]", "every row"), ("highband_rates = [[0, 9, 2]]", "between 0 and 8"),
                          ("highband_rates = [[3, 4, 4], [2, 8, 2]]", "must increase"),
                          ("highband_rates = [[-1, 4, 4]]", ">= 0"), ('highband_rates = "fast"', "list of")):
        path = tmp_path / "x.toml"
        path.write_text(base + line + "\n")
        with pytest.raises(ProfileError, match=rf"x.toml:3: key 'highband_rates': .*{message}"):
            Profile.from_toml(path)
    path = tmp_path / "x.toml"
    path.write_text(base + "highband_bands = 8\nhighband_rates = [[0, 0, 2], [2.5, 4, 4], [5, 8, 1]]\n")
    profile = Profile.from_toml(path)
    assert Profile.from_dict(profile.to_dict()) == dataclasses.replace(profile, source=None)
    assert [profile.highband_at(r) for r in (1.5, 2.5, 4.9, 12.0, None)] == [(0, 2), (4, 4), (4, 4), (8, 1), (8, 2)]
    # highband_bands = 0 switches the tool off whatever the table says.
    assert dataclasses.replace(profile, highband_bands=0).highband_at(12.0)[0] == 0


def test_low_rates_get_a_coarser_envelope_and_stay_at_the_asked_rate(codec, music):
    x, sr = music
    sections = {}
    for rate in (1.5, 12.0):
        data = codec.encode(x, sr, profile="music", bitrate_kbps=rate)
        sections[rate] = read_header(data).highband
        assert 8 * len(data) / (x.size / sr) / 1000 <= rate * 1.03, rate
    assert sections[1.5] is not None
    low, high = sections[1.5], sections[12.0]
    # Fewer values a second at 1.5 kbps than at 12 (bands x envelope frames).
    assert len(low.band_edges_hz) / low.envelope_frames < len(high.band_edges_hz) / high.envelope_frames
    assert low.payload_bytes < high.payload_bytes


def test_info_reports_the_high_band_per_class(codec, music, tmp_path, capsys):
    import json

    import soundfile as sf

    from adaptive_codec.cli.app import main

    x, sr = music
    wav, acx = tmp_path / "m.wav", tmp_path / "m.acx"
    sf.write(wav, x[: 3 * sr], sr)
    assert main(["encode", str(wav), str(acx), "--profile", "music", "--bitrate", "6"]) == 0
    capsys.readouterr()
    assert main(["info", str(acx), "--format", "json"]) == 0
    row = json.loads(capsys.readouterr().out)["per_class"]["music"]
    header = read_header(acx.read_bytes())
    assert row["highband_bytes"] == header.highband.payload_bytes
    assert 0.1 < row["highband_kbps"] < 2.0
