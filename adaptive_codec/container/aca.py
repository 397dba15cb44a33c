"""The ``.aca`` archive: many ``.acx`` members in one file, laid out like zip.

::

    preamble      "ACA1" major minor flags                        8 bytes
    dictionary    "ACAD" length, the first member's .acx header, crc32
    entry * n     "ACAE" name lengths, packed .acx header, rest of the member, entry_crc32
    index         "ACAI" counts, zlib(index entries), index_crc32
    end record    "ACAZ" index_offset index_length entry_count end_crc32   28 bytes

The central index at the end makes listing cheap and appends possible; each
entry's local header names the member and its length, so
``extract(salvage=True)`` can recover members by scanning when the index or
end record is damaged.
Every byte is under a CRC (the end record's CRC also covers the preamble), so
:func:`verify_archive` detects any single-byte change. docs/FORMAT.md is the
normative spec; the byte-level helpers live in :mod:`adaptive_codec.container.aca_format`.

Writes go to a temporary sibling that is renamed over the target at the end,
so an interrupted ``create`` or ``append`` leaves the previous archive intact.
"""

from __future__ import annotations

import io
import itertools
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

from adaptive_codec.container.aca_format import (
    DICTIONARY_LAYOUT,
    END_BYTES,
    END_LAYOUT,
    FORMAT_MAJOR,
    FORMAT_MINOR,
    INDEX_ENTRY_LAYOUT,
    INDEX_HEAD_LAYOUT,
    LOCAL_HEADER_LAYOUT,
    LOCAL_SIGNATURE,
    MAGIC,
    MAX_INDEX_BYTES,
    MAX_METADATA_BYTES,
    MAX_NAME_BYTES,
    PREAMBLE_BYTES,
    PREAMBLE_LAYOUT,
    MAX_DICTIONARY_BYTES,
    ArchiveEntry,
    dictionary_record,
    entry_dict,
    entry_record,
    entry_values,
    list_archive,
    normalize_member_name,
    preamble,
    read_dictionary,
    read_entry,
    read_tail,
    write_tail,
)
from adaptive_codec.container.acx import AcxReader, read_acx
from adaptive_codec.container.binary import atomic_write
from adaptive_codec.errors import AdaptiveCodecError, FormatError

COPY_BLOCK_BYTES = 1 << 20  # append copies the old entries in blocks of this size

__all__ = [
    "MAGIC",
    "FORMAT_MAJOR",
    "FORMAT_MINOR",
    "END_BYTES",
    "PREAMBLE_BYTES",
    "MAX_NAME_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_INDEX_BYTES",
    "PREAMBLE_LAYOUT",
    "DICTIONARY_LAYOUT",
    "LOCAL_HEADER_LAYOUT",
    "INDEX_HEAD_LAYOUT",
    "INDEX_ENTRY_LAYOUT",
    "END_LAYOUT",
    "ArchiveEntry",
    "VerifyReport",
    "ExtractError",
    "normalize_member_name",
    "create_archive",
    "append_to_archive",
    "list_archive",
    "read_member",
    "extract_archive",
    "verify_archive",
]


class ExtractError(AdaptiveCodecError):
    """Extraction refused: the target exists (without ``force``) or would escape the target directory."""


@dataclass
class VerifyReport:
    """Result of :func:`verify_archive`; ``ok`` is True only when ``problems`` is empty."""

    path: str
    entries_checked: int = 0
    bytes_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def acx_header_length(data: bytes) -> int:
    """Bytes of the ``.acx`` preamble and header at the start of ``data`` (0 if it is not an .acx).

    That prefix is what members share (weights id, hashes, profile table) and
    what the archive stores deflated against its dictionary.
    """
    try:
        with AcxReader(io.BytesIO(data)) as reader:
            return reader.data_offset
    except FormatError:
        return 0


def _write_members(fh: BinaryIO, members: Iterable[tuple[str, bytes, dict]], entries: list[dict[str, Any]],
                   offset: int, dictionary: bytes) -> int:
    names = {e["name"] for e in entries}
    for name, data, info in members:
        name = normalize_member_name(name)
        if name in names:
            raise FormatError(f"duplicate member name {name!r}")
        names.add(name)
        data = bytes(data)
        record, crc = entry_record(name, data, dictionary, acx_header_length(data))
        entries.append(entry_values(name, data, info, crc, len(record)))
        fh.write(record)
        offset += len(record)
    return offset


def create_archive(out_path: str | os.PathLike, members: Iterable[tuple[str, bytes, dict]]) -> list[ArchiveEntry]:
    """Write a new archive atomically (temp file + rename).

    Parameters
    ----------
    out_path : path
    members : iterable of (name, data, info)
        ``info`` may hold ``original_size_bytes`` (or ``original_size``),
        ``duration_s``, ``class_mix`` (dict label -> fraction) and any other
        JSON values, which are kept in the member's metadata. Consumed lazily,
        one member in memory at a time.

    Returns
    -------
    list[ArchiveEntry]
    """
    entries: list[dict[str, Any]] = []
    members = iter(members)
    first = next(members, None)
    # The dictionary is the first member's .acx header: the next members
    # share most of its bytes (weights id and hashes, rates, profile table).
    dictionary = b""
    if first is not None:
        dictionary = bytes(first[1][: acx_header_length(bytes(first[1]))])
        members = itertools.chain([first], members)
    if len(dictionary) > MAX_DICTIONARY_BYTES:
        dictionary = b""
    with atomic_write(out_path) as fh:
        head = preamble() + dictionary_record(dictionary)
        fh.write(head)
        offset = _write_members(fh, members, entries, len(head), dictionary)
        write_tail(fh, entries, offset)
    return list_archive(out_path)


def append_to_archive(path: str | os.PathLike, members: Iterable[tuple[str, bytes, dict]]) -> list[ArchiveEntry]:
    """Add members to an existing archive; the new file replaces the old one atomically."""
    old = list_archive(path)
    _, index_offset, _ = read_tail(path)
    entries = [entry_dict(e) for e in old]
    with open(path, "rb") as src, atomic_write(path) as fh:
        dictionary, _ = read_dictionary(src, index_offset, str(path))
        src.seek(0)
        # Entries keep their offsets: same preamble, same bytes up to the index.
        left = index_offset
        while left:
            block = src.read(min(COPY_BLOCK_BYTES, left))
            if not block:
                raise FormatError(f"{path}: archive shrank while appending")
            fh.write(block)
            left -= len(block)
        offset = _write_members(fh, members, entries, index_offset, dictionary)
        write_tail(fh, entries, offset)
    return list_archive(path)


def read_member(path: str | os.PathLike, name: str) -> bytes:
    """The data of member ``name``, CRC-checked against its local header and the index."""
    name = normalize_member_name(name)
    entries = {e.name: e for e in list_archive(path)}
    if name not in entries:
        raise FormatError(f"{path}: no member named {name!r}")
    return _read_checked(path, entries[name])


def _read_checked(path: str | os.PathLike, want: ArchiveEntry, dictionary: bytes | None = None) -> bytes:
    with open(path, "rb") as fh:
        limit = os.fstat(fh.fileno()).st_size
        if dictionary is None:
            dictionary, _ = read_dictionary(fh, limit, str(path))
        name, data, crc, length = read_entry(fh, want.header_offset, limit, dictionary, str(path))
        if (name, len(data), crc, length) != (want.name, want.size_bytes, want.crc32, want.entry_bytes):
            raise FormatError(f"{path}: entry of {want.name!r} disagrees with the central index")
        return data


def _scan_members(path: str | os.PathLike) -> Iterator[tuple[ArchiveEntry, bytes]]:
    """Salvage: find intact members by their local-header signature; yield (entry, data)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            return
        try:
            dictionary: bytes | None = read_dictionary(fh, size, str(path))[0]
        except FormatError:
            dictionary = None  # members stored with a packed prefix are lost; the others are not
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            pos = mm.find(LOCAL_SIGNATURE, 0)
            while pos >= 0:
                try:
                    name, data, crc, length = read_entry(fh, pos, size, dictionary, str(path))
                except FormatError:
                    pos = mm.find(LOCAL_SIGNATURE, pos + 1)
                    continue
                entry = ArchiveEntry(name, len(data), crc, header_offset=pos, entry_bytes=length)
                yield entry, data
                pos = mm.find(LOCAL_SIGNATURE, entry.end_offset)


def safe_target(root: Path, name: str, force: bool) -> Path:
    """Path for member ``name`` under ``root``; refuse symlinks, escapes and overwrites."""
    parts = normalize_member_name(name).split("/")
    cur = root
    for part in parts[:-1]:
        cur = cur / part
        if cur.is_symlink():
            raise ExtractError(f"refusing to extract {name!r}: {cur} is a symbolic link")
        if cur.exists() and not cur.is_dir():
            raise ExtractError(f"refusing to extract {name!r}: {cur} is not a directory")
        cur.mkdir(exist_ok=True)
    real = Path(os.path.realpath(cur))
    if real != root and root not in real.parents:
        raise ExtractError(f"refusing to extract {name!r}: it would land outside {root}")
    target = cur / parts[-1]
    if target.is_dir() and not target.is_symlink():
        raise ExtractError(f"refusing to extract {name!r}: {target} is a directory")
    if (target.exists() or target.is_symlink()) and not force:
        raise ExtractError(f"{target} already exists (use force to overwrite)")
    return target


def extract_archive(
    path: str | os.PathLike,
    to_dir: str | os.PathLike,
    members: Iterable[str] | None = None,
    force: bool = False,
    salvage: bool = False,
) -> list[Path]:
    """Extract members (all, or those named) under ``to_dir``; return the written paths.

    Never writes outside ``to_dir`` (member names are checked, and no
    existing symbolic link is followed), never overwrites without ``force``.
    With ``salvage`` the central index is ignored and intact members are
    found by scanning local headers (damaged ones are skipped).
    """
    wanted = None if members is None else {normalize_member_name(m) for m in members}
    root = Path(os.path.realpath(to_dir))
    root.mkdir(parents=True, exist_ok=True)
    if salvage:
        items: Iterable[tuple[ArchiveEntry, bytes | None]] = (
            (e, d) for e, d in _scan_members(path) if wanted is None or e.name in wanted
        )
    else:
        entries = list_archive(path)
        names = {e.name for e in entries}
        missing = sorted((wanted or set()) - names)
        if missing:
            raise FormatError(f"{path}: no member named {missing[0]!r}")
        chosen = [e for e in entries if wanted is None or e.name in wanted]
        if not force:  # refuse before writing anything, not half-way through
            for e in chosen:
                target = root.joinpath(*e.name.split("/"))
                if target.exists() or target.is_symlink():
                    raise ExtractError(f"{target} already exists (use force to overwrite)")
        items = ((e, None) for e in chosen)
    written: list[Path] = []
    done: set[str] = set()
    for entry, data in items:
        if entry.name in done:  # salvage may meet a member twice
            continue
        target = safe_target(root, entry.name, force)
        payload = data if data is not None else _read_checked(path, entry)
        with atomic_write(target) as fh:
            fh.write(payload)
        written.append(target)
        done.add(entry.name)
    if salvage and not written:
        raise FormatError(f"{path}: salvage found no intact members")
    return written


def verify_archive(path: str | os.PathLike, check_members: bool = False) -> VerifyReport:
    """Check every CRC and that every byte of the file belongs to the structure.

    Parameters
    ----------
    check_members : bool
        Also parse each member as an ``.acx`` (all its chunk CRCs).

    Returns
    -------
    VerifyReport
        ``ok`` False with one line per problem; never raises for a damaged file.
    """
    report = VerifyReport(str(path))
    try:
        entries = list_archive(path)
    except FormatError as exc:
        report.problems.append(str(exc))
        return report
    with open(path, "rb") as fh:
        limit = os.fstat(fh.fileno()).st_size
        dictionary, _ = read_dictionary(fh, limit, str(path))  # list_archive checked it
        for want in entries:
            try:
                name, data, crc, length = read_entry(fh, want.header_offset, limit, dictionary, str(path))
                if (name, len(data), crc, length) != (want.name, want.size_bytes, want.crc32, want.entry_bytes):
                    raise FormatError(f"{path}: entry of {want.name!r} disagrees with the central index")
                if check_members:
                    read_acx(data)
            except FormatError as exc:
                report.problems.append(f"{want.name}: {exc}")
                continue
            report.entries_checked += 1
            report.bytes_checked += want.size_bytes
    return report
