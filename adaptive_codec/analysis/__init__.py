"""Analysis stage: audio -> window features -> class probabilities -> labelled segments.

The second stage of the pipeline and its public names. One classify path
serves arrays, files and block streams: :func:`classify_blocks`, which
:func:`classify` and :func:`classify_file` call.

* :mod:`~adaptive_codec.analysis.features` (with its DSP in
  :mod:`~adaptive_codec.analysis.feature_dsp`): level-invariant window
  features, streamed with bounded memory.
* :mod:`~adaptive_codec.analysis.classifier_model`: :class:`ClassifierModel`, a saved
  classifier scored in NumPy (what inference uses), and
  :mod:`~adaptive_codec.analysis.classifier`: :class:`ContentClassifier`, a
  scikit-learn estimator with an energy gate for silence.
* :mod:`~adaptive_codec.analysis.routing`: smoothing into segments, the
  classify functions, routing segments to profiles.

Importing the stage does not import scikit-learn (about 0.7 s idle, 2 s loaded):
the estimator module's names load on first access (PEP 562, :func:`__getattr__`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from adaptive_codec.analysis.classifier_model import ClassifierModel
from adaptive_codec.analysis.features import (
    FEATURE_VERSION,
    FeatureConfig,
    WindowFeatures,
    feature_names,
    file_window_features,
    stream_window_features,
    window_features,
)
from adaptive_codec.analysis.routing import (
    RoutingConfig,
    Segment,
    classify,
    classify_blocks,
    classify_file,
    route,
    segments_from_probabilities,
    segments_report,
    shipped_classifier,
    viterbi,
)

if TYPE_CHECKING:
    from adaptive_codec.analysis.classifier import (
        ARTIFACT_FORMAT,
        ARTIFACT_FORMAT_VERSION,
        DEFAULT_ARTIFACT,
        SILENCE_LABEL,
        ContentClassifier,
    )

__all__ = [
    # features
    "FEATURE_VERSION",
    "FeatureConfig",
    "WindowFeatures",
    "feature_names",
    "file_window_features",
    "stream_window_features",
    "window_features",
    # the classifier for inference (NumPy)
    "ClassifierModel",
    # the estimator (loaded on first access: scikit-learn)
    "ARTIFACT_FORMAT",
    "ARTIFACT_FORMAT_VERSION",
    "DEFAULT_ARTIFACT",
    "SILENCE_LABEL",
    "ContentClassifier",
    # segments and routing
    "RoutingConfig",
    "Segment",
    "classify",
    "classify_blocks",
    "classify_file",
    "route",
    "segments_from_probabilities",
    "segments_report",
    "shipped_classifier",
    "viterbi",
]

_CLASSIFIER_NAMES = frozenset(
    {"ARTIFACT_FORMAT", "ARTIFACT_FORMAT_VERSION", "DEFAULT_ARTIFACT", "SILENCE_LABEL", "ContentClassifier"}
)


def __getattr__(name: str) -> Any:
    # The stage's one lazy import of the classifier module (scikit-learn).
    if name in _CLASSIFIER_NAMES:
        return getattr(importlib.import_module("adaptive_codec.analysis.classifier"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
