"""A probe for issue 30's cost target: what a cheaper high-band synthesis would cost and lose.

The shipped synthesis (:mod:`adaptive_codec.tools.highband.synthesis`)
transforms the decoded signal forward and back on an STFT with hop half a
codec frame. This probe replaces it, outside the codec, by the cheapest
design we could think of that needs no forward transform: noise only, one
low-overlap frame per codec frame (hop ``M`` = a codec frame at the
source rate, frames ``M + M/4`` long, power-complementary sine tapers of
``M/4``), shaped to the stream's decoded envelope and added to the decoded
signal without the section (the band from 11.6 kHz on, since without a
forward transform the decoder cannot tell what the backbone already has
near the crossover). It reports, per held-out full-band clip at 6 kbps
asked (the class profile): ViSQOL with the shipped synthesis, with the
probe and without a high band; the 12-20 kHz level error of both; and the
decode cost of both over the decode without the section (CPU seconds,
best of ``--repeats``, runs alternating, one thread).

Not a coding tool: streams keep decoding with the shipped synthesis; a
new synthesis would need its own section version (docs/FORMAT.md).

Usage (from the repository root; ~2 minutes)::

    python benchmarks/highband_probe.py --corpus ../shared/corpus > benchmarks/results/highband_probe.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy.fft  # noqa: E402

from adaptive_codec.bench.environment import cpu_seconds  # noqa: E402
from adaptive_codec.bench.full_band import full_band_clips, level_errors, read_mono  # noqa: E402
from adaptive_codec.threads import pin_threads  # noqa: E402

#: The probe's band starts here: the resampler's passband ends at ~11.4 kHz.
PROBE_START_HZ = 11600
#: Frames of the probe's noise table, stepped through as the synthesis' (prime).
NOISE_ROWS = 251
BATCH = 128


@lru_cache(maxsize=8)
def _noise(n_bins: int) -> np.ndarray:
    """Complex Gaussian ``(NOISE_ROWS, n_bins)`` with ``E|z|**2 = 1`` (cached, as the shipped table)."""
    z = np.random.default_rng(1).standard_normal((NOISE_ROWS, 2, n_bins)).astype(np.float32)
    return (z[:, 0] + 1j * z[:, 1]) / np.float32(np.sqrt(2))


class NoiseSynthesis:
    """Noise-only high band on low-overlap frames, one per codec frame (see the module docstring).

    Parameters
    ----------
    header : AcxHeader
        A stream with a high-band section.
    """

    def __init__(self, header) -> None:
        from adaptive_codec.tools.highband.grid import StftGrid
        from adaptive_codec.tools.highband.stage import EnvelopeTrack

        sr = header.original_sample_rate_hz
        grid = StftGrid(sr, header.internal_sample_rate_hz, header.hop_samples)
        self.m = 2 * grid.hop  # a codec frame at the source rate
        self.overlap = self.m // 4
        self.size = self.m + self.overlap
        self.track = EnvelopeTrack(header, grid)
        sec = header.highband
        lows = (sec.start_hz,) + tuple(sec.band_edges_hz[:-1])
        n = self.size
        bins = []
        for lo, hi in zip(lows, sec.band_edges_hz):
            a = int(np.ceil(max(lo, PROBE_START_HZ) * n / sr))
            b = n // 2 + 1 if 2 * hi >= sr else int(np.ceil(hi * n / sr))
            bins.append((a, max(a, b)))
        self.k0, self.k1 = bins[0][0], bins[-1][1]
        self.widths = np.array([b - a for a, b in bins])
        self.table = _noise(self.k1 - self.k0)
        t = (np.arange(self.overlap) + 0.5) / self.overlap
        self.window = np.ones(n, np.float32)
        self.window[: self.overlap] = np.sin(0.5 * np.pi * t)
        self.window[-self.overlap :] = np.cos(0.5 * np.pi * t)

    def __call__(self, y: np.ndarray) -> np.ndarray:
        """``y (samples,)`` (decoded without the section) with the probe's band added."""
        m, n, ov = self.m, self.size, self.overlap
        frames = -(-len(y) // m) + 1
        levels = self.track(2 * np.arange(frames))  # codec frame i is STFT frame 2i
        # A level is the power per bin of unit-variance white noise: E|Z_k|^2 = N * level.
        power = np.where(np.isfinite(levels), 10 ** (np.minimum(levels, 60.0) / 10), 0.0)
        gains = np.sqrt(power * n).astype(np.float32)
        out = np.zeros((frames + 2) * m, np.float32)
        for a in range(0, frames, BATCH):
            b = min(a + BATCH, frames)
            spec = np.zeros((b - a, n // 2 + 1), np.complex64)
            spec[:, self.k0 : self.k1] = (self.table[(np.arange(a, b) * 7919) % NOISE_ROWS]
                                          * np.repeat(gains[a:b], self.widths, axis=-1))
            wet = scipy.fft.irfft(spec, n=n, axis=-1) * self.window  # frame i starts at i*M - N/2
            out[a * m : b * m] += wet[:, :m].reshape(-1)
            out[(a + 1) * m : (b + 1) * m].reshape(b - a, m)[:, :ov] += wet[:, m:]
        return y + out[n // 2 : n // 2 + len(y)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--seconds", type=float, default=10.0, help="first seconds of each clip")
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats (best kept)")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2
    if not (args.seconds > 0 and args.repeats >= 1):
        print("error: --seconds must be > 0 and --repeats >= 1", file=sys.stderr)
        return 2

    from adaptive_codec import AdaptiveCodec
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.bench.metrics import visqol
    from adaptive_codec.container.acx import AcxStream, read_acx, to_bytes

    pin_threads(1)
    codec = AdaptiveCodec.default()
    clips = full_band_clips(args.corpus)
    if not clips:
        print("error: no held-out 44.1/48 kHz clips in the corpus", file=sys.stderr)
        return 2

    print("# High-band synthesis probe (issue 30 cost): noise-only low-overlap frames vs the shipped synthesis")
    print(f"# weights {codec.weights_meta['weights_id']}; git {git_revision()}; 1 thread; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average {os.getloadavg()[0]:.1f}")
    print(f"\n6 kbps asked, class profile; decode cost in CPU s over the decode without the section "
          f"(best of {args.repeats}).\n")
    print("| class | clip | ViSQOL shipped | probe | none | level err shipped dB | probe | cost shipped | probe |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for label, path in clips:
        x, sr = read_mono(path, args.seconds)
        data = codec.encode(x, sr, profile=label, bitrate_kbps=6.0)
        stream = read_acx(data)
        header = stream.header
        if header.highband is None:
            continue
        plain = to_bytes(AcxStream.from_header(dataclasses.replace(header, highband=None), stream.chunks))
        best = np.full(3, np.inf)
        for _ in range(args.repeats):
            t0, shipped = cpu_seconds(lambda: codec.decode(data)[0])
            t1, bare = cpu_seconds(lambda: codec.decode(plain)[0])
            # Built in the timing: its envelope spans are decoded anew, as the decoder does.
            t2, probed = cpu_seconds(lambda: NoiseSynthesis(header)(bare))
            best = np.minimum(best, (t0, t1, t2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            err = [np.nanmean(np.abs(level_errors(x, y, sr))) for y in (shipped, probed)]
        row = (visqol(x, shipped, sr), visqol(x, probed, sr), visqol(x, bare, sr), *err,
               100 * (best[0] / best[1] - 1), 100 * best[2] / best[1])
        rows.append((label, row))
        print(f"| {label} | {path.stem[:30]} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} | {row[3]:.1f} | "
              f"{row[4]:.1f} | {row[5]:+.1f} % | {row[6]:+.1f} % |", flush=True)
    print()
    for label in sorted({lab for lab, _ in rows}):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mean = np.nanmean([r for lab, r in rows if lab == label], axis=0)
        print(f"- {label}: ViSQOL shipped {mean[0]:.3f}, probe {mean[1]:.3f}, none {mean[2]:.3f}; level error "
              f"{mean[3]:.1f} / {mean[4]:.1f} dB; decode cost {mean[5]:+.1f} % / {mean[6]:+.1f} %")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
