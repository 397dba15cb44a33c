"""Chunked encode/decode of long signals with bounded memory.

The encoder and decoder are non-causal convolution stacks with a finite
receptive field (``blocks × (kernel // 2)`` frames each side), and MDCT frame
``t`` covers samples ``[(t - 1)·hop, (t + 1)·hop)``. Processing a chunk of
frames with ``context`` extra frames on both sides therefore gives the same
frames as processing the whole signal, up to float rounding, as long as
``context`` exceeds the receptive field. Memory is bounded by the chunk size.

Everything here is NumPy: the functions take any backbone with the
inference interface (:class:`adaptive_codec.runtime.engine.RuntimeBackbone`,
or :class:`adaptive_codec.backbone.inference.TorchBackbone` over the torch
model); a torch :class:`~adaptive_codec.backbone.model.Backbone` given
directly is wrapped in the latter (:func:`inference_backbone`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Frames per processing piece (18 s at 75 frames/s): a multiple of the
#: bitstream's default chunk (225 frames), so work split on bitstream chunks
#: (e.g. across Dask workers) can use exactly the same pieces.
CHUNK_FRAMES = 1350


Backbone = Any  # an inference backbone (see the module docstring)


def inference_backbone(model: Any) -> Any:
    """``model`` with the inference interface: as it is, or a torch Backbone wrapped in TorchBackbone."""
    if getattr(model, "executor", None) is not None:
        return model
    from adaptive_codec.backbone.inference import TorchBackbone  # torch: only for a torch model

    return TorchBackbone(model)


def context_frames(model: Backbone) -> int:
    """Margin (frames) that makes chunked processing match whole-signal processing."""
    cfg = model.config
    blocks = max(cfg.encoder_blocks, cfg.decoder_blocks)
    return blocks * (cfg.kernel_size // 2) + 2


def n_frames(model: Backbone, n_samples: int) -> int:
    """Frames the codec produces for ``n_samples`` samples at the internal rate."""
    return model.n_frames(n_samples) if hasattr(model, "n_frames") else model.mdct.n_frames(n_samples)


def _chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, size):
        yield start, min(total, start + size)


@dataclass(frozen=True)
class SignalPiece:
    """One backbone call's worth of a mono internal-rate signal.

    Attributes
    ----------
    first_frame : int
        Global index of the piece's first (context) frame.
    start_frame, end_frame : int
        The frames ``[start_frame, end_frame)`` this piece codes; the others
        are context that the neighbouring pieces code.
    samples : np.ndarray [shape=(samples,)], float32
        The signal from sample ``first_frame · hop``.
    """

    first_frame: int
    start_frame: int
    end_frame: int
    samples: np.ndarray = field(repr=False)


class PieceCutter:
    """Cuts a mono internal-rate signal that arrives block by block into backbone pieces.

    Pieces of ``chunk_frames`` coded frames plus context are cut exactly as a
    whole signal is cut, whatever the block sizes, so every piece is the same
    array; samples no later piece needs are dropped, so memory is one piece
    at any length.

    Parameters
    ----------
    model : Backbone
        Gives the hop, the frame count and the context.
    n_samples : int
        Length of the whole signal (internal rate): the frame count and the
        last piece depend on it.
    chunk_frames : int
        Frames coded per piece.
    """

    def __init__(self, model: Backbone, n_samples: int, chunk_frames: int = CHUNK_FRAMES) -> None:
        self.hop = model.config.hop
        self.context = context_frames(model)
        self.n_samples = int(n_samples)
        self.chunk_frames = chunk_frames
        self.total_frames = n_frames(model, self.n_samples)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = 0  # signal index of _buffer[0]
        self._received = 0
        self._next_frame = 0  # first frame not yet handed out in a piece

    def push(self, samples: np.ndarray) -> list[SignalPiece]:
        """Append the next ``samples`` ``(n,)``; returns the pieces they complete, in order."""
        if self._received + samples.shape[-1] > self.n_samples:
            raise ValueError(f"more than the announced {self.n_samples} samples")
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float32)])
        self._received += samples.shape[-1]
        return self._ready_pieces()

    def finish(self) -> list[SignalPiece]:
        """The remaining pieces once every announced sample has arrived."""
        if self._received != self.n_samples:
            raise ValueError(f"got {self._received} of the announced {self.n_samples} samples")
        return self._ready_pieces()

    def _ready_pieces(self) -> list[SignalPiece]:
        hop, ctx, total = self.hop, self.context, self.total_frames
        out = []
        while self._next_frame < total:
            a = self._next_frame
            b = min(total, a + self.chunk_frames)
            fa = max(0, a - ctx - 1)  # first frame whose samples we feed
            fb = min(total, b + ctx)
            # Frame t covers samples [(t-1)·hop, (t+1)·hop); feeding samples from
            # fa·hop makes local frame j equal global frame fa + j.
            lo, hi = fa * hop, min(self.n_samples, (fb + 1) * hop)
            if hi > self._received:
                break
            piece = self._buffer[lo - self._buffer_start : hi - self._buffer_start]
            out.append(SignalPiece(fa, a, b, piece))
            self._next_frame = b
            keep_from = max(0, b - ctx - 1) * hop  # where the next piece starts
            self._buffer = self._buffer[keep_from - self._buffer_start :]
            self._buffer_start = keep_from
        return out


def analyse_piece(model: Backbone, piece: SignalPiece) -> tuple[np.ndarray, np.ndarray]:
    """Backbone analysis of a piece: its features and the log10 energies of its coded frames.

    Returns
    -------
    features : np.ndarray [shape=(frames, channels)], float32
        Every frame of the piece, context included.
    log_energy : np.ndarray [shape=(end_frame - start_frame,)], float32
    """
    features, energy = inference_backbone(model).analyse(np.ascontiguousarray(piece.samples))
    a, b = piece.start_frame - piece.first_frame, piece.end_frame - piece.first_frame
    return features, np.ascontiguousarray(energy[a:b])


def quantize_piece(model: Backbone, piece: SignalPiece, features: np.ndarray, cond: np.ndarray,
                   max_levels: int, depths: np.ndarray | None = None) -> np.ndarray:
    """RVQ indices of a piece's coded frames from its analysis features.

    Parameters
    ----------
    features : np.ndarray [shape=(frames, channels)]
        :func:`analyse_piece` of the piece.
    cond : np.ndarray [shape=(frames, cond_dim)]
        Conditioning of every frame of the whole signal.
    max_levels : int
        Levels to compute.
    depths : np.ndarray [shape=(end_frame - start_frame,)], optional
        Levels to search per coded frame (context frames are not searched);
        without it every frame is searched at ``max_levels``.

    Returns
    -------
    np.ndarray [shape=(max_levels, end_frame - start_frame)], int16
    """
    frames = features.shape[0]
    c = _fit(np.asarray(cond, np.float32)[piece.first_frame : piece.first_frame + frames], frames)
    a, b = piece.start_frame - piece.first_frame, piece.end_frame - piece.first_frame
    local = None
    if depths is not None:
        # Context frames are coded by the neighbouring pieces: not searched here.
        local = np.zeros(frames, dtype=np.int64)
        local[a:b] = np.asarray(depths, np.int64)
    codes = inference_backbone(model).quantize(features, c, max_levels, local)
    return codes[:, a:b].astype(np.int16)


class ChunkedEncoder:
    """RVQ indices of a mono internal-rate signal that arrives block by block.

    :class:`PieceCutter` + :func:`analyse_piece` + :func:`quantize_piece`
    with every frame searched at ``max_levels``: the codes equal
    :func:`encode_signal` of the whole signal.

    Parameters
    ----------
    model : Backbone
    n_samples : int
        Length of the whole signal (internal rate).
    cond : np.ndarray [shape=(frames, cond_dim)]
        Profile conditioning of every frame.
    max_levels : int
        Levels to compute.
    chunk_frames : int
        Frames coded per backbone call.
    """

    def __init__(self, model: Backbone, n_samples: int, cond: np.ndarray, max_levels: int,
                 chunk_frames: int = CHUNK_FRAMES) -> None:
        self.model = model = inference_backbone(model)
        self.cond = np.asarray(cond, np.float32)
        self.max_levels = max_levels
        self.cutter = PieceCutter(model, n_samples, chunk_frames)
        self.total_frames = self.cutter.total_frames
        self.codes = np.zeros((max_levels, self.total_frames), dtype=np.int16)
        #: log10 energy of every frame (filled as pieces are coded).
        self.log_energy = np.zeros(self.total_frames, dtype=np.float32)

    def push(self, samples: np.ndarray) -> None:
        """Append the next ``samples`` ``(n,)`` and code every piece they complete."""
        self._code(self.cutter.push(samples))

    def finish(self) -> np.ndarray:
        """Code the remaining pieces; returns the codes ``(max_levels, frames)``, int16."""
        self._code(self.cutter.finish())
        return self.codes

    def _code(self, pieces: list[SignalPiece]) -> None:
        for piece in pieces:
            features, energy = analyse_piece(self.model, piece)
            a, b = piece.start_frame, piece.end_frame
            self.codes[:, a:b] = quantize_piece(self.model, piece, features, self.cond, self.max_levels)
            self.log_energy[a:b] = energy


def encode_signal(
    model: Backbone,
    audio: np.ndarray,
    cond: np.ndarray,
    max_levels: int,
    chunk_frames: int = CHUNK_FRAMES,
) -> np.ndarray:
    """RVQ indices of a whole mono internal-rate signal, chunk by chunk.

    Parameters
    ----------
    model : Backbone
    audio : np.ndarray [shape=(samples,)], float32
    cond : np.ndarray [shape=(frames, cond_dim)]
        Profile conditioning of every frame.
    max_levels : int
        Levels to compute (the largest depth any frame uses).
    chunk_frames : int

    Returns
    -------
    np.ndarray [shape=(max_levels, frames)], int16
    """
    encoder = ChunkedEncoder(model, audio.shape[-1], cond, max_levels, chunk_frames)
    encoder.push(audio)
    return encoder.finish()


def piece_frames(model: Backbone, a: int, b: int, total_frames: int) -> tuple[int, int]:
    """Frames ``[fa, fb)`` whose codes synthesise sample blocks ``[a, b)`` exactly as the whole signal would.

    Samples of blocks ``[a, b)`` need coefficient frames ``a..b`` inclusive,
    plus the decoder's context on both sides.
    """
    ctx = context_frames(model)
    return max(0, a - ctx), min(total_frames, b + 1 + ctx)


def synthesize_piece(model: Backbone, codes: np.ndarray, depths: np.ndarray, cond: np.ndarray,
                     a: int, b: int, first_frame: int, n_samples: int) -> np.ndarray:
    """Samples ``[a·hop, min(n_samples, b·hop))`` of a mono signal from the codes of :func:`piece_frames`.

    Parameters
    ----------
    codes : np.ndarray [shape=(levels, frames)]
        Indices of frames ``[first_frame, first_frame + frames)``: exactly
        :func:`piece_frames` of ``(a, b)``.
    depths : np.ndarray [shape=(frames,)]
        Levels used by each of those frames.
    cond : np.ndarray [shape=(frames, cond_dim)]
        Their conditioning.
    a, b : int
        Sample blocks (of ``hop`` samples) to synthesise.
    first_frame : int
        Global index of column 0.
    n_samples : int
        Length of the whole signal.

    Returns
    -------
    np.ndarray [shape=(min(n_samples, b·hop) - a·hop,)], float32
    """
    model = inference_backbone(model)
    hop = model.config.hop
    coef = model.coefficients(codes, np.asarray(depths, np.int64), np.asarray(cond, np.float32))
    piece = model.inverse_mdct(coef[a - first_frame : b + 1 - first_frame], (b - a) * hop)
    return piece[: max(0, min(n_samples, b * hop) - a * hop)]


def decode_signal(
    model: Backbone,
    codes: np.ndarray,
    depths: np.ndarray,
    cond: np.ndarray,
    n_samples: int,
    chunk_frames: int = CHUNK_FRAMES,
    block_range: tuple[int, int] | None = None,
) -> np.ndarray:
    """Mono internal-rate signal from RVQ indices, chunk by chunk.

    Parameters
    ----------
    codes : np.ndarray [shape=(levels, frames)]
    depths : np.ndarray [shape=(frames,)]
        Levels used by each frame (indices at deeper levels are ignored).
    cond : np.ndarray [shape=(frames, cond_dim)]
    n_samples : int
        Length of the whole signal.
    block_range : (int, int), optional
        Synthesise only samples ``[a·hop, min(n_samples, b·hop))``; only the
        codes of frames ``a - context .. b + context`` are read.

    Returns
    -------
    np.ndarray [shape=(samples,)], float32
        The whole signal, or the requested range.
    """
    model = inference_backbone(model)
    cond = np.asarray(cond, np.float32)
    hop = model.config.hop
    total = codes.shape[1]
    blocks = -(-n_samples // hop)  # sample blocks of hop samples
    first, last = block_range if block_range is not None else (0, blocks)
    first, last = max(0, first), min(blocks, last)
    offset = first * hop
    out = np.zeros(max(0, min(n_samples, last * hop) - offset), dtype=np.float32)
    for a0, b0 in _chunks(last - first, chunk_frames):
        a, b = a0 + first, b0 + first
        fa, fb = piece_frames(model, a, b, total)
        piece = synthesize_piece(model, codes[:, fa:fb], depths[fa:fb], cond[fa:fb], a, b, fa, n_samples)
        out[a * hop - offset : a * hop - offset + piece.size] = piece
    return out


def _fit(c: np.ndarray, frames: int) -> np.ndarray:
    """Pad conditioning ``(n, cond_dim)`` with its last frame up to ``frames`` (end-of-signal frames)."""
    if c.shape[0] >= frames:
        return c[:frames]
    return np.concatenate([c, np.repeat(c[-1:], frames - c.shape[0], axis=0)], axis=0)
