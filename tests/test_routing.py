"""Routing: Viterbi smoothing, minimum segment length, label -> profile."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from adaptive_codec.errors import ProfileError
from adaptive_codec.profiles import Profile, ProfileRegistry
from adaptive_codec.routing import RoutingConfig, Segment, route, segments_from_probabilities, viterbi

LABELS = ["ambient", "music", "speech", "silence"]


def _probs(sequence: str, confidence: float = 0.9) -> np.ndarray:
    """One window per character: a=ambient, m=music, s=speech, _=silence."""
    index = {"a": 0, "m": 1, "s": 2, "_": 3}
    probs = np.full((len(sequence), 4), (1 - confidence) / 3)
    for i, ch in enumerate(sequence):
        probs[i, index[ch]] = confidence
    return probs


def _segments(sequence: str, **config) -> list[Segment]:
    n = len(sequence)
    start = np.arange(n) * 0.5
    return segments_from_probabilities(_probs(sequence), LABELS, start, start + 1.0, config=RoutingConfig(**config))


def test_viterbi_without_penalty_is_argmax():
    probs = _probs("ssmsmmaa")
    np.testing.assert_array_equal(viterbi(probs, switch_penalty=0.0), probs.argmax(axis=1))


def test_viterbi_penalty_removes_single_window_flicker():
    path = viterbi(_probs("sssssmsssss"), switch_penalty=4.0)
    assert (path == 2).all()


def test_viterbi_keeps_sustained_changes():
    path = viterbi(_probs("ssssssmmmmmm"), switch_penalty=4.0)
    np.testing.assert_array_equal(path, [2] * 6 + [1] * 6)


def test_segments_cover_the_audio_contiguously():
    segments = _segments("ssssssssmmmmmmmmaaaaaaaa", min_segment_s=1.0)
    assert [s.label for s in segments] == ["speech", "music", "ambient"]
    assert segments[0].start_s == 0.0
    assert segments[-1].end_s == pytest.approx(23 * 0.5 + 1.0)
    for a, b in zip(segments, segments[1:]):
        assert a.end_s == b.start_s
    # The boundary lies half-way between the centres of the last speech and first music window.
    assert segments[0].end_s == pytest.approx(4.25)
    assert all(0.8 < s.confidence <= 1.0 for s in segments)


def test_short_segments_are_merged_and_min_length_respected():
    # Three windows of music (~1.5 s) survive the penalty but not a 3 s minimum.
    sequence = "s" * 12 + "mmm" + "s" * 12
    assert [s.label for s in _segments(sequence, switch_penalty=0.0, min_segment_s=1.0)] == ["speech", "music", "speech"]
    merged = _segments(sequence, switch_penalty=0.0, min_segment_s=3.0)
    assert [s.label for s in merged] == ["speech"]
    for min_s in (0.5, 2.0, 4.0):
        segments = _segments("ssssmmmmmmmmaasssssmmmm_ssss" * 2, min_segment_s=min_s)
        assert all(s.duration_s >= min_s for s in segments)


def test_short_run_joins_the_neighbour_its_windows_prefer():
    probs = _probs("s" * 10 + "m" * 3 + "a" * 10)
    probs[10:13] = [0.3, 0.4, 0.2, 0.1]  # music, but ambient is preferred over speech
    start = np.arange(len(probs)) * 0.5
    config = RoutingConfig(switch_penalty=0.0, min_segment_s=2.0)
    segments = segments_from_probabilities(probs, LABELS, start, start + 1, config=config)
    assert [s.label for s in segments] == ["speech", "ambient"]
    assert segments[0].end_s == pytest.approx(5.25)


def test_audio_shorter_than_minimum_is_one_segment():
    segments = _segments("smsa", min_segment_s=10.0)
    assert len(segments) == 1
    assert segments[0].start_s == 0.0 and segments[0].end_s == pytest.approx(2.5)


def test_single_window_and_no_windows():
    probs = _probs("m")
    segments = segments_from_probabilities(probs, LABELS, np.zeros(1), np.array([0.4]), duration_s=0.4)
    assert segments == [Segment(0.0, 0.4, "music", pytest.approx(0.9))]
    assert segments_from_probabilities(np.zeros((0, 4)), LABELS, np.zeros(0), np.zeros(0)) == []


def test_invalid_routing_config():
    with pytest.raises(ValueError):
        RoutingConfig(switch_penalty=-1)
    with pytest.raises(ValueError):
        RoutingConfig(min_segment_s=-1)


def test_route_maps_labels_to_profiles_including_silence():
    registry = ProfileRegistry.default()
    segments = [Segment(0, 1, "speech", 1.0), Segment(1, 2, "silence", 1.0), Segment(2, 3, "music", 0.9)]
    assert [p.name for _, p in route(segments, registry)] == ["speech", "ambient", "music"]


def test_route_unknown_label_names_available_profiles():
    registry = ProfileRegistry.default()
    with pytest.raises(ProfileError, match=r"'podcast'.*available profiles: .*speech"):
        route([Segment(0, 1, "podcast", 1.0)], registry)


def test_custom_profile_serves_a_new_label():
    registry = ProfileRegistry.default()
    registry.add(Profile(name="podcast", description="talk", labels=("podcast",), bitrate_kbps=6.0))
    assert route([Segment(0, 1, "podcast", 1.0)], registry)[0][1].name == "podcast"


def test_classify_mixed_example_matches_reference(example_clip):
    from adaptive_codec.classifier import DEFAULT_ARTIFACT, ContentClassifier
    from adaptive_codec.routing import classify
    from tests.conftest import EXAMPLES_DIR, REPO_ROOT

    if not (REPO_ROOT / "classifiers" / DEFAULT_ARTIFACT).is_file():
        pytest.skip("shipped classifier not built yet")
    audio, sr = example_clip("mixed")
    segments = classify(audio, sr, ContentClassifier.default())
    with open(EXAMPLES_DIR / "mixed.segments.csv", newline="") as f:
        reference = [(float(r["start_s"]), float(r["end_s"]), r["label"]) for r in csv.DictReader(f)]
    grid = np.arange(0, reference[-1][1], 0.1)

    def label_at(t, segs):
        return next(lab for start, end, lab in segs if start <= t < end + 1e-9)

    predicted = [(s.start_s, s.end_s, s.label) for s in segments]
    correct = np.mean([label_at(t, predicted) == label_at(t, reference) for t in grid])
    assert correct >= 0.85


@pytest.fixture(scope="module")
def shipped():
    from adaptive_codec.classifier import DEFAULT_ARTIFACT, ContentClassifier
    from tests.conftest import REPO_ROOT

    if not (REPO_ROOT / "classifiers" / DEFAULT_ARTIFACT).is_file():
        pytest.skip("shipped classifier not built yet")
    return ContentClassifier.default()


def test_audio_shorter_than_one_window_is_one_labelled_segment(shipped, example_clip):
    from adaptive_codec.routing import classify

    audio, sr = example_clip("speech")
    segments = classify(audio[:, : int(0.4 * sr)], sr, shipped)
    assert len(segments) == 1
    assert segments[0].start_s == 0.0 and segments[0].end_s == pytest.approx(0.4, abs=1e-3)
    assert segments[0].label in shipped.labels_


@pytest.mark.parametrize("level", [0.0, 1e-5])  # digital silence and -100 dBFS hiss
def test_silence_is_labelled_silence_and_served_by_ambient(shipped, level):
    from adaptive_codec.routing import classify

    rng = np.random.default_rng(0)
    audio = (level * rng.standard_normal(5 * 16000)).astype(np.float32)
    segments = classify(audio, 16000, shipped)
    assert [s.label for s in segments] == ["silence"]
    assert route(segments, ProfileRegistry.default())[0][1].name == "ambient"


def test_silent_gap_inside_speech_becomes_its_own_segment(shipped, example_clip):
    from adaptive_codec.routing import classify

    audio, sr = example_clip("speech")
    mono = audio.mean(axis=0)
    gap = np.zeros(5 * sr, np.float32)
    segments = classify(np.concatenate([mono, gap, mono]), sr, shipped)
    assert [s.label for s in segments] == ["speech", "silence", "speech"]
    assert segments[1].start_s == pytest.approx(11.0, abs=0.75)
