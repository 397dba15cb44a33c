"""Synthetic mixed recordings for choosing routing parameters without the test files.

The corpus' ``mixed/`` files (labelled segments of speech, music and ambient
sound) are the routing test. Choosing the Viterbi switch penalty or the
minimum segment length on them would tune to the test, so this module builds
look-alike mixtures from labelled clips instead - alternating labels, 3-6
clips, hard cuts or 0.5 s cross-fades, every clip RMS-normalised, 16 kHz mono,
the recipe of the corpus' own mixed files - to be classified by a model
trained without the recordings they are made of (grouped folds, like the CV).

Mixtures also give training windows that clean clips never show
(:func:`mixture_windows`): a window next to a label change, whose temporal
context already reaches into the other class. Trained only on clean clips,
the model let speech or music "bleed" into the neighbouring ambient windows
by a second or so.

A window made from several recordings carries all their groups (see
:func:`~adaptive_codec.train.classifier_data.source_groups`), so a fold can
leave out every window that involves a held-out recording.

:func:`score_segments` (share of time labelled correctly, boundary errors)
is the one scoring rule for synthetic and real mixed files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from adaptive_codec.analysis.features import FeatureConfig, window_features
from adaptive_codec.train.classifier_data import GROUP_SEPARATOR, Dataset, LabelledFile

__all__ = ["Mixture", "RoutingScore", "make_mixtures", "mixture_windows", "score_segments"]


@dataclass(frozen=True)
class Mixture:
    """A synthetic mixed recording and its reference segmentation.

    Attributes
    ----------
    audio : np.ndarray [shape=(samples,)], float32
        Mono audio at ``sample_rate_hz``.
    sample_rate_hz : int
    reference : list of (start_s, end_s, label)
        Contiguous segments covering the audio; a cross-fade's boundary is
        its midpoint.
    groups : frozenset of str
        Recording groups of the clips it is made of.
    """

    audio: np.ndarray
    sample_rate_hz: int
    reference: list[tuple[float, float, str]]
    groups: frozenset[str]


@dataclass(frozen=True)
class RoutingScore:
    """How well predicted segments match a reference segmentation.

    Attributes
    ----------
    time_correct : float
        Share of the duration whose predicted label equals the reference's.
    duration_s : float
        Duration scored (the reference's).
    boundary_errors_s : list of float
        For every reference boundary, the distance to the nearest predicted
        one (the whole distance to the start when nothing was predicted).
    """

    time_correct: float
    duration_s: float
    boundary_errors_s: list[float]


def _rms_normalised(audio: np.ndarray, level_dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    return (audio * (10 ** (level_dbfs / 20) / max(rms, 1e-9))).astype(np.float32)


def make_mixtures(
    files: Sequence[LabelledFile],
    *,
    n_mixtures: int,
    seed: int = 0,
    sample_rate_hz: int = 16000,
    n_clips: tuple[int, int] = (3, 6),
    min_clip_s: float = 4.0,
    max_clip_s: float = 20.0,
    level_dbfs: float = -23.0,
    crossfade_s: float = 0.5,
) -> list[Mixture]:
    """Concatenations of labelled clips with alternating labels.

    Parameters
    ----------
    files : sequence of LabelledFile
        Clips to draw from (at least two labels). Clips shorter than
        ``min_clip_s`` or at a rate below ``sample_rate_hz`` are not used
        (the corpus' mixed files follow the same rule).
    n_mixtures : int
        Number of mixtures; odd-numbered ones use cross-fades, even-numbered
        ones hard cuts.
    seed : int
    sample_rate_hz : int
        Rate of the mixtures (clips are resampled and down-mixed).
    n_clips : (int, int)
        Inclusive range of clips per mixture.
    min_clip_s, max_clip_s : float
        Usable clip lengths; longer clips are cut to ``max_clip_s``.
    level_dbfs : float
        RMS level every clip is normalised to.
    crossfade_s : float
        Length of the linear cross-fades.

    Returns
    -------
    list of Mixture
    """
    usable = []
    for item in files:
        info = sf.info(str(item.path))
        if info.duration >= min_clip_s and info.samplerate >= sample_rate_hz:
            usable.append(item)
    labels = sorted({f.label for f in usable})
    if len(labels) < 2:
        return []
    by_label = {label: [f for f in usable if f.label == label] for label in labels}
    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray] = {}

    def clip(item: LabelledFile) -> np.ndarray:
        if str(item.path) not in cache:
            audio, sr = sf.read(str(item.path), dtype="float32", always_2d=True)
            mono = soxr.resample(audio.mean(axis=1), sr, sample_rate_hz) if sr != sample_rate_hz else audio.mean(axis=1)
            cache[str(item.path)] = _rms_normalised(mono[: int(max_clip_s * sample_rate_hz)], level_dbfs)
        return cache[str(item.path)]

    mixtures = []
    fade = int(crossfade_s * sample_rate_hz)
    for index in range(n_mixtures):
        count = int(rng.integers(n_clips[0], n_clips[1] + 1))
        chosen: list[LabelledFile] = []
        label = None
        for _ in range(count):
            label = str(rng.choice([lab for lab in labels if lab != label]))
            pool = [f for f in by_label[label] if f not in chosen]
            if not pool:
                break
            chosen.append(pool[int(rng.integers(len(pool)))])
        crossfaded = index % 2 == 1
        audio = np.zeros(0, np.float32)
        reference = []
        for item in chosen:
            piece = clip(item)
            if crossfaded and len(audio) and len(piece) > fade and len(audio) > fade:
                ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
                overlap = audio[-fade:] * (1 - ramp) + piece[:fade] * ramp
                boundary = (len(audio) - fade / 2) / sample_rate_hz
                audio = np.concatenate([audio[:-fade], overlap, piece[fade:]])
            else:
                boundary = len(audio) / sample_rate_hz
                audio = np.concatenate([audio, piece])
            if reference:
                reference[-1] = (reference[-1][0], boundary, reference[-1][2])
            reference.append((boundary, len(audio) / sample_rate_hz, item.label))
        mixtures.append(Mixture(audio, sample_rate_hz, reference, frozenset(f.group for f in chosen)))
    return mixtures


def mixture_windows(
    files: Sequence[LabelledFile],
    *,
    n_mixtures: int,
    config: FeatureConfig = FeatureConfig(),
    silence_dbfs: float = -60.0,
    seed: int = 0,
    progress=None,
) -> Dataset | None:
    """Windows of synthetic mixtures whose context crosses a label change but which do not.

    Each window is labelled with its own (single) class; windows that
    straddle a change are left out (their label is ambiguous, and training
    on them cost clean-clip accuracy). Flagged ``augmented``; ``groups``
    joins the groups of the mixture's recordings with :data:`GROUP_SEPARATOR`.

    Parameters
    ----------
    files : sequence of LabelledFile
        Clips to mix (see :func:`make_mixtures`).
    n_mixtures : int
    config : FeatureConfig
    silence_dbfs : float
        Windows below this level are left out (the silence gate labels them).
    seed : int
    progress : callable, optional
        Called once per mixture.

    Returns
    -------
    Dataset or None
        None when there is nothing to mix (fewer than two labels).
    """
    mixtures = make_mixtures(files, n_mixtures=n_mixtures, seed=seed, sample_rate_hz=config.sample_rate_hz)
    # How far a window's temporal context reaches from its centre.
    reach_s = config.context_windows * config.hop_s + config.window_s / 2
    parts = []
    for mixture in mixtures:
        if progress is not None:
            progress(mixture)
        feats = window_features(mixture.audio, sample_rate_hz=mixture.sample_rate_hz, config=config)
        centre = (feats.start_s + feats.end_s) / 2
        changes = np.array([start for start, _, _ in mixture.reference[1:]])
        if not len(changes) or not len(feats):
            continue
        distance = np.min(np.abs(centre[:, None] - changes[None, :]), axis=1)
        keep = (distance >= config.window_s / 2) & (distance < reach_s) & (feats.level_dbfs >= silence_dbfs)
        n = int(keep.sum())
        group = GROUP_SEPARATOR.join(sorted(mixture.groups))
        labels = _labels_on_grid(mixture.reference, centre[keep]).astype(str) if n else np.zeros(0, str)
        parts.append(Dataset(feats.values[keep], labels, np.full(n, group, dtype=object), feats.level_dbfs[keep],
                             np.ones(n, bool)))
    if not parts:
        return None
    ds = Dataset.concatenate(parts)
    ds.y, ds.groups = ds.y.astype(str), ds.groups.astype(str)
    return ds


def _labels_on_grid(segments: Sequence[tuple[float, float, str]], grid: np.ndarray) -> np.ndarray:
    labels = np.empty(len(grid), dtype=object)
    for start, end, label in segments:
        labels[(grid >= start) & (grid < end)] = label
    labels[grid >= segments[-1][1]] = segments[-1][2]
    return labels


def score_segments(
    predicted: Sequence[tuple[float, float, str]],
    reference: Sequence[tuple[float, float, str]],
    *,
    same: dict[str, str] | None = None,
    ignore: Sequence[tuple[float, float]] = (),
    step_s: float = 0.01,
) -> RoutingScore:
    """Compare a predicted segmentation with the reference.

    Parameters
    ----------
    predicted, reference : sequence of (start_s, end_s, label)
        Contiguous segments (e.g. from :class:`~adaptive_codec.analysis.routing.Segment`).
    same : dict, optional
        Labels mapped before comparison (e.g. ``{"silence": "ambient"}`` to
        score routing, where one profile serves both).
    ignore : sequence of (start_s, end_s)
        Stretches left out of the time score (e.g. segments whose reference
        label is known to be wrong); boundaries are still scored.
    step_s : float
        Time resolution of the comparison.

    Returns
    -------
    RoutingScore
    """
    end = reference[-1][1]
    grid = np.arange(0.0, end, step_s)
    got, want = _labels_on_grid(predicted, grid), _labels_on_grid(reference, grid)
    if same:
        got = np.array([same.get(v, v) for v in got], dtype=object)
        want = np.array([same.get(v, v) for v in want], dtype=object)
    scored = np.ones(len(grid), bool)
    for start, stop in ignore:
        scored &= ~((grid >= start) & (grid < stop))
    correct = float(np.mean(got[scored] == want[scored])) if scored.any() else 1.0
    cuts = np.array([s[0] for s in predicted[1:]])
    errors = [float(np.min(np.abs(cuts - r[0]))) if len(cuts) else float(r[0]) for r in reference[1:]]
    return RoutingScore(correct, float(scored.sum() * step_s), errors)
