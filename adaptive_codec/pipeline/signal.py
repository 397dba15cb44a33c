"""The codec's signal path, block by block: mid/side, resampling, backbone chunks.

:class:`~adaptive_codec.codec.AdaptiveCodec` reads its input as a stream of
blocks (a file read with :func:`~adaptive_codec.audio.files.iter_audio_blocks`, or
views of an in-memory array) in two passes:

1. :func:`scan_blocks`: length, mid/side levels and, for ``profile="auto"``,
   the classifier's window probabilities (streamed; the classifier needs the
   whole file before the first segment is final, but keeps only a few bytes
   a window);
2. :func:`backbone_pieces`: mid/side, :class:`~adaptive_codec.audio.resampling.StreamResampler`
   to 24 kHz and one :class:`~adaptive_codec.backbone.streaming.PieceCutter`
   per channel, which cuts exactly the pieces whole-signal encoding uses;
   each piece is analysed, its frames' depths allocated
   (:class:`~adaptive_codec.planning.depth_allocation.DepthAllocator`) and
   its RVQ indices searched (:func:`code_piece`). The encoder
   (:func:`~adaptive_codec.pipeline.encoder.encode_stream`) writes each
   chunk when it is final; :func:`encode_blocks` collects the indices of the
   whole file instead (2 bytes per level and frame).

:func:`decode_blocks` runs the way back: backbone pieces of
:data:`~adaptive_codec.backbone.streaming.CHUNK_FRAMES` frames, resampling to
the original rate, mid/side to left/right. Memory is bounded by a block and
a piece whatever the length of the file (the encoder also holds the RVQ
indices, 2 bytes per level and frame; the decoder only a piece's); the
output equals whole-signal processing to float rounding.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from adaptive_codec.audio.resampling import StreamResampler
from adaptive_codec.backbone.streaming import (
    CHUNK_FRAMES,
    Backbone,
    PieceCutter,
    SignalPiece,
    analyse_piece,
    n_frames,
    quantize_piece,
    synthesize_piece,
)
from adaptive_codec.errors import AudioError, FormatError
from adaptive_codec.planning.conditioning import FrameConditioning
from adaptive_codec.planning.depth_allocation import DepthAllocator

__all__ = ["SignalScan", "scan_blocks", "array_blocks", "backbone_pieces", "code_piece", "encode_blocks",
           "CodedPiece", "piece_ranges", "decode_blocks", "resampled_length", "BLOCK_SECONDS"]

#: Seconds of input read per block. Short blocks keep memory low (a 10-minute
#: 48 kHz stereo encode peaked ~25 MiB lower than with 10 s blocks); per-block
#: overheads are still negligible at this length.
BLOCK_SECONDS = 4.0


@dataclass(frozen=True)
class SignalScan:
    """What the first pass over an input learns.

    Attributes
    ----------
    n_samples : int
        Samples per channel actually read.
    channels : int
    mid_rms, side_rms : float
        RMS of ``(L + R) / 2`` and ``(L - R) / 2`` (stereo; 0 otherwise).
    segments : list of Segment or None
        Classifier segments (``profile="auto"`` only).
    highband : HighBandSection or None
        The coded high band (:func:`adaptive_codec.tools.highband.code_highband`), set after planning.
    stereo : ParametricStereoSection or None
        The coded stereo parameters when the pair is coded as mid + parametric
        stereo (:func:`adaptive_codec.tools.parametric_stereo.code_parametric`), set after planning.
    """

    n_samples: int
    channels: int
    mid_rms: float
    side_rms: float
    segments: list | None
    highband: object | None = None
    stereo: object | None = None


def array_blocks(audio: np.ndarray, block_samples: int) -> Iterator[np.ndarray]:
    """Views of ``audio`` ``(channels, samples)`` of ``block_samples`` samples each."""
    for start in range(0, audio.shape[-1], block_samples):
        yield audio[:, start : start + block_samples]


def scan_blocks(blocks: Iterable[np.ndarray], sample_rate_hz: int, classifier=None) -> SignalScan:
    """First pass: length, mid/side levels and (with a classifier) segments.

    Parameters
    ----------
    blocks : iterable of np.ndarray [shape=(channels, samples)]
    sample_rate_hz : int
    classifier : ContentClassifier, optional
        Classify the mono downmix in the same pass
        (:func:`~adaptive_codec.analysis.routing.classify_blocks`, the one
        classify path).
    """
    n, channels = 0, 0
    sums = np.zeros(2)  # sum of squares of mid and side, float64

    def counted(source: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal n, channels
        for block in source:
            channels = block.shape[0]
            n += block.shape[-1]
            if channels == 2:
                mid = (block[0] + block[1]) / 2
                side = (block[0] - block[1]) / 2
                sums[0] += float(np.dot(mid.astype(np.float64), mid))
                sums[1] += float(np.dot(side.astype(np.float64), side))
            yield block

    segments = None
    if classifier is None:
        for _ in counted(blocks):
            pass
    else:
        from adaptive_codec.analysis import classify_blocks  # the feature stack: only for "auto"

        segments = classify_blocks(counted(blocks), sample_rate_hz, classifier)
    rms = np.sqrt(sums / max(n, 1))
    return SignalScan(n, channels, float(rms[0]), float(rms[1]), segments)


def resampled_length(n: int, sr_from: int, sr_to: int) -> int:
    """Samples of an ``n``-sample signal at ``sr_to``: ``ceil(n · sr_to / sr_from)``."""
    return n if sr_from == sr_to else int(math.ceil(n * sr_to / sr_from))


def backbone_pieces(backbone: Backbone, blocks: Iterable[np.ndarray], sample_rate_hz: int, n_samples: int,
                    mid_side: bool, levels: list[int],
                    progress: Callable[[float], None] | None = None) -> Iterator[tuple[int, SignalPiece]]:
    """Second pass, up to the backbone: mid/side, 24 kHz, cut into the backbone's pieces.

    Parameters
    ----------
    backbone : Backbone
    blocks : iterable of np.ndarray [shape=(channels, samples)]
        The input again, at ``sample_rate_hz``; ``n_samples`` in all.
    mid_side : bool
        Code two channels as ``(L + R) / 2`` and ``(L - R) / 2``.
    levels : list of int
        RVQ depth per channel; a channel with 0 is not coded (no pieces).
    progress : callable, optional
        Called with the fraction of the input read so far.

    Yields
    ------
    channel : int
    piece : SignalPiece
        In signal order; the pieces of the coded channels interleave as
        the blocks arrive.

    Raises
    ------
    AudioError
        ``blocks`` held more or fewer than ``n_samples`` samples: the input
        changed since the first read (named when ``blocks`` has a ``path``).
    """
    internal_hz = backbone.config.sample_rate_hz
    n_internal = resampled_length(n_samples, sample_rate_hz, internal_hz)
    coded = [ch for ch, depth in enumerate(levels) if depth > 0]
    cutters = {ch: PieceCutter(backbone, n_internal) for ch in coded}
    resampler = StreamResampler(sample_rate_hz, internal_hz) if sample_rate_hz != internal_hz else None
    done = 0
    for block in blocks:
        done += block.shape[-1]
        if done > n_samples:
            # Before the extra samples reach the cutters, which are sized for n_samples.
            raise _changed(blocks, done, n_samples)
        if coded:
            x = _to_mid_side(block) if mid_side else block
            x = x[coded]
            internal = resampler.push(x) if resampler is not None else x
            for row, ch in enumerate(coded):
                for piece in cutters[ch].push(internal[row]):
                    yield ch, piece
        if progress is not None:
            progress(done / max(n_samples, 1))
    if done != n_samples:
        raise _changed(blocks, done, n_samples)
    if coded and resampler is not None:
        internal = resampler.finish()
        for row, ch in enumerate(coded):
            for piece in cutters[ch].push(internal[row]):
                yield ch, piece
    for ch in coded:
        for piece in cutters[ch].finish():
            yield ch, piece


def _changed(blocks: Iterable[np.ndarray], n_read: int, n_samples: int) -> AudioError:
    """The error for a second read that does not match the first (a file written to meanwhile)."""
    # A file's blocks (audio.files.AudioBlocks) know their path; an array's do not.
    name = getattr(blocks, "path", None) or "input"
    more = f"more than the {n_samples}" if n_read > n_samples else f"{n_read} samples, not the {n_samples}"
    return AudioError(f"{name}: the input changed between the encoder's two reads ({more} samples of "
                      "the first read); encode a copy that nothing else writes to")


def code_piece(backbone: Backbone, piece: SignalPiece, cond: np.ndarray | FrameConditioning, max_levels: int,
               allocator: DepthAllocator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One piece through the backbone: analysis, depth allocation, RVQ search.

    Parameters
    ----------
    cond : np.ndarray [shape=(frames, cond_dim)] or FrameConditioning
        Conditioning of every frame of the stream, as one array or made
        for the piece's frames only (bounded memory; the same values).
    max_levels : int
        Levels to compute.
    allocator : DepthAllocator, optional
        The channel's depth allocation stage, for a channel with energy-adaptive
        segments: it takes the piece's frame energies and says how many levels
        each frame is searched at. Without it every frame is searched at
        ``max_levels``.

    Returns
    -------
    codes : np.ndarray [shape=(max_levels, frames)], int16
        Indices of the piece's coded frames (0 beyond a frame's searched depth).
    log_energy : np.ndarray [shape=(frames,)], float32
    """
    features, energy = analyse_piece(backbone, piece)
    depths = None if allocator is None else allocator.allocate(piece.start_frame, piece.end_frame, energy)
    if isinstance(cond, FrameConditioning):
        # The piece's rows, and the piece counted from its first frame: the
        # backbone sees the same conditioning as from the whole tensor.
        first = piece.first_frame
        cond = cond.rows(first, first + features.shape[0])
        piece = dataclasses.replace(piece, first_frame=0, start_frame=piece.start_frame - first,
                                    end_frame=piece.end_frame - first)
    return quantize_piece(backbone, piece, features, cond, max_levels, depths), energy


def encode_blocks(backbone: Backbone, blocks: Iterable[np.ndarray], sample_rate_hz: int, n_samples: int,
                  mid_side: bool, cond: np.ndarray | FrameConditioning, levels: list[int],
                  allocators: list[DepthAllocator | None],
                  progress: Callable[[float], None] | None = None) -> list[np.ndarray]:
    """Second pass: RVQ indices of every channel (:func:`backbone_pieces` + :func:`code_piece`).

    Parameters
    ----------
    cond : np.ndarray [shape=(frames, cond_dim)] or FrameConditioning
        As in :func:`code_piece`.
    levels : list of int
        RVQ depth to compute per channel; 0 skips the channel.
    allocators : list of DepthAllocator or None
        Per channel, its depth allocation stage (None: fixed depth).

    Returns
    -------
    list of np.ndarray [shape=(levels, frames)], int16
        One per channel (a single row of zeros for a skipped channel).
    """
    frames = n_frames(backbone, resampled_length(n_samples, sample_rate_hz, backbone.config.sample_rate_hz))
    codes = [np.zeros((depth, frames), np.int16) if depth > 0 else np.zeros((1, frames), np.int16)
             for depth in levels]
    for ch, piece in backbone_pieces(backbone, blocks, sample_rate_hz, n_samples, mid_side, levels, progress):
        codes[ch][:, piece.start_frame : piece.end_frame], _ = code_piece(
            backbone, piece, cond, levels[ch], allocators[ch])
    return codes


def _to_mid_side(block: np.ndarray) -> np.ndarray:
    return np.stack([(block[0] + block[1]) / 2, (block[0] - block[1]) / 2])


@dataclass(frozen=True)
class CodedPiece:
    """What one backbone synthesis call needs, for every channel: only its own frames.

    Attributes
    ----------
    block_range : (int, int)
        Internal sample blocks (of ``hop`` samples) ``[a, b)`` to synthesise.
    first_frame : int
        Global frame index of column 0 of every channel's arrays
        (:func:`~adaptive_codec.backbone.streaming.piece_frames` of ``block_range``).
    codes : list of np.ndarray [shape=(levels, frames)] or None
        Per channel; None for a channel coded with no levels (it decodes to silence).
    depths : list of np.ndarray [shape=(frames,)] or None
        Levels each frame uses, per channel.
    conds : list of np.ndarray [shape=(frames, cond_dim)] or None
        Conditioning per channel.
    """

    block_range: tuple[int, int]
    first_frame: int
    codes: list
    depths: list
    conds: list


def piece_ranges(block_range: tuple[int, int]) -> Iterator[tuple[int, int]]:
    """The ``[a, b)`` sample-block ranges, :data:`CHUNK_FRAMES` long, that :func:`decode_blocks` synthesises in turn."""
    first, last = block_range
    for a in range(first, last, CHUNK_FRAMES):
        yield a, min(last, a + CHUNK_FRAMES)


def decode_blocks(backbone, pieces: Iterable[CodedPiece], n_internal: int, sample_rate_hz: int,
                  mid_side: bool) -> Iterator[np.ndarray]:
    """Audio at the original rate from RVQ indices, piece by piece.

    Parameters
    ----------
    backbone : Backbone
    pieces : iterable of CodedPiece
        In order, one per :func:`piece_ranges` of the range; each holds only
        the frames its synthesis reads, so memory is one piece whatever the
        length of the stream.
    n_internal : int
        Length of the whole signal at the internal rate.
    sample_rate_hz : int
        Rate to return.
    mid_side : bool
        Channels are mid and side: return left and right.

    Yields
    ------
    np.ndarray [shape=(channels, samples)], float32
        Consecutive pieces of the output; in all
        ``ceil(len · sample_rate_hz / internal_rate)`` samples for the
        ``len`` internal samples of the range, the first at time ``a · hop``
        of the first piece.

    Raises
    ------
    FormatError
        The synthesised audio is not finite (e.g. an extreme conditioning
        vector embedded in the stream): never handed on to be written.
    """
    hop = backbone.config.hop
    internal_hz = backbone.config.sample_rate_hz
    resampler = StreamResampler(internal_hz, sample_rate_hz) if sample_rate_hz != internal_hz else None
    for piece in pieces:
        a, b = piece.block_range
        n = max(0, min(n_internal, b * hop) - a * hop)
        internal = np.stack([
            synthesize_piece(backbone, c, d, cond, a, b, piece.first_frame, n_internal) if c is not None
            else np.zeros(n, np.float32)
            for c, d, cond in zip(piece.codes, piece.depths, piece.conds)])
        out = resampler.push(internal) if resampler is not None else internal
        yield _finite(_from_mid_side(out) if mid_side else out, a * hop / internal_hz)
    if resampler is not None:
        out = resampler.finish()
        yield _finite(_from_mid_side(out) if mid_side else out, n_internal / internal_hz)


def _finite(block: np.ndarray, at_s: float) -> np.ndarray:
    # Garbage in a valid container (NaN/inf from the backbone) must be an
    # error, not a file of NaNs that players turn into noise or silence.
    if not np.isfinite(block).all():
        raise FormatError(f"decoded audio is not finite near {at_s:.2f} s (an embedded profile's "
                          "conditioning outside what the backbone was trained on?)")
    return block


def _from_mid_side(block: np.ndarray) -> np.ndarray:
    return np.stack([block[0] + block[1], block[0] - block[1]])
