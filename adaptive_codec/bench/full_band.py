"""Full-band benchmark material: the corpus' held-out 44.1/48 kHz clips and the level of their 12-20 kHz band.

Shared by ``benchmarks/highband.py`` and ``benchmarks/highband_probe.py``
(issue 30's high band): which clips, read how, and the level error that
shows whether a decoded high band has the reference's level (so a tool
that merely adds energy is visible).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

__all__ = ["BANDS_HZ", "CONTENT_DB", "band_levels_db", "level_errors", "full_band_clips", "read_mono"]

#: The bands (Hz) whose level is compared.
BANDS_HZ = ((12000, 14000), (14000, 16000), (16000, 18000), (18000, 20000))
#: A reference band below this power density (dB re 1/Hz) holds nothing but
#: recording noise (16-bit quantization noise is -144 dB/Hz at 44.1 kHz):
#: its level error is not counted (the tool does not code such bands).
CONTENT_DB = -135.0


def band_levels_db(x: np.ndarray, sr: int) -> np.ndarray:
    """Level (dB) of ``x (samples,)`` in each of :data:`BANDS_HZ` (Welch power density, 2048-sample Hann)."""
    from scipy.signal import welch

    f, p = welch(np.asarray(x, np.float64), sr, nperseg=2048)
    return np.array([10 * np.log10(p[(f >= lo) & (f < hi)].mean() + 1e-30) for lo, hi in BANDS_HZ])


def level_errors(x: np.ndarray, y: np.ndarray, sr: int) -> np.ndarray:
    """Decoded ``y`` minus reference ``x`` level (dB) per band of :data:`BANDS_HZ`; NaN where the reference is empty."""
    ref, got = band_levels_db(x, sr), band_levels_db(y, sr)
    return np.where(ref > CONTENT_DB, got - ref, np.nan)


def full_band_clips(corpus: Path) -> list[tuple[str, Path]]:
    """(label, path) of the held-out clips of ``corpus/manifest.csv`` whose source was 44.1 or 48 kHz."""
    from adaptive_codec.bench.corpus import is_held_out

    with open(corpus / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return sorted((r["label"], corpus / r["path"]) for r in rows
                  if r["orig_sample_rate"] in ("44100", "48000") and is_held_out(r["source"]))


def read_mono(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of ``path`` as a mono downmix ``(samples,)`` float32, and its rate."""
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(x.mean(axis=1)[: int(seconds * sr)]), sr
