"""ContentClassifier: sklearn conventions, safe save/load, silence gate, shipped artifact."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from adaptive_codec.analysis.classifier import DEFAULT_ARTIFACT, SILENCE_LABEL, ContentClassifier
from adaptive_codec.errors import ModelError
from adaptive_codec.analysis.features import FeatureConfig, WindowFeatures, feature_names, window_features
from tests.conftest import REPO_ROOT

N_FEATURES = len(feature_names(FeatureConfig()))

# The MLP checks fit with few iterations on purpose (speed); not converging is expected.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _toy(n: int = 300, seed: int = 0, n_features: int = N_FEATURES, classes=("ambient", "music", "speech")):
    rng = np.random.default_rng(seed)
    y = np.array(classes)[rng.integers(0, len(classes), n)]
    centres = {c: rng.normal(size=n_features) * 2 for c in classes}
    X = np.stack([centres[c] for c in y]) + rng.normal(size=(n, n_features))
    return X, y


# The MLP is checked with few iterations to keep the suite fast.
@parametrize_with_checks(
    [ContentClassifier(model="logreg"), ContentClassifier(model="mlp", max_iter=200)],
    expected_failed_checks=lambda est: {
        **(
            {"check_class_weight_classifiers": "the MLP balances classes by oversampling, not by weights",
             "check_sample_weight_equivalence_on_dense_data": "the MLP's stochastic optimiser does not treat "
             "a weight of 2 exactly like a repeated row"}
            if est.model == "mlp"
            else {}
        ),
    },
)
def test_sklearn_estimator_conventions(estimator, check):
    check(estimator)


@pytest.mark.parametrize("model", ["logreg", "mlp"])
def test_save_load_round_trip_gives_identical_probabilities(tmp_path, model):
    X, y = _toy()
    clf = ContentClassifier(model=model, max_iter=300).fit(X, y)
    path = clf.save(tmp_path / "clf.safetensors", training={"note": "toy"})
    loaded = ContentClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert list(loaded.classes_) == list(clf.classes_)
    assert loaded.get_params()["model"] == model
    assert loaded.training_ == {"note": "toy"}
    again = ContentClassifier.load(loaded.save(tmp_path / "again.safetensors"))
    np.testing.assert_array_equal(again.predict_proba(X), loaded.predict_proba(X))


def test_artifact_contains_no_pickle(tmp_path):
    X, y = _toy()
    path = ContentClassifier().fit(X, y).save(tmp_path / "clf.safetensors")
    data = path.read_bytes()
    assert b"\x80\x04\x95" not in data and b"sklearn" not in data.split(b"}")[0][-200:]
    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    meta = json.loads(header["__metadata__"]["adaptive_codec"])
    assert meta["format"] == "adaptive-codec-classifier"
    assert meta["feature_config"] == FeatureConfig().to_dict()


def _rewrite_meta(src, dst, change):
    from safetensors import safe_open
    from safetensors.numpy import save_file

    with safe_open(str(src), framework="np") as f:
        meta = json.loads(f.metadata()["adaptive_codec"])
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    change(meta, arrays)
    save_file(arrays, str(dst), metadata={"adaptive_codec": json.dumps(meta)})
    return dst


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m, a: m.update(feature_version=99), "feature version"),
        (lambda m, a: m.update(format_version=3), "format version 3 is not supported"),
        (lambda m, a: m.update(format_version=1), "format version 1 is not supported"),
        (lambda m, a: m.pop("temperature"), "calibration temperature"),
        (lambda m, a: m.update(temperature=-1.0), "not a positive number"),
        (lambda m, a: m.update(format="something-else"), "not a classifier"),
        (lambda m, a: m["params"].update(model="svm"), "unknown model"),
        (lambda m, a: a.pop("scaler.mean"), "incomplete"),
        (lambda m, a: a.update({"model.coef": a["model.coef"][:, :5]}), "coefficient shape"),
        (lambda m, a: m["feature_config"].update(n_mels=20), "features"),
    ],
)
def test_load_rejects_mismatched_artifacts(tmp_path, change, message):
    X, y = _toy()
    good = ContentClassifier().fit(X, y).save(tmp_path / "good.safetensors")
    bad = _rewrite_meta(good, tmp_path / "bad.safetensors", change)
    with pytest.raises(ModelError, match=message):
        ContentClassifier.load(bad)


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\xff" * 8 + b"{}"])
def test_load_rejects_corrupt_files(tmp_path, content):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="corrupt.safetensors"):
        ContentClassifier.load(path)


def test_load_truncated_artifact(tmp_path):
    X, y = _toy()
    data = ContentClassifier().fit(X, y).save(tmp_path / "good.safetensors").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        ContentClassifier.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        ContentClassifier.load(tmp_path / "nope.safetensors")


def test_temperature_calibration_changes_confidence_not_decisions(tmp_path):
    X, y = _toy()
    clf = ContentClassifier().fit(X, y)
    before = clf.predict_proba(X)
    clf.calibrate(2.0)
    after = clf.predict_proba(X)
    np.testing.assert_allclose(after.sum(axis=1), 1.0)
    np.testing.assert_array_equal(after.argmax(axis=1), before.argmax(axis=1))
    assert after.max(axis=1).mean() < before.max(axis=1).mean()  # softer
    loaded = ContentClassifier.load(clf.save(tmp_path / "t.safetensors"))
    assert loaded.temperature_ == 2.0
    np.testing.assert_allclose(loaded.predict_proba(X), after)
    with pytest.raises(ValueError, match="positive"):
        clf.calibrate(0.0)


def test_silence_gate_overrides_the_model():
    X, y = _toy(n_features=N_FEATURES)
    clf = ContentClassifier(silence_dbfs=-60).fit(X, y)
    feats = WindowFeatures(np.arange(3.0), np.arange(3.0) + 1, X[:3].astype(np.float32), np.array([-20.0, -80.0, -59.0]))
    probs = clf.window_probabilities(feats)
    assert clf.labels_ == ["ambient", "music", "speech", SILENCE_LABEL]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_array_equal(probs[:, -1], [0, 1, 0])


# -- the shipped classifier ---------------------------------------------------

SHIPPED = REPO_ROOT / "classifiers" / DEFAULT_ARTIFACT


@pytest.fixture(scope="module")
def shipped():
    if not SHIPPED.is_file():
        pytest.skip(f"shipped classifier {SHIPPED} not built yet")
    return ContentClassifier.default()


def test_shipped_artifact_is_small_and_loads_fast(shipped):
    assert SHIPPED.stat().st_size <= 2 * 1024 * 1024
    start = time.perf_counter()
    ContentClassifier.load(SHIPPED)
    assert time.perf_counter() - start < 1.0
    assert set(shipped.classes_) == {"speech", "music", "ambient"}


@pytest.mark.parametrize("name", ["speech", "music", "ambient"])
def test_shipped_classifier_labels_bundled_examples(shipped, example_clip, name):
    audio, sr = example_clip(name)
    feats = window_features(audio, sample_rate_hz=sr, config=shipped.config_)
    labels = np.array(shipped.labels_)[shipped.window_probabilities(feats).argmax(axis=1)]
    assert np.mean(labels == name) >= 0.8


@pytest.mark.parametrize(
    "clip, label",
    [
        ("speech/Resemblyzer__32-21625-0000__00.flac", "speech"),
        ("music/hyperrogue-music__hr-domina-hunting__00.flac", "music"),
        ("ambient/moodist__beehive__00.flac", "ambient"),
    ],
)
def test_shipped_classifier_labels_corpus_clips(shipped, corpus_dir, clip, label):
    from adaptive_codec.analysis.routing import classify_file

    segments = classify_file(corpus_dir / clip, shipped)
    covered = sum(s.duration_s for s in segments if s.label == label)
    assert covered / segments[-1].end_s >= 0.8


def test_shipped_classifier_calls_silence_silence(shipped):
    feats = window_features(np.zeros(3 * 16000, np.float32), sample_rate_hz=16000)
    probs = shipped.window_probabilities(feats)
    assert (np.array(shipped.labels_)[probs.argmax(axis=1)] == SILENCE_LABEL).all()


def test_sample_weight_must_match_the_windows():
    X, y = _toy()
    with pytest.raises(ValueError, match="sample_weight"):
        ContentClassifier().fit(X, y, sample_weight=np.ones(len(y) - 1))


# -- training recipe: extra weighting, exclusions, mixtures ---------------------


class _Recorder(ContentClassifier):
    """Records what it was fitted on (a stand-in to look inside TrainingData.fit)."""

    def fit(self, X, y, sample_weight=None):
        self.fitted_rows_ = np.asarray(X)[:, 0].tolist()
        self.fitted_weights_ = None if sample_weight is None else np.asarray(sample_weight).tolist()
        self.classes_ = np.unique(y)
        return self


def _dataset(rows: list[tuple[float, str, str]]):
    from adaptive_codec.train.classifier import Dataset

    X = np.array([[r[0], 0.0] for r in rows])
    return Dataset(X, np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), np.zeros(len(rows)),
                   np.zeros(len(rows), bool))


def test_extra_weights_give_each_class_a_fixed_share():
    from adaptive_codec.train.classifier import extra_weights

    main_y = np.array(["music"] * 10 + ["speech"] * 4)
    extra_y = np.array(["music"] * 50 + ["speech"] * 2 + ["bird"] * 3)
    w = extra_weights(main_y, extra_y, 0.25)
    assert w[extra_y == "music"].sum() == pytest.approx(2.5)
    assert w[extra_y == "speech"].sum() == pytest.approx(1.0)
    assert (w[extra_y == "bird"] == 0).all()  # a class the main data lacks gets no say
    np.testing.assert_array_equal(extra_weights(main_y, extra_y, None), np.ones(len(extra_y)))
    with pytest.raises(ValueError):
        extra_weights(main_y, extra_y, -1.0)


def test_extra_weights_balanced_by_group_split_a_class_evenly_over_its_groups():
    from adaptive_codec.train.classifier import extra_weights

    main_y = np.array(["music"] * 8)
    # One big source (6 windows) and one small one (2 windows) of the same class.
    extra_y = np.array(["music"] * 8)
    groups = np.array(["big"] * 6 + ["small"] * 2)
    w = extra_weights(main_y, extra_y, 0.5, groups=groups)
    assert w.sum() == pytest.approx(4.0)  # still share x main windows in total
    assert w[:6].sum() == pytest.approx(w[6:].sum())  # but each group gets half of it
    assert w[6] == pytest.approx(3 * w[0])
    with pytest.raises(ValueError, match="groups"):
        extra_weights(main_y, extra_y, 0.5, groups=groups[:3])


def test_training_data_fit_leaves_out_held_out_and_excluded_recordings():
    from adaptive_codec.train.classifier import TrainingData

    main = _dataset([(1, "speech", "a"), (2, "music", "b"), (3, "speech", "c"), (4, "speech", "c + a")])
    mixtures = _dataset([(5, "music", "a + b"), (6, "speech", "b + c")])
    extra = _dataset([(7, "music", "x"), (8, "music", "x")])
    data = TrainingData(main, extra, {}, excluded_groups=frozenset({"c"}), mixtures=mixtures)
    model = data.fit(_Recorder(), extra_share=0.5)
    # "c" is excluded everywhere, also inside a noisy copy ("c + a") and a mixture ("b + c").
    assert model.fitted_rows_ == [1, 2, 5, 7, 8]
    assert model.fitted_weights_ == [1, 1, 1, 0.25, 0.25]  # 2 extra music windows share 0.5 x 1 main window
    held = data.fit(_Recorder(), extra_share=0.5, held_out=frozenset({"a"}))
    assert held.fitted_rows_ == [2, 7, 8]


def test_training_data_fit_balances_extra_groups_when_asked():
    from adaptive_codec.train.classifier import TrainingData

    main = _dataset([(1, "music", "a"), (2, "speech", "b")])
    extra = _dataset([(3, "music", "x"), (4, "music", "x"), (5, "music", "x"), (6, "music", "y + b")])
    by_class = TrainingData(main, extra, {}).fit(_Recorder(), extra_share=1.0)
    assert by_class.fitted_weights_ == [1, 1, 0.25, 0.25, 0.25, 0.25]
    # A noisy copy counts with its own recording's group ("y"), not the mixed-in one.
    by_group = TrainingData(main, extra, {}, extra_balance="group").fit(_Recorder(), extra_share=1.0)
    assert by_group.fitted_weights_ == pytest.approx([1, 1, 1 / 6, 1 / 6, 1 / 6, 0.5])


def test_training_recipe_round_trips_through_the_summary():
    from adaptive_codec.train.classifier import TrainingRecipe

    recipe = TrainingRecipe(max_files_per_label=7, noisy_speech=True, extra_share=0.25, train_exclude=("x",),
                            mixtures=3)
    summary = {**recipe.to_dict(), "data": {}, "cv": {}}
    assert TrainingRecipe.from_summary(summary) == recipe
    assert TrainingRecipe.from_summary({"narrowband": False}) == TrainingRecipe(narrowband=False)
    with pytest.raises(ValueError):
        TrainingRecipe(mixtures=-1)
    grouped = TrainingRecipe(extra_share=0.25, extra_balance="group")
    assert TrainingRecipe.from_summary(grouped.to_dict()) == grouped
    with pytest.raises(ValueError, match="extra_balance"):
        TrainingRecipe(extra_balance="source")
