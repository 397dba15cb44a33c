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

from adaptive_codec.audio import INTERNAL_SAMPLE_RATE_HZ
from adaptive_codec.backbone.model import Backbone
from adaptive_codec.bench.metrics import mel_distance_db
from adaptive_codec.planning.depth_allocation import allocate_depths
from adaptive_codec.profiles.builtin import BUILTIN_CLASSES
from adaptive_codec.train.codec_data import corpus_clips, read_mono


@dataclass
class HeldOutSet:
    """A few fixed held-out excerpts per class at 24 kHz."""

    audio: dict[str, list[np.ndarray]]

    @classmethod
    def from_corpus(cls, corpus_dir: Path, per_class: int = 4, seconds: float = 6.0,
                    sample_rate_hz: int = INTERNAL_SAMPLE_RATE_HZ) -> "HeldOutSet":
        clips = corpus_clips(Path(corpus_dir), "test")
        audio: dict[str, list[np.ndarray]] = {c: [] for c in BUILTIN_CLASSES}
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
    return mel_distance_db(reference, estimate, sample_rate_hz, floor_db=floor_db) / 10


@torch.no_grad()
def roundtrip(model: Backbone, audio: np.ndarray, profile: str, n_q: int,
              depth_slope: float = 0.0) -> np.ndarray:
    """Encode and decode one mono 24 kHz clip with a built-in profile.

    With ``depth_slope`` > 0 the frames get energy-adaptive depths (budget
    ``n_q``), as the codec gives a profile with that slope (the depth map's
    bits are paid from the budget, as in a stream of one chunk).
    """
    x = torch.from_numpy(audio).float()[None]
    cond = model.profile_vector(profile)[None, None, :]
    if depth_slope <= 0:
        codes = model.encode_codes(x, cond, n_q)
        return model.decode_codes(codes, cond, x.shape[-1])[0].numpy()
    cfg = model.config
    depths: list[torch.Tensor] = []

    def depth_fn(energy: torch.Tensor) -> torch.Tensor:
        depths.append(torch.from_numpy(allocate_depths(
            energy[0].numpy(), n_q, depth_slope, cfg.n_levels, cfg.bits_per_index))[None])
        return depths[0]

    codes = model.encode_codes(x, cond, cfg.n_levels, depth_fn=depth_fn)
    decoded = model.decoder(model.quantizer.decode_masked(codes, depths[0]), cond)
    return model.synthesis(decoded, x.shape[-1])[0][0].numpy()


def speech_scores(ref: np.ndarray, est: np.ndarray, sr: int) -> tuple[float | None, float]:
    """PESQ-WB (None where PESQ finds no speech) and STOI at 16 kHz."""
    # Optional (the bench extra): only a run with a held-out set scores speech.
    from pesq import pesq
    from pystoi import stoi

    r16 = torchaudio.functional.resample(torch.from_numpy(ref), sr, 16000).numpy()
    e16 = torchaudio.functional.resample(torch.from_numpy(est), sr, 16000).numpy()
    try:
        p = pesq(16000, r16, e16, "wb")
    except Exception:  # noqa: BLE001 - PESQ refuses some inputs (no speech found)
        p = None
    return p, stoi(r16, e16, 16000, extended=False)


def evaluate(model: Backbone, held_out: HeldOutSet, n_q: int,
             depth_slopes: dict[str, float] | None = None) -> dict[str, float]:
    """Per-class held-out metrics at depth ``n_q``.

    For classes with a ``depth_slopes`` entry > 0, speech scores are also
    given with energy-adaptive depth (``speech_pesq_adaptive``,
    ``speech_stoi_adaptive``): what the codec ships for that profile.
    """
    sr = model.config.sample_rate_hz
    out: dict[str, float] = {}
    for label, clips in held_out.audio.items():
        if not clips:
            continue
        slope = (depth_slopes or {}).get(label, 0.0)
        mels, ratios, scores, adaptive = [], [], [], []
        for ref in clips:
            est = roundtrip(model, ref, label, n_q)
            mels.append(mel_distance(est, ref, sr))
            ratios.append(float(np.sqrt(np.mean(est**2)) / (np.sqrt(np.mean(ref**2)) + 1e-12)))
            if label == "speech":
                scores.append(speech_scores(ref, est, sr))
                if slope > 0:
                    adaptive.append(speech_scores(ref, roundtrip(model, ref, label, n_q, slope), sr))
        out[f"{label}_mel"] = float(np.mean(mels))
        out[f"{label}_rms_ratio"] = float(np.mean(ratios))
        for suffix, rows in (("", scores), ("_adaptive", adaptive)):
            pesqs = [p for p, _ in rows if p is not None]
            if pesqs:
                out[f"speech_pesq{suffix}"] = float(np.mean(pesqs))
            if rows:
                out[f"speech_stoi{suffix}"] = float(np.mean([s for _, s in rows]))
    return out
