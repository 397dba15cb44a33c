"""Parametric stereo: low-rate stereo streams as the mid plus per-band level difference and coherence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.signal import stft

from adaptive_codec.audio import load_audio
from adaptive_codec.codec import AdaptiveCodec
from adaptive_codec.container.acx import AcxStream, read_acx, read_header, to_bytes
from adaptive_codec.container.acx_header import parse_header_body, serialize_header_body
from adaptive_codec.errors import FormatError
from adaptive_codec.resources import example_path
from adaptive_codec.threads import pin_threads
from adaptive_codec.tools.highband.grid import StftGrid
from adaptive_codec.tools.parametric_stereo import analyzer_for, code_parametric, parametric_blocks
from adaptive_codec.tools.parametric_stereo.analysis import band_starts
from adaptive_codec.tools.parametric_stereo.coding import decode_span, encode_span
from adaptive_codec.tools.highband.analysis import synthesize_blocks
from adaptive_codec.tools.parametric_stereo.synthesis import ParametricSynthesizer, mix_gains
from adaptive_codec.tools.stereo import stereo_tool


@pytest.fixture(scope="module")
def codec():
    pin_threads(1)
    return AdaptiveCodec.default()


@pytest.fixture(scope="module")
def music():
    """The bundled 44.1 kHz stereo music clip (8 s)."""
    audio, info = load_audio(example_path("music"))
    return np.asarray(audio, np.float32), info.sample_rate_hz


@pytest.fixture(scope="module")
def low_rate(codec, music):
    """The music clip at 6 kbps total (parametric stereo), decoded."""
    x, sr = music
    data = codec.encode(x, sr, profile="music", bitrate_kbps=6)
    y, _ = codec.decode(data)
    return data, y


def ild_error_db(ref: np.ndarray, dec: np.ndarray, sr: int) -> float:
    """Mean |ILD error| (dB) over 1/3-octave-ish bands 100 Hz - 10 kHz and frames within 40 dB of the loudest."""
    edges = np.geomspace(100, 10000, 13)
    _, _, r = stft(ref, sr, nperseg=2048)
    _, _, d = stft(dec, sr, nperseg=2048)
    f = np.fft.rfftfreq(2048, 1 / sr)
    errs = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (f >= lo) & (f < hi)
        pr = (np.abs(r[:, sel]) ** 2).sum(axis=1) + 1e-12  # (2, frames)
        pd = (np.abs(d[:, sel]) ** 2).sum(axis=1) + 1e-12
        loud = 10 * np.log10(pr.max(axis=0))
        keep = loud > loud.max() - 40
        e = np.abs(10 * np.log10(pd[0] / pd[1]) - 10 * np.log10(pr[0] / pr[1]))
        errs.append(e[keep].mean())
    return float(np.mean(errs))


def test_the_tool_is_chosen_by_the_asked_total():
    assert stereo_tool(6) == "parametric" and stereo_tool(1.5) == "parametric"
    assert stereo_tool(12) == "mid_side" and stereo_tool(None) == "mid_side"
    assert stereo_tool(12, "parametric") == "parametric" and stereo_tool(3, "mid_side") == "mid_side"
    with pytest.raises(ValueError, match="stereo tool"):
        stereo_tool(6, "intensity")


def test_parameter_coding_round_trips_and_bad_payloads_are_errors():
    rng = np.random.default_rng(3)
    ild = np.clip(np.cumsum(rng.integers(-2, 3, (17, 15)), axis=0), -10, 10)
    icc = rng.integers(0, 8, (17, 15))
    data = encode_span(ild, icc, 10)
    assert len(data) % 4 == 0
    got = decode_span(data, 17, 15, 10, "test")
    assert np.array_equal(got[0], ild) and np.array_equal(got[1], icc)
    with pytest.raises(FormatError, match="empty payload"):
        decode_span(b"", 17, 15, 10, "test")
    # Garbage: an error, or indices inside their alphabets (never an absurd gain).
    try:
        junk = decode_span(bytes(range(64)), 17, 15, 10, "test")
    except FormatError as exc:
        assert "parametric-stereo" in str(exc)
    else:
        assert np.abs(junk[0]).max() <= 10 and junk[1].min() >= 0 and junk[1].max() <= 7


def test_mixing_gains_give_the_coded_levels_and_coherence():
    ild, icc = np.array([-9.0, 0.0, 6.0, 12.0]), np.array([0.937, 0.0, 0.6, 1.0])
    a, b = mix_gains(ild, icc)
    # L = (1 + a) X + b D, R = (1 - a) X - b D with |X|^2 = |D|^2 = 1, X ⟂ D.
    pl, pr = (1 + a) ** 2 + b ** 2, (1 - a) ** 2 + b ** 2
    assert np.allclose(10 * np.log10(pl / pr), ild)
    assert np.allclose(((1 + a) * (1 - a) - b ** 2) / np.sqrt(pl * pr), icc)
    assert np.allclose(mix_gains(0.0, 1.0), 0.0)  # a mono image: left = right = mid


def test_neutral_parameters_reconstruct_the_mid_exactly(music):
    x, sr = music
    mid = x.mean(axis=0)[: 3 * sr]
    grid = StftGrid(sr, 24000, 320)
    starts = band_starts(grid, (500, 4000, sr // 2))

    def zero(j):
        return np.zeros((len(j), 3)), np.zeros((len(j), 3))

    blocks = [np.stack([mid, mid])[:, i : i + 5000] for i in range(0, mid.size, 5000)]
    y = np.concatenate(list(synthesize_blocks(ParametricSynthesizer(grid, starts, zero), blocks)), axis=1)
    assert y.shape == (2, mid.size)
    assert np.abs(y - mid).max() < 1e-5


def test_parameters_restore_the_image_of_the_original_mid(music):
    """The tool alone (the original mid, no backbone): the image comes back within a few dB."""
    x, sr = music
    analyzer = analyzer_for(sr, 2, 24000, 320, 450)
    for i in range(0, x.shape[1], 7000):
        analyzer.push(x[:, i : i + 7000])
    n_frames = -(-x.shape[1] * 24000 // sr) // 320 + 1
    section = code_parametric(analyzer, n_frames)
    assert 8 * section.payload_bytes / (x.shape[1] / sr) < 1200  # bits per second: a few hundred
    header = dataclasses.make_dataclass("H", ["stereo_params", "original_sample_rate_hz", "internal_sample_rate_hz",
                                              "hop_samples", "n_frames", "chunk_frames"])(section, sr, 24000, 320,
                                                                                           n_frames, 450)
    mid = x.mean(axis=0)
    y = np.concatenate(list(parametric_blocks(header, [np.stack([mid, mid])], 0)), axis=1)
    assert y.shape == x.shape
    mono = ild_error_db(x, np.stack([mid, mid]), sr)
    assert ild_error_db(x, y, sr) < 0.6 * mono


def test_low_rate_stereo_is_the_mid_plus_parameters_within_the_rate(codec, music, low_rate):
    x, sr = music
    data, y = low_rate
    header = read_header(data)
    assert data[5] == 2  # format 3.2: only streams with the section
    assert header.stereo_params is not None and header.stereo_mode == "mid_side"
    assert all(s.n_q == 0 for s in header.segments_for_channel(1))  # the side codes nothing
    actual = 8 * len(data) / (x.shape[1] / sr) / 1000
    assert abs(actual / 6 - 1) <= 0.05  # the parameters are paid from the asked total
    assert y.shape == x.shape and np.isfinite(y).all()
    # The image is back: far closer to the original's than a mono downmix would be.
    mono = ild_error_db(x, np.stack([y.mean(axis=0)] * 2), sr)
    assert ild_error_db(x, y, sr) < 0.6 * mono


def test_higher_rates_keep_true_mid_side(codec, music):
    x, sr = music
    data = codec.encode(x, sr, profile="music", bitrate_kbps=12)
    header = read_header(data)
    assert header.stereo_params is None and data[5] == 1
    assert any(s.n_q > 0 for s in header.segments_for_channel(1))


def test_a_31_reader_plays_the_mid_on_both_channels(codec, low_rate):
    data, _ = low_rate
    header = read_header(data)
    body = serialize_header_body(header)
    # What a 3.1 reader does with a 3.2 header: the section of the newer minor is skipped.
    old = parse_header_body(body, "acx header", allow_trailing=True, format_minor=1)
    assert old.stereo_params is None
    assert dataclasses.replace(old, stereo_params=header.stereo_params) == header
    stream = read_acx(data)
    y, _ = codec.decode(to_bytes(AcxStream.from_header(old, stream.chunks)))
    assert np.array_equal(y[0], y[1])


def test_corrupt_section_is_a_clear_error(codec, low_rate):
    data, _ = low_rate
    header = read_header(data)
    body = serialize_header_body(header)
    with pytest.raises(FormatError, match="parametric-stereo|extension"):
        parse_header_body(body[:-3], "acx header", format_minor=2)
    sec = header.stereo_params
    with pytest.raises(FormatError, match="parametric-stereo section: truncated"):  # one payload per span
        bad = dataclasses.replace(header, stereo_params=dataclasses.replace(sec, payloads=sec.payloads[:1]))
        parse_header_body(serialize_header_body(bad), "acx header", format_minor=2)


def test_range_decode_matches_the_whole_and_no_click_at_the_span_boundary(codec, music, low_rate):
    x, sr = music
    data, whole = low_rate
    part, _ = codec.decode(data, 4.5, 7.5)
    a, b = int(4.5 * sr), int(7.5 * sr)
    assert part.shape == (2, b - a)
    err = np.sqrt(np.mean((part - whole[:, a:b]) ** 2))
    assert err <= 0.05 * np.sqrt(np.mean(whole[:, a:b] ** 2)) + 1e-6
    # Chunk span 1 starts at 6 s (450 frames): parameters of two payloads meet there.
    boundary, win = 6 * sr, int(0.01 * sr)
    for c in (0, 1):
        jump = np.abs(np.diff(whole[c, boundary - win : boundary + win])).max()
        steady = np.abs(np.diff(whole[c, boundary - 40 * win : boundary + 40 * win])).max()
        assert jump <= steady + 1e-6


def test_mono_streams_have_no_stereo_section(codec):
    from adaptive_codec.errors import AdaptiveCodecError
    from adaptive_codec.pipeline.signal import array_blocks
    from adaptive_codec.planning.rate import Rate

    audio, info = load_audio(example_path("ambient"))
    mono = audio[:1, : 3 * info.sample_rate_hz]
    data = codec.encode(mono[0], info.sample_rate_hz, profile="ambient", bitrate_kbps=3)
    assert read_header(data).stereo_params is None and data[5] <= 1
    with pytest.raises(AdaptiveCodecError, match="needs a 2-channel input"):
        codec.measure_and_plan(lambda: array_blocks(mono, 4096), info.sample_rate_hz, "ambient", Rate(3),
                               stereo="parametric")


def test_info_names_the_tool_and_archives_keep_the_stream(codec, tmp_path, capsys, monkeypatch):
    from adaptive_codec.cli.app import main

    out = tmp_path / "m.acx"
    assert main(["encode", str(example_path("music")), str(out), "--profile", "music", "--bitrate", "6"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "2 ch (mid + parametric stereo)" in capsys.readouterr().out
    arc = tmp_path / "a.aca"
    assert main(["archive", "create", str(arc), str(example_path("music")), "--profile", "music",
                 "--bitrate", "6"]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["archive", "extract", str(arc), "--acx", "--to", "x"]) == 0
    assert (tmp_path / "x" / "music.acx").read_bytes() == out.read_bytes()
