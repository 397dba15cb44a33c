"""Asked vs actual bitrate: the whole stream's bytes over the audio's duration, per clip, class and channel count.

For every held-out corpus clip (split by source recording) and every
bundled example, encode with the clip's class profile (auto on mixed files)
at each ``--bitrates`` value and at the profile defaults, and report
``actual / asked``, where actual is the ``.acx`` file's size in bits over the
audio's duration and asked is ``--bitrate`` (or, at the defaults, the
routed profiles' rates weighted by their frames). Prints one row per clip and
rate, then min / median / max per class and channel count, the clips outside
the target band (+-3 % for clips >= 8 s, +-5 % for the bundled examples)
and the capped targets (what the stream records, and the one-line note).

Runs on any checkout of the package (the comparison with an older tree
uses the same script with that tree on ``PYTHONPATH``); a tree without rate
control has no rate record, so its capped column reads "-".

Usage (from the repository root; ~2 minutes on one core)::

    python benchmarks/rate_accuracy.py --corpus ../shared/corpus > benchmarks/results/rate_accuracy.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.threads import pin_threads  # noqa: E402

TOLERANCE = {"corpus": 0.03, "example": 0.05}
MIN_SECONDS = 8.0  # shorter clips may miss: a fixed header is a larger share


def _parse_rates(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        rates = []
    if not rates or not all(0 < r <= 1000 and np.isfinite(r) for r in rates):
        raise SystemExit(f"error: --bitrates must be comma-separated kbps in (0, 1000], got {text!r}")
    return rates


def _clips(corpus: Path, max_per_class: int) -> list[tuple[str, Path, str, str]]:
    """``(name, path, label, kind)``: held-out corpus clips, then the bundled examples."""
    from adaptive_codec.bench.corpus import CorpusError, held_out_clips
    from adaptive_codec.resources import example_path

    try:
        out = [(c.clip_id, c.path, c.label, "corpus") for c in held_out_clips(corpus, max_per_class)]
    except CorpusError as exc:
        raise SystemExit(f"error: {exc}") from None
    for name in ("speech", "music", "ambient", "mixed"):
        out.append((f"examples/{name}.flac", example_path(name), name, "example"))
    return out


def _asked_kbps(plan, kbps: float | None, frames: int) -> float:
    if kbps is not None:
        return kbps
    return sum(s.profile.bitrate_kbps * (s.end_frame - s.start_frame) for s in plan) / frames


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    p.add_argument("--bitrates", default="1.5,3,6,12", help="kbps, comma-separated (the defaults are added)")
    p.add_argument("--max-clips-per-class", type=int, default=0, help="0 = every held-out clip")
    args = p.parse_args(argv)
    rates: list[float | None] = [*_parse_rates(args.bitrates), None]
    if not args.corpus.exists():
        print(f"error: {args.corpus}: no such corpus", file=sys.stderr)
        return 1
    pin_threads(1)
    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.audio import load_audio
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.container.acx import read_header

    codec = AdaptiveCodec.default()
    clips = _clips(args.corpus, args.max_clips_per_class)
    print(f"# rate_accuracy: weights {codec.weights_meta['weights_id']}, git {git_revision()}, "
          f"{platform.node()} ({os.cpu_count()} cpus), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# {sum(k == 'corpus' for *_, k in clips)} held-out corpus clips + "
          f"{sum(k == 'example' for *_, k in clips)} bundled examples; actual = file bits / duration")
    print("clip\tkind\tclass\tch\tdur_s\tprofile\tasked_kbps\tactual_kbps\tratio\tcapped\tstereo")
    rows = []
    t0 = time.time()
    for name, path, label, kind in clips:
        audio, info = load_audio(path)
        sr = info.sample_rate_hz
        profile = "auto" if label == "mixed" else label
        for kbps in rates:
            buf = io.BytesIO()
            plan = codec.encode_to(buf, audio, sr, profile=profile, bitrate_kbps=kbps)
            data = buf.getvalue()
            header = read_header(data)
            duration = audio.shape[-1] / sr
            asked = _asked_kbps(plan, kbps, header.n_frames)
            actual = len(data) * 8 / duration / 1000
            limit = getattr(header, "rate_limit", None)
            capped = "-" if limit is None else ("no", "deepest", "shallowest")[limit]
            # The stereo tool: mid/side, or the mid + parametric stereo (ps); "-" for mono.
            stereo = "-" if audio.shape[0] == 1 else (
                "ps" if getattr(header, "stereo_params", None) is not None else "ms")
            rows.append(dict(clip=name, kind=kind, label=label, ch=audio.shape[0], dur=duration,
                             rate="default" if kbps is None else f"{kbps:g}", asked=asked, actual=actual,
                             ratio=actual / asked, capped=capped))
            print(f"{name}\t{kind}\t{label}\t{audio.shape[0]}\t{duration:.1f}\t"
                  f"{'default' if kbps is None else f'{kbps:g}'}\t{asked:.3f}\t{actual:.3f}\t"
                  f"{actual / asked:.3f}\t{capped}\t{stereo}", flush=True)
    print(f"\n# {len(rows)} encodes in {time.time() - t0:.0f} s")
    print("\n## actual / asked: min / median / max per rate, class and channel count (uncapped rows; n = clips)")
    print("rate\tclass\tch\tkind\tn\tmin\tmedian\tmax\tcapped")
    keys = sorted({(r["rate"], r["label"], r["ch"], r["kind"]) for r in rows},
                  key=lambda k: (k[0] != "default", float(k[0]) if k[0] != "default" else 0, *k[1:]))
    for key in keys:
        sel = [r for r in rows if (r["rate"], r["label"], r["ch"], r["kind"]) == key]
        ok = [r["ratio"] for r in sel if r["capped"] in ("no", "-")]
        n_cap = sum(r["capped"] in ("deepest", "shallowest") for r in sel)
        if ok:
            print(f"{key[0]}\t{key[1]}\t{key[2]}\t{key[3]}\t{len(sel)}\t{min(ok):.3f}\t{np.median(ok):.3f}\t"
                  f"{max(ok):.3f}\t{n_cap}")
        else:
            print(f"{key[0]}\t{key[1]}\t{key[2]}\t{key[3]}\t{len(sel)}\t-\t-\t-\t{n_cap}")
    print("\n## targets")
    for kind, tol in TOLERANCE.items():
        sel = [r for r in rows if r["kind"] == kind and r["capped"] in ("no", "-")
               and (kind == "example" or r["dur"] >= MIN_SECONDS)]
        miss = [r for r in sel if abs(r["ratio"] - 1) > tol]
        print(f"- {kind} clips{' >= 8 s' if kind == 'corpus' else ''}, reachable targets: "
              f"{len(sel) - len(miss)} of {len(sel)} within +-{tol:.0%}")
        for r in miss:
            print(f"    miss: {r['clip']} at {r['rate']}: asked {r['asked']:.2f}, actual {r['actual']:.2f} kbps")
    capped = [r for r in rows if r["capped"] in ("deepest", "shallowest")]
    print(f"- capped targets (recorded in the stream, said by encode/info): {len(capped)}")
    for r in capped:
        print(f"    {r['clip']} at {r['rate']}: capped at {r['actual']:.2f} kbps: the {r['capped']} setting "
              f"(asked {r['asked']:.4g} kbps)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
