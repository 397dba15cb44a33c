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

from adaptive_codec.bench.bd_rate import BDResult, bd_compare
from adaptive_codec.bench.metrics import METRICS

__all__ = ["BD_COLUMNS", "ROUTING_TARGET_PERCENT", "BDInterval", "RoutingTarget", "bd_interval",
           "bd_table", "curve", "headline_table", "routing_target"]

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


@dataclass(frozen=True)
class BDInterval:
    """Bootstrap spread of one BD comparison over the clips of a class.

    Attributes
    ----------
    n_clips : int
        Clips both systems have results for (the resampled units).
    n_resamples : int
        Resamples drawn; ``rate_valid`` and ``quality_valid`` count those
        where the BD value was computable (curves overlap).
    level : float
        Central share of the resampled values the interval holds (e.g. 0.9).
    rate_low, rate_high : float
        Interval of the BD-rate in percent (NaN when fewer than half of the
        resamples give a value).
    quality_low, quality_high : float
        Interval of the BD-quality (metric units), same rule.
    share_test_cheaper : float
        Share of the computable resamples in which the test system needs fewer
        bits (BD-rate < 0).
    """

    n_clips: int
    n_resamples: int
    level: float
    rate_valid: int
    quality_valid: int
    rate_low: float
    rate_high: float
    quality_low: float
    quality_high: float
    share_test_cheaper: float

    def sentence(self, what: str = "clips") -> str:
        """One-line description for a report."""
        pct = f"{self.level:.0%}"
        if self.n_clips < 2:
            return f"no bootstrap interval: {self.n_clips} {what}"
        parts = []
        if math.isfinite(self.rate_low):
            parts.append(f"BD-rate {self.rate_low:+.0f} to {self.rate_high:+.0f} %, fewer bits in "
                         f"{self.share_test_cheaper:.0%} of {self.rate_valid} resamples")
        else:
            parts.append(f"BD-rate computable in only {self.rate_valid} of {self.n_resamples} resamples")
        if math.isfinite(self.quality_low):
            parts.append(f"BD-quality {self.quality_low:+.3f} to {self.quality_high:+.3f}")
        return (f"{pct} bootstrap interval over the {self.n_clips} {what} "
                f"({self.n_resamples} paired resamples): " + "; ".join(parts))


def bd_interval(results: pd.DataFrame, label: str, test: str, anchor: str, column: str, *,
                higher_is_better: bool = True, n_resamples: int = 1000, level: float = 0.9,
                seed: int = 0, method: str = "pchip") -> BDInterval:
    """How much a class's BD comparison moves when its clips are resampled.

    A BD value compares two mean curves over a handful of clips; on flat
    curves (ViSQOL at low rates) a few hundredths of quality are tens of
    percent of rate. This draws the class's clips with replacement (the same
    draw for both systems: the comparison is paired), rebuilds both mean
    curves as :func:`curve` does and recomputes the BD values.

    Parameters
    ----------
    results : pandas.DataFrame
        Per-clip rows (``results.csv``): ``clip``, ``label``, ``system``,
        ``nominal_kbps``, ``bitrate_kbps`` and ``column``.
    label, test, anchor, column : str
        Class, the two systems and the quality column.
    higher_is_better : bool
    n_resamples : int
    level : float
        In (0, 1): the central share of resampled values the interval holds.
    seed : int
    method : {"pchip", "cubic"}

    Returns
    -------
    BDInterval
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    part = results[(results.label == label) & results.system.isin([test, anchor])]
    part = part[part["bitrate_kbps"].notna() & part[column].notna()]
    if "error" in part:
        part = part[part["error"].fillna("") == ""]
    rungs = sorted(part.nominal_kbps.dropna().unique())
    clips = sorted(set(part.loc[part.system == test, "clip"]) & set(part.loc[part.system == anchor, "clip"]))
    if len(clips) < 2 or len(rungs) < 2:
        nan = math.nan
        return BDInterval(len(clips), 0, level, 0, 0, nan, nan, nan, nan, nan)
    # (system, clip, rung) -> value; NaN where a clip lacks a rung.
    tables = {}
    for system in (test, anchor):
        rows = part[part.system == system]
        tables[system] = tuple(
            rows.pivot_table(index="clip", columns="nominal_kbps", values=col, aggfunc="mean")
            .reindex(index=clips, columns=rungs).to_numpy(float)
            for col in ("bitrate_kbps", column))
    rng = np.random.default_rng(seed)
    rates, qualities = [], []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(clips), len(clips))
        curves = []
        for system in (anchor, test):
            rate, quality = (np.nanmean(t[pick], axis=0) for t in tables[system])
            ok = np.isfinite(rate) & np.isfinite(quality)
            rate, quality = rate[ok], quality[ok]
            order = np.argsort(rate, kind="stable")
            rate, quality = rate[order], quality[order]
            keep = np.r_[True, np.diff(rate) != 0]  # same stream size: one point (as curve())
            curves += [rate[keep], quality[keep]]
        result = bd_compare(*curves, higher_is_better=higher_is_better, method=method)
        rates.append(result.rate_percent)
        qualities.append(result.quality)
    rates_a, qual_a = np.asarray(rates), np.asarray(qualities)
    tail = (1 - level) / 2 * 100

    def _span(values: np.ndarray) -> tuple[float, float]:
        ok = values[np.isfinite(values)]
        if ok.size * 2 < n_resamples:
            return math.nan, math.nan
        lo, hi = np.percentile(ok, [tail, 100 - tail])
        return float(lo), float(hi)

    finite_rates = rates_a[np.isfinite(rates_a)]
    (rate_low, rate_high), (quality_low, quality_high) = _span(rates_a), _span(qual_a)
    return BDInterval(
        n_clips=len(clips), n_resamples=n_resamples, level=level,
        rate_valid=int(finite_rates.size), quality_valid=int(np.isfinite(qual_a).sum()),
        rate_low=rate_low, rate_high=rate_high, quality_low=quality_low, quality_high=quality_high,
        share_test_cheaper=float((finite_rates < 0).mean()) if finite_rates.size else math.nan)


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
    baseline, and every fixed profile against every lossy baseline (Opus,
    AAC, MP3, Codec2 where run). Negative ``bd_rate_percent``:
    the test system needs fewer bits for the same quality.
    """
    rows = []
    lossy = summary[summary.kind != "lossless"]
    for label in sorted(lossy.label.unique()):
        systems = set(lossy[lossy.label == label].system)
        profiles = _fixed_profiles(systems)
        baselines = sorted(s for s in systems if not s.startswith("adaptive-"))
        pairs = [(AUTO, a) for a in profiles + baselines if AUTO in systems]
        pairs += [(p, b) for p in profiles for b in baselines]
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
