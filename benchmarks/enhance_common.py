"""Shared pieces of the depth diagnosis and the enhancement-layer prototype (issue 34).

Not a benchmark itself: :mod:`depth_diagnosis`, :mod:`enhance_prototype`
and :mod:`enhance_drift` import it (a script's own folder is on the path
when it is run as ``python benchmarks/NAME.py``). Everything here reads a coded stream the way the decoder does
and stops where the enhancement layer would act: at the backbone's decoded
MDCT coefficients, before the inverse MDCT.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

#: Held-out clips per class, in this order of preference: full-band (44.1/48
#: kHz) music and ambient first, so the high band is exercised; speech is 16 kHz.
CLASSES = ("speech", "music", "ambient")


def held_out_clips(corpus: Path, per_class: int) -> list[tuple[str, Path, int]]:
    """``(label, path, source rate)`` of up to ``per_class`` held-out clips per class.

    Music and ambient prefer sources recorded at 44.1/48 kHz (they have a
    high band); the rest are filled from the lower-rate ones. Sorted by path
    within a class, so the choice is reproducible.
    """
    from adaptive_codec.bench.corpus import is_held_out

    with open(corpus / "manifest.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if is_held_out(r["source"]) and r["label"] in CLASSES]
    out = []
    for label in CLASSES:
        mine = sorted((r for r in rows if r["label"] == label),
                      key=lambda r: (int(r["orig_sample_rate"]) < 44100, r["path"]))
        out += [(label, corpus / r["path"], int(r["orig_sample_rate"])) for r in mine[:per_class]]
    return out


def read_mono(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    """The first ``seconds`` of ``path`` as a mono float32 downmix, and its rate."""
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(x.mean(axis=1)[: int(seconds * sr)]), sr


def fixed_depth(profile, n_q: int):
    """``profile`` at a fixed RVQ depth (no bitrate target: rate control leaves it alone)."""
    return dataclasses.replace(profile, n_q=int(n_q), bitrate_kbps=None)


def decoded_coefficients(codec, data: bytes) -> tuple[np.ndarray, object]:
    """The backbone's decoded MDCT of a mono stream, exactly the frames its decoder synthesises.

    Parameters
    ----------
    codec : AdaptiveCodec
    data : bytes
        A mono ``.acx`` stream.

    Returns
    -------
    coefficients : np.ndarray [shape=(frames, hop)], float32
        At the internal rate (24 kHz); the whole stream at once, which equals
        the decoder's piecewise synthesis to float rounding (its pieces carry
        the decoder's whole context).
    header : AcxHeader
    """
    import io

    from adaptive_codec.container.acx import AcxReader
    from adaptive_codec.entropy.coder import decode_frames
    from adaptive_codec.pipeline.decoder import check_compatible
    from adaptive_codec.planning.conditioning import FrameConditioning

    parts = codec.parts
    with AcxReader(io.BytesIO(data)) as reader:
        header = reader.header
        check_compatible(parts, header)
        if header.channels != 1:
            raise ValueError("decoded_coefficients takes mono streams")
        chunks = list(reader.iter_chunks(0, header.n_frames))
    if not any(seg.n_q for seg in header.segments_for_channel(0)):
        return np.zeros((header.n_frames, parts.backbone.config.hop), np.float32), header
    # The decoder's own steps (pipeline.decoder): entropy-decode each chunk, then the frames' conditioning.
    codes = np.zeros((header.max_levels, header.n_frames), np.int64)
    depths = np.zeros(header.n_frames, np.int64)
    for chunk in chunks:
        lo, hi = chunk.start_frame, chunk.end_frame
        layout, priors, _ = header.frame_layout(0, lo, hi)
        c, d = decode_frames(parts.entropy_model, chunk.data, layout, priors, header.max_levels,
                             adaptive=header.adaptive_frames(0, lo, hi), return_depths=True)
        codes[:, lo:hi], depths[lo:hi] = c, d
    cond = FrameConditioning(header, 0, parts.embeddings()).rows(0, header.n_frames)
    return parts.backbone.coefficients(codes, depths, cond), header


def to_internal(codec, x: np.ndarray, sr: int) -> np.ndarray:
    """``x`` at the backbone's rate (24 kHz) through the codec's own resampler."""
    from adaptive_codec.audio.resampling import resample

    return np.asarray(resample(x, sr, codec.backbone.config.sample_rate_hz), np.float32)


def from_internal(codec, y24: np.ndarray, sr: int, n: int) -> np.ndarray:
    """A 24 kHz signal at ``sr``, cut or padded to ``n`` samples (the decoder's resampler)."""
    from adaptive_codec.audio.resampling import resample

    y = np.asarray(resample(np.asarray(y24, np.float32), codec.backbone.config.sample_rate_hz, sr), np.float32)
    out = np.zeros(n, np.float32)
    out[: min(n, y.size)] = y[:n]
    return out


def with_highband(header, low: np.ndarray) -> np.ndarray:
    """``low`` (the low band at the stream's original rate, ``(n,)``) plus the stream's high band.

    The same call the decoder makes after its resampler; a stream without a
    high-band section returns ``low`` unchanged.
    """
    from adaptive_codec.tools.highband import highband_blocks

    blocks = list(highband_blocks(header, [np.asarray(low, np.float32)[None, :]], 0))
    return np.concatenate(blocks, axis=-1)[0, : low.size]


def kbps(n_bytes: int, seconds: float) -> float:
    """Actual rate of ``n_bytes`` over ``seconds`` of audio."""
    return n_bytes * 8 / seconds / 1000
