"""Byte layout of the ``.aca`` archive: constants, entry records, low-level read/write.

Split from :mod:`adaptive_codec.container.aca` (the public API) to keep each module
to one idea; docs/FORMAT.md section 3 is the normative spec of these layouts.

Sizes matter: an archive holds thousands of short members, so

* a local header is only what salvage needs (signature, name, lengths) and one
  CRC covers an entry's header and stored bytes together;
* everything else about a member (original size, duration, metadata) lives
  once, in the zlib-compressed central index;
* each member's ``.acx`` header, which repeats the weights id, hashes and
  profile table of every other member, is stored deflated against an archive
  *dictionary* (the first member's header, kept right after the preamble);
  the rest of the member is stored as it is (entropy-coded bytes do not
  compress). Extraction restores the exact member bytes.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from adaptive_codec.container.aca_metadata import check_metadata
from adaptive_codec.container.aca_names import MAX_NAME_BYTES, normalize_member_name
from adaptive_codec.container.binary import MAX_VARINT_BYTES, Reader, Writer, crc32, fixed_size, json_depth_ok, parse_varint, varint_bytes
from adaptive_codec.errors import FormatError

MAGIC = b"ACA1"
FORMAT_MAJOR = 2
FORMAT_MINOR = 0
LOCAL_SIGNATURE, INDEX_SIGNATURE, END_SIGNATURE, DICTIONARY_SIGNATURE = b"ACAE", b"ACAI", b"ACAZ", b"ACAD"
MAX_METADATA_BYTES = 1 << 20  # 1 MiB of JSON per member is far beyond a class mix
MAX_INDEX_BYTES = 1 << 30  # decompressed central index; with zlib's ratio bound, no bombs
ZLIB_MAX_RATIO = 1032  # deflate cannot expand data by more than this factor (+ a few bytes)
MAX_DICTIONARY_BYTES = 1 << 15  # deflate's window: a longer dictionary would not be used
MAX_PREFIX_BYTES = 1 << 16  # a member prefix inflates to at most this (acx headers are ~100 bytes)
CRC_BYTES = 4

PREAMBLE_LAYOUT = [("magic", "bytes4"), ("format_major", "u8"), ("format_minor", "u8"), ("flags", "u16")]
DICTIONARY_LAYOUT = [("signature", "bytes4"), ("dictionary_length_bytes", "varint")]  # then dictionary, dictionary_crc32 u32
LOCAL_HEADER_LAYOUT = [
    ("signature", "bytes4"),
    ("name", "vstr"),
    ("data_length_bytes", "varint"),
    ("packed_prefix_length_bytes", "varint"),
    ("prefix_length_bytes", "varint"),
]  # then packed prefix, the rest of the data, entry_crc32 u32
INDEX_HEAD_LAYOUT = [
    ("signature", "bytes4"),
    ("entry_count", "varint"),
    ("entries_length_bytes", "varint"),
    ("compressed_length_bytes", "varint"),
]  # then zlib(entries), then index_crc32 u32
INDEX_ENTRY_LAYOUT = [
    ("name", "vstr"),
    ("data_length_bytes", "varint"),
    ("entry_length_bytes", "varint"),
    ("entry_crc32", "u32"),
    ("original_size_bytes", "varint"),
    ("duration_us", "varint"),
    ("metadata_json", "vstr"),
]
END_LAYOUT = [
    ("signature", "bytes4"),
    ("index_offset", "u64"),
    ("index_length_bytes", "u64"),
    ("entry_count", "u32"),
    ("end_crc32", "u32"),
]
PREAMBLE_BYTES = fixed_size(PREAMBLE_LAYOUT)  # 8
END_BYTES = fixed_size(END_LAYOUT)  # 28
_INDEX_ENTRY_MIN_BYTES = 1 + 1 + 1 + 4 + 1 + 1 + 1  # empty name and metadata, zero lengths


@dataclass
class ArchiveEntry:
    """One member as listed in the central index.

    Attributes
    ----------
    name : str
        Normalised relative POSIX path.
    size_bytes : int
        Size of the member data (the ``.acx`` bytes as extracted).
    crc32 : int
        CRC-32 of the member's entry (local header and stored bytes).
    original_size_bytes : int
        Size of the original input file.
    duration_s : float
        Duration of the recording in seconds (stored to the microsecond).
    class_mix : dict[str, float]
        Fraction of the duration per content class.
    metadata : dict
        Everything stored for the member (includes ``class_mix``).
    header_offset : int
        Byte offset of the member's entry (its local header).
    entry_bytes : int
        Bytes the entry takes in the archive (header, stored bytes, CRC).
    """

    name: str
    size_bytes: int
    crc32: int
    original_size_bytes: int = 0
    duration_s: float = 0.0
    class_mix: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    header_offset: int = 0
    entry_bytes: int = 0

    @property
    def bitrate_kbps(self) -> float:
        """Actual bitrate of the member data (0 for zero duration)."""
        return self.size_bytes * 8 / self.duration_s / 1000 if self.duration_s > 0 else 0.0

    @property
    def end_offset(self) -> int:
        """Byte offset just after the member's entry (where the next entry starts)."""
        return self.header_offset + self.entry_bytes


# --------------------------------------------------------------------------- writing


def dictionary_record(dictionary: bytes) -> bytes:
    """The dictionary record that follows the preamble."""
    if len(dictionary) > MAX_DICTIONARY_BYTES:
        raise FormatError(f"archive dictionary of {len(dictionary)} bytes exceeds {MAX_DICTIONARY_BYTES}")
    w = Writer()
    w.fields(DICTIONARY_LAYOUT, {"signature": DICTIONARY_SIGNATURE, "dictionary_length_bytes": len(dictionary)})
    head = w.bytes() + dictionary
    return head + crc32(head).to_bytes(CRC_BYTES, "little")


def _deflater(dictionary: bytes):
    # Raw deflate (no zlib header/checksum: the entry CRC covers the bytes).
    if dictionary:
        return zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    return zlib.compressobj(9, zlib.DEFLATED, -15, 9)


def entry_record(name: str, data: bytes, dictionary: bytes = b"", prefix_length: int = 0) -> tuple[bytes, int]:
    """One member's entry (local header, stored bytes, CRC) and that CRC.

    The first ``prefix_length`` bytes of ``data`` are stored deflated against
    ``dictionary`` when that makes them shorter; the rest is stored as it is.
    """
    packed = b""
    if 0 < prefix_length <= min(len(data), MAX_PREFIX_BYTES):
        deflater = _deflater(dictionary)
        packed = deflater.compress(data[:prefix_length]) + deflater.flush()
        if len(packed) >= prefix_length:
            packed = b""
    if not packed:
        prefix_length = 0
    w = Writer()
    w.fields(LOCAL_HEADER_LAYOUT, {"signature": LOCAL_SIGNATURE, "name": name, "data_length_bytes": len(data),
                                   "packed_prefix_length_bytes": len(packed), "prefix_length_bytes": prefix_length})
    body = w.bytes() + packed + data[prefix_length:]
    crc = crc32(body)
    return body + crc.to_bytes(CRC_BYTES, "little"), crc


def entry_values(name: str, data: bytes, info: dict[str, Any], crc: int, entry_length: int) -> dict[str, Any]:
    """The index entry of a member, from the caller's ``info`` (size, duration, metadata)."""
    meta = dict(info or {})
    original = meta.pop("original_size_bytes", meta.pop("original_size", 0))
    duration = float(meta.pop("duration_s", 0.0))
    meta.setdefault("class_mix", {})
    if not math.isfinite(duration) or duration < 0:
        raise FormatError(f"member {name!r}: duration_s must be finite and >= 0, got {duration}")
    if not isinstance(original, int) or original < 0:
        raise FormatError(f"member {name!r}: original_size_bytes must be a non-negative integer, got {original!r}")
    try:
        meta_json = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"member {name!r}: metadata is not JSON-serialisable: {exc}") from None
    check_metadata(json.loads(meta_json), f"member {name!r}: metadata")
    if len(meta_json.encode()) > MAX_METADATA_BYTES:
        raise FormatError(f"member {name!r}: metadata exceeds {MAX_METADATA_BYTES} bytes")
    return {
        "name": name,
        "data_length_bytes": len(data),
        "entry_length_bytes": entry_length,
        "entry_crc32": crc,
        "original_size_bytes": original,
        "duration_us": round(duration * 1e6),
        "metadata_json": meta_json,
    }


def preamble() -> bytes:
    w = Writer()
    w.fields(PREAMBLE_LAYOUT, {"magic": MAGIC, "format_major": FORMAT_MAJOR, "format_minor": FORMAT_MINOR, "flags": 0})
    return w.bytes()


def write_tail(fh: BinaryIO, entries: list[dict[str, Any]], index_offset: int) -> None:
    """Write the central index (zlib-compressed entries) and the end record."""
    body = Writer()
    for e in entries:
        body.fields(INDEX_ENTRY_LAYOUT, e)
    raw = body.bytes()
    packed = zlib.compress(raw, 9)
    w = Writer()
    w.fields(INDEX_HEAD_LAYOUT, {"signature": INDEX_SIGNATURE, "entry_count": len(entries),
                                 "entries_length_bytes": len(raw), "compressed_length_bytes": len(packed)})
    index = w.bytes() + packed
    index += crc32(index).to_bytes(CRC_BYTES, "little")
    end = Writer()
    end.fields(END_LAYOUT[:-1], {"signature": END_SIGNATURE, "index_offset": index_offset, "index_length_bytes": len(index), "entry_count": len(entries)})
    end_bytes = end.bytes()
    fh.write(index + end_bytes + crc32(preamble(), end_bytes).to_bytes(CRC_BYTES, "little"))


def entry_dict(e: ArchiveEntry) -> dict[str, Any]:
    """Index-entry values of a listed entry (to rewrite the index on append)."""
    meta_json = json.dumps(e.metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return {
        "name": e.name,
        "data_length_bytes": e.size_bytes,
        "entry_length_bytes": e.entry_bytes,
        "entry_crc32": e.crc32,
        "original_size_bytes": e.original_size_bytes,
        "duration_us": round(e.duration_s * 1e6),
        "metadata_json": meta_json,
    }


# --------------------------------------------------------------------------- reading


def check_preamble(pre_bytes: bytes, where: str) -> None:
    pre = Reader(pre_bytes, where).fields(PREAMBLE_LAYOUT)
    if pre["magic"] != MAGIC:
        raise FormatError(f"{where}: not an .aca archive (magic {pre['magic']!r}, expected {MAGIC!r})")
    if pre["format_major"] != FORMAT_MAJOR:
        raise FormatError(f"{where}: unsupported .aca format version {pre['format_major']}.{pre['format_minor']} "
                          f"(this reader supports {FORMAT_MAJOR}.x)")
    if pre["flags"] != 0:
        raise FormatError(f"{where}: unknown flags 0x{pre['flags']:04x}")


def read_tail(path: str | os.PathLike) -> tuple[bytes, int, int]:
    """Check preamble, end record and index; return ``(decompressed index entries, index offset, entry count)``."""
    where = str(path)
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < PREAMBLE_BYTES + END_BYTES:
            raise FormatError(f"{where}: too short for an .aca archive ({size} bytes)")
        pre_bytes = fh.read(PREAMBLE_BYTES)
        check_preamble(pre_bytes, where)
        fh.seek(size - END_BYTES)
        end_bytes = fh.read(END_BYTES)
        end = Reader(end_bytes, f"{where}: end record").fields(END_LAYOUT)
        if end["signature"] != END_SIGNATURE or crc32(pre_bytes, end_bytes[:-4]) != end["end_crc32"]:
            raise FormatError(f"{where}: end record at byte {size - END_BYTES} is damaged (try extract with salvage)")
        off, length = end["index_offset"], end["index_length_bytes"]
        if off < PREAMBLE_BYTES or off + length != size - END_BYTES:
            raise FormatError(f"{where}: end record points at index bytes {off}..{off + length}, outside the file")
        fh.seek(off)
        index = fh.read(length)
    if len(index) < 4 + 3 + CRC_BYTES or crc32(index[:-CRC_BYTES]) != int.from_bytes(index[-CRC_BYTES:], "little"):
        raise FormatError(f"{where}: central index at byte {off} is damaged (CRC mismatch; try extract with salvage)")
    r = Reader(index[:-CRC_BYTES], f"{where}: central index")
    head = r.fields(INDEX_HEAD_LAYOUT)
    if head["signature"] != INDEX_SIGNATURE:
        raise FormatError(f"{where}: central index has a bad signature {head['signature']!r}")
    if end["entry_count"] != head["entry_count"]:
        raise FormatError(f"{where}: end record and index disagree on the entry count")
    if head["compressed_length_bytes"] != r.remaining():
        raise FormatError(f"{where}: central index declares {head['compressed_length_bytes']} compressed bytes, holds {r.remaining()}")
    if head["entry_count"] * _INDEX_ENTRY_MIN_BYTES > head["entries_length_bytes"]:
        raise FormatError(f"{where}: central index declares {head['entry_count']} entries, too many for {head['entries_length_bytes']} bytes")
    raw = inflate_bounded(r.take(r.remaining(), "entries"), head["entries_length_bytes"], f"{where}: central index")
    return raw, off, head["entry_count"]


def inflate_bounded(packed: bytes, declared: int, where: str) -> bytes:
    """zlib-decompress ``packed`` into exactly ``declared`` bytes, never allocating more.

    ``declared`` is checked against :data:`MAX_INDEX_BYTES` and deflate's
    largest possible expansion of ``len(packed)`` before anything is inflated.
    """
    if declared > MAX_INDEX_BYTES or declared > ZLIB_MAX_RATIO * len(packed) + 64:
        raise FormatError(f"{where}: declares {declared} bytes from {len(packed)} compressed bytes (limit {MAX_INDEX_BYTES})")
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(packed, declared + 1)
    except zlib.error as exc:
        raise FormatError(f"{where}: compressed entries are corrupt ({exc})") from None
    if len(raw) != declared or not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
        raise FormatError(f"{where}: compressed entries do not inflate to the declared {declared} bytes")
    return raw


def read_dictionary_record(fh: BinaryIO, limit: int, where: str, offset: int = PREAMBLE_BYTES) -> tuple[bytes, bytes]:
    """The dictionary record at ``offset``, unchecked: ``(record without its CRC, stored CRC)``.

    Lengths are checked against the limits and the file; the CRC is not
    (salvage repairs a record whose CRC fails, :mod:`adaptive_codec.container.aca_salvage`).
    """
    fh.seek(offset)
    raw = fh.read(max(0, min(limit - offset, 4 + MAX_VARINT_BYTES)))
    r = Reader(raw, f"{where}: dictionary record at byte {offset}")
    head = r.fields(DICTIONARY_LAYOUT)
    n = head["dictionary_length_bytes"]
    if head["signature"] != DICTIONARY_SIGNATURE:
        raise FormatError(f"{where}: no dictionary record at byte {offset} (signature {head['signature']!r})")
    if n > MAX_DICTIONARY_BYTES or offset + r.pos + n + CRC_BYTES > limit:
        raise FormatError(f"{where}: dictionary record declares {n} bytes (limit {MAX_DICTIONARY_BYTES}, or past the end of the file)")
    fh.seek(offset)
    record = fh.read(r.pos + n + CRC_BYTES)
    return record[:-CRC_BYTES], record[-CRC_BYTES:]


def dictionary_of(record: bytes) -> bytes:
    """The dictionary bytes of a dictionary record (without its CRC)."""
    r = Reader(record, "dictionary record")
    r.fields(DICTIONARY_LAYOUT)
    return record[r.pos :]


def read_dictionary(fh: BinaryIO, limit: int, where: str, offset: int = PREAMBLE_BYTES) -> tuple[bytes, int]:
    """The archive dictionary (CRC-checked) and the offset of the first entry."""
    record, stored = read_dictionary_record(fh, limit, where, offset)
    if crc32(record) != int.from_bytes(stored, "little"):
        raise FormatError(f"{where}: dictionary record at byte {offset} is damaged (CRC mismatch)")
    return dictionary_of(record), offset + len(record) + CRC_BYTES


def _check_stored_name(name: str, where: str) -> None:
    try:
        canonical = normalize_member_name(name)
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None
    if canonical != name:
        raise FormatError(f"{where}: member name {name!r} is not a normalised relative path")


def make_entry(v: dict[str, Any], header_offset: int, where: str) -> ArchiveEntry:
    """An :class:`ArchiveEntry` from index-entry values, validated."""
    name = v["name"]
    _check_stored_name(name, where)
    if len(v["metadata_json"].encode("utf-8")) > MAX_METADATA_BYTES:
        raise FormatError(f"{where}: metadata of {name!r} exceeds {MAX_METADATA_BYTES} bytes")
    try:
        meta = json.loads(v["metadata_json"])
    except (ValueError, RecursionError):
        raise FormatError(f"{where}: metadata of {name!r} is not valid JSON") from None
    if not isinstance(meta, dict) or not json_depth_ok(meta):
        raise FormatError(f"{where}: metadata of {name!r} must be a JSON object")
    check_metadata(meta, f"{where}: metadata of {name!r}")
    mix = meta.get("class_mix", {})
    return ArchiveEntry(
        name=name,
        size_bytes=v["data_length_bytes"],
        crc32=v["entry_crc32"],
        original_size_bytes=v["original_size_bytes"],
        duration_s=v["duration_us"] / 1e6,
        class_mix={str(k): float(x) for k, x in mix.items()},
        metadata=meta,
        header_offset=header_offset,
        entry_bytes=v["entry_length_bytes"],
    )


def list_archive(path: str | os.PathLike) -> list[ArchiveEntry]:
    """Entries of the central index, in archive order (no member data is read)."""
    raw, index_offset, count = read_tail(path)
    where = f"{path}: central index"
    with open(path, "rb") as fh:
        _, offset = read_dictionary(fh, index_offset, str(path))
    r = Reader(raw, where)
    entries: list[ArchiveEntry] = []
    seen: set[str] = set()
    for _ in range(count):
        e = make_entry(r.fields(INDEX_ENTRY_LAYOUT), offset, where)
        # Entries are contiguous, in file order, ending at the index.
        if e.entry_bytes < 4 + 4 + CRC_BYTES or e.end_offset > index_offset:
            raise FormatError(f"{where}: entry {e.name!r} at byte {e.header_offset} runs past the index")
        if e.name in seen:
            raise FormatError(f"{where}: duplicate member {e.name!r}")
        seen.add(e.name)
        offset = e.end_offset
        entries.append(e)
    r.expect_end()
    if offset != index_offset:
        raise FormatError(f"{where}: {index_offset - offset} unaccounted bytes before the index")
    return entries


@dataclass
class StoredEntry:
    """An entry as stored (CRC-checked, prefix still packed); see :func:`read_stored_entry`."""

    name: str
    data_length: int
    packed_prefix: bytes
    prefix_length: int
    rest: bytes
    crc32: int
    entry_bytes: int

    def data(self, dictionary: bytes | None, where: str) -> bytes:
        """The member bytes: the prefix inflated against ``dictionary``, then the rest.

        ``dictionary`` None means the archive's dictionary is damaged: only
        members stored without a packed prefix read. A wrong dictionary is
        not always noticed here (raw deflate has no check of its own):
        callers that may hold one parse the result as an ``.acx``.
        """
        if not self.packed_prefix:
            return self.rest
        if dictionary is None:
            raise FormatError(f"{where}: member {self.name!r} needs the archive dictionary, which is damaged")
        inflater = zlib.decompressobj(-15, zdict=dictionary) if dictionary else zlib.decompressobj(-15)
        try:
            prefix = inflater.decompress(self.packed_prefix, self.prefix_length + 1)
        except zlib.error as exc:
            raise FormatError(f"{where}: member {self.name!r}: packed prefix is corrupt ({exc})") from None
        if len(prefix) != self.prefix_length or not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
            raise FormatError(f"{where}: member {self.name!r}: packed prefix does not inflate to {self.prefix_length} bytes")
        return prefix + self.rest


def read_entry(fh: BinaryIO, offset: int, limit: int, dictionary: bytes | None, where: str) -> tuple[str, bytes, int, int]:
    """Parse and CRC-check the entry at ``offset``; return ``(name, member data, crc, entry bytes)``.

    Reads at most the entry's own bytes (:func:`read_stored_entry`); a packed
    prefix inflates to at most its declared, bounded length.
    """
    e = read_stored_entry(fh, offset, limit, where)
    return e.name, e.data(dictionary, where), e.crc32, e.entry_bytes


def read_stored_entry(fh: BinaryIO, offset: int, limit: int, where: str) -> StoredEntry:
    """Parse and CRC-check the entry at ``offset``, leaving its prefix packed.

    Declared lengths are checked against the limits and the bytes left in
    the file before anything is read.
    """
    fh.seek(offset)
    cap = min(limit - offset, len(LOCAL_SIGNATURE) + 2 * MAX_VARINT_BYTES + MAX_NAME_BYTES)
    raw = fh.read(max(cap, 0))
    r = Reader(raw, f"{where}: local header at byte {offset}")
    sig = r.field("bytes4", "signature")
    if sig != LOCAL_SIGNATURE:
        raise FormatError(f"{where}: no member entry at byte {offset} (signature {sig!r})")
    n = r.field("varint", "name length")
    if n > MAX_NAME_BYTES:
        raise FormatError(f"{where}: member name at byte {offset} declares {n} bytes (limit {MAX_NAME_BYTES})")
    try:
        name = r.take(n, "name").decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{where}: member name at byte {offset} is not valid UTF-8") from None
    length = r.field("varint", "data_length_bytes")
    packed_length = r.field("varint", "packed_prefix_length_bytes")
    prefix_length = r.field("varint", "prefix_length_bytes")
    head = raw[: r.pos]
    data_at = offset + r.pos
    if prefix_length > min(length, MAX_PREFIX_BYTES) or (packed_length == 0) != (prefix_length == 0):
        raise FormatError(f"{where}: member {name!r} at byte {offset} declares an invalid prefix of {prefix_length} bytes")
    stored_length = packed_length + length - prefix_length
    if stored_length + CRC_BYTES > limit - data_at:
        raise FormatError(f"{where}: member {name!r} at byte {offset} declares {stored_length} bytes beyond the end of the file")
    _check_stored_name(name, f"{where}: entry at byte {offset}")
    fh.seek(data_at)
    body = fh.read(stored_length)
    stored = fh.read(CRC_BYTES)
    crc = crc32(head, body)
    if len(body) != stored_length or len(stored) != CRC_BYTES or crc != int.from_bytes(stored, "little"):
        raise FormatError(f"{where}: member {name!r} at byte {offset} is damaged (CRC mismatch)")
    return StoredEntry(name, length, body[:packed_length], prefix_length, body[packed_length:], crc,
                       data_at - offset + stored_length + CRC_BYTES)
