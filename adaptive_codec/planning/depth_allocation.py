"""Per-frame RVQ depth: spend a segment's bits on its loud frames.

A segment's depth ``n_q`` is its budget: ``n_q`` levels per frame on
average. With a profile's ``depth_slope`` > 0 the encoder moves levels from
quiet frames (pauses, breaths, decays) to loud ones::

    depth[f] = clip(round(offset + depth_slope * e[f]), lo, hi)

where ``e[f]`` is the frame's log10 energy (10 dB per unit) averaged over
:data:`SMOOTH_FRAMES` frames, ``lo, hi`` come from :func:`depth_bounds` and
``offset`` is found by bisection so the segment's bits meet the budget (what
``n_q`` levels cost on every frame, each level at its own expected bits from
the entropy tables) *after* paying for the depth map itself (about 2 bits per frame, coded in the
chunk ahead of the indices: docs/FORMAT.md, section 4). The decoder needs
only the coded depths, never the rule, so the rule can change without a
format change.

Why: at the same bytes, on the corpus' *training* speech clips (weights
0.dev26414, 6 kbps, 12 clips, whole codec) ``depth_slope = 4`` gave PESQ-WB
1.93 -> 2.16 and STOI 0.861 -> 0.878; music did not change at any slope and
ambient gained nothing within +1 % bitrate, so only the speech profile
enables it (benchmarks/depth_allocation.py; docs/training-journal.md,
"Energy-adaptive depth"). Since 0.dev51600 the profile uses 2.5, the slope
that the benchmark's equal-bytes rule picks on the training clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["SMOOTH_FRAMES", "depth_bounds", "allocate_depths", "depth_frequencies", "depth_map_bits",
           "AdaptiveSegment", "DepthAllocator"]

#: Frames the log energy is averaged over before mapping it to a depth: the
#: depth map then changes less often (1.7 instead of 2.2 bits per frame on
#: speech) at no measured quality cost.
SMOOTH_FRAMES = 3

#: A loud frame gets at most this many times the segment's depth.
MAX_DEPTH_RATIO = 2

#: Probability weight of a depth step of k levels falls ~(5/16)**k (two-sided
#: geometric), as integers: g(0) = 2**15, g(k) = max(1, g(k-1) * 5 // 16).
#: Fitted to speech at ``depth_slope = 4`` (P(step 0) = 0.54, each further
#: level ~0.3 as likely as the one before).
_G0, _NUM, _DEN = 1 << 15, 5, 16
_PRECISION_BITS = 16


def depth_bounds(n_q: int, max_levels: int) -> tuple[int, int]:
    """Smallest and largest per-frame depth for a segment of depth ``n_q``.

    At least ``max(1, n_q // 4)`` levels (depth 0 frames decode as the
    decoder's idea of "nothing", which sounds worse than a coarse frame), at
    most ``min(max_levels, MAX_DEPTH_RATIO * n_q)``.
    """
    lo = max(1, n_q // 4)
    hi = max(lo, min(max_levels, MAX_DEPTH_RATIO * n_q))
    return min(lo, hi), hi


def _smoothed(log_energy: np.ndarray) -> np.ndarray:
    e = np.asarray(log_energy, dtype=np.float64)
    if e.size < 2 or SMOOTH_FRAMES < 2:
        return e
    pad = (SMOOTH_FRAMES // 2, SMOOTH_FRAMES - 1 - SMOOTH_FRAMES // 2)
    return np.convolve(np.pad(e, pad, mode="edge"), np.full(SMOOTH_FRAMES, 1.0 / SMOOTH_FRAMES), mode="valid")


def _level_costs(bits_per_level: float | Sequence[float], max_levels: int) -> np.ndarray:
    """``cost[d]``: bits per frame of depth ``d`` (0..max_levels), the sum of its levels' bits."""
    bits = np.asarray(bits_per_level, dtype=np.float64).reshape(-1)
    if bits.size == 1:
        bits = np.full(max_levels, float(bits[0]))
    if bits.size < max_levels or not np.all(np.isfinite(bits[:max_levels])) or np.any(bits[:max_levels] <= 0):
        raise ValueError(f"bits_per_level: need one positive bit count or {max_levels} of them, "
                         f"got {bits.size} values")
    return np.concatenate([[0.0], np.cumsum(bits[:max_levels])])


def _depths_for(e: np.ndarray, slope: float, target_bits: float, lo: int, hi: int,
                cost: np.ndarray) -> np.ndarray:
    """Depths whose summed cost is the largest not above ``target_bits`` (bisection on the offset)."""
    def at(offset: float) -> np.ndarray:
        return np.clip(np.floor(offset + slope * e + 0.5), lo, hi).astype(np.int64)

    a = float(lo - slope * e.max()) - 1.0  # every frame at lo
    b = float(hi - slope * e.min()) + 1.0  # every frame at hi
    if cost[at(a)].sum() > target_bits:
        return at(a)
    # 32 halvings of a span of at most ~100 levels leave the offset within
    # 1e-7 levels: finer than any step of the (piecewise constant) cost.
    for _ in range(32):
        m = 0.5 * (a + b)
        if cost[at(m)].sum() > target_bits:
            b = m
        else:
            a = m
    return at(a)


def allocate_depths(log_energy: np.ndarray, n_q: int, slope: float, max_levels: int,
                    bits_per_level: float | Sequence[float], previous: int = 0,
                    budget_bits: float | None = None) -> np.ndarray:
    """Per-frame depths for one segment at the rate of ``n_q`` fixed levels.

    Parameters
    ----------
    log_energy : np.ndarray [shape=(frames,)]
        log10 of each frame's mean squared MDCT coefficient (the backbone's
        energy channel).
    n_q : int
        The segment's depth: its budget is what ``n_q`` levels cost on
        every frame.
    slope : float
        Levels per unit of log10 energy (per 10 dB); 0 gives ``n_q`` everywhere.
    max_levels : int
        Largest depth the stream allows.
    bits_per_level : float or sequence of float
        What an index costs: one number for every level (``log2(codebook_size)``
        for fixed-length indices) or one per level (``max_levels`` values: the
        entropy tables' expected bits, ``EntropyModel.level_bits[prior]``).
        Per-level costs keep the segment's *bits* at the budget, not its mean
        depth: deep levels of entropy-coded streams cost more bits than shallow
        ones, so counting levels alone overspends when loud frames go deep.
        Also converts the depth map's own bits into the budget.
    previous : int
        Depth of the frame before the segment (0 at a chunk start): the
        first step of the map is coded relative to it.
    budget_bits : float, optional
        The segment's budget in expected bits (rate control's share for
        it); default: what ``n_q`` levels cost on every frame. ``n_q`` still
        sets the depth bounds.

    Returns
    -------
    np.ndarray [shape=(frames,), dtype=int64]
    """
    e = _smoothed(log_energy)
    if slope <= 0 or e.size == 0 or n_q <= 0:
        return np.full(e.size, n_q, np.int64)
    lo, hi = depth_bounds(n_q, max_levels)
    cost = _level_costs(bits_per_level, max_levels)
    budget = float(cost[min(n_q, max_levels)]) * e.size if budget_bits is None else float(budget_bits)
    target = budget
    depths = _depths_for(e, slope, target, lo, hi, cost)
    # Pay for the map from the budget. Its cost changes little with the
    # target, so this settles in one or two corrections.
    for _ in range(4):
        over = cost[depths].sum() + depth_map_bits(depths, previous, max_levels) - budget
        if over <= 0:
            break
        target -= over + 1e-9
        depths = _depths_for(e, slope, target, lo, hi, cost)
    return depths


def depth_frequencies(previous: int, max_depth: int) -> np.ndarray:
    """Integer frequencies (sum ``2**16``) of the depths ``0..max_depth`` after ``previous``.

    The normative definition (docs/FORMAT.md, section 4): weight
    ``g(|d - previous|)`` with g(0) = 2**15, g(k) = max(1, g(k-1) * 5 // 16)
    for k >= 1, and what is left of ``2**16`` added to ``d = previous``.
    """
    if not 0 <= previous <= max_depth:
        raise ValueError(f"previous depth {previous} out of range 0..{max_depth}")
    g = np.empty(max_depth + 1, np.int64)
    g[0] = _G0
    for k in range(1, max_depth + 1):
        g[k] = max(1, int(g[k - 1]) * _NUM // _DEN)
    freq = g[np.abs(np.arange(max_depth + 1) - previous)]
    freq[previous] += (1 << _PRECISION_BITS) - int(freq.sum())
    return freq


@lru_cache(maxsize=8)
def _bits_table(max_depth: int) -> np.ndarray:
    """``[previous, depth]`` -> bits of coding ``depth`` after ``previous``."""
    freq = np.stack([depth_frequencies(q, max_depth) for q in range(max_depth + 1)])
    table = _PRECISION_BITS - np.log2(freq.astype(np.float64))
    table.setflags(write=False)
    return table


def depth_map_bits(depths: np.ndarray, previous: int, max_depth: int) -> float:
    """Information content (bits) of a depth map under :func:`depth_frequencies`."""
    d = np.asarray(depths, dtype=np.int64).reshape(-1)
    if d.size == 0:
        return 0.0
    prev = np.concatenate([[int(previous)], d[:-1]])
    return float(_bits_table(max_depth)[prev, d].sum())


@dataclass(frozen=True)
class AdaptiveSegment:
    """A segment whose per-frame depth the allocator chooses.

    Attributes
    ----------
    start_frame, end_frame : int
    n_q : int
        The segment's depth budget (levels per frame on average).
    slope : float
        The profile's ``depth_slope``.
    bits_per_level : float or sequence of float
        Expected bits of an index at each level (the same costs that chose
        ``n_q``).
    """

    start_frame: int
    end_frame: int
    n_q: int
    slope: float
    bits_per_level: float | Sequence[float]


class DepthAllocator:
    """Stage: energy-adaptive depths of one channel's frames, one bitstream chunk at a time.

    Frame energies arrive as the backbone analyses its pieces
    (:meth:`allocate`); every bitstream chunk whose frames all have an
    energy is allocated at once (each adaptive segment's span in the chunk
    by :func:`allocate_depths`), so a chunk's depths need nothing outside
    the chunk and every span of a long segment keeps the segment's rate (a
    loud minute cannot starve a quiet one).

    Parameters
    ----------
    nominal_depths : np.ndarray [shape=(frames,)], integer
        Each frame's segment depth (the stream's segment table).
    segments : sequence of AdaptiveSegment
        The adaptive segments, in frame order.
    chunk_frames : int
        Frames per bitstream chunk.
    max_levels : int
        Levels of the backbone.
    """

    def __init__(self, nominal_depths: np.ndarray, segments: Sequence[AdaptiveSegment],
                 chunk_frames: int, max_levels: int) -> None:
        # Depths fit int16 (at most max_levels): 2 bytes a frame, not 8, for
        # arrays as long as the stream (a 10-hour file has 2.7 million frames).
        self.depths = np.array(nominal_depths, dtype=np.int16)
        self.segments = list(segments)
        self.chunk_frames = int(chunk_frames)
        self.max_levels = int(max_levels)
        if self.max_levels > np.iinfo(np.int16).max:
            raise ValueError(f"max_levels {self.max_levels} does not fit the depth arrays")
        n = self.depths.shape[0]
        self._energy = np.zeros(n, np.float32)
        self._have = np.zeros(n, bool)
        n_chunks = -(-n // self.chunk_frames)
        # Chunks without adaptive frames need no allocation.
        self._pending = np.zeros(n_chunks, bool)
        # Until its chunk is allocated, an adaptive frame is searched at its upper bound.
        self._search = self.depths.copy()
        for seg in self.segments:
            self._pending[seg.start_frame // self.chunk_frames : -(-seg.end_frame // self.chunk_frames)] = True
            self._search[seg.start_frame : seg.end_frame] = depth_bounds(seg.n_q, self.max_levels)[1]

    def allocate(self, start_frame: int, end_frame: int, log_energy: np.ndarray) -> np.ndarray:
        """Take the energies of frames ``[start_frame, end_frame)``; allocate the chunks they complete.

        Parameters
        ----------
        log_energy : np.ndarray [shape=(end_frame - start_frame,)]
            log10 energy of each frame (:meth:`Backbone.analyse`).

        Returns
        -------
        np.ndarray [shape=(end_frame - start_frame,)], int64
            Levels to search per frame: the allocated depth, or, for a frame
            of a chunk that still lacks energies, the segment's largest depth
            (RVQ indices of the first levels do not depend on deeper ones).
        """
        self._energy[start_frame:end_frame] = log_energy
        self._have[start_frame:end_frame] = True
        cf = self.chunk_frames
        for c in range(start_frame // cf, -(-end_frame // cf)):
            lo, hi = c * cf, min((c + 1) * cf, self.depths.shape[0])
            if self._pending[c] and self._have[lo:hi].all():
                self._allocate_chunk(lo, hi)
                self._pending[c] = False
        return self._search[start_frame:end_frame].astype(np.int64)

    def final_depths(self, start_frame: int, end_frame: int) -> np.ndarray | None:
        """Depths ``(end_frame - start_frame,)``, int64, of frames whose chunks are allocated; else None.

        What a streaming writer asks before it entropy-codes a chunk: the
        depths of an allocated chunk never change again.
        """
        cf = self.chunk_frames
        if self._pending[start_frame // cf : -(-end_frame // cf)].any():
            return None
        return self.depths[start_frame:end_frame].astype(np.int64)

    def finish(self) -> np.ndarray:
        """Every frame's depth ``(frames,)``, int64, once every adaptive chunk is allocated."""
        if self._pending.any():
            missing = int(np.flatnonzero(self._pending)[0]) * self.chunk_frames
            raise ValueError(f"no frame energies for the chunk at frame {missing}")
        return self.depths.astype(np.int64)

    def _allocate_chunk(self, lo: int, hi: int) -> None:
        for seg in self.segments:
            a, b = max(seg.start_frame, lo), min(seg.end_frame, hi)
            if a >= b:
                continue
            # A span that starts inside the chunk continues from the frame
            # before it; the depth map of a chunk starts from 0.
            previous = int(self.depths[a - 1]) if a % self.chunk_frames else 0
            self.depths[a:b] = allocate_depths(self._energy[a:b], seg.n_q, seg.slope, self.max_levels,
                                               seg.bits_per_level, previous=previous)
            self._search[a:b] = self.depths[a:b]
