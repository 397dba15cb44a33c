"""Bits per class in auto mode: choose the profiles' bitrates on training clips.

In auto mode each routed segment is coded at its profile's own bitrate
(times ``--bitrate-scale``; the benchmark's relative ladder scales them by
rung / 6 kbps). The shipped profiles give speech and music 6 kbps and
ambient 3 kbps. This script asks whether another split of the bits between
the classes buys more quality for the same mean bitrate, and fixes its
decision rule before it sees any number:

1. per class, the class's built-in profile at every RVQ depth 1..16, coded
   through the whole codec (``AdaptiveCodec.encode`` / ``decode``: real
   bytes, speech's energy-adaptive depth map included) on the first
   ``--seconds`` of each clip, read as mono at the codec's 24 kHz: mean
   actual kbps and mean ViSQOL v3 (audio mode) per depth;
2. a candidate allocation keeps speech at its 6 kbps and gives music and
   ambient bitrates from a grid; at each rung of the benchmark's ladder
   (1.5 / 3 / 6 / 12 kbps, relative: profile bitrate x rung / 6) it maps each
   class to a depth (``AdaptiveCodec.depth_for``, the encoder's own mapping),
   and a recording with the three classes in equal time then has the classes'
   mean kbps and mean ViSQOL: a predicted rate-quality curve;
3. each candidate's BD-rate (ViSQOL, PCHIP, as in ``adaptive-codec bench``)
   against the shipped allocation's predicted curve, on the **training**
   split (selection) and on the **held-out** split (check);
4. **the rule**: the candidate with the lowest training-split BD-rate is
   chosen if that BD-rate is at most ``--min-gain`` (-3 %) *and* its held-out
   BD-rate is negative too; otherwise the shipped allocation stays.

The corpus' mixed files are cut from its clips, so some clips of both splits
are parts of them; ``--exclude-mixed-parts`` leaves those out (a check that
the choice does not rest on the audio the mixed-file benchmark scores).

The prediction treats a mixed recording's ViSQOL as the time-weighted mean
of its parts' and ignores the cost of segment boundaries; the benchmark on
the corpus' mixed files measures the real thing afterwards.

Usage (from the repository root; ~25 minutes on one core)::

    python benchmarks/class_allocation.py --corpus ../shared/corpus > benchmarks/results/class_allocation.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.profiles import BUILTIN_CLASSES  # noqa: E402
from adaptive_codec.threads import pin_threads  # noqa: E402

CLASSES = BUILTIN_CLASSES
RUNGS_KBPS = (1.5, 3.0, 6.0, 12.0)
REFERENCE_KBPS = 6.0  # the rung at which each profile runs at its own bitrate
MUSIC_GRID = (3.0, 4.0, 4.5, 5.0, 6.0, 7.5, 9.0)
AMBIENT_GRID = (1.5, 2.0, 2.5, 3.0, 4.0, 4.5, 6.0)


@dataclasses.dataclass(frozen=True)
class DepthTable:
    """Mean actual kbps and mean ViSQOL of one class's profile at depths 1..n."""

    kbps: tuple[float, ...]
    visqol: tuple[float, ...]
    clips: int

    def at(self, depth: int) -> tuple[float, float]:
        return self.kbps[depth - 1], self.visqol[depth - 1]


def mixture_curve(tables: dict[str, DepthTable], depths: list[dict[str, int]],
                  weights: dict[str, float] | None = None) -> tuple[list[float], list[float]]:
    """Predicted (kbps, ViSQOL) per rung of a recording mixing the classes.

    Parameters
    ----------
    tables : dict
        Per class, its :class:`DepthTable`.
    depths : list of dict
        Per rung, the depth each class is coded at.
    weights : dict, optional
        Time share of each class (normalised; default equal).

    Returns
    -------
    rates, qualities : list of float
        The share-weighted means of the classes' kbps and ViSQOL per rung.
    """
    labels = sorted(tables)
    w = np.array([1.0 if weights is None else float(weights[c]) for c in labels])
    if not np.all(w >= 0) or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    w = w / w.sum()
    rates, quals = [], []
    for rung in depths:
        points = np.array([tables[c].at(rung[c]) for c in labels])
        rates.append(float(w @ points[:, 0]))
        quals.append(float(w @ points[:, 1]))
    return rates, quals


def choose(train_bd: dict, test_bd: dict, shipped, min_gain: float):
    """The rule of step 4: (chosen allocation, reason).

    ``train_bd`` / ``test_bd`` map each candidate to its BD-rate (%) against
    ``shipped`` on the training / held-out split (NaN: n/a).
    """
    finite = {a: v for a, v in train_bd.items() if np.isfinite(v)}
    if not finite:
        return shipped, "no candidate has a training-split BD-rate"
    best = min(finite, key=lambda a: (finite[a], a != shipped))
    if best == shipped or finite[best] > min_gain:
        return shipped, f"best training-split BD-rate {finite[best]:+.1f} % is not <= {min_gain:+.1f} %"
    held = test_bd.get(best, np.nan)
    if not (np.isfinite(held) and held < 0):
        return shipped, f"training {finite[best]:+.1f} % but held-out {held:+.1f} % is not negative"
    return best, f"training {finite[best]:+.1f} %, held-out {test_bd[best]:+.1f} %"


def mixed_parts(corpus: Path) -> set[str]:
    """Corpus-relative paths of the clips the mixed files are cut from.

    Read from the manifest's ``source`` column of the ``mixed`` rows
    ("concatenation (...) of: speech/a.flac; music/b.flac; ...").
    """
    import pandas as pd

    manifest = pd.read_csv(corpus / "manifest.csv")
    parts: set[str] = set()
    for source in manifest.loc[manifest["label"] == "mixed", "source"].astype(str):
        if " of: " in source:
            parts.update(p.strip() for p in source.split(" of: ", 1)[1].split(";") if p.strip())
    return parts


def depth_table(codec, label: str, clips: list[Path], seconds: float) -> DepthTable:
    """Code ``clips`` with ``label``'s built-in profile at every depth; mean kbps and ViSQOL."""
    from adaptive_codec.bench.metrics import visqol
    from adaptive_codec.train.codec_data import read_mono

    sr = 24000
    base = codec.registry.get(label)
    n_levels = codec.backbone.config.n_levels
    kbps = np.zeros((len(clips), n_levels))
    qual = np.zeros_like(kbps)
    keep = []
    for i, path in enumerate(clips):
        x = read_mono(path, sr)[: int(seconds * sr)].astype(np.float32)
        if np.sqrt(np.mean(x**2)) < 1e-3:  # silent excerpt: nothing to measure
            continue
        keep.append(i)
        for d in range(1, n_levels + 1):
            profile = dataclasses.replace(base, bitrate_kbps=None, n_q=d)
            data = codec.encode(x, sr, profile=profile)
            y, _ = codec.decode(data)
            kbps[i, d - 1] = len(data) * 8 / (x.size / sr) / 1000
            qual[i, d - 1] = visqol(x, y, sr)
        print(f"    {label} {i + 1}/{len(clips)} {path.name}", file=sys.stderr, flush=True)
    return DepthTable(tuple(kbps[keep].mean(0)), tuple(qual[keep].mean(0)), len(keep))


def allocation_depths(codec, allocation: tuple[float, float, float]) -> list[dict[str, int]]:
    """Per rung, the depth of each class under ``allocation`` (speech, music, ambient kbps)."""
    out = []
    for rung in RUNGS_KBPS:
        depths = {}
        for label, kb in zip(CLASSES, allocation):
            profile = dataclasses.replace(codec.registry.get(label), bitrate_kbps=kb)
            depths[label] = codec.depth_for(profile, bitrate_scale=rung / REFERENCE_KBPS)
        out.append(depths)
    return out


def _bd_all(tables, candidates, depth_maps, shipped) -> dict:
    from adaptive_codec.bench.bd_rate import bd_rate_percent

    anchor = mixture_curve(tables, depth_maps[shipped])
    return {a: bd_rate_percent(*anchor, *mixture_curve(tables, depth_maps[a])) for a in candidates}


def _print_table(name: str, tables: dict[str, DepthTable]) -> None:
    print(f"\n## Per-depth means, {name} split (kbps / ViSQOL)")
    n = len(next(iter(tables.values())).kbps)
    print("depth | " + " | ".join(f"{c} ({tables[c].clips} clips)" for c in CLASSES))
    for d in range(1, n + 1):
        print(f"{d:5d} | " + " | ".join(f"{tables[c].kbps[d - 1]:5.2f} / {tables[c].visqol[d - 1]:.3f}"
                                        for c in CLASSES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--train-clips", type=int, default=12, help="training clips per class (selection)")
    parser.add_argument("--test-clips", type=int, default=12, help="held-out clips per class (0 = all)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-gain", type=float, default=-3.0,
                        help="training-split BD-rate (%%) a candidate must reach to be chosen")
    parser.add_argument("--exclude-mixed-parts", action="store_true",
                        help="leave out the clips the corpus' mixed files are cut from")
    parser.add_argument("--tables", type=Path, default=None,
                        help="JSON cache of the per-depth tables: read if it exists, else written")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.train.codec_data import sample_corpus_clips

    pin_threads(1)
    codec = AdaptiveCodec.default()
    weights_id = codec.weights_meta["weights_id"]
    print("# Bits per class in auto mode: profile bitrates chosen on training clips")
    print(f"# weights {weights_id}; git {git_revision()}; {platform.processor() or platform.machine()}, "
          f"torch threads 1; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# first {args.seconds:g} s of each clip, mono at 24 kHz; each class's built-in profile at depths "
          "1..16; kbps from the .acx bytes; ViSQOL v3 audio mode")
    exclude = mixed_parts(args.corpus) if args.exclude_mixed_parts else set()
    if args.exclude_mixed_parts:
        print(f"# leaving out the {len(exclude)} clips the mixed files are cut from")
    t0 = time.time()
    try:
        cached = json.loads(args.tables.read_text()) if args.tables and args.tables.is_file() else None
    except (OSError, ValueError) as exc:
        print(f"error: {args.tables}: unreadable tables cache ({exc}); delete it to measure again",
              file=sys.stderr)
        return 2
    # Tables measured on other clips or excerpts must not pass for these.
    settings = {"weights": weights_id, "train_clips": args.train_clips, "test_clips": args.test_clips,
                "seconds": args.seconds, "seed": args.seed, "exclude_mixed_parts": args.exclude_mixed_parts}
    if cached is not None and cached.get("settings") != settings:
        print(f"error: {args.tables} holds tables measured with {cached.get('settings')}, not {settings}; "
              "delete it to measure again", file=sys.stderr)
        return 2
    tables: dict[str, dict[str, DepthTable]] = {}
    for split, limit in (("train", args.train_clips), ("test", args.test_clips)):
        tables[split] = {}
        for label in CLASSES:
            if cached is not None:
                tables[split][label] = DepthTable(**{k: tuple(v) if isinstance(v, list) else v
                                                     for k, v in cached[split][label].items()})
            else:
                clips = sample_corpus_clips(args.corpus, split, label, limit, args.seed, exclude)
                tables[split][label] = depth_table(codec, label, clips, args.seconds)
    if args.tables and cached is None:
        tmp = args.tables.with_name(args.tables.name + ".tmp")
        tmp.write_text(json.dumps({"settings": settings, **{
            s: {c: dataclasses.asdict(t) for c, t in v.items()} for s, v in tables.items()}}))
        tmp.replace(args.tables)  # never a half-written cache
    for split, name in (("train", "training"), ("test", "held-out")):
        _print_table(name, tables[split])

    shipped = tuple(codec.registry.get(c).bitrate_kbps for c in CLASSES)
    candidates = sorted({shipped} | {(shipped[0], m, a) for m in MUSIC_GRID for a in AMBIENT_GRID})
    depth_maps = {a: allocation_depths(codec, a) for a in candidates}
    train_bd = _bd_all(tables["train"], candidates, depth_maps, shipped)
    test_bd = _bd_all(tables["test"], candidates, depth_maps, shipped)
    print(f"\n## Candidates: BD-rate (ViSQOL) of the predicted equal-time mixture against the shipped "
          f"allocation {shipped} (speech, music, ambient kbps)")
    print("speech/music/ambient kbps | depths per rung (s/m/a) | training BD-rate % | held-out BD-rate %")
    for a in sorted(candidates, key=lambda a: (not np.isfinite(train_bd[a]), train_bd[a])):
        depths = " ".join("/".join(str(r[c]) for c in CLASSES) for r in depth_maps[a])
        mark = "  (shipped)" if a == shipped else ""
        print(f"{a[0]:g}/{a[1]:g}/{a[2]:g} | {depths} | {train_bd[a]:+6.1f} | {test_bd[a]:+6.1f}{mark}")
    for split, name in (("train", "training"), ("test", "held-out")):
        rates, quals = mixture_curve(tables[split], depth_maps[shipped])
        print(f"shipped, {name}: " + ", ".join(f"{r:.2f}/{q:.3f}" for r, q in zip(rates, quals)))
    chosen, why = choose(train_bd, test_bd, shipped, args.min_gain)
    print(f"\nchosen: speech {chosen[0]:g}, music {chosen[1]:g}, ambient {chosen[2]:g} kbps ({why}); "
          f"wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
