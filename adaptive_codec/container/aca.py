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

Writes go to a locked temporary sibling published at the end
(:mod:`adaptive_codec.container.aca_write`): an interrupted ``create`` or
``append`` leaves the previous archive intact, and two writers cannot lose
each other's work (the second is refused while the first holds the lock; a
new archive is published only if its name is still free). Extraction checks
every target before writing and walks the tree by directory descriptor
(:mod:`adaptive_codec.container.aca_extract`); salvage writes only members it
proves intact and names the rest (:mod:`adaptive_codec.container.aca_salvage`).
"""

from __future__ import annotations

import io
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from adaptive_codec.container.aca_format import (
    DICTIONARY_LAYOUT,
    END_BYTES,
    END_LAYOUT,
    FORMAT_MAJOR,
    FORMAT_MINOR,
    INDEX_ENTRY_LAYOUT,
    INDEX_HEAD_LAYOUT,
    LOCAL_HEADER_LAYOUT,
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
    preamble,
    read_dictionary,
    read_entry,
    read_tail,
    write_tail,
)
from adaptive_codec.container.aca_extract import ExtractError, TargetFolder, check_targets, write_bytes
from adaptive_codec.container.aca_names import check_member_names, normalize_member_name, wav_name
from adaptive_codec.container.aca_salvage import SalvageLog, scan_members
from adaptive_codec.container.aca_write import ArchiveBusyError, ArchiveExistsError, archive_writer, leftover_temp_files
from adaptive_codec.container.acx import MAGIC as ACX_MAGIC, AcxReader, read_acx
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
    "ArchiveBusyError",
    "ArchiveExistsError",
    "SalvageIncomplete",
    "wav_name",
    "normalize_member_name",
    "create_archive",
    "append_to_archive",
    "list_archive",
    "read_member",
    "extract_archive",
    "verify_archive",
]


class SalvageIncomplete(FormatError):
    """Salvage wrote what it could prove intact but skipped something (``skipped`` names each loss).

    Attributes
    ----------
    written : list[Path]
        The files written.
    skipped : list[str]
        One line per member or stretch of bytes that was not recovered.
    """

    def __init__(self, path, written: list[Path], skipped: list[str]) -> None:
        super().__init__(f"{path}: salvage recovered {len(written)} member(s) and skipped "
                         f"{len(skipped)} damaged part(s): " + "; ".join(skipped[:3])
                         + ("; ..." if len(skipped) > 3 else ""))
        self.written, self.skipped = written, skipped


@dataclass
class VerifyReport:
    """Result of :func:`verify_archive`; ``ok`` is True only when ``problems`` is empty."""

    path: str
    entries_checked: int = 0
    bytes_checked: int = 0
    problems: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)  # temp files of interrupted or running writes

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
    check_member_names([e["name"] for e in entries], "archive")
    return offset


def create_archive(out_path: str | os.PathLike, members: Iterable[tuple[str, bytes, dict]],
                   overwrite: bool = True) -> list[ArchiveEntry]:
    """Write a new archive atomically (locked temp file + rename).

    Parameters
    ----------
    out_path : path
    members : iterable of (name, data, info)
        ``info`` may hold ``original_size_bytes`` (or ``original_size``),
        ``duration_s``, ``class_mix`` (dict label -> fraction) and any other
        JSON values, which are kept in the member's metadata. Consumed lazily,
        one member in memory at a time.
    overwrite : bool
        Replace an existing archive (under its write lock). False: refuse if
        the name exists when the archive is published, even if another
        process created it meanwhile.

    Returns
    -------
    list[ArchiveEntry]

    Raises
    ------
    ArchiveBusyError, ArchiveExistsError
        Another process is writing the archive, or created it meanwhile.
    """
    entries: list[dict[str, Any]] = []
    members = iter(members)
    with archive_writer(out_path, replace=overwrite) as (fh, _):
        first = next(members, None)
        # The dictionary is the first member's .acx header: the next members
        # share most of its bytes (weights id and hashes, rates, profile table).
        dictionary = b""
        if first is not None:
            dictionary = bytes(first[1][: acx_header_length(bytes(first[1]))])
            members = itertools.chain([first], members)
        if len(dictionary) > MAX_DICTIONARY_BYTES:
            dictionary = b""
        head = preamble() + dictionary_record(dictionary)
        fh.write(head)
        offset = _write_members(fh, members, entries, len(head), dictionary)
        write_tail(fh, entries, offset)
    return list_archive(out_path)


def append_to_archive(path: str | os.PathLike, members: Iterable[tuple[str, bytes, dict]]) -> list[ArchiveEntry]:
    """Add members to an existing archive; the new file replaces the old one atomically.

    The archive's write lock is held from before its index is read until the
    new file is in place, so two appends cannot lose each other's members:
    the second one stops with :class:`ArchiveBusyError`.
    """
    with archive_writer(path, replace=True, must_exist=True) as (fh, _):
        old = list_archive(path)  # read under the lock: the file the new one replaces
        _, index_offset, _ = read_tail(path)
        entries = [entry_dict(e) for e in old]
        with open(path, "rb") as src:
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


def _check_member(path, name: str, data: bytes) -> None:
    """A member that starts like an ``.acx`` must parse as one (every CRC) before it is written."""
    if data.startswith(ACX_MAGIC):
        try:
            read_acx(data)
        except FormatError as exc:
            raise FormatError(f"{path}: member {name!r}: {exc}") from None


def _decoder(decode, data: bytes, path, name: str):
    def produce(out: str) -> None:
        try:
            decode(data, out)
        except AdaptiveCodecError as exc:
            raise AdaptiveCodecError(f"{path}: member {name!r}: {exc}") from exc

    return produce


def _targets(names: list[str], decode) -> list[str]:
    return [wav_name(n) if decode is not None else n for n in names]


def extract_archive(
    path: str | os.PathLike,
    to_dir: str | os.PathLike,
    members: Iterable[str] | None = None,
    force: bool = False,
    salvage: bool = False,
    decode=None,
) -> list[Path]:
    """Extract members (all, or those named) under ``to_dir``; return the written paths.

    Never writes outside ``to_dir`` (names are checked, the tree is walked
    by directory descriptor without following links) and never overwrites
    without ``force``; every target is checked before the first write.
    With ``salvage`` the central index is ignored and members are found by
    scanning their entries (:mod:`adaptive_codec.container.aca_salvage`):
    only members proven intact are written, and if anything was skipped
    :class:`SalvageIncomplete` is raised once the others are written.

    Parameters
    ----------
    decode : callable, optional
        ``decode(member_bytes, out_path)`` writes the decoded audio of a
        member to the new file ``out_path``; members then go to their
        :func:`wav_name`. None: the ``.acx`` bytes are written as they are.
    """
    wanted = None if members is None else {normalize_member_name(m) for m in members}
    log = SalvageLog()
    if salvage:
        found = [e for e, _ in scan_members(path, log) if wanted is None or e.name in wanted]
        missing = sorted((wanted or set()) - {e.name for e in found})
        log.skipped.extend(f"{path}: member {m!r} was not found intact" for m in missing)
    else:
        entries = list_archive(path)
        missing = sorted((wanted or set()) - {e.name for e in entries})
        if missing:
            raise FormatError(f"{path}: no member named {missing[0]!r}")
        found = [e for e in entries if wanted is None or e.name in wanted]
    names = [e.name for e in found]
    check_member_names(names, str(path))
    written: list[Path] = []
    target_of = dict(zip(names, _targets(names, decode)))
    with TargetFolder(to_dir) as folder:
        check_targets(folder, list(target_of.values()), force)  # before the first write, not half-way
        if salvage:  # a second scan: members are written as they are met, one in memory at a time
            items: Iterable[tuple[ArchiveEntry, bytes | None]] = (
                (e, d) for e, d in scan_members(path, SalvageLog()) if e.name in target_of)
        else:
            items = ((e, None) for e in found)
        dictionary = None
        for entry, data in items if target_of else ():
            if data is None:
                if dictionary is None:
                    with open(path, "rb") as fh:
                        dictionary = read_dictionary(fh, os.fstat(fh.fileno()).st_size, str(path))[0]
                data = _read_checked(path, entry, dictionary)
                _check_member(path, entry.name, data)
            produce = write_bytes(data) if decode is None else _decoder(decode, data, path, entry.name)
            written.append(folder.write(target_of.pop(entry.name), produce))
            if not target_of:
                break  # all planned members written: the rest of a second salvage scan is not needed
    log.skipped.extend(f"{path}: member {n!r} changed between the two salvage passes" for n in target_of)
    if salvage and log.skipped:
        raise SalvageIncomplete(path, written, log.skipped)
    if salvage and not written:
        raise FormatError(f"{path}: salvage found no intact members")
    return written


def verify_archive(path: str | os.PathLike, check_members: bool = False) -> VerifyReport:
    """Check every CRC and that every byte of the file belongs to the structure.

    Parameters
    ----------
    check_members : bool
        Also parse each member as an ``.acx`` (all its chunk CRCs).
        Without it, a member that starts like an ``.acx`` is still parsed
        when it was stored with a packed prefix (what extraction checks).

    Returns
    -------
    VerifyReport
        ``ok`` False with one line per problem; never raises for a damaged file.
    """
    report = VerifyReport(str(path))
    for tmp, busy in leftover_temp_files(path):
        report.leftovers.append(f"{tmp}: being written by another process now" if busy else
                                f"{tmp}: left over from an interrupted write (recover its members with "
                                "extract --salvage, or delete it)")
    try:
        entries = list_archive(path)
        check_member_names([e.name for e in entries], str(path))
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
                if check_members or data.startswith(ACX_MAGIC):
                    read_acx(data)
            except FormatError as exc:
                report.problems.append(f"{want.name}: {exc}")
                continue
            report.entries_checked += 1
            report.bytes_checked += want.size_bytes
    return report
