"""Cross-validation of the content classifier by recording group, and the fit it repeats.

:class:`TrainingData` holds everything a classifier is trained on and knows
which windows a fold may use (none that involves a held-out recording);
:func:`grouped_cv` scores it fold by fold; :func:`extra_weights` keeps extra
training sources at a fixed strength. The recipe that assembles the data and
the ``train classifier`` command are in :mod:`adaptive_codec.train.classifier`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GroupKFold

from adaptive_codec.analysis.classifier import ContentClassifier
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.train.classifier_data import Dataset, source_groups
from adaptive_codec.train.classifier_report import CVReport

__all__ = ["EXTRA_BALANCES", "TrainingData", "calibration_error", "extra_weights", "fit_temperature", "grouped_cv",
           "log_loss"]


#: How ``extra_share`` is spread over a class's extra windows (see :func:`extra_weights`).
EXTRA_BALANCES = ("class", "group")


def extra_weights(
    main_y: np.ndarray, extra_y: np.ndarray, share: float | None, *, groups: np.ndarray | None = None
) -> np.ndarray:
    """Sample weights of extra windows: per class, ``share`` times the main data's weight.

    A big pool (hours of game music, thousands of spoken words) would
    otherwise outvote the main data and its class balance; weighted like this
    it adds variety at a fixed strength whatever its size.

    Parameters
    ----------
    main_y : np.ndarray [shape=(n_main,)]
        Labels of the main training windows (weight 1 each).
    extra_y : np.ndarray [shape=(n_extra,)]
        Labels of the extra windows.
    share : float or None
        Total weight of a class's extra windows relative to the count of its
        main windows; ``None`` gives every extra window weight 1.
    groups : np.ndarray [shape=(n_extra,)], optional
        Recording group of each extra window. Given, a class's weight is split
        evenly over its groups first (then over each group's windows), so four
        hours of one game's soundtrack count no more than eight songs of
        another genre; without, every window of a class weighs the same.

    Returns
    -------
    np.ndarray [shape=(n_extra,)]
        Zero for a class the main data does not have.
    """
    if share is None:
        return np.ones(len(extra_y))
    if share < 0:
        raise ValueError(f"extra_share must be >= 0, got {share}")
    if groups is not None and len(groups) != len(extra_y):
        raise ValueError(f"groups has {len(groups)} entries for {len(extra_y)} windows")
    weights = np.zeros(len(extra_y))
    for label in np.unique(extra_y):
        mask = extra_y == label
        total = share * np.sum(main_y == label)
        if groups is None:
            weights[mask] = total / mask.sum()
            continue
        of_class = np.unique(groups[mask])
        for group in of_class:
            in_group = mask & (groups == group)
            weights[in_group] = total / len(of_class) / in_group.sum()
    return weights


@dataclass
class TrainingData:
    """Everything a classifier is trained on, and what may be scored.

    Attributes
    ----------
    main : Dataset
        Cross-validated data (plus its narrow-band and noisy copies, flagged
        ``augmented``); folds split its groups.
    extra : Dataset or None
        Train-only data (other sources), never scored.
    summary : dict
        JSON-serialisable description (stored in the artifact).
    excluded_groups : frozenset of str
        Groups of ``main`` never trained on (matched by ``train_exclude``);
        they stay in ``main`` to be scored.
    mixtures : Dataset or None
        Windows of synthetic mixtures of ``main`` files (see
        :func:`~adaptive_codec.train.classifier_mixtures.mixture_windows`);
        each involves several groups and is only trained on when none of
        them is held out.
    extra_balance : {"class", "group"}
        How ``extra_share`` is spread over ``extra`` (see :func:`extra_weights`).
    """

    main: Dataset
    extra: Dataset | None
    summary: dict
    excluded_groups: frozenset[str] = frozenset()
    mixtures: Dataset | None = None
    extra_balance: str = "class"

    def fit(
        self, estimator: ContentClassifier, *, extra_share: float | None = None, held_out: frozenset[str] = frozenset()
    ) -> ContentClassifier:
        """Fit a clone of ``estimator`` on every window that involves no held-out recording.

        Parameters
        ----------
        estimator : ContentClassifier
            Unfitted template.
        extra_share : float, optional
            Weight of ``extra`` per class (see :func:`extra_weights`).
        held_out : frozenset of str
            Recording groups to leave out (a CV fold's test groups, or the
            recordings a test file is made of); ``excluded_groups`` are always
            left out.

        Returns
        -------
        ContentClassifier
        """
        banned = held_out | self.excluded_groups

        def allowed(ds: Dataset) -> Dataset:
            ok = {g: banned.isdisjoint(source_groups(g)) for g in set(ds.groups)}
            return ds.subset(np.array([ok[g] for g in ds.groups], dtype=bool))

        main = allowed(self.main)
        parts, weights = [main], [np.ones(len(main))]
        if self.mixtures is not None and len(self.mixtures):
            mixtures = allowed(self.mixtures)
            parts.append(mixtures)
            weights.append(np.ones(len(mixtures)))
        if self.extra is not None and len(self.extra):
            parts.append(self.extra)
            groups = None
            if self.extra_balance == "group":
                groups = np.array([source_groups(g)[0] for g in self.extra.groups])
            weights.append(extra_weights(main.y, self.extra.y, extra_share, groups=groups))
        train = Dataset.concatenate(parts)
        weights = np.concatenate(weights)
        if np.all(weights == 1):
            return clone(estimator).fit(train.X, train.y)
        return clone(estimator).fit(train.X, train.y, sample_weight=weights)


def grouped_cv(
    estimator: ContentClassifier,
    data: TrainingData,
    *,
    extra_share: float | None = None,
    n_splits: int = 5,
    seed: int = 0,
    on_fold: Callable[[ContentClassifier, frozenset[str]], None] | None = None,
) -> tuple[CVReport, np.ndarray]:
    """Grouped k-fold CV: no recording group is in both train and test.

    Each fold trains on everything that does not involve its held-out
    recordings (see :meth:`TrainingData.fit`) and predicts their windows.

    Parameters
    ----------
    estimator : ContentClassifier
        Unfitted template (cloned per fold).
    data : TrainingData
        ``data.main`` is evaluated; folds split its groups.
    extra_share : float, optional
        Weight of ``data.extra`` per class (see :func:`extra_weights`).
    n_splits : int
        Folds (reduced to the number of groups when there are fewer).
    seed : int
    on_fold : callable, optional
        Called with each fold's model and held-out groups (to evaluate more
        held-out material with the same models).

    Returns
    -------
    report : CVReport
        Over the windows of ``data.main`` that are not ``augmented``
        (excluded groups included, as labelled).
    predicted : np.ndarray [shape=(len(data.main),)]
        Out-of-fold prediction of every window.
    """
    main = data.main
    # A noisy copy goes with its own recording (its first group).
    own = np.array([source_groups(g)[0] for g in main.groups])
    n_groups = len(set(own))
    n_splits = min(n_splits, n_groups)
    if n_splits < 2:
        raise AdaptiveCodecError(f"grouped cross-validation needs at least 2 recordings, got {n_groups}")
    predicted = np.empty(len(main), dtype=object)
    for _, test in GroupKFold(n_splits, shuffle=True, random_state=seed).split(main.X, main.y, own):
        held_out = frozenset(own[test])
        model = data.fit(estimator, extra_share=extra_share, held_out=held_out)
        if on_fold is not None:
            on_fold(model, held_out)
        predicted[test] = model.predict(main.X[test])
    predicted = predicted.astype(str)
    scored = ~main.augmented  # narrow-band and noisy copies are trained on, never scored
    report = CVReport.from_predictions(main.y[scored], predicted[scored], n_splits=n_splits, n_groups=n_groups)
    return report, predicted


def _scaled(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.maximum(probabilities, 1e-300)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def fit_temperature(y: np.ndarray, probabilities: np.ndarray, classes: np.ndarray) -> float:
    """Temperature that minimises the log loss of held-out probabilities (grid 0.25-4).

    Parameters
    ----------
    y : np.ndarray [shape=(n_windows,)]
        True labels, all in ``classes``.
    probabilities : np.ndarray [shape=(n_windows, n_classes)]
        Out-of-fold probabilities (columns in the order of ``classes``), at temperature 1.
    classes : np.ndarray [shape=(n_classes,)]

    Returns
    -------
    float
    """
    grid = np.exp(np.linspace(np.log(0.25), np.log(4.0), 81))  # includes 1.0 (the middle point)
    losses = [log_loss(y, probabilities, classes, temperature=t) for t in grid]
    return float(grid[int(np.argmin(losses))])


def log_loss(y: np.ndarray, probabilities: np.ndarray, classes: np.ndarray, *, temperature: float = 1.0) -> float:
    """Mean negative log-probability of the true class (nats) at ``temperature``."""
    index = {c: i for i, c in enumerate(classes)}
    cols = np.array([index[c] for c in y])
    p = _scaled(probabilities, temperature)[np.arange(len(y)), cols]
    return float(-np.mean(np.log(np.maximum(p, 1e-300))))


def calibration_error(y: np.ndarray, probabilities: np.ndarray, classes: np.ndarray, *, temperature: float = 1.0,
                      n_bins: int = 10) -> float:
    """Expected calibration error of the top class (equal-width confidence bins), in [0, 1]."""
    p = _scaled(probabilities, temperature)
    confidence = p.max(axis=1)
    correct = classes[p.argmax(axis=1)] == y
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return float(sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * np.mean(bins == b)
                     for b in range(n_bins) if np.any(bins == b)))
