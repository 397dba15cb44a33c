"""ContentClassifier: window features -> class probabilities (speech, music, ...).

A scikit-learn estimator (``fit`` / ``predict`` / ``predict_proba`` /
``classes_`` / ``get_params``) wrapping a ``Pipeline`` of a ``StandardScaler``
and a small model (multinomial logistic regression or a one-hidden-layer MLP).
Probabilities are calibrated by one temperature (``temperature_``, fitted on
out-of-fold predictions by the training recipe; 1.0 until then). Silence is
not learned: an explicit energy gate (:meth:`ContentClassifier.
window_probabilities`) labels windows below ``silence_dbfs`` as
:data:`SILENCE_LABEL`, which the built-in ambient profile serves.

Artifacts are saved WITHOUT pickle: one safetensors file holding the arrays
(scaler statistics, model weights) and a JSON header (format version, package
version, feature version and configuration, classes, parameters, training
summary). :meth:`ContentClassifier.load` checks all of it (through
:class:`~adaptive_codec.analysis.classifier_model.ClassifierModel`) and raises
:class:`~adaptive_codec.errors.ModelError` on anything it does not understand.

This module imports scikit-learn (about 0.7 s at first import on an idle
machine), so inference never reaches it: encoding and classifying score a
saved artifact with :class:`~adaptive_codec.analysis.classifier_model.
ClassifierModel` (NumPy, the same probabilities). The estimator is for
training and its tools; the stage's ``adaptive_codec.analysis.
ContentClassifier`` still loads it lazily (PEP 562).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelBinarizer, StandardScaler
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from adaptive_codec import __version__
from adaptive_codec.analysis.classifier_model import (
    ARTIFACT_FORMAT,
    ARTIFACT_FORMAT_VERSION,
    DEFAULT_ARTIFACT,
    METADATA_KEY,
    MODELS,
    SILENCE_LABEL,
    ClassifierModel,
    calibrated,
    gated_probabilities,
)
from adaptive_codec.analysis.features import FEATURE_VERSION, FeatureConfig, WindowFeatures
from adaptive_codec.resources import classifiers_dir

__all__ = ["ARTIFACT_FORMAT", "ARTIFACT_FORMAT_VERSION", "DEFAULT_ARTIFACT", "SILENCE_LABEL", "ContentClassifier"]


class ContentClassifier(ClassifierMixin, BaseEstimator):
    """Scaler + small model over window features.

    Parameters
    ----------
    model : {"logreg", "mlp"}
        Multinomial logistic regression, or an MLP with one hidden layer.
    C : float
        Inverse L2 strength of the logistic regression. Strong regularisation
        (0.01) scored best under grouped cross-validation: with ~500 features
        and few recordings per class, a looser fit learns the recordings.
    hidden_units : int
        Hidden layer width of the MLP.
    alpha : float
        L2 strength of the MLP (1.0 measured best, for the same reason).
    max_iter : int
        Optimiser iterations.
    class_weight : {"balanced", None}
        ``"balanced"`` weighs classes equally whatever their window counts
        (the logistic regression uses it directly; the MLP by resampling).
    silence_dbfs : float
        Energy gate: windows whose mean power is below this level (dB re
        full scale) are labelled :data:`SILENCE_LABEL` without asking the model.
    feature_config : FeatureConfig or None
        Analysis parameters the features were computed with (``None``: the
        defaults); stored in the artifact and used at inference.
    random_state : int
        Seed of the MLP initialisation and of the balancing resample.
    """

    def __init__(
        self,
        model: str = "logreg",
        C: float = 0.01,
        hidden_units: int = 32,
        alpha: float = 1.0,
        max_iter: int = 1000,
        class_weight: str | None = "balanced",
        silence_dbfs: float = -60.0,
        feature_config: FeatureConfig | None = None,
        random_state: int = 0,
    ):
        self.model = model
        self.C = C
        self.hidden_units = hidden_units
        self.alpha = alpha
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.silence_dbfs = silence_dbfs
        self.feature_config = feature_config
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def _make_model(self):
        if self.model == "logreg":
            return LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=self.class_weight)
        if self.model == "mlp":
            return MLPClassifier(
                hidden_layer_sizes=(self.hidden_units,),
                alpha=self.alpha,
                max_iter=self.max_iter,
                early_stopping=False,
                random_state=self.random_state,
            )
        raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")

    def fit(self, X, y, sample_weight=None):
        """Fit scaler and model.

        Parameters
        ----------
        X : array-like [shape=(n_windows, n_features)]
        y : array-like [shape=(n_windows,)]
            Class labels (strings or integers).
        sample_weight : array-like [shape=(n_windows,)], optional
            Weight of each window (e.g. to let a large extra training pool
            count less than the main data), in the scaler statistics and the
            model's loss; multiplies the ``class_weight``.

        Returns
        -------
        self
        """
        X, y = validate_data(self, X, y, dtype=np.float64)  # sets n_features_in_
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.shape != (len(y),):
                raise ValueError(f"sample_weight must have shape ({len(y)},), got {sample_weight.shape}")
        self.classes_ = unique_labels(y)
        if self.model == "mlp" and self.class_weight == "balanced":
            # MLPClassifier has no class_weight: oversample minority classes.
            rng = np.random.default_rng(self.random_state)
            counts = {c: np.sum(y == c) for c in self.classes_}
            top = max(counts.values())
            idx = np.concatenate(
                [rng.choice(np.flatnonzero(y == c), top, replace=True) if n < top else np.flatnonzero(y == c)
                 for c, n in counts.items()]
            )
            X, y = X[idx], y[idx]
            sample_weight = None if sample_weight is None else sample_weight[idx]
        self.pipeline_ = Pipeline([("scale", StandardScaler()), ("model", self._make_model())])
        weights = {} if sample_weight is None else {"scale__sample_weight": sample_weight,
                                                    "model__sample_weight": sample_weight}
        self.pipeline_.fit(X, y, **weights)
        self.n_iter_ = int(np.max(self.pipeline_.named_steps["model"].n_iter_))
        self.temperature_ = 1.0
        return self

    def calibrate(self, temperature: float) -> ContentClassifier:
        """Set the calibration temperature (probabilities ~ p ** (1 / temperature), renormalised).

        Parameters
        ----------
        temperature : float
            > 0; above 1 softens, below 1 sharpens. Fitted by
            :func:`~adaptive_codec.train.classifier_cv.fit_temperature`.

        Returns
        -------
        self
        """
        check_is_fitted(self, "pipeline_")
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        self.temperature_ = float(temperature)
        return self

    # -------------------------------------------------------------- predict
    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like [shape=(n_windows, n_features)]

        Returns
        -------
        np.ndarray [shape=(n_windows, n_classes)]
            Columns in the order of ``classes_``.
        """
        check_is_fitted(self, "pipeline_")
        X = validate_data(self, X, dtype=np.float64, reset=False)  # checks the feature count
        return calibrated(self.pipeline_.predict_proba(X), getattr(self, "temperature_", 1.0))

    def predict(self, X) -> np.ndarray:
        """Most probable class per window, shape (n_windows,)."""
        probabilities = self.predict_proba(X)  # checks fitted-ness first
        return self.classes_[np.argmax(probabilities, axis=1)]

    @property
    def labels_(self) -> list[str]:
        """Labels :meth:`window_probabilities` can emit: classes plus silence."""
        check_is_fitted(self, "pipeline_")
        return [str(c) for c in self.classes_] + [SILENCE_LABEL]

    def window_probabilities(self, features: WindowFeatures) -> np.ndarray:
        """Probabilities over :attr:`labels_` with the silence gate applied.

        Parameters
        ----------
        features : WindowFeatures
            Computed with this classifier's ``feature_config``.

        Returns
        -------
        np.ndarray [shape=(n_windows, n_classes + 1)]
            Gated windows are one-hot :data:`SILENCE_LABEL`; the others have
            probability 0 for it.
        """
        return gated_probabilities(features, self.silence_dbfs, len(self.classes_), self.predict_proba)

    @property
    def config_(self) -> FeatureConfig:
        """The feature configuration in effect."""
        return self.feature_config or FeatureConfig()

    # ----------------------------------------------------------- save/load
    def _arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        scaler = self.pipeline_.named_steps["scale"]
        model = self.pipeline_.named_steps["model"]
        arrays = {"scaler.mean": scaler.mean_, "scaler.scale": scaler.scale_}
        if self.model == "logreg":
            arrays["model.coef"] = model.coef_
            arrays["model.intercept"] = model.intercept_
            extra = {}
        else:
            for i, (w, b) in enumerate(zip(model.coefs_, model.intercepts_)):
                arrays[f"model.layer{i}.weight"] = w
                arrays[f"model.layer{i}.bias"] = b
            extra = {"n_layers": model.n_layers_, "activation": model.activation, "out_activation": model.out_activation_}
        # float64 (a few KiB more) so that a loaded classifier predicts exactly what was saved.
        arrays = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}
        return arrays, extra

    def save(self, path: str | os.PathLike, *, training: dict | None = None) -> Path:
        """Write the artifact (safetensors arrays + JSON header, no pickle).

        The file is written to a temporary name and renamed, so a failed save
        never leaves a half-written artifact.

        Parameters
        ----------
        path : str or PathLike
            Output file (``.safetensors``).
        training : dict, optional
            JSON-serialisable summary of data and results (stored verbatim).

        Returns
        -------
        Path
        """
        check_is_fitted(self, "pipeline_")
        arrays, extra = self._arrays()
        params = {k: v for k, v in self.get_params().items() if k != "feature_config"}
        meta = {
            "format": ARTIFACT_FORMAT,
            "format_version": ARTIFACT_FORMAT_VERSION,
            "package_version": __version__,
            "feature_version": FEATURE_VERSION,
            "feature_config": self.config_.to_dict(),
            "n_features": int(self.n_features_in_),
            "classes": [str(c) for c in self.classes_],
            "n_iter": self.n_iter_,
            "temperature": float(getattr(self, "temperature_", 1.0)),
            "params": params,
            "model_extra": extra,
            "training": training or {},
        }
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        save_file(arrays, str(tmp), metadata={METADATA_KEY: json.dumps(meta)})
        os.replace(tmp, path)
        return path

    @staticmethod
    def read_metadata(path: str | os.PathLike) -> dict:
        """JSON header of an artifact (raises ModelError if unreadable)."""
        return ClassifierModel.load(path).meta

    @classmethod
    def load(cls, path: str | os.PathLike) -> ContentClassifier:
        """Load an artifact written by :meth:`save` as a fitted estimator.

        Raises
        ------
        ModelError
            Missing, corrupt, from another format or feature version, or
            inconsistent arrays (checked by :class:`ClassifierModel`).
        """
        saved = ClassifierModel.load(path)
        arrays, meta, classes, n_features = saved.arrays, saved.meta, saved.classes_, saved.n_features_in_
        clf = cls(**saved.params, feature_config=saved.feature_config)
        scaler = StandardScaler()
        scaler.mean_ = arrays["scaler.mean"]
        scaler.scale_ = arrays["scaler.scale"]
        scaler.var_ = scaler.scale_**2
        scaler.n_features_in_ = n_features
        scaler.n_samples_seen_ = 0
        model = clf._make_model()
        model.classes_ = classes
        model.n_features_in_ = n_features
        if clf.model == "logreg":
            model.coef_ = arrays["model.coef"]
            model.intercept_ = arrays["model.intercept"]
            model.n_iter_ = np.zeros(1, dtype=np.int32)
        else:
            extra = meta["model_extra"]
            n_layers = int(extra["n_layers"])
            model.coefs_ = [arrays[f"model.layer{i}.weight"] for i in range(n_layers - 1)]
            model.intercepts_ = [arrays[f"model.layer{i}.bias"] for i in range(n_layers - 1)]
            model.n_layers_ = n_layers
            model.n_outputs_ = model.coefs_[-1].shape[1]
            model.out_activation_ = extra["out_activation"]
            model._label_binarizer = LabelBinarizer().fit(classes)
        clf.pipeline_ = Pipeline([("scale", scaler), ("model", model)])
        clf.classes_ = classes
        clf.n_features_in_ = n_features
        clf.n_iter_ = int(meta.get("n_iter", 0))
        clf.temperature_ = saved.temperature_
        clf.training_ = saved.training_
        return clf

    @classmethod
    def default(cls) -> ContentClassifier:
        """The shipped classifier (``classifiers/content-v4.safetensors``)."""
        return cls.load(classifiers_dir() / DEFAULT_ARTIFACT)

