"""Issue 35's archive cases, measured: outcome, wall time and peak RSS above baseline per case.

Each case runs in a fresh process (``--child``) on files this script builds
from docs/FORMAT.md section 3 (small, crafted with the format's own
primitives); the child measures its resident memory just before the case
(the baseline: interpreter and package loaded) and its peak after it
(``VmHWM``), so the number is what the case itself costs. Targets: every case
refused cleanly or handled without loss, each <= 2 s and <= 200 MB above
baseline. Then ``--trials`` runs of two processes appending to one archive
at once, counting members lost (a writer that exits 0 but whose members are
missing) and writers refused as busy.

Usage (from the repository root, the package installed)::

    python benchmarks/archive_safety.py               # every case + 100 concurrent-append trials (~1-2 min)
    python benchmarks/archive_safety.py --trials 10   # quicker look
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from adaptive_codec.container import aca_format as fmt
from adaptive_codec.container.aca import (
    append_to_archive,
    create_archive,
    extract_archive,
    list_archive,
    verify_archive,
)
from adaptive_codec.container.acx import AcxChunk, AcxHeader, AcxStream, ProfileEntry, SegmentEntry, to_bytes
from adaptive_codec.errors import AdaptiveCodecError


def acx_member(seed: int, n_frames: int = 20) -> bytes:
    """A small ``.acx`` stream that parses with every CRC (its chunks hold filler, not decodable codes:
    the container is what is measured)."""
    header = AcxHeader(original_sample_rate_hz=24000, channels=1, length_samples=n_frames * 320,
                       internal_sample_rate_hz=24000, hop_samples=320, n_frames=n_frames, codebook_size=1024,
                       max_levels=8, weights_version="0.dev1", weights_sha256_prefix=f"{seed:016x}",
                       entropy_digest_prefix="0" * 16, profiles=[ProfileEntry.builtin("speech", 0)],
                       segments=[SegmentEntry(0, n_frames, 0, 0, "speech", 1.0, channel=0)],
                       stereo_mode="mono", chunk_frames=16)
    chunks = [AcxChunk(0, start, min(16, n_frames - start), bytes([seed % 256]) * 8) for start in range(0, n_frames, 16)]
    return to_bytes(AcxStream.from_header(header, chunks))


def crafted(path: Path, members: list[tuple[str, bytes]], meta: str = '{"class_mix":{}}') -> Path:
    """An archive with every CRC right, bypassing the writer's checks of names and metadata."""
    buf = io.BytesIO()
    buf.write(fmt.preamble() + fmt.dictionary_record(b""))
    entries = []
    for name, data in members:
        record, crc = fmt.entry_record(name, data)
        entries.append({"name": name, "data_length_bytes": len(data), "entry_length_bytes": len(record),
                        "entry_crc32": crc, "original_size_bytes": 0, "duration_us": 0, "metadata_json": meta})
        buf.write(record)
    fmt.write_tail(buf, entries, buf.tell())
    path.write_bytes(buf.getvalue())
    return path


def build(d: Path) -> None:
    """Write every case's input under ``d``."""
    a = [(f"a/{i}.acx", acx_member(i), {"duration_s": 1.0}) for i in range(3)]
    b = [(f"b/{i}.acx", acx_member(10 + i), {"duration_s": 1.0}) for i in range(3)]
    create_archive(d / "A.aca", a)
    create_archive(d / "B.aca", b)
    (d / "cat.aca").write_bytes((d / "A.aca").read_bytes() + (d / "B.aca").read_bytes())
    good = (d / "A.aca").read_bytes()
    one = bytearray(good)
    one[14] ^= 0x40
    (d / "dict1.aca").write_bytes(bytes(one))
    two = bytearray(good)
    two[14] ^= 0x40
    two[30] ^= 0x01
    (d / "dict2.aca").write_bytes(bytes(two))
    (d / "flood_entries.aca").write_bytes(b"ACAE" * (1 << 20))
    (d / "flood_dicts.aca").write_bytes(b"ACA1\x02\x00\x00\x00" + b"ACAD" * (1 << 20))
    crafted(d / "wav_collision.aca", [("k.acx", b"1"), ("k.bin", b"2")])
    crafted(d / "file_dir.aca", [("x.acx", b"1"), ("x.acx/y.acx", b"2")])
    crafted(d / "long_name.aca", [("n" * 252 + ".acx", b"1")])
    crafted(d / "c1_name.aca", [("a\u0085b.acx", b"1")])
    crafted(d / "bidi_name.aca", [("gpj\u202e.acx", b"1")])
    crafted(d / "meta_inf.aca", [("a.acx", b"1")], '{"class_mix":{"speech":1e400}}')
    crafted(d / "meta_neg.aca", [("a.acx", b"1")], '{"class_mix":{"speech":-0.5}}')
    create_archive(d / "exists.aca", [("p.acx", b"1", {}), ("q.acx", b"2", {})])
    (d / "exists_out").mkdir()
    (d / "exists_out" / "q.acx").write_bytes(b"mine")
    create_archive(d / "left.aca", a[:1])
    tmp = d / ".left.aca.0123abcd.tmp"  # what a writer killed half-way leaves
    record, _ = fmt.entry_record("late.acx", acx_member(99))
    tmp.write_bytes(fmt.preamble() + fmt.dictionary_record(b"") + record)


def _expect_error(func, *args, **kwargs) -> str:
    try:
        func(*args, **kwargs)
    except AdaptiveCodecError as exc:
        return "refused: " + " ".join(str(exc).split())[:110]
    raise AssertionError("accepted a case that must be refused")


def _salvage(path: Path, out: Path) -> str:
    try:
        written = extract_archive(path, out, salvage=True)
        return f"recovered {len(written)}, skipped 0"
    except AdaptiveCodecError as exc:
        written = getattr(exc, "written", [])
        skipped = getattr(exc, "skipped", [])
        return f"recovered {len(written)}, skipped {len(skipped)} (exit 1): " + " ".join(str(exc).split())[:80]


def case_salvage_cat(d: Path) -> str:
    out = _salvage(d / "cat.aca", d / "o_cat")
    names = sorted(p.relative_to(d / "o_cat").as_posix() for p in (d / "o_cat").rglob("*.acx"))
    exact = all((d / "o_cat" / n).read_bytes() == acx_member(int(n[2]) + (10 if n[0] == "b" else 0)) for n in names)
    return out + f"; byte-exact: {exact}"


CASES = {
    "salvage: cat A.aca B.aca": case_salvage_cat,
    "salvage: 1 dictionary byte flipped": lambda d: _salvage(d / "dict1.aca", d / "o_d1"),
    "salvage: 2 dictionary bytes flipped": lambda d: _salvage(d / "dict2.aca", d / "o_d2"),
    "salvage: 4 MiB of entry signatures": lambda d: _salvage(d / "flood_entries.aca", d / "o_fe"),
    "salvage: 4 MiB of dictionary signatures": lambda d: _salvage(d / "flood_dicts.aca", d / "o_fd"),
    "extract: k.acx + k.bin (same .wav)": lambda d: _expect_error(
        extract_archive, d / "wav_collision.aca", d / "o_wc", decode=lambda data, out: Path(out).write_bytes(data)),
    "extract: x.acx + x.acx/y.acx": lambda d: _expect_error(extract_archive, d / "file_dir.aca", d / "o_fd2"),
    "list: 256-byte member name": lambda d: _expect_error(list_archive, d / "long_name.aca"),
    "list: U+0085 in a name": lambda d: _expect_error(list_archive, d / "c1_name.aca"),
    "list: U+202E in a name": lambda d: _expect_error(list_archive, d / "bidi_name.aca"),
    "list: class share 1e400": lambda d: _expect_error(list_archive, d / "meta_inf.aca"),
    "append: class share -0.5": lambda d: _expect_error(append_to_archive, d / "meta_neg.aca", [("z.acx", b"z", {})]),
    "extract: one target exists": lambda d: _expect_error(extract_archive, d / "exists.aca", d / "exists_out")
    + f"; p.acx written: {(d / 'exists_out' / 'p.acx').exists()}",
    "verify: left-over temp file": lambda d: "; ".join(verify_archive(d / "left.aca").leftovers)[-60:],
    "salvage: the left-over temp file": lambda d: _salvage(d / ".left.aca.0123abcd.tmp", d / "o_left"),
}


def _vm(field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(case: str, d: Path) -> None:
    base = _vm("VmRSS")
    start = time.perf_counter()
    outcome = CASES[case](d)
    wall = time.perf_counter() - start
    print(json.dumps({"outcome": outcome, "wall_s": wall, "peak_above_base_mb": (_vm("VmHWM") - base) / 1024}))


_APPENDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from adaptive_codec.container.aca import ArchiveBusyError, append_to_archive
    path, tag, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    while not go.exists():
        time.sleep(0.0005)
    try:
        append_to_archive(path, [(f"{tag}/{i}.acx", tag.encode() * 5000, {}) for i in range(3)])
    except ArchiveBusyError:
        sys.exit(3)
    """
)


def concurrent_trials(trials: int) -> tuple[int, int, int]:
    """``(trials, members lost, writers refused as busy)`` for two processes appending at once."""
    lost = busy = 0
    env = dict(os.environ)
    for t in range(trials):
        with tempfile.TemporaryDirectory() as tmp:
            path, go = Path(tmp) / "c.aca", Path(tmp) / "go"
            create_archive(path, [("base.acx", b"0", {})])
            procs = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(path), tag, str(go)], env=env)
                     for tag in ("p", "q")]
            time.sleep(0.4)
            go.write_text("go")
            codes = [p.wait(timeout=120) for p in procs]
            names = {e.name for e in list_archive(path)}
            for tag, code in zip("pq", codes):
                if code == 0:
                    lost += sum(f"{tag}/{i}.acx" not in names for i in range(3))
                elif code == 3:
                    busy += 1
                else:
                    raise SystemExit(f"error: an appender failed with exit status {code}")
            lost += "base.acx" not in names
    return trials, lost, busy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="concurrent-append trials (default 100)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return 0
    if args.trials < 0:
        print("error: --trials must be >= 0", file=sys.stderr)
        return 2
    print(f"{'case':42s} {'wall s':>7s} {'MB':>6s}  outcome")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        build(d)
        for case in CASES:
            run = subprocess.run([sys.executable, __file__, "--child", case, str(d)], capture_output=True, text=True)
            if run.returncode:
                print(f"{case:42s} FAILED: {run.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(run.stdout)
            print(f"{case:42s} {r['wall_s']:7.3f} {r['peak_above_base_mb']:6.1f}  {r['outcome']}")
    if args.trials:
        start = time.perf_counter()
        trials, lost, busy = concurrent_trials(args.trials)
        print(f"concurrent appends: {trials} trials of 2 writers, {lost} members lost, {busy} writers refused "
              f"as busy ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
