"""Salvage of damaged ``.aca`` archives: recover what is provably intact, name the rest.

The central index is not used; entries are found by their signature
(docs/FORMAT.md 3.3). A member counts as recovered only when

* its entry CRC holds (the stored bytes are what the writer wrote), and
* if it has a packed prefix, or starts like an ``.acx``, the whole member
  parses as one (:func:`~adaptive_codec.container.acx.read_acx`: header CRC,
  every chunk CRC, nothing missing). Raw deflate has no check of its own, so
  this is what tells a prefix inflated against the right dictionary from one
  inflated against the wrong one.

The dictionary is not a single point of failure: every intact dictionary
record of the file is a candidate (``cat A.aca B.aca`` holds two, and B's
members must use B's), tried nearest-preceding first, then a damaged
record repaired by its CRC (one byte changed), then the damaged bytes as
they are (members whose prefix does not refer to the damaged bytes still
parse), then no dictionary. Whatever is not recovered is reported: every
entry that fails, every member of a readable index that was not found, and
every stretch of bytes no recognised structure explains.
"""

from __future__ import annotations

import mmap
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from adaptive_codec.container.aca_format import (
    CRC_BYTES,
    DICTIONARY_SIGNATURE,
    END_BYTES,
    INDEX_HEAD_LAYOUT,
    INDEX_SIGNATURE,
    LOCAL_SIGNATURE,
    MAGIC,
    PREAMBLE_BYTES,
    ArchiveEntry,
    StoredEntry,
    dictionary_of,
    list_archive,
    read_dictionary_record,
    read_stored_entry,
)
from adaptive_codec.container.acx import MAGIC as ACX_MAGIC, read_acx
from adaptive_codec.container.binary import MAX_VARINT_BYTES, Reader, crc32
from adaptive_codec.errors import AdaptiveCodecError, FormatError

__all__ = ["SalvageLog", "scan_members", "repair_one_byte", "MAX_REPAIR_BYTES", "MAX_CANDIDATES"]

#: Dictionary records up to this size are repaired by trying every one-byte change (~0.1 s).
MAX_REPAIR_BYTES = 1024
#: Intact dictionary records tried per member (the nearest preceding ones): bounds the work
#: on a crafted file holding thousands of them.
MAX_CANDIDATES = 4
#: Bounds on a crafted file full of dictionary records: signatures examined, damaged records
#: repaired (each up to ~0.3 s), bytes of dictionaries kept.
MAX_DICTIONARY_HITS = 10_000
MAX_REPAIRS = 2
MAX_DICTIONARY_KEPT_BYTES = 8 << 20


@dataclass
class SalvageLog:
    """What a salvage skipped: one line per lost member or unexplained stretch of bytes."""

    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def repair_one_byte(record: bytes, stored_crc: int) -> bytes | None:
    """``record`` with the one byte changed that makes its CRC ``stored_crc``; None if none or several.

    Bounded: records longer than :data:`MAX_REPAIR_BYTES` are not tried
    (255 x length CRCs of the rest of the record).
    """
    if len(record) > MAX_REPAIR_BYTES:
        return None
    found = []
    for i in range(len(record)):
        head, tail = crc32(record[:i]), record[i + 1 :]
        for v in range(256):
            if v != record[i] and zlib.crc32(tail, zlib.crc32(bytes((v,)), head)) & 0xFFFFFFFF == stored_crc:
                found.append(record[:i] + bytes((v,)) + tail)
                if len(found) > 1:
                    return None  # ambiguous: trust neither
    return found[0] if found else None


def _dictionaries(fh, mm: mmap.mmap, size: int, where: str, log: SalvageLog) -> list[tuple[int, bytes, int]]:
    """``(offset, dictionary, record bytes)`` of every dictionary record found, intact or repaired, in file order.

    A record at byte 8 that cannot be repaired is kept as it is too, after the others
    (its offset made negative so it sorts as a last resort).
    """
    found: list[tuple[int, bytes, int]] = []
    hits = repairs = kept_bytes = 0
    pos = mm.find(DICTIONARY_SIGNATURE, 0)
    while pos >= 0:
        hits += 1
        if hits > MAX_DICTIONARY_HITS or kept_bytes > MAX_DICTIONARY_KEPT_BYTES:
            log.notes.append(f"{where}: more dictionary records than salvage tries; ignored those from byte {pos}")
            break
        try:
            record, stored = read_dictionary_record(fh, size, where, pos)
        except FormatError:
            record = None
        if record is not None:
            stored_crc = int.from_bytes(stored, "little")
            if crc32(record) == stored_crc:
                found.append((pos, dictionary_of(record), len(record) + CRC_BYTES))
            elif repairs < MAX_REPAIRS and (pos == PREAMBLE_BYTES
                                             or mm[pos - PREAMBLE_BYTES : pos - PREAMBLE_BYTES + 4] == MAGIC):
                repairs += 1
                fixed = repair_one_byte(record, stored_crc)
                if fixed is not None:
                    log.notes.append(f"dictionary record at byte {pos} repaired (one byte was damaged)")
                    found.append((pos, dictionary_of(fixed), len(record) + CRC_BYTES))
                else:
                    log.notes.append(f"dictionary record at byte {pos} is damaged; trying it as it is")
                    found.append((-1 - pos, dictionary_of(record), len(record) + CRC_BYTES))
            kept_bytes += len(record)
        pos = mm.find(DICTIONARY_SIGNATURE, pos + 1)
    return found


def _candidates(dictionaries: list[tuple[int, bytes]], at: int) -> list[bytes]:
    before = [d for off, d in dictionaries if 0 <= off < at]
    after = [d for off, d in dictionaries if off >= at]
    damaged = [d for off, d in dictionaries if off < 0]
    out: list[bytes] = []
    for d in before[::-1][:MAX_CANDIDATES] + after[:1] + damaged[:1] + [b""]:
        if d not in out:
            out.append(d)
    return out


def checked_member(stored: StoredEntry, candidates: list[bytes], where: str) -> bytes:
    """The member bytes of ``stored``, proven right: an ``.acx`` that parses, or a raw member's CRC.

    Raises
    ------
    FormatError
        Naming the member: no candidate dictionary gives a member that parses.
    """
    if not stored.packed_prefix:
        data = stored.rest
        if data.startswith(ACX_MAGIC):
            try:
                read_acx(data)
            except AdaptiveCodecError as exc:
                raise FormatError(f"{where}: member {stored.name!r} is not a readable .acx ({exc})") from None
        return data
    last = "no dictionary to inflate it with"
    for dictionary in candidates:
        try:
            data = stored.data(dictionary, where)
            read_acx(data)
            return data
        except AdaptiveCodecError as exc:
            last = str(exc)
    raise FormatError(f"{where}: member {stored.name!r}: no dictionary of the file restores a readable "
                      f".acx (last try: {last})")


def _known_structure(mm: mmap.mmap, pos: int, size: int, dictionaries: dict[int, int]) -> int:
    """Length of a preamble, index, end or dictionary record at ``pos``; 0 if none.

    Index records need their CRC; dictionary records are those
    :func:`_dictionaries` accepted (``dictionaries``: offset -> record bytes).
    """
    sig = mm[pos : pos + 4]
    if sig == MAGIC:
        return PREAMBLE_BYTES
    if sig == b"ACAZ" and pos + END_BYTES <= size:
        return END_BYTES
    if sig == INDEX_SIGNATURE:
        try:
            r = Reader(mm[pos : pos + 4 + 3 * MAX_VARINT_BYTES], "index")
            head = r.fields(INDEX_HEAD_LAYOUT)
            end = pos + r.pos + head["compressed_length_bytes"] + CRC_BYTES
            if end <= size and crc32(mm[pos : end - CRC_BYTES]) == int.from_bytes(mm[end - CRC_BYTES : end], "little"):
                return end - pos
        except FormatError:
            return 0
    if sig == DICTIONARY_SIGNATURE and pos in dictionaries:
        return dictionaries[pos]
    return 0


#: Signature hits that do not start an intact record, examined before salvage gives up on
#: the rest of the file (a crafted file of repeated signatures would otherwise take minutes).
MAX_FAILED_ENTRIES = 10_000
#: Preambles, dictionaries, indexes and end records met before salvage gives up (thousands
#: of archives back to back would be needed to reach it).
MAX_STRUCTURES = 20_000
_SIGNATURES = (LOCAL_SIGNATURE, INDEX_SIGNATURE, MAGIC, b"ACAZ", DICTIONARY_SIGNATURE)


def scan_members(path: str | os.PathLike, log: SalvageLog) -> Iterator[tuple[ArchiveEntry, bytes]]:
    """Intact members of ``path`` in file order, found by their signature; lost ones go to ``log``.

    Memory: one member at a time (the file is mapped, not read).
    """
    where = str(path)
    try:
        indexed = {e.name for e in list_archive(path)}
    except AdaptiveCodecError:
        indexed = set()
    recovered: dict[str, int] = {}
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            log.skipped.append(f"{where}: the file is empty")
            return
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            dictionaries = _dictionaries(fh, mm, size, where, log)
            records = {off if off >= 0 else -1 - off: n for off, _, n in dictionaries}
            dictionaries = [(off, d) for off, d, _ in dictionaries]
            nxt = {sig: mm.find(sig, 0) for sig in _SIGNATURES}
            covered, explained, failures, structures = 0, False, 0, 0  # bytes before `covered` are accounted for

            def gap(upto: int) -> None:
                if upto <= covered or explained:
                    return
                if mm[covered : covered + 4] == INDEX_SIGNATURE and (upto == size or mm[upto : upto + 4] == b"ACAZ"):
                    # A damaged central index where one belongs: the index holds no member data.
                    log.notes.append(f"{where}: the central index at byte {covered} is damaged")
                else:
                    log.skipped.append(f"{where}: bytes {covered}..{upto} hold no readable entry "
                                       "(a member may be lost there)")

            pos = 0
            while True:
                for sig, at in nxt.items():  # next hit of each signature at or after pos
                    if 0 <= at < pos:
                        nxt[sig] = mm.find(sig, pos)
                hits = [at for at in nxt.values() if at >= 0]
                if not hits:
                    break
                pos = min(hits)
                length = _known_structure(mm, pos, size, records)
                if not length and mm[pos : pos + 4] == LOCAL_SIGNATURE:
                    try:
                        stored = read_stored_entry(fh, pos, size, where)
                        data = checked_member(stored, _candidates(dictionaries, pos), where)
                    except FormatError as exc:
                        log.skipped.append(str(exc))
                        explained = True
                        failures += 1
                    else:
                        if stored.name in recovered:
                            log.notes.append(f"{where}: member {stored.name!r} met again at byte {pos}; "
                                             f"kept the first copy (byte {recovered[stored.name]})")
                        else:
                            recovered[stored.name] = pos
                            yield ArchiveEntry(stored.name, len(data), stored.crc32, header_offset=pos,
                                               entry_bytes=stored.entry_bytes), data
                        length = stored.entry_bytes
                if length:
                    gap(pos)
                    covered, explained = pos + length, False
                    pos += length
                    structures += 1
                    if structures >= MAX_STRUCTURES:
                        log.skipped.append(f"{where}: more than {MAX_STRUCTURES} archive records; salvage "
                                           f"stopped at byte {pos}")
                        return
                    continue
                failures += mm[pos : pos + 4] != LOCAL_SIGNATURE  # (entries are counted above)
                if failures >= MAX_FAILED_ENTRIES:
                    log.skipped.append(f"{where}: {failures} unreadable records; salvage stopped at byte {pos}")
                    return
                pos += 1
            gap(size)
    for name in sorted(indexed - recovered.keys()):
        log.skipped.append(f"{where}: member {name!r} (in the index) was not recovered")
