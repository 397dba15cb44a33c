"""The high band as a pipeline stage: what the encoder and decoder call.

Encoder: :func:`analyzer_for` measures the input during the first read;
after planning, :func:`code_highband` forms every span's envelope on the
grid of the profiles that ask for it, codes it and returns the stream's
:class:`~adaptive_codec.container.acx_extensions.HighBandSection` with the
high band's rate per profile, which the depth choice then leaves to it
(the bits are known before any depth is chosen and do not depend on them).

Decoder: :func:`highband_blocks` adds the regenerated band to the decoded
blocks of a range, decoding each span's payload when the synthesis reaches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from adaptive_codec.container.acx_extensions import HighBandSection
from adaptive_codec.tools.highband.analysis import HighBandAnalyzer, HighBandMeasure
from adaptive_codec.tools.highband.coding import decode_span, dequantize_db, encode_span, quantize
from adaptive_codec.tools.highband.grid import FINE_EDGES_HZ, START_HZ, StftGrid, band_bins, merge_edges
from adaptive_codec.tools.highband.analysis import synthesize_blocks
from adaptive_codec.tools.highband.synthesis import HighBandSynthesizer

__all__ = ["STEP_DB", "FLOOR_DB", "LEVEL_COUNT", "EnvelopeTrack", "analyzer_for", "code_highband",
           "highband_blocks", "highband_bytes_by_label"]

#: Quantizer step (dB): 3 dB is a just noticeable change of a noise band's level.
STEP_DB = 3.0
#: Index 1 is -96 dB; quieter bands are silent (index 0), so a band that
#: holds only 16-bit quantization noise (-101 dB) counts as empty.
FLOOR_DB = 96
#: Indices 0..37: up to +15 dB (more than a full-scale square wave's band).
LEVEL_COUNT = 38


def analyzer_for(sample_rate_hz: int, channels: int, internal_rate_hz: int, hop_samples: int
                 ) -> HighBandAnalyzer | None:
    """The first read's high-band measurement, or None for a source with no band above the crossover."""
    if sample_rate_hz // 2 <= FINE_EDGES_HZ[0]:  # nothing above the backbone's 12 kHz
        return None
    return HighBandAnalyzer(StftGrid(sample_rate_hz, internal_rate_hz, hop_samples), channels)


def _profile_rows(plan: Sequence) -> dict[str, int]:
    # Profile-table rows are given in order of first use (pipeline.encoder.build_header).
    rows: dict[str, int] = {}
    for seg in plan:
        rows.setdefault(seg.profile.name, len(rows))
    return rows


def _merged(measure: HighBandMeasure, n_fine: int, edges: tuple[int, ...]) -> np.ndarray:
    """Levels ``(frames, len(edges))`` in dB of the unions of the first ``n_fine`` fine bands."""
    counts = measure.bin_counts[:n_fine]
    power = 10.0 ** (measure.levels_db[:, :n_fine].astype(np.float64) / 10) * counts
    out, lo = [], 0
    for e in edges:
        hi = measure.edges_hz.index(e) + 1
        out.append(power[:, lo:hi].sum(axis=1) / counts[lo:hi].sum())
        lo = hi
    with np.errstate(divide="ignore"):
        return 10 * np.log10(np.stack(out, axis=1))


def code_highband(measure: HighBandMeasure | None, plan: Sequence, n_frames: int, chunk_frames: int,
                  frame_rate_hz: float) -> tuple[HighBandSection | None, dict[str, float]]:
    """The stream's high-band section and the kbps it takes in every profile's frames.

    Parameters
    ----------
    measure : HighBandMeasure or None
        The first read's levels (None: the source has no high band).
    plan : sequence of PlannedSegment
        Frame ranges, profiles and asked rates; a profile whose resolution at
        the rate of its longest segment has 0 bands
        (:meth:`~adaptive_codec.profiles.Profile.highband_at`) gets none; the
        grid is that of the profile with the most frames.
    n_frames, chunk_frames : int
        The stream's frames and frames per chunk span.
    frame_rate_hz : float

    Returns
    -------
    section : HighBandSection or None
        None when no frame gets a high band (no profile asks, or nothing
        above the crossover is louder than the floor): no bits spent.
    kbps : dict of str to float
        Per profile name, the section's bits per second of that profile's frames.
    """
    rows = _profile_rows(plan)
    # Each profile's resolution at the rate asked of its longest segment.
    longest = {}  # profile name -> PlannedSegment
    for seg in plan:
        best = longest.get(seg.profile.name)
        if best is None or seg.end_frame - seg.start_frame > best.end_frame - best.start_frame:
            longest[seg.profile.name] = seg
    resolution = {name: seg.profile.highband_at(seg.target_kbps) for name, seg in longest.items()}
    on = [seg for seg in plan if resolution[seg.profile.name][0] > 0]
    if measure is None or not on or not measure.edges_hz:
        return None, {}
    # The grid of the profile with the most frames.
    frames_of: dict[str, int] = {}
    for seg in on:
        frames_of[seg.profile.name] = frames_of.get(seg.profile.name, 0) + seg.end_frame - seg.start_frame
    lead = next(seg.profile for seg in on if seg.profile.name == max(frames_of, key=frames_of.get))
    lead_bands, k = resolution[lead.name]
    # The source's band limit: fine bands above the last one louder than the floor in a tenth
    # of the frames are not coded (a file's first and last frames see the step from silence
    # before and after it, in every band).
    loud = np.percentile(measure.levels_db.astype(np.float64), 90, axis=0) >= -FLOOR_DB - STEP_DB / 2
    if not loud.any():
        return None, {}
    n_fine = int(np.flatnonzero(loud)[-1]) + 1
    edges = merge_edges(measure.edges_hz[:n_fine], lead_bands)
    levels = _merged(measure, n_fine, edges)
    enabled = tuple(sorted({rows[seg.profile.name] for seg in on}))
    profile_of = np.zeros(n_frames, np.int64)
    for seg in plan:
        profile_of[max(0, seg.start_frame) : seg.end_frame] = rows[seg.profile.name]
    names = {row: name for name, row in rows.items()}
    payloads, bits = [], dict.fromkeys(rows, 0.0)
    for a in range(0, n_frames, chunk_frames):
        b = min(a + chunk_frames, n_frames)
        starts = np.arange(a, b, k)
        mask = np.isin(profile_of[starts], enabled)
        # Each envelope value: the mean power of its codec frames (the span's last may have fewer).
        power = np.add.reduceat(10 ** (levels[a:b] / 10), starts - a, axis=0)
        power /= np.diff(np.r_[starts, b])[:, None]
        env = 10 * np.log10(power[mask] + 1e-300)
        data = encode_span(quantize(env, STEP_DB, FLOOR_DB, LEVEL_COUNT), LEVEL_COUNT)
        payloads.append(data)
        if mask.any():
            owners = profile_of[starts[mask]]
            for row in np.unique(owners):
                bits[names[int(row)]] += 8 * len(data) * np.mean(owners == row)
    section = HighBandSection(START_HZ, edges, k, int(round(STEP_DB * 4)), FLOOR_DB, LEVEL_COUNT,
                              int(round(lead.highband_noise * 255)), enabled, tuple(payloads))
    kbps = {name: bits[name] / (frames_of[name] / frame_rate_hz) / 1000 for name in frames_of}
    return section, kbps


class EnvelopeTrack:
    """Decoded levels of a stream's high band, span by span as the synthesis asks for them.

    Calling it with STFT frame indices ``j (n,)`` of ``grid`` returns the
    levels ``(n, bands)`` in dB of their codec frames (``-inf``: no high
    band there); a span's payload is decoded when first needed and dropped
    once the frames asked have moved two spans on.

    Parameters
    ----------
    header : AcxHeader
        A stream with a high-band section.
    grid : StftGrid
    """

    def __init__(self, header, grid: StftGrid) -> None:
        s = header.highband
        self.section, self.grid, self.header = s, grid, header
        self.step, self.floor = s.step_quarter_db / 4, float(s.floor_db_neg)
        self.spans: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # span -> (envelope row of each frame, dB rows)

    def _span(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        if s not in self.spans:
            for old in [x for x in self.spans if x < s - 1]:
                del self.spans[old]
            h, sec = self.header, self.section
            a, b = s * h.chunk_frames, min((s + 1) * h.chunk_frames, h.n_frames)
            starts = np.arange(a, b, sec.envelope_frames)
            profiles = h.frame_layout(0, a, b)[2][starts - a]
            mask = np.isin(profiles, sec.enabled_profiles)
            q = decode_span(sec.payloads[s], int(mask.sum()), len(sec.band_edges_hz), sec.level_count,
                            f"acx high-band payload of span {s}")
            row = np.full(len(starts), -1, np.int64)
            row[mask] = np.arange(int(mask.sum()))
            self.spans[s] = (row, dequantize_db(q, self.step, self.floor))
        return self.spans[s]

    def __call__(self, j: np.ndarray) -> np.ndarray:
        h, sec = self.header, self.section
        t = np.clip(self.grid.codec_frame(j), 0, h.n_frames - 1)
        span = t // h.chunk_frames
        out = np.full((len(j), len(sec.band_edges_hz)), -np.inf)
        for s in span[np.r_[True, span[1:] != span[:-1]]].tolist():  # spans in order
            row, db = self._span(s)
            sel = np.flatnonzero(span == s)
            r = row[(t[sel] - s * h.chunk_frames) // sec.envelope_frames]
            out[sel[r >= 0]] = db[r[r >= 0]]
        return out


def highband_blocks(header, blocks: Iterable[np.ndarray], first_sample: int) -> Iterable[np.ndarray]:
    """``blocks`` (decoded, at the original rate, from stream sample ``first_sample``) with the high band added.

    Streams without a high-band section pass through unchanged.
    """
    if header.highband is None:
        return blocks
    grid = StftGrid(header.original_sample_rate_hz, header.internal_sample_rate_hz, header.hop_samples)
    sec = header.highband
    synth = HighBandSynthesizer(grid, band_bins(grid, sec.start_hz, sec.band_edges_hz), sec.noise_255 / 255,
                                EnvelopeTrack(header, grid), header.channels, first_sample)
    return synthesize_blocks(synth, blocks)


def highband_bytes_by_label(header) -> dict[str, float]:
    """The high band's bytes attributed to each segment label (each span's payload by its frames' labels)."""
    sec = header.highband
    if sec is None:
        return {}
    out: dict[str, float] = {}
    for s, data in enumerate(sec.payloads):
        a, b = s * header.chunk_frames, min((s + 1) * header.chunk_frames, header.n_frames)
        starts = np.arange(a, b, sec.envelope_frames)
        rows = [seg for seg in header.segments_in(0, a, b) if seg.profile_index in sec.enabled_profiles]
        n = {}
        for seg in rows:
            m = int(np.count_nonzero((starts >= seg.start_frame) & (starts < seg.end_frame)))
            n[seg.label] = n.get(seg.label, 0) + m
        total = sum(n.values())
        for label, m in n.items():
            if total:
                out[label] = out.get(label, 0.0) + len(data) * m / total
    return out
