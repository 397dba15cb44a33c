"""Routing: Viterbi smoothing, minimum segment length, label -> profile; the one classify path."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from adaptive_codec.analysis import (
    RoutingConfig,
    Segment,
    classify,
    classify_blocks,
    classify_file,
    route,
    segments_from_probabilities,
    viterbi,
)
from adaptive_codec.audio import iter_audio_blocks
from adaptive_codec.errors import ProfileError
from adaptive_codec.profiles import Profile, ProfileRegistry

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


def test_a_pause_inside_speech_stays_speech_up_to_max_pause():
    # Windows every 0.5 s: 6 silent windows span 3 s, 12 span 6 s.
    pause = "s" * 12 + "_" * 6 + "s" * 12
    assert [s.label for s in _segments(pause, max_pause_s=4.0)] == ["speech"]
    assert [s.label for s in _segments(pause, max_pause_s=0.0)] == ["speech", "silence", "speech"]
    long_pause = "s" * 12 + "_" * 12 + "s" * 12
    segments = _segments(long_pause, max_pause_s=4.0)
    assert [s.label for s in segments] == ["speech", "silence", "speech"]
    assert segments[1].duration_s == pytest.approx(6.0)
    # Between two different labels a silence is nobody's pause.
    assert [s.label for s in _segments("s" * 12 + "_" * 6 + "m" * 12, max_pause_s=4.0)] == ["speech", "silence", "music"]
    # Leading and trailing silence have one neighbour only.
    assert [s.label for s in _segments("_" * 6 + "s" * 12 + "_" * 6, max_pause_s=4.0)] == ["silence", "speech", "silence"]


def test_a_bridged_pause_lowers_the_segment_confidence():
    bridged = _segments("s" * 12 + "_" * 6 + "s" * 12, max_pause_s=4.0)[0]
    assert bridged.confidence == pytest.approx((24 * 0.9 + 6 * 0.1 / 3) / 30)


def test_invalid_routing_config():
    with pytest.raises(ValueError):
        RoutingConfig(switch_penalty=-1)
    with pytest.raises(ValueError):
        RoutingConfig(min_segment_s=-1)
    with pytest.raises(ValueError):
        RoutingConfig(max_pause_s=-1)


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
    from adaptive_codec.analysis.classifier import DEFAULT_ARTIFACT, ContentClassifier
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
    from adaptive_codec.analysis.classifier import DEFAULT_ARTIFACT, ContentClassifier
    from tests.conftest import REPO_ROOT

    if not (REPO_ROOT / "classifiers" / DEFAULT_ARTIFACT).is_file():
        pytest.skip("shipped classifier not built yet")
    return ContentClassifier.default()


def test_audio_shorter_than_one_window_is_one_labelled_segment(shipped, example_clip):
    audio, sr = example_clip("speech")
    segments = classify(audio[:, : int(0.4 * sr)], sr, shipped)
    assert len(segments) == 1
    assert segments[0].start_s == 0.0 and segments[0].end_s == pytest.approx(0.4, abs=1e-3)
    assert segments[0].label in shipped.labels_


@pytest.mark.parametrize("level", [0.0, 1e-5])  # digital silence and -100 dBFS hiss
def test_silence_is_labelled_silence_and_served_by_ambient(shipped, level):
    rng = np.random.default_rng(0)
    audio = (level * rng.standard_normal(5 * 16000)).astype(np.float32)
    segments = classify(audio, 16000, shipped)
    assert [s.label for s in segments] == ["silence"]
    assert route(segments, ProfileRegistry.default())[0][1].name == "ambient"


def test_silent_gap_inside_speech_becomes_its_own_segment(shipped, example_clip):
    audio, sr = example_clip("speech")
    mono = audio.mean(axis=0)
    gap = np.zeros(5 * sr, np.float32)
    segments = classify(np.concatenate([mono, gap, mono]), sr, shipped)
    assert [s.label for s in segments] == ["speech", "silence", "speech"]
    assert segments[1].start_s == pytest.approx(11.0, abs=0.75)


# -- synthetic mixtures and the scoring rule (routing is tuned on them) --------

_MIX_CLIPS = [
    ("speech", "speech/Resemblyzer__103-1240-0000__00.flac"),
    ("speech", "speech/Resemblyzer__1034-121119-0000__00.flac"),
    ("music", "music/hyperrogue-music__hr-domina-hunting__00.flac"),
    ("music", "music/hyperrogue-music__hr3-icyland__02.flac"),
    ("ambient", "ambient/moodist__birds__00.flac"),
    ("ambient", "ambient/moodist__beehive__00.flac"),
]


@pytest.fixture(scope="module")
def mix_files(corpus_dir):
    from adaptive_codec.train.classifier_data import LabelledFile

    return [LabelledFile(corpus_dir / path, label, f"group-{i}") for i, (label, path) in enumerate(_MIX_CLIPS)]


def test_mixtures_alternate_labels_and_cover_the_audio(mix_files):
    from adaptive_codec.train.classifier_mixtures import make_mixtures

    mixtures = make_mixtures(mix_files, n_mixtures=4, seed=1, n_clips=(3, 4))
    assert len(mixtures) == 4
    for index, mixture in enumerate(mixtures):
        ref = mixture.reference
        assert ref[0][0] == 0 and ref[-1][1] == pytest.approx(len(mixture.audio) / mixture.sample_rate_hz)
        assert all(a[1] == b[0] for a, b in zip(ref, ref[1:]))  # contiguous
        assert all(a[2] != b[2] for a, b in zip(ref, ref[1:]))  # a change at every boundary
        assert len(mixture.groups) == len(ref) and mixture.groups <= {f.group for f in mix_files}
        rms = np.sqrt(np.mean(mixture.audio**2))
        assert 20 * np.log10(rms) == pytest.approx(-23, abs=1.5)
    # Even mixtures are hard cuts, odd ones cross-fade (0.5 s shorter per boundary).
    import soundfile as sf

    seconds = {f.group: min(sf.info(str(f.path)).duration, 20.0) for f in mix_files}
    for index, mixture in enumerate(mixtures):
        clips = sum(seconds[g] for g in mixture.groups)
        fades = 0.5 * (len(mixture.groups) - 1) if index % 2 else 0.0
        assert len(mixture.audio) / 16000 == pytest.approx(clips - fades, abs=0.01)


def test_mixture_windows_sit_next_to_a_change_and_name_all_recordings(mix_files):
    from adaptive_codec.analysis.features import FeatureConfig, feature_names
    from adaptive_codec.train.classifier_data import GROUP_SEPARATOR, source_groups
    from adaptive_codec.train.classifier_mixtures import mixture_windows

    ds = mixture_windows(mix_files, n_mixtures=3, seed=0)
    assert ds is not None and len(ds) > 0 and ds.augmented.all()
    assert set(ds.y) <= {"speech", "music", "ambient"}
    assert all(GROUP_SEPARATOR in g and len(source_groups(g)) >= 3 for g in ds.groups)
    assert ds.X.shape[1] == len(feature_names(FeatureConfig()))
    # Only windows next to a change: a mixture of >= 3 clips of >= 8 s has
    # ~2 x 2 such windows per change and many more in all.
    assert len(ds) < 3 * 3 * 8


def test_score_segments_time_share_and_boundary_errors():
    from adaptive_codec.train.classifier_mixtures import score_segments

    reference = [(0.0, 10.0, "speech"), (10.0, 20.0, "ambient")]
    perfect = score_segments(reference, reference)
    assert perfect.time_correct == 1.0 and perfect.boundary_errors_s == [0.0] and perfect.duration_s == pytest.approx(20)
    late = score_segments([(0.0, 11.0, "speech"), (11.0, 20.0, "silence")], reference)
    assert late.time_correct == pytest.approx(0.5, abs=0.01) and late.boundary_errors_s == [pytest.approx(1.0)]
    routed = score_segments([(0.0, 11.0, "speech"), (11.0, 20.0, "silence")], reference, same={"silence": "ambient"})
    assert routed.time_correct == pytest.approx(0.95, abs=0.01)
    partial = score_segments([(0.0, 20.0, "speech")], reference, ignore=[(10.0, 20.0)])
    assert partial.time_correct == 1.0 and partial.duration_s == pytest.approx(10)
    assert partial.boundary_errors_s == [10.0]


# -- one classify path: arrays, files and block streams ---------------------------


def test_classify_blocks_is_the_path_of_arrays_and_files(shipped, example_clip):
    """classify (one block) and classify_file (the file in one block) are classify_blocks, exactly;
    other cuts of the stream change the confidences by resampler rounding only."""
    from tests.conftest import EXAMPLES_DIR

    audio, sr = example_clip("mixed")
    whole = classify(audio, sr, shipped)
    assert [s.label for s in whole][:3] == ["ambient", "speech", "music"]
    assert classify_blocks([audio], sr, shipped) == whole
    assert classify_file(EXAMPLES_DIR / "mixed.flac", shipped) == whole

    def same_segments(got):
        assert [(s.start_s, s.end_s, s.label) for s in got] == [(s.start_s, s.end_s, s.label) for s in whole]
        np.testing.assert_allclose([s.confidence for s in got], [s.confidence for s in whole], atol=1e-6)

    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, audio.shape[1]), size=9, replace=False))
    same_segments(classify_blocks(np.split(audio, cuts, axis=1), sr, shipped))
    same_segments(classify_blocks(iter_audio_blocks(EXAMPLES_DIR / "mixed.flac", 4096), sr, shipped))
    seen = []
    same_segments(classify_file(EXAMPLES_DIR / "mixed.flac", shipped, block_s=3.3, progress=seen.append))
    assert sum(seen) == pytest.approx(audio.shape[1] / sr)


def test_classify_blocks_duration_and_empty_stream(shipped, example_clip):
    audio, sr = example_clip("speech")
    segments = classify_blocks([audio[:, : 3 * sr]], sr, shipped)
    assert segments[0].start_s == 0.0 and segments[-1].end_s == pytest.approx(3.0)
    longer = classify_blocks([audio[:, : 3 * sr]], sr, shipped, duration_s=3.5)
    assert longer[-1].end_s == 3.5
    assert classify_blocks([], sr, shipped) == []
