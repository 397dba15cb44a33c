"""Parametric stereo as a pipeline stage: what the encoder and decoder call.

Encoder: :func:`analyzer_for` measures a stereo input during the first
read; once the plan chooses parametric stereo for the asked rate,
:func:`code_parametric` quantizes and codes every span's parameters into
the stream's :class:`~adaptive_codec.container.acx_stereo.ParametricStereoSection`
(its bits are known before any depth is chosen, and rate control pays them
as part of the header).

Decoder: :func:`parametric_blocks` turns the decoded blocks (the mid on
both channels) into left and right, decoding each span's payload when the
synthesis reaches it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from adaptive_codec.container.acx_stereo import ParametricStereoSection
from adaptive_codec.tools.highband.grid import StftGrid
from adaptive_codec.tools.parametric_stereo.analysis import ParamGrid, StereoAnalyzer, band_edges, band_starts
from adaptive_codec.tools.parametric_stereo.coding import ICC_LEVELS, decode_span, encode_span, quantize
from adaptive_codec.tools.highband.analysis import synthesize_blocks
from adaptive_codec.tools.parametric_stereo.synthesis import ParametricSynthesizer, mix_gains

__all__ = ["PARAM_FRAMES", "PARAM_FRAMES_BY_RATE", "param_frames_for", "ILD_STEP_DB", "MAX_ILD_INDEX", "DECORRELATION", "analyzer_for", "code_parametric", "parametric_blocks"]

#: Codec frames per parameter frame that the encoder measures (80 ms, about
#: HE-AAC v2's rate at low bitrates); coarser grids are unions of them.
PARAM_FRAMES = 6
#: ``(from this total kbps up, codec frames per parameter frame)``, first match:
#: below 6 kbps the parameters' 700 bps are worth more to the mid (music at
#: 3 kbps +0.1 ViSQOL with 160-320 ms frames) than their time resolution.
PARAM_FRAMES_BY_RATE = ((6.0, 6), (3.0, 12), (0.0, 24))
#: ILD step (dB) and range (±10 steps: ±30 dB, beyond which one channel is inaudible next to the other).
ILD_STEP_DB = 3.0
MAX_ILD_INDEX = 10
#: Share of the decorrelated signal mixed in (of what the coded coherence asks):
#: per-channel ViSQOL and the ILD error favour less than all of it (docs/RESULTS.md).
DECORRELATION = 0.5


def analyzer_for(sample_rate_hz: int, channels: int, internal_rate_hz: int, hop_samples: int,
                 chunk_frames: int) -> StereoAnalyzer | None:
    """The first read's measurement of a stereo input (None for any other channel count)."""
    if channels != 2:
        return None
    grid = StftGrid(sample_rate_hz, internal_rate_hz, hop_samples)
    return StereoAnalyzer(grid, band_edges(sample_rate_hz), chunk_frames, PARAM_FRAMES)


def param_frames_for(total_kbps: float) -> int:
    """Codec frames per parameter frame for a stream asked ``total_kbps`` (:data:`PARAM_FRAMES_BY_RATE`)."""
    for lo, frames in PARAM_FRAMES_BY_RATE:
        if total_kbps >= lo:
            return frames
    return PARAM_FRAMES_BY_RATE[-1][1]


def code_parametric(analyzer: StereoAnalyzer, n_frames: int, param_frames: int | None = None,
                    decorrelation: float = DECORRELATION) -> ParametricStereoSection:
    """The stream's parametric-stereo section from the first read's statistics.

    ``param_frames`` (default: the analyzer's) must be a multiple of the
    analyzer's: its parameter frames are unions of the measured ones.
    """
    fine = analyzer.param_frames
    param_frames = fine if param_frames is None else int(param_frames)
    if param_frames % fine:
        raise ValueError(f"param_frames {param_frames} is not a multiple of the measured {fine}")
    sums = analyzer.finish(n_frames)
    grid = ParamGrid(n_frames, analyzer.chunk_frames, fine)
    coarse = ParamGrid(n_frames, analyzer.chunk_frames, param_frames)
    m = param_frames // fine
    payloads = []
    for s in range(grid.n_spans):
        rows = sums[s * grid.per_span : s * grid.per_span + grid.span_count(s)]
        merged = np.zeros((coarse.span_count(s),) + rows.shape[1:])
        np.add.at(merged, np.arange(len(rows)) // m, rows)
        ild_q, icc_q = quantize(merged, ILD_STEP_DB, MAX_ILD_INDEX)
        payloads.append(encode_span(ild_q, icc_q, MAX_ILD_INDEX))
    return ParametricStereoSection(analyzer.edges, param_frames, int(round(ILD_STEP_DB * 4)),
                                   MAX_ILD_INDEX, int(round(255 * min(max(decorrelation, 0.0), 1.0))), tuple(payloads))


class _GainTrack:
    """Mixing gains of a stream's STFT frames, interpolated between parameter-frame centres."""

    def __init__(self, header, grid: StftGrid) -> None:
        self.section, self.grid, self.header = header.stereo_params, grid, header
        sec = self.section
        self.params = ParamGrid(header.n_frames, header.chunk_frames, sec.param_frames)
        self.spans: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _span(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        if s not in self.spans:
            for old in [x for x in self.spans if x < s - 2]:
                del self.spans[old]
            sec = self.section
            ild_q, icc_q = decode_span(sec.payloads[s], self.params.span_count(s), len(sec.band_edges_hz),
                                       sec.max_ild_index, f"acx parametric-stereo payload of span {s}")
            a, b = mix_gains(ild_q * (sec.ild_step_quarter_db / 4), np.asarray(ICC_LEVELS)[icc_q])
            self.spans[s] = a, b * (sec.decorrelation_255 / 255)
        return self.spans[s]

    def _at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gains ``a, b`` ``(n, bands)`` of the parameter frames holding codec frames ``t``, and their centres."""
        p = self.params
        t = np.clip(t, 0, p.n_frames - 1)
        s = t // p.chunk_frames
        k = (t - s * p.chunk_frames) // p.param_frames
        start = s * p.chunk_frames + k * p.param_frames
        end = np.minimum(np.minimum(start + p.param_frames, (s + 1) * p.chunk_frames), p.n_frames)
        bands = len(self.section.band_edges_hz)
        a, b = np.zeros((len(t), bands)), np.zeros((len(t), bands))
        for span in np.unique(s).tolist():
            sel = s == span
            ga, gb = self._span(span)
            a[sel], b[sel] = ga[k[sel]], gb[k[sel]]
        return a, b, (start + end - 1) / 2.0

    def __call__(self, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, p = self.header, self.params
        if p.n_frames == 0:
            z = np.zeros((len(j), len(self.section.band_edges_hz)))
            return z, z
        # Time of each STFT frame's centre in codec frames (frame t is centred on internal sample t·hop).
        tf = np.asarray(j, np.float64) * self.grid.hop * h.internal_sample_rate_hz / (
            h.original_sample_rate_hz * h.hop_samples)
        t0 = np.clip(np.floor(tf + 0.5).astype(np.int64), 0, p.n_frames - 1)
        a0, b0, c0 = self._at(t0)
        # The neighbouring parameter frame on tf's side of c0.
        step = p.param_frames
        t1 = np.where(tf >= c0, np.floor(c0).astype(np.int64) + step, np.ceil(c0).astype(np.int64) - step)
        t1 = np.clip(t1, 0, p.n_frames - 1)
        a1, b1, c1 = self._at(t1)
        gap = np.abs(c1 - c0)
        w = np.where(gap > 0, np.clip(np.abs(tf - c0) / np.maximum(gap, 1e-9), 0, 1), 0.0)[:, None]
        return (1 - w) * a0 + w * a1, (1 - w) * b0 + w * b1


def parametric_blocks(header, blocks: Iterable[np.ndarray], first_sample: int) -> Iterable[np.ndarray]:
    """``blocks`` (decoded mid on both channels, from stream sample ``first_sample``) as left and right.

    Streams without a parametric-stereo section pass through unchanged.
    """
    if header.stereo_params is None:
        return blocks
    grid = StftGrid(header.original_sample_rate_hz, header.internal_sample_rate_hz, header.hop_samples)
    synth = ParametricSynthesizer(grid, band_starts(grid, header.stereo_params.band_edges_hz),
                                  _GainTrack(header, grid), first_sample)
    return synthesize_blocks(synth, blocks)
