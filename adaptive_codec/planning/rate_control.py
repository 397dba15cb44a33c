"""Rate control on the coded bits: the asked bitrate is the whole stream's bits per second of audio.

The asked rate covers everything a stream holds: preamble, header (profile
and segment tables, the rate record), every chunk of every channel with its
length and CRC, and any side section (``overhead_bits``, e.g. a high band).
Depths are chosen chunk span by chunk span against a running budget, on the
bytes the entropy coder actually writes:

1. Every planned segment has a target ``bps`` (its profile's rate under
   the request: ``--bitrate`` for all, or the profile's own rate times
   ``--bitrate-scale``), so a file's target is the frame-weighted sum of
   its segments' rates times its duration; auto mode keeps the profiles'
   split between classes.
2. The payload budget is that target less the once-paid bits (the header
   without its segment rows, and per-stream side sections) and less the
   measured per-span side sections; each span's segment rows are counted
   with its chunks. Spans share it in proportion to
   their frames' targets; what a span over- or under-spends is carried
   into the next one's budget (error feedback), so the file's total lands
   on the target and no span drifts by more than the carry.
3. A span's depths are a function of one number, the *scale* ``s`` on the
   segments' targets: each segment part gets ``s`` times its share of bits
   counted in the entropy tables' expected bits per level; a fixed-depth
   profile codes its first ``k`` frames at ``q + 1`` levels and the rest
   at ``q`` (two segment rows, about 12 header bytes per span), an
   energy-adaptive profile spends the budget with its energy rule
   (:func:`~adaptive_codec.planning.depth_allocation.allocate_depths`).
   The mid/side side channel follows the mid at a fraction of its depth.
   ``s`` is searched in ``log s`` from the previous span's value (bracket
   by steps of 1.5x, then regula falsi) on the *measured* bytes of the span's chunks
   (``measure``): the tables only map the scale to depths; whatever they
   mispredict (a clip's codes compressing better or worse than the tables'
   training codes) the measurement corrects.
4. A span that cannot reach its budget is coded at the limit (every frame at
   the deepest, or the shallowest, setting). When the file's total misses
   the target by more than :data:`RATE_TOLERANCE` because of such spans, the
   stream records that it was capped (:class:`RateOutcome`).

This module is NumPy-only: the entropy coder is reached through ``measure``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from adaptive_codec.planning.depth_allocation import allocate_depths

__all__ = ["RATE_TOLERANCE", "CAP_NONE", "CAP_DEEPEST", "CAP_SHALLOWEST", "PartTarget", "SpanChoice",
           "RateOutcome", "RateController", "fixed_depths", "cap_message", "rate_summary"]

#: Relative miss of the asked total that counts as reaching it.
RATE_TOLERANCE = 0.03
#: ``RateOutcome.cap`` values (also the stream's ``rate_limit`` field).
CAP_NONE, CAP_DEEPEST, CAP_SHALLOWEST = 0, 1, 2
#: Regula falsi steps per span after the bracket; each measures the span once.
SEARCH_STEPS = 14
#: Stop searching when the last span's measured bits are this close to its budget.
SEARCH_TOLERANCE = 0.002
#: The same for every other span: what it misses, the next span's budget repays.
SPAN_TOLERANCE = 0.01
#: Factor between the scales tried while bracketing a span's budget.
BRACKET_STEP = 1.5
#: A span's budget stays within these multiples of its share, whatever the
#: carry: one bad span is repaid over several, not by starving the next.
BUDGET_CLIP = (0.5, 2.0)


@dataclass(frozen=True)
class PartTarget:
    """One planned segment's frames inside the stream, with what it may spend.

    Attributes
    ----------
    start_frame, end_frame : int
    bps : float
        Target bits per second of audio of the segment (whole stream's rate).
    slope : float
        The profile's ``depth_slope`` (0: fixed depth per row).
    level_bits : np.ndarray [shape=(n_levels,)]
        Expected bits of an index at each level (the entropy tables' costs
        of the segment's prior, or the fixed index length).
    key : int
        The caller's index of the segment (returned in the rows).
    """

    start_frame: int
    end_frame: int
    bps: float
    slope: float
    level_bits: np.ndarray = field(repr=False)
    key: int = 0


@dataclass(frozen=True)
class SpanChoice:
    """Depths of one span ``[start_frame, end_frame)``.

    Attributes
    ----------
    depths : list of np.ndarray [shape=(frames,)], int64
        Per channel.
    rows : list of list of tuple
        Per channel, ``(start_frame, end_frame, key, n_q, adaptive)`` rows
        covering the span.
    bits : float
        Measured bits of the span's chunks (``measure`` of these depths).
    limit : int
        ``CAP_DEEPEST`` / ``CAP_SHALLOWEST`` when the span's budget was out of
        reach and it was coded at that limit, else ``CAP_NONE``.
    payload : object
        What ``measure`` returned beside the bits (e.g. the coded chunks),
        so the chosen span is not coded twice.
    """

    depths: list[np.ndarray]
    rows: list[list[tuple[int, int, int, int, bool]]]
    bits: float
    limit: int
    payload: object = None


@dataclass(frozen=True)
class RateOutcome:
    """What the stream delivered against what was asked.

    Attributes
    ----------
    asked_bps : float
        The whole stream's target, bits per second of audio.
    actual_bps : float
        Its measured size in bits over its duration.
    cap : int
        ``CAP_NONE``, ``CAP_DEEPEST`` or ``CAP_SHALLOWEST``.
    """

    asked_bps: float
    actual_bps: float
    cap: int = CAP_NONE

    @property
    def ratio(self) -> float:
        return self.actual_bps / self.asked_bps if self.asked_bps > 0 else float("nan")

    @property
    def message(self) -> str | None:
        """The one-line capped-target note, or None when the target was reached."""
        return cap_message(self.cap, self.actual_bps, self.asked_bps)


def cap_message(cap: int, actual_bps: float, asked_bps: float) -> str | None:
    """``"capped at 7.6 kbps: the deepest setting (asked 12 kbps)"``, or None for ``CAP_NONE``."""
    if cap == CAP_NONE:
        return None
    which = "the deepest setting" if cap == CAP_DEEPEST else "the shallowest setting"
    return f"capped at {actual_bps / 1000:.2f} kbps: {which} (asked {asked_bps / 1000:.4g} kbps)"


def fixed_depths(n_frames: int, budget_bits: float, cost: np.ndarray) -> tuple[int, int]:
    """``(q, k)``: the first ``k`` of ``n_frames`` frames at ``q + 1`` levels, the rest at ``q``.

    The mix whose expected bits (``cost[d]``: bits of a frame of depth ``d``)
    come closest to ``budget_bits``, within depths ``1..len(cost) - 1``.
    """
    top = len(cost) - 1
    per_frame = budget_bits / max(n_frames, 1)
    if per_frame <= cost[1]:
        return 1, 0
    if per_frame >= cost[top]:
        return top, 0
    q = int(np.searchsorted(cost, per_frame, side="right")) - 1
    frac = (per_frame - cost[q]) / (cost[q + 1] - cost[q])
    k = int(round(frac * n_frames))
    if k >= n_frames:
        return q + 1, 0
    return q, k


def rate_summary(asked_bps: float, actual_bps: float, cap: int = CAP_NONE) -> str:
    """One line for reports: ``"asked 6.00 kbps, actual 6.01 kbps (1.002x)"``, or the capped-target note.

    ``asked_bps`` 0 (no target: fixed depths) gives ``"actual 6.01 kbps (fixed depths)"``.
    """
    if asked_bps <= 0:
        return f"actual {actual_bps / 1000:.2f} kbps (fixed depths, no target)"
    note = cap_message(cap, actual_bps, asked_bps)
    if note is not None:
        return note
    return f"asked {asked_bps / 1000:.2f} kbps, actual {actual_bps / 1000:.2f} kbps ({actual_bps / asked_bps:.3f}x)"


class RateController:
    """Choose every span's depths so the stream's measured bits follow the asked total.

    Parameters
    ----------
    parts : sequence of PartTarget
        The planned segments, in frame order, covering ``[0, n_frames)``.
    n_frames : int
    duration_s : float
        The audio's duration (what the asked rate is per second of).
    frame_rate_hz : float
    n_levels : int
        Deepest depth of a frame.
    channels : int
        Channels coded with their own depths: 1 (mono, or all channels with
        the same depths) or 2 for mid/side, where channel 1 (the side)
        follows the mid at ``max(1, depth // side_divisor)``, or not at all
        when ``side_coded`` is False.
    fixed_bits : float
        Bits paid once, outside every span: preamble, header and any
        per-stream side section (measured by the caller).
    side_divisor : int
    side_coded : bool
    overhead_bits : callable, optional
        ``overhead_bits(start_frame, end_frame)``: measured bits of side
        sections for a span (e.g. a high band coded beside the backbone);
        they are paid from the same budget.
    """

    def __init__(self, parts: Sequence[PartTarget], n_frames: int, duration_s: float, frame_rate_hz: float,
                 n_levels: int, channels: int = 1, fixed_bits: float = 0.0, side_divisor: int = 2,
                 side_coded: bool = True,
                 overhead_bits: Callable[[int, int], float] | None = None) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2 (mid/side), got {channels}")
        self.parts = list(parts)
        self.n_frames, self.n_levels = int(n_frames), int(n_levels)
        self.channels, self.side_divisor, self.side_coded = channels, int(side_divisor), bool(side_coded)
        self.overhead_bits = overhead_bits
        frames = np.array([p.end_frame - p.start_frame for p in self.parts], np.float64)
        bps = np.array([p.bps for p in self.parts], np.float64)
        # The asked total: each segment's rate over its share of the duration.
        self.asked_bps = float((frames * bps).sum() / max(frames.sum(), 1.0))
        self.asked_bits = self.asked_bps * float(duration_s)
        self._frame_share = duration_s / max(n_frames, 1)  # seconds a frame stands for
        self.fixed_bits = float(fixed_bits)
        self._costs = [np.concatenate([[0.0], np.cumsum(np.asarray(p.level_bits, np.float64)[:n_levels])])
                       for p in self.parts]
        self.spent_bits = 0.0  # spans coded so far, with their side sections
        self.planned_bits = 0.0  # their shares of the payload budget
        self.limits: list[int] = []
        self._last_scale = 1.0  # the tables' own prediction, for the first span

    # -- budget ------------------------------------------------------------
    def share_bits(self, a: int, b: int) -> float:
        """Target bits of frames ``[a, b)`` (their segments' rates over their duration)."""
        total = 0.0
        for p in self.parts:
            lo, hi = max(a, p.start_frame), min(b, p.end_frame)
            if hi > lo:
                total += p.bps * (hi - lo) * self._frame_share
        return total

    def span_budget(self, a: int, b: int, fixed_bits: float | None = None) -> tuple[float, float]:
        """``(budget, share)``: bits span ``[a, b)`` may take (its share of the payload plus the carry), and that share."""
        fixed = self.fixed_bits if fixed_bits is None else fixed_bits
        payload_factor = max(self.asked_bits - fixed, 0.0) / max(self.asked_bits, 1e-9)
        share = self.share_bits(a, b) * payload_factor
        carry = self.planned_bits - self.spent_bits
        lo, hi = BUDGET_CLIP
        return float(np.clip(share + carry, lo * share, hi * share)), share

    # -- depths of a span ----------------------------------------------------
    def _mid(self, a: int, b: int, scale: float, log_energy: np.ndarray | None):
        depths = np.zeros(b - a, np.int64)
        rows: list[tuple[int, int, int, int, bool]] = []
        for i, p in enumerate(self.parts):
            lo, hi = max(a, p.start_frame), min(b, p.end_frame)
            if hi <= lo:
                continue
            cost = self._costs[i]
            budget = scale * p.bps * (hi - lo) * self._frame_share
            if p.slope > 0 and log_energy is not None:
                # The row's n_q (it sets the depth bounds) is the depth whose
                # cost covers the budget: the frames' mean stays at or below it.
                q, k = fixed_depths(hi - lo, budget, cost)
                q = min(q + (k > 0), self.n_levels)
                previous = int(depths[lo - a - 1]) if lo > a else 0
                d = allocate_depths(log_energy[lo - a : hi - a], q, p.slope, self.n_levels, p.level_bits,
                                    previous=previous, budget_bits=budget)
                depths[lo - a : hi - a] = d
                rows.append((lo, hi, p.key, q, True))
                continue
            q, k = fixed_depths(hi - lo, budget, cost)
            depths[lo - a : lo - a + k] = q + 1
            depths[lo - a + k : hi - a] = q
            if k:
                rows.append((lo, lo + k, p.key, q + 1, False))
            rows.append((lo + k, hi, p.key, q, False))
        return depths, rows

    def _side(self, mid_rows) -> tuple[np.ndarray, list]:
        rows = []
        for lo, hi, key, q, adaptive in mid_rows:
            q_side = max(1, q // self.side_divisor) if self.side_coded else 0
            rows.append((lo, hi, key, q_side, False))
        a = mid_rows[0][0]
        depths = np.zeros(mid_rows[-1][1] - a, np.int64)
        for lo, hi, _, q, _ in rows:
            depths[lo - a : hi - a] = q
        return depths, rows

    def depths_at(self, a: int, b: int, scale: float, log_energy: np.ndarray | None = None):
        """``(depths per channel, rows per channel)`` of span ``[a, b)`` at ``scale``."""
        mid, rows = self._mid(a, b, scale, log_energy)
        if self.channels == 1:
            return [mid], [rows]
        side, side_rows = self._side(rows)
        return [mid, side], [rows, side_rows]

    def _scale_bounds(self, a: int, b: int) -> tuple[float, float]:
        """Scales at which every frame of the span is at depth 1, and at the deepest depth."""
        lo, hi = math.inf, 0.0
        for i, p in enumerate(self.parts):
            n = min(b, p.end_frame) - max(a, p.start_frame)
            if n <= 0:
                continue
            per_frame = p.bps * self._frame_share
            lo = min(lo, self._costs[i][1] / per_frame)
            hi = max(hi, self._costs[i][-1] / per_frame)
        return lo * 0.999, hi * 1.001

    # -- the search ------------------------------------------------------------
    def choose(self, a: int, b: int, measure: Callable[[list[np.ndarray], list[list]], tuple[float, object]],
               log_energy: np.ndarray | None = None, fixed_bits: float | None = None) -> SpanChoice:
        """Depths of span ``[a, b)`` whose measured bits come closest to its budget; the span is then spent.

        Parameters
        ----------
        measure : callable
            ``measure(depths, rows) -> (bits, payload)``: the bits the span's
            chunks take at those depths (entropy-coded, with their framing)
            and the header bytes its rows add.
        log_energy : np.ndarray [shape=(b - a,)], optional
            Mid frames' log10 energies, for energy-adaptive profiles.
        fixed_bits : float, optional
            The current estimate of the stream's once-paid bits (default:
            the constructor's).
        """
        budget, share = self.span_budget(a, b, fixed_bits)
        side = float(self.overhead_bits(a, b)) if self.overhead_bits is not None else 0.0
        budget_chunks = budget - side
        s_lo, s_hi = self._scale_bounds(a, b)
        tried: list[tuple[float, float, SpanChoice]] = []

        def at(scale: float) -> SpanChoice:
            depths, rows = self.depths_at(a, b, scale, log_energy)
            bits, payload = measure(depths, rows)
            choice = SpanChoice(depths, rows, float(bits), CAP_NONE, payload)
            tried.append((scale, float(bits), choice))
            return choice

        # Near the previous span's scale (the content changes slowly), then a
        # bracket by steps of 1.5x, then regula falsi (Illinois) in log scale.
        # A span may miss by SPAN_TOLERANCE: the carry repays it; the last
        # span, which nothing follows, is searched to SEARCH_TOLERANCE.
        tol = (SEARCH_TOLERANCE if b >= self.n_frames else SPAN_TOLERANCE) * budget_chunks
        limit = CAP_NONE
        x = math.log(min(max(self._last_scale, s_lo), s_hi))
        c = at(math.exp(x))
        lo = hi = None  # (log scale, bits - budget) on either side of the budget
        if c.bits <= budget_chunks:
            lo = (x, c.bits - budget_chunks)
        else:
            hi = (x, c.bits - budget_chunks)
        while abs(c.bits - budget_chunks) > tol and (lo is None or hi is None):
            if hi is None:
                if x >= math.log(s_hi):
                    limit = CAP_DEEPEST
                    break
                x = min(x + math.log(BRACKET_STEP), math.log(s_hi))
            else:
                if x <= math.log(s_lo):
                    limit = CAP_SHALLOWEST
                    break
                x = max(x - math.log(BRACKET_STEP), math.log(s_lo))
            c = at(math.exp(x))
            if c.bits <= budget_chunks:
                lo = (x, c.bits - budget_chunks)
            else:
                hi = (x, c.bits - budget_chunks)
        side_kept = 0  # Illinois: halve the kept end's value when one end is kept twice
        for _ in range(SEARCH_STEPS):
            if limit != CAP_NONE or abs(c.bits - budget_chunks) <= tol or lo is None or hi is None:
                break
            (xl, fl), (xh, fh) = lo, hi
            if xh - xl < 1e-7:
                break
            x = xl - fl * (xh - xl) / (fh - fl)
            c = at(math.exp(x))
            f = c.bits - budget_chunks
            if f <= 0:
                lo = (x, f)
                hi = (xh, fh / 2) if side_kept == 1 else hi
                side_kept = 1
            else:
                hi = (x, f)
                lo = (xl, fl / 2) if side_kept == -1 else lo
                side_kept = -1
        if limit != CAP_NONE:
            best = c
        else:
            best = min((t[2] for t in tried), key=lambda t: abs(t.bits - budget_chunks))
            self._last_scale = next(t[0] for t in tried if t[2] is best)
        self.planned_bits += share
        self.spent_bits += best.bits + side
        self.limits.append(limit)
        return SpanChoice(best.depths, best.rows, best.bits, limit, best.payload)

    def outcome(self, total_bits: float, duration_s: float) -> RateOutcome:
        """The stream's delivered rate (``total_bits``: its measured size) and whether it was capped."""
        actual = total_bits / duration_s if duration_s > 0 else 0.0
        cap = CAP_NONE
        miss = actual / self.asked_bps - 1 if self.asked_bps > 0 else 0.0
        if miss < -RATE_TOLERANCE and CAP_DEEPEST in self.limits:
            cap = CAP_DEEPEST
        elif miss > RATE_TOLERANCE and CAP_SHALLOWEST in self.limits:
            cap = CAP_SHALLOWEST
        return RateOutcome(self.asked_bps, actual, cap)
