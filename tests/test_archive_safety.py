"""Issue 35 for archives: honest salvage, writers that cannot lose work, extraction that cannot escape.

Each crafted case is built from docs/FORMAT.md section 3 with the format's own
primitives (valid CRCs where the case needs them) and must be refused with a
one-line error or handled without loss, quickly (the exact time and memory
of each is printed by benchmarks/archive_safety.py).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from _format_samples import archive_members

from adaptive_codec.container import aca_format as fmt
from adaptive_codec.container.aca import (
    ArchiveBusyError,
    ArchiveExistsError,
    ExtractError,
    SalvageIncomplete,
    append_to_archive,
    create_archive,
    extract_archive,
    list_archive,
    normalize_member_name,
    read_member,
    verify_archive,
    wav_name,
)
from adaptive_codec.container.aca_extract import TargetFolder, write_bytes
from adaptive_codec.container.aca_salvage import checked_member, repair_one_byte
from adaptive_codec.container.aca_write import archive_writer
from adaptive_codec.errors import FormatError

ROOT = Path(__file__).resolve().parents[1]


def crafted_archive(path: Path, members: list[tuple[str, bytes, dict]], dictionary: bytes = b"",
                    raw_meta: dict[str, str] | None = None) -> Path:
    """An archive written with the format's primitives, bypassing the writer's checks (valid CRCs)."""
    buf = io.BytesIO()
    buf.write(fmt.preamble() + fmt.dictionary_record(dictionary))
    entries = []
    for name, data, info in members:
        record, crc = fmt.entry_record(name, data, dictionary, 0)
        values = {"name": name, "data_length_bytes": len(data), "entry_length_bytes": len(record),
                  "entry_crc32": crc, "original_size_bytes": 0, "duration_us": 0,
                  "metadata_json": (raw_meta or {}).get(name, '{"class_mix":{}}')}
        entries.append(values)
        buf.write(record)
    fmt.write_tail(buf, entries, buf.tell())
    path.write_bytes(buf.getvalue())
    return path


# --------------------------------------------------------------------------- salvage


def test_salvage_of_concatenated_archives_uses_each_members_own_dictionary(tmp_path):
    a = archive_members(2, seed=0)
    b = [(n.replace("show/", "other/"), d, i) for n, d, i in archive_members(2, seed=7)]
    create_archive(tmp_path / "a.aca", a)
    create_archive(tmp_path / "b.aca", b)
    cat = tmp_path / "cat.aca"
    cat.write_bytes((tmp_path / "a.aca").read_bytes() + (tmp_path / "b.aca").read_bytes())
    start = time.monotonic()
    written = extract_archive(cat, tmp_path / "out", salvage=True)
    assert time.monotonic() - start < 2
    assert len(written) == 4
    for name, data, _ in a + b:
        assert (tmp_path / "out" / name).read_bytes() == data  # byte-exact, not inflated against A's


def test_a_member_inflated_against_the_wrong_dictionary_is_refused(tmp_path):
    a, b = archive_members(1, seed=0), archive_members(2, seed=7)
    create_archive(tmp_path / "b.aca", b)
    entry = list_archive(tmp_path / "b.aca")[1]
    with open(tmp_path / "b.aca", "rb") as fh:
        stored = fmt.read_stored_entry(fh, entry.header_offset, (tmp_path / "b.aca").stat().st_size, "b")
    wrong = a[0][1][: 60]
    with pytest.raises(FormatError, match="no dictionary"):
        checked_member(stored, [wrong, b""], "b")


def test_salvage_names_every_skipped_member_and_fails(tmp_path, capsys):
    from adaptive_codec.cli.app import main

    members = archive_members(3)
    path = tmp_path / "d.aca"
    create_archive(path, members + [("plain.bin", b"plain bytes", {})])
    data = bytearray(path.read_bytes())
    data[13] ^= 0xFF  # two bytes of the dictionary: beyond a one-byte repair
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(SalvageIncomplete) as info:
        extract_archive(path, tmp_path / "out", salvage=True)
    assert "plain.bin" in [p.name for p in info.value.written]
    lost = " ".join(info.value.skipped)
    assert all(name in lost for name, _, _ in members)
    for written in info.value.written:  # what was written is right
        assert written.read_bytes() == dict((n, d) for n, d, _ in members + [("plain.bin", b"plain bytes", {})]) \
            [written.relative_to((tmp_path / "out").resolve()).as_posix()]
    assert main(["archive", "extract", str(path), "--acx", "--salvage", "--to", str(tmp_path / "cli")]) == 1
    err = capsys.readouterr().err
    assert err.count("skipped:") >= 3 and "error:" in err


def test_salvage_repairs_one_damaged_dictionary_byte():
    record = b"ACAD\x05hello"
    stored = fmt.crc32(record)
    damaged = b"ACAD\x05hexlo"
    assert repair_one_byte(damaged, stored) == record
    assert repair_one_byte(b"ACAD\x05hXxlo", stored) is None  # two bytes: not repaired


def test_salvage_of_an_intact_archive_reports_nothing(tmp_path):
    members = archive_members(3)
    create_archive(tmp_path / "a.aca", members)
    written = extract_archive(tmp_path / "a.aca", tmp_path / "out", salvage=True)
    assert len(written) == 3


# --------------------------------------------------------------------------- writers

_APPENDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from adaptive_codec.container.aca import ArchiveBusyError, append_to_archive
    path, tag, go, hold = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), float(sys.argv[4])
    while not go.exists():
        time.sleep(0.001)
    def members():
        yield (f"{tag}/one.acx", tag.encode() * 1000, {"duration_s": 1.0})
        time.sleep(hold)  # the other writer starts meanwhile
        yield (f"{tag}/two.acx", b"2", {})
    try:
        append_to_archive(path, members())
    except ArchiveBusyError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    """
)


def run_appenders(path: Path, go: Path, hold: float) -> list[int]:
    """Two processes appending to ``path`` at once; their exit codes (0 ok, 3 refused as busy)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), tag, str(go), str(hold)], env=env,
                              stderr=subprocess.PIPE, text=True) for tag in ("p", "q")]
    time.sleep(0.3)
    go.write_text("go")
    codes = []
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 3), err
        if proc.returncode == 3:
            assert "being written by another process" in err
        codes.append(proc.returncode)
    return codes


def lost_members(path: Path, codes: list[int]) -> list[str]:
    names = {e.name for e in list_archive(path)}
    want = [f"{tag}/{n}.acx" for tag, code in zip("pq", codes) if code == 0 for n in ("one", "two")]
    return [n for n in want if n not in names]


@pytest.mark.parametrize("hold", [0.0, 0.5])
def test_two_concurrent_appends_never_lose_members(tmp_path, hold):
    path = tmp_path / "c.aca"
    create_archive(path, archive_members(1))
    codes = run_appenders(path, tmp_path / "go", hold)
    assert lost_members(path, codes) == []
    assert 0 in codes and verify_archive(path).ok
    if hold:
        assert sorted(codes) == [0, 3]  # overlapping for sure: one is refused, clearly


def test_create_refuses_a_name_taken_while_writing(tmp_path):
    path = tmp_path / "x.aca"
    with pytest.raises(ArchiveExistsError, match="another process"):
        with archive_writer(path, replace=False) as (fh, _):
            fh.write(b"mine")
            create_archive(path, archive_members(1), overwrite=False)
    assert list_archive(path)  # the other archive is intact, not replaced
    assert [p.name for p in tmp_path.iterdir()] == ["x.aca"]  # no temp file left
    with pytest.raises(ArchiveExistsError):
        create_archive(path, [], overwrite=False)


def test_a_writer_holding_the_lock_refuses_the_next(tmp_path):
    path = tmp_path / "l.aca"
    create_archive(path, archive_members(1))
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        with archive_writer(path, replace=True, must_exist=True):
            with pytest.raises(ArchiveBusyError, match="being written by another process"):
                append_to_archive(path, [("x.acx", b"x", {})])
            with pytest.raises(ArchiveBusyError):
                create_archive(path, [], overwrite=True)
            raise KeyboardInterrupt  # the holder gives up: nothing is published
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["l.aca"]
    append_to_archive(path, [("x.acx", b"x", {})])  # the lock is free again
    assert read_member(path, "x.acx") == b"x"


def test_leftover_temp_file_is_reported_and_salvageable(tmp_path):
    path = tmp_path / "k.aca"
    create_archive(path, archive_members(1))
    members = archive_members(2, seed=3)
    with pytest.raises(KeyboardInterrupt):
        with archive_writer(path, replace=True) as (fh, _):
            create_head = fmt.preamble() + fmt.dictionary_record(b"")
            fh.write(create_head)
            record, _ = fmt.entry_record("late.acx", members[0][1])
            fh.write(record)
            fh.flush()
            tmp = next(p for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
            report = verify_archive(path)
            assert report.ok and "being written" in report.leftovers[0]
            keep = tmp.read_bytes()
            raise KeyboardInterrupt
    tmp.write_bytes(keep)  # as a killed writer leaves it
    report = verify_archive(path)
    assert report.ok and "interrupted write" in report.leftovers[0] and tmp.name in report.leftovers[0]
    written = extract_archive(tmp, tmp_path / "out", salvage=True)
    assert [p.read_bytes() for p in written] == [members[0][1]]


# --------------------------------------------------------------------------- names and extraction


@pytest.mark.parametrize("name", ["a\u0085b.acx", "gpj\u202e.acx", "x\u2066y.acx", "a\x9bb.acx", "a\u2028b"])
def test_control_and_bidi_characters_are_refused(name, tmp_path):
    with pytest.raises(FormatError, match="U\\+"):
        normalize_member_name(name)
    with pytest.raises(FormatError):
        create_archive(tmp_path / "n.aca", [(name, b"1", {})])
    crafted = crafted_archive(tmp_path / "c.aca", [(name, b"1", {})])
    with pytest.raises(FormatError):
        list_archive(crafted)
    assert not verify_archive(crafted).ok
    with pytest.raises(FormatError):
        extract_archive(crafted, tmp_path / "out", salvage=True)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_component_length_limit_after_the_wav_mapping():
    assert normalize_member_name("a" * 251 + ".acx")  # 255 bytes
    for bad in ["a" * 252 + ".acx", "d/" + "b" * 252 + ".au", "c" * 252, "é" * 128 + ".acx"]:
        with pytest.raises(FormatError, match="255"):
            normalize_member_name(bad)
    assert wav_name("a/k.acx") == "a/k.wav" and wav_name("noext") == "noext.wav" and wav_name(".h") == ".h.wav"


def test_long_input_name_is_refused_before_encoding(tmp_path):
    from adaptive_codec.archive.members import expand_inputs
    from adaptive_codec.errors import AdaptiveCodecError

    long = tmp_path / ("n" * 252 + ".au")
    long.write_bytes(b"")
    with pytest.raises(AdaptiveCodecError, match="255"):
        expand_inputs([long], recursive=False)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AdaptiveCodecError, match="not a regular file"):
        expand_inputs([fifo], recursive=False)


@pytest.mark.parametrize("names", [["k.acx", "k.bin"], ["x.acx", "x.acx/y.acx"], ["d/x.wav", "d/x.acx"]])
def test_names_that_cannot_be_extracted_together(names, tmp_path):
    with pytest.raises(FormatError, match="both extract to|also a folder"):
        create_archive(tmp_path / "w.aca", [(n, b"1", {}) for n in names])
    assert not (tmp_path / "w.aca").exists()
    crafted = crafted_archive(tmp_path / "c.aca", [(n, b"1", {}) for n in names])
    assert not verify_archive(crafted).ok
    for kwargs in ({}, {"salvage": True}, {"decode": lambda data, out: Path(out).write_bytes(data)}):
        with pytest.raises(FormatError):
            extract_archive(crafted, tmp_path / "out", force=True, **kwargs)
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


def test_wav_mode_checks_every_target_before_the_first_write(tmp_path):
    path = tmp_path / "w.aca"
    create_archive(path, [("a.acx", b"1", {}), ("b.acx", b"2", {})])
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.wav").write_bytes(b"mine")
    decode = lambda data, target: Path(target).write_bytes(data * 2)  # noqa: E731
    with pytest.raises(ExtractError, match="already exists .use --force"):
        extract_archive(path, out, decode=decode)
    assert sorted(p.name for p in out.iterdir()) == ["b.wav"]  # a.wav not written
    extract_archive(path, out, decode=decode, force=True)
    assert (out / "a.wav").read_bytes() == b"11" and (out / "b.wav").read_bytes() == b"22"


def test_a_symlink_swapped_in_after_the_checks_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    with TargetFolder(out) as folder:
        folder.check("d/x.acx", force=False)
        (out / "d").rmdir()
        os.symlink(outside, out / "d")  # the race: another process swaps the folder for a link
        with pytest.raises(ExtractError, match="symbolic link"):
            folder.write("d/x.acx", write_bytes(b"x"))
        os.symlink(outside / "t", out / "f.acx")  # a planted file link is replaced, not followed
        folder.write("f.acx", write_bytes(b"y"))
    assert not list(outside.iterdir())
    assert (out / "f.acx").read_bytes() == b"y" and not (out / "f.acx").is_symlink()


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("meta", ['{"class_mix":{"speech":1e400}}', '{"class_mix":{"speech":-0.5}}',
                                  '{"class_mix":{"a":0.9,"b":0.9}}', '{"flac_size_bytes":-3}',
                                  '{"class_mix":{"speech":true}}', '{"x":[1e999]}'])
def test_bad_metadata_values_are_refused_by_list_verify_and_append(meta, tmp_path):
    path = crafted_archive(tmp_path / "m.aca", [("a.acx", b"1", {})], raw_meta={"a.acx": meta})
    with pytest.raises(FormatError, match="'a.acx'"):
        list_archive(path)
    assert not verify_archive(path).ok
    with pytest.raises(FormatError):
        append_to_archive(path, [("b.acx", b"2", {})])
    with pytest.raises(FormatError):
        create_archive(tmp_path / "w.aca", [("a.acx", b"1", {"class_mix": {"speech": -1.0}})])
    assert read_member(crafted_archive(tmp_path / "ok.aca", [("a.acx", b"1", {})]), "a.acx") == b"1"


# --------------------------------------------------------------------------- command line


class _FakeCodec:
    """Stands in for the codec: 'bad' members fail to decode, as a non-finite output does."""

    calls: list[str] = []

    def decode_to(self, data: bytes, out) -> None:
        from adaptive_codec.errors import AudioError

        _FakeCodec.calls.append(str(out))
        if data.startswith(b"bad"):
            raise AudioError(f"{out}: audio contains NaN or infinite samples")
        Path(out).write_bytes(data)


def test_verify_decode_runs_what_extract_runs_and_names_every_failure(tmp_path, capsys, monkeypatch):
    from adaptive_codec.cli import archive as cli_archive
    from adaptive_codec.cli.app import main

    monkeypatch.setattr(cli_archive, "load_codec", lambda threads=1: _FakeCodec())
    path = tmp_path / "v.aca"
    create_archive(path, [("a.acx", b"good", {}), ("b.acx", b"bad 1", {}), ("c.acx", b"bad 2", {})])
    assert main(["archive", "verify", str(path), "--decode"]) == 1
    err = capsys.readouterr().err
    assert "problem: b.acx:" in err and "problem: c.acx:" in err and "internal error" not in err
    assert main(["archive", "extract", str(path), "--to", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "member 'b.acx'" in err[0] and str(tmp_path / "out" / "b.wav") in err[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav"]  # whole files only


def test_cli_one_line_errors_for_writers(tmp_path, capsys):
    from adaptive_codec.cli.app import main

    path = tmp_path / "a.aca"
    create_archive(path, archive_members(1))
    with archive_writer(path, replace=True, must_exist=True):
        for args in (["append", str(path), str(tmp_path / "missing.wav")],):
            assert main(["archive", *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    assert main(["archive", "create", str(tmp_path / "n.aca"), str(fifo)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {fifo}: not a regular file"]
    assert not (tmp_path / "n.aca").exists()


_CREATOR = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from adaptive_codec.container.aca import ArchiveExistsError, create_archive
    path, tag = Path(sys.argv[1]), sys.argv[2]
    def members():
        yield (f"{tag}.acx", tag.encode(), {})
        time.sleep(0.5)  # both are writing now, both checked that the name was free
    try:
        create_archive(path, members(), overwrite=False)
    except ArchiveExistsError as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)
    """
)


def test_two_processes_creating_one_archive_without_force(tmp_path):
    path = tmp_path / "x.aca"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", _CREATOR, str(path), tag], env=env, stderr=subprocess.PIPE,
                              text=True) for tag in ("p", "q")]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 3], results
    winner = "pq"[[code for code, _ in results].index(0)]
    assert [e.name for e in list_archive(path)] == [f"{winner}.acx"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.aca"]
