"""The header of an ``.acx`` file: dataclasses, (de)serialization, validation.

Split from :mod:`adaptive_codec.container.acx` to keep each module to one idea;
import the public names from there. The byte layout is in docs/FORMAT.md
("Header"), field for field with the layouts below. Sizes matter here: the
header is paid once per file, and archives hold thousands of short files, so
integers are varints, built-in profiles are referenced instead of embedded,
and segment rows store lengths instead of positions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from adaptive_codec.container.acx_extensions import (RATE_LIMITS, HighBandSection, RateRecord, parse_extensions,
                                                     write_extensions)
from adaptive_codec.container.acx_stereo import ParametricStereoSection
from adaptive_codec.container.acx_rows import ProfileEntry, SegmentEntry
from adaptive_codec.container.binary import Reader, Writer, json_depth_ok
from adaptive_codec.container.segment_index import SegmentIndex
from adaptive_codec.errors import FormatError

NO_CHANNEL = 0xFFFF  # SegmentEntry.to_dict() channel value meaning "every channel" (as in format 1)
STEREO_MODES = ("mono", "independent", "mid_side")  # stereo_mode codes 0, 1, 2
PROFILE_BUILTIN, PROFILE_EMBEDDED = 0, 1  # profile entry kinds
SEGMENTS_SHARED, SEGMENTS_PER_CHANNEL = 0, 1  # segment table modes
HASH_PREFIX_BYTES = 8  # weights hash and entropy-table digest are stored truncated to 64 bits

HEADER_LAYOUT = [
    ("original_sample_rate_hz", "varint"),
    ("channels", "varint"),
    ("length_samples", "varint"),
    ("internal_sample_rate_hz", "varint"),
    ("hop_samples", "varint"),
    ("n_frames", "varint"),
    ("chunk_frames", "varint"),
    ("codebook_size", "varint"),
    ("max_levels", "u8"),
    ("stereo_mode", "u8"),
    ("weights_version", "str8"),
    ("weights_sha256_prefix", "bytes8"),
    ("entropy_digest_prefix", "bytes8"),
    ("profile_count", "varint"),
]  # then profile entries, the label table and the segment table
PROFILE_LAYOUT = [("kind", "u8"), ("name", "str8")]  # then the kind's fields
BUILTIN_PROFILE_LAYOUT = [("embedding_index", "u8")]
EMBEDDED_PROFILE_LAYOUT = [
    ("prior_id", "u8"),
    ("parameters_json", "vstr"),
    ("conditioning_dim", "varint"),
]  # then conditioning_dim float32 values
LABEL_TABLE_LAYOUT = [("extra_label_count", "varint")]  # then that many str8 labels
SEGMENT_TABLE_LAYOUT = [("segment_mode", "u8")]  # then one table (shared) or one per channel
SEGMENT_COUNT_LAYOUT = [("segment_count", "varint")]
SEGMENT_LAYOUT = [
    ("frame_count", "varint"),
    ("profile_index", "varint"),
    ("n_q", "u8"),
    ("depth_mode", "u8"),
    ("label_ref", "varint"),
    ("confidence_255", "u8"),
]
#: Format 2 rows had no depth_mode (every frame at n_q); read for old files.
SEGMENT_LAYOUT_V2 = [f for f in SEGMENT_LAYOUT if f[0] != "depth_mode"]
DEPTH_FIXED, DEPTH_ADAPTIVE = 0, 1  # depth_mode values

# Sanity bounds: anything outside is rejected before it can size an allocation.
#: The codec's own limit (adaptive_codec.audio.MAX_CHANNELS; tests check they
#: agree). Not imported from there: reading a header must not load the audio
#: stack. No writer ever produced more, so no valid stream is refused.
MAX_CHANNELS = 8
MAX_SAMPLE_RATE_HZ = 1_000_000
MAX_HOP_SAMPLES = 1 << 16
MAX_CHUNK_FRAMES = 1 << 16
MAX_CODEBOOK_SIZE = 1 << 16
MAX_LEVELS = 64
MAX_CONDITIONING_DIM = 4096
MAX_LENGTH_SAMPLES = 1 << 48
MAX_N_FRAMES = (1 << 32) - 1
MAX_NAME_BYTES = 255  # profile names, labels, weights_version (str8)
MAX_PROFILES = 255
_HEX16 = re.compile(r"[0-9a-f]{16}")


@dataclass(eq=False)
class AcxHeader:
    """Everything in the header. Units are in the names; frames are at the internal rate."""

    original_sample_rate_hz: int
    channels: int
    length_samples: int  # exact length per channel, at the original rate
    internal_sample_rate_hz: int
    hop_samples: int  # samples (at the internal rate) per frame
    n_frames: int
    codebook_size: int
    max_levels: int
    weights_version: str  # e.g. "0.dev1600"
    weights_sha256_prefix: str  # first 16 hex digits of the weights file's SHA-256
    entropy_digest_prefix: str  # first 16 hex digits of EntropyModel.digest()
    profiles: list[ProfileEntry] = field(default_factory=list)
    segments: list[SegmentEntry] = field(default_factory=list)
    stereo_mode: str = "mono"
    chunk_frames: int = 450  # 6 s at 75 frames/s
    highband: HighBandSection | None = None  # format 3.1 section (acx_extensions)
    asked_bps: int = 0  # whole-stream rate asked (0: fixed depths, or a 3.0 stream); 3.1 rate record
    rate_limit: int = 0  # RATE_LIMITS: 0 reached, 1 capped at the deepest setting, 2 at the shallowest
    stereo_params: ParametricStereoSection | None = None  # format 3.2 section: mid + parametric stereo

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AcxHeader):
            return NotImplemented
        names = [f for f in self.__dataclass_fields__ if f != "chunks"]
        return all(getattr(self, n) == getattr(other, n) for n in names) and getattr(self, "chunks", None) == getattr(other, "chunks", None)

    @property
    def weights_id(self) -> str:
        """``<weights_version>+<16 hex of the weights' SHA-256>``, as the weights loader names them."""
        return f"{self.weights_version}+{self.weights_sha256_prefix}"

    @property
    def frame_rate_hz(self) -> float:
        return self.internal_sample_rate_hz / self.hop_samples

    @property
    def duration_s(self) -> float:
        return self.length_samples / self.original_sample_rate_hz

    @property
    def n_chunks(self) -> int:
        """Number of DATA chunks: one per channel per ``chunk_frames`` span."""
        return -(-self.n_frames // self.chunk_frames) * self.channels

    def segments_for_channel(self, channel: int) -> tuple[SegmentEntry, ...]:
        """Segments that apply to ``channel``, sorted by start frame (cached: O(1) after the first call)."""
        return self._index().rows(channel)

    def segments_in(self, channel: int, start_frame: int, end_frame: int) -> tuple[SegmentEntry, ...]:
        """Segments of ``channel`` overlapping frames ``[start_frame, end_frame)``: O(log n + overlaps)."""
        return self._index().overlapping(channel, start_frame, end_frame)

    def _index(self) -> SegmentIndex:
        # Built once per segments list (a header read from a file never
        # changes; assign a new list to change the table).
        cached = self.__dict__.get("_segment_index")
        if cached is None or not cached.describes(self.segments, self.channels):
            cached = self.__dict__["_segment_index"] = SegmentIndex(self.segments, min(self.channels, MAX_CHANNELS))
        return cached

    def frame_layout(self, channel: int, start_frame: int, end_frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-frame RVQ depth, prior id and profile index for frames ``[start_frame, end_frame)``.

        Returns
        -------
        depths, prior_ids, profile_indices : np.ndarray [shape=(end_frame - start_frame,), dtype=int64]
            What :func:`adaptive_codec.entropy.coder.decode_frames` needs for a chunk.
        """
        n = max(0, end_frame - start_frame)
        depths = np.zeros(n, np.int64)
        priors = np.zeros(n, np.int64)
        profiles = np.zeros(n, np.int64)
        for seg in self.segments_in(channel, start_frame, end_frame):
            lo, hi = max(seg.start_frame, start_frame), min(seg.end_frame, end_frame)
            sl = slice(lo - start_frame, hi - start_frame)
            depths[sl] = seg.n_q
            priors[sl] = self.profiles[seg.profile_index].prior_id
            profiles[sl] = seg.profile_index
        return depths, priors, profiles

    def adaptive_frames(self, channel: int, start_frame: int, end_frame: int) -> np.ndarray:
        """Mask ``(end_frame - start_frame,)`` of the frames whose depth is coded in the chunks."""
        mask = np.zeros(max(0, end_frame - start_frame), bool)
        for seg in self.segments_in(channel, start_frame, end_frame):
            if seg.adaptive:
                lo, hi = max(seg.start_frame, start_frame), min(seg.end_frame, end_frame)
                mask[lo - start_frame : hi - start_frame] = True
        return mask

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (conditioning vectors as lists), e.g. for ``info --format json``."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("profiles", "segments", "chunks", "highband", "stereo_params")}
        out["highband"] = None if self.highband is None else self.highband.to_dict()
        out["stereo_params"] = None if self.stereo_params is None else self.stereo_params.to_dict()
        out["weights_id"] = self.weights_id
        out["profiles"] = [dict(name=p.name, prior_id=p.prior_id, builtin=p.is_builtin, parameters=p.parameters,
                                conditioning=[float(x) for x in p.conditioning]) for p in self.profiles]
        out["segments"] = [asdict(s) for s in self.segments]
        return out


def expected_n_frames(length_samples: int, original_sample_rate_hz: int, internal_sample_rate_hz: int,
                      hop_samples: int) -> int:
    """Frames a stream of ``length_samples`` has, exactly as the encoder counts them.

    The input is resampled to ``ceil(length · internal / original)`` samples
    (the quotient in IEEE double precision, as
    :func:`adaptive_codec.pipeline.signal.resampled_length` computes it; no
    resampling when the rates agree), and the MDCT gives
    ``ceil(internal_samples / hop) + 1`` frames
    (:meth:`adaptive_codec.backbone.mdct.MDCT.n_frames`).

    Returns
    -------
    int
        Frames per channel.
    """
    n = length_samples
    if original_sample_rate_hz != internal_sample_rate_hz:
        n = int(math.ceil(length_samples * internal_sample_rate_hz / original_sample_rate_hz))
    return -(-n // hop_samples) + 1


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise FormatError(f"{where}: {msg}")


def _utf8_len(text: Any) -> int:
    return len(text.encode("utf-8")) if isinstance(text, str) else MAX_NAME_BYTES + 1


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
    _check(0 <= h.n_frames <= MAX_N_FRAMES, where, f"n_frames {h.n_frames} out of range")
    _check(h.rate_limit in RATE_LIMITS and h.asked_bps >= 0, where, f"unknown rate_limit {h.rate_limit}")
    # n_frames is implied by the length, the rates and the hop; a stream where
    # they disagree would make info report one duration and decode another.
    want = expected_n_frames(h.length_samples, h.original_sample_rate_hz, h.internal_sample_rate_hz, h.hop_samples)
    _check(h.n_frames == want, where,
           f"n_frames {h.n_frames} does not match length_samples {h.length_samples} "
           f"({h.length_samples / h.original_sample_rate_hz:.3f} s at {h.original_sample_rate_hz} Hz, "
           f"hop {h.hop_samples} at {h.internal_sample_rate_hz} Hz: {want} frames)")
    _check(1 <= h.chunk_frames <= MAX_CHUNK_FRAMES, where, f"chunk_frames {h.chunk_frames} out of range 1..{MAX_CHUNK_FRAMES}")
    _check(2 <= h.codebook_size <= MAX_CODEBOOK_SIZE, where, f"codebook_size {h.codebook_size} out of range 2..{MAX_CODEBOOK_SIZE}")
    _check(1 <= h.max_levels <= MAX_LEVELS, where, f"max_levels {h.max_levels} out of range 1..{MAX_LEVELS}")
    _check(h.stereo_mode in STEREO_MODES, where, f"stereo_mode {h.stereo_mode!r} is not one of {', '.join(STEREO_MODES)}")
    _check(h.stereo_params is None or h.stereo_mode == "mid_side", where,
           "a parametric-stereo section needs stereo_mode mid_side (the mid is channel 0)")
    _check(_utf8_len(h.weights_version) <= MAX_NAME_BYTES, where, f"weights_version must be a string of at most {MAX_NAME_BYTES} UTF-8 bytes")
    for name in ("weights_sha256_prefix", "entropy_digest_prefix"):
        value = getattr(h, name)
        _check(isinstance(value, str) and bool(_HEX16.fullmatch(value)), where, f"{name} must be 16 lowercase hex digits")
    _check(len(h.profiles) <= MAX_PROFILES, where, f"more than {MAX_PROFILES} profiles")
    seen: set[str] = set()
    for i, p in enumerate(h.profiles):
        pw = f"{where}: profile {i}"
        _check(isinstance(p.name, str) and 1 <= _utf8_len(p.name) <= MAX_NAME_BYTES, pw, f"name must be 1..{MAX_NAME_BYTES} UTF-8 bytes")
        _check(p.name not in seen, pw, f"duplicate profile name {p.name!r}")
        seen.add(p.name)
        _check(0 <= p.prior_id <= 255, pw, f"prior_id {p.prior_id} out of range 0..255")
        if p.is_builtin:
            _check(0 <= p.embedding_index <= 255 and p.prior_id == p.embedding_index, pw, "a built-in profile's prior_id is its embedding_index (0..255)")
            _check(not p.parameters and np.asarray(p.conditioning).size == 0, pw, "a built-in profile carries no parameters or conditioning")
            continue
        _check(isinstance(p.parameters, dict) and all(isinstance(k, str) for k in p.parameters), pw, "parameters must be a dict with string keys")
        _check(json_depth_ok(p.parameters), pw, "parameters nest too deeply")
        cond = np.asarray(p.conditioning)
        _check(cond.ndim == 1 and cond.size <= MAX_CONDITIONING_DIM, pw, f"conditioning must be a vector of at most {MAX_CONDITIONING_DIM} values")
        _check(bool(np.all(np.isfinite(cond))), pw, "conditioning has non-finite values")
    shared = [s.channel is None for s in h.segments]
    _check(all(shared) or not any(shared), where, "segments must all be shared (channel None) or all per channel")
    for i, s in enumerate(h.segments):
        sw = f"{where}: segment {i}"
        _check(s.channel is None or 0 <= s.channel < h.channels, sw, f"channel {s.channel} out of range")
        _check(0 <= s.start_frame < s.end_frame <= h.n_frames, sw, f"frames {s.start_frame}..{s.end_frame} not inside 0..{h.n_frames}")
        _check(0 <= s.profile_index < len(h.profiles), sw, f"profile_index {s.profile_index} out of range 0..{len(h.profiles) - 1}")
        _check(0 <= s.n_q <= h.max_levels, sw, f"n_q {s.n_q} out of range 0..{h.max_levels}")
        _check(isinstance(s.adaptive, bool), sw, "adaptive must be true or false")
        _check(math.isfinite(s.confidence) and 0 <= s.confidence <= 1, sw, "confidence is not in 0..1")
        _check(isinstance(s.label, str) and _utf8_len(s.label) <= MAX_NAME_BYTES, sw, "label too long")
    h.__dict__.pop("_segment_index", None)  # validate what is there now, not a cached table
    for c in range(h.channels):
        at = 0
        for s in h.segments_for_channel(c):
            _check(s.start_frame == at, where, f"channel {c}: segments leave a gap or overlap at frame {min(at, s.start_frame)}")
            at = s.end_frame
        _check(at == h.n_frames, where, f"channel {c}: segments cover frames 0..{at}, expected 0..{h.n_frames}")


def _segment_tables(h: AcxHeader) -> tuple[int, list[list[SegmentEntry]]]:
    if h.segments and h.segments[0].channel is not None:
        return SEGMENTS_PER_CHANNEL, [h.segments_for_channel(c) for c in range(h.channels)]
    return SEGMENTS_SHARED, [sorted(h.segments, key=lambda s: s.start_frame)]


def serialize_header_body(h: AcxHeader) -> bytes:
    """The header body (docs/FORMAT.md, "Header"); ``h`` must be valid."""
    w = Writer()
    values = {name: getattr(h, name, None) for name, _ in HEADER_LAYOUT}
    values["stereo_mode"] = STEREO_MODES.index(h.stereo_mode)
    values["weights_sha256_prefix"] = bytes.fromhex(h.weights_sha256_prefix)
    values["entropy_digest_prefix"] = bytes.fromhex(h.entropy_digest_prefix)
    values["profile_count"] = len(h.profiles)
    w.fields(HEADER_LAYOUT, values)
    for p in h.profiles:
        w.fields(PROFILE_LAYOUT, {"kind": PROFILE_BUILTIN if p.is_builtin else PROFILE_EMBEDDED, "name": p.name})
        if p.is_builtin:
            w.fields(BUILTIN_PROFILE_LAYOUT, {"embedding_index": p.embedding_index})
            continue
        cond = np.asarray(p.conditioning, dtype="<f4")
        params = json.dumps(p.parameters, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        w.fields(EMBEDDED_PROFILE_LAYOUT, {"prior_id": p.prior_id, "parameters_json": params, "conditioning_dim": cond.size})
        w.buf += cond.tobytes()
    # Labels equal to a profile's name refer to it; the others are listed once.
    names = [p.name for p in h.profiles]
    extra: list[str] = []
    for s in h.segments:
        if s.label not in names and s.label not in extra:
            extra.append(s.label)
    w.fields(LABEL_TABLE_LAYOUT, {"extra_label_count": len(extra)})
    for label in extra:
        w.field("str8", label, "label")
    mode, tables = _segment_tables(h)
    w.fields(SEGMENT_TABLE_LAYOUT, {"segment_mode": mode})
    for rows in tables:
        w.fields(SEGMENT_COUNT_LAYOUT, {"segment_count": len(rows)})
        for s in rows:
            ref = names.index(s.label) if s.label in names else len(names) + extra.index(s.label)
            w.fields(SEGMENT_LAYOUT, {"frame_count": s.end_frame - s.start_frame, "profile_index": s.profile_index,
                                      "n_q": s.n_q, "depth_mode": DEPTH_ADAPTIVE if s.adaptive else DEPTH_FIXED,
                                      "label_ref": ref, "confidence_255": round(s.confidence * 255)})
    write_extensions(w, h.highband, RateRecord(int(h.asked_bps), int(h.rate_limit)), h.stereo_params)
    return w.bytes()


def _parse_parameters(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (ValueError, RecursionError):
        raise FormatError(f"{where}: parameters_json is not valid JSON") from None
    if not isinstance(value, dict) or not json_depth_ok(value):
        raise FormatError(f"{where}: parameters_json must be a JSON object nested at most 16 deep")
    return value


def _parse_profile(r: Reader, i: int, where: str) -> ProfileEntry:
    head = r.fields(PROFILE_LAYOUT)
    if head["kind"] == PROFILE_BUILTIN:
        index = r.fields(BUILTIN_PROFILE_LAYOUT)["embedding_index"]
        return ProfileEntry.builtin(head["name"], index)
    if head["kind"] != PROFILE_EMBEDDED:
        raise FormatError(f"{where}: profile {i} has unknown kind {head['kind']}")
    p = r.fields(EMBEDDED_PROFILE_LAYOUT)
    dim = p["conditioning_dim"]
    if dim > MAX_CONDITIONING_DIM:
        raise FormatError(f"{where}: profile {i} conditioning_dim {dim} exceeds {MAX_CONDITIONING_DIM}")
    cond = np.frombuffer(r.take(4 * dim, f"profile {i} conditioning"), dtype="<f4").astype(np.float32)
    return ProfileEntry(head["name"], p["prior_id"], _parse_parameters(p["parameters_json"], f"{where}: profile {i}"), cond)


def parse_header_body(body: bytes, where: str, allow_trailing: bool = False, format_major: int = 3,
                      format_minor: int = 0) -> AcxHeader:
    """Parse and validate a header body; every failure is a :class:`FormatError`.

    ``format_major`` 2 reads the rows of format 2 (no ``depth_mode``); minor >= 1
    may end with extension sections (``allow_trailing``: a newer minor's are ignored).
    """
    row_layout = SEGMENT_LAYOUT if format_major >= 3 else SEGMENT_LAYOUT_V2
    r = Reader(body, where)
    v = r.fields(HEADER_LAYOUT)
    n_profiles = v.pop("profile_count")
    if n_profiles > MAX_PROFILES:
        raise FormatError(f"{where}: profile_count {n_profiles} exceeds {MAX_PROFILES}")
    profiles = [_parse_profile(r, i, where) for i in range(n_profiles)]
    n_extra = r.fields(LABEL_TABLE_LAYOUT)["extra_label_count"]
    if n_extra > r.remaining():  # each label takes at least one byte
        raise FormatError(f"{where}: extra_label_count {n_extra} exceeds the header's size")
    labels = [p.name for p in profiles] + [r.field("str8", "label") for _ in range(n_extra)]
    mode = r.fields(SEGMENT_TABLE_LAYOUT)["segment_mode"]
    if mode not in (SEGMENTS_SHARED, SEGMENTS_PER_CHANNEL):
        raise FormatError(f"{where}: unknown segment_mode {mode}")
    if v["stereo_mode"] >= len(STEREO_MODES):
        raise FormatError(f"{where}: unknown stereo_mode code {v['stereo_mode']}")
    if not 1 <= v["channels"] <= MAX_CHANNELS:
        raise FormatError(f"{where}: channels {v['channels']} out of range 1..{MAX_CHANNELS}")
    segments = []
    for table in range(v["channels"] if mode == SEGMENTS_PER_CHANNEL else 1):
        count = r.fields(SEGMENT_COUNT_LAYOUT)["segment_count"]
        if count > r.remaining() // 5:  # each row takes at least 5 bytes
            raise FormatError(f"{where}: segment_count {count} exceeds the header's size")
        at = 0
        for _ in range(count):
            s = r.fields(row_layout)
            mode_q = s.get("depth_mode", DEPTH_FIXED)
            if mode_q not in (DEPTH_FIXED, DEPTH_ADAPTIVE):
                raise FormatError(f"{where}: unknown segment depth_mode {mode_q}")
            if s["label_ref"] >= len(labels):
                raise FormatError(f"{where}: segment label_ref {s['label_ref']} out of range 0..{len(labels) - 1}")
            if s["confidence_255"] > 255 or s["frame_count"] > MAX_N_FRAMES:
                raise FormatError(f"{where}: segment field out of range")
            segments.append(SegmentEntry(at, at + s["frame_count"], s["profile_index"], s["n_q"], labels[s["label_ref"]],
                                         s["confidence_255"] / 255, None if mode == SEGMENTS_SHARED else table,
                                         adaptive=mode_q == DEPTH_ADAPTIVE))
            at += s["frame_count"]
    spans = -(-v["n_frames"] // max(1, v["chunk_frames"]))
    highband, rate, stereo = None, RateRecord(), None
    if format_major >= 3 and format_minor >= 1:
        highband, rate, stereo = parse_extensions(r, where, allow_trailing, v["original_sample_rate_hz"], spans,
                                                  n_profiles, format_minor)
    else:
        r.expect_end(allow_trailing)
    v.update(asked_bps=rate.asked_bps, rate_limit=rate.rate_limit)
    v["stereo_mode"] = STEREO_MODES[v["stereo_mode"]]
    v["weights_sha256_prefix"] = v["weights_sha256_prefix"].hex()
    v["entropy_digest_prefix"] = v["entropy_digest_prefix"].hex()
    header = AcxHeader(profiles=profiles, segments=segments, highband=highband, stereo_params=stereo, **v)
    validate_header(header, where)
    return header
