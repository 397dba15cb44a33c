"""Audio I/O, resampling, channel handling and validation (the adaptive_codec.audio stage)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptive_codec
from adaptive_codec.audio import (
    AUDIO_SUFFIXES,
    INTERNAL_SAMPLE_RATE_HZ,
    AudioInfo,
    AudioWriter,
    as_channels_first,
    audio_info,
    StreamResampler,
    analysis_stream_resampler,
    iter_audio_blocks,
    load_audio,
    resample,
    resample_for_analysis,
    resample_for_training,
    save_audio,
    to_mono,
    validate_audio,
)
from adaptive_codec.errors import AdaptiveCodecError, AudioError


def _clip(example_clip, channels: int, seconds: float = 0.5) -> np.ndarray:
    """``channels`` channels of real music (shifted copies of the stereo clip)."""
    music, sr = example_clip("music")
    n = int(seconds * sr)
    base = music[:, sr : sr + n]  # skip the first second: fade-ins are too quiet
    rows = [np.roll(base[i % 2], 97 * (i // 2)) for i in range(channels)]
    return np.stack(rows).astype(np.float32)


def _pcm16(x: np.ndarray) -> np.ndarray:
    # What libsndfile stores for PCM_16: round(x * 32768), clipped.
    return np.clip(np.round(x * 32768.0), -32768, 32767) / 32768.0


# -- round trips --------------------------------------------------------------


@pytest.mark.parametrize("sample_rate_hz", [8000, 16000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2, 6])
@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_lossless_round_trip(tmp_path, example_clip, suffix, channels, sample_rate_hz):
    audio = _clip(example_clip, channels)
    path = save_audio(tmp_path / f"x.{suffix}", audio, sample_rate_hz)
    loaded, info = load_audio(path)
    assert loaded.dtype == np.float32 and loaded.shape == audio.shape
    assert info == AudioInfo(
        sample_rate_hz=sample_rate_hz, channels=channels, n_samples=audio.shape[1],
        duration_s=audio.shape[1] / sample_rate_hz, format=suffix.upper(), subtype="PCM_16",
    )
    np.testing.assert_array_equal(loaded, _pcm16(audio).astype(np.float32))


@pytest.mark.parametrize("subtype", ["PCM_24", "FLOAT"])
def test_wav_high_resolution_round_trip(tmp_path, example_clip, subtype):
    audio = _clip(example_clip, 2)
    loaded, info = load_audio(save_audio(tmp_path / "x.wav", audio, 48000, subtype=subtype))
    assert info.subtype == subtype
    np.testing.assert_allclose(loaded, audio, atol=2.0**-23 if subtype == "PCM_24" else 0)


@pytest.mark.parametrize(
    ("suffix", "sample_rate_hz", "channels"),
    [("ogg", 44100, 2), ("ogg", 22050, 1), ("opus", 48000, 2), ("opus", 16000, 1),
     ("mp3", 44100, 2), ("mp3", 24000, 1)],
)
def test_lossy_round_trip(tmp_path, example_clip, suffix, sample_rate_hz, channels):
    audio = _clip(example_clip, channels, seconds=1.0)
    path = save_audio(tmp_path / f"x.{suffix}", audio, sample_rate_hz)
    loaded, info = load_audio(path)
    assert info.sample_rate_hz == sample_rate_hz and info.channels == channels
    assert loaded.shape[0] == channels
    # Lossy coders may pad by up to a frame or two; content must still match.
    assert abs(loaded.shape[1] - audio.shape[1]) <= 2 * 1152
    n = min(loaded.shape[1], audio.shape[1])
    assert np.corrcoef(audio[0, :n], loaded[0, :n])[0, 1] > 0.9


def test_audio_info_matches_load(example_clip):
    path = Path(__file__).resolve().parent.parent / "examples" / "speech.flac"
    info = audio_info(path)
    audio, loaded_info = load_audio(path)
    assert info == loaded_info
    assert (info.sample_rate_hz, info.channels, info.format) == (44100, 2, "FLAC")
    assert audio.shape == (2, info.n_samples)


def test_bundled_examples_load(repo_root):
    for name in ("speech", "music", "ambient", "mixed"):
        audio, info = load_audio(repo_root / "examples" / f"{name}.flac")
        assert info.duration_s > 5 and np.abs(audio).max() > 0.01
    # The mixed clip's reference labels cover the whole file.
    rows = (repo_root / "examples" / "mixed.segments.csv").read_text().splitlines()
    assert rows[0] == "start_s,end_s,label"
    last_end = float(rows[-1].split(",")[1])
    assert abs(last_end - audio_info(repo_root / "examples" / "mixed.flac").duration_s) < 0.01
    assert {r.split(",")[2] for r in rows[1:]} == {"speech", "music", "ambient"}


def test_silence_is_valid(tmp_path):
    silence = np.zeros((2, 8000), np.float32)
    loaded, _ = load_audio(save_audio(tmp_path / "s.flac", silence, 16000))
    assert not loaded.any()


def test_iter_audio_blocks_equals_load(repo_root):
    path = repo_root / "examples" / "ambient.flac"
    whole, _ = load_audio(path)
    blocks = list(iter_audio_blocks(path, 10_000))
    assert all(b.shape[1] == 10_000 for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), whole)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_iter_audio_blocks_reports_truncation_like_load(tmp_path, example_clip, suffix):
    path = _truncate(save_audio(tmp_path / f"cut{suffix}", _clip(example_clip, 2, 1.0), 44100))
    with pytest.raises(AudioError, match="truncated") as excinfo:
        for _ in iter_audio_blocks(path, 4096):
            pass
    assert str(path) in str(excinfo.value)


# -- bad input: every case names the file and the problem ---------------------


def _write_wav(path: Path, data: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    sf.write(path, data, sr, subtype=subtype)  # soundfile: (samples, channels)
    return path


def _truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, clip: d / "missing.wav", "no such file"),
        (lambda d, clip: d, "is a directory"),
        (lambda d, clip: (d / "garbage.wav").write_bytes(b"\0garbage" * 64) and d / "garbage.wav",
         "not a readable audio file"),
        (lambda d, clip: (d / "text.flac").write_text("not audio") and d / "text.flac",
         "not a readable audio file"),
        (lambda d, clip: _truncate(save_audio(d / "cut.wav", clip, 44100)), "truncated"),
        (lambda d, clip: _truncate(save_audio(d / "cut.flac", clip, 44100)), "truncated"),
        (lambda d, clip: _truncate(save_audio(d / "cut.ogg", clip, 44100)), "truncated"),
        (lambda d, clip: _truncate(save_audio(d / "cut.mp3", clip, 44100)), "truncated"),
        (lambda d, clip: _write_wav(d / "empty.wav", np.zeros((0, 1)), 16000), "empty"),
        (lambda d, clip: _write_wav(d / "nan.wav", np.full((100, 1), np.nan), 16000, "FLOAT"),
         "NaN or infinite"),
        (lambda d, clip: _write_wav(d / "inf.wav", np.full((100, 2), np.inf), 16000, "FLOAT"),
         "NaN or infinite"),
        (lambda d, clip: _write_wav(d / "nine.wav", np.zeros((100, 9)), 16000), "9 channels"),
        (lambda d, clip: _write_wav(d / "low.wav", clip[0, :4000], 4000), "4000 Hz"),
        (lambda d, clip: _write_wav(d / "high.wav", clip[0], 384000), "384000 Hz"),
    ],
    ids=["missing", "directory", "corrupt-wav", "corrupt-flac", "truncated-wav",
         "truncated-flac", "truncated-ogg", "truncated-mp3", "empty", "nan", "inf", "9-channels",
         "4kHz", "384kHz"],
)
def test_bad_input_message(tmp_path, example_clip, make, message):
    path = make(tmp_path, _clip(example_clip, 2, seconds=1.0))
    with pytest.raises(AudioError) as excinfo:
        load_audio(path)
    text = str(excinfo.value)
    assert message in text
    assert str(path) in text  # the user must know which file
    assert isinstance(excinfo.value, AdaptiveCodecError)


def test_validate_arrays():
    validate_audio(np.zeros(100, np.float32), 16000)  # mono (samples,)
    validate_audio(torch.zeros(2, 100), 48000)  # tensors too
    with pytest.raises(AudioError, match=r"shape \(samples,\) or \(channels, samples\)"):
        validate_audio(np.zeros((1, 2, 100)), 16000)
    with pytest.raises(AudioError, match="transposed"):
        validate_audio(np.zeros((48000, 2)), 48000)
    with pytest.raises(AudioError, match="empty"):
        validate_audio(np.zeros((2, 0)), 16000)
    with pytest.raises(AudioError, match="^clip.wav: sample rate 7999 Hz"):
        validate_audio(np.zeros(10), 7999, name="clip.wav")
    validate_audio(np.zeros(10), 8000)
    validate_audio(np.zeros(10), 192000)


def test_integer_pcm_is_scaled():
    x = as_channels_first(np.array([-32768, 0, 16384], np.int16))
    assert x.dtype == np.float32 and x.shape == (1, 3)
    np.testing.assert_array_equal(x[0], [-1.0, 0.0, 0.5])


# -- writing ------------------------------------------------------------------


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, example_clip):
    audio = _clip(example_clip, 1)
    target = tmp_path / "out" / "x.flac"
    save_audio(target, audio, 16000)
    save_audio(target, audio * 0.5, 16000)  # overwrite in place
    assert sorted(os.listdir(target.parent)) == ["x.flac"]
    with pytest.raises(AudioError, match="unsupported output format"):
        save_audio(tmp_path / "out" / "x.xyz", audio, 16000)
    with pytest.raises(AudioError, match="NaN"):
        save_audio(target, np.full(10, np.nan), 16000)
    assert sorted(os.listdir(target.parent)) == ["x.flac"]
    np.testing.assert_allclose(load_audio(target)[0], _pcm16(audio * 0.5), atol=1e-7)
    # Not the private 0600 of the temporary file: what open() would have made.
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    target.chmod(0o640)
    save_audio(target, audio, 16000)
    assert target.stat().st_mode & 0o777 == 0o640


def test_audio_writer_blocks_equal_save_audio(tmp_path, example_clip):
    audio = _clip(example_clip, 2, 1.0)
    whole = save_audio(tmp_path / "whole.flac", audio, 44100)
    with AudioWriter(tmp_path / "blocks.flac", 44100, 2) as writer:
        for piece in np.array_split(audio, [1000, 1001, 30000], axis=1):
            writer.write(piece)
    assert writer.samples_written == audio.shape[1]
    np.testing.assert_array_equal(load_audio(tmp_path / "blocks.flac")[0], load_audio(whole)[0])


def test_audio_writer_leaves_nothing_on_failure(tmp_path, example_clip):
    target = tmp_path / "x.wav"
    with pytest.raises(RuntimeError, match="boom"):
        with AudioWriter(target, 16000, 1) as writer:
            writer.write(_clip(example_clip, 1))
            raise RuntimeError("boom")
    with pytest.raises(AudioError, match="2 channels"):
        with AudioWriter(target, 16000, 1) as writer:
            writer.write(_clip(example_clip, 2))
    assert os.listdir(tmp_path) == []


def test_save_clips_instead_of_wrapping(tmp_path):
    loud = np.array([[0.5, 1.5, -2.0, 0.25]], np.float32)
    loaded, _ = load_audio(save_audio(tmp_path / "loud.wav", loud, 16000))
    assert loaded.max() <= 1.0 and loaded[0, 1] > 0.99 and loaded[0, 2] == -1.0


# -- resampling and channels --------------------------------------------------


def test_resample_lengths_and_types(example_clip):
    speech, sr = example_clip("speech")
    y = resample(speech, sr, INTERNAL_SAMPLE_RATE_HZ)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32
    assert y.shape == (2, int(np.ceil(speech.shape[1] * INTERNAL_SAMPLE_RATE_HZ / sr)))
    t = torch.from_numpy(np.array(speech[:, :4410]))
    assert isinstance(resample(t, sr, 24000), torch.Tensor)
    assert resample(speech, sr, sr) is speech


def test_resample_keeps_passband_and_rejects_aliases():
    sr = 48000
    t = np.arange(sr) / sr
    kept = np.sin(2 * np.pi * 11_000 * t).astype(np.float32)  # below 24 kHz Nyquist
    alias = np.sin(2 * np.pi * 13_000 * t).astype(np.float32)  # above it
    core = slice(2000, -2000)  # ignore filter edges
    kept_out = resample(kept, sr, 24000)[core]
    alias_out = resample(alias, sr, 24000)[core]
    assert 0.95 < np.sqrt(2 * np.mean(kept_out**2)) < 1.05
    assert 20 * np.log10(np.sqrt(2 * np.mean(alias_out**2))) < -60


def test_resample_round_trip_is_close(example_clip):
    speech, sr = example_clip("speech")
    x = speech[0, : sr * 2]
    back = resample(resample(x, sr, 24000), 24000, sr)[: x.size]
    # Speech has little energy above 12 kHz, so the round trip loses little.
    err = back[1000:-1000] - x[1000:-1000]
    assert 10 * np.log10(np.sum(x[1000:-1000] ** 2) / np.sum(err**2)) > 25


@pytest.mark.parametrize("sr_from,sr_to", [(16000, 24000), (44100, 24000), (48000, 24000),
                                           (24000, 48000), (24000, 22050), (8000, 24000)])
def test_resample_equals_torchaudio_kaiser_best(example_clip, sr_from, sr_to):
    """Same filter as torchaudio's "kaiser_best" settings, applied as a polyphase product."""
    import torchaudio.functional as AF

    x = _clip(example_clip, 2, 0.5)
    want = AF.resample(torch.from_numpy(x), sr_from, sr_to, lowpass_filter_width=64,
                       rolloff=0.9475937167399596, resampling_method="sinc_interp_kaiser",
                       beta=14.769656459379492).numpy()
    got = resample(x, sr_from, sr_to)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-5 * np.abs(want).max())


@pytest.mark.parametrize("sr_from,sr_to", [(44100, 24000), (48000, 24000), (24000, 16000),
                                           (24000, 44100)])
def test_stream_resampler_equals_whole_signal(example_clip, sr_from, sr_to):
    x = _clip(example_clip, 2, 1.0)
    whole = resample(x, sr_from, sr_to)
    rng = np.random.default_rng(sr_from + sr_to)
    for _ in range(3):
        stream = StreamResampler(sr_from, sr_to)
        cuts = np.sort(rng.choice(np.arange(1, x.shape[1]), size=6, replace=False))
        cuts[0] = min(cuts[0], 3)  # a tiny first block: less than the filter's width
        out = [stream.push(piece) for piece in np.split(x, cuts, axis=1)] + [stream.finish()]
        np.testing.assert_allclose(np.concatenate(out, axis=1), whole, atol=1e-6)


def test_to_mono(example_clip):
    music, _ = example_clip("music")
    mono = to_mono(music)
    assert mono.shape == (music.shape[1],) and mono.dtype == np.float32
    np.testing.assert_allclose(mono, music.mean(axis=0), atol=1e-7)
    np.testing.assert_array_equal(to_mono(music[0]), music[0])


@settings(max_examples=40, deadline=None)
@given(
    channels=st.integers(1, 8),
    n=st.integers(1, 400),
    sr=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
)
def test_resample_length_property(channels, n, sr):
    x = np.zeros((channels, n), np.float32)
    y = resample(x, sr, INTERNAL_SAMPLE_RATE_HZ)
    assert y.shape == (channels, int(np.ceil(n * INTERNAL_SAMPLE_RATE_HZ / sr)))


# -- the other resamplers: same algorithms as the callers used before ---------


@pytest.mark.parametrize("sr_from,sr_to", [(44100, 16000), (48000, 16000), (16000, 8000)])
def test_analysis_resamplers_are_soxr_hq(example_clip, sr_from, sr_to):
    """The classifier was trained on soxr "HQ" features: whole and streamed stay that filter."""
    x = _clip(example_clip, 1, 1.0)[0]
    np.testing.assert_array_equal(resample_for_analysis(x, sr_from, sr_to),
                                  soxr.resample(x, sr_from, sr_to, quality="HQ"))
    ours = analysis_stream_resampler(sr_from, sr_to)
    theirs = soxr.ResampleStream(sr_from, sr_to, 1, dtype="float32", quality="HQ")
    for piece in np.array_split(x, 5):
        np.testing.assert_array_equal(ours.resample_chunk(piece, last=False),
                                      theirs.resample_chunk(piece, last=False))
    empty = np.zeros(0, np.float32)
    np.testing.assert_array_equal(ours.resample_chunk(empty, last=True), theirs.resample_chunk(empty, last=True))


def test_training_resampler_is_torchaudio_default(example_clip):
    import torchaudio.functional as AF

    x = _clip(example_clip, 1, 0.5)[0]
    np.testing.assert_array_equal(resample_for_training(x, 44100, 24000),
                                  AF.resample(torch.from_numpy(x), 44100, 24000).numpy())



# -- import weight -------------------------------------------------------------


@pytest.mark.parametrize("module", ["adaptive_codec", "adaptive_codec.audio", "adaptive_codec.analysis"])
def test_import_is_light(module):
    """Importing the package (or the audio / analysis stage) pulls in neither torch nor sklearn."""
    code = (f"import sys, {module}; "
            "print(' '.join(m for m in ('torch', 'torchaudio', 'sklearn') if m in sys.modules))")
    # The subprocess must import the very package under test (checkout or installed).
    here = str(Path(adaptive_codec.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": path})
    assert out.stdout.split() == [], f"import {module} imported {out.stdout.strip()}"
