"""The .aca archive: create / append / list / read / extract / verify, safety rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _format_samples import archive_members

from adaptive_codec.container.aca import (
    END_BYTES,
    ExtractError,
    SalvageIncomplete,
    append_to_archive,
    create_archive,
    extract_archive,
    list_archive,
    normalize_member_name,
    read_member,
    verify_archive,
)
from adaptive_codec.container.acx import read_acx
from adaptive_codec.errors import AdaptiveCodecError, FormatError


@pytest.fixture()
def archive(tmp_path) -> tuple[Path, list]:
    members = archive_members(3)
    path = tmp_path / "a.aca"
    create_archive(path, members)
    return path, members


def test_create_list_read(archive):
    path, members = archive
    entries = list_archive(path)
    assert [e.name for e in entries] == [m[0] for m in members]
    for entry, (name, data, info) in zip(entries, members):
        assert entry.size_bytes == len(data)
        assert entry.duration_s == info["duration_s"]
        assert entry.original_size_bytes == info["original_size_bytes"]
        assert entry.class_mix == {"speech": 0.25, "music": 0.75}
        assert entry.bitrate_kbps == pytest.approx(len(data) * 8 / info["duration_s"] / 1000)
        assert read_member(path, name) == data
        read_acx(read_member(path, name))
    assert verify_archive(path).ok
    assert verify_archive(path, check_members=True).entries_checked == 3


def test_empty_archive(tmp_path):
    path = tmp_path / "e.aca"
    create_archive(path, [])
    assert list_archive(path) == []
    assert verify_archive(path).ok


def test_append(archive):
    path, members = archive
    before = path.read_bytes()
    append_to_archive(path, [("late/extra.acx", b"\x01\x02", {"duration_s": 0.1, "note": "kept"})])
    entries = list_archive(path)
    assert [e.name for e in entries][-1] == "late/extra.acx"
    assert entries[-1].metadata["note"] == "kept"
    assert read_member(path, "late/extra.acx") == b"\x01\x02"
    assert all(read_member(path, n) == d for n, d, _ in members)
    # Old entries are byte-identical in place: only the index and end record moved.
    old_end = list_archive(path)[2].end_offset
    assert path.read_bytes()[:old_end] == before[:old_end]
    assert verify_archive(path).ok
    with pytest.raises(FormatError, match="duplicate"):
        append_to_archive(path, [("show/ep0.acx", b"", {})])
    assert verify_archive(path).ok  # a failed append leaves the archive intact


def test_member_names_normalised_and_unsafe_rejected(tmp_path):
    assert normalize_member_name("./a//b/./c.acx") == "a/b/c.acx"
    for bad in ["", "/etc/passwd", "../x", "a/../../x", "C:\\x", "c:/x", "a\\b", "a\x00b", ".", "a/.."]:
        with pytest.raises(FormatError):
            normalize_member_name(bad)
    path = tmp_path / "n.aca"
    create_archive(path, [("./dir//x.acx", b"1", {})])
    assert [e.name for e in list_archive(path)] == ["dir/x.acx"]
    with pytest.raises(FormatError, match="duplicate"):
        create_archive(tmp_path / "d.aca", [("x", b"", {}), ("./x", b"", {})])
    assert not (tmp_path / "d.aca").exists()


def test_extract_all_and_some(archive, tmp_path):
    path, members = archive
    out = tmp_path / "out"
    written = extract_archive(path, out)
    assert sorted(p.relative_to(out.resolve()).as_posix() for p in written) == sorted(m[0] for m in members)
    for name, data, _ in members:
        assert (out / name).read_bytes() == data
    out2 = tmp_path / "out2"
    extract_archive(path, out2, members=["show/ep1.acx"])
    assert [p.name for p in (out2 / "show").iterdir()] == ["ep1.acx"]
    with pytest.raises(FormatError, match="no member"):
        extract_archive(path, out2, members=["nope.acx"])


def test_extract_never_overwrites_without_force(archive, tmp_path):
    path, members = archive
    out = tmp_path / "out"
    (out / "show").mkdir(parents=True)
    (out / "show" / "ep2.acx").write_bytes(b"mine")
    with pytest.raises(ExtractError, match="already exists"):
        extract_archive(path, out)
    assert (out / "show" / "ep2.acx").read_bytes() == b"mine"
    assert not (out / "show" / "ep0.acx").exists()  # refused before writing anything
    extract_archive(path, out, force=True)
    assert (out / "show" / "ep2.acx").read_bytes() == members[2][1]
    assert issubclass(ExtractError, AdaptiveCodecError)


def test_extract_refuses_symlink_escape(tmp_path):
    path = tmp_path / "s.aca"
    create_archive(path, [("link/evil.acx", b"x", {}), ("plain.acx", b"y", {})])
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside, out / "link")
    with pytest.raises(ExtractError, match="symbolic link"):
        extract_archive(path, out, members=["link/evil.acx"])
    assert not list(outside.iterdir())
    # A symlinked file is replaced (with force), never written through.
    os.symlink(outside / "target", out / "plain.acx")
    with pytest.raises(ExtractError):
        extract_archive(path, out, members=["plain.acx"])
    extract_archive(path, out, members=["plain.acx"], force=True)
    assert not (outside / "target").exists()
    assert (out / "plain.acx").read_bytes() == b"y" and not (out / "plain.acx").is_symlink()


def test_extract_rejects_hostile_names_in_file(tmp_path):
    # Craft an archive whose stored name is '../escape' by patching a safe name of equal length.
    path = tmp_path / "h.aca"
    create_archive(path, [("aa/escape", b"x", {})])
    data = path.read_bytes().replace(b"aa/escape", b"../escape")
    path.write_bytes(data)  # CRCs now fail too, but the name check must hold even in salvage
    with pytest.raises(FormatError):
        extract_archive(path, tmp_path / "o")
    with pytest.raises(FormatError):
        extract_archive(path, tmp_path / "o", salvage=True)
    assert not (tmp_path / "escape").exists()


def test_salvage_after_index_damage(archive, tmp_path):
    path, members = archive
    data = bytearray(path.read_bytes())
    data[-END_BYTES - 6] ^= 0xFF  # inside the central index
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="salvage"):
        list_archive(path)
    report = verify_archive(path)
    assert not report.ok and "index" in report.problems[0]
    # Damage one member's data as well: salvage recovers the others.
    first = members[0][1]
    at = bytes(data).index(first[-100:]) + 40  # in its payload (its header is stored packed)
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    out = tmp_path / "salvaged"
    with pytest.raises(SalvageIncomplete) as info:  # the others are written, the loss is named
        extract_archive(path, out, salvage=True)
    written = info.value.written
    assert sorted(p.name for p in written) == ["ep1.acx", "ep2.acx"]
    assert any("show/ep0.acx" in line for line in info.value.skipped)
    assert (out / "show" / "ep1.acx").read_bytes() == members[1][1]
    # Truncation (end record lost) is salvageable too; the cut member is named.
    path.write_bytes(bytes(data[: len(data) // 2 + 300]))
    with pytest.raises(SalvageIncomplete) as info:
        extract_archive(path, tmp_path / "half", salvage=True)
    assert info.value.written and info.value.skipped


def test_verify_reports_member_damage(archive):
    path, members = archive
    entry = list_archive(path)[1]
    data = bytearray(path.read_bytes())
    data[entry.end_offset - 30] ^= 0x10
    path.write_bytes(bytes(data))
    report = verify_archive(path)
    assert not report.ok
    assert report.entries_checked == 2
    assert report.problems[0].startswith("show/ep1.acx")
    with pytest.raises(FormatError, match="CRC"):
        read_member(path, "show/ep1.acx")


def test_rejects_non_archives(tmp_path):
    path = tmp_path / "bad.aca"
    for content in [b"", b"ACA1", b"PK\x03\x04" + b"\0" * 60, b"ACA1\x02\x00\x00\x00" + b"\0" * 40]:
        path.write_bytes(content)
        with pytest.raises(FormatError):
            list_archive(path)
        assert not verify_archive(path).ok


def test_huge_declared_lengths(archive):
    path, _ = archive
    data = bytearray(path.read_bytes())
    # Point the end record at an absurd index length: rejected before reading it.
    end = len(data) - END_BYTES
    data[end + 12 : end + 20] = (2**62).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError):
        list_archive(path)


def test_crafted_hostile_name_with_valid_crcs(tmp_path):
    """A well-formed archive (all CRCs right) naming '../escape' is still refused."""
    import io

    from adaptive_codec.container import aca_format as aca

    record, crc = aca.entry_record("../escape", b"evil")  # bypass the writer's normalisation
    buf = io.BytesIO()
    buf.write(aca.preamble() + aca.dictionary_record(b""))
    buf.write(record)
    aca.write_tail(buf, [aca.entry_values("../escape", b"evil", {}, crc, len(record))], buf.tell())
    path = tmp_path / "crafted.aca"
    path.write_bytes(buf.getvalue())
    for kwargs in ({}, {"salvage": True}):
        with pytest.raises(FormatError):
            extract_archive(path, tmp_path / "out" / "deeper", **kwargs)
    assert not (tmp_path / "out" / "escape").exists()


def test_index_is_compressed_and_bounded(archive, tmp_path):
    """Member metadata lives once, zlib-compressed; a declared size beyond deflate's ratio is refused."""
    import zlib

    from adaptive_codec.container import aca_format as aca

    path, members = archive
    raw, offset, count = aca.read_tail(path)
    assert count == 3 and b"class_mix" in raw
    data = path.read_bytes()
    assert data.count(b"class_mix") == 0  # compressed, and not repeated in local headers
    with pytest.raises(FormatError, match="declares"):
        aca.inflate_bounded(zlib.compress(b"x" * 100), 10**9, "test")
    with pytest.raises(FormatError, match="declared"):
        aca.inflate_bounded(zlib.compress(b"x" * 100), 99, "test")
    bomb = zlib.compress(b"\0" * (1 << 20))
    with pytest.raises(FormatError):
        aca.inflate_bounded(bomb, 1000, "test")  # stops after 1001 bytes, never inflates the megabyte


def test_format_1_archives_are_rejected_with_a_clear_error(tmp_path):
    path = tmp_path / "old.aca"
    path.write_bytes(b"ACA1\x01\x00\x00\x00" + bytes(40))
    with pytest.raises(FormatError, match="version 1.0"):
        list_archive(path)


def test_acx_headers_are_packed_against_the_dictionary(tmp_path):
    """Members share their .acx header: stored deflated against the first one's, restored exactly."""
    from adaptive_codec.container import aca_format as aca

    members = archive_members(4)
    path = tmp_path / "p.aca"
    create_archive(path, members)
    entries = list_archive(path)
    with open(path, "rb") as fh:
        dictionary, first = aca.read_dictionary(fh, path.stat().st_size, str(path))
    assert dictionary == members[0][1][: len(dictionary)] and len(dictionary) > 50
    assert entries[0].header_offset == first
    for entry, (name, data, _) in zip(entries, members):
        assert read_member(path, name) == data
        # Stored smaller than header + data: the .acx header went in packed.
        assert entry.entry_bytes < len(data) - 20
    # A member that is no .acx is stored as it is.
    append_to_archive(path, [("raw.bin", b"\x00" * 10, {})])
    assert read_member(path, "raw.bin") == b"\x00" * 10 and verify_archive(path, check_members=False).ok


def test_salvage_without_the_dictionary_keeps_unpacked_members(tmp_path):
    path = tmp_path / "d.aca"
    members = archive_members(2)
    create_archive(path, members + [("plain.bin", b"plain bytes", {})])
    data = bytearray(path.read_bytes())
    data[14] ^= 0xFF  # inside the dictionary
    path.write_bytes(bytes(data))
    assert not verify_archive(path).ok
    # One damaged byte is repaired from the record's CRC: every member comes back, each
    # proven by its own .acx CRCs.
    written = extract_archive(path, tmp_path / "out", salvage=True)
    assert sorted(p.name for p in written) == ["ep0.acx", "ep1.acx", "plain.bin"]
    for name, member, _ in members:
        assert (tmp_path / "out" / name).read_bytes() == member
