"""Window probabilities -> smoothed, labelled segments -> profiles.

The classifier scores overlapping windows independently; coding wants long,
stable segments (every profile switch costs side information, and a flapping
decision sounds worse than a slightly late one). Three stages:

1. **Viterbi smoothing** over the window sequence: an HMM whose states are the
   labels, emissions the window probabilities, and a fixed cost
   (``switch_penalty``, in nats) for every change of state. A switch therefore
   needs sustained evidence, and the decision depends on the current state,
   not only on the latest window (the idea of Opus' speech/music hysteresis).
2. **Pauses**: a silent run (the classifier's energy gate) no longer than
   ``max_pause_s`` between two runs of the same label takes that label, so a
   pause in speech stays speech (a voice-activity detector's hangover). Longer
   silences, and silences between different labels, stay ``silence`` and go
   to the cheapest profile.
3. **Minimum segment length**: any segment shorter than ``min_segment_s`` is
   merged into the neighbour whose label its windows found most probable.

Times: window ``w`` stands for the span around its centre; a boundary between
two windows lies half-way between their centres. The first segment starts at
0 and the last ends at the end of the audio.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from adaptive_codec.analysis.features import stream_window_features
from adaptive_codec.audio import as_channels_first, audio_info, iter_audio_blocks
from adaptive_codec.errors import ProfileError

if TYPE_CHECKING:
    from adaptive_codec.analysis.classifier import ContentClassifier
    from adaptive_codec.analysis.classifier_model import ClassifierModel
    from adaptive_codec.profiles import Profile, ProfileRegistry

__all__ = [
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


@dataclass(frozen=True)
class Segment:
    """A stretch of audio with one label.

    Attributes
    ----------
    start_s, end_s : float
        Start and end in seconds from the start of the audio.
    label : str
        Classifier label (``speech``, ``music``, ``ambient``, ``silence``, a
        custom class ...).
    confidence : float
        Mean probability of ``label`` over the segment's windows, in [0, 1].
    """

    start_s: float
    end_s: float
    label: str
    confidence: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class RoutingConfig:
    """Smoothing parameters.

    Parameters
    ----------
    switch_penalty : float
        Log-probability cost of one label change in the Viterbi pass (8 nats:
        a change must be about 3000x more likely over one window, or ~15x
        over three windows, than staying).
    min_segment_s : float
        Shortest segment kept; shorter ones are merged into a neighbour.
    max_pause_s : float
        Longest silence bridged by the label on both its sides (0: never).
    silence_label : str
        The label of the classifier's energy gate.

    The first two defaults were chosen on synthetic mixtures of held-out corpus
    clips (never the corpus' mixed test files): penalties 2-8 and minimum
    segments 1-3 s were within 0.6 points of time accuracy; 8 nats and 2 s
    scored best (``benchmarks/classifier.py`` prints the grid). ``max_pause_s``
    is set from speech, not fitted: pauses between a speaker's sentences and
    turns rarely exceed 3-4 s, while a longer silence is worth the cheap
    profile.
    """

    switch_penalty: float = 8.0
    min_segment_s: float = 2.0
    max_pause_s: float = 4.0
    silence_label: str = "silence"

    def __post_init__(self) -> None:
        if self.switch_penalty < 0:
            raise ValueError(f"switch_penalty must be >= 0, got {self.switch_penalty}")
        if self.min_segment_s < 0:
            raise ValueError(f"min_segment_s must be >= 0, got {self.min_segment_s}")
        if self.max_pause_s < 0:
            raise ValueError(f"max_pause_s must be >= 0, got {self.max_pause_s}")


def viterbi(probabilities: np.ndarray, *, switch_penalty: float) -> np.ndarray:
    """Most likely label sequence with a cost per label change.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_windows, n_labels)]
    switch_penalty : float
        Cost (nats) of each change.

    Returns
    -------
    np.ndarray [shape=(n_windows,)], int
        Index of the chosen label per window.
    """
    n, k = probabilities.shape
    if n == 0:
        return np.zeros(0, dtype=int)
    # The floor keeps a zero probability (e.g. the silence gate) finite.
    log_p = np.log(np.clip(probabilities, 1e-6, 1.0))
    score = log_p[0].copy()
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        best = int(np.argmax(score))
        switch = score[best] - switch_penalty
        stay = score >= switch  # staying beats switching from the best state
        back[t] = np.where(stay, np.arange(k), best)
        score = np.where(stay, score, switch) + log_p[t]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _runs(path: np.ndarray) -> list[list[int]]:
    """[[label index, first window, last window + 1], ...] of constant runs."""
    edges = np.flatnonzero(np.diff(path)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(path)]])
    return [[int(path[s]), int(s), int(e)] for s, e in zip(starts, ends)]


def _join_equal(runs: list[list[int]]) -> list[list[int]]:
    """Merge neighbouring runs of the same label."""
    merged = [runs[0]]
    for run in runs[1:]:
        if run[0] == merged[-1][0]:
            merged[-1][2] = run[2]
        else:
            merged.append(run)
    return merged


def _bridge_pauses(runs: list[list[int]], silence: int, cuts: np.ndarray, max_pause_s: float) -> list[list[int]]:
    """Give a short silent run between two runs of one label that label."""
    for i in range(1, len(runs) - 1):
        label, s, e = runs[i]
        if label == silence and runs[i - 1][0] == runs[i + 1][0] and cuts[e] - cuts[s] <= max_pause_s:
            runs[i][0] = runs[i - 1][0]
    return _join_equal(runs)


def segments_from_probabilities(
    probabilities: np.ndarray,
    labels: Sequence[str],
    window_start_s: np.ndarray,
    window_end_s: np.ndarray,
    *,
    duration_s: float | None = None,
    config: RoutingConfig = RoutingConfig(),
) -> list[Segment]:
    """Smoothed segments from per-window probabilities.

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_windows, n_labels)]
        Rows sum to 1 (e.g. :meth:`ClassifierModel.window_probabilities`).
    labels : sequence of str [length=n_labels]
        Label of each column.
    window_start_s, window_end_s : np.ndarray [shape=(n_windows,)]
        Time span of each window.
    duration_s : float, optional
        End of the audio (default: end of the last window).
    config : RoutingConfig

    Returns
    -------
    list of Segment
        Contiguous, covering [0, duration_s]; empty when there are no windows.
    """
    probabilities = np.asarray(probabilities, dtype=float)
    n = len(probabilities)
    if n == 0:
        return []
    if probabilities.shape[1] != len(labels):
        raise ValueError(f"{probabilities.shape[1]} probability columns but {len(labels)} labels")
    end_of_audio = float(window_end_s[-1]) if duration_s is None else float(duration_s)
    centres = (np.asarray(window_start_s) + np.asarray(window_end_s)) / 2
    # cut[i] = time between window i-1 and window i; cut[0] = 0, cut[n] = end.
    cuts = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [end_of_audio]])
    runs = _runs(viterbi(probabilities, switch_penalty=config.switch_penalty))
    if config.silence_label in labels and config.max_pause_s > 0:
        runs = _bridge_pauses(runs, list(labels).index(config.silence_label), cuts, config.max_pause_s)

    # Merge the shortest too-short run first, so that merges cascade sensibly.
    while len(runs) > 1:
        lengths = [cuts[e] - cuts[s] for _, s, e in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= config.min_segment_s:
            break
        _, s, e = runs[i]
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        # The neighbour whose label the short run's own windows liked most.
        j = max(neighbours, key=lambda j: probabilities[s:e, runs[j][0]].mean())
        runs[j][1], runs[j][2] = min(runs[j][1], s), max(runs[j][2], e)
        del runs[i]
        runs = _join_equal(runs)
    return [
        Segment(float(cuts[s]), float(cuts[e]), str(labels[k]), float(probabilities[s:e, k].mean()))
        for k, s, e in runs
    ]


def route(segments: Sequence[Segment], registry: ProfileRegistry) -> list[tuple[Segment, Profile]]:
    """Pair every segment with the profile serving its label.

    Parameters
    ----------
    segments : sequence of Segment
    registry : ProfileRegistry
        ``registry.for_label(label)`` gives the profile.

    Returns
    -------
    list of (Segment, Profile)

    Raises
    ------
    ProfileError
        A label no profile serves; the message names the available profiles.
    """
    pairs = []
    for segment in segments:
        try:
            pairs.append((segment, registry.for_label(segment.label)))
        except ProfileError as exc:
            names = ", ".join(f"{p.name} ({', '.join(p.labels) or 'no labels'})" for p in registry)
            raise ProfileError(
                f"no profile serves the classifier label {segment.label!r}; available profiles: {names}. "
                f"Add a profile with labels = [{segment.label!r}] (--profiles-dir)"
            ) from exc
    return pairs


def shipped_classifier() -> ClassifierModel:
    """The shipped classifier, the default of every classify function.

    Scored in NumPy (:class:`~adaptive_codec.analysis.classifier_model.ClassifierModel`):
    classifying never imports scikit-learn. Any object with ``config_``,
    ``labels_`` and ``window_probabilities`` serves the classify functions,
    a fitted :class:`~adaptive_codec.analysis.classifier.ContentClassifier` too.
    """
    from adaptive_codec.analysis.classifier_model import ClassifierModel

    return ClassifierModel.default()


def classify_blocks(
    blocks: Iterable[np.ndarray],
    sample_rate_hz: int,
    classifier: ClassifierModel | ContentClassifier | None = None,
    *,
    config: RoutingConfig = RoutingConfig(),
    duration_s: float | None = None,
) -> list[Segment]:
    """Label a recording that arrives block by block: THE classify path.

    Streams the blocks through the classifier's features
    (:func:`~adaptive_codec.analysis.features.stream_window_features`, bounded
    memory), scores the windows as they come (the model and the silence gate,
    :meth:`~adaptive_codec.analysis.classifier_model.ClassifierModel.window_probabilities`;
    only the probabilities are kept, a few bytes a window) and smooths them
    into segments (:func:`segments_from_probabilities`).
    :func:`classify` (arrays) and :func:`classify_file` (files) call it; the
    codec's first pass over a file can too, since it only consumes ``blocks``.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(samples,) or (channels, samples)]
        Consecutive pieces of one recording at ``sample_rate_hz`` (channels
        are averaged). Where the stream is cut changes the features only by
        the resampler's float rounding; the same cut gives the same bytes.
    sample_rate_hz : int
        Sample rate of the blocks in Hz.
    classifier : ClassifierModel or ContentClassifier, optional
        Default: :func:`shipped_classifier`.
    config : RoutingConfig
        Smoothing parameters.
    duration_s : float, optional
        End of the last segment in seconds. Default: the samples the blocks
        held, over ``sample_rate_hz``.

    Returns
    -------
    list of Segment
        Contiguous, covering [0, duration_s]; empty for an empty stream.
    """
    if classifier is None:
        classifier = shipped_classifier()
    n_samples = 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal n_samples
        for block in blocks:
            n_samples += np.shape(block)[-1]
            yield block

    # Each piece of windows is scored as it arrives (a window's score depends
    # only on its own row, context included) and only the probabilities and
    # times are kept: 48 bytes a window instead of its ~2 KB feature vector,
    # so a 10-hour file does not hold 150 MB of features.
    probabilities, starts, ends = [], [], []
    for part in stream_window_features(counted(), sample_rate_hz=sample_rate_hz, config=classifier.config_):
        if len(part):
            probabilities.append(classifier.window_probabilities(part))
            starts.append(part.start_s)
            ends.append(part.end_s)
    if duration_s is None:
        duration_s = n_samples / sample_rate_hz
    if not probabilities:
        return []
    return segments_from_probabilities(
        np.concatenate(probabilities), classifier.labels_, np.concatenate(starts), np.concatenate(ends),
        duration_s=duration_s, config=config,
    )


def classify(
    audio: Any,
    sample_rate_hz: int,
    classifier: ClassifierModel | ContentClassifier | None = None,
    *,
    config: RoutingConfig = RoutingConfig(),
) -> list[Segment]:
    """Label an in-memory signal: :func:`classify_blocks` of one block.

    Parameters
    ----------
    audio : np.ndarray or torch.Tensor [shape=(samples,) or (channels, samples)]
    sample_rate_hz : int
        Sample rate of ``audio`` in Hz.
    classifier : ClassifierModel or ContentClassifier, optional
        Default: the shipped one.
    config : RoutingConfig

    Returns
    -------
    list of Segment
    """
    return classify_blocks([as_channels_first(audio)], sample_rate_hz, classifier, config=config)


def classify_file(
    path: str | os.PathLike[str],
    classifier: ClassifierModel | ContentClassifier | None = None,
    *,
    config: RoutingConfig = RoutingConfig(),
    block_s: float = 60.0,
    progress: Callable[[float], None] | None = None,
) -> list[Segment]:
    """Label an audio file read block by block (bounded memory): :func:`classify_blocks`.

    Parameters
    ----------
    path : str or PathLike
    classifier : ClassifierModel or ContentClassifier, optional
        Default: the shipped one.
    config : RoutingConfig
    block_s : float
        Seconds decoded per block.
    progress : callable, optional
        Called with the seconds of audio processed after each block.

    Returns
    -------
    list of Segment
        The last ends at the length the file's header declares.

    Raises
    ------
    AudioError
        Missing, unreadable or corrupt file.
    """
    info = audio_info(path)
    sr = info.sample_rate_hz

    def reported() -> Iterator[np.ndarray]:
        for block in iter_audio_blocks(path, max(1, int(block_s * sr))):
            yield block
            # Resumed when the block's windows are done.
            if progress is not None:
                progress(block.shape[-1] / sr)

    return classify_blocks(reported(), sr, classifier, config=config,
                           duration_s=info.n_samples / info.sample_rate_hz)


def segments_report(
    path: str | os.PathLike[str],
    classifier: ClassifierModel | ContentClassifier,
    registry: ProfileRegistry,
    *,
    format: str = "table",
    min_segment_s: float = RoutingConfig.min_segment_s,
    max_pause_s: float = RoutingConfig.max_pause_s,
    progress_after_s: float = 60.0,
) -> str:
    """Classify a file and render its segments for ``adaptive-codec classify``.

    Parameters
    ----------
    path : str or PathLike
        Audio file.
    classifier : ClassifierModel or ContentClassifier
    registry : ProfileRegistry
        Maps labels to profiles; a label no profile serves is shown as ``-``
        and a one-line warning naming the available profiles goes to stderr.
    format : {"table", "csv", "json"}
    min_segment_s, max_pause_s : float
        See :class:`RoutingConfig`.
    progress_after_s : float
        Files longer than this show a progress bar on stderr (when it is a
        terminal).

    Returns
    -------
    str
        The rendered report, ending with a newline.
    """
    duration = audio_info(path).duration_s
    bar = tqdm(total=round(duration, 1), unit="s", desc="classifying", file=sys.stderr, leave=False,
               disable=duration < progress_after_s or not sys.stderr.isatty())
    with bar:
        config = RoutingConfig(min_segment_s=min_segment_s, max_pause_s=max_pause_s)
        segments = classify_file(path, classifier, config=config, progress=lambda s: bar.update(round(s, 1)))
    served = registry.labels()
    unserved = sorted({s.label for s in segments} - set(served))
    if unserved:
        names = ", ".join(p.name for p in registry)
        print(f"warning: no profile serves label(s) {', '.join(unserved)}; available profiles: {names} "
              "(add one with --profiles-dir)", file=sys.stderr)
    rows = [
        {"start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3), "label": s.label,
         "profile": served.get(s.label), "confidence": round(s.confidence, 3)}
        for s in segments
    ]
    if format == "json":
        return json.dumps({"file": str(path), "duration_s": round(duration, 3), "segments": rows}, indent=2) + "\n"
    if format == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["start_s"], lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "profile": r["profile"] or ""} for r in rows)
        return out.getvalue()
    if format != "table":
        raise ValueError(f"format must be table, csv or json, got {format!r}")
    table = [("START", "END", "DURATION", "LABEL", "PROFILE", "CONFIDENCE")]
    table += [(f"{r['start_s']:.2f}", f"{r['end_s']:.2f}", f"{r['end_s'] - r['start_s']:.2f}", r["label"],
               r["profile"] or "-", f"{r['confidence']:.2f}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.rjust(w) if i < 3 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
                     for row in table) + "\n"
