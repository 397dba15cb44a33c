"""Planning stage: classifier segments + profiles + the asked rate -> frame-aligned coded segments.

With ``profile="auto"`` the classifier's segments are routed to profiles
(:func:`adaptive_codec.analysis.routing.route`) and cut on frame boundaries;
a forced profile covers the whole file. Each planned segment carries its
profile, its RVQ depth (:class:`~adaptive_codec.planning.rate.DepthRule`)
and the label and confidence the stream records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adaptive_codec.analysis.routing import route
from adaptive_codec.planning.rate import DepthRule, Rate, target_kbps
from adaptive_codec.profiles import Profile
from adaptive_codec.profiles.registry import ProfileRegistry

__all__ = ["PlannedSegment", "plan_segments", "merge_segments", "AUTO"]

#: The profile name that asks for classification and routing.
AUTO = "auto"
#: What ``auto`` codes a file with when routing leaves no segment (e.g. no frames).
FALLBACK_PROFILE = "ambient"


@dataclass(frozen=True)
class PlannedSegment:
    """A run of frames and how it is coded.

    Attributes
    ----------
    start_frame, end_frame : int
        Frames ``[start_frame, end_frame)`` at the backbone's frame rate.
    profile : Profile
    n_q : int
        RVQ depth (levels per frame; the budget of an energy-adaptive segment).
    label : str
        Class the segment was routed from (the profile's first label when forced).
    confidence : float
        Classifier confidence (1.0 when forced).
    target_kbps : float or None
        Whole-stream rate asked of the segment (rate control's target); None
        for a profile coded at a fixed ``n_q``.
    """

    start_frame: int
    end_frame: int
    profile: Profile
    n_q: int
    label: str
    confidence: float
    target_kbps: float | None = None


def is_auto(profile: str | Path | Profile) -> bool:
    """Whether ``profile`` asks for classification and routing."""
    return isinstance(profile, str) and profile == AUTO


def plan_segments(segments: Sequence | None, registry: ProfileRegistry, profile: str | Path | Profile,
                  n_frames: int, frame_rate_hz: float, rule: DepthRule, rate: Rate,
                  prior_of: Callable[[Profile], int]) -> list[PlannedSegment]:
    """Frame-aligned segments with their profiles and depths.

    Parameters
    ----------
    segments : sequence of Segment or None
        The classifier's segments (``profile="auto"`` only).
    registry : ProfileRegistry
    profile : str, Path or Profile
        ``"auto"``, a profile name, a TOML path or a Profile.
    n_frames : int
        Frames of the whole stream.
    frame_rate_hz : float
    rule : DepthRule
    rate : Rate
        The asked bitrate or scale.
    prior_of : callable
        A profile's entropy prior id (asked only when ``rule.needs_prior``).

    Returns
    -------
    list of PlannedSegment
        Covering ``[0, n_frames)`` in order; neighbours with the same
        profile, depth and label merged.
    """
    def depth(prof: Profile) -> int:
        return rule.depth(prof, rate, prior_of(prof) if rule.needs_prior else None)

    if is_auto(profile):
        pairs = route(segments, registry)
        bounds = [int(round(s.start_s * frame_rate_hz)) for s, _ in pairs[1:]]
        starts = [0] + bounds
        ends = bounds + [n_frames]
        planned = []
        for (seg, prof), a, b in zip(pairs, starts, ends):
            a, b = min(a, n_frames), min(b, n_frames)
            if b > a:
                planned.append(PlannedSegment(a, b, prof, depth(prof), seg.label, float(seg.confidence),
                                              target_kbps(prof, rate)))
        if planned:
            # Rounding can leave a gap at the end: the last segment covers it.
            last = planned[-1]
            planned[-1] = PlannedSegment(last.start_frame, n_frames, last.profile, last.n_q,
                                         last.label, last.confidence, last.target_kbps)
            return merge_segments(planned)
        profile = FALLBACK_PROFILE
    prof = registry.resolve(profile)
    return [PlannedSegment(0, n_frames, prof, depth(prof), prof.labels[0] if prof.labels else prof.name, 1.0,
                           target_kbps(prof, rate))]


def merge_segments(plan: list[PlannedSegment]) -> list[PlannedSegment]:
    """Join neighbours with the same profile, depth and label (smaller tables)."""
    out = [plan[0]]
    for seg in plan[1:]:
        prev = out[-1]
        if (seg.profile.name, seg.n_q, seg.label) == (prev.profile.name, prev.n_q, prev.label):
            n_prev = prev.end_frame - prev.start_frame
            n_seg = seg.end_frame - seg.start_frame
            conf = (prev.confidence * n_prev + seg.confidence * n_seg) / (n_prev + n_seg)
            out[-1] = PlannedSegment(prev.start_frame, seg.end_frame, prev.profile, prev.n_q,
                                     prev.label, conf, prev.target_kbps)
        else:
            out.append(seg)
    return out
