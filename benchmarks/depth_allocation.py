"""Energy-adaptive RVQ depth: choose ``depth_slope`` on training clips, report on held-out ones.

A profile's ``depth_slope`` (levels per 10 dB of frame energy) moves RVQ
levels from quiet frames to loud ones at the same bitrate
(:mod:`adaptive_codec.planning.depth_allocation`). This script codes corpus clips
through the whole codec (``AdaptiveCodec.encode`` / ``decode``: real bytes,
depth map included) with each class's built-in profile and a ladder of slopes:

1. on the corpus' **training** split (clips the held-out evaluation never
   uses) it picks, per class, the slope with the largest quality gain **at
   equal bytes** (PESQ-WB for speech, ViSQOL for music and ambient): each
   slope's mean quality minus what fixed depth reaches at the slope's mean
   actual bitrate, read off the fixed-depth curve through the profile's
   depth and one level either side (piecewise linear in kbps). 0 when no
   slope gains at least ``--min-gain`` (a smaller gain is noise at 12 clips).
   A slope that spends more bytes must beat what those bytes buy as levels;
2. on the **held-out** split it reports every slope and its equal-bytes gain,
   so the chosen one's gain is measured on clips it was not chosen on.

(Until 2026-11-27 the rule was "best quality within +1 % of fixed depth's
bytes", which rejects a slope whatever it buys for its extra bytes.)

Quality: PESQ-WB and STOI (speech), ViSQOL v3 audio mode (every class), all
on the first ``--seconds`` of each mono clip at its profile's bitrate.

Usage (from the repository root; ~13 minutes on one core)::

    python benchmarks/depth_allocation.py --corpus ../shared/corpus > benchmarks/results/depth_allocation.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.profiles import BUILTIN_CLASSES  # noqa: E402
from adaptive_codec.threads import pin_threads  # noqa: E402

SLOPES = (0.0, 1.5, 2.5, 4.0, 6.0)


def _score(codec, profile, clips: list[Path], seconds: float, speech: bool) -> dict[str, float]:
    from adaptive_codec.bench.metrics import pesq_wb, stoi, visqol
    from adaptive_codec.train.codec_data import read_mono

    sr = 24000
    rows = []
    for path in clips:
        x = read_mono(path, sr)[: int(seconds * sr)].astype(np.float32)
        if np.sqrt(np.mean(x**2)) < 1e-3:  # silent excerpt: nothing to measure
            continue
        data = codec.encode(x, sr, profile=profile)
        y, _ = codec.decode(data)
        row = {"kbps": len(data) * 8 / (x.size / sr) / 1000, "visqol": visqol(x, y, sr)}
        if speech:
            row["pesq"], row["stoi"] = pesq_wb(x, y, sr), stoi(x, y, sr)
        rows.append(row)
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
    out["clips"] = len(rows)
    return out


def _line(name: str, m: dict[str, float], speech: bool, gain: float | None = None) -> str:
    s = f"  {name:>10}: {m['kbps']:6.3f} kbps  ViSQOL {m['visqol']:.3f}"
    if speech:
        s += f"  PESQ-WB {m['pesq']:.3f}  STOI {m['stoi']:.4f}"
    if gain is not None:
        s += f"  equal-bytes gain {gain:+.3f}"
    return s + f"  ({m['clips']} clips)"


def _fixed_curve(codec, base, clips: list[Path], seconds: float, speech: bool, key: str,
                 at_depth: dict[str, float]) -> list[tuple[float, float]]:
    """(kbps, quality) of fixed depth at the profile's depth and one level either side, printed."""
    depth = codec.depth_for(base)
    max_levels = codec.backbone.config.n_levels
    points = []
    for n_q in (depth - 1, depth + 1):
        if 1 <= n_q <= max_levels:
            fixed = dataclasses.replace(base, bitrate_kbps=None, n_q=n_q, depth_slope=0.0)
            m = _score(codec, fixed, clips, seconds, speech)
            print(_line(f"depth {n_q}", m, speech), flush=True)
            points.append((m["kbps"], m[key]))
    points.append((at_depth["kbps"], at_depth[key]))
    return sorted(points)


def equal_bytes_gain(m: dict[str, float], curve: list[tuple[float, float]], key: str) -> float:
    """Quality of ``m`` minus fixed depth's at ``m``'s bitrate (piecewise linear; flat beyond the ends)."""
    kbps, quality = zip(*curve)
    return m[key] - float(np.interp(m["kbps"], kbps, quality))


def _ladder(codec, base, slopes: list[float], clips: list[Path], seconds: float, speech: bool,
            mark: float | None = None) -> tuple[dict[float, dict[str, float]], dict[float, float]]:
    """Score every slope and fixed depth's neighbours on ``clips``, printing one line each.

    Returns the scores per slope and each slope's equal-bytes gain.
    """
    key = "pesq" if speech else "visqol"
    out = {0.0: _score(codec, dataclasses.replace(base, depth_slope=0.0), clips, seconds, speech)}
    print(_line(f"depth {codec.depth_for(base)}", out[0.0], speech) + "  (fixed: slope 0)", flush=True)
    curve = _fixed_curve(codec, base, clips, seconds, speech, key, out[0.0])
    gains = {0.0: 0.0}
    for slope in slopes:
        if slope > 0:
            out[slope] = _score(codec, dataclasses.replace(base, depth_slope=slope), clips, seconds, speech)
            gains[slope] = equal_bytes_gain(out[slope], curve, key)
            print(_line(f"slope {slope:g}", out[slope], speech, gains[slope])
                  + ("  <- chosen" if slope == mark else ""), flush=True)
    if mark == 0.0:
        print("  (chosen: fixed depth)")
    return out, gains


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--classes", default="speech,music,ambient")
    parser.add_argument("--train-clips", type=int, default=12, help="training clips per class (selection)")
    parser.add_argument("--test-clips", type=int, default=0, help="held-out clips per class (0 = all)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--slopes", default=",".join(str(s) for s in SLOPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-gain", type=float, default=0.01,
                        help="quality gain over fixed depth a slope needs to be chosen (PESQ or ViSQOL units)")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.profiles import MAX_DEPTH_SLOPE
    from adaptive_codec.train.codec_data import sample_corpus_clips

    pin_threads(1)
    codec = AdaptiveCodec.default()
    unknown = [c for c in args.classes.split(",") if c not in BUILTIN_CLASSES]
    if unknown:
        print(f"error: unknown class(es) {', '.join(unknown)}; use speech, music, ambient", file=sys.stderr)
        return 2
    try:
        slope_list = [float(v) for v in args.slopes.split(",")]
    except ValueError:
        slope_list = []
    if not slope_list or not all(0 <= v <= MAX_DEPTH_SLOPE for v in slope_list):
        print(f"error: --slopes must be comma-separated numbers in 0..{MAX_DEPTH_SLOPE:g}, got {args.slopes!r}",
              file=sys.stderr)
        return 2
    slopes = slope_list
    if 0.0 not in slopes:
        slopes.insert(0, 0.0)
    rev = git_revision()
    print("# Energy-adaptive RVQ depth: slope chosen on training clips, reported on held-out clips")
    print(f"# weights {codec.weights_meta['weights_id']}; git {rev}; {platform.processor() or platform.machine()}, "
          f"torch threads 1; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# first {args.seconds:g} s of each mono clip, the class's built-in profile and bitrate; "
          "kbps from the .acx bytes (depth map included)")
    t0 = time.time()
    chosen: dict[str, float] = {}
    for label in args.classes.split(","):
        base = codec.registry.get(label)
        speech = label == "speech"
        key = "pesq" if speech else "visqol"
        print(f"\n## {label} (profile bitrate {base.bitrate_kbps} kbps; shipped depth_slope {base.depth_slope:g})")
        train = sample_corpus_clips(args.corpus, "train", label, args.train_clips, args.seed)
        print(f"training split ({len(train)} clips, selection):")
        results, gains = _ladder(codec, base, slopes, train, args.seconds, speech)
        fixed = results[0.0]
        ok = [s for s in slopes if s > 0 and gains[s] >= args.min_gain]
        best = max(ok, key=lambda s: gains[s]) if ok else 0.0
        chosen[label] = best
        print(f"chosen on training clips: depth_slope {best:g} ({key} {results[best][key]:.3f} vs fixed "
              f"{fixed[key]:.3f}, equal-bytes gain {gains[best]:+.3f})")
        test = sample_corpus_clips(args.corpus, "test", label, args.test_clips, args.seed)
        print(f"held-out split ({len(test)} clips, report):")
        held, held_gains = _ladder(codec, base, slopes, test, args.seconds, speech, mark=best)
        gain = held[best][key] - held[0.0][key]
        print(f"held-out gain of the chosen slope: {key} {gain:+.3f}"
              + (f", STOI {held[best]['stoi'] - held[0.0]['stoi']:+.4f}" if speech else "")
              + f", bitrate {100 * (held[best]['kbps'] / held[0.0]['kbps'] - 1):+.1f} %"
              + f"; at equal bytes {key} {held_gains[best]:+.3f}")
    print(f"\nchosen: {', '.join(f'{k} {v:g}' for k, v in chosen.items())}; wall time {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
