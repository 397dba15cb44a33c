"""Stereo at a fixed total rate: per-channel ViSQOL and inter-channel level error per band, by stereo tool.

Rate control gives the *pair* the asked total. Two tools code it: mid/side
(``ms``: the side codes ``max(1, mid depth // divisor)`` levels, the
divisor by rate, or ``side/N``) and parametric stereo (``ps``: the mid
alone plus per-band level difference and coherence). This script encodes
the corpus' held-out stereo clips (each with its class profile) at each
``--bitrates`` total with each variant, and with ``plain`` the package's
own ``encode(..., bitrate_kbps=)`` (what a checkout without rate control
wrote for "N kbps": run it with that tree on ``PYTHONPATH``). The summary
marks the variant that ``encode`` picks at each total (``auto``) and,
with ``--baseline``, compares every mean with an earlier output's ``plain``
rows. Per row: actual kbps (file bits over duration),
ViSQOL (audio mode, 48 kHz) of the left and right channels scored
separately against the reference's, and the mean absolute inter-channel
level difference error (dB) in octave bands (frames more than 40 dB below
the clip's loudest band frame are skipped).

Usage (from the repository root; ~8 s per clip, rate and variant)::

    python benchmarks/stereo_rate.py --corpus ../shared/corpus --baseline benchmarks/results/stereo_rate_plain.txt \\
        > benchmarks/results/stereo_rate.txt
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

#: Octave band edges (Hz) of the level-difference check.
BAND_EDGES_HZ = (125, 250, 500, 1000, 2000, 4000, 8000, 16000)
FLOOR_DB = 40.0


def band_levels(x: np.ndarray, sample_rate_hz: int, n_fft: int = 2048) -> np.ndarray:
    """Energy (dB) per octave band and STFT frame: shape ``(bands, frames)``, ``x`` of shape ``(samples,)``."""
    hop = n_fft // 2
    win = np.hanning(n_fft)
    n = 1 + max(0, (x.size - n_fft) // hop)
    frames = np.stack([x[i * hop : i * hop + n_fft] * win for i in range(n)]) if x.size >= n_fft \
        else (np.pad(x, (0, n_fft - x.size)) * win)[None]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
    out = []
    for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:]):
        sel = (freqs >= lo) & (freqs < min(hi, sample_rate_hz / 2))
        out.append(10 * np.log10(power[:, sel].sum(axis=1) + 1e-12) if sel.any() else np.full(len(frames), -120.0))
    return np.stack(out)


def ild_error_db(reference: np.ndarray, decoded: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Mean |ILD_decoded - ILD_reference| (dB) per band; NaN for a band with no loud frames. Inputs ``(2, samples)``."""
    ref = [band_levels(reference[c], sample_rate_hz) for c in (0, 1)]
    dec = [band_levels(decoded[c], sample_rate_hz) for c in (0, 1)]
    loud = np.maximum(ref[0], ref[1])
    keep = loud > loud.max() - FLOOR_DB
    err = np.abs((dec[0] - dec[1]) - (ref[0] - ref[1]))
    return np.array([err[b][keep[b]].mean() if keep[b].any() else np.nan for b in range(err.shape[0])])


def _stereo_clips(corpus: Path, max_per_class: int, split: str = "test") -> list:
    """Music and ambient clips of the held-out split, or (``split="train"``) of the rest, for tuning."""
    from adaptive_codec.bench.corpus import CorpusError, held_out_clips, select_clips

    labels = ["music", "ambient"]
    try:
        if split == "test":
            return held_out_clips(corpus, max_per_class, labels=labels, mixed=False)
        manifest = corpus / "manifest.csv"
        chosen, _ = select_clips(manifest if manifest.is_file() else corpus, split="all", labels=labels)
    except CorpusError as exc:
        raise SystemExit(f"error: {exc}") from None
    train = [c for c in chosen if c.segments is None and c.held_out is False]
    out = []
    for label in labels:  # every k-th clip of each class: spread over the recordings, in path order
        clips = [c for c in train if c.label == label]
        step = max(1, len(clips) // max_per_class) if max_per_class > 0 else 1
        out += clips[::step][: max_per_class or None]
    return out


def _encode(codec, audio: np.ndarray, sr: int, profile: str, kbps: float, variant: str) -> tuple[bytes, str]:
    """The stream of one variant and the stereo tool it used ("mid_side", "parametric")."""
    buf = io.BytesIO()
    if variant == "plain":
        codec.encode_to(buf, audio, sr, profile=profile, bitrate_kbps=kbps)
        data = buf.getvalue()
        from adaptive_codec.container.acx import AcxReader

        with AcxReader(io.BytesIO(data)) as reader:
            tool = "parametric" if getattr(reader.header, "stereo_params", None) is not None else "mid_side"
        return data, tool
    from adaptive_codec.pipeline.encoder import build_header, encode_stream
    from adaptive_codec.pipeline.rate_stream import encode_stream_at_rate
    from adaptive_codec.pipeline.signal import array_blocks
    from adaptive_codec.planning.rate import Rate

    block = 4 * sr
    blocks = lambda: array_blocks(audio, block)  # noqa: E731
    tool = {"ms": "mid_side", "ps": "parametric", "auto": "auto"}.get(variant, "mid_side")
    scan, plan = codec.measure_and_plan(blocks, sr, profile, Rate(kbps), stereo=tool)
    if variant.startswith("side/"):  # mid/side with a given side divisor
        encode_stream_at_rate(codec.parts, buf, blocks, build_header(codec.parts, scan, sr, plan), plan,
                              int(variant[5:]))
    else:
        encode_stream(codec.parts, buf, blocks, sr, scan, plan)
    return buf.getvalue(), "parametric" if scan.stereo is not None else "mid_side"


def _baseline(path: Path) -> dict[str, float]:
    """Mean per-channel ViSQOL and actual kbps per class of the ``plain`` rows of an earlier output."""
    out: dict[str, list] = {}
    for line in path.read_text().splitlines():
        f = line.split("\t")
        if len(f) > 8 and f[3] == "plain" and not line.startswith("#"):
            out.setdefault(f[1], []).append((float(f[4]), float(f[7])))
    return {k: (float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v])), len(v)) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    p.add_argument("--bitrates", default="1.5,3,6,12", help="total kbps, comma-separated")
    p.add_argument("--variants", default="ms,ps",
                   help="comma-separated: ms (mid/side), ps (parametric stereo), auto (what encode picks), "
                        "side/N (mid/side with side divisor N), plain (encode(bitrate_kbps=) of the tree)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="an earlier output whose 'plain' rows (per class) the means are compared with")
    p.add_argument("--max-clips-per-class", type=int, default=0, help="0 = every held-out stereo clip")
    p.add_argument("--split", choices=["test", "train"], default="test",
                   help="test: the held-out clips (report); train: the others (to tune a rule on)")
    args = p.parse_args(argv)
    try:
        rates = [float(r) for r in args.bitrates.split(",")]
    except ValueError:
        print("error: --bitrates must be comma-separated numbers", file=sys.stderr)
        return 1
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in ("ms", "ps", "auto", "plain")
           and not (v.startswith("side/") and v[5:].isdigit() and int(v[5:]) >= 1)]
    if not all(0 < r <= 1000 for r in rates) or bad or not variants:
        print(f"error: bitrates must be in (0, 1000] kbps and variants ms, ps, auto, plain or side/N (got {bad})",
              file=sys.stderr)
        return 1
    if not args.corpus.exists():
        print(f"error: {args.corpus}: no such corpus", file=sys.stderr)
        return 1
    if args.baseline is not None and not args.baseline.is_file():
        print(f"error: {args.baseline}: no such file", file=sys.stderr)
        return 1
    pin_threads(1)
    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.audio import load_audio
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.bench.metrics import visqol

    codec = AdaptiveCodec.default()
    clips = _stereo_clips(args.corpus, args.max_clips_per_class, args.split)
    print(f"# stereo_rate: weights {codec.weights_meta['weights_id']}, git {git_revision()}, "
          f"{platform.node()} ({os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}), "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# {len(clips)} {'held-out' if args.split == 'test' else 'training (not held-out)'} stereo clips; ViSQOL audio mode per channel; ILD error in octave bands "
          f"{BAND_EDGES_HZ[0]}-{BAND_EDGES_HZ[-1]} Hz; tool = the stereo tool the stream uses")
    bands = [f"ild_{lo}" for lo in BAND_EDGES_HZ[:-1]]
    print("\t".join(["clip", "class", "asked_kbps", "variant", "tool", "actual_kbps", "visqol_l", "visqol_r",
                     "visqol_mean", *bands, "ild_mean"]))
    rows = []
    for clip in clips:
        audio, info = load_audio(clip.path)
        if audio.shape[0] != 2:
            continue
        sr = info.sample_rate_hz
        for kbps in rates:
            for var in variants:
                data, tool = _encode(codec, audio, sr, clip.label, kbps, var)
                y, _ = codec.decode(data)
                actual = len(data) * 8 / (audio.shape[-1] / sr) / 1000
                v = [visqol(audio[c], y[c], sr) for c in (0, 1)]
                ild = ild_error_db(audio, y, sr)
                rows.append(dict(label=clip.label, kbps=kbps, var=var, tool=tool, actual=actual, v=np.mean(v), ild=ild))
                print("\t".join([clip.clip_id, clip.label, f"{kbps:g}", var, tool, f"{actual:.3f}", f"{v[0]:.3f}",
                                 f"{v[1]:.3f}", f"{np.mean(v):.3f}", *(f"{e:.2f}" for e in ild),
                                 f"{np.nanmean(ild):.2f}"]), flush=True)
    print("\n## means per class, asked total and variant (auto: the tool encode picks at that total)")
    print("class\tasked_kbps\tvariant\tn\tactual_kbps\tvisqol_mean\tild_mean_db\tauto")
    from adaptive_codec.tools.stereo import stereo_tool

    for key in sorted({(r["label"], r["kbps"], r["var"]) for r in rows}):
        sel = [r for r in rows if (r["label"], r["kbps"], r["var"]) == key]
        tools = {r["tool"] for r in sel}
        picked = "yes" if tools == {stereo_tool(key[1])} else "-"
        print(f"{key[0]}\t{key[1]:g}\t{key[2]}\t{len(sel)}\t{np.mean([r['actual'] for r in sel]):.2f}\t"
              f"{np.mean([r['v'] for r in sel]):.3f}\t{np.nanmean([np.nanmean(r['ild']) for r in sel]):.2f}\t{picked}")
    if args.baseline is not None:
        base = _baseline(args.baseline)
        print(f"\n## against the 'plain' rows of {args.baseline.name} (what that tree wrote when asked the same)")
        print("class\tbaseline_kbps\tbaseline_visqol\tasked_kbps\tvariant\tactual_kbps\tvisqol_mean\tdelta")
        for key in sorted({(r["label"], r["kbps"], r["var"]) for r in rows}):
            if key[0] not in base:
                continue
            sel = [r for r in rows if (r["label"], r["kbps"], r["var"]) == key]
            kb, vb, _ = base[key[0]]
            vm = float(np.mean([r["v"] for r in sel]))
            print(f"{key[0]}\t{kb:.2f}\t{vb:.3f}\t{key[1]:g}\t{key[2]}\t{np.mean([r['actual'] for r in sel]):.2f}\t"
                  f"{vm:.3f}\t{vm - vb:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
