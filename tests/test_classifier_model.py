"""ClassifierModel: the NumPy scoring of a saved classifier equals the scikit-learn estimator's.

Inference (encode ``auto``, ``classify``) scores the shipped artifact with
:class:`ClassifierModel`, never importing scikit-learn; these tests hold it
to the estimator's probabilities on real clips and on toy fits of every
model kind, and check that the inference paths stay free of scikit-learn.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import adaptive_codec
from adaptive_codec.analysis.classifier import ContentClassifier
from adaptive_codec.analysis.classifier_model import DEFAULT_ARTIFACT, ClassifierModel
from adaptive_codec.analysis.features import FeatureConfig, feature_names, window_features
from adaptive_codec.errors import ModelError
from tests.conftest import REPO_ROOT

N_FEATURES = len(feature_names(FeatureConfig()))
SHIPPED = REPO_ROOT / "classifiers" / DEFAULT_ARTIFACT

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _toy(n: int = 300, seed: int = 0, classes=("ambient", "music", "speech")):
    rng = np.random.default_rng(seed)
    y = np.array(classes)[rng.integers(0, len(classes), n)]
    centres = {c: rng.normal(size=N_FEATURES) * 2 for c in classes}
    return np.stack([centres[c] for c in y]) + rng.normal(size=(n, N_FEATURES)), y


@pytest.fixture(scope="module")
def shipped_pair():
    if not SHIPPED.is_file():
        pytest.skip(f"shipped classifier {SHIPPED} not built yet")
    return ClassifierModel.default(), ContentClassifier.default()


@pytest.mark.parametrize("name", ["speech", "music", "ambient", "mixed"])
def test_shipped_probabilities_equal_the_estimators_on_examples(shipped_pair, example_clip, name):
    model, estimator = shipped_pair
    audio, sr = example_clip(name)
    feats = window_features(audio, sample_rate_hz=sr, config=model.config_)
    ours, theirs = model.window_probabilities(feats), estimator.window_probabilities(feats)
    assert ours.shape == theirs.shape and ours.shape[0] > 10
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    assert model.labels_ == estimator.labels_
    np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


def test_shipped_segments_equal_the_estimators_on_a_corpus_clip(shipped_pair, corpus_dir):
    from adaptive_codec.analysis.routing import classify_file

    clip = sorted((corpus_dir / "mixed").glob("*.flac"))[0]
    model, estimator = shipped_pair
    assert classify_file(clip, model) == classify_file(clip, estimator)


@pytest.mark.parametrize("model, classes, temperature", [
    ("logreg", ("ambient", "music", "speech"), 1.0),
    ("logreg", ("ambient", "music", "speech"), 1.7),
    ("logreg", ("music", "speech"), 0.6),  # binary: one logistic output
    ("mlp", ("ambient", "music", "speech"), 1.3),
    ("mlp", ("music", "speech"), 1.0),
])
def test_saved_fits_score_like_the_estimator(tmp_path, model, classes, temperature):
    X, y = _toy(classes=classes)
    clf = ContentClassifier(model=model, max_iter=200).fit(X, y).calibrate(temperature)
    loaded = ClassifierModel.load(clf.save(tmp_path / "clf.safetensors", training={"note": "toy"}))
    np.testing.assert_allclose(loaded.predict_proba(X), clf.predict_proba(X), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.training_ == {"note": "toy"} and loaded.temperature_ == temperature


def test_wrong_feature_count_is_a_clear_error(tmp_path):
    X, y = _toy()
    loaded = ClassifierModel.load(ContentClassifier().fit(X, y).save(tmp_path / "clf.safetensors"))
    with pytest.raises(ValueError, match=f"shape \\(n, {N_FEATURES}\\)"):
        loaded.predict_proba(X[:, :10])


def test_missing_artifact_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        ClassifierModel.load(tmp_path / "nope.safetensors")


def _imported_by(code: str) -> list[str]:
    """Which of torch / sklearn a fresh interpreter running ``code`` imported."""
    here = str(Path(adaptive_codec.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
           "OMP_NUM_THREADS": "1", "ADAPTIVE_CODEC_EXECUTOR": "onnxruntime"}
    probe = code + "\nimport sys; print(' '.join(m for m in ('torch', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_classify_and_auto_encode_never_import_sklearn(tmp_path):
    mixed = REPO_ROOT / "examples" / "mixed.flac"
    code = (f"from adaptive_codec.analysis import classify_file\n"
            f"labels = {{s.label for s in classify_file({str(mixed)!r})}}\n"
            "assert 'speech' in labels, labels\n"
            "from adaptive_codec import AdaptiveCodec\n"
            "from adaptive_codec.audio import load_audio\n"
            f"x, info = load_audio({str(REPO_ROOT / 'examples' / 'speech.flac')!r})\n"
            "blob = AdaptiveCodec.default().encode(x[:, : 3 * info.sample_rate_hz], info.sample_rate_hz)\n"
            "assert len(blob) > 100")
    assert _imported_by(code) == []
