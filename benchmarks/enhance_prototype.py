"""The enhancement layer, offline (issue 34, step 2): quality vs ACTUAL total bits, beside Opus at the same rate.

On held-out corpus clips (``--per-class`` per class, mono downmix, first
``--seconds`` s), each class's profile: the backbone at a fixed depth D
(its stream as the codec writes it, high band included) plus the layer of
:mod:`adaptive_codec.tools.enhance` (residual of the input's 24 kHz MDCT against the
backbone's decoded MDCT, steps from the decoded band energies, Laplace
tables per band and second, constriction range coder) given whatever is
left of the total. Totals 6 / 9 / 12 / 16 / 24 / 32 kbps; every depth of
``--depths`` whose stream leaves at least 1 kbps for the layer is tried, so
the table shows which depth to put under the layer. Counted bytes: the
whole ``.acx`` stream + the layer's payload + 8 bytes per 6 s chunk (a
length and a CRC, as a tagged per-chunk payload would carry).

Scores: ViSQOL v3 (audio mode, 48 kHz) full band at the clip's own rate (the
high band synthesised on the enhanced low band, as the decoder would) and
in band (24 kHz, against the input at 24 kHz); speech also PESQ-WB and
STOI. Opus (libopus, 20 ms, VBR) is asked for the rate our stream actually
used and rescaled once when its bytes miss it by more than 3 %.

``--sweep`` instead compares layer settings (masking exponent, dead zone,
prediction weights; noise filling, measured in
results/enhance_sweep.txt and rejected, is no longer an option) at the backbone's depth 8 and ~10 kbps
of layer. ``--timing`` times the chain at 24 kbps total over depth 8 (best
of ``--repeats``, one thread): the backbone's encode and decode as the codec
runs them, and what the layer adds (the encoder: running the backbone's
decoder to form the residual, and the gain search; the decoder: the layer's
decoding; the inverse MDCT is the backbone's own).

Usage (from the repository root; ~15 minutes on one core, ``--sweep`` ~4)::

    python benchmarks/enhance_prototype.py --corpus ../shared/corpus > benchmarks/results/enhance_prototype.txt
    python benchmarks/enhance_prototype.py --corpus ../shared/corpus --sweep > benchmarks/results/enhance_sweep.txt
    python benchmarks/enhance_prototype.py --corpus ../shared/corpus --timing > benchmarks/results/enhance_timing.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.threads import pin_threads  # noqa: E402

from enhance_common import (CLASSES, decoded_coefficients, fixed_depth, from_internal, held_out_clips,  # noqa: E402
                            kbps, read_mono, to_internal, with_highband)
from adaptive_codec.tools.enhance import LayerConfig, band_bins, decode_layer, fit_gain  # noqa: E402

TOTALS_KBPS = (6.0, 9.0, 12.0, 16.0, 24.0, 32.0)
#: Per class, from ``--sweep`` (results/enhance_sweep.txt): music and ambient
#: score best with noise that follows (or exceeds) the band energy and the
#: backbone's coefficients weighted per band, speech's PESQ with noise flatter
#: than the signal.
CLASS_CONFIG = {"music": LayerConfig(alpha=1.2, predict=True), "ambient": LayerConfig(alpha=1.0, predict=True),
                "speech": LayerConfig(alpha=0.4)}
SWEEP = ({}, {"alpha": 0.4}, {"alpha": 0.8}, {"alpha": 1.0}, {"alpha": 1.2},
         {"alpha": 1.0, "deadzone": 0.3}, {"alpha": 0.4, "deadzone": 0.3}, {"alpha": 1.0, "deadzone": 0.0},
         {"alpha": 1.0, "segment_frames": 25},
         {"alpha": 1.0, "predict": True}, {"alpha": 1.0, "predict": True, "fill": False},
         {"alpha": 0.4, "deadzone": 0.3, "predict": True})
CHUNK_FRAMES = 450
FRAMING_BYTES = 8  # per chunk: payload length and CRC-32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--seconds", type=float, default=8.0, help="first seconds of each clip")
    parser.add_argument("--per-class", type=int, default=4, help="held-out clips per class")
    parser.add_argument("--depths", default="4,8,12,16", help="backbone depths to try under the layer")
    parser.add_argument("--sweep", action="store_true", help="compare layer settings instead")
    parser.add_argument("--timing", action="store_true", help="time the chain at 24 kbps instead")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (best kept)")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2
    try:
        depths = sorted({int(d) for d in args.depths.split(",")})
    except ValueError:
        print(f"error: --depths must be comma-separated integers, got {args.depths!r}", file=sys.stderr)
        return 2
    if not (args.seconds > 0 and args.per_class >= 1 and all(1 <= d <= 16 for d in depths)):
        print("error: --seconds must be > 0, --per-class >= 1, depths in 1..16", file=sys.stderr)
        return 2

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.bench.baselines import OpusBaseline
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.bench.metrics import pesq_wb, stoi, visqol

    pin_threads(1)
    codec = AdaptiveCodec.default()
    bb = codec.backbone
    internal = bb.config.sample_rate_hz
    edges = band_bins(bb.config.hop, internal)
    opus = OpusBaseline()
    if opus.available():
        print(f"error: Opus baseline unavailable: {opus.available()}", file=sys.stderr)
        return 2
    clips = held_out_clips(args.corpus, args.per_class)
    print("# Enhancement layer prototype (issue 34): held-out corpus clips, mono downmix, actual bytes")
    print(f"# weights {codec.weights_meta['weights_id']}; executor {bb.executor}; git {git_revision()}; "
          f"{platform.processor() or platform.machine()}, 1 thread; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"# clips (first {args.seconds:g} s): " + ", ".join(f"{p.stem} [{sr // 1000} kHz]" for _, p, sr in clips))
    print("# layer settings: " + "; ".join(f"{k} {v}" for k, v in CLASS_CONFIG.items()))

    def quality(label, x, sr, x24, y, y24):
        row = [visqol(x, y, sr), visqol(x24, y24, internal)]
        return row + ([pesq_wb(x, y, sr), stoi(x, y, sr)] if label == "speech" else [math.nan, math.nan])

    def enhanced(header, coef, n24, n, sr):
        y24 = bb.inverse_mdct(coef, n24)
        return y24, with_highband(header, from_internal(codec, y24, sr, n))

    if args.timing:
        print(f"\n## Time at 24 kbps total, depth 8 + layer (best of {args.repeats}, one thread)\n")
        print("| clip | s | backbone encode | + decoder run | + gain search | backbone decode | + layer decode |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        total = np.zeros(5)
        audio_s = 0.0
        for label, path, _ in clips:
            x, sr = read_mono(path, args.seconds)
            seconds = x.size / sr
            cfg = CLASS_CONFIG[label]
            target = bb.mdct.frames(to_internal(codec, x, sr))
            prof = fixed_depth(codec.registry.get(label), 8)
            data = codec.encode(x, sr, profile=prof)
            coef, _ = decoded_coefficients(codec, data)
            left = 24.0 * seconds * 1000 / 8 - len(data)
            payload, _ = fit_gain(target, coef, left, cfg, edges)
            best = np.full(5, np.inf)
            for _ in range(args.repeats):
                for i, fn in enumerate((lambda: codec.encode(x, sr, profile=prof),
                                        lambda: decoded_coefficients(codec, data),
                                        lambda: fit_gain(target, coef, left, cfg, edges),
                                        lambda: codec.decode(data),
                                        lambda: decode_layer(payload, coef, cfg, edges))):
                    t = time.perf_counter()
                    fn()
                    best[i] = min(best[i], time.perf_counter() - t)
            total += best
            audio_s += seconds
            print(f"| {label} {path.stem[:30]} | {seconds:.0f} | " + " | ".join(f"{v:.3f}" for v in best) + " |",
                  flush=True)
        enc0, dec0 = total[0], total[3]
        enc1, dec1 = total[0] + total[1] + total[2], total[3] + total[4]
        print(f"\nBackbone alone: encode {audio_s / enc0:.0f}x, decode {audio_s / dec0:.0f}x, encode + decode "
              f"{audio_s / (enc0 + dec0):.0f}x real time; with the layer: encode {audio_s / enc1:.0f}x, decode "
              f"{audio_s / dec1:.0f}x, encode + decode {audio_s / (enc1 + dec1):.0f}x real time (load "
              f"{os.getloadavg()[0]:.1f})")
        return 0

    if args.sweep:
        print("\n## Layer settings at backbone depth 8 + ~10 kbps of layer (mean over the clips of each class)\n")
        print("| class | setting | total kbps | ViSQOL full | in band | PESQ-WB |")
        print("|---|---|---:|---:|---:|---:|")
        acc: dict[tuple[str, int], list[list[float]]] = {}
        for label, path, _ in clips:
            x, sr = read_mono(path, args.seconds)
            seconds = x.size / sr
            x24 = to_internal(codec, x, sr)
            target = bb.mdct.frames(x24)
            data = codec.encode(x, sr, profile=fixed_depth(codec.registry.get(label), 8))
            coef, header = decoded_coefficients(codec, data)
            for i, change in enumerate(SWEEP):
                cfg = dataclasses.replace(LayerConfig(), **change)
                payload, out = fit_gain(target, coef, 10.0 * seconds * 1000 / 8, cfg, edges)
                y24, y = enhanced(header, out, x24.size, x.size, sr)
                acc.setdefault((label, i), []).append(
                    [kbps(len(data) + len(payload), seconds)] + quality(label, x, sr, x24, y, y24))
        for label in CLASSES:
            for i, change in enumerate(SWEEP):
                if (label, i) in acc:
                    m = np.nanmean(np.array(acc[(label, i)]), axis=0)
                    name = ", ".join(f"{k}={v}" for k, v in change.items()) or "default"
                    print(f"| {label} | {name} | {m[0]:.2f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.3f} |")
        return 0

    res: dict[tuple[str, float, int], list[list[float]]] = {}
    ops: dict[tuple[str, float], list[list[float]]] = {}
    times = {"layer_enc": 0.0, "layer_dec": 0.0, "audio_s": 0.0}
    for label, path, _ in clips:
        x, sr = read_mono(path, args.seconds)
        seconds = x.size / sr
        x24 = to_internal(codec, x, sr)
        target = bb.mdct.frames(x24)
        cfg = CLASS_CONFIG[label]
        base = codec.registry.get(label)
        streams = {d: codec.encode(x, sr, profile=fixed_depth(base, d)) for d in depths}
        decoded = {d: decoded_coefficients(codec, s) for d, s in streams.items()}
        framing = FRAMING_BYTES * math.ceil(target.shape[0] / CHUNK_FRAMES)
        for total in TOTALS_KBPS:
            budget_all = total * seconds * 1000 / 8
            best_actual = None
            for d in depths:
                left = budget_all - len(streams[d]) - framing
                if left < 1000 * seconds / 8:  # under 1 kbps for the layer: not tried
                    continue
                coef, header = decoded[d]
                t = time.perf_counter()
                fitted = fit_gain(target, coef, left, cfg, edges)
                t_enc = time.perf_counter() - t
                if fitted is None:
                    continue
                payload, out = fitted
                t = time.perf_counter()
                check = decode_layer(payload, coef, cfg, edges)
                t_dec = time.perf_counter() - t
                if not np.array_equal(check, out):
                    print(f"error: layer round trip differs on {path.stem}", file=sys.stderr)
                    return 1
                if total == 24.0:
                    times["layer_enc"] += t_enc
                    times["layer_dec"] += t_dec
                    times["audio_s"] += seconds
                y24, y = enhanced(header, out, x24.size, x.size, sr)
                actual = kbps(len(streams[d]) + framing + len(payload), seconds)
                res.setdefault((label, total, d), []).append([actual] + quality(label, x, sr, x24, y, y24))
                best_actual = actual if best_actual is None else max(best_actual, actual)
            ask = best_actual if best_actual is not None else total
            od = opus.encode(x, sr, ask)
            if abs(kbps(len(od), seconds) / ask - 1) > 0.03:
                od = opus.encode(x, sr, ask * ask / kbps(len(od), seconds))
            yo = opus.decode(od, sr, x.size)
            yo24 = to_internal(codec, yo, sr)
            ops.setdefault((label, total), []).append([kbps(len(od), seconds)] + quality(label, x, sr, x24, yo, yo24))
        print(f"# done {label} {path.stem} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)

    for label in CLASSES:
        if not any(k[0] == label for k in res):
            continue
        print(f"\n## {label}: backbone depth D + layer, total asked -> actual kbps (mean over clips)\n")
        print("| total | D | actual kbps | ViSQOL full | in band | PESQ-WB | STOI | Opus kbps | Opus ViSQOL | Opus PESQ-WB |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for total in TOTALS_KBPS:
            o = np.nanmean(np.array(ops[(label, total)]), axis=0)
            for d in depths:
                if (label, total, d) not in res:
                    continue
                rows = res[(label, total, d)]
                m = np.nanmean(np.array(rows), axis=0)
                n = f" ({len(rows)} clips)" if len(rows) != len(ops[(label, total)]) else ""
                print(f"| {total:g} | {d}{n} | {m[0]:.2f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.3f} | {m[4]:.3f} | "
                      f"{o[0]:.2f} | {o[1]:.3f} | {o[3]:.3f} |")
    s = times["audio_s"]
    if s:
        print(f"\nLayer at 24 kbps total, one thread: encode (gain search on estimated sizes, then one coding) "
              f"{s / times['layer_enc']:.0f}x real time, decode {s / times['layer_dec']:.0f}x real time "
              f"(the layer alone; backbone and high band not included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
