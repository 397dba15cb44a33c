"""Held-out evaluation during codec training (never on training clips).

Speech is scored with PESQ-WB and STOI (16 kHz), every class with a
multi-scale log-mel distance floored 60 dB below the reference's peak and
the output/input RMS ratio (a codec that loses energy sounds muffled).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from ..backbone.model import Backbone
from .codec_data import CLASSES, corpus_clips, read_mono


@dataclass
class HeldOutSet:
    """A few fixed held-out excerpts per class at 24 kHz."""

    audio: dict[str, list[np.ndarray]]

    @classmethod
    def from_corpus(cls, corpus_dir: Path, per_class: int = 4, seconds: float = 6.0,
                    sample_rate_hz: int = 24000) -> "HeldOutSet":
        clips = corpus_clips(Path(corpus_dir), "test")
        audio: dict[str, list[np.ndarray]] = {c: [] for c in CLASSES}
        for clip in clips:
            if len(audio[clip.label]) >= per_class:
                continue
            x = read_mono(clip.path, sample_rate_hz)[: int(seconds * sample_rate_hz)]
            if np.sqrt(np.mean(x**2)) > 1e-3:
                audio[clip.label].append(x)
        return cls(audio)


def mel_distance(estimate: np.ndarray, reference: np.ndarray, sample_rate_hz: int,
                 floor_db: float = 60.0) -> float:
    """Mean |log10 mel| distance over 3 resolutions, floored relative to the reference peak.

    The benchmark's :func:`~adaptive_codec.bench.metrics.mel_distance_db` (same
    scales, floor and 24 kHz analysis) divided by 10: the training logs have
    always been in log10 units (bels), so their curves stay comparable.
    """
    from ..bench.metrics import mel_distance_db

    return mel_distance_db(reference, estimate, sample_rate_hz, floor_db=floor_db) / 10


@torch.no_grad()
def roundtrip(model: Backbone, audio: np.ndarray, profile: str, n_q: int) -> np.ndarray:
    """Encode and decode one mono 24 kHz clip with a built-in profile."""
    x = torch.from_numpy(audio).float()[None]
    cond = model.profile_vector(profile)[None, None, :]
    codes = model.encode_codes(x, cond, n_q)
    return model.decode_codes(codes, cond, x.shape[-1])[0].numpy()


def evaluate(model: Backbone, held_out: HeldOutSet, n_q: int) -> dict[str, float]:
    """Per-class held-out metrics at depth ``n_q``."""
    from pesq import pesq
    from pystoi import stoi

    sr = model.config.sample_rate_hz
    out: dict[str, float] = {}
    for label, clips in held_out.audio.items():
        mels, ratios, pesqs, stois = [], [], [], []
        for ref in clips:
            est = roundtrip(model, ref, label, n_q)
            mels.append(mel_distance(est, ref, sr))
            ratios.append(float(np.sqrt(np.mean(est**2)) / (np.sqrt(np.mean(ref**2)) + 1e-12)))
            if label == "speech":
                r16 = torchaudio.functional.resample(torch.from_numpy(ref), sr, 16000).numpy()
                e16 = torchaudio.functional.resample(torch.from_numpy(est), sr, 16000).numpy()
                try:
                    pesqs.append(pesq(16000, r16, e16, "wb"))
                except Exception:  # noqa: BLE001 - PESQ refuses some inputs (no speech found)
                    pass
                stois.append(stoi(r16, e16, 16000, extended=False))
        if not clips:
            continue
        out[f"{label}_mel"] = float(np.mean(mels))
        out[f"{label}_rms_ratio"] = float(np.mean(ratios))
        if pesqs:
            out["speech_pesq"] = float(np.mean(pesqs))
        if stois:
            out["speech_stoi"] = float(np.mean(stois))
    return out
