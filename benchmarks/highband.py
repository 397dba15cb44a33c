"""The high-band tool (issue 30): full-band quality with and without it, beside Opus, and what it costs.

On the corpus' held-out clips recorded at 44.1/48 kHz (mono downmix, first
``--seconds`` s), each clip coded with its class's profile at 1.5 / 3 / 6 /
12 kbps asked, with the profile's high band and with ``highband_bands = 0``;
Opus at the actual rate of the stream with the high band, and at 12 and 16
kbps. Prints, per class:

- ViSQOL v3 (audio mode, both signals resampled to 48 kHz) and actual kbps
  from the bytes of each stream;
- the level error (dB) of the decoded 12-20 kHz band in four bands against
  the reference (Welch, 2048-sample Hann), mean |error| and mean signed
  error, so a tool that merely adds energy shows;
- encode and decode CPU time with and without the tool (best of
  ``--repeats``, one thread; ``--timing`` is the careful A/B);
- speech: PESQ-WB and STOI at 6 kbps with and without the tool on the
  held-out speech clips (16 kHz sources: no high band, the same bytes) and
  the bundled 44.1 kHz speech example (not from the corpus' held-out split).

``--sweep`` instead compares high-band settings (bands, codec frames per
envelope value, noise share) at 6 kbps on the same clips: how the built-in
profiles' settings were chosen. ``--timing`` times only the tool's cost at
6 kbps, alternating runs (best of ``--repeats``): encode with and without
it, and decode of each stream with and without its high-band section (the
same backbone codes, so the difference is the synthesis alone).

Usage (from the repository root; ~8 minutes on one core, ``--sweep`` ~4)::

    python benchmarks/highband.py --corpus ../shared/corpus > benchmarks/results/highband.txt
    python benchmarks/highband.py --corpus ../shared/corpus --sweep > benchmarks/results/highband_sweep.txt
    python benchmarks/highband.py --corpus ../shared/corpus --timing --repeats 7 > benchmarks/results/highband_timing.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import dataclasses  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.bench.environment import cpu_seconds  # noqa: E402
from adaptive_codec.bench.full_band import BANDS_HZ, CONTENT_DB, full_band_clips, level_errors  # noqa: E402
from adaptive_codec.bench.full_band import read_mono as read  # noqa: E402
from adaptive_codec.threads import pin_threads  # noqa: E402

RATES = (1.5, 3.0, 6.0, 12.0)
SWEEP = ((0, 2, 0.5), (4, 4, 0.5), (4, 2, 0.5), (8, 4, 0.5), (8, 2, 0.5), (8, 2, 0.0), (8, 2, 1.0), (8, 1, 0.5))
#: Envelope resolutions (bands, codec frames per value) compared at every rate by ``--rate-sweep``.
RATE_SWEEP = ((0, 2), (2, 8), (4, 8), (4, 4), (4, 2), (8, 4), (8, 2), (8, 1))


def timed(fn, repeats: int):
    """``fn()``'s result and its best CPU time (s) of this process over ``repeats`` runs."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t, out = cpu_seconds(fn)
        best = min(best, t)
    return out, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--seconds", type=float, default=10.0, help="first seconds of each clip")
    parser.add_argument("--repeats", type=int, default=2, help="timing repeats (best kept)")
    parser.add_argument("--sweep", action="store_true", help="compare high-band settings at 6 kbps instead")
    parser.add_argument("--timing", action="store_true", help="time the tool's cost only")
    parser.add_argument("--rate-sweep", action="store_true",
                        help="compare envelope resolutions at every rate instead (and on full-band speech)")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2
    if not (args.seconds > 0 and args.repeats >= 1):
        print("error: --seconds must be > 0 and --repeats >= 1", file=sys.stderr)
        return 2

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.bench.baselines import OpusBaseline
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.bench.metrics import pesq_wb, stoi, visqol
    from adaptive_codec.container.acx import read_header

    pin_threads(1)
    codec = AdaptiveCodec.default()
    opus = OpusBaseline()
    if opus.available():
        print(f"error: Opus baseline unavailable: {opus.available()}", file=sys.stderr)
        return 2
    clips = full_band_clips(args.corpus)
    if not clips:
        print("error: no held-out 44.1/48 kHz clips in the corpus", file=sys.stderr)
        return 2
    labels = sorted({label for label, _ in clips})
    print("# High band (issue 30): held-out full-band corpus clips, mono downmix, ViSQOL audio mode at 48 kHz")
    print(f"# weights {codec.weights_meta['weights_id']}; git {git_revision()}; "
          f"{platform.processor() or platform.machine()}, 1 thread; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print("# clips: " + ", ".join(f"{label} {sum(1 for c in clips if c[0] == label)}" for label in labels)
          + f" (first {args.seconds:g} s): " + ", ".join(p.stem for _, p in clips))
    audio = {p: read(p, args.seconds) for _, p in clips}

    def run(x, sr, profile, kbps):
        data = codec.encode(x, sr, profile=profile, bitrate_kbps=kbps)
        y, _ = codec.decode(data)
        return data, np.asarray(y, np.float32)

    if args.timing:
        return timing(codec, clips, audio, args.repeats)

    if args.rate_sweep:
        return rate_sweep(codec, clips, audio, args.seconds, args.corpus)

    if args.sweep:
        print("\n## Settings at 6 kbps asked (bands, codec frames per value, noise share)\n")
        print("| class | bands | frames | noise | kbps | high band kbps | ViSQOL | level err dB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label in labels:
            base = codec.registry.get(label)
            for bands, frames, noise in SWEEP:
                prof = dataclasses.replace(base, highband_bands=bands, highband_frames=frames, highband_noise=noise)
                kb, hb, vq, err = [], [], [], []
                for lab, p in clips:
                    if lab != label:
                        continue
                    x, sr = audio[p]
                    data, y = run(x, sr, prof, 6.0)
                    h = read_header(data)
                    kb.append(len(data) * 8 / (x.size / sr) / 1000)
                    hb.append(0.0 if h.highband is None else h.highband.payload_bytes * 8 / (x.size / sr) / 1000)
                    vq.append(visqol(x, y, sr))
                    err.append(np.abs(level_errors(x, y, sr)))
                print(f"| {label} | {bands} | {frames} | {noise:.1f} | {np.mean(kb):.2f} | {np.mean(hb):.2f} | "
                      f"{np.mean(vq):.3f} | {np.nanmean(err):.1f} |", flush=True)
        return 0

    rows = {}  # (label, rate, system) -> lists
    levels = {}  # (label, system) -> signed errors per clip (bands,)
    times = {"enc_on": 0.0, "enc_off": 0.0, "dec_on": 0.0, "dec_off": 0.0, "audio_s": 0.0}
    for label, p in clips:
        x, sr = audio[p]
        seconds = x.size / sr
        base = codec.registry.get(label)
        off = dataclasses.replace(base, highband_bands=0)
        for rate in RATES:
            for name, prof in (("with", base), ("without", off)):
                data, t_enc = timed(lambda: codec.encode(x, sr, profile=prof, bitrate_kbps=rate),
                                    args.repeats if rate == 6.0 else 1)
                y, t_dec = timed(lambda: codec.decode(data)[0], args.repeats if rate == 6.0 else 1)
                kbps = len(data) * 8 / seconds / 1000
                h = read_header(data)
                high = 0.0 if h.highband is None else h.highband.payload_bytes * 8 / seconds / 1000
                rows.setdefault((label, rate, name), []).append((kbps, visqol(x, y, sr), high))
                if rate == 6.0:
                    key = "on" if name == "with" else "off"
                    times[f"enc_{key}"] += t_enc
                    times[f"dec_{key}"] += t_dec
                    levels.setdefault((label, name), []).append(level_errors(x, y, sr))
                if name == "with":
                    z, n = opus.encode_decode(x, sr, kbps)
                    rows.setdefault((label, rate, "opus"), []).append((n * 8 / seconds / 1000, visqol(x, z, sr), 0.0))
        times["audio_s"] += seconds
        for rate in (12.0, 16.0):
            z, n = opus.encode_decode(x, sr, rate)
            rows.setdefault((label, rate, "opus-nominal"), []).append((n * 8 / seconds / 1000, visqol(x, z, sr), 0.0))
        print(f"  done {p.stem}", file=sys.stderr, flush=True)

    print("\n## ViSQOL per class and asked rate (mean over clips; kbps actual, from the bytes)\n")
    print("| class | asked kbps | with tool: kbps (high band) | ViSQOL | without: kbps | ViSQOL | Opus: kbps | ViSQOL |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label in labels:
        for rate in RATES:
            w, o, op = (np.mean(rows[(label, rate, s)], axis=0) for s in ("with", "without", "opus"))
            print(f"| {label} | {rate:g} | {w[0]:.2f} ({w[2]:.2f}) | **{w[1]:.3f}** | {o[0]:.2f} | {o[1]:.3f} | "
                  f"{op[0]:.2f} | {op[1]:.3f} |")
    print("\nOpus asked 12 and 16 kbps (nominal; actual in brackets):\n")
    for label in labels:
        parts = [f"{r:g} kbps ({np.mean(rows[(label, r, 'opus-nominal')], axis=0)[0]:.2f}): "
                 f"{np.mean(rows[(label, r, 'opus-nominal')], axis=0)[1]:.3f}" for r in (12.0, 16.0)]
        print(f"- {label}: " + "; ".join(parts))

    print("\n## Level of the decoded 12-20 kHz band vs the reference at 6 kbps (dB; mean over clips)\n")
    print(f"Bands whose reference is below {CONTENT_DB:g} dB/Hz (recording noise only) are left out; "
          "(n) = clips counted.\n")
    print("| class | system | " + " | ".join(f"{lo // 1000}-{hi // 1000} kHz" for lo, hi in BANDS_HZ)
          + " | mean abs error | mean signed |")
    print("|---|---|" + "---:|" * (len(BANDS_HZ) + 2))
    for label in labels:
        for name in ("with", "without"):
            e = np.array(levels[(label, name)])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                per, n = np.nanmean(e, axis=0), np.sum(np.isfinite(e), axis=0)
                print(f"| {label} | {name} | " + " | ".join(f"{v:+.1f} ({k})" for v, k in zip(per, n))
                      + f" | {np.nanmean(np.abs(e)):.1f} | {np.nanmean(e):+.1f} |")

    a = times["audio_s"]
    print(f"\n## CPU time at 6 kbps, {a:.0f} s of audio (best of {args.repeats}, one thread; --timing for the A/B)\n")
    for what in ("enc", "dec"):
        on, off = times[f"{what}_on"], times[f"{what}_off"]
        print(f"- {'encode' if what == 'enc' else 'decode'}: with {on:.2f} s, without {off:.2f} s: "
              f"{100 * (on / off - 1):+.1f} % ({a / on:.0f}x / {a / off:.0f}x real time)")

    print("\n## Speech at 6 kbps: PESQ-WB / STOI with and without the tool\n")
    from adaptive_codec.resources import example_path

    with open(args.corpus / "manifest.csv", newline="") as fh:
        from adaptive_codec.bench.corpus import is_held_out

        speech = [args.corpus / r["path"] for r in csv.DictReader(fh) if r["label"] == "speech"
                  and is_held_out(r["source"])][:4]
    print("| clip | rate Hz | with: kbps | PESQ-WB | STOI | without: kbps | PESQ-WB | STOI |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for path in speech + [example_path("speech")]:
        x, sr = read(path, args.seconds)
        out = []
        for prof in (codec.registry.get("speech"), dataclasses.replace(codec.registry.get("speech"), highband_bands=0)):
            data, y = run(x, sr, prof, 6.0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append((len(data) * 8 / (x.size / sr) / 1000, pesq_wb(x, y, sr), stoi(x, y, sr)))
        name = path.stem + ("" if path in speech else " (bundled example)")
        print(f"| {name[:40]} | {sr} | " + " | ".join(f"{k:.2f} | {p:.3f} | {s:.3f}" for k, p, s in out) + " |")
    return 0


def timing(codec, clips, audio, repeats: int) -> int:
    """The tool's cost at 6 kbps: encode with and without it, decode with and without its section.

    Every clip and one long file (all clips one after another, resampled to
    the first clip's rate); the four runs alternate ``repeats`` times and the
    best of each is kept, in CPU seconds of this process (one thread), so
    other load on the machine disturbs it less than wall time.
    """
    from adaptive_codec.audio.resampling import resample_signal as resample
    from adaptive_codec.container.acx import AcxStream, read_acx, to_bytes

    def cpu(fn) -> float:
        return cpu_seconds(fn)[0]

    sr0 = audio[clips[0][1]][1]
    long = np.concatenate([audio[p][0] if audio[p][1] == sr0 else resample(audio[p][0], audio[p][1], sr0)
                           for _, p in clips]).astype(np.float32)
    items = [(p.stem, label, *audio[p]) for label, p in clips] + [("all clips, one file", "music", long, sr0)]
    print(f"\n## Time at 6 kbps (CPU s, best of {repeats}, the four runs alternating, one thread; "
          f"load average {os.getloadavg()[0]:.1f} at the start)\n")
    print("| clip | s | encode with | without | cost | decode with | section stripped | cost |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    total = np.zeros(4)
    for name, label, x, sr in items:
        on = codec.registry.get(label)
        off = dataclasses.replace(on, highband_bands=0)
        data = codec.encode(x, sr, profile=on, bitrate_kbps=6.0)
        s = read_acx(data)
        plain = to_bytes(AcxStream.from_header(dataclasses.replace(s.header, highband=None), s.chunks))
        codec.decode(plain)  # warm-up
        best = np.full(4, np.inf)
        for _ in range(repeats):
            for i, fn in enumerate((lambda: codec.encode(x, sr, profile=on, bitrate_kbps=6.0),
                                    lambda: codec.encode(x, sr, profile=off, bitrate_kbps=6.0),
                                    lambda: codec.decode(data), lambda: codec.decode(plain))):
                best[i] = min(best[i], cpu(fn))
        if name != items[-1][0]:
            total += best
        else:
            print(f"| **clips** | | {total[0]:.2f} | {total[1]:.2f} | **{100 * (total[0] / total[1] - 1):+.1f} %** | "
                  f"{total[2]:.2f} | {total[3]:.2f} | **{100 * (total[2] / total[3] - 1):+.1f} %** |")
        print(f"| {name[:34]} | {x.size / sr:.0f} | {best[0]:.3f} | {best[1]:.3f} | "
              f"{100 * (best[0] / best[1] - 1):+.1f} % | {best[2]:.3f} | {best[3]:.3f} | "
              f"{100 * (best[2] / best[3] - 1):+.1f} % |", flush=True)
    # The floor of this synthesis: one rfft and one irfft of every STFT frame (hop half a codec frame).
    import scipy.fft

    from adaptive_codec.tools.highband.grid import StftGrid

    cfg = codec.backbone.config
    grid = StftGrid(sr0, cfg.sample_rate_hz, cfg.hop)
    from adaptive_codec.tools.highband.synthesis import BATCH_FRAMES

    n = long.size // grid.hop
    frames = np.random.default_rng(0).standard_normal((BATCH_FRAMES, 1, grid.size)).astype(np.float32)
    spec = scipy.fft.rfft(frames, axis=-1)

    def transforms():
        for _ in range(n // BATCH_FRAMES):  # in the synthesis' batches
            scipy.fft.rfft(frames, axis=-1)
            scipy.fft.irfft(spec, n=grid.size, axis=-1)

    fft = min(cpu(transforms) for _ in range(repeats))
    print(f"\nThe synthesis' two transforms alone (rfft + irfft of the long file's {n} STFT frames of "
          f"{grid.size}, {BATCH_FRAMES} at a time): {fft:.3f} s, {100 * fft / best[3]:.1f} % of its decode "
          "without the section.")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


def full_band_speech(corpus: Path) -> list[Path]:
    """Speech clips recorded at 44.1/48 kHz in the corpus (whatever their split) and the bundled example."""
    from adaptive_codec.resources import example_path

    with open(corpus / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    found = [corpus / r["path"] for r in rows if r["label"] == "speech" and r["orig_sample_rate"] in ("44100", "48000")]
    example = example_path("speech")
    return found if any(p.read_bytes() == example.read_bytes() for p in found) else found + [example]


def fixed_resolution(profile, bands: int, frames: int):
    """``profile`` with one envelope resolution at every rate (its rate table, if any, left out)."""
    extra = {"highband_rates": ()} if hasattr(profile, "highband_rates") else {}
    return dataclasses.replace(profile, highband_bands=bands, highband_frames=frames, **extra)


def rate_sweep(codec, clips, audio, seconds: float, corpus: Path) -> int:
    """Every envelope resolution of :data:`RATE_SWEEP` at every rate: how the profiles' tables were chosen."""
    from adaptive_codec.bench.metrics import pesq_wb, stoi, visqol
    from adaptive_codec.container.acx import read_header

    def one(x, sr, prof, rate):
        data = codec.encode(x, sr, profile=prof, bitrate_kbps=rate)
        y = np.asarray(codec.decode(data)[0], np.float32)
        h = read_header(data)
        high = 0.0 if h.highband is None else h.highband.payload_bytes * 8 / (x.size / sr) / 1000
        return len(data) * 8 / (x.size / sr) / 1000, high, y

    print("\n## Envelope resolution by asked rate (bands, codec frames per value; 0 bands: no high band)\n")
    print("kbps actual from the bytes (mean over clips); ViSQOL audio mode at 48 kHz; noise share as the profile.\n")
    print("| class | asked kbps | bands | frames | kbps | high band kbps | ViSQOL | level err dB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label in sorted({lab for lab, _ in clips}):
        base = codec.registry.get(label)
        for rate in RATES:
            for bands, frames in RATE_SWEEP:
                prof = fixed_resolution(base, bands, frames)
                kb, hb, vq, err = [], [], [], []
                for lab, p in clips:
                    if lab != label:
                        continue
                    x, sr = audio[p]
                    k, h, y = one(x, sr, prof, rate)
                    kb.append(k)
                    hb.append(h)
                    vq.append(visqol(x, y, sr))
                    err.append(np.abs(level_errors(x, y, sr)))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    e = np.nanmean(err)
                print(f"| {label} | {rate:g} | {bands} | {frames} | {np.mean(kb):.2f} | {np.mean(hb):.2f} | "
                      f"{np.mean(vq):.3f} | {e:.1f} |", flush=True)
    print("\n## Full-band speech (44.1/48 kHz; not the held-out split): PESQ-WB / STOI / ViSQOL\n")
    print("| clip | asked kbps | bands | frames | kbps | high band kbps | PESQ-WB | STOI | ViSQOL |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = codec.registry.get("speech")
    for path in full_band_speech(corpus):
        x, sr = read(path, seconds)
        for rate in RATES:
            for bands, frames in RATE_SWEEP:
                prof = fixed_resolution(base, bands, frames)
                k, h, y = one(x, sr, prof, rate)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pq, st = pesq_wb(x, y, sr), stoi(x, y, sr)
                print(f"| {path.stem[:30]} | {rate:g} | {bands} | {frames} | {k:.2f} | {h:.2f} | {pq:.3f} | "
                      f"{st:.3f} | {visqol(x, y, sr):.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
