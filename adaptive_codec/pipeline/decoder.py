"""The decoder: the encoder's stages backwards, from an ``.acx`` stream to audio blocks.

::

    header ─► compatibility (weights, entropy tables, frame layout)     check_compatible
           ─► chunks of the time range ─► entropy decoding              entropy.coder.decode_frames
           ─► per-frame conditioning from the profile table             planning.conditioning.FrameConditioning
           ─► backbone synthesis, 24 kHz ─► original rate, left/right   pipeline.signal.decode_blocks
           ─► high band, parametric stereo (streams that have them)     tools.highband, tools.parametric_stereo
           ─► the exact samples of the range                            cut

Decoding needs no classifier and no profile files: the profile table names
each built-in profile (whose embedding is in the weights) and carries every
custom profile's conditioning vector. It does need the exact weights and
entropy tables the stream names; any others are a clear error, never
garbage audio.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator

import numpy as np

from adaptive_codec.backbone.streaming import context_frames, piece_frames
from adaptive_codec.container.acx import AcxChunk, AcxReader
from adaptive_codec.container.acx_header import AcxHeader
from adaptive_codec.entropy.coder import decode_frames
from adaptive_codec.entropy.selection import ENTROPY_TABLE_NAME
from adaptive_codec.errors import AdaptiveCodecError, FormatError
from adaptive_codec.pipeline.parts import CodecParts
from adaptive_codec.pipeline.signal import CodedPiece, decode_blocks, piece_ranges, resampled_length
from adaptive_codec.planning.conditioning import EmbeddingTable, FrameConditioning
from adaptive_codec.tools.highband import highband_blocks
from adaptive_codec.tools.parametric_stereo import parametric_blocks

__all__ = ["check_compatible", "decode_range", "cut"]


def check_compatible(parts: CodecParts, header: AcxHeader) -> None:
    """Refuse a stream written with other weights, other entropy tables or another frame layout."""
    if header.weights_sha256_prefix != parts.weights_meta["sha256"][:16]:
        raise FormatError(
            f"stream was encoded with backbone weights {header.weights_id}; this installation "
            f"has {parts.weights_meta['weights_id']} - install the adaptive-codec version "
            "that wrote it to decode it")
    if header.entropy_digest_prefix != parts.entropy_model.digest()[:16]:
        raise FormatError(
            f"stream was coded with entropy tables {header.entropy_digest_prefix}; this "
            f"installation uses {parts.entropy_model.digest()[:16]} with the same weights "
            f"(a rebuilt or missing {ENTROPY_TABLE_NAME}?)")
    cfg = parts.backbone.config
    if (header.hop_samples, header.internal_sample_rate_hz, header.codebook_size) != (
            cfg.hop, cfg.sample_rate_hz, cfg.codebook_size):
        raise FormatError("stream's frame layout does not match the installed backbone")


def decode_range(parts: CodecParts, reader: AcxReader, start_s: float | None,
                 end_s: float | None) -> tuple[int, Iterator[np.ndarray]]:
    """Read what a time range needs; returns (samples, lazy audio blocks).

    The coded bytes of the range's chunks are read now (so the reader may be
    closed); they are entropy-decoded piece by piece as the blocks are
    consumed, so memory is bounded by those bytes and one backbone piece,
    never by the frame count the header declares.

    Parameters
    ----------
    reader : AcxReader
        An open stream.
    start_s, end_s : float, optional
        The range in seconds (default: the whole stream).

    Returns
    -------
    n_samples : int
        Samples per channel of the range at the original rate.
    blocks : iterator of np.ndarray [shape=(channels, samples)]
        Exactly the range, synthesised as they are consumed.
    """
    header = reader.header
    check_compatible(parts, header)
    if header.stereo_mode not in ("mono", "independent", "mid_side"):
        raise FormatError(f"unsupported stereo mode {header.stereo_mode!r}")
    cfg = parts.backbone.config
    sr = header.original_sample_rate_hz
    duration = header.length_samples / sr
    start_s = 0.0 if start_s is None else float(start_s)
    end_s = duration if end_s is None else min(float(end_s), duration)
    if not (0 <= start_s < end_s):
        raise AdaptiveCodecError(
            f"empty or invalid time range {start_s:g}..{end_s:g} s (file is {duration:.3f} s)")
    hop = cfg.hop
    n_internal = resampled_length(header.length_samples, sr, cfg.sample_rate_hz)
    if parts.backbone.mdct.n_frames(n_internal) != header.n_frames:  # the header checked the same rule
        raise FormatError(f"n_frames {header.n_frames} does not match the stream's length for this backbone")
    # Internal sample blocks to synthesise, with margin for the resampler,
    # starting on a block whose time is a whole original-rate sample.
    margin_s = 0.05 if (start_s > 0 or end_s < duration) else 0.0
    step = cfg.sample_rate_hz // math.gcd(hop * sr, cfg.sample_rate_hz)
    a = max(0, int(math.floor((start_s - margin_s) * cfg.sample_rate_hz / hop)))
    a -= a % step
    b = min(-(-n_internal // hop), int(math.ceil((end_s + margin_s) * cfg.sample_rate_hz / hop)))
    ctx = context_frames(parts.backbone)
    fa, fb = max(0, a - ctx), min(header.n_frames, b + 1 + ctx)
    chunks = list(reader.iter_chunks(fa, fb))
    table = parts.embeddings()
    channels = [_ChannelCodes(parts, header, ch, [c for c in chunks if c.channel == ch], table)
                for ch in range(header.channels)]
    pieces = _pieces(parts, header, channels, (a, b))
    blocks = decode_blocks(parts.backbone, pieces, n_internal, sr, header.stereo_mode == "mid_side")
    # Map the synthesised internal range back onto original-rate samples.
    first = a * hop * sr // cfg.sample_rate_hz
    blocks = highband_blocks(header, blocks, first)
    # After the high band: the image is given to the whole band, the regenerated part included.
    blocks = parametric_blocks(header, blocks, first)
    s0 = int(round(start_s * sr))
    s1 = header.length_samples if end_s >= duration else int(round(end_s * sr))
    return s1 - s0, cut(blocks, first, s0, s1, header.channels)


def _pieces(parts: CodecParts, header: AcxHeader, channels: list["_ChannelCodes"],
            block_range: tuple[int, int]) -> Iterator[CodedPiece]:
    """One :class:`CodedPiece` per backbone piece of the range, its frames decoded when it is reached."""
    for a, b in piece_ranges(block_range):
        fa, fb = piece_frames(parts.backbone, a, b, header.n_frames)
        windows = [ch.window(fa, fb) for ch in channels]
        yield CodedPiece((a, b), fa, [w[0] for w in windows], [w[1] for w in windows], [w[2] for w in windows])


class _ChannelCodes:
    """One channel's chunks of the range, entropy-decoded when a piece first needs them.

    Pieces come in time order and overlap only by their context, so a decoded
    chunk is kept until a piece starts after it: at most the chunks of one
    piece are held decoded.
    """

    def __init__(self, parts: CodecParts, header: AcxHeader, channel: int, chunks: list[AcxChunk],
                 table: EmbeddingTable) -> None:
        self.parts, self.header, self.channel = parts, header, channel
        self.chunks = chunks
        self.starts = [c.start_frame for c in chunks]  # ascending: file order within a channel
        self.decoded: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # start_frame -> (codes, depths)
        self.checked = 0  # chunks before this one are checked (silent channels)
        rows = header.segments_for_channel(channel)
        # A channel coded with no levels decodes to silence; its chunks are still checked.
        self.silent = not any(seg.n_q for seg in rows)
        self.has_adaptive = any(seg.adaptive for seg in rows)
        self.conditioning = None if self.silent else FrameConditioning(header, channel, table)

    def _decode(self, chunk: AcxChunk) -> tuple[np.ndarray, np.ndarray]:
        h, lo, hi = self.header, chunk.start_frame, chunk.end_frame
        layout, priors, _ = h.frame_layout(self.channel, lo, hi)
        c, d = decode_frames(self.parts.entropy_model, chunk.data, layout, priors, h.max_levels,
                             adaptive=h.adaptive_frames(self.channel, lo, hi), return_depths=True)
        return c.astype(np.int16), d

    def window(self, fa: int, fb: int):
        """Codes ``(levels, fb - fa)`` int16, depths ``(fb - fa,)`` and conditioning of frames ``[fa, fb)``.

        All three are None for a silent channel.
        """
        first = max(0, bisect.bisect_right(self.starts, fa) - 1)
        last = bisect.bisect_left(self.starts, fb)
        if self.silent:
            # Nothing to synthesise: only check the chunks (an empty one codes
            # no symbol, which is all a silent channel without a depth map has).
            for chunk in self.chunks[max(first, self.checked) : last]:
                if chunk.data or self.has_adaptive:
                    self._decode(chunk)
            self.checked = max(self.checked, last)
            return None, None, None
        h = self.header
        codes = np.zeros((h.max_levels, fb - fa), np.int16)
        depths = np.zeros(fb - fa, np.int64)
        for start in [s for s, (c, _) in self.decoded.items() if s + c.shape[1] <= fa]:
            del self.decoded[start]
        for chunk in self.chunks[first:last]:
            lo, hi = chunk.start_frame, chunk.end_frame
            if hi <= fa or lo >= fb:
                continue
            if lo not in self.decoded:
                self.decoded[lo] = self._decode(chunk)
            c, d = self.decoded[lo]
            x, y = max(lo, fa), min(hi, fb)
            codes[:, x - fa : y - fa] = c[:, x - lo : y - lo]
            depths[x - fa : y - fa] = d[x - lo : y - lo]
        return codes, depths, self.conditioning.rows(fa, fb)


def cut(blocks: Iterable[np.ndarray], first: int, s0: int, s1: int, channels: int) -> Iterator[np.ndarray]:
    """The part of consecutive ``blocks`` (the first at sample ``first``) in ``[s0, s1)``."""
    pos, emitted = first, 0
    for block in blocks:
        lo, hi = max(pos, s0), min(pos + block.shape[-1], s1)
        if hi > lo:
            yield block[:, lo - pos : hi - pos]
            emitted += hi - lo
        pos += block.shape[-1]
    if emitted < s1 - s0:  # never expected: the range is synthesised with margin
        yield np.zeros((channels, s1 - s0 - emitted), np.float32)
