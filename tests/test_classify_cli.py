"""`adaptive-codec classify` and `adaptive-codec train classifier` (custom classes end to end)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from adaptive_codec.analysis.classifier import DEFAULT_ARTIFACT, ContentClassifier
from adaptive_codec.cli.app import app, main
from adaptive_codec.profiles import ENV_VAR
from tests.conftest import EXAMPLES_DIR, REPO_ROOT

runner = CliRunner(env={ENV_VAR: None})
SHIPPED = REPO_ROOT / "classifiers" / DEFAULT_ARTIFACT
needs_shipped = pytest.mark.skipif(not SHIPPED.is_file(), reason="shipped classifier not built yet")


def _run(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@needs_shipped
def test_classify_table_lists_segments_and_profiles():
    result = _run("classify", EXAMPLES_DIR / "mixed.flac")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["START", "END", "DURATION", "LABEL", "PROFILE", "CONFIDENCE"]
    labels = [line.split()[3] for line in lines[1:]]
    assert labels == ["ambient", "speech", "music", "speech", "music"]
    assert all(line.split()[3] == line.split()[4] for line in lines[1:])


@needs_shipped
def test_classify_csv_and_json_agree():
    rows = list(csv.DictReader(io.StringIO(_run("classify", EXAMPLES_DIR / "mixed.flac", "-f", "csv").stdout)))
    data = json.loads(_run("classify", EXAMPLES_DIR / "mixed.flac", "--format", "json").stdout)
    assert [r["label"] for r in rows] == [s["label"] for s in data["segments"]]
    assert float(rows[-1]["end_s"]) == pytest.approx(data["duration_s"])
    assert data["segments"][0]["start_s"] == 0.0
    for a, b in zip(data["segments"], data["segments"][1:]):
        assert a["end_s"] == b["start_s"]


@needs_shipped
def test_classify_min_segment_merges_everything_short():
    data = json.loads(_run("classify", EXAMPLES_DIR / "mixed.flac", "-f", "json", "--min-segment", "100").stdout)
    assert len(data["segments"]) == 1


@needs_shipped
def test_classify_keeps_a_pause_in_speech_as_speech_unless_told_not_to(tmp_path):
    import numpy as np

    from adaptive_codec.audio import load_audio, save_audio, to_mono

    audio, info = load_audio(EXAMPLES_DIR / "speech.flac")
    speech = to_mono(audio)[: 8 * info.sample_rate_hz]
    pause = np.zeros(3 * info.sample_rate_hz, dtype=speech.dtype)  # digital silence: below the gate
    path = tmp_path / "pause.wav"
    save_audio(path, np.concatenate([speech, pause, speech]), info.sample_rate_hz)
    default = json.loads(_run("classify", path, "-f", "json").stdout)["segments"]
    assert [s["label"] for s in default] == ["speech"]
    split = json.loads(_run("classify", path, "-f", "json", "--max-pause", "0").stdout)["segments"]
    assert [s["label"] for s in split] == ["speech", "silence", "speech"]
    assert split[1]["profile"] == "ambient"
    assert split[1]["end_s"] - split[1]["start_s"] == pytest.approx(3.0, abs=0.6)


@pytest.mark.parametrize(
    "args, message",
    [
        (["classify", "missing.wav"], "missing.wav"),
        (["classify", EXAMPLES_DIR / "speech.flac", "--max-pause", "-2"], "max-pause"),
        (["classify", EXAMPLES_DIR / "speech.flac", "--classifier", EXAMPLES_DIR / "README.md"], "README.md"),
        (["classify", EXAMPLES_DIR / "speech.flac", "--min-segment", "-1"], "min-segment"),
        (["classify", EXAMPLES_DIR / "speech.flac", "-f", "xml"], "xml"),
    ],
)
def test_classify_bad_input_is_one_line_error(args, message, capsys):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


CUSTOM = {
    "birdsong": [
        "ambient/moodist__birds__00.flac",
        "ambient/data__456440__inspectorj__bird-whistling-robin-single-13.hq__00.flac",
        "ambient/moodist__owl__00.flac",
    ],
    "speech": [
        "speech/Resemblyzer__103-1240-0000__00.flac",
        "speech/Resemblyzer__1034-121119-0000__00.flac",
        "speech/Resemblyzer__1040-133433-0000__00.flac",
    ],
    "music": [
        "music/asc-music__frontiers__00.flac",
        "music/hyperrogue-music__hr-domina-hunting__00.flac",
        "music/hyperrogue-music__hr3-icyland__02.flac",
    ],
}


def _custom_data(tmp_path, corpus_dir):
    data = tmp_path / "data"
    for label, clips in CUSTOM.items():
        (data / label).mkdir(parents=True)
        for clip in clips:
            os.symlink(corpus_dir / clip, data / label / os.path.basename(clip))
    return data


def test_custom_class_end_to_end(tmp_path, corpus_dir):
    """One sub-folder per label -> artifact + card -> a custom profile serves the new label."""
    data = _custom_data(tmp_path, corpus_dir)
    out = tmp_path / "birds.safetensors"
    result = _run("train", "classifier", "--data", data, "--out", out, "--folds", "3")
    assert result.exit_code == 0, result.output
    assert "window accuracy" in result.stdout
    card = out.with_suffix(".md").read_text()
    assert "birdsong" in card and "confusion" in card
    clf = ContentClassifier.load(out)
    assert list(clf.classes_) == ["birdsong", "music", "speech"]

    # Without a profile for the new label: a warning that names the profiles.
    bird = data / "birdsong" / "moodist__birds__00.flac"
    plain = _run("classify", bird, "--classifier", out, "-f", "json")
    assert plain.exit_code == 0
    assert "no profile serves label(s) birdsong" in plain.stderr and "ambient" in plain.stderr
    # With the example profile folder, the custom profile serves it: no code change.
    profiles = REPO_ROOT / "profiles" / "examples"
    routed = _run("--profiles-dir", profiles, "classify", bird, "--classifier", out, "-f", "json")
    segments = json.loads(routed.stdout)["segments"]
    assert [s["label"] for s in segments] == ["birdsong"]
    assert [s["profile"] for s in segments] == ["birdsong"]

    again = _run("train", "classifier", "--data", data, "--out", out)
    assert again.exit_code == 1 and "--force" in again.stderr


def test_train_classifier_recipe_options(tmp_path, corpus_dir):
    """--train-exclude is trained without but scored; --mixtures adds near-change windows."""
    data = _custom_data(tmp_path, corpus_dir)
    out = tmp_path / "recipe.safetensors"
    result = _run("train", "classifier", "--data", data, "--out", out, "--folds", "3", "--no-narrowband",
                  "--train-exclude", "owl", "--mixtures", "3")
    assert result.exit_code == 0, result.output
    assert "without the never-trained-on files" in result.stdout
    training = ContentClassifier.read_metadata(out)["training"]
    assert training["train_exclude"] == ["owl"]
    assert training["excluded_groups"] == ["birdsong/moodist__owl__00.flac"]
    assert training["mixtures"] == 3 and training["mixture_windows"] > 0
    scored = training["cv"]["per_class"]["birdsong"]["support"]
    assert training["cv_without_excluded"]["per_class"]["birdsong"]["support"] < scored
    card = out.with_suffix(".md").read_text()
    assert "Never trained on" in card and "synthetic mixtures" in card

    nothing = _run("train", "classifier", "--data", data, "--out", tmp_path / "x.safetensors",
                   "--train-exclude", "no-such-clip")
    assert nothing.exit_code == 1 and "matches no file" in nothing.stderr
    assert not (tmp_path / "x.safetensors").exists()
    unknown = _run("train", "classifier", "--data", data, "--out", tmp_path / "x.safetensors",
                   "--extra-balance", "source")
    assert unknown.exit_code == 1 and "--extra-balance must be class or group" in unknown.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_train_classifier_augment_and_speech_over_music(tmp_path, corpus_dir):
    """--augment adds degraded copies, --speech-over-music speech over music beds; both trained on, not scored."""
    data = _custom_data(tmp_path, corpus_dir)
    out = tmp_path / "aug.safetensors"
    result = _run("train", "classifier", "--data", data, "--out", out, "--folds", "3", "--no-narrowband",
                  "--augment", "1", "--speech-over-music")
    assert result.exit_code == 0, result.output
    meta = ContentClassifier.read_metadata(out)
    training = meta["training"]
    assert training["augment"] == 1 and training["speech_over_music"] is True
    original = sum(training["data"]["windows"].values())
    # One degraded copy per file, plus one speech-over-music copy per speech file.
    assert training["data"]["augmented_windows"] > original
    assert training["cv"]["per_class"]["speech"]["support"] == training["data"]["windows"]["speech"]
    calibration = training["calibration"]
    assert 0.25 <= calibration["temperature"] <= 4.0
    # The temperature minimises the held-out log loss (1.0 is on its grid): never worse than uncalibrated.
    assert calibration["log_loss_after"] <= calibration["log_loss_before"] + 1e-12
    assert ContentClassifier.load(out).temperature_ == pytest.approx(meta["temperature"])

    no_music = tmp_path / "no_music"
    no_music.mkdir()
    for label in ("birdsong", "speech"):
        (no_music / label).symlink_to(data / label, target_is_directory=True)
    bad = _run("train", "classifier", "--data", no_music, "--out", tmp_path / "x.safetensors", "--speech-over-music")
    assert bad.exit_code == 1 and "needs the labels speech and music" in bad.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_train_classifier_rejects_bad_data(tmp_path):
    (tmp_path / "only").mkdir()
    result = _run("train", "classifier", "--data", tmp_path / "only", "--out", tmp_path / "x.safetensors")
    assert result.exit_code == 1 and "no labelled audio" in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


@needs_shipped
def test_console_script_classify_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "adaptive_codec", "classify", str(EXAMPLES_DIR / "speech.flac"), "-f", "csv"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[1].split(",")[2] == "speech"
