"""CLI commands of archives: ``archive create | append | list | info | extract | verify``.

Registered on the main app by :mod:`adaptive_codec.cli.app`. Encoding goes
through the archive back ends (:mod:`adaptive_codec.archive.local`,
:mod:`adaptive_codec.archive.dask_backend`), which all encode a member with
:func:`adaptive_codec.archive.members.encode_member`.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptive_codec.archive.local import encode_members
from adaptive_codec.archive.members import expand_inputs, probe_inputs
from adaptive_codec.container.aca import (
    SalvageIncomplete,
    append_to_archive,
    create_archive,
    extract_archive,
    list_archive,
    read_member,
    verify_archive,
)
from adaptive_codec.container.acx import read_header
from adaptive_codec.cli.common import BitrateScaleOpt, ForceOpt, ThreadsOpt, check_output, cli_state, fail, handle_errors, load_codec
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.planning.rate import Rate
from adaptive_codec.planning.rate_control import rate_summary

__all__ = ["archive_app", "register"]

archive_app = typer.Typer(help="Archives of many files (.aca): create, append, list, extract, verify.",
                          no_args_is_help=True)


SchedulerOpt = Annotated[Optional[str], typer.Option(
    "--scheduler", metavar="local|ADDRESS",
    help="Encode on Dask: 'local' starts a LocalCluster, an address (tcp://host:8786) uses a "
         "running cluster. Failing files are reported and skipped (exit 1).")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", min=1, help="Workers of the local Dask cluster (implies --scheduler local).")]


def _encoded_members(files: list[tuple[Path, str]], profile: str, rate: Rate, jobs: int, threads: int,
                     scheduler: str | None = None, workers: int | None = None,
                     failures: list | None = None) -> Iterator[tuple[str, bytes, dict]]:
    """Members in input order from the chosen back end: this process, a process pool, or Dask.

    With ``scheduler`` or ``workers`` the Dask back end runs; files it cannot
    encode are skipped and appended to ``failures``.
    """
    dirs = [str(d) for d in cli_state().profiles_dirs]
    if scheduler is None and workers is None:
        yield from encode_members(files, profile, rate, dirs, jobs=jobs, threads=threads)
        return
    from adaptive_codec.archive.dask_backend import DaskArchiveEncoder, dask_client  # dask: only when asked

    with dask_client(scheduler or "local", workers) as client:
        encoder = DaskArchiveEncoder(client, files, profile, rate, dirs)
        yield from encoder.members()
    if failures is not None:
        failures.extend(encoder.failures)


def _report_entries(entries, header: bool = True) -> None:
    if header:
        typer.echo(f"{'MEMBER':32s} {'DURATION':>9s} {'SIZE':>9s} {'KBPS':>6s} {'RATIO':>6s}  CLASS MIX")
    for e in entries:
        ratio = e.original_size_bytes / e.size_bytes if e.size_bytes else 0.0
        mix = ", ".join(f"{k} {v:.0%}" for k, v in sorted(e.class_mix.items(), key=lambda kv: -kv[1]))
        typer.echo(f"{e.name:32s} {e.duration_s:8.1f}s {e.size_bytes:9d} {e.bitrate_kbps:6.2f} "
                   f"{ratio:5.1f}x  {mix}")


@archive_app.command("create")
@handle_errors
def archive_create(
    output: Annotated[Path, typer.Argument(metavar="OUT.aca", help="Archive to write (atomically).")],
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUTS...", help="Audio files or folders.")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Walk folders.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Parallel encoder processes.")] = 1,
    profile: Annotated[str, typer.Option("--profile", "-p", help="auto, a profile name or .toml.")] = "auto",
    bitrate: Annotated[Optional[float], typer.Option(
        "--bitrate", metavar="KBPS", help="Every profile's bitrate: the whole stream's kbps (headers and all channels), up to 1000.")] = None,
    bitrate_scale: BitrateScaleOpt = None,
    force: ForceOpt = False,
    threads: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Encode files into a new .aca archive; print routing, sizes and ratios."""
    check_output(output, force)
    rate = Rate(bitrate, bitrate_scale)  # a bad value fails before any file is read
    files = expand_inputs(inputs, recursive)
    if scheduler is None and workers is None:
        probe_inputs(files)  # a bad input fails before the model loads (Dask reports and skips it)
    failures: list = []
    entries = create_archive(output, _encoded_members(files, profile, rate, jobs, threads,
                                                      scheduler, workers, failures), overwrite=force)
    _summarise(output, entries)
    _report_failures(failures)


def _report_failures(failures: list) -> None:
    """List the files the Dask back end skipped; exit 1 if there were any."""
    for f in failures:
        typer.echo(f"failed: {f.path}: {f.message}", err=True)
    if failures:
        fail(f"{len(failures)} file(s) failed and were skipped: "
             + ", ".join(str(f.path) for f in failures))


def _summarise(output: Path, entries) -> None:
    _report_entries(entries)
    for e in entries:
        header = read_header(read_member(output, e.name))  # routing is in each member's header
        if header.asked_bps:
            typer.echo(f"  {e.name}: {rate_summary(header.asked_bps, e.bitrate_kbps * 1000, header.rate_limit)}")
        # Rate control cuts rows where the depth changes: report the routing, runs of one label and profile.
        runs: list[list] = []
        for s in header.segments_for_channel(0):
            if runs and (runs[-1][2], runs[-1][3]) == (s.label, s.profile_index):
                runs[-1][1] = s.end_frame
            else:
                runs.append([s.start_frame, s.end_frame, s.label, s.profile_index])
        for a, b, label, profile_index in runs:
            typer.echo(f"  {e.name}: {a / header.frame_rate_hz:7.2f}-{b / header.frame_rate_hz:7.2f} s  "
                       f"{label:9s} -> {header.profiles[profile_index].name}")
    orig = sum(e.original_size_bytes for e in entries)
    size = output.stat().st_size
    dur = sum(e.duration_s for e in entries)
    typer.echo(f"{output}: {len(entries)} members, {size} bytes ({size * 8 / max(dur, 1e-9) / 1000:.2f} kbps "
               f"over {dur:.1f} s); inputs {orig} bytes, ratio {orig / max(size, 1):.1f}x")
    flac = [e.metadata.get("flac_size_bytes") for e in entries]
    if all(isinstance(f, int) for f in flac):
        typer.echo(f"  vs FLAC 16-bit of the same audio: {sum(flac)} bytes, ratio "
                   f"{sum(flac) / max(size, 1):.1f}x")


@archive_app.command("append")
@handle_errors
def archive_append(
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE.aca")],
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUTS...")],
    recursive: Annotated[bool, typer.Option("--recursive", "-r")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1)] = 1,
    profile: Annotated[str, typer.Option("--profile", "-p")] = "auto",
    bitrate: Annotated[Optional[float], typer.Option(
        "--bitrate", metavar="KBPS", help="Every profile's bitrate: the whole stream's kbps (headers and all channels), up to 1000.")] = None,
    bitrate_scale: BitrateScaleOpt = None,
    threads: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Encode more files into an existing archive (replaced atomically)."""
    rate = Rate(bitrate, bitrate_scale)  # a bad value fails before any file is read
    existing = {e.name for e in list_archive(archive)}
    files = expand_inputs(inputs, recursive)
    if scheduler is None and workers is None:
        probe_inputs(files)  # a bad input fails before the model loads (Dask reports and skips it)
    clash = [n for _, n in files if n in existing]
    if clash:
        fail(f"{archive} already has a member {clash[0]!r}")
    failures: list = []
    entries = append_to_archive(archive, _encoded_members(files, profile, rate, jobs, threads,
                                                          scheduler, workers, failures))
    _summarise(archive, entries)
    _report_failures(failures)


@archive_app.command("list")
@handle_errors
def archive_list(archive: Annotated[Path, typer.Argument(metavar="ARCHIVE.aca")]) -> None:
    """List members: path, duration, size, kbps, ratio to the original, class mix."""

    _report_entries(list_archive(archive))


@archive_app.command("info")
@handle_errors
def archive_info(archive: Annotated[Path, typer.Argument(metavar="ARCHIVE.aca")]) -> None:
    """Totals of an archive: members, duration, size, kbps, compression ratio."""

    entries = list_archive(archive)
    orig = sum(e.original_size_bytes for e in entries)
    dur = sum(e.duration_s for e in entries)
    size = archive.stat().st_size
    typer.echo(f"{archive}: {len(entries)} members, {dur:.1f} s, {size} bytes, "
               f"{size * 8 / max(dur, 1e-9) / 1000:.2f} kbps, ratio {orig / max(size, 1):.1f}x")


@archive_app.command("extract")
@handle_errors
def archive_extract(
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE.aca")],
    members: Annotated[Optional[list[str]], typer.Argument(metavar="[MEMBER...]")] = None,
    to: Annotated[Path, typer.Option("--to", help="Target folder.")] = Path("."),
    acx: Annotated[bool, typer.Option("--acx", help="Write the coded .acx streams, not audio.")] = False,
    salvage: Annotated[bool, typer.Option("--salvage", help="Recover intact members of a damaged archive.")] = False,
    force: ForceOpt = False,
    threads: ThreadsOpt = 1,
) -> None:
    """Extract members as decoded .wav (default) or as .acx streams; never outside --to.

    Every target is checked before the first file is written. With
    --salvage, only members proven intact are written; every skipped member
    is named and the exit status is 1.
    """
    # decode(data, out): what extract runs per member (the same function verify --decode runs).
    decode = None if acx else functools.partial(decode_member, load_codec(threads))

    try:
        written = extract_archive(archive, to, members, force=force, salvage=salvage, decode=decode)
    except SalvageIncomplete as exc:
        for path in exc.written:
            typer.echo(str(path))
        for line in exc.skipped:
            typer.echo(f"skipped: {line}", err=True)
        fail(f"{archive}: salvage recovered {len(exc.written)} member(s), skipped {len(exc.skipped)} "
             "damaged part(s) (listed above)")
    for path in written:
        typer.echo(str(path))


def decode_member(codec, data: bytes, out: str | Path) -> None:
    """What ``extract`` does with a member: decode it into the audio file ``out`` (``verify --decode`` too)."""
    codec.decode_to(data, out)


@archive_app.command("verify")
@handle_errors
def archive_verify(
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE.aca")],
    decode: Annotated[bool, typer.Option("--decode", help="Also decode every member, as extract does.")] = False,
    threads: ThreadsOpt = 1,
) -> None:
    """Check every CRC and name (and with --decode run extract's decoding); exit 1 on any problem."""

    report = verify_archive(archive, check_members=True)
    for line in report.leftovers:
        typer.echo(f"warning: {line}", err=True)
    problems = list(report.problems)
    if decode and report.entries_checked:
        codec = load_codec(threads)
        failed = {p.split(":", 1)[0] for p in problems}
        with tempfile.TemporaryDirectory() as tmp:
            scratch = Path(tmp) / "member.wav"
            for e in list_archive(archive):
                if e.name in failed:
                    continue
                try:
                    decode_member(codec, read_member(archive, e.name), scratch)
                except AdaptiveCodecError as exc:
                    problems.append(f"{e.name}: {str(exc).replace(str(scratch), 'decoded audio')}")
                except Exception as exc:  # noqa: BLE001 - a verifier reports every member it would fail on
                    problems.append(f"{e.name}: decoding fails ({type(exc).__name__}: {exc})")
                finally:
                    scratch.unlink(missing_ok=True)
    if problems:
        for p in problems:
            typer.echo(f"problem: {p}", err=True)
        fail(f"{archive}: {len(problems)} problem(s) found")
    typer.echo(f"{archive}: ok ({report.entries_checked} members, {report.bytes_checked} bytes checked"
               + (", all decoded)" if decode else ")"))


def register(app: typer.Typer) -> None:
    """Add the ``archive`` command group to the main CLI app."""
    app.add_typer(archive_app, name="archive")
