"""Benchmark of the content classifier on the developers' corpus.

Prints (and with ``--out`` writes):

* grouped cross-validation on window level (no recording in both train and
  test): accuracy, macro-F1, confusion matrix, per-class precision/recall/F1;
* the corpus' mixed files: share of time labelled correctly and median
  boundary error, each file classified by a model trained WITHOUT the
  recordings it was made from (held out by group, like the CV);
* features + inference speed as a multiple of real time on one core;
* artifact size and load time.

The estimator parameters and the training sources are read from the
artifact's own metadata, so the numbers describe the shipped recipe.

Usage (from the repository root)::

    python benchmarks/classifier.py --out benchmarks/results/classifier.txt
"""

from __future__ import annotations

import os

# One core, as the target says; must be set before numpy is imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from adaptive_codec.classifier import DEFAULT_ARTIFACT, ContentClassifier  # noqa: E402
from adaptive_codec.profiles import ProfileRegistry  # noqa: E402
from adaptive_codec.routing import RoutingConfig, classify_file  # noqa: E402
from adaptive_codec.train.classifier import (  # noqa: E402
    Dataset,
    build_dataset,
    grouped_cv,
    load_labelled_files,
    measure_speed,
    prepare_training_data,
)


def _reference(path: Path) -> list[tuple[float, float, str]]:
    with open(path, newline="") as f:
        return [(float(r["start_s"]), float(r["end_s"]), r["label"]) for r in csv.DictReader(f)]


def _label_grid(segments, grid: np.ndarray) -> np.ndarray:
    labels = np.empty(len(grid), dtype=object)
    for start, end, label in segments:
        labels[(grid >= start) & (grid < end)] = label
    labels[grid >= segments[-1][1]] = segments[-1][2]
    return labels


def mixed_file_scores(corpus: Path, template: ContentClassifier, data, config: RoutingConfig):
    """Per mixed file: (name, time accuracy, boundary errors, segments)."""
    from sklearn.base import clone

    group_of_path = {str(f.path.relative_to(corpus)): f.group for f in load_labelled_files(corpus)}
    with open(corpus / "manifest.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] == "mixed"]
    results = []
    for row in rows:
        parts = row["source"].split(" of: ", 1)[1].split("; ")
        held_out = {group_of_path[p.strip()] for p in parts if p.strip() in group_of_path}
        train = data.main.subset(~np.isin(data.main.groups, list(held_out)))
        if data.extra is not None:
            train = Dataset.concatenate([train, data.extra])
        model = clone(template).fit(train.X, train.y)
        path = corpus / row["path"]
        predicted = [(s.start_s, s.end_s, s.label) for s in classify_file(path, model, config=config)]
        reference = _reference(path.with_name(path.stem + ".segments.csv"))
        grid = np.arange(0, reference[-1][1], 0.01)
        got, want = _label_grid(predicted, grid), _label_grid(reference, grid)
        accuracy = float(np.mean(got == want))
        # Routing view: the ambient profile serves both "ambient" and "silence",
        # so a quiet pause inside an ambient recording is routed correctly.
        served = ProfileRegistry.default().labels()
        routed = float(np.mean([served.get(a) == served.get(b) for a, b in zip(got, want)]))
        cuts = np.array([s[0] for s in predicted[1:]])
        errors = [float(np.min(np.abs(cuts - r[0]))) if len(cuts) else float(r[0]) for r in reference[1:]]
        results.append((row["path"], accuracy, errors, predicted, len(held_out), routed))
    return results


_CARD_NOTES = """\
## Recipe (reproduce)

```
adaptive-codec train classifier --data ../shared/corpus --out classifiers/content-v1.safetensors \\
    --card classifiers/README.md --cache-dir .cache/classifier-features --noisy-speech --force
python benchmarks/classifier.py --ood ../shared/train-pool --ood ~/.cache/adaptive-codec/train-pool \\
    --out benchmarks/results/classifier.txt --update-card classifiers/README.md
```

## Choices, measured

- Model: logistic regression with strong L2 (C=0.01; C=0.003-0.3 within 1 point). A one-hidden-layer
  MLP scored the same or lower under grouped CV (gradient boosting too, on an earlier feature set) and
  costs more; a linear model is also the least likely to learn single recordings.
- Training data: the corpus only (plus its 8 kHz and noisy-speech copies). Adding the train-pool (Debian game audio,
  GitHub speech) lowered grouped CV on the corpus by 1-1.5 points and, trained on corpus + Debian,
  the held-out GitHub speech fell from 93 % to 87 %; the pools are therefore used as out-of-domain
  tests below instead.
- Band limit 7 kHz and 8 kHz training copies: without them the model learned "16 kHz source =
  speech" (most corpus speech is 16 kHz, music/ambient 44.1 kHz) and called a 16 kHz traffic
  recording speech.
- Speech mixed into ambient recordings (5-20 dB SNR) as extra training: out-of-domain speech with
  ambient noise at 10 dB SNR went from 78 % to 90 % called speech (5 dB: 53 % -> 85 %), the Debian
  pool from 79.0 % to 80.3 % and the GitHub speech from 92.9 % to 93.8 %, at a cost on the corpus:
  grouped CV 95.7 % -> 95.1 %, mixed files 88.1 % -> 86.4 % of time. Shipped with it, because
  real recordings are rarely clean and the classifier is judged on recordings it has not heard.
- Temporal context +-2 windows: grouped CV 92.8 % -> 95.5 %; +-4 windows scored 96.0 % but blurred
  boundaries in the mixed files (median error 0.94 s), +-1 window 94.4 %.

## Known weaknesses

- Songs with vocals (e.g. `pibble`) are heard as speech; ticking clocks, typing and crows as
  speech or music; music remote from the corpus' game/classical soundtracks (Debian game metal,
  8 kHz music-on-hold) is recognised only ~79 % of the time.
- Targets not reached: window accuracy >= 97 % / macro-F1 >= 0.96 and >= 95 % of mixed-file time
  (see the numbers below).
"""


def _speech_in_noise(classifier: ContentClassifier, sources: list[Path], snr_db: float) -> str:
    """Share of windows still called speech when OOD speech gets OOD ambient noise at ``snr_db``."""
    import soundfile as sf
    import soxr

    from adaptive_codec.features import window_features

    files = [f for source in sources for f in load_labelled_files(source)]
    speech = [f for f in files if f.label == "speech"][::6][:60]
    noise = [f for f in files if f.label == "ambient" and sf.info(str(f.path)).duration > 5][:60]
    if not speech or not noise:
        return f"{snr_db:g} dB SNR: skipped (needs speech and ambient files in --ood)"
    rng = np.random.default_rng(0)

    def load(path):
        audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return soxr.resample(audio.mean(axis=1), sr, 16000)

    labels = []
    for item in speech:
        clean, bed = load(item.path), load(noise[rng.integers(len(noise))].path)
        bed = np.tile(bed, len(clean) // max(1, len(bed)) + 1)[: len(clean)]
        gain = np.sqrt(np.mean(clean**2) / (np.mean(bed**2) + 1e-12) / 10 ** (snr_db / 10))
        feats = window_features(clean + gain * bed, sample_rate_hz=16000, config=classifier.config_)
        labels.append(np.array(classifier.labels_)[classifier.window_probabilities(feats).argmax(axis=1)])
    labels = np.concatenate(labels)
    shares = ", ".join(f"{k} {np.mean(labels == k):.1%}" for k in classifier.labels_ if np.any(labels == k))
    return f"{snr_db:g} dB SNR, {len(speech)} speech files: {shares}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--classifier", type=Path, default=REPO / "classifiers" / DEFAULT_ARTIFACT)
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache" / "classifier-features")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--ood", type=Path, action="append", default=[], metavar="DIR",
                        help="labelled data the shipped model never saw (repeatable): out-of-domain check")
    parser.add_argument("--ood-files-per-label", type=int, default=300)
    parser.add_argument("--switch-penalty", type=float, default=RoutingConfig.switch_penalty)
    parser.add_argument("--min-segment", type=float, default=RoutingConfig.min_segment_s)
    parser.add_argument("--update-card", type=Path, metavar="CARD",
                        help="rewrite this model card (classifiers/README.md) with the report appended")
    args = parser.parse_args(argv)

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    shipped = ContentClassifier.load(args.classifier)
    meta = ContentClassifier.read_metadata(args.classifier)
    training = meta.get("training", {})
    template = ContentClassifier(**{k: v for k, v in shipped.get_params().items()})
    extra = tuple(e["source"] for e in training.get("extra", []))
    say(f"# Content classifier benchmark: {args.classifier.name}")
    say(f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"threads=1; load average {os.getloadavg()[0]:.1f} at start (the machine is shared); corpus: {args.corpus}")
    say(f"model: {shipped.model}, params {meta['params']}")
    say(f"training sources: {args.corpus} (cross-validated) + {list(extra) or 'nothing else'} (training only)")
    say()

    start = time.perf_counter()
    data = prepare_training_data(
        args.corpus, extra=extra, config=shipped.config_, silence_dbfs=shipped.silence_dbfs,
        max_seconds_per_file=training.get("max_seconds_per_file", 30.0),
        max_files_per_label=training.get("max_files_per_label"), narrowband=training.get("narrowband", False),
        noisy_speech=training.get("noisy_speech", False),
        cache_dir=args.cache_dir,
    )
    report, _ = grouped_cv(template, data.main, extra=data.extra)
    say("## Grouped cross-validation (window level, corpus recordings held out)")
    say(report.format())
    say(f"target: accuracy >= 0.97 {'MET' if report.accuracy >= 0.97 else 'NOT MET'}, "
        f"macro-F1 >= 0.96 {'MET' if report.macro_f1 >= 0.96 else 'NOT MET'}")
    say()

    say("## Mixed files (model trained without the recordings each file is made of)")
    routing = RoutingConfig(switch_penalty=args.switch_penalty, min_segment_s=args.min_segment)
    say(f"routing: switch_penalty={routing.switch_penalty}, min_segment_s={routing.min_segment_s}")
    scored = mixed_file_scores(args.corpus, template, data, routing)
    total_time, correct_time, routed_time, all_errors = 0.0, 0.0, 0.0, []
    for name, accuracy, errors, predicted, n_held, routed in scored:
        duration = predicted[-1][1]
        total_time += duration
        correct_time += accuracy * duration
        routed_time += routed * duration
        all_errors += errors
        say(f"{name}: {accuracy:6.1%} of time correct ({routed:6.1%} routed to the right profile), boundary errors "
            f"{', '.join(f'{e:.2f}' for e in errors)} s, {len(predicted)} segments ({n_held} recordings held out)")
    time_accuracy = correct_time / total_time
    median_error = float(np.median(all_errors))
    say(f"overall: {time_accuracy:.1%} of time labelled correctly (target >= 95% "
        f"{'MET' if time_accuracy >= 0.95 else 'NOT MET'}); {routed_time / total_time:.1%} of time routed to the right "
        f"profile (silence counts as ambient); median boundary error {median_error:.2f} s (target <= 0.5 s "
        f"{'MET' if median_error <= 0.5 else 'NOT MET'}), {len(all_errors)} boundaries")
    say()

    for ood in args.ood:
        say(f"## Out-of-domain check: shipped model on {ood} (never trained on)")
        files = load_labelled_files(ood, max_files_per_label=args.ood_files_per_label)
        ds = build_dataset(files, config=shipped.config_, max_seconds_per_file=30.0, cache_dir=args.cache_dir)
        ds = ds.subset(ds.level_dbfs >= shipped.silence_dbfs)
        predicted = shipped.predict(ds.X)
        per_class = ", ".join(f"{label} {np.mean(predicted[ds.y == label] == label):.1%} of {np.sum(ds.y == label)}"
                              for label in sorted(set(ds.y)))
        say(f"{len(files)} files: window accuracy {np.mean(predicted == ds.y):.1%} (recall: {per_class})")
        say()

    if args.ood:
        say("## Speech in background sound (out-of-domain files: speech mixed with ambient)")
        for snr in (20.0, 10.0, 5.0):
            say(_speech_in_noise(shipped, args.ood, snr))
        say()

    say("## Speed, size, load time (shipped artifact)")
    synthetic = measure_speed(shipped, seconds=60.0, sample_rate_hz=44100)
    mixed_paths = [args.corpus / name for name, *_ in scored]
    audio_s = sum(r[3][-1][1] for r in scored)
    begin = time.perf_counter()
    for path in mixed_paths:
        classify_file(path, shipped)
    real = audio_s / (time.perf_counter() - begin)
    say(f"features + inference, 60 s of 44.1 kHz audio in memory: {synthetic:.0f}x real time (one thread)")
    say(f"decode + features + inference + routing, the {len(mixed_paths)} mixed FLAC files ({audio_s:.0f} s, 16 kHz): "
        f"{real:.0f}x real time")
    say(f"target >= 200x: {'MET' if synthetic >= 200 else 'NOT MET'}")
    size = args.classifier.stat().st_size
    loads = []
    for _ in range(5):
        begin = time.perf_counter()
        ContentClassifier.load(args.classifier)
        loads.append(time.perf_counter() - begin)
    say(f"artifact: {size / 1024:.1f} KiB (target <= 2048 KiB {'MET' if size <= 2 * 1024 * 1024 else 'NOT MET'}), "
        f"load {np.median(loads) * 1000:.1f} ms (target < 1 s {'MET' if np.median(loads) < 1 else 'NOT MET'})")
    say(f"benchmark wall time: {time.perf_counter() - start:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.update_card:
        from adaptive_codec.train.classifier import write_card

        section = (_CARD_NOTES + "\n## Benchmark (`benchmarks/classifier.py`)\n\n"
                   "Grouped CV, mixed files, out-of-domain check, speed and load time as measured:\n\n```\n"
                   + "\n".join(lines) + "\n```\n")
        write_card(args.update_card, shipped, args.classifier, training, speed_x_realtime=synthetic,
                   extra_sections=section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
