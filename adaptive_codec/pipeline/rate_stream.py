"""The encoder's rate-controlled second pass: depths chosen span by span on the coded bytes.

::

    blocks ─► backbone pieces ─► RVQ indices at full depth (mid; side at half)   pipeline.signal
           ─► per chunk span: RateController.choose (depths ─► entropy-coded bytes, measured)
           ─► chunks spooled to a temporary file ─► header with the chosen rows ─► .acx

RVQ indices of the first levels do not depend on deeper ones, so every
frame is searched once at the deepest depth rate control may give it, and a
span's chunks can be entropy-coded at any depths to measure them. The header
(its segment table records the chosen depths) is written after the last
chunk is coded; the chunks wait in a temporary file, so memory stays bounded
by one backbone piece per channel, whatever the input's length. The
algorithm is in :mod:`adaptive_codec.planning.rate_control`.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from adaptive_codec.container.acx import AcxChunk, AcxWriter
from adaptive_codec.container.acx_header import AcxHeader, SegmentEntry, serialize_header_body
from adaptive_codec.container.binary import varint_bytes
from adaptive_codec.entropy.coder import encode_frames
from adaptive_codec.pipeline.parts import CodecParts
from adaptive_codec.pipeline.signal import backbone_pieces, code_piece
from adaptive_codec.planning.conditioning import FrameConditioning
from adaptive_codec.planning.plan import PlannedSegment
from adaptive_codec.planning.rate_control import PartTarget, RateController, RateOutcome

__all__ = ["rate_controlled", "rate_levels", "RateStream", "encode_stream_at_rate"]

#: Bytes of a stream outside its header body and chunks: preamble (8), the
#: header CRC (4); the header length varint is counted with the body.
_FRAMING_BYTES = 8 + 4
_CHUNK_CRC_BYTES = 4


def rate_controlled(plan: Sequence[PlannedSegment]) -> bool:
    """Whether ``plan`` asks for a rate (every segment has a target); else depths are the profiles' ``n_q``."""
    return bool(plan) and all(s.target_kbps is not None for s in plan)


def rate_levels(header: AcxHeader, n_levels: int, side_divisor: int) -> list[int]:
    """RVQ levels the backbone computes per channel under rate control (0: not coded).

    Every frame at the deepest depth rate control may give it: ``n_levels``,
    and for a mid/side side channel that is coded, ``n_levels // side_divisor``.
    """
    if header.stereo_mode != "mid_side":
        return [n_levels] * header.channels
    side_coded = any(s.n_q > 0 for s in header.segments_for_channel(1))
    return [n_levels, n_levels // side_divisor if side_coded else 0]


def _header_bits(header: AcxHeader) -> float:
    body = serialize_header_body(header)
    return 8.0 * (_FRAMING_BYTES + len(varint_bytes(len(body))) + len(body))


def _chunk_bits(data: bytes) -> float:
    return 8.0 * (len(varint_bytes(len(data))) + len(data) + _CHUNK_CRC_BYTES)


class _Pieces:
    """A channel's coded pieces until their span is coded: ``(start_frame, codes (levels, frames))``."""

    def __init__(self) -> None:
        self.pieces: list[tuple[int, np.ndarray]] = []
        self.coded_to = 0

    def add(self, start_frame: int, codes: np.ndarray) -> None:
        if start_frame != self.coded_to:
            raise ValueError(f"piece at frame {start_frame}, expected {self.coded_to}")
        self.pieces.append((start_frame, codes))
        self.coded_to = start_frame + codes.shape[1]

    def take(self, a: int, b: int) -> np.ndarray:
        """Indices of frames ``[a, b)``; pieces that end by ``b`` are dropped (spans come in order)."""
        parts = [codes[:, max(a, s) - s : min(b, s + codes.shape[1]) - s]
                 for s, codes in self.pieces if s < b and s + codes.shape[1] > a]
        self.pieces = [(s, codes) for s, codes in self.pieces if s + codes.shape[1] > b]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def _merged(rows: list[SegmentEntry]) -> list[SegmentEntry]:
    """Join neighbouring rows with the same profile, depth, mode and label (smaller tables)."""
    out: list[SegmentEntry] = []
    for r in rows:
        p = out[-1] if out else None
        if p is not None and (p.profile_index, p.n_q, p.adaptive, p.label, p.confidence) == \
                (r.profile_index, r.n_q, r.adaptive, r.label, r.confidence):
            out[-1] = dataclasses.replace(p, end_frame=r.end_frame)
        else:
            out.append(r)
    return out


class RateStream:
    """Stage: RVQ indices at full depth in, rate-controlled chunks spooled, the stream written at the end.

    Pieces arrive per channel in frame order (:meth:`add`); each chunk span
    is coded as soon as every coded channel has its indices
    (:class:`~adaptive_codec.planning.rate_control.RateController` on the
    measured bytes), its chunks kept in a temporary file; :meth:`finish`
    writes the header with the chosen rows, then the chunks. Use as a
    context manager (the spool is closed on exit).

    Parameters
    ----------
    parts : CodecParts
    header0 : AcxHeader
        The header of the plan (:func:`~adaptive_codec.pipeline.encoder.build_header`):
        its profile table, stereo mode and side coding are kept, its segment
        table is replaced by the chosen depths.
    plan : sequence of PlannedSegment
        Every segment with a ``target_kbps`` (:func:`rate_controlled`).
    side_divisor : int
        The mid/side side channel codes ``max(1, depth // side_divisor)`` levels.
    overhead_bits : callable, optional
        ``overhead_bits(start_frame, end_frame)``: measured bits of side
        sections of a span that the caller writes beside the backbone's
        chunks (e.g. a high band); rate control pays them from the budget.
    fixed_overhead_bits : float
        Bits of per-stream side sections (paid once, like the header).
    """

    def __init__(self, parts: CodecParts, header0: AcxHeader, plan: Sequence[PlannedSegment], side_divisor: int,
                 overhead_bits: Callable[[int, int], float] | None = None, fixed_overhead_bits: float = 0.0) -> None:
        cfg = parts.backbone.config
        model = parts.entropy_model
        self.model, self.header0, self.plan = model, header0, list(plan)
        self.overhead_bits, self.fixed_overhead_bits = overhead_bits, float(fixed_overhead_bits)
        self.n_frames, self.cf = header0.n_frames, header0.chunk_frames
        self.mid_side = header0.stereo_mode == "mid_side"
        self.levels = rate_levels(header0, cfg.n_levels, side_divisor)
        names = [p.name for p in header0.profiles]
        self.index = [names.index(s.profile.name) for s in self.plan]
        self.priors = [header0.profiles[i].prior_id for i in self.index]
        targets = [PartTarget(s.start_frame, s.end_frame, float(s.target_kbps) * 1000.0, s.profile.depth_slope,
                              np.full(cfg.n_levels, float(cfg.bits_per_index)) if model.level_bits is None
                              else np.asarray(model.level_bits[self.priors[i]], np.float64), key=i)
                   for i, s in enumerate(self.plan)]
        self.duration_s = header0.duration_s
        self.n_spans = -(-self.n_frames // self.cf)
        self.tables = 2 if self.mid_side else 1
        asked = sum(t.bps * (t.end_frame - t.start_frame) for t in targets) / max(self.n_frames, 1)
        empty = dataclasses.replace(header0, segments=[], asked_bps=int(round(asked)))
        self._base_bits = _header_bits(empty) + self.fixed_overhead_bits
        self.rows: list[list[SegmentEntry]] = [[] for _ in range(self.tables)]
        self.controller = RateController(
            targets, self.n_frames, self.duration_s, cfg.frame_rate_hz, cfg.n_levels,
            channels=2 if self.mid_side else 1, fixed_bits=self._base_bits,
            side_divisor=side_divisor, side_coded=self.mid_side and self.levels[1] > 0, overhead_bits=overhead_bits)
        self.buffers = [_Pieces() for _ in self.levels]
        self.energy = np.zeros(self.n_frames, np.float32)
        self.sizes: list[int] = []
        self.side_bits = 0.0
        self.next_span = 0
        self._spool = tempfile.TemporaryFile()

    def __enter__(self) -> "RateStream":
        return self

    def __exit__(self, *exc) -> None:
        self._spool.close()

    def _entries(self, t: int, table_rows) -> list[SegmentEntry]:
        return [SegmentEntry(lo, hi, self.index[key], int(q), self.plan[key].label, self.plan[key].confidence,
                             channel=t if self.mid_side else None, adaptive=bool(adapt))
                for lo, hi, key, q, adapt in table_rows]

    def _row_growth(self, t: int, new: list[SegmentEntry]) -> int:
        """Header bytes that appending ``new`` adds to table ``t`` (the first may merge with its last row)."""
        last = self.rows[t][-1:]
        return sum(len(_row_bytes(r)) for r in _merged(last + new)) - sum(len(_row_bytes(r)) for r in last)

    def add(self, channel: int, start_frame: int, codes: np.ndarray, log_energy: np.ndarray | None = None) -> None:
        """The indices ``(levels, frames)`` of a channel's next piece (and the mid's frame energies); code what is complete."""
        self.buffers[channel].add(start_frame, codes)
        if channel == 0 and log_energy is not None:
            self.energy[start_frame : start_frame + codes.shape[1]] = log_energy
        coded = [c for c, lv in enumerate(self.levels) if lv > 0]
        while self.next_span < self.n_frames and all(
                self.buffers[c].coded_to >= min(self.next_span + self.cf, self.n_frames) for c in coded):
            self._code_span(self.next_span, min(self.next_span + self.cf, self.n_frames))
            self.next_span += self.cf

    def _frame_priors(self, table_rows, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        pri = np.zeros(b - a, np.int64)
        adaptive = np.zeros(b - a, bool)
        for lo, hi, key, _, adapt in table_rows:
            pri[lo - a : hi - a] = self.priors[key]
            adaptive[lo - a : hi - a] = adapt
        return pri, adaptive

    def _code_span(self, a: int, b: int) -> None:
        levels = self.levels
        codes = [buf.take(a, b) if lv > 0 else np.zeros((1, b - a), np.int16) for buf, lv in zip(self.buffers, levels)]

        def measure(depths: list[np.ndarray], span_rows: list[list]) -> tuple[float, list[bytes]]:
            out = []
            for ch in range(len(levels)):
                t = ch if self.mid_side else 0
                pri, adaptive = self._frame_priors(span_rows[t], a, b)
                d = depths[t] if levels[ch] > 0 else np.zeros(b - a, np.int64)
                out.append(encode_frames(self.model, codes[ch], d, pri, adaptive=adaptive))
            # The span's segment rows are part of what it costs: counted with its chunks.
            rows = sum(self._row_growth(t, self._entries(t, r)) for t, r in enumerate(span_rows))
            return sum(_chunk_bits(x) for x in out) + 8.0 * rows, out

        choice = self.controller.choose(a, b, measure, self.energy[a:b])
        if self.overhead_bits is not None:
            self.side_bits += float(self.overhead_bits(a, b))
        for t, table_rows in enumerate(choice.rows):
            self.rows[t] = self.rows[t][:-1] + _merged(self.rows[t][-1:] + self._entries(t, table_rows))
        for data in choice.payload:
            self._spool.write(data)
            self.sizes.append(len(data))

    def finish(self, target) -> tuple[AcxHeader, RateOutcome]:
        """Write the stream (header with the chosen rows and the rate record, then the chunks) to ``target``.

        Returns
        -------
        header : AcxHeader
            The header written.
        outcome : RateOutcome
            Asked and actual whole-stream rate (actual includes the overheads).
        """
        if self.next_span < self.n_frames:
            coded = [c for c, lv in enumerate(self.levels) if lv > 0]
            if coded:
                missing = min(self.buffers[c].coded_to for c in coded)
                raise ValueError(f"no RVQ indices for frames from {missing} on")
            while self.next_span < self.n_frames:  # nothing is coded (no levels anywhere)
                self._code_span(self.next_span, min(self.next_span + self.cf, self.n_frames))
                self.next_span += self.cf
        header = dataclasses.replace(self.header0, segments=[r for table in self.rows for r in table],
                                     asked_bps=int(round(self.controller.asked_bps)))
        chunk_total = sum(8.0 * (len(varint_bytes(n)) + n + _CHUNK_CRC_BYTES) for n in self.sizes)
        # rate_limit is one byte whatever its value: the total does not depend on it.
        total = _header_bits(header) + chunk_total + self.side_bits + self.fixed_overhead_bits
        outcome = self.controller.outcome(total, self.duration_s)
        header = dataclasses.replace(header, rate_limit=outcome.cap)
        self._spool.seek(0)
        with AcxWriter(target, header) as writer:
            k = 0
            for a in range(0, self.n_frames, self.cf):
                n = min(self.cf, self.n_frames - a)
                for ch in range(header.channels):
                    writer.write_chunk(AcxChunk(ch, a, n, self._spool.read(self.sizes[k])))
                    k += 1
        return header, outcome


def _row_bytes(r: SegmentEntry) -> bytes:
    """About a row's bytes: frame_count, profile_index, n_q, depth_mode, label_ref (mostly the
    profile's index: labels are mostly profile names), confidence_255."""
    return (varint_bytes(r.end_frame - r.start_frame) + varint_bytes(r.profile_index) + b"\0\0"
            + varint_bytes(r.profile_index) + b"\0")


def encode_stream_at_rate(parts: CodecParts, target, blocks: Callable[[], Iterable[np.ndarray]],
                          header0: AcxHeader, plan: Sequence[PlannedSegment], side_divisor: int,
                          progress: Callable[[float], None] | None = None,
                          overhead_bits: Callable[[int, int], float] | None = None,
                          fixed_overhead_bits: float = 0.0) -> tuple[AcxHeader, RateOutcome]:
    """Code ``blocks()`` so the whole stream's bits follow the plan's targets; write it to ``target``.

    The streaming form of :class:`RateStream` over the backbone's pieces of
    a fresh read; arguments as there (``blocks`` returns a new iterable of
    the input's blocks ``(channels, samples)``; a path ``target`` is
    written atomically). Returns the header written and the
    :class:`~adaptive_codec.planning.rate_control.RateOutcome`.
    """
    with RateStream(parts, header0, plan, side_divisor, overhead_bits, fixed_overhead_bits) as stage:
        cond = FrameConditioning(header0, 0, parts.embeddings())
        pieces = backbone_pieces(parts.backbone, blocks(), header0.original_sample_rate_hz,
                                 header0.length_samples, stage.mid_side, stage.levels, progress)
        for ch, piece in pieces:
            codes, log_energy = code_piece(parts.backbone, piece, cond, stage.levels[ch], None)
            stage.add(ch, piece.start_frame, codes, log_energy)
        return stage.finish(target)
