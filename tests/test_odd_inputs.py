"""Ordinary bad inputs get one-line errors that name the user's file (issue 35, item 6).

Each case is built here from small files: a 9-channel recording, a FIFO, a
file that changes between the encoder's two reads, a full disk, an atomic
writer's temporary name. Every case must be refused with an
:class:`~adaptive_codec.errors.AudioError` (or one ``error:`` line and exit 1
on the command line), leave no output behind and take well under 2 s
(``benchmarks/long_file_memory.py`` measures memory on long inputs).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from adaptive_codec.audio import AudioWriter, audio_info, iter_audio_blocks, load_audio, validate_audio
from adaptive_codec.audio.files import _system_reason
from adaptive_codec.cli.app import app
from adaptive_codec.cli.common import error_message
from adaptive_codec.errors import AudioError
from adaptive_codec.profiles import ENV_VAR

runner = CliRunner(env={ENV_VAR: None})
SR = 16000


def _tone(seconds: float, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rows = [0.3 * np.sin(2 * np.pi * (220 + 110 * c) * t) for c in range(channels)]
    return np.stack(rows).astype(np.float32)


def _write(path: Path, seconds: float, channels: int = 1) -> Path:
    sf.write(path, _tone(seconds, channels).T, SR)
    return path


def _cli(*args: str):
    t0 = time.monotonic()
    result = runner.invoke(app, list(args))
    return result, time.monotonic() - t0


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "internal error" not in lines[0]
    return lines[0]


# -- many channels ----------------------------------------------------------------


def test_nine_channel_file_is_refused_by_every_reader(tmp_path):
    path = _write(tmp_path / "nine.wav", 0.5, channels=9)
    for read in (audio_info, load_audio, lambda p: iter_audio_blocks(p, 1000)):
        t0 = time.monotonic()
        with pytest.raises(AudioError) as excinfo:
            read(path)
        assert time.monotonic() - t0 < 2
        text = str(excinfo.value)
        assert text == f"{path}: 9 channels is more than the 8 supported"  # no "transposed?" for a file


def test_transposed_hint_only_when_the_shape_suggests_it():
    with pytest.raises(AudioError) as excinfo:
        validate_audio(np.zeros((9, 1000), np.float32), SR)
    assert "transposed" not in str(excinfo.value)
    with pytest.raises(AudioError, match="transposed"):
        validate_audio(np.zeros((1000, 9), np.float32), SR)


@pytest.mark.parametrize("command", ["encode", "archive"])
def test_nine_channel_file_on_the_command_line(tmp_path, command):
    path = _write(tmp_path / "nine.wav", 0.5, channels=9)
    out = tmp_path / ("nine.acx" if command == "encode" else "nine.aca")
    args = ["encode", str(path), str(out)] if command == "encode" else ["archive", "create", str(out), str(path)]
    result, seconds = _cli(*args)
    line = _one_error_line(result)
    assert str(path) in line and "9 channels" in line and "transposed" not in line
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["nine.wav"]
    assert seconds < 30  # the archive command loads the model first (a few s on a busy machine)


# -- not a regular file -------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "live.wav"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would block forever
    t0 = time.monotonic()
    for read in (audio_info, load_audio, lambda p: iter_audio_blocks(p, 1000)):
        with pytest.raises(AudioError, match=r"not a regular file"):
            read(fifo)
    assert time.monotonic() - t0 < 2
    result, _ = _cli("encode", str(fifo), str(tmp_path / "live.acx"))
    line = _one_error_line(result)
    assert str(fifo) in line and "not a regular file" in line
    assert not (tmp_path / "live.acx").exists()


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        audio_info(tmp_path)
    with pytest.raises(AudioError, match="no such file"):
        audio_info(tmp_path / "missing.wav")


# -- a file that changes while the encoder reads it ------------------------------------


@pytest.fixture(scope="module")
def codec():
    from adaptive_codec import AdaptiveCodec

    return AdaptiveCodec.default()


@pytest.mark.parametrize("seconds", [1.0, 3.0])  # shorter, then longer than the first read
def test_file_changed_between_the_two_reads(tmp_path, codec, seconds):
    import torch

    from adaptive_codec.pipeline.signal import encode_blocks

    path = _write(tmp_path / "rec.wav", 2.0)
    first = audio_info(path).n_samples
    _write(path, seconds)  # e.g. a recorder still writing, or a sync tool replacing it
    levels = [4]
    cond = torch.zeros((codec.n_frames(first, SR), codec.parts.embeddings().cond_dim))
    t0 = time.monotonic()
    with pytest.raises(AudioError) as excinfo:
        encode_blocks(codec.backbone, iter_audio_blocks(path, SR), SR, first, False, cond, levels, [None])
    assert time.monotonic() - t0 < 2
    text = str(excinfo.value)
    assert text.startswith(f"{path}: the input changed between the encoder's two reads"), text


def test_file_changed_during_a_read_is_named(tmp_path, codec):
    path = _write(tmp_path / "rec.wav", 10.0)
    out = tmp_path / "rec.acx"
    changed = []

    def rewrite(block):
        if not changed:  # first block of the first read: another program rewrites the file
            _write(path, 10.0, channels=1)
            os.utime(path, ns=(0, 123456789))
            changed.append(True)

    with pytest.raises(AudioError, match=rf"^{path}: the file changed while it was being read"):
        codec.encode_file(out, path, profile="speech", on_block=rewrite)
    assert not out.exists()


# -- writing: full disk, temporary names ------------------------------------------------


def test_system_error_says_why():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with pytest.raises(sf.LibsndfileError) as excinfo:
        with sf.SoundFile("/dev/full", "w", samplerate=SR, channels=1, format="WAV") as f:
            f.write(np.zeros(SR, np.float32))
    assert _system_reason(excinfo.value) == "No space left on device"


def _tmpfs(path: Path, size_kib: int) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or sys.platform != "linux":
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
                          capture_output=True)
    return done.returncode == 0


def test_full_disk_names_the_output(tmp_path):
    full = tmp_path / "full"
    if not _tmpfs(full, 64):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        target = full / "out.wav"
        with pytest.raises(AudioError) as excinfo:
            with AudioWriter(target, SR, 1) as writer:
                for _ in range(10):
                    writer.write(_tone(1.0))
        assert str(excinfo.value) == f"{target}: could not write audio (No space left on device)"
        assert os.listdir(full) == []  # no partial output, no temporary file
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_unwritable_folder_names_the_output_not_the_temporary_file(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(AudioError) as excinfo:
            with AudioWriter(folder / "out.wav", SR, 1) as writer:
                writer.write(_tone(0.1))
        assert str(excinfo.value) == f"{folder / 'out.wav'}: could not write audio (Permission denied)"
    finally:
        folder.chmod(0o700)


def test_os_error_messages():
    assert error_message(OSError(28, "No space left on device", "/a/.x.aca.k2_9zQ1a.tmp")) == \
        "/a/x.aca: No space left on device"
    assert error_message(OSError(13, "Permission denied", "/a/.x.wav.abcdefgh.tmp", None, "/a/x.wav")) == \
        "/a/x.wav: Permission denied"
    assert error_message(OSError(18, "Invalid cross-device link", "/a/x", None, "/b/y")) == \
        "/a/x -> /b/y: Invalid cross-device link"
    assert error_message(FileNotFoundError(2, "No such file or directory", "x.wav")) == \
        "x.wav: No such file or directory"
    assert error_message(OSError(28, "No space left on device")) == "No space left on device"


def test_existing_output_says_use_dash_dash_force(tmp_path):
    src = _write(tmp_path / "a.wav", 0.5)
    (tmp_path / "a.acx").write_bytes(b"keep")
    result, _ = _cli("encode", str(src), str(tmp_path / "a.acx"))
    assert _one_error_line(result) == f"error: {tmp_path / 'a.acx'} already exists (use --force to overwrite)"
    assert (tmp_path / "a.acx").read_bytes() == b"keep"


def test_array_input_that_shrinks_is_an_audio_error(codec):
    import torch

    from adaptive_codec.pipeline.signal import array_blocks, encode_blocks

    x = _tone(1.0)
    cond = torch.zeros((codec.n_frames(2 * SR, SR), codec.parts.embeddings().cond_dim))
    with pytest.raises(AudioError, match=r"^input: the input changed"):
        encode_blocks(codec.backbone, array_blocks(x, SR), SR, 2 * SR, False, cond, [4], [None])


def _truncated(path: Path) -> Path:
    _write(path, 1.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p: (p.write_bytes(b""), p)[1], "not a readable audio file"),
    (lambda p: (p.write_text("hello"), p)[1], "not a readable audio file"),
    (lambda p: (sf.write(p, np.zeros((0, 1), np.float32), SR), p)[1], "audio is empty (0 samples)"),
    (lambda p: (sf.write(p, np.zeros(400, np.float32), 4000), p)[1], "sample rate 4000 Hz is outside"),
    (lambda p: (sf.write(p, np.zeros(4000, np.float32), 384000), p)[1], "sample rate 384000 Hz is outside"),
    (_truncated, "truncated audio file: RIFF chunk declares"),
], ids=["zero-bytes", "text", "no-samples", "4-kHz", "384-kHz", "truncated-header"])
def test_header_problems_fail_before_the_model_loads(tmp_path, make, message):
    path = make(tmp_path / "in.wav")
    result, seconds = _cli("encode", str(path), str(tmp_path / "in.acx"))
    line = _one_error_line(result)
    assert line.startswith(f"error: {path}: ") and message in line
    assert seconds < 2 and not (tmp_path / "in.acx").exists()


def test_full_disk_while_encoding_names_the_stream(tmp_path, codec):
    full = tmp_path / "full"
    if not _tmpfs(full, 8):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        src = tmp_path / "noise.wav"
        sf.write(src, np.random.default_rng(0).standard_normal(30 * SR).astype(np.float32) * 0.1, SR)
        target = full / "noise.acx"
        with pytest.raises(OSError) as excinfo:
            codec.encode_file(target, src, profile="ambient")
        assert error_message(excinfo.value) == f"{target}: No space left on device"
        assert os.listdir(full) == []  # the temporary file is gone too
    finally:
        subprocess.run(["umount", str(full)], check=False)
