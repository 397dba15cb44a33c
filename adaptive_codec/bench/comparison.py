"""Which system beats which: the BD-rate table, the per-class headline and the routing target.

Curves are per class and system: mean actual kbps vs mean quality over the
class's clips, one point per nominal rung (rungs that gave the same stream
size, e.g. Opus' floor, are one point). BD values come from
:func:`~adaptive_codec.bench.bd_rate.bd_compare` (upper envelope, PCHIP,
overlap only), so every number is either computed the same way or "n/a"
with its reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .bd_rate import BDResult, bd_compare
from .metrics import METRICS

__all__ = ["BD_COLUMNS", "ROUTING_TARGET_PERCENT", "RoutingTarget", "bd_table", "curve",
           "headline_table", "routing_target"]

BD_COLUMNS: tuple[str, ...] = (
    "label", "metric", "test", "anchor", "bd_rate_percent", "bd_quality", "test_points",
    "anchor_points", "dropped_points", "quality_low", "quality_high", "quality_overlap", "note",
)
#: Issue 7's target: adaptive routing needs at least 15 % fewer bits than the
#: best single fixed profile on the mixed files, at equal ViSQOL.
ROUTING_TARGET_PERCENT = -15.0
#: Below this share of the union of both quality ranges, a BD-rate describes a
#: small part of the curves; the note says so (the value is still given).
NARROW_OVERLAP = 0.25
AUTO = "adaptive-auto"


def curve(summary: pd.DataFrame, label: str, system: str, column: str
          ) -> tuple[np.ndarray, np.ndarray]:
    """``(mean actual kbps, mean quality)`` of one system on one class, by rate."""
    part = summary[(summary.label == label) & (summary.system == system)]
    part = part[part["bitrate_kbps"].notna() & part[column].notna()].sort_values("bitrate_kbps")
    # Rungs that gave the same stream size (Opus' floor) are one point, not two.
    part = part.drop_duplicates(subset="bitrate_kbps")
    return part["bitrate_kbps"].to_numpy(float), part[column].to_numpy(float)


def _fixed_profiles(systems: set[str]) -> list[str]:
    return sorted(s for s in systems if s.startswith("adaptive-") and s != AUTO)


def _note(result: BDResult) -> str:
    """Why a value is n/a, which points the envelope left out, and a narrow overlap."""
    parts = []
    if result.rate_reason:
        parts.append(f"BD-rate n/a: {result.rate_reason}")
    if result.quality_reason and result.quality_reason != result.rate_reason:
        parts.append(f"BD-quality n/a: {result.quality_reason}")
    if result.quality_overlap < NARROW_OVERLAP and not result.rate_reason:
        parts.append(f"narrow: the curves share {result.quality_overlap:.0%} of their quality range")
    left_out = [f"{name} {usable - kept} of {usable}" for name, usable, kept in (
        ("test", result.test_usable, result.test_points),
        ("anchor", result.anchor_usable, result.anchor_points)) if usable > kept]
    if left_out:
        parts.append("under the upper envelope: " + ", ".join(left_out))
    return "; ".join(parts)


def bd_table(summary: pd.DataFrame, metrics: list[str], *, method: str = "pchip") -> pd.DataFrame:
    """BD rows (:data:`BD_COLUMNS`) per class and quality metric (config names).

    Pairs: ``adaptive-auto`` against every fixed profile and every lossy
    baseline, and every fixed profile against Opus. Negative ``bd_rate_percent``:
    the test system needs fewer bits for the same quality.
    """
    rows = []
    lossy = summary[summary.kind != "lossless"]
    for label in sorted(lossy.label.unique()):
        systems = set(lossy[lossy.label == label].system)
        profiles = _fixed_profiles(systems)
        baselines = sorted(s for s in systems if not s.startswith("adaptive-"))
        pairs = [(AUTO, a) for a in profiles + baselines if AUTO in systems]
        pairs += [(p, "opus") for p in profiles if "opus" in systems]
        for name in metrics:
            metric = METRICS[name]
            col = metric.column
            if col not in lossy or lossy[lossy.label == label][col].notna().sum() == 0:
                continue
            for test, anchor in pairs:
                result = bd_compare(*curve(summary, label, anchor, col),
                                    *curve(summary, label, test, col),
                                    higher_is_better=metric.higher_is_better, method=method)
                rows.append({
                    "label": label, "metric": col, "test": test, "anchor": anchor,
                    "bd_rate_percent": result.rate_percent, "bd_quality": result.quality,
                    "test_points": result.test_points, "anchor_points": result.anchor_points,
                    "dropped_points": result.dropped_points, "quality_low": result.quality_low,
                    "quality_high": result.quality_high, "quality_overlap": result.quality_overlap,
                    "note": _note(result),
                })
    return pd.DataFrame(rows, columns=list(BD_COLUMNS))


@dataclass(frozen=True)
class RoutingTarget:
    """Issue 7's routing target on one class (normally ``mixed``), evaluated.

    Attributes
    ----------
    verdict : str
        ``"met"``, ``"not met"`` or ``"undetermined"`` (some fixed profile's
        BD-rate is n/a and the computed ones do not already decide it).
    best_profile : str
        The fixed profile ``adaptive-auto`` saves least against (largest
        BD-rate); "" when none was computed.
    bd_rate_percent : float
        BD-rate of ``adaptive-auto`` against ``best_profile``; NaN when none.
    sentence : str
        The verdict and its reason, for the report.
    comparisons : pandas.DataFrame
        ``adaptive-auto`` against every fixed profile and Opus (rows of :func:`bd_table`).
    """

    verdict: str
    best_profile: str
    bd_rate_percent: float
    sentence: str
    comparisons: pd.DataFrame


def routing_target(bd: pd.DataFrame, *, label: str = "mixed", metric: str = "visqol",
                   threshold_percent: float = ROUTING_TARGET_PERCENT) -> RoutingTarget:
    """Does adaptive routing save >= ``-threshold_percent`` % bits vs the best fixed profile?

    The best single fixed profile is the one ``adaptive-auto`` saves least
    against. The target is met when every fixed profile's BD-rate is computed
    and the largest is <= ``threshold_percent``; not met as soon as one
    computed BD-rate is above it (the best profile is at least that good);
    undetermined otherwise.
    """
    column = METRICS[metric].column
    part = bd[(bd.label == label) & (bd.metric == column) & (bd.test == AUTO)]
    profiles = part[part.anchor.str.startswith("adaptive-")]
    comparisons = part[part.anchor.str.startswith("adaptive-") | (part.anchor == "opus")]
    what = f"adaptive-auto vs the best fixed profile on {label} files (BD-rate on {column})"
    if profiles.empty:
        return RoutingTarget("undetermined", "", math.nan,
                             f"{what}: undetermined, no {label} files or no fixed profiles in this run",
                             comparisons)
    done = profiles[profiles.bd_rate_percent.notna()]
    missing = profiles[profiles.bd_rate_percent.isna()]
    best = done.loc[done.bd_rate_percent.idxmax()] if len(done) else None
    target = f"target <= {threshold_percent:g} %"
    if best is not None and best.bd_rate_percent > threshold_percent:
        verdict = "not met"
        sentence = (f"{what}: {best.bd_rate_percent:+.1f} % against {best.anchor} "
                    f"({target}): NOT MET")
    elif len(missing):
        verdict = "undetermined"
        reasons = "; ".join(f"{r.anchor}: {r.note}" for r in missing.itertuples())
        sentence = f"{what}: undetermined, BD-rate n/a against {reasons}"
    else:
        verdict = "met"
        sentence = (f"{what}: {best.bd_rate_percent:+.1f} % against {best.anchor} "
                    f"({target}): met")
    return RoutingTarget(verdict, "" if best is None else str(best.anchor),
                         math.nan if best is None else float(best.bd_rate_percent),
                         sentence, comparisons)


def _profiles_note(target: RoutingTarget) -> str:
    if target.verdict != "undetermined":
        return ""
    if not target.best_profile:
        return "vs fixed profiles: BD-rate n/a (see the BD-rate table)"
    return "best fixed profile undetermined: some BD-rates n/a"


def headline_table(bd: pd.DataFrame, metric: str = "visqol") -> pd.DataFrame:
    """Per class: ``adaptive-auto`` vs its best fixed profile and vs Opus on ``metric``."""
    column = METRICS[metric].column
    rows = []
    part = bd[(bd.test == AUTO) & (bd.metric == column)]
    for label in sorted(part.label.unique()):
        target = routing_target(bd, label=label, metric=metric)
        opus = part[(part.label == label) & (part.anchor == "opus")]
        opus_row = opus.iloc[0] if len(opus) else None
        rows.append({
            "label": label,
            "best fixed profile": target.best_profile or "n/a",
            "BD-rate vs best fixed profile (%)": target.bd_rate_percent,
            "BD-rate vs Opus (%)": math.nan if opus_row is None else opus_row.bd_rate_percent,
            f"BD-{column} vs Opus": math.nan if opus_row is None else opus_row.bd_quality,
            "note": "; ".join(n for n in (_profiles_note(target),
                                          "" if opus_row is None or not opus_row.note
                                          else f"vs Opus: {opus_row.note}") if n),
        })
    return pd.DataFrame(rows)
