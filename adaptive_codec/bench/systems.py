"""The systems a benchmark compares and the jobs (system x bitrate) it runs.

The adaptive codec is wrapped in the same interface as the baselines
(:class:`~adaptive_codec.bench.baselines.Baseline`): ``adaptive-auto``
classifies and routes; ``adaptive-<profile>`` forces one profile for the
whole clip. A forced profile takes the ladder's bitrate as ``bitrate_kbps``
(an override of its depth). ``adaptive-auto`` by default takes rung ``B`` as
a scale ``B / reference_kbps`` of each routed profile's own bitrate
(``auto_ladder = "relative"``): the profiles' allocation (each profile's
own ``bitrate_kbps``) is part of what routing buys, and the actual bitrate,
measured from the bytes, is what the rate-quality curves and BD-rates use.
``auto_ladder = "absolute"`` codes every segment at ``B`` instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from adaptive_codec.planning.rate import Rate
from adaptive_codec.bench.baselines import Baseline, make_baseline
from adaptive_codec.bench.config import BenchConfig

__all__ = ["AdaptiveSystem", "Job", "build_systems", "jobs_for"]


class AdaptiveSystem(Baseline):
    """The adaptive codec, auto-routed (``profile="auto"``) or with one forced profile.

    Attributes
    ----------
    last_plan : list of PlannedSegment
        The segments and profiles of the last :meth:`encode` (routing timeline).
    """

    def __init__(self, codec, profile: str = "auto", reference_kbps: float | None = None) -> None:
        self.codec = codec
        self.profile = profile
        self.name = f"adaptive-{profile}"
        # Set: a rung B codes each profile at its own bitrate x B / reference_kbps.
        self.reference_kbps = reference_kbps
        self.last_plan: list = []

    def encode(self, audio: np.ndarray, sample_rate_hz: int, bitrate_kbps: float | None) -> bytes:
        buf = io.BytesIO()
        if self.reference_kbps is not None and bitrate_kbps is not None:
            rate = Rate(scale=bitrate_kbps / self.reference_kbps)
        else:
            rate = Rate(kbps=bitrate_kbps)
        self.last_plan = self.codec.encode_to(buf, np.asarray(audio, np.float32), sample_rate_hz,
                                              profile=self.profile, rate=rate)
        return buf.getvalue()

    def decode(self, data: bytes, sample_rate_hz: int, n_samples: int) -> np.ndarray:
        y, sr = self.codec.decode(data)
        if sr != sample_rate_hz or y.shape[-1] != n_samples:
            raise RuntimeError(f"decoder returned {y.shape} at {sr} Hz, expected "
                               f"{n_samples} samples at {sample_rate_hz} Hz")
        return np.asarray(y, np.float32).reshape(-1)


@dataclass(frozen=True)
class Job:
    """One coding of a clip: a system at a nominal bitrate (None for lossless)."""

    system: str
    kind: str  # "adaptive" | "profile" | "baseline" | "lossless"
    nominal_kbps: float | None


def build_systems(config: BenchConfig, codec, registry) -> tuple[dict[str, Baseline], list[str]]:
    """Systems by name, and notes on those skipped (e.g. Codec2 not installed)."""
    systems: dict[str, Baseline] = {}
    notes: list[str] = []
    if config.auto:
        reference = config.reference_kbps if config.auto_ladder == "relative" else None
        systems["adaptive-auto"] = AdaptiveSystem(codec, "auto", reference_kbps=reference)
    names = registry.names() if config.profiles == "all" else list(config.profiles)
    for name in names:
        registry.get(name)  # unknown names fail early with the registry's message
        systems[f"adaptive-{name}"] = AdaptiveSystem(codec, name)
    for name in config.baselines:
        baseline = make_baseline(name, config.opus if name == "opus" else None)
        reason = baseline.available()
        if reason:
            notes.append(f"{name} skipped: {reason}")
            continue
        systems[name] = baseline
    return systems, notes


def jobs_for(label: str, systems: dict[str, Baseline], config: BenchConfig) -> list[Job]:
    """Every (system, nominal bitrate) to run on a clip of class ``label``."""
    jobs = []
    for name, system in systems.items():
        if system.speech_only and label != "speech":
            continue
        if system.lossless:
            jobs.append(Job(name, "lossless", None))
            continue
        kind = ("adaptive" if name == "adaptive-auto" else
                "profile" if isinstance(system, AdaptiveSystem) else "baseline")
        jobs += [Job(name, kind, float(kbps)) for kbps in config.bitrates_kbps]
    return jobs
