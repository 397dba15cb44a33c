"""Byte layout of the ``.aca`` archive: constants, entry records, low-level read/write.

Split from :mod:`adaptive_codec.archive` (the public API) to keep each module
to one idea; docs/FORMAT.md section 3 is the normative spec of these layouts.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ._binary import Reader, Writer, crc32, fixed_size, json_depth_ok
from .errors import FormatError

MAGIC = b"ACA1"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
LOCAL_SIGNATURE, INDEX_SIGNATURE, END_SIGNATURE = b"ACAE", b"ACAI", b"ACAZ"
MAX_NAME_BYTES = 4096
MAX_METADATA_BYTES = 1 << 20  # 1 MiB of JSON per member is far beyond a class mix

PREAMBLE_LAYOUT = [("magic", "bytes4"), ("format_major", "u8"), ("format_minor", "u8"), ("flags", "u16")]
ENTRY_FIELDS = [
    ("name", "str16"),
    ("data_length_bytes", "u64"),
    ("data_crc32", "u32"),
    ("original_size_bytes", "u64"),
    ("duration_s", "f64"),
    ("metadata_json", "str32"),
]
LOCAL_HEADER_LAYOUT = [("signature", "bytes4"), *ENTRY_FIELDS]  # then header_crc32 u32, then data
INDEX_HEAD_LAYOUT = [("signature", "bytes4"), ("entry_count", "u32")]  # then entries, then index_crc32 u32
INDEX_ENTRY_LAYOUT = [("local_header_offset", "u64"), *ENTRY_FIELDS]
END_LAYOUT = [
    ("signature", "bytes4"),
    ("index_offset", "u64"),
    ("index_length_bytes", "u64"),
    ("entry_count", "u32"),
    ("end_crc32", "u32"),
]
PREAMBLE_BYTES = fixed_size(PREAMBLE_LAYOUT)  # 8
END_BYTES = fixed_size(END_LAYOUT)  # 28
_DRIVE = re.compile(r"^[A-Za-z]:")
_ENTRY_MIN_BYTES = 8 + 2 + 8 + 4 + 8 + 8 + 4  # smallest index entry (empty name and metadata)


@dataclass
class ArchiveEntry:
    """One member as listed in the central index.

    Attributes
    ----------
    name : str
        Normalised relative POSIX path.
    size_bytes : int
        Size of the member data (the ``.acx`` bytes).
    crc32 : int
        CRC-32 of the member data.
    original_size_bytes : int
        Size of the original input file.
    duration_s : float
        Duration of the recording in seconds.
    class_mix : dict[str, float]
        Fraction of the duration per content class.
    metadata : dict
        Everything stored for the member (includes ``class_mix``).
    header_offset : int
        Byte offset of the member's local header.
    data_offset : int
        Byte offset of the member's data.
    """

    name: str
    size_bytes: int
    crc32: int
    original_size_bytes: int = 0
    duration_s: float = 0.0
    class_mix: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    header_offset: int = 0
    data_offset: int = 0

    @property
    def bitrate_kbps(self) -> float:
        """Actual bitrate of the member data (0 for zero duration)."""
        return self.size_bytes * 8 / self.duration_s / 1000 if self.duration_s > 0 else 0.0


def normalize_member_name(name: str) -> str:
    """Canonical relative POSIX member path, or :class:`FormatError` if it is unsafe.

    ``./a//b`` becomes ``a/b``; absolute paths, drive letters, ``..``
    components, backslashes and control characters are rejected.
    """
    if not isinstance(name, str) or not name:
        raise FormatError("member name is empty")
    if any(ord(ch) < 32 or ch == "\x7f" for ch in name) or "\\" in name:
        raise FormatError(f"member name {name!r} contains a backslash or control character")
    if name.startswith("/") or _DRIVE.match(name):
        raise FormatError(f"member name {name!r} is absolute")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise FormatError(f"member name {name!r} contains '..'")
    if not parts:
        raise FormatError(f"member name {name!r} names no file")
    out = "/".join(parts)
    if len(out.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise FormatError(f"member name is longer than {MAX_NAME_BYTES} bytes")
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError(f"member name {name!r} is not encodable as UTF-8") from None
    return out


# --------------------------------------------------------------------------- writing


def entry_values(name: str, data: bytes, info: dict[str, Any]) -> dict[str, Any]:
    meta = dict(info or {})
    original = meta.pop("original_size_bytes", meta.pop("original_size", 0))
    duration = float(meta.pop("duration_s", 0.0))
    meta.setdefault("class_mix", {})
    if not math.isfinite(duration) or duration < 0:
        raise FormatError(f"member {name!r}: duration_s must be finite and >= 0, got {duration}")
    try:
        meta_json = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"member {name!r}: metadata is not JSON-serialisable: {exc}") from None
    if len(meta_json.encode()) > MAX_METADATA_BYTES:
        raise FormatError(f"member {name!r}: metadata exceeds {MAX_METADATA_BYTES} bytes")
    return {
        "name": name,
        "data_length_bytes": len(data),
        "data_crc32": crc32(data),
        "original_size_bytes": int(original),
        "duration_s": duration,
        "metadata_json": meta_json,
    }


def local_header(values: dict[str, Any]) -> bytes:
    w = Writer()
    w.fields(LOCAL_HEADER_LAYOUT, {"signature": LOCAL_SIGNATURE, **values})
    body = w.bytes()
    return body + crc32(body).to_bytes(4, "little")


def preamble() -> bytes:
    w = Writer()
    w.fields(PREAMBLE_LAYOUT, {"magic": MAGIC, "format_major": FORMAT_MAJOR, "format_minor": FORMAT_MINOR, "flags": 0})
    return w.bytes()


def write_tail(fh: BinaryIO, entries: list[dict[str, Any]], index_offset: int) -> None:
    w = Writer()
    w.fields(INDEX_HEAD_LAYOUT, {"signature": INDEX_SIGNATURE, "entry_count": len(entries)})
    for e in entries:
        w.fields(INDEX_ENTRY_LAYOUT, e)
    index = w.bytes()
    index += crc32(index).to_bytes(4, "little")
    end = Writer()
    end.fields(END_LAYOUT[:-1], {"signature": END_SIGNATURE, "index_offset": index_offset, "index_length_bytes": len(index), "entry_count": len(entries)})
    end_bytes = end.bytes()
    fh.write(index + end_bytes + crc32(preamble(), end_bytes).to_bytes(4, "little"))


def entry_dict(e: ArchiveEntry) -> dict[str, Any]:
    meta_json = json.dumps(e.metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return {
        "local_header_offset": e.header_offset,
        "name": e.name,
        "data_length_bytes": e.size_bytes,
        "data_crc32": e.crc32,
        "original_size_bytes": e.original_size_bytes,
        "duration_s": e.duration_s,
        "metadata_json": meta_json,
    }


# --------------------------------------------------------------------------- reading


def check_preamble(pre_bytes: bytes, where: str) -> None:
    pre = Reader(pre_bytes, where).fields(PREAMBLE_LAYOUT)
    if pre["magic"] != MAGIC:
        raise FormatError(f"{where}: not an .aca archive (magic {pre['magic']!r}, expected {MAGIC!r})")
    if pre["format_major"] != FORMAT_MAJOR:
        raise FormatError(f"{where}: unsupported .aca format version {pre['format_major']}.{pre['format_minor']}")
    if pre["flags"] != 0:
        raise FormatError(f"{where}: unknown flags 0x{pre['flags']:04x}")


def read_tail(path: str | os.PathLike) -> tuple[bytes, int]:
    """Check preamble and end record; return ``(index bytes, index offset)``."""
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
        if len(index) < 12 or crc32(index[:-4]) != int.from_bytes(index[-4:], "little"):
            raise FormatError(f"{where}: central index at byte {off} is damaged (CRC mismatch; try extract with salvage)")
        if end["entry_count"] != int.from_bytes(index[4:8], "little"):
            raise FormatError(f"{where}: end record and index disagree on the entry count")
        return index, off


def parse_entry_fields(v: dict[str, Any], where: str) -> tuple[str, dict[str, Any]]:
    name = v["name"]
    if normalize_member_name(name) != name:
        raise FormatError(f"{where}: member name {name!r} is not a normalised relative path")
    try:
        meta = json.loads(v["metadata_json"])
    except (ValueError, RecursionError):
        raise FormatError(f"{where}: metadata of {name!r} is not valid JSON") from None
    if not isinstance(meta, dict) or not json_depth_ok(meta):
        raise FormatError(f"{where}: metadata of {name!r} must be a JSON object")
    if not math.isfinite(v["duration_s"]) or v["duration_s"] < 0:
        raise FormatError(f"{where}: duration_s of {name!r} is invalid")
    return name, meta


def make_entry(v: dict[str, Any], header_offset: int, where: str) -> ArchiveEntry:
    name, meta = parse_entry_fields(v, where)
    mix = meta.get("class_mix", {})
    if not isinstance(mix, dict) or not all(isinstance(x, (int, float)) for x in mix.values()):
        raise FormatError(f"{where}: class_mix of {name!r} must map labels to numbers")
    head_len = 4 + 2 + len(name.encode()) + 8 + 4 + 8 + 8 + 4 + len(v["metadata_json"].encode()) + 4
    return ArchiveEntry(
        name=name,
        size_bytes=v["data_length_bytes"],
        crc32=v["data_crc32"],
        original_size_bytes=v["original_size_bytes"],
        duration_s=v["duration_s"],
        class_mix={str(k): float(x) for k, x in mix.items()},
        metadata=meta,
        header_offset=header_offset,
        data_offset=header_offset + head_len,
    )


def list_archive(path: str | os.PathLike) -> list[ArchiveEntry]:
    """Entries of the central index, in archive order (no member data is read)."""
    index, index_offset = read_tail(path)
    where = f"{path}: central index"
    r = Reader(index[:-4], where)
    head = r.fields(INDEX_HEAD_LAYOUT)
    if head["signature"] != INDEX_SIGNATURE:
        raise FormatError(f"{where}: bad signature {head['signature']!r}")
    if head["entry_count"] * _ENTRY_MIN_BYTES > r.remaining():
        raise FormatError(f"{where}: declares {head['entry_count']} entries, too many for {len(index)} bytes")
    entries: list[ArchiveEntry] = []
    expected = PREAMBLE_BYTES
    seen: set[str] = set()
    for _ in range(head["entry_count"]):
        v = r.fields(INDEX_ENTRY_LAYOUT)
        e = make_entry(v, v["local_header_offset"], where)
        # Entries are contiguous and in offset order, ending at the index.
        if e.header_offset != expected or e.data_offset + e.size_bytes > index_offset:
            raise FormatError(f"{where}: entry {e.name!r} at byte {e.header_offset} is out of place (expected {expected})")
        if e.name in seen:
            raise FormatError(f"{where}: duplicate member {e.name!r}")
        seen.add(e.name)
        expected = e.data_offset + e.size_bytes
        entries.append(e)
    r.expect_end()
    if expected != index_offset:
        raise FormatError(f"{where}: {index_offset - expected} unaccounted bytes before the index")
    return entries


def read_local(fh: BinaryIO, offset: int, limit: int, where: str) -> tuple[ArchiveEntry, bytes]:
    """Parse the local header at ``offset``; return the entry and the raw header bytes (CRC checked)."""
    fh.seek(offset)
    # A local header is at most this long; never read more than the file has.
    cap = min(limit - offset, 4 + 2 + MAX_NAME_BYTES + 32 + 4 + MAX_METADATA_BYTES + 4)
    raw = fh.read(max(cap, 0))
    r = Reader(raw, f"{where}: local header at byte {offset}")
    v = r.fields(LOCAL_HEADER_LAYOUT)
    head = raw[: r.pos]
    stored = int.from_bytes(r.take(4, "header CRC"), "little")
    if v["signature"] != LOCAL_SIGNATURE or crc32(head) != stored:
        raise FormatError(f"{where}: local header at byte {offset} is damaged")
    entry = make_entry(v, offset, where)
    if entry.data_offset + entry.size_bytes > limit:
        raise FormatError(f"{where}: member {entry.name!r} declares {entry.size_bytes} bytes beyond the end of the file")
    return entry, raw[: r.pos]


def read_data(fh: BinaryIO, entry: ArchiveEntry, where: str) -> bytes:
    fh.seek(entry.data_offset)
    data = fh.read(entry.size_bytes)
    if len(data) != entry.size_bytes or crc32(data) != entry.crc32:
        raise FormatError(f"{where}: data of member {entry.name!r} at byte {entry.data_offset} is damaged (CRC mismatch)")
    return data
