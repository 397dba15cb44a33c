"""The content classifier for inference: a saved artifact's arrays scored in NumPy, without scikit-learn.

:class:`ClassifierModel` reads the artifact :meth:`adaptive_codec.analysis.
classifier.ContentClassifier.save` writes (safetensors arrays + JSON header,
format version 2) and computes the same probabilities as the estimator's
``Pipeline`` (``StandardScaler`` then multinomial logistic regression or a
one-hidden-layer MLP, then the calibration temperature), to float64
rounding. Encoding and classifying use it, so they never import
scikit-learn (about 0.7 s on an idle machine, 2 s loaded); training keeps
the estimator, whose :meth:`~adaptive_codec.analysis.classifier.
ContentClassifier.load` reads (and checks) artifacts through this module.

Silence is not learned: an explicit energy gate (:meth:`ClassifierModel.
window_probabilities`) labels windows below ``silence_dbfs`` as
:data:`SILENCE_LABEL`, which the built-in ambient profile serves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors import safe_open

from adaptive_codec.analysis.features import FEATURE_VERSION, FeatureConfig, WindowFeatures, feature_names
from adaptive_codec.errors import ModelError
from adaptive_codec.resources import classifiers_dir

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_FORMAT_VERSION",
    "DEFAULT_ARTIFACT",
    "METADATA_KEY",
    "MODELS",
    "SILENCE_LABEL",
    "ClassifierModel",
    "calibrated",
    "gated_probabilities",
    "read_artifact",
]

#: Label of windows caught by the energy gate (served by the ambient profile).
SILENCE_LABEL = "silence"
#: ``format`` field of the artifact's JSON header.
ARTIFACT_FORMAT = "adaptive-codec-classifier"
#: Bumped when the artifact layout changes; a reader accepts only its own version
#: (version 2 added the calibration temperature, which changes every probability).
ARTIFACT_FORMAT_VERSION = 2
#: File name of the shipped classifier inside ``classifiers/``.
DEFAULT_ARTIFACT = "content-v4.safetensors"
#: Safetensors metadata key holding the JSON header.
METADATA_KEY = "adaptive_codec"
#: Model kinds an artifact may hold.
MODELS = ("logreg", "mlp")

# scikit-learn's MLP hidden activations, by the name the artifact stores.
_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "logistic": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "identity": lambda x: x,
}


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _expit(x: np.ndarray) -> np.ndarray:
    # Both branches are finite for any float: exp of a non-positive number only.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def calibrated(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities raised to ``1 / temperature`` and renormalised (identity at 1.0).

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_windows, n_classes)]
    temperature : float
        > 0; above 1 softens, below 1 sharpens.
    """
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.maximum(probabilities, 1e-300)) / temperature
    return _softmax(logits)


def gated_probabilities(features: WindowFeatures, silence_dbfs: float, n_classes: int,
                        predict_proba) -> np.ndarray:
    """Probabilities over the classes plus :data:`SILENCE_LABEL`, with the energy gate applied.

    Parameters
    ----------
    features : WindowFeatures
    silence_dbfs : float
        Windows whose level is below this (dB re full scale) are one-hot silence.
    n_classes : int
    predict_proba : callable
        ``(n, n_features) -> (n, n_classes)`` for the windows above the gate.

    Returns
    -------
    np.ndarray [shape=(n_windows, n_classes + 1)], float64
        Gated windows are one-hot :data:`SILENCE_LABEL`; the others have
        probability 0 for it.
    """
    n = len(features)
    probs = np.zeros((n, n_classes + 1))
    if n == 0:
        return probs
    silent = features.level_dbfs < silence_dbfs
    probs[silent, -1] = 1.0
    if (~silent).any():
        probs[~silent, :-1] = predict_proba(features.values[~silent])
    return probs


def read_artifact(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays (float64) and checked JSON header of a classifier artifact.

    Raises
    ------
    ModelError
        Missing, corrupt, or from another format, format version, feature
        version or model kind.
    """
    where = str(path)
    if not Path(path).is_file():
        raise ModelError(f"{where}: classifier artifact not found")
    try:
        with safe_open(where, framework="np") as f:
            header = (f.metadata() or {}).get(METADATA_KEY)
            arrays = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several unrelated types on corrupt input
        raise ModelError(f"{where}: not a readable classifier artifact ({exc})") from exc
    if header is None:
        raise ModelError(f"{where}: safetensors file without adaptive-codec classifier metadata")
    try:
        meta = json.loads(header)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{where}: corrupt classifier metadata ({exc})") from exc
    if meta.get("format") != ARTIFACT_FORMAT:
        raise ModelError(f"{where}: not a classifier artifact (format {meta.get('format')!r})")
    if meta.get("format_version") != ARTIFACT_FORMAT_VERSION:
        raise ModelError(
            f"{where}: classifier format version {meta.get('format_version')!r} is not supported "
            f"(this adaptive-codec reads version {ARTIFACT_FORMAT_VERSION}); retrain it with "
            f"`adaptive-codec train classifier` or use the shipped {DEFAULT_ARTIFACT}"
        )
    if meta.get("feature_version") != FEATURE_VERSION:
        raise ModelError(
            f"{where}: trained on feature version {meta.get('feature_version')!r}, this adaptive-codec computes "
            f"version {FEATURE_VERSION}; retrain it with `adaptive-codec train classifier`"
        )
    if meta.get("params", {}).get("model") not in MODELS:
        raise ModelError(f"{where}: unknown model type {meta.get('params', {}).get('model')!r}")
    return {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}, meta


class ClassifierModel:
    """A saved content classifier, scored in NumPy.

    Build it with :meth:`load` (or :meth:`default`); every array is checked
    against the header there, so scoring cannot fail on shapes later.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)], str
        Class labels in probability-column order.
    n_features_in_ : int
    feature_config : FeatureConfig
        Analysis parameters the features must be computed with.
    model : {"logreg", "mlp"}
    params : dict
        The estimator's parameters as saved (``silence_dbfs``, ``C``, ...).
    silence_dbfs : float
        Energy gate level, dB re full scale.
    temperature_ : float
        Calibration temperature.
    arrays : dict of str to np.ndarray
        The artifact's arrays, float64 (``scaler.mean``, ``model.coef``, ...).
    meta : dict
        The artifact's JSON header.
    training_ : dict
        The training summary stored in the artifact.
    """

    def __init__(self, arrays: dict[str, np.ndarray], meta: dict, where: str = "classifier") -> None:
        try:
            self.feature_config = FeatureConfig.from_dict(meta["feature_config"])
            self.params = dict(meta["params"])
            self.model = str(self.params["model"])
            self.silence_dbfs = float(self.params.get("silence_dbfs", -60.0))
            self.classes_ = np.asarray(meta["classes"])
            self.n_features_in_ = int(meta["n_features"])
            n_names = len(feature_names(self.feature_config))
            if self.n_features_in_ != n_names:
                raise ModelError(f"{where}: stores {self.n_features_in_} features, the feature config gives {n_names}")
            self._mean, self._scale = arrays["scaler.mean"], arrays["scaler.scale"]
            if self._mean.shape != (self.n_features_in_,) or self._scale.shape != (self.n_features_in_,):
                raise ModelError(f"{where}: scaler statistics do not match {self.n_features_in_} features")
            if self.model == "logreg":
                coef = arrays["model.coef"]
                expected = (1 if len(self.classes_) == 2 else len(self.classes_), self.n_features_in_)
                if coef.shape != expected:
                    raise ModelError(f"{where}: coefficient shape {coef.shape}, expected {expected}")
                self._layers = [(coef.T, arrays["model.intercept"])]
                self._hidden, self._output = "identity", "logistic" if len(self.classes_) == 2 else "softmax"
            else:
                extra = meta["model_extra"]
                self._layers = [(arrays[f"model.layer{i}.weight"], arrays[f"model.layer{i}.bias"])
                                for i in range(int(extra["n_layers"]) - 1)]
                self._hidden, self._output = str(extra.get("activation", "relu")), str(extra["out_activation"])
                if self._layers[0][0].shape[0] != self.n_features_in_:
                    raise ModelError(f"{where}: first layer takes {self._layers[0][0].shape[0]} inputs, "
                                     f"expected {self.n_features_in_}")
                if self._hidden not in _ACTIVATIONS or self._output not in ("softmax", "logistic"):
                    raise ModelError(f"{where}: unknown MLP activations {self._hidden!r} / {self._output!r}")
        except ModelError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelError(f"{where}: incomplete or inconsistent classifier artifact ({exc!r})") from None
        try:
            self.temperature_ = float(meta["temperature"])
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{where}: classifier metadata without a valid calibration temperature") from None
        if not np.isfinite(self.temperature_) or self.temperature_ <= 0:
            raise ModelError(f"{where}: calibration temperature {self.temperature_!r} is not a positive number")
        self.arrays = arrays
        self.meta = meta
        self.training_ = meta.get("training", {})

    @classmethod
    def load(cls, path: str | os.PathLike) -> ClassifierModel:
        """Read an artifact written by :meth:`ContentClassifier.save <adaptive_codec.analysis.classifier.ContentClassifier.save>`.

        Raises
        ------
        ModelError
            Missing, corrupt, from another format or feature version, or
            inconsistent arrays.
        """
        arrays, meta = read_artifact(path)
        return cls(arrays, meta, str(path))

    @classmethod
    def default(cls) -> ClassifierModel:
        """The shipped classifier (``classifiers/content-v4.safetensors``)."""
        return cls.load(classifiers_dir() / DEFAULT_ARTIFACT)

    @property
    def config_(self) -> FeatureConfig:
        """The feature configuration the classifier was trained with."""
        return self.feature_config

    @property
    def labels_(self) -> list[str]:
        """Labels :meth:`window_probabilities` can emit: classes plus silence."""
        return [str(c) for c in self.classes_] + [SILENCE_LABEL]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities.

        Parameters
        ----------
        X : np.ndarray [shape=(n_windows, n_features)]

        Returns
        -------
        np.ndarray [shape=(n_windows, n_classes)], float64
            Columns in the order of ``classes_``.

        Raises
        ------
        ValueError
            ``X`` is not 2-D with ``n_features_in_`` columns.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected features of shape (n, {self.n_features_in_}), got {X.shape}")
        h = (X - self._mean) / self._scale
        *hidden, (w_out, b_out) = self._layers
        for w, b in hidden:
            h = _ACTIVATIONS[self._hidden](h @ w + b)
        logits = h @ w_out + b_out
        if self._output == "softmax":
            probabilities = _softmax(logits)
        else:  # one logistic output: the second class's probability
            p = _expit(logits[:, 0])
            probabilities = np.stack([1.0 - p, p], axis=1)
        return calibrated(probabilities, self.temperature_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable class per window, shape ``(n_windows,)``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def window_probabilities(self, features: WindowFeatures) -> np.ndarray:
        """Probabilities over :attr:`labels_` with the silence gate applied.

        Parameters
        ----------
        features : WindowFeatures
            Computed with :attr:`config_`.

        Returns
        -------
        np.ndarray [shape=(n_windows, n_classes + 1)], float64
            Gated windows are one-hot :data:`SILENCE_LABEL`; the others have
            probability 0 for it.
        """
        return gated_probabilities(features, self.silence_dbfs, len(self.classes_), self.predict_proba)
