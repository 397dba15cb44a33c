"""The HEAD chunk of an ``.acx`` file: dataclasses, (de)serialization, validation.

Split from :mod:`adaptive_codec.bitstream` to keep each module to one idea;
import the public names from there. The byte layout is in docs/FORMAT.md
("HEAD chunk"), field for field with the layouts below.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ._binary import Reader, Writer, json_depth_ok
from .errors import FormatError

NO_CHANNEL = 0xFFFF  # segment channel_index meaning "every channel"

HEADER_LAYOUT = [
    ("original_sample_rate_hz", "u32"),
    ("channels", "u16"),
    ("length_samples", "u64"),
    ("internal_sample_rate_hz", "u32"),
    ("hop_samples", "u32"),
    ("n_frames", "u32"),
    ("chunk_frames", "u32"),
    ("codebook_size", "u32"),
    ("max_levels", "u8"),
    ("stereo_mode", "str16"),
    ("weights_id", "str16"),
    ("weights_sha256", "bytes32"),
    ("entropy_model_digest", "bytes32"),
    ("profile_count", "u16"),
]  # then profile_count profile entries, segment_count (u32), segment entries
PROFILE_LAYOUT = [
    ("name", "str16"),
    ("prior_id", "u8"),
    ("parameters_json", "str32"),
    ("conditioning_dim", "u16"),
]  # then conditioning_dim float32 values
SEGMENT_COUNT_LAYOUT = [("segment_count", "u32")]
SEGMENT_LAYOUT = [
    ("channel_index", "u16"),
    ("start_frame", "u32"),
    ("end_frame", "u32"),
    ("profile_index", "u16"),
    ("n_q", "u8"),
    ("confidence", "f32"),
    ("label", "str16"),
]

# Sanity bounds: anything outside is rejected before it can size an allocation.
MAX_CHANNELS = 255
MAX_SAMPLE_RATE_HZ = 1_000_000
MAX_HOP_SAMPLES = 1 << 16
MAX_CHUNK_FRAMES = 1 << 16
MAX_CODEBOOK_SIZE = 1 << 16
MAX_LEVELS = 64
MAX_CONDITIONING_DIM = 4096
MAX_LENGTH_SAMPLES = 1 << 48
MAX_NAME_CHARS = 256
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(eq=False)
class ProfileEntry:
    """One row of the profile table: enough to decode without the user's TOML.

    Attributes
    ----------
    name : str
        Profile name (e.g. ``"speech"``, ``"podcast"``).
    prior_id : int
        Entropy-model prior (built-in family) its frames are coded with.
    parameters : dict
        The profile's parameters as JSON values (``str -> str | number | ...``).
    conditioning : np.ndarray [shape=(cond_dim,), dtype=float32]
        The profile embedding the backbone is conditioned on.
    """

    name: str
    prior_id: int
    parameters: dict[str, Any] = field(default_factory=dict)
    conditioning: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ProfileEntry)
            and (self.name, self.prior_id, self.parameters) == (other.name, other.prior_id, other.parameters)
            and np.array_equal(np.asarray(self.conditioning, np.float32), np.asarray(other.conditioning, np.float32))
        )


@dataclass
class SegmentEntry:
    """One row of the segment table: a run of frames coded with one profile.

    Attributes
    ----------
    start_frame, end_frame : int
        Frame range ``[start_frame, end_frame)`` at the internal frame rate.
    profile_index : int
        Row of the profile table.
    n_q : int
        RVQ depth: number of levels coded per frame, ``0..max_levels``.
    label : str
        Content class the router assigned (e.g. ``"speech"``).
    confidence : float
        Router confidence in ``label``, 0..1.
    channel : int or None
        Channel the row applies to; ``None`` (stored as 0xFFFF) means all channels.
    """

    start_frame: int
    end_frame: int
    profile_index: int
    n_q: int
    label: str = ""
    confidence: float = 1.0
    channel: int | None = None

    def __post_init__(self) -> None:
        # Stored as float32: round now so a written and re-read table compares equal.
        self.confidence = float(np.float32(self.confidence))


@dataclass(eq=False)
class AcxHeader:
    """Everything in the HEAD chunk. Units are in the names; frames are at the internal rate."""

    original_sample_rate_hz: int
    channels: int
    length_samples: int  # exact length per channel, at the original rate
    internal_sample_rate_hz: int
    hop_samples: int  # samples (at the internal rate) per frame
    n_frames: int
    codebook_size: int
    max_levels: int
    weights_id: str
    weights_sha256: str  # 64 lowercase hex digits
    entropy_model_digest: str  # 64 lowercase hex digits (EntropyModel.digest())
    profiles: list[ProfileEntry] = field(default_factory=list)
    segments: list[SegmentEntry] = field(default_factory=list)
    stereo_mode: str = "mono"
    chunk_frames: int = 225  # 3 s at 75 frames/s

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AcxHeader):
            return NotImplemented
        names = [f for f in self.__dataclass_fields__ if f != "chunks"]
        return all(getattr(self, n) == getattr(other, n) for n in names) and getattr(self, "chunks", None) == getattr(other, "chunks", None)

    @property
    def frame_rate_hz(self) -> float:
        return self.internal_sample_rate_hz / self.hop_samples

    @property
    def duration_s(self) -> float:
        return self.length_samples / self.original_sample_rate_hz

    def segments_for_channel(self, channel: int) -> list[SegmentEntry]:
        """Segments that apply to ``channel``, sorted by start frame."""
        return sorted((s for s in self.segments if s.channel is None or s.channel == channel), key=lambda s: s.start_frame)

    def frame_layout(self, channel: int, start_frame: int, end_frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-frame RVQ depth, prior id and profile index for frames ``[start_frame, end_frame)``.

        Returns
        -------
        depths, prior_ids, profile_indices : np.ndarray [shape=(end_frame - start_frame,), dtype=int64]
            What :func:`adaptive_codec.entropy.decode_frames` needs for a chunk.
        """
        n = max(0, end_frame - start_frame)
        depths = np.zeros(n, np.int64)
        priors = np.zeros(n, np.int64)
        profiles = np.zeros(n, np.int64)
        for seg in self.segments_for_channel(channel):
            lo, hi = max(seg.start_frame, start_frame), min(seg.end_frame, end_frame)
            if lo < hi:
                sl = slice(lo - start_frame, hi - start_frame)
                depths[sl] = seg.n_q
                priors[sl] = self.profiles[seg.profile_index].prior_id
                profiles[sl] = seg.profile_index
        return depths, priors, profiles

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (conditioning vectors as lists), e.g. for ``info --format json``."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("profiles", "segments", "chunks")}
        out["profiles"] = [dict(name=p.name, prior_id=p.prior_id, parameters=p.parameters, conditioning=[float(x) for x in p.conditioning]) for p in self.profiles]
        out["segments"] = [asdict(s) for s in self.segments]
        return out


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise FormatError(f"{where}: {msg}")


def validate_header(h: AcxHeader, where: str = "acx header") -> None:
    """Check every header field against the spec's bounds and the segment tiling.

    Raises
    ------
    FormatError
        Naming the first offending field.
    """
    _check(1 <= h.original_sample_rate_hz <= MAX_SAMPLE_RATE_HZ, where, f"original_sample_rate_hz {h.original_sample_rate_hz} out of range 1..{MAX_SAMPLE_RATE_HZ}")
    _check(1 <= h.internal_sample_rate_hz <= MAX_SAMPLE_RATE_HZ, where, f"internal_sample_rate_hz {h.internal_sample_rate_hz} out of range 1..{MAX_SAMPLE_RATE_HZ}")
    _check(1 <= h.channels <= MAX_CHANNELS, where, f"channels {h.channels} out of range 1..{MAX_CHANNELS}")
    _check(0 <= h.length_samples <= MAX_LENGTH_SAMPLES, where, f"length_samples {h.length_samples} out of range")
    _check(1 <= h.hop_samples <= MAX_HOP_SAMPLES, where, f"hop_samples {h.hop_samples} out of range 1..{MAX_HOP_SAMPLES}")
    _check(0 <= h.n_frames < 1 << 32, where, f"n_frames {h.n_frames} out of range")
    _check(1 <= h.chunk_frames <= MAX_CHUNK_FRAMES, where, f"chunk_frames {h.chunk_frames} out of range 1..{MAX_CHUNK_FRAMES}")
    _check(2 <= h.codebook_size <= MAX_CODEBOOK_SIZE, where, f"codebook_size {h.codebook_size} out of range 2..{MAX_CODEBOOK_SIZE}")
    _check(1 <= h.max_levels <= MAX_LEVELS, where, f"max_levels {h.max_levels} out of range 1..{MAX_LEVELS}")
    for name in ("stereo_mode", "weights_id"):
        value = getattr(h, name)
        _check(isinstance(value, str) and len(value) <= MAX_NAME_CHARS, where, f"{name} must be a string of at most {MAX_NAME_CHARS} characters")
    for name in ("weights_sha256", "entropy_model_digest"):
        _check(isinstance(getattr(h, name), str) and bool(_HEX64.fullmatch(getattr(h, name))), where, f"{name} must be 64 lowercase hex digits")
    _check(len(h.profiles) < 1 << 16, where, "too many profiles")
    seen: set[str] = set()
    for i, p in enumerate(h.profiles):
        pw = f"{where}: profile {i}"
        _check(isinstance(p.name, str) and 1 <= len(p.name) <= MAX_NAME_CHARS, pw, "name must be 1..256 characters")
        _check(p.name not in seen, pw, f"duplicate profile name {p.name!r}")
        seen.add(p.name)
        _check(0 <= p.prior_id <= 255, pw, f"prior_id {p.prior_id} out of range 0..255")
        _check(isinstance(p.parameters, dict) and all(isinstance(k, str) for k in p.parameters), pw, "parameters must be a dict with string keys")
        _check(json_depth_ok(p.parameters), pw, "parameters nest too deeply")
        cond = np.asarray(p.conditioning)
        _check(cond.ndim == 1 and cond.size <= MAX_CONDITIONING_DIM, pw, f"conditioning must be a vector of at most {MAX_CONDITIONING_DIM} values")
        _check(bool(np.all(np.isfinite(cond))), pw, "conditioning has non-finite values")
    _check(len(h.segments) < 1 << 32, where, "too many segments")
    for i, s in enumerate(h.segments):
        sw = f"{where}: segment {i}"
        _check(s.channel is None or 0 <= s.channel < h.channels, sw, f"channel {s.channel} out of range")
        _check(0 <= s.start_frame < s.end_frame <= h.n_frames, sw, f"frames {s.start_frame}..{s.end_frame} not inside 0..{h.n_frames}")
        _check(0 <= s.profile_index < len(h.profiles), sw, f"profile_index {s.profile_index} out of range 0..{len(h.profiles) - 1}")
        _check(0 <= s.n_q <= h.max_levels, sw, f"n_q {s.n_q} out of range 0..{h.max_levels}")
        _check(math.isfinite(s.confidence), sw, "confidence is not finite")
        _check(isinstance(s.label, str) and len(s.label) <= MAX_NAME_CHARS, sw, "label too long")
    for c in range(h.channels):
        at = 0
        for s in h.segments_for_channel(c):
            _check(s.start_frame == at, where, f"channel {c}: segments leave a gap or overlap at frame {min(at, s.start_frame)}")
            at = s.end_frame
        _check(at == h.n_frames, where, f"channel {c}: segments cover frames 0..{at}, expected 0..{h.n_frames}")


def serialize_header_body(h: AcxHeader) -> bytes:
    """The HEAD chunk body (docs/FORMAT.md, "HEAD chunk")."""
    w = Writer()
    values = {name: getattr(h, name, None) for name, _ in HEADER_LAYOUT}
    values["weights_sha256"] = bytes.fromhex(h.weights_sha256)
    values["entropy_model_digest"] = bytes.fromhex(h.entropy_model_digest)
    values["profile_count"] = len(h.profiles)
    w.fields(HEADER_LAYOUT, values)
    for p in h.profiles:
        cond = np.asarray(p.conditioning, dtype="<f4")
        params = json.dumps(p.parameters, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        w.fields(PROFILE_LAYOUT, {"name": p.name, "prior_id": p.prior_id, "parameters_json": params, "conditioning_dim": cond.size})
        w.buf += cond.tobytes()
    w.fields(SEGMENT_COUNT_LAYOUT, {"segment_count": len(h.segments)})
    for s in h.segments:
        row = asdict(s)
        row["channel_index"] = NO_CHANNEL if s.channel is None else s.channel
        w.fields(SEGMENT_LAYOUT, row)
    return w.bytes()


def _parse_parameters(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (ValueError, RecursionError):
        raise FormatError(f"{where}: parameters_json is not valid JSON") from None
    if not isinstance(value, dict) or not json_depth_ok(value):
        raise FormatError(f"{where}: parameters_json must be a JSON object nested at most 16 deep")
    return value


def parse_header_body(body: bytes, where: str, allow_trailing: bool = False) -> AcxHeader:
    """Parse and validate a HEAD chunk body; every failure is a :class:`FormatError`."""
    r = Reader(body, where)
    v = r.fields(HEADER_LAYOUT)
    profiles = []
    for i in range(v.pop("profile_count")):
        p = r.fields(PROFILE_LAYOUT)
        cond = np.frombuffer(r.take(4 * p["conditioning_dim"], f"profile {i} conditioning"), dtype="<f4").astype(np.float32)
        params = _parse_parameters(p["parameters_json"], f"{where}: profile {i}")
        profiles.append(ProfileEntry(p["name"], p["prior_id"], params, cond))
    segments = []
    for _ in range(r.fields(SEGMENT_COUNT_LAYOUT)["segment_count"]):
        # Each row is >= 19 bytes, so a huge count fails on the first short read.
        s = r.fields(SEGMENT_LAYOUT)
        raw_channel = s.pop("channel_index")
        channel = None if raw_channel == NO_CHANNEL else raw_channel
        segments.append(SegmentEntry(channel=channel, **s))
    r.expect_end(allow_trailing)
    v["weights_sha256"] = v["weights_sha256"].hex()
    v["entropy_model_digest"] = v["entropy_model_digest"].hex()
    header = AcxHeader(profiles=profiles, segments=segments, **v)
    validate_header(header, where)
    return header
