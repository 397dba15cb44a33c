"""Where speech intelligibility is lost: STOI per one-third octave band, ours vs Opus.

STOI (Taal et al. 2011) is the mean, over 15 one-third octave bands
(150 Hz-4.3 kHz) and 384 ms segments, of the correlation between the
reference's and the coded signal's band envelopes. This script prints that
mean *per band* for the codec (each clip's class profile forced, its bitrate
or ``--kbps``) and for Opus at the same nominal bitrate, on the corpus'
held-out speech clips, so a STOI gap can be traced to the bands that cause
it. The per-band numbers are pystoi's own intermediate values (same
resampling to 10 kHz, silent-frame removal, clipping); their mean over bands
is each system's STOI.

Usage (from the repository root; ~1 minute on one core)::

    python benchmarks/stoi_bands.py --corpus ../shared/corpus > benchmarks/results/stoi_bands.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.threads import pin_threads  # noqa: E402


def band_correlations(reference: np.ndarray, degraded: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """STOI's intermediate correlation per one-third octave band, averaged over segments.

    Returns
    -------
    np.ndarray [shape=(15,)]
        Its mean is ``pystoi.stoi(reference, degraded, sample_rate_hz)``.
    """
    from pystoi import utils
    from pystoi.stoi import BETA, DYN_RANGE, FS, N, N_FRAME, NFFT, OBM

    x, y = np.asarray(reference, np.float64), np.asarray(degraded, np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if sample_rate_hz != FS:
            x, y = utils.resample_oct(x, FS, sample_rate_hz), utils.resample_oct(y, FS, sample_rate_hz)
        x, y = utils.remove_silent_frames(x, y, DYN_RANGE, N_FRAME, int(N_FRAME / 2))
    xt = np.sqrt(OBM @ np.square(np.abs(utils.stft(x, N_FRAME, NFFT, overlap=2).T)))
    yt = np.sqrt(OBM @ np.square(np.abs(utils.stft(y, N_FRAME, NFFT, overlap=2).T)))
    if xt.shape[1] < N:
        raise ValueError("clip too short for STOI (fewer than 30 non-silent frames)")
    xs = np.stack([xt[:, m - N : m] for m in range(N, xt.shape[1] + 1)])  # (segments, bands, N)
    ys = np.stack([yt[:, m - N : m] for m in range(N, yt.shape[1] + 1)])
    ys = ys * np.linalg.norm(xs, axis=2, keepdims=True) / (np.linalg.norm(ys, axis=2, keepdims=True) + utils.EPS)
    ys = np.minimum(ys, xs * (1 + 10 ** (-BETA / 20)))
    xs = xs - xs.mean(2, keepdims=True)
    ys = ys - ys.mean(2, keepdims=True)
    xs /= np.linalg.norm(xs, axis=2, keepdims=True) + utils.EPS
    ys /= np.linalg.norm(ys, axis=2, keepdims=True) + utils.EPS
    return (xs * ys).sum(2).mean(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--seconds", type=float, default=8.0, help="first seconds of each clip")
    parser.add_argument("--kbps", type=float, default=6.0, help="bitrate of both systems")
    parser.add_argument("--weights", type=Path, default=None, help="backbone weights (default: shipped)")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2
    if not (args.seconds > 0 and args.kbps > 0):
        print("error: --seconds and --kbps must be > 0", file=sys.stderr)
        return 2

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.bench.baselines import OpusBaseline
    from adaptive_codec.errors import AdaptiveCodecError
    from adaptive_codec.train.codec_data import corpus_clips, read_mono

    pin_threads(1)
    try:
        codec = AdaptiveCodec.default(weights=args.weights) if args.weights else AdaptiveCodec.default()
    except AdaptiveCodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    opus = OpusBaseline()
    missing = opus.available()
    if missing:
        print(f"error: Opus baseline unavailable: {missing}", file=sys.stderr)
        return 2
    clips = sorted((c.path for c in corpus_clips(args.corpus, "test") if c.label == "speech"), key=str)
    rev = git_revision()
    print("# STOI per one-third octave band: ours (speech profile) vs Opus, held-out speech")
    print(f"# weights {codec.weights_meta['weights_id']}; git {rev}; {platform.processor() or platform.machine()}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# {len(clips)} clips, first {args.seconds:g} s, mono 24 kHz; {args.kbps:g} kbps nominal for both "
          "(actual kbps from the bytes)")
    sr = 24000
    ours, theirs, kbps_ours, kbps_opus = [], [], [], []
    for path in clips:
        x = read_mono(path, sr)[: int(args.seconds * sr)].astype(np.float32)
        if np.sqrt(np.mean(x**2)) < 1e-3:
            continue
        data = codec.encode(x, sr, profile="speech", bitrate_kbps=args.kbps)
        y, _ = codec.decode(data)
        z, n_bytes = opus.encode_decode(x, sr, args.kbps)
        a, b = band_correlations(x, y, sr), band_correlations(x, z, sr)
        ours.append(a)
        theirs.append(b)
        kbps_ours.append(len(data) * 8 / (x.size / sr) / 1000)
        kbps_opus.append(n_bytes * 8 / (x.size / sr) / 1000)
        print(f"  {path.name[:40]:40s} STOI ours {a.mean():.3f}  opus {b.mean():.3f}", flush=True)
    if not ours:
        print("error: no non-silent held-out speech clips", file=sys.stderr)
        return 2
    from pystoi.stoi import CF

    a, b = np.mean(ours, 0), np.mean(theirs, 0)
    print("\n| band (Hz) | ours | Opus | ours - Opus |\n|---:|---:|---:|---:|")
    for f, u, v in zip(CF, a, b):
        print(f"| {f:.0f} | {u:.3f} | {v:.3f} | {u - v:+.3f} |")
    print(f"| **mean (STOI)** | **{a.mean():.4f}** | **{b.mean():.4f}** | **{a.mean() - b.mean():+.4f}** |")
    print(f"\nactual kbps: ours {np.mean(kbps_ours):.2f}, Opus {np.mean(kbps_opus):.2f}; {len(ours)} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
