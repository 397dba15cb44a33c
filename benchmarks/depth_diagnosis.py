"""What limits quality as the RVQ depth grows (issue 34, step 1): quality vs depth 1..16 and the ceilings.

On held-out corpus clips (``--per-class`` per class, mono downmix, first
``--seconds`` s), each class's own profile at a FIXED depth ``n_q`` = 1..16
(no bitrate target; rate from the stream's bytes), torch-free runtime. Per
class, mean over its clips:

- actual kbps (whole stream: every header, table and the high band);
- ViSQOL v3 (audio mode, 48 kHz) **in band**: the backbone's 24 kHz output
  against the input at 24 kHz (= the input low-passed at 12 kHz), so the
  band cut is not counted;
- ViSQOL **full band** at the clip's own rate: the decoder's output with the
  high-band tool (for 16 kHz speech, the same as in band);
- speech: PESQ-WB and STOI of the decoded output;
- the MDCT-domain SNR (dB) of the decoded coefficients against the input's,
  whole band and in 0-4 / 4-8 / 8-12 kHz: where the error is;
- the quantizer: the latent's residual energy after each level, relative to
  the latent (the encoder's unquantized latent, whole clip at once).

Ceilings, per class: the MDCT analysis + synthesis alone (no quantization,
in band); the ORIGINAL low band (input low-passed at 12 kHz) plus the
stream's high band (what a perfect backbone would score full band); the
original low band without any high band.

Usage (from the repository root; ~10 minutes on one core)::

    python benchmarks/depth_diagnosis.py --corpus ../shared/corpus > benchmarks/results/depth_diagnosis.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.threads import pin_threads  # noqa: E402

from enhance_common import (CLASSES, decoded_coefficients, fixed_depth, from_internal, held_out_clips,  # noqa: E402
                            kbps, read_mono, to_internal, with_highband)

DEPTHS = tuple(range(1, 17))
BANDS_KHZ = ((0, 4), (4, 8), (8, 12))


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """10·log10(Σref² / Σ(ref - got)²) in dB."""
    err = float(((ref - got) ** 2).sum())
    return 10 * np.log10(float((ref * ref).sum()) / max(err, 1e-30))


def band_snrs(x_coef: np.ndarray, y_coef: np.ndarray, internal_hz: int) -> list[float]:
    """:func:`snr_db` of MDCT coefficients ``(frames, hop)`` in each of :data:`BANDS_KHZ`."""
    hop = x_coef.shape[1]
    hz = (np.arange(hop) + 0.5) * internal_hz / 2 / hop
    return [snr_db(x_coef[:, (hz >= lo * 1e3) & (hz < hi * 1e3)], y_coef[:, (hz >= lo * 1e3) & (hz < hi * 1e3)])
            for lo, hi in BANDS_KHZ]


def latent_residuals(codec, x24: np.ndarray, cond: np.ndarray) -> np.ndarray:
    """Residual energy of the encoder's latent after each RVQ level, relative to the latent ``(levels,)``."""
    from adaptive_codec.runtime.engine import constant_rows

    bb = codec.backbone
    features, _ = bb.analyse(x24)
    latent = bb.stacks.encode(np.ascontiguousarray(features), constant_rows(cond[None, :]))
    total = float((latent * latent).sum())
    residual, out = latent, []
    for level in bb.levels:
        residual = residual - level.decode(level.encode(residual))
        out.append(float((residual * residual).sum()) / total)
    return np.array(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--seconds", type=float, default=8.0, help="first seconds of each clip")
    parser.add_argument("--per-class", type=int, default=4, help="held-out clips per class")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2
    if not (args.seconds > 0 and args.per_class >= 1):
        print("error: --seconds must be > 0 and --per-class >= 1", file=sys.stderr)
        return 2

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.bench.metrics import pesq_wb, stoi, visqol

    pin_threads(1)
    codec = AdaptiveCodec.default()
    internal = codec.backbone.config.sample_rate_hz
    clips = held_out_clips(args.corpus, args.per_class)
    print("# Depth diagnosis (issue 34): quality vs fixed RVQ depth, held-out corpus clips, mono downmix")
    print(f"# weights {codec.weights_meta['weights_id']}; executor {codec.backbone.executor}; git {git_revision()}; "
          f"{platform.processor() or platform.machine()}, 1 thread; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"# clips (first {args.seconds:g} s): " + ", ".join(f"{p.stem} [{sr // 1000} kHz]" for _, p, sr in clips))
    print("# ViSQOL v3 audio mode at 48 kHz; in band = 24 kHz output vs the input at 24 kHz; "
          "full band = decoder output (high band on) at the clip's own rate")

    rows: dict[tuple[str, int], list[list[float]]] = {}
    ceil: dict[str, list[list[float]]] = {}
    resid: dict[str, list[np.ndarray]] = {}
    for label, path, _ in clips:
        x, sr = read_mono(path, args.seconds)
        seconds = x.size / sr
        x24 = to_internal(codec, x, sr)
        X = codec.backbone.mdct.frames(x24)
        base = codec.registry.get(label)
        header8 = None
        for depth in DEPTHS:
            data = codec.encode(x, sr, profile=fixed_depth(base, depth))
            coef, header = decoded_coefficients(codec, data)
            header8 = header if depth == 8 else header8
            y24 = codec.backbone.inverse_mdct(coef, x24.size)
            y, _ = codec.decode(data)
            row = [kbps(len(data), seconds), visqol(x24, y24, internal), visqol(x, y, sr),
                   snr_db(X, coef), *band_snrs(X, coef, internal)]
            row += [pesq_wb(x, y, sr), stoi(x, y, sr)] if label == "speech" else [np.nan, np.nan]
            rows.setdefault((label, depth), []).append(row)
        mdct_only = codec.backbone.inverse_mdct(X, x24.size)
        low = from_internal(codec, x24, sr, x.size)
        ceil.setdefault(label, []).append([
            visqol(x24, mdct_only, internal), visqol(x, with_highband(header8, low), sr), visqol(x, low, sr),
            float(header8.highband is not None)])
        resid.setdefault(label, []).append(latent_residuals(codec, x24, codec.prior_and_vector(base)[1]))
        print(f"# done {label} {path.stem} ({time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)

    for label in CLASSES:
        if label not in ceil:
            continue
        n = len(ceil[label])
        print(f"\n## {label} ({n} clips): quality vs depth (profile '{label}', n_q fixed)\n")
        head = "| depth | kbps | ViSQOL in band | ViSQOL full band | MDCT SNR dB | 0-4 kHz | 4-8 | 8-12 |"
        print(head + (" PESQ-WB | STOI |" if label == "speech" else ""))
        print("|---:" * (8 + 2 * (label == "speech")) + "|")
        for depth in DEPTHS:
            m = np.nanmean(np.array(rows[(label, depth)]), axis=0)
            line = (f"| {depth} | {m[0]:.2f} | {m[1]:.3f} | {m[2]:.3f} | {m[3]:.1f} | {m[4]:.1f} | "
                    f"{m[5]:.1f} | {m[6]:.1f} |")
            print(line + (f" {m[7]:.3f} | {m[8]:.3f} |" if label == "speech" else ""))
        c = np.array(ceil[label])
        print(f"\nCeilings: MDCT analysis + synthesis alone, in band: ViSQOL {c[:, 0].mean():.3f}; "
              f"original low band + the stream's high band ({int(c[:, 3].sum())} of {n} clips have one), "
              f"full band: {c[:, 1].mean():.3f}; original low band alone, full band: {c[:, 2].mean():.3f}")
        r = np.mean(resid[label], axis=0)
        print("Latent residual energy after level 1..16 (relative): "
              + " ".join(f"{v:.3f}" for v in r))
        print("Per clip, ViSQOL in band at depth 1 / 8 / 16 | full band at 16 | ceiling low band + high band:")
        for i, (lab, path, sr) in enumerate([c for c in clips if c[0] == label]):
            print(f"  {path.stem[:40]:40s} [{sr // 1000} kHz]  "
                  f"{rows[(label, 1)][i][1]:.3f} / {rows[(label, 8)][i][1]:.3f} / {rows[(label, 16)][i][1]:.3f} | "
                  f"{rows[(label, 16)][i][2]:.3f} | {ceil[label][i][1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
