"""Training recipe of the content classifier (used by the CLI and for the shipped artifact).

Data discovery and feature tables live in :mod:`adaptive_codec.train.classifier_data`
(re-exported here). Cross-validation never puts one recording (speaker,
track, field recording) in both train and test. Extra training sources
(``extra``) are only ever trained on; CV scores are computed on the held-out
groups of the main data only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import clone

from adaptive_codec.classifier import ContentClassifier
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.features import FeatureConfig, feature_names, window_features
from adaptive_codec.train.classifier_data import (
    AUDIO_SUFFIXES,
    Dataset,
    LabelledFile,
    build_dataset,
    group_of,
    load_labelled_files,
    noisy_copies,
)

__all__ = [
    "AUDIO_SUFFIXES",
    "CVReport",
    "Dataset",
    "LabelledFile",
    "build_dataset",
    "grouped_cv",
    "group_of",
    "load_labelled_files",
    "TrainingData",
    "measure_speed",
    "prepare_training_data",
    "run_training",
    "train_classifier",
    "write_card",
]


@dataclass
class CVReport:
    """Grouped cross-validation result on window level.

    Attributes
    ----------
    labels : list of str
        Row/column order of ``confusion``.
    confusion : np.ndarray [shape=(n_labels, n_labels)]
        Rows: true label, columns: predicted label (window counts).
    n_splits : int
    n_groups : int
        Recording groups that were held out in turn.
    """

    labels: list[str]
    confusion: np.ndarray
    n_splits: int
    n_groups: int

    @property
    def accuracy(self) -> float:
        return float(np.trace(self.confusion) / max(1, self.confusion.sum()))

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per label."""
        out = {}
        for i, label in enumerate(self.labels):
            tp = self.confusion[i, i]
            precision = tp / max(1, self.confusion[:, i].sum())
            recall = tp / max(1, self.confusion[i].sum())
            f1 = 2 * precision * recall / max(1e-12, precision + recall)
            out[label] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                          "support": int(self.confusion[i].sum())}
        return out

    @property
    def macro_f1(self) -> float:
        return float(np.mean([m["f1"] for m in self.per_class().values()]))

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "labels": self.labels,
                "confusion": self.confusion.tolist(), "per_class": self.per_class(),
                "n_splits": self.n_splits, "n_groups": self.n_groups}

    def format(self) -> str:
        """Plain-text summary: accuracy, macro-F1, confusion, per-class P/R/F1."""
        width = max(8, *(len(lab) for lab in self.labels)) + 2
        lines = [f"window accuracy {self.accuracy:.4f}, macro-F1 {self.macro_f1:.4f} "
                 f"({self.n_splits}-fold grouped CV over {self.n_groups} recordings)",
                 "confusion (rows true, columns predicted):",
                 "".ljust(width) + "".join(lab.rjust(width) for lab in self.labels)]
        for label, row in zip(self.labels, self.confusion):
            lines.append(label.ljust(width) + "".join(str(int(v)).rjust(width) for v in row))
        lines.append("label".ljust(width) + "precision".rjust(11) + "recall".rjust(9) + "f1".rjust(8) + "windows".rjust(9))
        for label, m in self.per_class().items():
            lines.append(label.ljust(width) + f"{m['precision']:11.3f}{m['recall']:9.3f}{m['f1']:8.3f}{m['support']:9d}")
        return "\n".join(lines)


def grouped_cv(
    estimator: ContentClassifier, data: Dataset, *, extra: Dataset | None = None, n_splits: int = 5, seed: int = 0
) -> tuple[CVReport, np.ndarray]:
    """Grouped k-fold CV: no recording group is in both train and test.

    Parameters
    ----------
    estimator : ContentClassifier
        Unfitted template (cloned per fold).
    data : Dataset
        Evaluated data; folds split its groups.
    extra : Dataset, optional
        Added to every fold's training set, never evaluated.
    n_splits : int
        Folds (reduced to the number of groups when there are fewer).
    seed : int

    Returns
    -------
    report : CVReport
    predicted : np.ndarray [shape=(len(data),)]
        Out-of-fold prediction of every window (``report`` counts only the
        windows that are not ``augmented``).
    """
    from sklearn.model_selection import GroupKFold

    n_groups = len(set(data.groups))
    n_splits = min(n_splits, n_groups)
    if n_splits < 2:
        raise AdaptiveCodecError(f"grouped cross-validation needs at least 2 recordings, got {n_groups}")
    predicted = np.empty(len(data), dtype=object)
    for train, test in GroupKFold(n_splits, shuffle=True, random_state=seed).split(data.X, data.y, data.groups):
        X, y = data.X[train], data.y[train]
        if extra is not None and len(extra):
            X, y = np.concatenate([X, extra.X]), np.concatenate([y, extra.y])
        predicted[test] = clone(estimator).fit(X, y).predict(data.X[test])
    predicted = predicted.astype(str)
    scored = ~data.augmented  # narrow-band copies are trained on, never scored
    labels = sorted(set(data.y) | set(predicted[scored]))
    index = {label: i for i, label in enumerate(labels)}
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, ([index[v] for v in data.y[scored]], [index[v] for v in predicted[scored]]), 1)
    return CVReport(labels, confusion, n_splits, n_groups), predicted


def measure_speed(classifier: ContentClassifier, *, seconds: float = 60.0, sample_rate_hz: int = 44100,
                  repeats: int = 3) -> float:
    """Features + inference speed as a multiple of real time (best of ``repeats``).

    Uses a seeded noise-plus-tones signal at a common file rate, so resampling
    is included. Set the thread count (e.g. ``OMP_NUM_THREADS=1``) before the
    process starts to measure one core.
    """
    import time

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    audio = (0.1 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        feats = window_features(audio, sample_rate_hz=sample_rate_hz, config=classifier.config_)
        classifier.window_probabilities(feats)
        best = min(best, time.perf_counter() - start)
    return seconds / best


@dataclass
class TrainingData:
    """Main (cross-validated) and extra (train-only) windows plus a description."""

    main: Dataset
    extra: Dataset | None
    summary: dict


def prepare_training_data(
    data: str | Path,
    *,
    extra: tuple[str | Path, ...] = (),
    config: FeatureConfig = FeatureConfig(),
    silence_dbfs: float = -60.0,
    max_seconds_per_file: float | None = 30.0,
    max_files_per_label: int | None = None,
    narrowband: bool = True,
    noisy_speech: bool = False,
    cache_dir: str | Path | None = None,
    progress=None,
) -> TrainingData:
    """Features of the main and extra data, audible windows only.

    Windows below the silence gate are dropped: at run time the gate labels
    them, not the model. Parameters as in :func:`train_classifier`.
    """

    def dataset(source, cap):
        files = load_labelled_files(source, max_files_per_label=cap)
        ds = build_dataset(files, config=config, max_seconds_per_file=max_seconds_per_file,
                           narrowband=narrowband, cache_dir=cache_dir, progress=progress)
        return files, ds.subset(ds.level_dbfs >= silence_dbfs)

    def describe(source, files, ds):
        original = ds.y[~ds.augmented]
        return {"source": str(source), "files": len(files), "windows": {k: int(v) for k, v in
                zip(*np.unique(original, return_counts=True))}, "augmented_windows": int(ds.augmented.sum()),
                "groups": len(set(ds.groups))}

    files, main = dataset(data, None)
    if noisy_speech:
        noisy = noisy_copies(files, config=config, max_seconds=max_seconds_per_file or 30.0, progress=progress)
        if noisy is not None:
            main = Dataset.concatenate([main, noisy.subset(noisy.level_dbfs >= silence_dbfs)])
    if len(set(main.y)) < 2:
        raise AdaptiveCodecError(f"{data}: need at least two labels with audible audio, got {sorted(set(main.y))}")
    extras = [dataset(source, max_files_per_label) for source in extra]
    extra_ds = Dataset.concatenate([ds for _, ds in extras]) if extras else None
    summary = {
        "data": describe(data, files, main),
        "extra": [describe(source, f, ds) for source, (f, ds) in zip(extra, extras)],
        "max_seconds_per_file": max_seconds_per_file,
        "max_files_per_label": max_files_per_label,
        "narrowband": narrowband,
        "noisy_speech": noisy_speech,
    }
    return TrainingData(main, extra_ds, summary)


def train_classifier(
    data: str | Path,
    *,
    extra: tuple[str | Path, ...] = (),
    estimator: ContentClassifier | None = None,
    max_seconds_per_file: float | None = 30.0,
    max_files_per_label: int | None = None,
    narrowband: bool = True,
    noisy_speech: bool = False,
    n_splits: int = 5,
    cache_dir: str | Path | None = None,
    progress=None,
) -> tuple[ContentClassifier, CVReport, dict]:
    """Fit a classifier on labelled audio and cross-validate it by recording.

    Windows below the classifier's silence gate are dropped from training and
    scoring (see :func:`prepare_training_data`).

    Parameters
    ----------
    data : str or Path
        Main data (folder or manifest; see :func:`load_labelled_files`);
        trained on and scored by grouped CV.
    extra : tuple of path
        More training data, never scored.
    estimator : ContentClassifier, optional
        Unfitted template (default: ``ContentClassifier()``).
    max_seconds_per_file : float, optional
        Cap per file (evenly spread excerpts).
    max_files_per_label : int, optional
        Cap per label and source (for huge pools).
    narrowband : bool
        Also train on 8 kHz copies of every file (see :func:`build_dataset`).
    noisy_speech : bool
        Also train on speech files mixed with ambient files at 5-20 dB SNR
        (see :func:`noisy_copies`; needs labels ``speech`` and ``ambient``).
    n_splits : int
        CV folds.
    cache_dir : path, optional
        Feature cache (see :func:`build_dataset`).
    progress : callable, optional
        Called once per file.

    Returns
    -------
    classifier : ContentClassifier
        Fitted on all data (main + extra).
    report : CVReport
    summary : dict
        JSON-serialisable description of the data (stored in the artifact).
    """
    estimator = estimator or ContentClassifier()
    data_set = prepare_training_data(
        data, extra=extra, config=estimator.config_, silence_dbfs=estimator.silence_dbfs,
        max_seconds_per_file=max_seconds_per_file, max_files_per_label=max_files_per_label,
        narrowband=narrowband, noisy_speech=noisy_speech, cache_dir=cache_dir, progress=progress,
    )
    report, _ = grouped_cv(estimator, data_set.main, extra=data_set.extra, n_splits=n_splits)
    everything = Dataset.concatenate([data_set.main] + ([data_set.extra] if data_set.extra is not None else []))
    classifier = clone(estimator).fit(everything.X, everything.y)
    summary = dict(data_set.summary, cv=report.to_dict())
    return classifier, report, summary


def write_card(path: str | Path, classifier: ContentClassifier, artifact: str | Path, summary: dict,
               *, speed_x_realtime: float | None = None, extra_sections: str = "") -> Path:
    """Write a Markdown model card next to an artifact.

    Parameters
    ----------
    path : path
        Card file (``README.md`` or ``<artifact>.md``).
    classifier : ContentClassifier
        The fitted classifier.
    artifact : path
        The saved artifact (its size is reported).
    summary : dict
        As returned by :func:`train_classifier`.
    speed_x_realtime : float, optional
        Measured features + inference speed.
    extra_sections : str
        Markdown appended at the end (e.g. benchmark results).
    """
    artifact = Path(artifact)
    cv = summary["cv"]
    report = CVReport(cv["labels"], np.asarray(cv["confusion"]), cv["n_splits"], cv["n_groups"])
    config = classifier.config_
    params = {k: v for k, v in classifier.get_params().items() if k != "feature_config"}

    def data_line(d):
        windows = ", ".join(f"{k} {v}" for k, v in d["windows"].items())
        return f"- `{d['source']}`: {d['files']} files, {d['groups']} recording groups; windows: {windows}"

    lines = [
        f"# Content classifier `{artifact.name}`",
        "",
        f"Labels: {', '.join(str(c) for c in classifier.classes_)} (+ `silence` from the energy gate "
        f"below {classifier.silence_dbfs:g} dBFS window power).",
        "",
        "## Training data",
        "",
        data_line(summary["data"]) + " (trained on and cross-validated)",
        *[data_line(d) + " (training only, never scored)" for d in summary["extra"]],
        "",
        f"Long files contribute evenly spread 10 s excerpts up to {summary['max_seconds_per_file']} s per file; "
        "windows below the silence gate are not used."
        + (" Every file is also used as an 8 kHz (telephone-band) copy, for training only, so that bandwidth "
           "is not a class cue." if summary.get("narrowband") else "")
        + (" Every speech file is also mixed with a random ambient file at 5-20 dB SNR (training only), so "
           "that speech in background sound stays speech." if summary.get("noisy_speech") else ""),
        "",
        "## Features",
        "",
        f"{len(feature_names(config))} level-invariant values per {config.window_s:g} s window "
        f"(hop {config.hop_s:g} s), from one STFT ({config.n_fft} points, hop {config.frame_hop}) at "
        f"{config.sample_rate_hz} Hz: mean and std of {config.n_mels}-band mel shape, MFCC 1-{config.n_mfcc}, "
        "chroma, spectral contrast, flatness, rolloff, centroid, bandwidth, zero-crossing rate, harmonicity, "
        "chroma peak; std of MFCC deltas; spectral flux mean/std, energy std, low-energy-frame ratio, "
        "4 Hz modulation energy, onset periodicity, spectral stationarity, chroma flux; all spectra limited to "
        f"{config.fmax_hz:g} Hz; plus mean and std of all of these over +-{config.context_windows} neighbouring "
        "windows (temporal context) (`adaptive_codec/features.py`).",
        "",
        "## Model",
        "",
        f"StandardScaler + `{classifier.model}` ({', '.join(f'{k}={v}' for k, v in params.items())}).",
        "Stored as safetensors arrays + JSON metadata (no pickle).",
        "",
        "## Grouped cross-validation (window level)",
        "",
        "```",
        report.format(),
        "```",
        "",
        "## Size and speed",
        "",
        f"- artifact: {artifact.stat().st_size / 1024:.1f} KiB",
    ]
    if speed_x_realtime is not None:
        lines.append(f"- features + inference: {speed_x_realtime:.0f}x real time (one thread, 44.1 kHz input)")
    text = "\n".join(lines) + "\n" + (("\n" + extra_sections.strip() + "\n") if extra_sections else "")
    path = Path(path)
    path.write_text(text, encoding="utf-8")
    return path


def run_training(
    *,
    data: Path,
    out: Path,
    extra: tuple[Path, ...] = (),
    card: Path | None = None,
    model: str = "logreg",
    max_files_per_label: int | None = None,
    folds: int = 5,
    narrowband: bool = True,
    noisy_speech: bool = False,
    cache_dir: Path | None = None,
    force: bool = False,
    echo=print,
) -> tuple[Path, Path]:
    """``adaptive-codec train classifier``: train, cross-validate, write artifact + card.

    Returns
    -------
    (artifact path, card path)

    Raises
    ------
    AdaptiveCodecError
        Unusable data or output path; nothing is written then.
    """
    out = Path(out)
    if out.exists() and not force:
        raise AdaptiveCodecError(f"{out} exists; use --force to overwrite it")
    if model not in ("logreg", "mlp"):
        raise AdaptiveCodecError(f"--model must be logreg or mlp, got {model!r}")
    if not out.parent.is_dir():
        raise AdaptiveCodecError(f"{out.parent}: output folder does not exist")
    files_seen = []
    try:
        classifier, report, summary = train_classifier(
            data, extra=extra, estimator=ContentClassifier(model=model), n_splits=folds,
            max_files_per_label=max_files_per_label, narrowband=narrowband, noisy_speech=noisy_speech,
            cache_dir=cache_dir,
            progress=files_seen.append,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise AdaptiveCodecError(f"cannot train on {data}: {exc}") from exc
    echo(f"features of {len(files_seen)} files; classes: {', '.join(map(str, classifier.classes_))}")
    echo(report.format())
    classifier.save(out, training=summary)
    card = Path(card) if card else out.with_suffix(".md")
    write_card(card, classifier, out, summary, speed_x_realtime=measure_speed(classifier, repeats=1))
    echo(f"wrote {out} ({out.stat().st_size / 1024:.1f} KiB) and {card}")
    return out, card
