"""Rate control: the asked bitrate is the whole stream's measured rate, or the stream says it was capped."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from adaptive_codec import AdaptiveCodec
from adaptive_codec.audio import load_audio, save_audio
from adaptive_codec.cli.app import main
from adaptive_codec.container.acx import read_acx, read_header
from adaptive_codec.pipeline.encoder import encode_stream
from adaptive_codec.pipeline.signal import array_blocks
from adaptive_codec.planning.rate import Rate
from adaptive_codec.planning.rate_control import (
    CAP_DEEPEST,
    CAP_NONE,
    CAP_SHALLOWEST,
    PartTarget,
    RateController,
    fixed_depths,
)
from adaptive_codec.resources import example_path
from adaptive_codec.tools.stereo import side_divisor

LEVEL_BITS = np.linspace(6.0, 9.0, 16)  # expected bits of an index per level, as the tables give them


def _controller(bps: float, n_frames: int = 2000, fixed_bits: float = 0.0, overhead=None, **kw) -> RateController:
    parts = [PartTarget(0, n_frames // 2, bps, 0.0, LEVEL_BITS, key=0),
             PartTarget(n_frames // 2, n_frames, bps * 0.6, 0.0, LEVEL_BITS, key=1)]
    return RateController(parts, n_frames, n_frames / 75.0, 75.0, 16, fixed_bits=fixed_bits,
                          overhead_bits=overhead, **kw)


def _run(ctrl: RateController, n_frames: int, coded_ratio, span: int = 450) -> float:
    """Code every span with ``measure`` = what the depths cost times ``coded_ratio(frame)``: the total bits."""
    cost = np.concatenate([[0.0], np.cumsum(LEVEL_BITS)])
    total = ctrl.fixed_bits
    for a in range(0, n_frames, span):
        b = min(a + span, n_frames)

        def measure(depths, rows, a=a, b=b):
            ratio = coded_ratio(np.arange(a, b))
            return float(sum((cost[d] * ratio).sum() for d in depths)) + 40.0, None

        choice = ctrl.choose(a, b, measure)
        total += choice.bits + (ctrl.overhead_bits(a, b) if ctrl.overhead_bits else 0.0)
    return total


def test_fixed_depths_mix_two_depths_to_the_budget():
    cost = np.concatenate([[0.0], np.cumsum(LEVEL_BITS)])
    q, k = fixed_depths(100, 100 * (cost[5] + 0.25 * (cost[6] - cost[5])), cost)
    assert (q, k) == (5, 25)
    assert fixed_depths(100, 1.0, cost) == (1, 0)  # below one level: the shallowest
    assert fixed_depths(100, 1e9, cost) == (16, 0)  # above every level: the deepest


@pytest.mark.parametrize("ratio", [0.7, 1.0, 1.3])
def test_measured_bits_land_on_the_target_whatever_the_tables_predict(ratio):
    """Codes that compress 30 % better or worse than the tables expect: the total still lands on the target."""
    n = 2000
    ctrl = _controller(6000.0, n, fixed_bits=800.0)
    rng = np.random.default_rng(0)
    wobble = 1 + 0.2 * rng.standard_normal(n)  # content that changes from span to span
    total = _run(ctrl, n, lambda f: ratio * wobble[f])
    outcome = ctrl.outcome(total, n / 75.0)
    assert outcome.cap == CAP_NONE
    assert abs(outcome.ratio - 1) < 0.01, outcome
    assert ctrl.asked_bps == pytest.approx(4800.0)  # the two segments' rates, frame-weighted


def test_side_sections_are_paid_from_the_same_budget():
    """A measured side section (e.g. a high band, 500 bps) leaves the total on target: the backbone gets less."""
    n = 2000
    span_bits = lambda a, b: 500.0 * (b - a) / 75.0  # noqa: E731
    plain = _controller(6000.0, n)
    with_side = _controller(6000.0, n, overhead=span_bits)
    base = _run(plain, n, lambda f: np.ones(f.size))
    total = _run(with_side, n, lambda f: np.ones(f.size))
    assert abs(with_side.outcome(total, n / 75.0).ratio - 1) < 0.01
    assert base - (total - 500.0 * n / 75.0) == pytest.approx(500.0 * n / 75.0, rel=0.05)


def test_unreachable_targets_are_capped_and_said():
    n = 900
    high = _controller(50_000.0, n)
    out = high.outcome(_run(high, n, lambda f: np.ones(f.size)), n / 75.0)
    assert out.cap == CAP_DEEPEST and out.ratio < 0.97
    assert out.message.startswith(f"capped at {out.actual_bps / 1000:.2f} kbps: the deepest setting")
    low = _controller(100.0, n)
    out = low.outcome(_run(low, n, lambda f: np.ones(f.size)), n / 75.0)
    assert out.cap == CAP_SHALLOWEST and "shallowest" in out.message


# -- the codec ------------------------------------------------------------------

@pytest.fixture(scope="module")
def codec() -> AdaptiveCodec:
    return AdaptiveCodec.default()


@pytest.mark.parametrize("name", ["speech", "music", "ambient", "mixed"])
def test_bundled_examples_reach_every_reachable_target(codec, name):
    """Within 3 % on every bundled example (mono and stereo) at 1.5, 3 and 6 kbps and the profile defaults.

    Stereo 44.1 kHz music at 1.5 kbps is reachable: the mid alone with parametric
    stereo and the coarsest high-band envelope fit in it.
    """
    audio, info = load_audio(example_path(name))
    sr = info.sample_rate_hz
    profile = "auto" if name == "mixed" else name
    for kbps in (1.5, 3.0, 6.0, None):
        blob = codec.encode(audio, sr, profile=profile, bitrate_kbps=kbps)
        header = read_header(blob)
        actual = len(blob) * 8 / (audio.shape[-1] / sr)
        assert header.rate_limit == CAP_NONE
        assert abs(actual / header.asked_bps - 1) <= 0.03, (name, kbps, actual, header.asked_bps)
        if kbps is not None:
            assert header.asked_bps == kbps * 1000


def test_stereo_costs_the_asked_total_not_the_mid_plus_a_side(codec):
    """Two channels share one budget: a stereo file at 12 kbps is 12 kbps, its side at a fraction of the mid's depth.

    (At 6 kbps and below the pair is the mid plus parametric stereo: tests/test_parametric_stereo.py.)
    """
    audio, info = load_audio(example_path("music"))
    assert audio.shape[0] == 2
    blob = codec.encode(audio, info.sample_rate_hz, profile="music", bitrate_kbps=12.0)
    stream = read_acx(blob)
    assert stream.stereo_mode == "mid_side" and stream.stereo_params is None
    mid = sum(len(c.data) for c in stream.chunks if c.channel == 0)
    side = sum(len(c.data) for c in stream.chunks if c.channel == 1)
    assert 0 < side < mid
    assert abs(len(blob) * 8 / (audio.shape[-1] / info.sample_rate_hz) / 12000 - 1) <= 0.03
    for m, s in zip(stream.segments_for_channel(0), stream.segments_for_channel(1)):
        assert s.n_q == max(1, m.n_q // side_divisor(12.0))
    assert side_divisor(6.0) > side_divisor(12.0) == 2  # low rates: more of the pair's bits to the mid


def test_overhead_hook_keeps_the_total_on_target(codec):
    """``encode_stream(overhead_bits=...)``: bits written beside the backbone (synthetic here) come out of the budget."""
    audio, info = load_audio(example_path("music"))
    sr = info.sample_rate_hz
    block = 4 * sr
    scan, plan = codec.measure_and_plan(lambda: array_blocks(audio, block), sr, "music", Rate(6.0))
    side_bps = 1000.0
    spans = []

    def overhead(a: int, b: int) -> float:
        spans.append((a, b))
        return side_bps * (b - a) / codec.frame_rate_hz

    duration = audio.shape[-1] / sr
    plain, with_side = io.BytesIO(), io.BytesIO()
    encode_stream(codec.parts, plain, lambda: array_blocks(audio, block), sr, scan, plan)
    encode_stream(codec.parts, with_side, lambda: array_blocks(audio, block), sr, scan, plan,
                  overhead_bits=overhead, fixed_overhead_bits=400.0)
    n_frames = read_header(plain.getvalue()).n_frames
    side_total = side_bps * n_frames / codec.frame_rate_hz + 400.0
    assert spans[0][0] == 0 and spans[-1][1] == n_frames
    total = len(with_side.getvalue()) * 8 + side_total
    assert abs(total / duration / 6000 - 1) <= 0.03
    assert len(with_side.getvalue()) < len(plain.getvalue()) * 0.9


def test_capped_target_in_encode_and_info(codec, tmp_path, capsys):
    audio, info = load_audio(example_path("ambient"))
    src = tmp_path / "a.flac"
    save_audio(src, audio, info.sample_rate_hz)
    out = tmp_path / "a.acx"
    assert main(["encode", str(src), str(out), "--profile", "ambient", "--bitrate", "12"]) == 0
    printed = capsys.readouterr().out
    actual = out.stat().st_size * 8 / info.duration_s / 1000
    line = f"capped at {actual:.2f} kbps: the deepest setting (asked 12 kbps)"
    assert line in printed
    assert main(["info", str(out)]) == 0
    assert line in capsys.readouterr().out
    assert main(["info", str(out), "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["asked_kbps"] == 12 and summary["rate_limit"] == "deepest" and summary["capped"] == line
    assert main(["encode", str(src), str(tmp_path / "b.acx"), "--profile", "ambient", "--bitrate", "3"]) == 0
    assert "asked 3.00 kbps, actual" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "1001"])
def test_absurd_bitrates_are_one_line_usage_errors(tmp_path, capsys, value):
    src = tmp_path / "s.flac"
    audio, info = load_audio(example_path("speech"))
    save_audio(src, audio[:, : info.sample_rate_hz], info.sample_rate_hz)
    out = tmp_path / "s.acx"
    assert main(["encode", str(src), str(out), f"--bitrate={value}"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bitrate" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_old_streams_record_no_target(repo_root, capsys):
    """A 3.0 stream (the golden set) reads with asked_bps 0: info prints no rate line, json says None."""
    golden = sorted((repo_root / "tests" / "golden" / "3.0").glob("*.acx"))[0]
    assert read_header(golden).asked_bps == 0
    assert main(["info", str(golden), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["asked_kbps"] is None
