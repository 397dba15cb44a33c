"""Training audio for the codec: manifests, held-out split, a 24 kHz cache, crops.

Decoding Vorbis/MP3 and resampling every step would cost more CPU than the
model itself, so every clip is decoded once into one int16 array per class
(``<cache>/<label>.npy`` plus ``<label>.json`` with clip offsets and sources),
which training memory-maps.

The held-out split is by *source recording* (the ``source`` column up to the
``@`` offset), so cuts of one recording never land in both train and test.
The rule itself (:func:`~adaptive_codec.bench.corpus.is_held_out`) lives with
the benchmarks' clip selection, which scores on the same held-out recordings;
training imports it from there (train -> bench, never the other way).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

from adaptive_codec.audio import INTERNAL_SAMPLE_RATE_HZ
from adaptive_codec.bench.corpus import TEST_FRACTION_PERCENT, is_held_out, source_group
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.profiles.builtin import BUILTIN_CLASSES
from adaptive_codec.train.cache_paths import cache_dir_for

__all__ = ["Clip", "CropSampler", "SILENT_RMS", "TEST_FRACTION_PERCENT", "band_limit",
           "build_cache", "corpus_clips", "ensure_caches", "is_held_out", "pool_clips", "read_mono",
           "sample_corpus_clips", "source_group"]

SILENT_RMS = 10 ** (-50 / 20)  # crops at or below -50 dBFS RMS are redrawn, not trained on


@dataclass(frozen=True)
class Clip:
    """One audio file with its class and where it came from."""

    path: Path
    label: str
    source: str


def _read_manifest(folder: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """``folder/manifest.csv``, with a one-line error when a needed column is missing."""
    manifest = pd.read_csv(folder / "manifest.csv")
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise AdaptiveCodecError(f"{folder / 'manifest.csv'}: missing column(s) {', '.join(missing)} "
                                 f"(needs {', '.join(columns)})")
    return manifest


def corpus_clips(corpus_dir: Path, split: str) -> list[Clip]:
    """Clips of ``corpus_dir/manifest.csv`` in ``split`` ('train', 'test' or 'all').

    Mixed files are excluded: they are cut from the same clips.
    """
    # pandas expands "~" in the manifest's path but Path joins do not: expand once for both
    corpus_dir = Path(corpus_dir).expanduser()
    manifest = _read_manifest(corpus_dir, ("path", "label", "source"))
    clips = []
    for row in manifest.itertuples():
        if row.label not in BUILTIN_CLASSES:
            continue
        held = is_held_out(row.source)
        if split == "all" or (split == "test") == held:
            clips.append(Clip(corpus_dir / row.path, row.label, row.source))
    return clips


def sample_corpus_clips(corpus_dir: Path, split: str, label: str, limit: int = 0, seed: int = 0,
                        exclude: Iterable[str] = ()) -> list[Path]:
    """Paths of ``label``'s clips in ``split``, a seeded sample of ``limit`` (0 = all), sorted.

    ``exclude`` holds corpus-relative paths (``"music/a.flac"``) to leave
    out. The benchmark scripts choose and check settings on these samples,
    so the same seed gives the same clips in every script.
    """
    corpus_dir = Path(corpus_dir).expanduser()
    skip = set(exclude)
    items = sorted((c.path for c in corpus_clips(corpus_dir, split)
                    if c.label == label and c.path.relative_to(corpus_dir).as_posix() not in skip), key=str)
    if limit and len(items) > limit:
        rng = np.random.default_rng(seed)
        items = [items[i] for i in sorted(rng.choice(len(items), limit, replace=False))]
    return items


def pool_clips(pool_dir: Path, max_hours: dict[str, float] | None = None) -> list[Clip]:
    """Clips of a train-pool manifest (``path,label,...``), capped per class.

    The cap keeps preprocessing time bounded; clips are taken in a seeded
    shuffled order so the cap samples every package.
    """
    pool_dir = Path(pool_dir).expanduser()
    manifest = _read_manifest(pool_dir, ("path", "label", "duration_s"))
    manifest = manifest.sample(frac=1.0, random_state=0)
    hours: dict[str, float] = {}
    clips = []
    for row in manifest.itertuples():
        if row.label not in BUILTIN_CLASSES:
            continue
        cap = (max_hours or {}).get(row.label)
        if cap is not None and hours.get(row.label, 0.0) >= cap:
            continue
        hours[row.label] = hours.get(row.label, 0.0) + float(row.duration_s) / 3600
        source = getattr(row, "source", None) or getattr(row, "source_package", "")
        clips.append(Clip(pool_dir / row.path, row.label, str(source)))
    return clips


def read_mono(path: Path, sample_rate_hz: int) -> np.ndarray:
    """Decode a file to float32 mono at ``sample_rate_hz``."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = torch.from_numpy(data.mean(axis=1))
    if sr != sample_rate_hz:
        mono = torchaudio.functional.resample(mono, sr, sample_rate_hz)
    return mono.numpy()


def ensure_caches(data: Iterable[Path], extra: Iterable[Path], extra_hours: float, cache_root: Path,
                  build: bool = True) -> list[Path]:
    """The cache folders of the ``--data`` corpora (training split) and ``--extra`` folders.

    With ``build`` (the default; under DDP only rank 0) a cache that is not
    finished yet is built first and marked ``done``.
    """
    wanted = [(cache_dir_for(d, cache_root), lambda d=d: corpus_clips(d, "train")) for d in data]
    cap = dict.fromkeys(BUILTIN_CLASSES, extra_hours)
    wanted += [(cache_dir_for(d, cache_root, extra_hours), lambda d=d: pool_clips(d, cap)) for d in extra]
    for cache, clips in wanted:
        if build and not (cache / "done").exists():
            build_cache(clips(), cache)
            (cache / "done").touch()
    return [cache for cache, _ in wanted]


def build_cache(clips: Iterable[Clip], cache_dir: Path,
                sample_rate_hz: int = INTERNAL_SAMPLE_RATE_HZ) -> None:
    """Decode ``clips`` once into ``cache_dir/<label>.npy`` + ``<label>.json``."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    by_label: dict[str, list[Clip]] = {}
    for clip in clips:
        by_label.setdefault(clip.label, []).append(clip)
    n_clips = sum(len(items) for items in by_label.values())
    failures: list[str] = []
    for label, items in by_label.items():
        arrays, index, offset = [], [], 0
        for clip in tqdm(items, desc=f"cache {label}", unit="file"):
            try:
                audio = read_mono(clip.path, sample_rate_hz)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the cache
                print(f"skipped {clip.path}: {exc}")
                failures.append(f"{clip.path}: {exc}")
                continue
            why = ("shorter than 0.5 s" if audio.size < sample_rate_hz // 2
                   else None if np.isfinite(audio).all() else "NaN or inf samples")
            if why is not None:
                print(f"skipped {clip.path}: {why}")
                failures.append(f"{clip.path}: {why}")
                continue
            pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
            arrays.append(pcm)
            index.append({"path": str(clip.path), "source": clip.source,
                          "offset": offset, "n_samples": int(pcm.size)})
            offset += pcm.size
        tmp = cache_dir / f"{label}.tmp.npy"
        np.save(tmp, np.concatenate(arrays) if arrays else np.zeros(0, np.int16))
        tmp.replace(cache_dir / f"{label}.npy")
        (cache_dir / f"{label}.json").write_text(json.dumps({"clips": index}))
    if n_clips and len(failures) == n_clips:
        # Every file failed (a wrong folder, a manifest of moved files): the caller would mark
        # an empty cache done and train on nothing without saying so.
        # The same holds when every file decodes but none is usable (all too short or non-finite).
        raise AdaptiveCodecError(f"no clip for cache {cache_dir.name} could be read or used ({n_clips} tried; "
                                 f"first: {failures[0]})")


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio**2)) + 1e-12)


def band_limit(audio: np.ndarray, cutoff_hz: float,
               sample_rate_hz: int = INTERNAL_SAMPLE_RATE_HZ) -> np.ndarray:
    """Low-pass ``audio`` at ``cutoff_hz`` as a lower-rate source resampled up would be.

    Zero-phase FFT mask: 1 below 0.92 x cutoff, a raised-cosine fall to 0 at the cutoff
    (about where a 16 kHz source resampled to 24 kHz stops), 0 above.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
    cutoff_hz : float
        In (0, sample_rate_hz / 2).
    sample_rate_hz : int

    Returns
    -------
    np.ndarray [shape=(n,)], float32
    """
    if not 0 < cutoff_hz < sample_rate_hz / 2:
        raise ValueError(f"cutoff_hz must be in (0, {sample_rate_hz / 2:g}), got {cutoff_hz}")
    freqs = np.fft.rfftfreq(audio.size, 1.0 / sample_rate_hz)
    knee = 0.92 * cutoff_hz
    t = np.clip((freqs - knee) / (cutoff_hz - knee), 0.0, 1.0)
    mask = 0.5 * (1.0 + np.cos(np.pi * t))
    return np.fft.irfft(np.fft.rfft(audio) * mask, n=audio.size).astype(np.float32)


class CropSampler:
    """Class-balanced random crops from cached arrays.

    Parameters
    ----------
    cache_dirs : list of Path
        Caches made by :func:`build_cache`; their clips are pooled per class.
    crop_samples : int
        Length of each crop.
    seed : int
    class_weights : dict of str to float, optional
        Relative share of each class in a batch (classes left out weigh 1).
        ``None`` or ``{}``: every class with cached audio equally often.
    bandlimit_prob : float
        Share of crops passed through :func:`band_limit` at a cutoff drawn uniformly
        from ``bandlimit_hz`` (the crop stays its own reference). 0 draws nothing extra
        from the random stream, so crops are those of a sampler without it.
    bandlimit_hz : sequence of float
    sample_rate_hz : int
        Rate of the cached audio.
    """

    def __init__(self, cache_dirs: list[Path], crop_samples: int, seed: int = 0,
                 class_weights: dict[str, float] | None = None, bandlimit_prob: float = 0.0,
                 bandlimit_hz: Iterable[float] = (8000.0, 11025.0),
                 sample_rate_hz: int = INTERNAL_SAMPLE_RATE_HZ) -> None:
        self.crop = crop_samples
        self.rng = np.random.default_rng(seed)
        self.bandlimit_prob = float(bandlimit_prob)
        self.bandlimit_hz = [float(f) for f in bandlimit_hz]
        self.sample_rate_hz = int(sample_rate_hz)
        if not 0.0 <= self.bandlimit_prob <= 1.0:
            raise ValueError(f"bandlimit_prob must be in [0, 1], got {bandlimit_prob}")
        if self.bandlimit_prob > 0 and not (
                self.bandlimit_hz and all(0 < f < self.sample_rate_hz / 2 for f in self.bandlimit_hz)):
            raise ValueError(f"bandlimit_hz must list cutoffs in (0, {self.sample_rate_hz / 2:g}) Hz, "
                             f"got {self.bandlimit_hz}")
        self.arrays: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for cache in cache_dirs:
            for label in BUILTIN_CLASSES:
                npy = Path(cache) / f"{label}.npy"
                if not npy.exists():
                    continue
                data = np.load(npy, mmap_mode="r")
                meta = json.loads((Path(cache) / f"{label}.json").read_text())["clips"]
                starts = np.array([c["offset"] for c in meta], dtype=np.int64)
                lengths = np.array([c["n_samples"] for c in meta], dtype=np.int64)
                if len(starts):
                    self.arrays.setdefault(label, []).append((data, np.stack([starts, lengths], 1)))
        self.labels = [c for c in BUILTIN_CLASSES if c in self.arrays]
        if not self.labels:
            raise ValueError(f"no cached audio in {cache_dirs}")
        self.label_p: np.ndarray | None = None
        if class_weights:
            w = np.array([float(class_weights.get(c, 1.0)) for c in self.labels])
            if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
                raise ValueError(f"class_weights must be >= 0 with a positive total over "
                                 f"the cached classes {self.labels}, got {class_weights}")
            self.label_p = w / w.sum()

    def hours(self) -> dict[str, float]:
        """Hours of cached audio per class."""
        return {
            label: sum(int(idx[:, 1].sum()) for _, idx in parts) / self.sample_rate_hz / 3600
            for label, parts in self.arrays.items()
        }

    def _crop(self, label: str) -> np.ndarray:
        parts = self.arrays[label]
        weights = np.array([idx[:, 1].sum() for _, idx in parts], dtype=np.float64)
        data, idx = parts[self.rng.choice(len(parts), p=weights / weights.sum())]
        # Pick a clip proportional to its length, then a position inside it.
        clip = self.rng.choice(len(idx), p=idx[:, 1] / idx[:, 1].sum())
        start, length = idx[clip]
        if length <= self.crop:
            out = np.zeros(self.crop, np.float32)
            out[:length] = data[start : start + length] / 32768.0
            return out
        pos = start + self.rng.integers(0, length - self.crop)
        return np.asarray(data[pos : pos + self.crop], dtype=np.float32) / 32768.0

    def batch(self, batch_size: int) -> tuple[torch.Tensor, list[str]]:
        """``(audio (batch, crop_samples), labels)``; near-silent crops are redrawn."""
        audio, labels = [], []
        for _ in range(batch_size):
            if self.label_p is None:  # the original uniform draw: same stream as before
                label = self.labels[self.rng.integers(len(self.labels))]
            else:
                label = self.labels[self.rng.choice(len(self.labels), p=self.label_p)]
            for _attempt in range(50):
                crop = self._crop(label)
                rms = _rms(crop)
                if rms > SILENT_RMS:
                    break
            if self.bandlimit_prob > 0 and self.rng.random() < self.bandlimit_prob:
                cutoff = self.bandlimit_hz[self.rng.integers(len(self.bandlimit_hz))]
                limited = band_limit(crop, cutoff, self.sample_rate_hz)
                limited_rms = _rms(limited)
                # A crop with nothing below the cutoff (a hi-hat, hiss) stays full-band
                # rather than becoming near-silence that the gain would lift.
                if limited_rms > SILENT_RMS:
                    crop, rms = limited, limited_rms
            # Level augmentation: real archives come at every loudness.
            target_db = self.rng.uniform(-38.0, -14.0)
            gain = min(10 ** (target_db / 20) / rms, 0.99 / (np.abs(crop).max() + 1e-9))
            if self.rng.random() < 0.5:
                crop = -crop
            audio.append(crop * gain)
            labels.append(label)
        return torch.from_numpy(np.stack(audio)).float(), labels
