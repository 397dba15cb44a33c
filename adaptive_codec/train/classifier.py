"""Training recipe of the content classifier (used by the CLI and for the shipped artifact).

Data discovery and feature tables live in :mod:`adaptive_codec.train.classifier_data`,
grouped cross-validation in :mod:`adaptive_codec.train.classifier_cv`, the CV
report and model card in :mod:`adaptive_codec.train.classifier_report` (all
re-exported here). Cross-validation never puts one recording (speaker,
track, field recording) in both train and test. Extra training sources
(``extra``) are only ever trained on, optionally down-weighted per class
(``extra_share``, spread evenly over classes' windows or over their recording
groups, ``extra_balance``); CV scores are computed on the held-out groups of the main
data only. Files named in ``train_exclude`` (known label errors) are never
trained on but still scored.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adaptive_codec.analysis.classifier import ContentClassifier
from adaptive_codec.analysis.features import FeatureConfig, window_features
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.train.classifier_cv import (
    EXTRA_BALANCES,
    TrainingData,
    calibration_error,
    extra_weights,
    fit_temperature,
    grouped_cv,
    log_loss,
)
from adaptive_codec.train.classifier_data import (
    Dataset,
    LabelledFile,
    build_dataset,
    group_of,
    load_labelled_files,
    noisy_copies,
    source_groups,
)
from adaptive_codec.train.classifier_mixtures import mixture_windows
from adaptive_codec.train.classifier_report import CVReport, write_card

__all__ = [
    "CVReport",
    "EXTRA_BALANCES",
    "Dataset",
    "LabelledFile",
    "build_dataset",
    "extra_weights",
    "grouped_cv",
    "group_of",
    "load_labelled_files",
    "TrainingData",
    "TrainingRecipe",
    "measure_speed",
    "prepare_training_data",
    "run_training",
    "train_classifier",
    "write_card",
]


#: Speech-over-music copies made from the extra sources (their speech files are many and short).
SPEECH_OVER_MUSIC_EXTRA = 600
#: Speech-to-music ratios of those copies, dB: from a voice-over on a loud bed to a quiet bed.
SPEECH_OVER_MUSIC_DB = (-5.0, 10.0)


def speech_over_music(files: list[LabelledFile], *, config: FeatureConfig, max_seconds: float | None = 30.0,
                      seed: int = 0, limit: int | None = None, progress=None) -> Dataset | None:
    """Speech files mixed over music files at :data:`SPEECH_OVER_MUSIC_DB`, labelled speech (augmented)."""
    return noisy_copies(files, config=config, target_label="speech", noise_label="music",
                        snr_db=SPEECH_OVER_MUSIC_DB, max_seconds=max_seconds or 30.0, seed=seed, limit=limit,
                        progress=progress)


def measure_speed(classifier: ContentClassifier, *, seconds: float = 60.0, sample_rate_hz: int = 44100,
                  repeats: int = 3) -> float:
    """Features + inference speed as a multiple of real time (best of ``repeats``).

    Uses a seeded noise-plus-tones signal at a common file rate, so resampling
    is included. Set the thread count (e.g. ``OMP_NUM_THREADS=1``) before the
    process starts to measure one core.
    """
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


@dataclass(frozen=True)
class TrainingRecipe:
    """How the training windows are assembled; stored in the artifact's training summary.

    Parameters
    ----------
    max_seconds_per_file : float or None
        Longer files contribute evenly spread 10 s excerpts adding up to this.
    max_files_per_label : int or None
        Cap per label on each extra source (seeded random choice).
    narrowband : bool
        Also train on 8 kHz copies of every file (see :func:`build_dataset`).
    noisy_speech : bool
        Also train on speech files mixed with ambient files at 5-20 dB SNR
        (see :func:`noisy_copies`; needs labels ``speech`` and ``ambient``).
    extra_share : float or None
        Weight of the extra data per class relative to the main data (see
        :func:`extra_weights`); ``None``: every extra window counts once.
    extra_balance : {"class", "group"}
        ``"group"`` splits a class's extra weight evenly over its recording
        groups (a Debian package, a speaker) before their windows; ``"class"``
        over its windows.
    train_exclude : tuple of str
        Main-data files whose recording group or path contains one of these
        texts are never trained on (known label errors) but still scored.
    mixtures : int
        Synthetic mixtures of main-data clips whose near-change windows are
        trained on (see :func:`mixture_windows`); 0: none.
    augment : int
        Degraded copies of every file (level, EQ tilt, telephone band,
        low-pass, MP3/Opus round trip, noise, reverb; see
        :mod:`~adaptive_codec.train.classifier_augment`); 0: none.
    speech_over_music : bool
        Also train on speech files mixed over music files at -5 to +10 dB
        speech-to-music ratio, labelled speech (main data, and up to
        :data:`SPEECH_OVER_MUSIC_EXTRA` copies from the extra sources; needs
        labels ``speech`` and ``music``).
    """

    max_seconds_per_file: float | None = 30.0
    max_files_per_label: int | None = None
    narrowband: bool = True
    noisy_speech: bool = False
    extra_share: float | None = None
    extra_balance: str = "class"
    train_exclude: tuple[str, ...] = ()
    mixtures: int = 0
    augment: int = 0
    speech_over_music: bool = False

    def __post_init__(self) -> None:
        if self.extra_share is not None and self.extra_share < 0:
            raise ValueError(f"extra_share must be >= 0, got {self.extra_share}")
        if self.extra_balance not in EXTRA_BALANCES:
            raise ValueError(f"extra_balance must be one of {', '.join(EXTRA_BALANCES)}, got {self.extra_balance!r}")
        if self.mixtures < 0:
            raise ValueError(f"mixtures must be >= 0, got {self.mixtures}")
        if self.augment < 0:
            raise ValueError(f"augment must be >= 0, got {self.augment}")

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return {**dataclasses.asdict(self), "train_exclude": list(self.train_exclude)}

    @classmethod
    def from_summary(cls, summary: dict) -> TrainingRecipe:
        """The recipe recorded in a training summary (older artifacts: what they recorded, else defaults)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in summary.items() if k in fields}
        if "train_exclude" in known:
            known["train_exclude"] = tuple(known["train_exclude"])
        return cls(**known)


def prepare_training_data(
    data: str | Path,
    *,
    extra: tuple[str | Path, ...] = (),
    recipe: TrainingRecipe = TrainingRecipe(),
    config: FeatureConfig = FeatureConfig(),
    silence_dbfs: float = -60.0,
    cache_dir: str | Path | None = None,
    progress=None,
) -> TrainingData:
    """Features of the main and extra data, audible windows only.

    Windows below the silence gate are dropped: at run time the gate labels
    them, not the model. Parameters as in :func:`train_classifier`.
    """

    def dataset(files):
        ds = build_dataset(files, config=config, max_seconds_per_file=recipe.max_seconds_per_file,
                           narrowband=recipe.narrowband, augment=recipe.augment, cache_dir=cache_dir,
                           progress=progress)
        return files, ds.subset(ds.level_dbfs >= silence_dbfs)

    def describe(source, files, ds):
        original = ds.y[~ds.augmented]
        return {"source": str(source), "files": len(files), "windows": {k: int(v) for k, v in
                zip(*np.unique(original, return_counts=True))}, "augmented_windows": int(ds.augmented.sum()),
                "groups": len({source_groups(g)[0] for g in set(ds.groups)})}

    files = load_labelled_files(data)
    excluded = frozenset(f.group for f in files if any(t in f.group or t in str(f.path) for t in recipe.train_exclude))
    if recipe.train_exclude and not excluded:
        raise AdaptiveCodecError(f"--train-exclude {', '.join(recipe.train_exclude)}: matches no file of {data}")
    files, main = dataset(files)
    if recipe.noisy_speech:
        noisy = noisy_copies(files, config=config, max_seconds=recipe.max_seconds_per_file or 30.0,
                             progress=progress)
        if noisy is not None:
            main = Dataset.concatenate([main, noisy.subset(noisy.level_dbfs >= silence_dbfs)])
    if recipe.speech_over_music:
        over = speech_over_music(files, config=config, max_seconds=recipe.max_seconds_per_file, progress=progress)
        if over is not None:
            main = Dataset.concatenate([main, over.subset(over.level_dbfs >= silence_dbfs)])
    if len(set(main.y)) < 2:
        raise AdaptiveCodecError(f"{data}: need at least two labels with audible audio, got {sorted(set(main.y))}")
    mixtures = None
    if recipe.mixtures:
        mixable = [f for f in files if f.group not in excluded]
        mixtures = mixture_windows(mixable, n_mixtures=recipe.mixtures, config=config, silence_dbfs=silence_dbfs)
    extras = [dataset(load_labelled_files(source, max_files_per_label=recipe.max_files_per_label))
              for source in extra]
    extra_ds = Dataset.concatenate([ds for _, ds in extras]) if extras else None
    if recipe.speech_over_music and extras:
        over = speech_over_music([f for files_, _ in extras for f in files_], config=config, seed=1,
                                 max_seconds=recipe.max_seconds_per_file, limit=SPEECH_OVER_MUSIC_EXTRA,
                                 progress=progress)
        if over is not None:
            extra_ds = Dataset.concatenate([extra_ds, over.subset(over.level_dbfs >= silence_dbfs)])
    summary = {
        "data": describe(data, files, main),
        "extra": [describe(source, f, ds) for source, (f, ds) in zip(extra, extras)],
        **recipe.to_dict(),
        "excluded_groups": sorted(excluded),
        "mixture_windows": 0 if mixtures is None else len(mixtures),
    }
    return TrainingData(main, extra_ds, summary, excluded, mixtures, extra_balance=recipe.extra_balance)


def train_classifier(
    data: str | Path,
    *,
    extra: tuple[str | Path, ...] = (),
    estimator: ContentClassifier | None = None,
    recipe: TrainingRecipe = TrainingRecipe(),
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
    recipe : TrainingRecipe
        Excerpts, copies, extra weighting, exclusions, mixtures.
    n_splits : int
        CV folds.
    cache_dir : path, optional
        Feature cache (see :func:`build_dataset`).
    progress : callable, optional
        Called once per file.

    Returns
    -------
    classifier : ContentClassifier
        Fitted on all the data but the excluded files.
    report : CVReport
        Grouped CV over the main data, as labelled (excluded files included).
    summary : dict
        JSON-serialisable description of data, recipe and CV results (stored
        in the artifact); with ``cv_without_excluded`` when files were excluded.
    """
    estimator = estimator or ContentClassifier()
    data_set = prepare_training_data(data, extra=extra, recipe=recipe, config=estimator.config_,
                                     silence_dbfs=estimator.silence_dbfs, cache_dir=cache_dir, progress=progress)
    main = data_set.main
    own = np.array([source_groups(g)[0] for g in main.groups])
    scored = ~main.augmented & ~np.isin(own, list(data_set.excluded_groups))
    held_out_proba: list[tuple[np.ndarray, np.ndarray]] = []

    def keep_probabilities(model: ContentClassifier, held_out: frozenset[str]) -> None:
        rows = np.flatnonzero(scored & np.isin(own, list(held_out)))
        held_out_proba.append((rows, model.predict_proba(main.X[rows])))

    report, predicted = grouped_cv(estimator, data_set, extra_share=recipe.extra_share, n_splits=n_splits,
                                   on_fold=keep_probabilities)
    classifier = data_set.fit(estimator, extra_share=recipe.extra_share)
    # One temperature, fitted on what the fold models said about recordings they never saw.
    rows = np.concatenate([r for r, _ in held_out_proba])
    proba = np.concatenate([p for _, p in held_out_proba])
    temperature = fit_temperature(main.y[rows], proba, classifier.classes_)
    classifier.calibrate(temperature)
    summary = dict(data_set.summary, cv=report.to_dict(), calibration={
        "temperature": temperature, "windows": len(rows),
        "ece_before": calibration_error(main.y[rows], proba, classifier.classes_),
        "ece_after": calibration_error(main.y[rows], proba, classifier.classes_, temperature=temperature),
        "log_loss_before": log_loss(main.y[rows], proba, classifier.classes_),
        "log_loss_after": log_loss(main.y[rows], proba, classifier.classes_, temperature=temperature)})
    if data_set.excluded_groups:
        kept = ~main.augmented & ~np.isin(main.groups, list(data_set.excluded_groups))
        summary["cv_without_excluded"] = CVReport.from_predictions(
            main.y[kept], predicted[kept], n_splits=report.n_splits, n_groups=len(set(main.groups[kept]))).to_dict()
    return classifier, report, summary


def _has_labels(data: Path, labels: tuple[str, ...]) -> bool:
    try:
        found = {f.label for f in load_labelled_files(data)}
    except (AdaptiveCodecError, FileNotFoundError):
        return True  # the training itself reports unusable data
    return set(labels) <= found


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
    extra_share: float | None = None,
    extra_balance: str = "class",
    train_exclude: tuple[str, ...] = (),
    mixtures: int = 0,
    augment: int = 0,
    speech_over_music: bool = False,
    cache_dir: Path | None = None,
    force: bool = False,
    echo=print,
) -> tuple[Path, Path]:
    """``adaptive-codec train classifier``: train, cross-validate, write artifact + card.

    The data options make up a :class:`TrainingRecipe`.

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
    if speech_over_music and not _has_labels(data, ("speech", "music")):
        raise AdaptiveCodecError(f"--speech-over-music needs the labels speech and music in {data}")
    if extra_balance not in EXTRA_BALANCES:
        raise AdaptiveCodecError(f"--extra-balance must be {' or '.join(EXTRA_BALANCES)}, got {extra_balance!r}")
    if not out.parent.is_dir():
        raise AdaptiveCodecError(f"{out.parent}: output folder does not exist")
    try:
        recipe = TrainingRecipe(max_files_per_label=max_files_per_label, narrowband=narrowband,
                                noisy_speech=noisy_speech, extra_share=extra_share,
                                extra_balance=extra_balance, train_exclude=tuple(train_exclude),
                                mixtures=mixtures, augment=augment, speech_over_music=speech_over_music)
    except ValueError as exc:
        raise AdaptiveCodecError(str(exc)) from exc
    files_seen = []
    try:
        classifier, report, summary = train_classifier(
            data, extra=extra, estimator=ContentClassifier(model=model), recipe=recipe, n_splits=folds,
            cache_dir=cache_dir, progress=files_seen.append,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise AdaptiveCodecError(f"cannot train on {data}: {exc}") from exc
    echo(f"features of {len(files_seen)} files; classes: {', '.join(map(str, classifier.classes_))}")
    echo(report.format())
    if "cv_without_excluded" in summary:
        echo("without the never-trained-on files: "
             + CVReport.from_dict(summary["cv_without_excluded"]).format().split("\n")[0])
    classifier.save(out, training=summary)
    card = Path(card) if card else out.with_suffix(".md")
    write_card(card, classifier, out, summary, speed_x_realtime=measure_speed(classifier, repeats=1))
    echo(f"wrote {out} ({out.stat().st_size / 1024:.1f} KiB) and {card}")
    return out, card
