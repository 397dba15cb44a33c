"""A probe for issue 30's decode cost: would fusing up-sampling and high band in one STFT pay?

The idea: take the STFT (sqrt-Hann, hop half a frame) of the backbone's
24 kHz output, zero-pad each frame's spectrum to the source rate's frame
(320 samples at 24 kHz <-> 640 at 48 kHz or 588 at 44.1 kHz), fill the
bins above the crossover with the shaped high band, one inverse transform
at the source rate, overlap-add. In the tool's path this would replace
the codec's kaiser polyphase resampler. This probe measures, on
``examples/music.flac`` (downmixed, taken to 24 kHz by the codec's
resampler, tiled to ``--seconds``), CPU seconds (best of ``--repeats``,
one thread) of: the kaiser up-sampling; the fused transform pair with its
overlap-add (no high band filled in); and the SNR below 11 kHz of the
fused up-sampling against the kaiser one. Not a coding tool.

Run: ``OMP_NUM_THREADS=1 python benchmarks/highband_fusion_probe.py``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.fft as sfft
import soundfile as sf

from adaptive_codec.audio.resampling import resample_signal

INTERNAL_HZ = 24000
FRAME = 320  # internal-rate STFT frame (the synthesis' 640 at 48 kHz)


def best_cpu(f: Callable[[], object], repeats: int) -> float:
    """Best CPU time of ``repeats`` calls of ``f``, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.process_time()
        f()
        times.append(time.process_time() - t)
    return min(times)


def sqrt_hann(n: int) -> np.ndarray:
    """Periodic sqrt-Hann window of ``n`` samples (power-complementary at hop n/2)."""
    return np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def fused_upsample(x: np.ndarray, sr_to: int, block: int = 128) -> np.ndarray:
    """Up-sample ``x`` [shape=(samples,)] from 24 kHz by zero-padded STFT frames, overlap-added.

    Returns np.ndarray [shape=(frames * hop_out + out_frame / 2,)], frame 0 centred at sample 0.
    """
    out_frame = FRAME * sr_to // INTERNAL_HZ
    hop, hop_out = FRAME // 2, out_frame // 2
    padded = np.concatenate([np.zeros(hop, np.float32), x, np.zeros(FRAME, np.float32)])
    n_frames = (len(padded) - FRAME) // hop + 1
    frames = np.lib.stride_tricks.sliding_window_view(padded, FRAME)[::hop][:n_frames]
    w_in, w_out = sqrt_hann(FRAME), sqrt_hann(out_frame)
    y = np.zeros((n_frames + 1) * hop_out, np.float32)
    scale = out_frame / FRAME
    for i in range(0, n_frames, block):
        spec = sfft.rfft(frames[i:i + block] * w_in, axis=1)
        full = np.zeros((spec.shape[0], out_frame // 2 + 1), np.complex64)
        full[:, :spec.shape[1] - 1] = spec[:, :-1]  # the 12 kHz bin would alias: leave it out
        seg = sfft.irfft(full, n=out_frame, axis=1) * (scale * w_out)
        # overlap-add the block's frames: even and odd frames tile without overlap
        for parity in (0, 1):
            part = seg[parity::2]
            start = (i + parity) * hop_out
            flat = part.reshape(-1)
            y[start:start + len(flat)] += flat[:len(y) - start]
    return y[hop_out:hop_out + int(np.ceil(len(x) * sr_to / INTERNAL_HZ))]


def snr_below(ref: np.ndarray, test: np.ndarray, sr: int, cutoff_hz: float) -> float:
    """SNR in dB of ``test`` against ``ref`` counting only content below ``cutoff_hz``."""
    n = min(len(ref), len(test))
    r, t = np.fft.rfft(ref[:n]), np.fft.rfft(test[:n])
    keep = np.fft.rfftfreq(n, 1 / sr) < cutoff_hz
    return float(10 * np.log10(np.sum(np.abs(r[keep]) ** 2) / np.sum(np.abs(r[keep] - t[keep]) ** 2)))


def main() -> None:
    """Print the probe's numbers."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=84.0)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    audio, sr = sf.read(Path(__file__).resolve().parents[1] / "examples" / "music.flac", dtype="float32")
    mono = audio.mean(axis=1) if audio.ndim == 2 else audio
    x = resample_signal(mono, sr, INTERNAL_HZ)
    x = np.tile(x, int(np.ceil(args.seconds * INTERNAL_HZ / len(x))))[:int(args.seconds * INTERNAL_HZ)]
    print(f"# fused up-sampling probe: examples/music.flac tiled to {args.seconds:.0f} s, "
          f"best of {args.repeats}, CPU s, one thread; load average {os.getloadavg()[0]:.1f}")
    print("| to | kaiser resampler | fused STFT pair + OLA | SNR below 11 kHz (fused vs kaiser) |")
    print("|---|---:|---:|---:|")
    for sr_to in (48000, 44100):
        t_k = best_cpu(lambda: resample_signal(x, INTERNAL_HZ, sr_to), args.repeats)
        t_f = best_cpu(lambda: fused_upsample(x, sr_to), args.repeats)
        snr = snr_below(resample_signal(x, INTERNAL_HZ, sr_to), fused_upsample(x, sr_to), sr_to, 11000.0)
        print(f"| {sr_to} | {t_k:.3f} | {t_f:.3f} | {snr:.1f} dB |")


if __name__ == "__main__":
    main()
