"""The parametric-stereo header section of format 3.2 (tag 3): band grid, quantizers, one payload per span.

A stream with this section codes a stereo pair as its mid ``(L + R) / 2``
alone (the side channel's segment rows code no level); the section carries,
per band and parameter frame, the inter-channel level difference and
coherence from which :mod:`adaptive_codec.tools.parametric_stereo` makes
left and right again. A 3.1 reader ignores the section (a newer minor's
trailing header bytes, docs/FORMAT.md 2.6) and plays the mid on both
channels. The container knows the layout and bounds, not what the numbers mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from adaptive_codec.container.binary import Reader, Writer
from adaptive_codec.errors import FormatError

__all__ = ["TAG_STEREO", "STEREO_LAYOUT", "STEREO_PAYLOAD_LAYOUT", "MAX_STEREO_BANDS", "MAX_PARAM_FRAMES",
           "MAX_ILD_INDEX", "ICC_LEVEL_COUNT", "ParametricStereoSection", "write_stereo", "parse_stereo",
           "validate_stereo"]

TAG_STEREO = 3
#: Bands of the parameter grid.
MAX_STEREO_BANDS = 32
#: Codec frames per parameter frame.
MAX_PARAM_FRAMES = 64
#: ILD indices are ``-max_ild_index .. max_ild_index``.
MAX_ILD_INDEX = 63
#: Coherence indices 0..7 (the levels are fixed by the format, docs/FORMAT.md 2.8).
ICC_LEVEL_COUNT = 8

STEREO_LAYOUT = [
    ("band_count", "u8"),
    ("param_frames", "u8"),
    ("ild_step_quarter_db", "u8"),
    ("max_ild_index", "u8"),
    ("decorrelation_255", "u8"),
]
STEREO_PAYLOAD_LAYOUT = [("payload_length_bytes", "varint")]


@dataclass(frozen=True)
class ParametricStereoSection:
    """Parametric stereo of a stream: its grid, quantizer and one coded payload per chunk span.

    Attributes
    ----------
    band_edges_hz : tuple of int
        Upper edge of every band (the first starts at 0 Hz), increasing, the
        last at most half the original sample rate.
    param_frames : int
        Codec frames per parameter frame (1..64); a span's parameter frames
        start at its first frame.
    ild_step_quarter_db : int
        ILD quantizer step in quarter decibels (2..48).
    max_ild_index : int
        ILD indices are ``-max_ild_index .. max_ild_index`` (1..63).
    decorrelation_255 : int
        Share of the decorrelated signal's amplitude the decoder mixes in
        (times 255; 255: the coded coherence exactly, 0: level differences only).
    payloads : tuple of bytes
        The range-coded parameters of every chunk span, in time order.
    """

    band_edges_hz: tuple[int, ...]
    param_frames: int
    ild_step_quarter_db: int
    max_ild_index: int
    decorrelation_255: int
    payloads: tuple[bytes, ...]

    @property
    def payload_bytes(self) -> int:
        return sum(len(p) for p in self.payloads)

    def to_dict(self) -> dict:
        """JSON-able summary (payload sizes, not bytes)."""
        return {"band_edges_hz": list(self.band_edges_hz), "param_frames": self.param_frames,
                "ild_step_db": self.ild_step_quarter_db / 4, "max_ild_db": self.max_ild_index * self.ild_step_quarter_db / 4,
                "decorrelation": self.decorrelation_255 / 255,
                "payload_bytes": self.payload_bytes}


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise FormatError(f"{where}: parametric-stereo section: {msg}")


def validate_stereo(s: ParametricStereoSection, sample_rate_hz: int, n_spans: int, where: str) -> None:
    """Bounds of a parametric-stereo section against its header; :class:`FormatError` naming the field."""
    edges = (0,) + tuple(s.band_edges_hz)
    _check(1 <= len(s.band_edges_hz) <= MAX_STEREO_BANDS, where,
           f"band_count {len(s.band_edges_hz)} out of range 1..{MAX_STEREO_BANDS}")
    _check(all(a < b for a, b in zip(edges, edges[1:])), where, "band edges must increase from 0 Hz")
    _check(2 * s.band_edges_hz[-1] <= sample_rate_hz, where,
           f"band edge {s.band_edges_hz[-1]} Hz above half the sample rate {sample_rate_hz} Hz")
    _check(1 <= s.param_frames <= MAX_PARAM_FRAMES, where,
           f"param_frames {s.param_frames} out of range 1..{MAX_PARAM_FRAMES}")
    _check(2 <= s.ild_step_quarter_db <= 48, where, f"ild_step_quarter_db {s.ild_step_quarter_db} out of range 2..48")
    _check(1 <= s.max_ild_index <= MAX_ILD_INDEX, where, f"max_ild_index {s.max_ild_index} out of range 1..{MAX_ILD_INDEX}")
    _check(len(s.payloads) == n_spans, where, f"{len(s.payloads)} payloads, expected one per chunk span ({n_spans})")
    _check(all(len(p) % 4 == 0 for p in s.payloads), where, "a payload's length is not a multiple of 4")


def write_stereo(s: ParametricStereoSection) -> bytes:
    """The section's body (without its tag and length)."""
    w = Writer()
    w.fields(STEREO_LAYOUT, {"band_count": len(s.band_edges_hz), "param_frames": s.param_frames,
                             "ild_step_quarter_db": s.ild_step_quarter_db, "max_ild_index": s.max_ild_index,
                             "decorrelation_255": s.decorrelation_255})
    for edge in s.band_edges_hz:
        w.field("varint", edge, "band edge")
    w.payloads(STEREO_PAYLOAD_LAYOUT, s.payloads)
    return w.bytes()


def parse_stereo(body: bytes, n_spans: int, where: str) -> ParametricStereoSection:
    """A section from its body (bounds are checked by :func:`validate_stereo`)."""
    r = Reader(body, f"{where}: parametric-stereo section")
    v = r.fields(STEREO_LAYOUT)
    edges = tuple(r.field("varint", "band edge") for _ in range(v["band_count"]))
    _check(n_spans <= r.remaining() + 1, where, f"{n_spans} payloads cannot fit in {r.remaining()} bytes")
    payloads = r.payloads(STEREO_PAYLOAD_LAYOUT, n_spans)
    r.expect_end()
    return ParametricStereoSection(edges, v["param_frames"], v["ild_step_quarter_db"], v["max_ild_index"],
                                   v["decorrelation_255"], payloads)
