"""Benchmark of the content classifier on the developers' corpus.

Prints (and with ``--out`` writes):

* grouped cross-validation on window level (no recording in both train and
  test): accuracy, macro-F1, confusion matrix, per-class precision/recall/F1,
  as labelled and without the files the recipe never trains on;
* routing on synthetic mixtures of held-out clips (never the recordings of the
  test mixed files): the grid the Viterbi switch penalty and minimum segment
  length were chosen on;
* the corpus' mixed files: share of time labelled correctly and median
  boundary error, each file classified by a model trained WITHOUT the
  recordings it was made from;
* speech mixed into ambient recordings at 20/10/5 dB SNR (held-out clips);
* speech over music at -5/0/+5/+10 dB and the corpus' sung song, routed
  (held-out clips);
* leave one source out: every corpus repository, Debian package and speech
  repository predicted by a model trained without it (worst sources);
* with ``--silero-out``: the speech / non-speech decision side by side with
  silero-vad on the same windows (accuracy per class, speed on one thread);
* features + inference speed as a multiple of real time on one core;
* artifact size and load time.

The estimator parameters, training sources and recipe are read from the
artifact's own metadata, so the numbers describe the shipped model.

Usage (from the repository root)::

    python benchmarks/classifier.py --cache-dir /work/data/classifier/features \
        --out benchmarks/results/classifier.txt --silero-out benchmarks/results/classifier_silero_vad.txt
"""

from __future__ import annotations

import os

# One core, as the target says; must be set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

from adaptive_codec.analysis.classifier import DEFAULT_ARTIFACT, ContentClassifier  # noqa: E402
from adaptive_codec.errors import AdaptiveCodecError  # noqa: E402
from adaptive_codec.analysis.features import window_features  # noqa: E402
from adaptive_codec.profiles import ProfileRegistry  # noqa: E402
from adaptive_codec.analysis.routing import RoutingConfig, classify_file, segments_from_probabilities  # noqa: E402
from adaptive_codec.train.classifier import (  # noqa: E402
    CVReport,
    TrainingData,
    TrainingRecipe,
    grouped_cv,
    load_labelled_files,
    measure_speed,
    prepare_training_data,
)
from adaptive_codec.train.classifier_data import source_groups  # noqa: E402
from adaptive_codec.train.classifier_mixtures import make_mixtures, score_segments  # noqa: E402

_PENALTIES = (2.0, 4.0, 8.0)
_MIN_SEGMENTS_S = (1.0, 2.0, 3.0)
_MAX_PAUSES_S = (0.0, 2.0, 4.0, 8.0)


def _git_revision() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _reference(path: Path) -> list[tuple[float, float, str]]:
    with open(path, newline="") as f:
        return [(float(r["start_s"]), float(r["end_s"]), r["label"]) for r in csv.DictReader(f)]


def _mixed_rows(corpus: Path) -> list[tuple[str, list[str]]]:
    """(mixed file, the clips its segments come from, in order)."""
    with open(corpus / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "mixed"]
    return [(r["path"], [p.strip() for p in r["source"].split(" of: ", 1)[1].split("; ")]) for r in rows]


def _probabilities(model: ContentClassifier, audio: np.ndarray, sr: int):
    feats = window_features(audio, sample_rate_hz=sr, config=model.config_)
    return model.window_probabilities(feats), feats


def synthetic_routing(corpus, folds, data: TrainingData, avoid: set[str], per_fold: int = 20) -> list[str]:
    """Grid of routing parameters on mixtures of each fold's held-out clips."""
    files = [f for f in load_labelled_files(corpus) if f.group not in data.excluded_groups and f.group not in avoid]
    cases = []
    for k, (model, held_out) in enumerate(folds):
        for mixture in make_mixtures([f for f in files if f.group in held_out], n_mixtures=per_fold, seed=k):
            probs, feats = _probabilities(model, mixture.audio, mixture.sample_rate_hz)
            cases.append((probs, model.labels_, feats, len(mixture.audio) / mixture.sample_rate_hz, mixture.reference))
    lines = [f"{len(cases)} mixtures ({sum(c[3] for c in cases):.0f} s) of held-out clips, "
             f"none from a recording of the test mixed files:"]
    default = RoutingConfig()

    def scored(config: RoutingConfig) -> str:
        total = correct = 0.0
        errors: list[float] = []
        for probs, labels, feats, duration, reference in cases:
            segments = segments_from_probabilities(probs, labels, feats.start_s, feats.end_s,
                                                   duration_s=duration, config=config)
            score = score_segments([(s.start_s, s.end_s, s.label) for s in segments], reference)
            total += score.duration_s
            correct += score.time_correct * score.duration_s
            errors += score.boundary_errors_s
        mark = "  <- default" if config == default else ""
        return f"{correct / total:6.1%} of time correct, median boundary error {np.median(errors):.2f} s{mark}"

    for penalty in _PENALTIES:
        for min_segment in _MIN_SEGMENTS_S:
            config = dataclasses.replace(default, switch_penalty=penalty, min_segment_s=min_segment)
            lines.append(f"switch_penalty {penalty:4.1f}, min_segment_s {min_segment:3.1f}: {scored(config)}")
    silent = sum(float((np.argmax(c[0], axis=1) == c[1].index(default.silence_label)).sum()) for c in cases
                 if default.silence_label in c[1])
    lines.append(f"pauses (silence between two runs of one label, max_pause_s; {silent:.0f} of "
                 f"{sum(len(c[0]) for c in cases)} windows are silent):")
    for max_pause in _MAX_PAUSES_S:
        lines.append(f"max_pause_s {max_pause:3.1f}: {scored(dataclasses.replace(default, max_pause_s=max_pause))}")
    return lines


def mixed_files(corpus: Path, template, data: TrainingData, extra_share, routing: RoutingConfig) -> list[str]:
    """Per mixed file and overall: time labelled correctly, routed correctly, boundary errors."""
    group_of_path = {str(f.path.relative_to(corpus)): f.group for f in load_labelled_files(corpus)}
    served = ProfileRegistry.default().labels()
    routed_as = {label: served.get(label, label) for label in (*served, "silence")}
    lines, totals = [], {"all": [0.0, 0.0], "kept": [0.0, 0.0], "routed": [0.0, 0.0]}
    errors: list[float] = []
    for name, clips in _mixed_rows(corpus):
        held_out = frozenset(group_of_path[c] for c in clips if c in group_of_path)
        model = data.fit(template, extra_share=extra_share, held_out=held_out)
        path = corpus / name
        predicted = [(s.start_s, s.end_s, s.label) for s in classify_file(path, model, config=routing)]
        reference = _reference(path.with_name(path.stem + ".segments.csv"))
        # Segments cut from never-trained-on clips (known label errors) are also scored without them.
        ignore = [(s, e) for (s, e, _), clip in zip(reference, clips) if group_of_path.get(clip) in data.excluded_groups]
        plain = score_segments(predicted, reference)
        kept = score_segments(predicted, reference, ignore=ignore)
        routed = score_segments(predicted, reference, same=routed_as)
        for key, score in (("all", plain), ("kept", kept), ("routed", routed)):
            totals[key][0] += score.time_correct * score.duration_s
            totals[key][1] += score.duration_s
        errors += plain.boundary_errors_s
        note = f"; {kept.time_correct:6.1%} without {sum(e - s for s, e in ignore):.1f} s of excluded clips" if ignore else ""
        lines.append(f"{name}: {plain.time_correct:6.1%} of time correct ({routed.time_correct:6.1%} routed to the "
                     f"right profile{note}), boundary errors {', '.join(f'{e:.2f}' for e in plain.boundary_errors_s)} s, "
                     f"{len(predicted)} segments ({len(held_out)} recordings held out)")
    share = {k: v[0] / v[1] for k, v in totals.items()}
    median = float(np.median(errors))
    kept = (f"; {share['kept']:.1%} without the segments cut from never-trained-on clips "
            f"({'MET' if share['kept'] >= 0.96 else 'NOT MET'})") if data.excluded_groups else ""
    lines.append(f"overall: {share['all']:.1%} of time labelled correctly (target >= 96% "
                 f"{'MET' if share['all'] >= 0.96 else 'NOT MET'}){kept}; {share['routed']:.1%} "
                 f"routed to the right profile (silence counts as ambient); median boundary error {median:.2f} s "
                 f"(target <= 0.5 s {'MET' if median <= 0.5 else 'NOT MET'}), {len(errors)} boundaries")
    return lines


def speech_in_noise(corpus: Path, folds, data: TrainingData, snrs=(20.0, 10.0, 5.0)) -> list[str]:
    """Held-out speech clips mixed with held-out ambient clips, by each fold's model."""
    import soundfile as sf
    import soxr

    files = [f for f in load_labelled_files(corpus) if f.group not in data.excluded_groups]
    rng = np.random.default_rng(0)

    def load(path: Path) -> np.ndarray:
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return soxr.resample(audio.mean(axis=1), sr, 16000)

    found = {snr: [] for snr in snrs}
    for model, held_out in folds:
        speech = [f for f in files if f.group in held_out and f.label == "speech"]
        noise = [f for f in files if f.group in held_out and f.label == "ambient"]
        if not noise:
            continue
        for item in speech:
            clean = load(item.path)
            bed = load(noise[rng.integers(len(noise))].path)
            bed = np.tile(bed, len(clean) // max(1, len(bed)) + 1)[: len(clean)]
            for snr in snrs:
                gain = np.sqrt(np.mean(clean**2) / (np.mean(bed**2) + 1e-12) / 10 ** (snr / 10))
                probs, _ = _probabilities(model, clean + gain * bed, 16000)
                found[snr].append(np.array(model.labels_)[probs.argmax(axis=1)])
    lines = []
    for snr, parts in found.items():
        labels = np.concatenate(parts)
        shares = ", ".join(f"{k} {np.mean(labels == k):.1%}" for k in sorted(set(labels)))
        lines.append(f"{snr:g} dB SNR, {len(parts)} held-out speech clips: {shares}")
    return lines


def _source(group: str) -> str:
    """Coarse origin of a group: Debian package or repository / corpus name."""
    parts = group.split(":")
    return ":".join(parts[:2]) if parts[0] == "deb" else parts[0]


def leave_one_source_out(template, data: TrainingData, extra_share, min_windows: int = 10) -> list[str]:
    """Every source (corpus repository, Debian package, speech repository) predicted by a model trained without it.

    A window made from several recordings (noisy or speech-over-music copy,
    synthetic mixture) is left out of training when any of its recordings
    comes from the held-out source. Scored: the source's own windows, no copies.
    """
    main, extra = data.main, data.extra

    own = np.array([_source(source_groups(g)[0]) for g in main.groups]
                   + ([] if extra is None else [_source(source_groups(g)[0]) for g in extra.groups]))
    scored = np.concatenate([~main.augmented] + ([] if extra is None else [~extra.augmented]))
    X = main.X if extra is None else np.concatenate([main.X, extra.X])
    y = main.y if extra is None else np.concatenate([main.y, extra.y])
    recordings = {r for ds in (main, data.mixtures) if ds is not None for g in set(ds.groups) for r in source_groups(g)}
    predicted = np.empty(len(y), dtype=object)
    counts = {s: int(np.sum(scored & (own == s))) for s in set(own)}
    for source in sorted(s for s, n in counts.items() if n >= min_windows):
        # Main and mixture windows involving the source are banned by group; extra windows filtered here.
        held_out = frozenset(r for r in recordings if _source(r) == source)
        keep_extra = None
        if extra is not None:
            keep_extra = extra.subset(np.array([all(_source(r) != source for r in source_groups(g))
                                                for g in extra.groups], dtype=bool))
        model = dataclasses.replace(data, extra=keep_extra).fit(template, extra_share=extra_share, held_out=held_out)
        rows = np.flatnonzero(scored & (own == source))
        predicted[rows] = model.predict(X[rows])
    done = scored & (predicted != None)  # noqa: E711 - object array
    yt, yp, src = y[done], predicted[done].astype(str), own[done]
    report = CVReport.from_predictions(yt, yp, n_splits=len(set(src)), n_groups=len(set(src)))
    per_source = {s: float(np.mean(yp[src == s] == yt[src == s])) for s in sorted(set(src))}
    recalls = {k: m["recall"] for k, m in report.per_class().items()}
    worst = min(recalls.values())
    lines = [f"{len(per_source)} sources ({sum(1 for n in counts.values() if n < min_windows)} with fewer than "
             f"{min_windows} windows not held out), {len(yt)} windows: accuracy {report.accuracy:.1%}, macro-F1 "
             f"{report.macro_f1:.3f}, mean per source {np.mean(list(per_source.values())):.1%}; recall "
             + ", ".join(f"{k} {m['recall']:.1%} of {m['support']}" for k, m in report.per_class().items()),
             f"target: accuracy >= 95% {'MET' if report.accuracy >= 0.95 else 'NOT MET'}, no class below 93% "
             f"{'MET' if worst >= 0.93 else 'NOT MET'} (lowest {worst:.1%})",
             "confusion (rows true, columns predicted):", *report.format().split("\n")[2:2 + len(recalls) + 1],
             "worst sources:"]
    for s in sorted(per_source, key=per_source.get)[:8]:
        mask = src == s
        wrong = yp[mask][yp[mask] != yt[mask]]
        called = ", ".join(f"{t} as {k} {np.mean((yp[mask] == k) & (yt[mask] == t)):.0%}"
                           for t in sorted(set(yt[mask])) for k in sorted(set(wrong)) if k != t
                           and np.any((yp[mask] == k) & (yt[mask] == t)))
        lines.append(f"  {s} ({_classes(yt[mask])}, {mask.sum()} windows): {per_source[s]:.1%}"
                     + (f" (wrong: {called})" if called else ""))
    lines.append("all sources:")
    for s in per_source:
        mask = src == s
        lines.append(f"  {s} ({_classes(yt[mask])}, {mask.sum()} windows): {per_source[s]:.1%}")
    return lines


def _classes(labels: np.ndarray) -> str:
    return "/".join(sorted(set(labels)))


def _load16(path: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    return soxr.resample(mono, sr, 16000) if sr != 16000 else mono


def _routed_share(model, audio: np.ndarray, label: str) -> tuple[float, float]:
    """Share of time the routed segments give ``label``, and the duration."""
    probs, feats = _probabilities(model, audio, 16000)
    duration = len(audio) / 16000
    segments = segments_from_probabilities(probs, model.labels_, feats.start_s, feats.end_s, duration_s=duration)
    hit = sum(min(s.end_s, duration) - s.start_s for s in segments if s.label == label)
    return hit / duration, duration


def speech_over_music_mixtures(corpus: Path, folds, data: TrainingData,
                               ratios_db=(-5.0, 0.0, 5.0, 10.0)) -> list[str]:
    """Held-out speech over held-out music at several speech-to-music ratios; held-out singing alone."""
    files = [f for f in load_labelled_files(corpus) if f.group not in data.excluded_groups]
    rng = np.random.default_rng(1)
    found = {r: [0.0, 0.0] for r in ratios_db}
    singing = [0.0, 0.0]
    for model, held_out in folds:
        speech = [f for f in files if f.group in held_out and f.label == "speech"]
        music = [f for f in files if f.group in held_out and f.label == "music"]
        for item in music:
            if "Lets_Go_Fishin" in str(item.path):  # the corpus' sung song (librosa's Karissa Hobbs)
                share, duration = _routed_share(model, _load16(item.path), "music")
                singing[0] += share * duration
                singing[1] += duration
        if not music:
            continue
        for item in speech[:12]:
            voice = _load16(item.path)
            bed = _load16(music[rng.integers(len(music))].path)
            bed = np.tile(bed, len(voice) // max(1, len(bed)) + 1)[: len(voice)]
            for ratio in ratios_db:
                gain = np.sqrt(np.mean(voice**2) / (np.mean(bed**2) + 1e-12) / 10 ** (ratio / 10))
                mix = voice + gain * bed
                mix = mix / max(1.0, float(np.max(np.abs(mix))))
                share, duration = _routed_share(model, mix, "speech")
                found[ratio][0] += share * duration
                found[ratio][1] += duration
    lines = []
    total = [sum(v[0] for v in found.values()), sum(v[1] for v in found.values())]
    for ratio, (hit, duration) in found.items():
        lines.append(f"speech {ratio:+g} dB over music: {hit / duration:6.1%} of {duration:.0f} s routed to speech")
    overall = total[0] / total[1]
    lines.append(f"all ratios: {overall:.1%} of time routed to speech (target >= 95% "
                 f"{'MET' if overall >= 0.95 else 'NOT MET'})")
    if singing[1]:
        lines.append(f"singing (Karissa Hobbs, 'Let's Go Fishin'', held out): {singing[0] / singing[1]:.1%} of "
                     f"{singing[1]:.0f} s routed to music")
    return lines


def silero_side_by_side(corpus: Path, folds, data: TrainingData, shipped) -> list[str]:
    """Speech / non-speech per 1 s window: held-out fold models vs silero-vad (ONNX, one thread), same windows."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    torch.set_num_threads(1)
    vad = load_silero_vad(onnx=True)  # onnxruntime, one intra-op thread (silero's own setting)
    files = [f for f in load_labelled_files(corpus) if f.group not in data.excluded_groups]
    model_of = {g: m for m, held_out in folds for g in held_out}
    ours = {k: [0, 0] for k in ("speech", "music", "ambient")}
    theirs = {k: [0, 0] for k in ours}
    vad_time = ours_time = audio_s = 0.0
    for item in files:
        if item.label not in ours or item.group not in model_of:
            continue
        audio = _load16(item.path)
        audio_s += len(audio) / 16000
        begin = time.perf_counter()
        feats = window_features(audio, sample_rate_hz=16000, config=shipped.config_)
        probs = model_of[item.group].window_probabilities(feats)
        ours_time += time.perf_counter() - begin
        begin = time.perf_counter()
        stamps = get_speech_timestamps(torch.from_numpy(audio), vad, sampling_rate=16000, return_seconds=True)
        vad_time += time.perf_counter() - begin
        labels = np.array(model_of[item.group].labels_)[probs.argmax(axis=1)]
        audible = feats.level_dbfs >= shipped.silence_dbfs
        for start, end, label, keep in zip(feats.start_s, feats.end_s, labels, audible):
            if not keep:
                continue
            overlap = sum(max(0.0, min(end, s["end"]) - max(start, s["start"])) for s in stamps)
            vad_speech = overlap >= 0.5 * (end - start)
            truth = item.label == "speech"
            ours[item.label][0] += int((label == "speech") == truth)
            ours[item.label][1] += 1
            theirs[item.label][0] += int(vad_speech == truth)
            theirs[item.label][1] += 1
    acc = {name: sum(v[0] for v in d.values()) / sum(v[1] for v in d.values()) for name, d in
           (("ours", ours), ("silero", theirs))}
    lines = [f"{sum(v[1] for v in ours.values())} audible 1 s windows (hop 0.5 s) of {audio_s:.0f} s of corpus clips; "
             "ours: the grouped-CV fold model that never saw the clip's recording (speech vs music/ambient/silence);",
             "silero-vad 6 (PyPI silero-vad, ONNX model, onnxruntime; get_speech_timestamps defaults): a window is "
             "speech when at least half of it lies in a speech timestamp",
             f"{'class':10s} {'windows':>8s} {'ours':>8s} {'silero':>8s}"]
    for k in ours:
        lines.append(f"{k:10s} {ours[k][1]:8d} {ours[k][0] / max(1, ours[k][1]):8.1%} "
                     f"{theirs[k][0] / max(1, theirs[k][1]):8.1%}")
    lines.append(f"{'all':10s} {sum(v[1] for v in ours.values()):8d} {acc['ours']:8.1%} {acc['silero']:8.1%}")
    lines.append(f"target: ours above silero {'MET' if acc['ours'] > acc['silero'] else 'NOT MET'}")
    lines.append(f"speed, one thread, 16 kHz clips in memory: ours (features + inference) {audio_s / ours_time:.0f}x "
                 f"real time, silero-vad {audio_s / vad_time:.0f}x real time")
    return lines


_CARD_NOTES = """\
## Sources and licences

Never the same recording in training and test: the corpus is cross-validated by recording group, every extra
source is training-only, and the leave-one-source-out benchmark holds out whole sources (a repository, a Debian
package). Nothing fetched is stored in the repository.

| source | classes | licence |
|---|---|---|
| `../shared/corpus`: resemble-ai/Resemblyzer (LibriSpeech) | speech | LibriSpeech CC BY 4.0 (repo Apache-2.0) |
| `../shared/corpus`: openai/whisper `jfk.flac`, snakers4/silero-vad examples | speech | public domain recording; repo MIT |
| `../shared/corpus`: librosa/data | music, ambient, speech | CC BY 4.0 / CC BY 3.0 / CC0 per file; two items CC BY-NC 3.0/4.0 (`pibble`, `Choice`; corpus only, trained on as in v3) |
| `../shared/corpus`: remvze/moodist | ambient | CC0 or Pixabay Content License |
| `../shared/corpus`: Debian hyperrogue-music, asc-music | music | CC BY-SA 3.0/4.0 or GPL-2+; GPL-2+ |
| `../shared/train-pool` speech (GitHub test audio: pocketsphinx, sphinx4, faster-whisper, vosk, wenet, lyra, joinly, pyannote, whisper-timestamped, EmoDB via voice-emotion-analysis, fdeloche, Real-Time-Voice-Cloning, speech_recognition) | speech | per repository (MIT, Apache-2.0, BSD, AGPL-3.0 test audio, LibriSpeech CC BY 4.0, EmoDB research distribution, Common Voice CC0); its `manifest.csv` |
| Debian asterisk-core-sounds-en/es/fr/it/ru-wav | speech (5 languages) | CC-BY-SA-3.0 / CC-BY-3.0 |
| Debian tuxpaint-stamps-default | speech (13 languages), ambient | GPL-2 |
| Debian ktuberling-data | speech (23 languages, words) | GPL-2+ / CC0 / CC-BY per file |
| Debian hedgewars-data | music, speech (voice packs) | GPL-2 / GFDL-1.3 / CC-BY-SA-3.0 per file |
| Debian fillets-ng-data | music, speech (dialogues) | GPL-2+ |
| Debian warzone2100-music, wesnoth-1.16-music, nexuiz-music, colobot-common-sounds | music | GPL-2+ / CC-BY-SA-3.0 / CC0; GPL-2; GPL-2+; GPL-3+ |
| Debian asterisk-moh-opsound-wav | music (8 kHz) | CC-BY-SA-3.0 |
| Debian widelands-data, lincity-ng-data, scorched3d-data, lugaru-data, etw-data | ambient, music | GPL-2+ with CC-BY-SA-3.0/4.0 / public domain per file |
| Debian fretsonfire-songs-muldjord, fretsonfire-songs-sectoid (`tools/fetch_songs.py`) | music (rock/metal) | CC BY-SA 3.0; MIT-style |
| Debian supertuxkart-data music (38 tracks, many artists; new in v4) | music (electronic, pop, rock, orchestral) | CC-BY-SA-3.0 / 4.0 / CC-BY-3.0 / CC0 per track |
| Debian megaglest-data tileset ambience and faction music (new in v4) | ambient (forest, rain, wind, animals), music | CC-BY-SA-3.0 |

## Recipe (reproduce)

```
python tools/fetch_classifier_audio.py /work/data/classifier     # train-pool, songs, more (Debian; ~2.4 GB)
adaptive-codec train classifier --data ../shared/corpus --extra ../shared/train-pool \\
    --extra /work/data/classifier/train-pool --extra /work/data/classifier/songs \\
    --extra /work/data/classifier/more \\
    --max-files-per-label 700 --extra-share 0.25 --extra-balance group \\
    --noisy-speech --mixtures 400 --augment 1 --speech-over-music \\
    --out classifiers/content-v4.safetensors --card classifiers/README.md \\
    --cache-dir /work/data/classifier/features --force
python benchmarks/classifier.py --cache-dir /work/data/classifier/features \\
    --out benchmarks/results/classifier.txt --silero-out benchmarks/results/classifier_silero_vad.txt \\
    --update-card classifiers/README.md
```

## What changed from content-v3, and why

- Labels: the corpus' `pibble` clips (librosa's dog howl) are now labelled ambient; nothing is excluded from
  training any more (`--train-exclude` unused).
- Degraded copies (`--augment 1`): every file once more through a seeded chain of two or three of level,
  EQ tilt, noise, reverb, low-pass 4/8/11 kHz, Opus 8-24 kbps or MP3 32-64 kbps, telephone band
  (`adaptive_codec/train/classifier_augment.py`), besides the 8 kHz copy, so that what archives do to a recording
  is not a class cue.
- Speech over music (`--speech-over-music`): every speech file of the corpus, and 600 from the extra sources, mixed
  over a random music file at -5 to +10 dB and labelled speech.
- Two more Debian sources for the music / ambient border: SuperTuxKart's music (electronic, pop, rock tracks by
  many artists) and MegaGlest's nature ambience.
- Calibration: one temperature fitted on the fold models' out-of-fold probabilities (artifact format 2).
- Model: the same features and logistic regression (C=0.01). A small CNN on log-mel was not tried in this round
  (no time on the shared 2-core machine); the linear model keeps the artifact at 24 KiB.

Each change was not measured alone (one training run for v4; the benchmark below is that run). The leave-one-source-out
section is new, so there is no v3 number under the same protocol.

## Known weaknesses

- The held-out `pibble` dog howl is called speech (mixed_03 and mixed_06 lose 7.5 s each): a long pitched howl looks
  like voiced speech to these features, and no other recording in the data is like it.
- Speech 5 dB under a music bed is routed to speech only about 70 % of the time; at 0 dB about 93 %.
- See the worst sources of the leave-one-source-out section below: whole sources of game music or ambience the
  model has not heard are where it fails, as in v3.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--classifier", type=Path, default=REPO / "classifiers" / DEFAULT_ARTIFACT)
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "classifier-features")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--silero-out", type=Path, metavar="FILE",
                        help="also compare speech / non-speech with silero-vad (pip install silero-vad) into FILE")
    parser.add_argument("--update-card", type=Path, metavar="CARD",
                        help="rewrite this model card (classifiers/README.md) with the report appended")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there; see --corpus)", file=sys.stderr)
        return 2

    if args.silero_out:
        try:
            import onnxruntime  # noqa: F401
            import silero_vad  # noqa: F401
        except ImportError as exc:
            print(f"error: --silero-out needs silero-vad and onnxruntime ({exc}); pip install "
                  "'adaptive-codec[bench]'", file=sys.stderr)
            return 2

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    try:
        shipped = ContentClassifier.load(args.classifier)
    except AdaptiveCodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = ContentClassifier.read_metadata(args.classifier)
    training = meta.get("training", {})
    recipe = TrainingRecipe.from_summary(training)
    template = ContentClassifier(**shipped.get_params())
    extra = tuple(e["source"] for e in training.get("extra", []))
    missing = [source for source in extra if not Path(source).exists()]
    if missing:
        # The artifact names the extra folders it was trained on; a fresh machine fetches them first.
        print(f"error: training data not found: {', '.join(missing)} (the artifact's training sources: "
              "tools/fetch_classifier_audio.py)", file=sys.stderr)
        return 2
    say(f"# Content classifier benchmark: {args.classifier.name}")
    say(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"threads=1; load average {os.getloadavg()[0]:.1f} at start (the machine is shared); corpus: {args.corpus}; "
        f"git {_git_revision()}")
    say(f"model: {shipped.model}, params {meta['params']}")
    say(f"training sources: {args.corpus} (cross-validated) + {list(extra) or 'nothing else'} (training only)")
    say(f"recipe: {recipe.to_dict()}")
    say()

    start = time.perf_counter()
    data = prepare_training_data(args.corpus, extra=extra, recipe=recipe, config=shipped.config_,
                                 silence_dbfs=shipped.silence_dbfs, cache_dir=args.cache_dir)
    folds = []
    report, predicted = grouped_cv(template, data, extra_share=recipe.extra_share,
                                   on_fold=lambda model, held_out: folds.append((model, held_out)))
    say("## Grouped cross-validation (window level, corpus recordings held out)")
    say(report.format())
    say(f"target: accuracy >= 0.97 {'MET' if report.accuracy >= 0.97 else 'NOT MET'}, "
        f"macro-F1 >= 0.96 {'MET' if report.macro_f1 >= 0.96 else 'NOT MET'}")
    if data.excluded_groups:
        main = data.main
        kept = ~main.augmented & ~np.isin(main.groups, list(data.excluded_groups))
        without = CVReport.from_predictions(main.y[kept], predicted[kept], n_splits=report.n_splits,
                                            n_groups=len(set(main.groups[kept])))
        say(f"without the never-trained-on {', '.join(sorted(data.excluded_groups))} "
            f"({int((~main.augmented).sum() - kept.sum())} windows): accuracy {without.accuracy:.4f}, "
            f"macro-F1 {without.macro_f1:.4f} "
            f"({'MET' if without.accuracy >= 0.97 and without.macro_f1 >= 0.96 else 'NOT MET'})")
    say()

    group_of_path = {str(f.path.relative_to(args.corpus)): f.group for f in load_labelled_files(args.corpus)}
    in_test_files = {group_of_path[c] for _, clips in _mixed_rows(args.corpus) for c in clips if c in group_of_path}
    say("## Routing on synthetic mixtures (choice of switch penalty and minimum segment length)")
    for line in synthetic_routing(args.corpus, folds, data, in_test_files):
        say(line)
    say()

    routing = RoutingConfig()
    say("## Mixed files (model trained without the recordings each file is made of)")
    say(f"routing: switch_penalty={routing.switch_penalty}, min_segment_s={routing.min_segment_s}, "
        f"max_pause_s={routing.max_pause_s}")
    for line in mixed_files(args.corpus, template, data, recipe.extra_share, routing):
        say(line)
    say()

    say("## Speech in background sound (held-out speech + held-out ambient clips, each fold's model)")
    for line in speech_in_noise(args.corpus, folds, data):
        say(line)
    say()

    say("## Speech over music, singing (held-out clips, each fold's model, routed)")
    for line in speech_over_music_mixtures(args.corpus, folds, data):
        say(line)
    say()

    say("## Leave one source out (each source held out in turn, corpus and extra sources)")
    for line in leave_one_source_out(template, data, recipe.extra_share):
        say(line)
    say()

    if args.silero_out:
        vad_lines = [f"# Speech / non-speech: {args.classifier.name} vs silero-vad, same windows",
                     f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
                     f"threads=1; load average {os.getloadavg()[0]:.1f} (shared machine); git {_git_revision()}"]
        vad_lines += silero_side_by_side(args.corpus, folds, data, shipped)
        for line in vad_lines:
            print(line, flush=True)
        args.silero_out.parent.mkdir(parents=True, exist_ok=True)
        args.silero_out.write_text("\n".join(vad_lines) + "\n", encoding="utf-8")
        say(f"(silero-vad side by side written to {args.silero_out})")
        say()

    say("## Speed, size, load time (shipped artifact)")
    synthetic = measure_speed(shipped, seconds=60.0, sample_rate_hz=44100)
    mixed_paths = [args.corpus / name for name, _ in _mixed_rows(args.corpus)]
    begin = time.perf_counter()
    audio_s = sum(classify_file(path, shipped)[-1].end_s for path in mixed_paths)
    real = audio_s / (time.perf_counter() - begin)
    say(f"features + inference, 60 s of 44.1 kHz audio in memory: {synthetic:.0f}x real time (one thread)")
    say(f"decode + features + inference + routing, the {len(mixed_paths)} mixed FLAC files ({audio_s:.0f} s, 16 kHz): "
        f"{real:.0f}x real time")
    say(f"target >= 500x: {'MET' if synthetic >= 500 else 'NOT MET'}")
    size = args.classifier.stat().st_size
    loads = []
    for _ in range(5):
        begin = time.perf_counter()
        ContentClassifier.load(args.classifier)
        loads.append(time.perf_counter() - begin)
    say(f"artifact: {size / 1024:.1f} KiB (target <= 2048 KiB {'MET' if size <= 2 * 1024 * 1024 else 'NOT MET'}), "
        f"load {np.median(loads) * 1000:.1f} ms (target < 1 s {'MET' if np.median(loads) < 1 else 'NOT MET'})")
    say(f"benchmark wall time: {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, args.out)
    if args.update_card:
        from adaptive_codec.train.classifier import write_card

        section = (_CARD_NOTES + "\n## Benchmark (`benchmarks/classifier.py`)\n\n"
                   "Grouped CV, routing, mixed files, held-out sources, speed and load time as measured:\n\n```\n"
                   + "\n".join(lines) + "\n```\n")
        write_card(args.update_card, shipped, args.classifier, training, speed_x_realtime=synthetic,
                   extra_sections=section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
