"""Optional header sections of format 3.1 and later: tagged records after the segment table.

A 3.0 reader ignores them (a higher minor's trailing header bytes are
extension fields, docs/FORMAT.md 2.6), so a stream with a section still
decodes there, without what the section adds. The sections: the high band
(tag 1, :class:`HighBandSection`), the coded envelope that
:mod:`adaptive_codec.tools.highband` restores 12 kHz and up from; the rate
record (tag 2, :class:`RateRecord`), the whole-stream rate the encoder was
asked for and whether it was capped; from 3.2, parametric stereo (tag 3,
:mod:`adaptive_codec.container.acx_stereo`). The container knows their layout and
bounds, not what the numbers mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from adaptive_codec.container.acx_stereo import (TAG_STEREO, ParametricStereoSection, parse_stereo, validate_stereo,
                                                  write_stereo)
from adaptive_codec.container.binary import Reader, Writer
from adaptive_codec.errors import FormatError

__all__ = ["EXTENSION_LAYOUT", "HIGHBAND_LAYOUT", "HIGHBAND_PAYLOAD_LAYOUT", "TAG_HIGHBAND", "HighBandSection",
           "TAG_RATE", "RATE_RECORD_LAYOUT", "RATE_LIMITS", "MAX_ASKED_BPS", "RateRecord",
           "write_extensions", "parse_extensions", "MAX_HIGHBAND_BANDS", "MAX_ENVELOPE_FRAMES",
           "MIN_STEP_QUARTER_DB", "MAX_STEP_QUARTER_DB", "MAX_LEVEL_INDEX"]

TAG_HIGHBAND = 1
#: Bands of a high-band envelope (the tool uses at most 8).
MAX_HIGHBAND_BANDS = 16
#: Codec frames per envelope frame.
MAX_ENVELOPE_FRAMES = 64
#: Quantizer steps: 0.5 dB .. 12 dB, in quarter decibels.
MIN_STEP_QUARTER_DB, MAX_STEP_QUARTER_DB = 2, 48
#: Largest envelope level index (0 = silent band).
MAX_LEVEL_INDEX = 255

EXTENSION_LAYOUT = [("tag", "u8"), ("section_length_bytes", "varint")]
HIGHBAND_LAYOUT = [
    ("start_hz", "varint"),
    ("band_count", "u8"),
    ("envelope_frames", "u8"),
    ("step_quarter_db", "u8"),
    ("floor_db_neg", "u8"),
    ("max_level_index", "u8"),
    ("noise_255", "u8"),
    ("enabled_profile_count", "u8"),
]
HIGHBAND_PAYLOAD_LAYOUT = [("payload_length_bytes", "varint")]
TAG_RATE = 2
#: The rate record: the whole-stream rate asked and whether it was reached.
RATE_RECORD_LAYOUT = [("asked_bps", "varint"), ("rate_limit", "u8")]
#: rate_limit values: 0 reached, 1 capped at the deepest setting, 2 at the shallowest.
RATE_LIMITS = (0, 1, 2)
#: Above the encoder's own limit (1000 kbps): a larger value is not a real request.
MAX_ASKED_BPS = 1_000_000


@dataclass(frozen=True)
class RateRecord:
    """What rate the stream was asked for (bits per second of audio, 0: none) and whether it got it."""

    asked_bps: int = 0
    rate_limit: int = 0


@dataclass(frozen=True)
class HighBandSection:
    """The high band of a stream: its grid, quantizer, and one coded payload per chunk span.

    Attributes
    ----------
    start_hz : int
        Lower edge of the first band (the crossover to the backbone's band).
    band_edges_hz : tuple of int
        Upper edge of every band, increasing, the last at most half the
        original sample rate.
    envelope_frames : int
        Codec frames per envelope frame (1..64).
    step_quarter_db : int
        Quantizer step in quarter decibels.
    floor_db_neg : int
        Level of index 1 is ``-floor_db_neg`` dB; index 0 is silence.
    level_count : int
        Indices are ``0..level_count - 1``.
    noise_255 : int
        Share of noise in the regenerated band (the rest is the patched
        low band), times 255.
    enabled_profiles : tuple of int
        Profile-table rows whose frames carry a high band; frames of the
        other profiles have none and cost nothing.
    payloads : tuple of bytes
        The entropy-coded envelope of every chunk span, in time order
        (``ceil(n_frames / chunk_frames)`` of them).
    """

    start_hz: int
    band_edges_hz: tuple[int, ...]
    envelope_frames: int
    step_quarter_db: int
    floor_db_neg: int
    level_count: int
    noise_255: int
    enabled_profiles: tuple[int, ...]
    payloads: tuple[bytes, ...]

    @property
    def payload_bytes(self) -> int:
        return sum(len(p) for p in self.payloads)

    def to_dict(self) -> dict:
        """JSON-able summary (payload sizes, not bytes)."""
        return {"start_hz": self.start_hz, "band_edges_hz": list(self.band_edges_hz),
                "envelope_frames": self.envelope_frames, "step_db": self.step_quarter_db / 4,
                "noise": self.noise_255 / 255, "enabled_profiles": list(self.enabled_profiles),
                "payload_bytes": self.payload_bytes}


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise FormatError(f"{where}: high-band section: {msg}")


def validate_highband(s: HighBandSection, sample_rate_hz: int, n_spans: int, n_profiles: int, where: str) -> None:
    """Bounds of a high-band section against its header; :class:`FormatError` naming the field."""
    edges = (s.start_hz,) + tuple(s.band_edges_hz)
    _check(1 <= len(s.band_edges_hz) <= MAX_HIGHBAND_BANDS, where, f"band_count {len(s.band_edges_hz)} "
           f"out of range 1..{MAX_HIGHBAND_BANDS}")
    _check(all(a < b for a, b in zip(edges, edges[1:])), where, "band edges must increase from start_hz")
    _check(2 * s.band_edges_hz[-1] <= sample_rate_hz, where,
           f"band edge {s.band_edges_hz[-1]} Hz above half the sample rate {sample_rate_hz} Hz")
    _check(1 <= s.envelope_frames <= MAX_ENVELOPE_FRAMES, where, f"envelope_frames {s.envelope_frames} "
           f"out of range 1..{MAX_ENVELOPE_FRAMES}")
    _check(MIN_STEP_QUARTER_DB <= s.step_quarter_db <= MAX_STEP_QUARTER_DB, where,
           f"step_quarter_db {s.step_quarter_db} out of range {MIN_STEP_QUARTER_DB}..{MAX_STEP_QUARTER_DB}")
    _check(2 <= s.level_count <= MAX_LEVEL_INDEX + 1, where, f"level_count {s.level_count} out of range 2..256")
    _check(len(set(s.enabled_profiles)) == len(s.enabled_profiles)
           and all(0 <= p < n_profiles for p in s.enabled_profiles), where,
           f"enabled profile rows {list(s.enabled_profiles)} are not distinct rows of the {n_profiles}-row table")
    _check(len(s.payloads) == n_spans, where, f"{len(s.payloads)} payloads, expected one per chunk span ({n_spans})")
    _check(all(len(p) % 4 == 0 for p in s.payloads), where, "a payload's length is not a multiple of 4")


def _write_highband(s: HighBandSection) -> bytes:
    w = Writer()
    w.fields(HIGHBAND_LAYOUT, {"start_hz": s.start_hz, "band_count": len(s.band_edges_hz),
                               "envelope_frames": s.envelope_frames, "step_quarter_db": s.step_quarter_db,
                               "floor_db_neg": s.floor_db_neg, "max_level_index": s.level_count - 1,
                               "noise_255": s.noise_255, "enabled_profile_count": len(s.enabled_profiles)})
    for edge in s.band_edges_hz:
        w.field("varint", edge, "band edge")
    for row in s.enabled_profiles:
        w.field("u8", row, "enabled profile")
    w.payloads(HIGHBAND_PAYLOAD_LAYOUT, s.payloads)
    return w.bytes()


def _parse_highband(body: bytes, n_spans: int, where: str) -> HighBandSection:
    r = Reader(body, f"{where}: high-band section")
    v = r.fields(HIGHBAND_LAYOUT)
    edges = tuple(r.field("varint", "band edge") for _ in range(v["band_count"]))
    rows = tuple(r.field("u8", "enabled profile") for _ in range(v["enabled_profile_count"]))
    _check(n_spans <= r.remaining() + 1, where, f"{n_spans} payloads cannot fit in {r.remaining()} bytes")
    payloads = r.payloads(HIGHBAND_PAYLOAD_LAYOUT, n_spans)
    r.expect_end()
    return HighBandSection(v["start_hz"], edges, v["envelope_frames"], v["step_quarter_db"], v["floor_db_neg"],
                           v["max_level_index"] + 1, v["noise_255"], rows, payloads)


def write_extensions(w: Writer, highband: HighBandSection | None, rate: RateRecord | None = None,
                     stereo: ParametricStereoSection | None = None) -> None:
    """Append the header's extension records (none for a 3.0 stream): high band, rate record, parametric stereo."""
    if highband is not None:
        body = _write_highband(highband)
        w.fields(EXTENSION_LAYOUT, {"tag": TAG_HIGHBAND, "section_length_bytes": len(body)})
        w.buf += body
    if rate is not None and (rate.asked_bps or rate.rate_limit):
        r = Writer()
        r.fields(RATE_RECORD_LAYOUT, {"asked_bps": rate.asked_bps, "rate_limit": rate.rate_limit})
        w.fields(EXTENSION_LAYOUT, {"tag": TAG_RATE, "section_length_bytes": len(r.bytes())})
        w.buf += r.bytes()
    if stereo is not None:
        body = write_stereo(stereo)
        w.fields(EXTENSION_LAYOUT, {"tag": TAG_STEREO, "section_length_bytes": len(body)})
        w.buf += body


def parse_extensions(r: Reader, where: str, newer_minor: bool, sample_rate_hz: int, n_spans: int,
                     n_profiles: int, format_minor: int = 1
                     ) -> tuple[HighBandSection | None, RateRecord, ParametricStereoSection | None]:
    """Read extension records to the end of the header body: the high band, the rate record, parametric stereo.

    The high band and parametric stereo are None when absent; parametric
    stereo (tag 3) exists from minor 2 on.

    A tag this reader does not know, or bytes that are not a record, end the
    reading when the stream is of a newer minor version (ignored, as 2.6
    promises), and are an error otherwise.
    """
    highband, rate, stereo = None, None, None
    while r.remaining():
        at = r.pos
        try:
            head = r.fields(EXTENSION_LAYOUT)
            body = r.take(head["section_length_bytes"], "extension section")
        except FormatError:
            if newer_minor:  # a later minor's fields need not be records of this framing
                break
            raise
        if head["tag"] == TAG_HIGHBAND and highband is None:
            highband = _parse_highband(body, n_spans, where)
            validate_highband(highband, sample_rate_hz, n_spans, n_profiles, where)
        elif head["tag"] == TAG_RATE and rate is None:
            rate = _parse_rate(body, where)
        elif head["tag"] == TAG_STEREO and stereo is None and format_minor >= 2:
            stereo = parse_stereo(body, n_spans, where)
            validate_stereo(stereo, sample_rate_hz, n_spans, where)
        elif newer_minor:
            break
        else:
            raise FormatError(f"{where}: unknown or repeated header extension tag {head['tag']} at offset {at}")
    return highband, rate or RateRecord(), stereo


def _parse_rate(body: bytes, where: str) -> RateRecord:
    r = Reader(body, f"{where}: rate record")
    v = r.fields(RATE_RECORD_LAYOUT)
    r.expect_end(False)
    _check(v["rate_limit"] in RATE_LIMITS, where, f"unknown rate_limit {v['rate_limit']} in the rate record")
    _check(v["asked_bps"] <= MAX_ASKED_BPS, where, f"asked rate {v['asked_bps']} bps above {MAX_ASKED_BPS}")
    return RateRecord(int(v["asked_bps"]), int(v["rate_limit"]))
