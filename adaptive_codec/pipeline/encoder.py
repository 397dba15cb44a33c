"""The encoder: the stages in order, from a stream of audio blocks to an ``.acx`` stream.

::

    blocks ─► measure (length, mid/side levels; classifier segments for "auto")   pipeline.signal.scan_blocks
           ─► plan (segments + profiles + rate ─► PlannedSegment list)            planning.plan
           ─► header (profile table, segment table, stereo mode)                  build_header
           ─► backbone pieces ─► depth allocation ─► RVQ indices                   pipeline.signal, planning.depth_allocation
           ─► entropy coding, chunk by chunk ─► container                          entropy.coder, container.acx

The input is read twice (measure, then code), and :func:`encode_stream`
entropy-codes and writes every chunk as soon as its frames are coded
(:class:`ChunkStream`), so a file of any length is coded with bounded
memory: a few bytes a frame (the depth allocation's arrays), not the RVQ
indices of the whole file. Every function takes what it needs as arguments
(:class:`~adaptive_codec.pipeline.parts.CodecParts` for the models) and
returns data for the next stage; none calls back into an earlier one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from adaptive_codec.container.acx import AcxChunk, AcxWriter, chunk_order
from adaptive_codec.container.acx_header import AcxHeader, ProfileEntry, SegmentEntry
from adaptive_codec.entropy.coder import encode_frames
from adaptive_codec.pipeline.parts import CodecParts
from adaptive_codec.pipeline.rate_stream import RateStream, encode_stream_at_rate, rate_controlled, rate_levels
from adaptive_codec.pipeline.signal import SignalScan, backbone_pieces, code_piece, encode_blocks
from adaptive_codec.planning.conditioning import FrameConditioning, builtin_row
from adaptive_codec.planning.depth_allocation import AdaptiveSegment, DepthAllocator, depth_bounds
from adaptive_codec.planning.plan import PlannedSegment
from adaptive_codec.profiles import Profile
from adaptive_codec.tools.stereo import side_divisor

__all__ = ["SIDE_SILENT_RATIO", "SIDE_DEPTH_DIVISOR", "CodedChannels", "build_header", "coding_stage", "rate_stage", "plan_total_kbps", "plan_side_divisor", "depth_allocators",
           "coded_levels", "code_channels", "write_stream", "ChunkStream", "encode_stream", "stream_parameters"]

#: Side below this fraction of the mid's RMS (-30 dB) is not coded at all:
#: at that level it is recording noise or a trace of width nobody hears
#: next to the codec's own error, and coding it costs half a mono stream.
SIDE_SILENT_RATIO = 0.03
#: The side channel gets the mid's depth divided by this (at least 1 level)
#: when the depths are fixed (profiles given as n_q); under rate control the
#: divisor follows the asked total (:func:`~adaptive_codec.tools.stereo.side_divisor`).
SIDE_DEPTH_DIVISOR = 2


@dataclass(frozen=True)
class CodedChannels:
    """What the backbone and the depth allocation stage produce for every channel.

    Attributes
    ----------
    codes : list of np.ndarray [shape=(levels, frames)], int16
        RVQ indices per channel (deeper than a frame's depth: ignored).
    depths : list of np.ndarray [shape=(frames,)], int64
        Levels each frame codes, per channel.
    """

    codes: list[np.ndarray]
    depths: list[np.ndarray]


def build_header(parts: CodecParts, scan: SignalScan, sample_rate_hz: int,
                 plan: Sequence[PlannedSegment]) -> AcxHeader:
    """The stream header: format facts, the profile table and the segment table(s).

    Two channels are coded as mid/side: the side usually needs far fewer
    levels, and a near-mono file (side below -30 dB) spends none on it, nor
    does a pair coded with parametric stereo (``scan.stereo``: the mid alone).
    """
    cfg = parts.backbone.config
    n_frames = parts.n_frames(scan.n_samples, sample_rate_hz)
    mid_side = scan.channels == 2
    side_scale = None
    if mid_side:
        side_scale = 0 if scan.stereo is not None or scan.side_rms <= SIDE_SILENT_RATIO * scan.mid_rms else 1
    entries: list[ProfileEntry] = []
    index: dict[str, int] = {}
    for seg in plan:
        if seg.profile.name not in index:
            index[seg.profile.name] = len(entries)
            entries.append(profile_entry(parts, seg.profile))
    return AcxHeader(
        original_sample_rate_hz=int(sample_rate_hz), channels=int(scan.channels),
        length_samples=int(scan.n_samples), internal_sample_rate_hz=cfg.sample_rate_hz,
        hop_samples=cfg.hop, n_frames=n_frames, codebook_size=cfg.codebook_size,
        max_levels=cfg.n_levels, weights_version=parts.weights_meta["weights_id"].rsplit("+", 1)[0],
        weights_sha256_prefix=parts.weights_meta["sha256"][:16],
        entropy_digest_prefix=parts.entropy_model.digest()[:16],
        profiles=entries,
        segments=segment_table(plan, index, side_scale),
        stereo_mode="mid_side" if mid_side else ("mono" if scan.channels == 1 else "independent"),
        chunk_frames=parts.chunk_frames, highband=scan.highband, stereo_params=scan.stereo,
    )


def profile_entry(parts: CodecParts, profile: Profile) -> ProfileEntry:
    """Profile-table row: a reference for a built-in, everything for a custom profile."""
    table = parts.embeddings()
    row = builtin_row(profile, table)
    if row is not None:
        return ProfileEntry.builtin(profile.name, row)
    prior, vec = parts.prior_and_vector(profile)
    return ProfileEntry(profile.name, prior, stream_parameters(profile), vec)


def stream_parameters(profile: Profile) -> dict:
    """What a stream records of a profile: enough to describe it, nothing training-only.

    Decoding needs only the conditioning vector and prior id (stored beside
    these); loss weights and descriptions would cost bytes in every file.
    """
    keys = ("bitrate_kbps", "n_q", "labels", "base")
    d = profile.to_dict()
    return {k: (list(d[k]) if k == "labels" else d[k]) for k in keys if d.get(k) not in (None, [], ())}


def segment_table(plan: Sequence[PlannedSegment], index: dict[str, int], side_scale: int | None) -> list:
    """Segment rows: shared by all channels, or mid (channel 0) + side (channel 1) rows."""
    def adaptive(s: PlannedSegment, n_q: int) -> bool:
        return n_q > 0 and s.profile.depth_slope > 0

    if side_scale is None:
        return [SegmentEntry(s.start_frame, s.end_frame, index[s.profile.name], s.n_q,
                             s.label, s.confidence, adaptive=adaptive(s, s.n_q)) for s in plan]
    rows = []
    for ch in (0, 1):
        for s in plan:
            n_q = s.n_q if ch == 0 else side_scale * max(1, s.n_q // SIDE_DEPTH_DIVISOR)
            # The side channel keeps a fixed depth: it is a few levels of a
            # residual whose loudness follows the mid's anyway.
            rows.append(SegmentEntry(s.start_frame, s.end_frame, index[s.profile.name], n_q,
                                     s.label, s.confidence, channel=ch, adaptive=ch == 0 and adaptive(s, n_q)))
    return rows


def coded_levels(header: AcxHeader) -> list[int]:
    """RVQ levels the backbone computes per channel: the deepest any of its frames may use (0: not coded)."""
    return [max((depth_bounds(s.n_q, header.max_levels)[1] if s.adaptive else s.n_q
                 for s in header.segments_for_channel(ch)), default=0) for ch in range(header.channels)]


def coding_stage(parts: CodecParts, header: AcxHeader, plan: Sequence[PlannedSegment]
                 ) -> tuple[list[int], list[DepthAllocator | None]]:
    """What the backbone computes per channel, and each channel's depth allocation stage.

    For a plan of fixed depths :func:`coded_levels` and :func:`depth_allocators`
    (then :func:`write_stream`); for a rate-controlled plan every frame at
    full depth and no allocators (then :func:`rate_stage`).
    """
    if rate_controlled(plan):
        levels = rate_levels(header, parts.backbone.config.n_levels, plan_side_divisor(plan))
        return levels, [None] * len(levels)
    return coded_levels(header), depth_allocators(parts, header, plan)


def rate_stage(parts: CodecParts, header: AcxHeader, plan: Sequence[PlannedSegment]) -> RateStream | None:
    """The rate-control stage of a plan that asks for a rate (a context manager), else None."""
    return RateStream(parts, header, plan, plan_side_divisor(plan)) if rate_controlled(plan) else None


def plan_total_kbps(plan: Sequence[PlannedSegment]) -> float:
    """The whole-stream rate a rate-controlled plan asks: its targets weighted by their frames."""
    frames = sum(s.end_frame - s.start_frame for s in plan)
    return sum(s.target_kbps * (s.end_frame - s.start_frame) for s in plan) / max(frames, 1)


def plan_side_divisor(plan: Sequence[PlannedSegment]) -> int:
    """The mid/side side divisor for a rate-controlled plan: by its asked total."""
    return side_divisor(plan_total_kbps(plan))


def depth_allocators(parts: CodecParts, header: AcxHeader, plan: Sequence[PlannedSegment]
                     ) -> list[DepthAllocator | None]:
    """The depth allocation stage of every channel (None for a channel without adaptive segments).

    Each adaptive segment's budget is counted in the bits the entropy tables
    expect per level (the same costs that chose its depth), not in levels:
    deep levels cost more.
    """
    cfg = parts.backbone.config
    level_bits = parts.entropy_model.level_bits
    # Profile-table rows are unique by name, in plan order (build_header).
    names = [p.name for p in header.profiles]
    slopes = {names.index(seg.profile.name): seg.profile.depth_slope for seg in plan}
    out: list[DepthAllocator | None] = []
    for ch in range(header.channels):
        segments = [
            AdaptiveSegment(s.start_frame, s.end_frame, s.n_q, slopes[s.profile_index],
                            cfg.bits_per_index if level_bits is None
                            else level_bits[header.profiles[s.profile_index].prior_id])
            for s in header.segments_for_channel(ch) if s.adaptive]
        if not segments:
            out.append(None)
            continue
        # Each frame's segment depth, as frame_layout's depths but int16 and
        # without its prior and profile arrays (24 bytes a frame at once).
        nominal = np.zeros(header.n_frames, np.int16)
        for s in header.segments_for_channel(ch):
            nominal[max(0, s.start_frame) : max(0, s.end_frame)] = s.n_q
        out.append(DepthAllocator(nominal, segments, header.chunk_frames, cfg.n_levels))
    return out


def code_channels(parts: CodecParts, header: AcxHeader, plan: Sequence[PlannedSegment],
                  blocks: Iterable[np.ndarray], progress: Callable[[float], None] | None = None) -> CodedChannels:
    """The second read through the backbone and the depth allocation stage: indices and depths."""
    allocators = depth_allocators(parts, header, plan)
    # Made per piece: a whole-stream tensor would cost 128 bytes a frame (35 MB an hour).
    cond = FrameConditioning(header, 0, parts.embeddings())
    codes = encode_blocks(parts.backbone, blocks, header.original_sample_rate_hz, header.length_samples,
                          header.stereo_mode == "mid_side", cond, coded_levels(header), allocators, progress)
    depths = [alloc.finish() if alloc is not None else header.frame_layout(ch, 0, header.n_frames)[0]
              for ch, alloc in enumerate(allocators)]
    return CodedChannels(codes, depths)


def write_stream(parts: CodecParts, target, header: AcxHeader, coded: CodedChannels) -> None:
    """Entropy-code every chunk (in file order: each time span, channel 0, 1, ...) and write the stream.

    ``target`` is a path (written atomically) or a binary file object.
    """
    with AcxWriter(target, header) as writer:
        for ch, a, n in chunk_order(header):
            _, priors, _ = header.frame_layout(ch, a, a + n)
            data = encode_frames(parts.entropy_model, coded.codes[ch][:, a : a + n], coded.depths[ch][a : a + n],
                                 priors, adaptive=header.adaptive_frames(ch, a, a + n))
            writer.write_chunk(AcxChunk(ch, a, n, data))


class ChunkStream:
    """Stage: RVQ indices of pieces in, entropy-coded chunks out, in file order, as soon as they are final.

    The streaming form of :func:`write_stream`: a chunk is coded once every
    frame of it has its indices and (for a channel with adaptive segments)
    its allocated depths, with exactly the arrays :func:`write_stream` would
    slice from :class:`CodedChannels`, so the bytes are the same; indices of
    written chunks are dropped, so memory holds about one backbone piece
    per channel.

    Parameters
    ----------
    parts : CodecParts
    header : AcxHeader
    levels : list of int
        RVQ levels computed per channel (:func:`coded_levels`; 0: not coded).
    allocators : list of DepthAllocator or None
        Per channel (:func:`depth_allocators`).
    """

    def __init__(self, parts: CodecParts, header: AcxHeader, levels: Sequence[int],
                 allocators: Sequence[DepthAllocator | None]) -> None:
        self.parts, self.header = parts, header
        self.levels, self.allocators = list(levels), list(allocators)
        self._order = chunk_order(header)
        self._next = next(self._order, None)
        # Per channel: the coded pieces not yet written, [(start_frame, codes (levels, frames))].
        self._pieces: list[list[tuple[int, np.ndarray]]] = [[] for _ in levels]
        self._coded_to = [0] * len(self.levels)  # frames [0, coded_to) have indices

    def add(self, channel: int, start_frame: int, codes: np.ndarray) -> None:
        """The indices ``(levels, frames)`` of a channel's next piece, from ``start_frame`` on."""
        if start_frame != self._coded_to[channel]:
            raise ValueError(f"channel {channel}: piece at frame {start_frame}, expected {self._coded_to[channel]}")
        self._pieces[channel].append((start_frame, codes))
        self._coded_to[channel] = start_frame + codes.shape[1]

    def ready(self) -> Iterator[AcxChunk]:
        """The chunks that can be written now, in file order."""
        header = self.header
        while self._next is not None:
            ch, a, n = self._next
            b = a + n
            coded = self.levels[ch] > 0
            if coded and self._coded_to[ch] < b:
                return
            alloc = self.allocators[ch]
            depths = header.frame_layout(ch, a, b)[0] if alloc is None else alloc.final_depths(a, b)
            if depths is None:
                return
            codes = self._take(ch, a, b) if coded else np.zeros((1, n), np.int16)
            _, priors, _ = header.frame_layout(ch, a, b)
            data = encode_frames(self.parts.entropy_model, codes, depths, priors,
                                 adaptive=header.adaptive_frames(ch, a, b))
            yield AcxChunk(ch, a, n, data)
            self._next = next(self._order, None)

    def _take(self, channel: int, a: int, b: int) -> np.ndarray:
        """Indices of frames ``[a, b)``; pieces that end by ``b`` are dropped (chunks come in order)."""
        pieces = self._pieces[channel]
        parts = [codes[:, max(a, s) - s : min(b, s + codes.shape[1]) - s]
                 for s, codes in pieces if s < b and s + codes.shape[1] > a]
        self._pieces[channel] = [(s, codes) for s, codes in pieces if s + codes.shape[1] > b]
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def encode_stream(parts: CodecParts, target, blocks: Callable[[], Iterable[np.ndarray]], sample_rate_hz: int,
                  scan: SignalScan, plan: Sequence[PlannedSegment],
                  progress: Callable[[float], None] | None = None,
                  overhead_bits: Callable[[int, int], float] | None = None,
                  fixed_overhead_bits: float = 0.0) -> AcxHeader:
    """Header, then backbone + allocation over a fresh read of the input, each chunk written when final.

    A plan whose segments ask for a rate (``target_kbps``) is rate
    controlled (:func:`~adaptive_codec.pipeline.rate_stream.encode_stream_at_rate`):
    the whole stream's measured bits follow the target, ``overhead_bits``
    (per span) and ``fixed_overhead_bits`` (per stream) being side sections
    written beside the chunks whose bits the same budget pays. A plan of
    fixed depths (profiles given as ``n_q``) gives the same bytes as
    :func:`code_channels` + :func:`write_stream`. Either way memory does not
    grow with the input (:class:`ChunkStream`).

    Parameters
    ----------
    target : path or binary file object
        A path is written atomically.
    blocks : callable
        Returns a new iterable of the input's blocks ``(channels, samples)``.
    scan : SignalScan
        The first read's measurements.
    plan : sequence of PlannedSegment

    Returns
    -------
    AcxHeader
        The header written.

    Raises
    ------
    AudioError
        The second read differs from the first (the file changed).
    """
    header = build_header(parts, scan, sample_rate_hz, plan)
    if rate_controlled(plan):
        with _names_output(target):
            return encode_stream_at_rate(parts, target, blocks, header, plan, plan_side_divisor(plan), progress,
                                         overhead_bits, fixed_overhead_bits)[0]
    allocators = depth_allocators(parts, header, plan)
    levels = coded_levels(header)
    cond = FrameConditioning(header, 0, parts.embeddings())
    chunks = ChunkStream(parts, header, levels, allocators)
    pieces = backbone_pieces(parts.backbone, blocks(), header.original_sample_rate_hz, header.length_samples,
                             header.stereo_mode == "mid_side", levels, progress)
    with _names_output(target), AcxWriter(target, header) as writer:
        for ch, piece in pieces:
            codes, _ = code_piece(parts.backbone, piece, cond, levels[ch], allocators[ch])
            chunks.add(ch, piece.start_frame, codes)
            for chunk in chunks.ready():
                writer.write_chunk(chunk)
        for chunk in chunks.ready():  # channels not coded at all, after the last piece
            writer.write_chunk(chunk)
    return header


@contextlib.contextmanager
def _names_output(target) -> Iterator[None]:
    """Give an ``OSError`` without a file name (a write on a full disk) the output's path.

    ``write()`` on a full disk raises ENOSPC naming no file; the user should
    read "out.acx: No space left on device", not the reason alone.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or not isinstance(target, (str, os.PathLike)) or not exc.strerror:
            raise
        raise OSError(exc.errno, exc.strerror, os.fspath(target)) from exc
