"""Training recipe of the content classifier (used by the CLI and for the shipped artifact).

Data layouts understood by :func:`load_labelled_files`:

* a folder with ``manifest.csv`` (``path,label`` plus optional ``group`` or
  ``source`` columns; paths relative to the CSV) - the corpus and train-pool;
* a CSV file with the same columns;
* a folder with one sub-folder per label holding audio files.

Cross-validation never puts one recording (speaker, track, field recording)
in both train and test: every file gets a *group* id derived from the
manifest's ``source`` text (:func:`group_of`). Extra training sources
(``extra``) are only ever trained on; CV scores are computed on the held-out
groups of the main data only.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.base import clone

from adaptive_codec.classifier import ContentClassifier
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.features import FEATURE_VERSION, FeatureConfig, WindowFeatures, feature_names, window_features

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

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")

# Labels in manifests that are not classes (corpus evaluation files).
_NOT_A_CLASS = {"mixed"}


@dataclass(frozen=True)
class LabelledFile:
    """One training file: where it is, its class and its recording group."""

    path: Path
    label: str
    group: str


@dataclass
class Dataset:
    """Window features of many files, row-aligned.

    Attributes
    ----------
    X : np.ndarray [shape=(n_windows, n_features)]
    y : np.ndarray [shape=(n_windows,)], str labels
    groups : np.ndarray [shape=(n_windows,)], str group ids
    level_dbfs : np.ndarray [shape=(n_windows,)]
    augmented : np.ndarray [shape=(n_windows,)], bool
        True for windows of a narrow-band copy (trained on, never scored).
    """

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    level_dbfs: np.ndarray
    augmented: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(self.X[mask], self.y[mask], self.groups[mask], self.level_dbfs[mask], self.augmented[mask])

    @staticmethod
    def concatenate(parts: list[Dataset]) -> Dataset:
        return Dataset(
            np.concatenate([p.X for p in parts]),
            np.concatenate([p.y for p in parts]),
            np.concatenate([p.groups for p in parts]),
            np.concatenate([p.level_dbfs for p in parts]),
            np.concatenate([p.augmented for p in parts]),
        )


def group_of(source: str, fallback: str) -> str:
    """Recording group of a manifest row, so CV folds never share a recording.

    LibriSpeech clips group by speaker, EmoDB by speaker, everything else by
    the original file (the ``source`` text before the cut offset ``@...``).

    Parameters
    ----------
    source : str
        The manifest's ``source`` text (may be empty).
    fallback : str
        Group when ``source`` is empty (usually the file path).
    """
    if m := re.search(r"LibriSpeech (?:spk|speaker) (\w+)", source):
        return f"librispeech:{m.group(1)}"
    if m := re.search(r"EmoDB.*?speaker (\d+)", source):
        return f"emodb:{m.group(1)}"
    head = source.removeprefix("concat of ").split(" + ")[0]
    head = head.split("@")[0].split(" [")[0].strip()
    return head or fallback


def _from_csv(csv_path: Path) -> list[LabelledFile]:
    root = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or "path" not in rows[0] or "label" not in rows[0]:
        raise AdaptiveCodecError(f"{csv_path}: a manifest needs 'path' and 'label' columns")
    files = []
    for row in rows:
        label = row["label"].strip()
        if label in _NOT_A_CLASS or not label:
            continue
        rel = row["path"].strip()
        group = row.get("group") or group_of(row.get("source") or "", rel)
        files.append(LabelledFile(root / rel, label, group))
    return files


def load_labelled_files(data: str | Path, *, max_files_per_label: int | None = None, seed: int = 0) -> list[LabelledFile]:
    """Find labelled audio in a folder or manifest CSV.

    Parameters
    ----------
    data : str or Path
        A ``manifest.csv`` (``path,label[,group|source]``), a folder holding
        one, or a folder with one sub-folder per label.

    max_files_per_label : int, optional
        Keep at most this many files per label (seeded random choice), to
        bound the cost of huge pools.
    seed : int
        Seed of that choice.

    Returns
    -------
    list of LabelledFile
        Sorted by path; rows labelled ``mixed`` are skipped.
    """
    data = Path(data).expanduser()
    if data.is_file():
        files = _from_csv(data)
    elif (data / "manifest.csv").is_file():
        files = _from_csv(data / "manifest.csv")
    elif data.is_dir():
        files = []
        for label_dir in sorted(p for p in data.iterdir() if p.is_dir()):
            for path in sorted(label_dir.rglob("*")):
                if path.suffix.lower() in AUDIO_SUFFIXES:
                    # Without a manifest every file is its own recording.
                    files.append(LabelledFile(path, label_dir.name, str(path.relative_to(data))))
    else:
        raise FileNotFoundError(f"training data not found: {data}")
    if not files:
        raise AdaptiveCodecError(f"no labelled audio in {data} (expected manifest.csv or one sub-folder per label)")
    if max_files_per_label is not None:
        rng = np.random.default_rng(seed)
        kept = []
        for label in sorted({f.label for f in files}):
            of_label = [f for f in files if f.label == label]
            if len(of_label) > max_files_per_label:
                of_label = [of_label[i] for i in rng.choice(len(of_label), max_files_per_label, replace=False)]
            kept.extend(of_label)
        files = kept
    return sorted(files, key=lambda f: str(f.path))


#: Rate of the narrow-band (telephone-like) training copies.
NARROWBAND_HZ = 8000


def _excerpt_features(
    path: Path, config: FeatureConfig, max_seconds: float | None, excerpt_s: float, narrowband: bool
) -> tuple[WindowFeatures, WindowFeatures]:
    """Features of a file (or of evenly spread excerpts of a long one), and of
    its 8 kHz copy when ``narrowband`` (empty otherwise or for <= 8 kHz files).
    """
    import soundfile as sf
    import soxr

    n_features = len(feature_names(config))
    with sf.SoundFile(str(path)) as f:
        sr, n = f.samplerate, f.frames
        if max_seconds is None or n <= max_seconds * sr:
            pieces = [f.read(dtype="float32", always_2d=True)]
        else:
            n_pieces = max(1, int(max_seconds // excerpt_s))
            length = int(excerpt_s * sr)
            pieces = []
            for start in np.linspace(0, n - length, n_pieces + 2)[1:-1].astype(int):  # skip intro/outro
                f.seek(int(start))
                pieces.append(f.read(length, dtype="float32", always_2d=True))
    full, narrow = [], []
    for piece in pieces:
        mono = piece.mean(axis=1)
        full.append(window_features(mono, sample_rate_hz=sr, config=config))
        # Band limit must not tell the classes apart: every class is also
        # seen through a telephone-band copy (our 8 kHz speech sources would
        # otherwise teach "narrow band means speech").
        if narrowband and sr > NARROWBAND_HZ:
            low = soxr.resample(mono, sr, NARROWBAND_HZ, quality="HQ")
            narrow.append(window_features(low, sample_rate_hz=NARROWBAND_HZ, config=config))
    return WindowFeatures.concatenate(full, n_features), WindowFeatures.concatenate(narrow, n_features)


def build_dataset(
    files: list[LabelledFile],
    *,
    config: FeatureConfig = FeatureConfig(),
    max_seconds_per_file: float | None = None,
    excerpt_s: float = 10.0,
    narrowband: bool = False,
    cache_dir: str | Path | None = None,
    progress=None,
) -> Dataset:
    """Window features of labelled files.

    Parameters
    ----------
    files : list of LabelledFile
    config : FeatureConfig
    max_seconds_per_file : float, optional
        Longer files contribute evenly spread ``excerpt_s`` excerpts adding up
        to this many seconds (keeps long music tracks from dominating).
    excerpt_s : float
        Length of those excerpts.
    narrowband : bool
        Also add windows of an 8 kHz copy of every file (flagged
        ``augmented``), so that bandwidth is not learnt as a class cue.
    cache_dir : str or Path, optional
        Folder for per-file feature caches (npz without pickle), keyed by path,
        file size/mtime and configuration.
    progress : callable, optional
        Called once per file with the file.

    Returns
    -------
    Dataset
    """
    import soundfile as sf

    cache = Path(cache_dir) if cache_dir else None
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    parts = []
    for item in files:
        if progress is not None:
            progress(item)
        key = None
        if cache:
            stat = item.path.stat()
            ident = (f"{item.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|v{FEATURE_VERSION}|{config}"
                     f"|{max_seconds_per_file}|{excerpt_s}|{narrowband}")
            key = cache / (hashlib.sha1(ident.encode()).hexdigest() + ".npz")
        if key is not None and key.exists():
            with np.load(key, allow_pickle=False) as z:
                values, level, augmented = z["values"], z["level_dbfs"], z["augmented"]
        else:
            try:
                full, narrow = _excerpt_features(item.path, config, max_seconds_per_file, excerpt_s, narrowband)
            except (AdaptiveCodecError, sf.LibsndfileError, RuntimeError, ValueError) as exc:
                # One unreadable file must not sink a long training run.
                print(f"warning: skipping {item.path}: {exc}")
                continue
            values = np.concatenate([full.values, narrow.values])
            level = np.concatenate([full.level_dbfs, narrow.level_dbfs])
            augmented = np.arange(len(values)) >= len(full)
            if key is not None:
                np.savez(key, values=values, level_dbfs=level, augmented=augmented)
        n = len(values)
        parts.append(Dataset(values, np.full(n, item.label, dtype=object), np.full(n, item.group, dtype=object),
                             level, augmented))
    if not parts:
        raise AdaptiveCodecError("none of the training audio could be read")
    ds = Dataset.concatenate(parts)
    ds.y = ds.y.astype(str)
    ds.groups = ds.groups.astype(str)
    return ds


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
                zip(*np.unique(original, return_counts=True))}, "narrowband_windows": int(ds.augmented.sum()),
                "groups": len(set(ds.groups))}

    files, main = dataset(data, None)
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
        narrowband=narrowband, cache_dir=cache_dir, progress=progress,
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
           "is not a class cue." if summary.get("narrowband") else ""),
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
            max_files_per_label=max_files_per_label, narrowband=narrowband, cache_dir=cache_dir,
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
