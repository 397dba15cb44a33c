"""Labelled audio for classifier training: discovery, recording groups, feature tables.

Data layouts understood by :func:`load_labelled_files`:

* a folder with ``manifest.csv`` (``path,label`` plus optional ``group``,
  ``source`` or ``source_package`` columns; paths relative to the CSV) - the
  corpus and train-pools;
* a CSV file with the same columns;
* a folder with one sub-folder per label holding audio files.

Cross-validation never puts one recording (speaker, track, field recording)
in both train and test: every file gets a *group* id derived from the
manifest's ``source`` text (:func:`group_of`).
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from adaptive_codec.analysis.features import FEATURE_VERSION, FeatureConfig, WindowFeatures, feature_names, window_features
from adaptive_codec.audio import AUDIO_SUFFIXES
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.train.classifier_augment import AUGMENT_VERSION, augmented_copies

__all__ = ["GROUP_SEPARATOR", "NARROWBAND_HZ", "Dataset", "LabelledFile", "build_dataset",
           "group_of", "load_labelled_files", "noisy_copies", "source_groups"]

# Labels in manifests that are not classes (corpus evaluation files).
_NOT_A_CLASS = {"mixed"}

#: Joins the groups of a window made from several recordings (a noisy copy,
#: a synthetic mixture); never part of a group name (:func:`group_of` splits on it).
GROUP_SEPARATOR = " + "


def source_groups(group: str) -> list[str]:
    """The recording groups a window's ``group`` stands for; the first is its own recording's.

    A training fold may use a window only if none of these is held out.
    """
    return group.split(GROUP_SEPARATOR)


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
        Recording group; windows made from several recordings join theirs
        with :data:`GROUP_SEPARATOR` (see :func:`source_groups`).
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
        # The Debian train-pool names only its package: one group per package.
        source = row.get("source") or (f"deb:{row['source_package']}" if row.get("source_package") else "")
        group = row.get("group") or group_of(source, rel)
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
    path: Path, config: FeatureConfig, max_seconds: float | None, excerpt_s: float, narrowband: bool,
    augment: int = 0,
) -> tuple[WindowFeatures, WindowFeatures]:
    """Features of a file (or of evenly spread excerpts of a long one), and of
    its copies: the 8 kHz copy when ``narrowband`` (not for <= 8 kHz files)
    and ``augment`` degraded copies (:func:`~adaptive_codec.train.classifier_augment.degrade`).
    """
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
        for copy, copy_sr, _ in augmented_copies(mono, sr, augment, f"{path.name}|{len(full)}"):
            narrow.append(window_features(copy, sample_rate_hz=copy_sr, config=config))
    return WindowFeatures.concatenate(full, n_features), WindowFeatures.concatenate(narrow, n_features)


def build_dataset(
    files: list[LabelledFile],
    *,
    config: FeatureConfig = FeatureConfig(),
    max_seconds_per_file: float | None = None,
    excerpt_s: float = 10.0,
    narrowband: bool = False,
    augment: int = 0,
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
    augment : int
        Also add windows of this many degraded copies of every file (level,
        EQ tilt, telephone band, low-pass, MP3/Opus, noise, reverb; flagged
        ``augmented``; seeded by the file name, so the same on every run).
    cache_dir : str or Path, optional
        Folder for per-file feature caches (npz without pickle), keyed by path,
        file size/mtime and configuration.
    progress : callable, optional
        Called once per file with the file.

    Returns
    -------
    Dataset
    """
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
                     f"|{max_seconds_per_file}|{excerpt_s}|{narrowband}"
                     + (f"|augment{augment}v{AUGMENT_VERSION}" if augment else ""))
            key = cache / (hashlib.sha1(ident.encode()).hexdigest() + ".npz")
        if key is not None and key.exists():
            with np.load(key, allow_pickle=False) as z:
                values, level, augmented = z["values"], z["level_dbfs"], z["augmented"]
        else:
            try:
                full, narrow = _excerpt_features(item.path, config, max_seconds_per_file, excerpt_s, narrowband,
                                                 augment)
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


def _load_mono(path: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        data = f.read(int(max_seconds * sr), dtype="float32", always_2d=True)
    return data.mean(axis=1), sr


def noisy_copies(
    files: list[LabelledFile],
    *,
    config: FeatureConfig = FeatureConfig(),
    target_label: str = "speech",
    noise_label: str = "ambient",
    snr_db: tuple[float, float] = (5.0, 20.0),
    max_seconds: float = 30.0,
    seed: int = 0,
    limit: int | None = None,
    progress=None,
) -> Dataset | None:
    """Windows of ``target_label`` files mixed with ``noise_label`` files (flagged augmented).

    Real recordings of speech come with background sound; our clean training
    speech alone taught the model "speech in traffic = ambient". Each target
    file is mixed with a random noise file at a random SNR in ``snr_db`` and
    keeps its label; its group is the target's and the noise's groups
    joined by :data:`GROUP_SEPARATOR`, so that a CV fold holding out either
    recording does not train on the copy.

    The same function makes speech over a music bed (``noise_label="music"``,
    ``snr_db=(-5, 10)``): a presenter over music or a voice-over is speech.
    ``limit`` caps the number of copies (a seeded choice of target files).

    Returns
    -------
    Dataset or None
        None when either label is missing.
    """
    targets = [f for f in files if f.label == target_label]
    noises = [f for f in files if f.label == noise_label]
    if not targets or not noises:
        return None
    rng = np.random.default_rng(seed)
    if limit is not None and len(targets) > limit:
        targets = [targets[i] for i in sorted(rng.choice(len(targets), limit, replace=False))]
    sr_out = config.sample_rate_hz
    parts = []
    for item in targets:
        if progress is not None:
            progress(item)
        noise_item = noises[rng.integers(len(noises))]
        try:
            target, sr_t = _load_mono(item.path, max_seconds)
            noise, sr_n = _load_mono(noise_item.path, max_seconds)
        except Exception as exc:  # noqa: BLE001 - a bad file only loses its augmented copy
            print(f"warning: skipping noisy copy of {item.path}: {exc}")
            continue
        target = soxr.resample(target, sr_t, sr_out) if sr_t != sr_out else target
        noise = soxr.resample(noise, sr_n, sr_out) if sr_n != sr_out else noise
        if len(noise) == 0 or len(target) == 0:
            continue
        noise = np.tile(noise, len(target) // len(noise) + 1)[: len(target)]
        snr = rng.uniform(*snr_db)
        gain = np.sqrt(np.mean(target**2) / (np.mean(noise**2) + 1e-12) / 10 ** (snr / 10))
        feats = window_features(target + gain * noise, sample_rate_hz=sr_out, config=config)
        n = len(feats)
        group = item.group + GROUP_SEPARATOR + noise_item.group
        parts.append(Dataset(feats.values, np.full(n, item.label, dtype=object), np.full(n, group, dtype=object),
                             feats.level_dbfs, np.ones(n, bool)))
    if not parts:
        return None
    ds = Dataset.concatenate(parts)
    ds.y, ds.groups = ds.y.astype(str), ds.groups.astype(str)
    return ds
