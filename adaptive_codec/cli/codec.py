"""CLI commands of the codec itself: ``encode``, ``decode``, ``info`` and ``archive …``.

Registered on the main app by :mod:`adaptive_codec.cli.app`; they use its error
handling (one-line errors, exit 1) and shared profile registry.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptive_codec.cli.app import cli_state, fail, handle_errors
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.planning.rate import Rate, check_bitrate

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au"}


def _codec(threads: int):
    import torch

    from adaptive_codec.codec import AdaptiveCodec

    torch.set_num_threads(max(1, threads))
    return AdaptiveCodec.default(profiles_dirs=cli_state().profiles_dirs)


def _check_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite)")
    if not path.parent.exists():
        fail(f"{path.parent}: output folder does not exist")


ThreadsOpt = Annotated[int, typer.Option("--threads", min=1, help="CPU threads for the codec.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]
BitrateScaleOpt = Annotated[Optional[float], typer.Option(
    "--bitrate-scale", metavar="X",
    help="Multiply each profile's own bitrate by X (keeps the profiles' allocation; not with --bitrate).")]


def encode(
    input: Annotated[Path, typer.Argument(metavar="IN", help="Audio file (wav, flac, ogg, opus, mp3 …).")],
    output: Annotated[Optional[Path], typer.Argument(
        metavar="OUT.acx", help="Output stream (default: IN with suffix .acx).")] = None,
    profile: Annotated[str, typer.Option(
        "--profile", "-p", help="auto (classify and route), a profile name, or a profile .toml.")] = "auto",
    bitrate: Annotated[Optional[float], typer.Option(
        "--bitrate", metavar="KBPS", help="Override every profile's bitrate (nominal kbps).")] = None,
    bitrate_scale: BitrateScaleOpt = None,
    force: ForceOpt = False,
    threads: ThreadsOpt = 1,
) -> None:
    """Encode an audio file into an .acx stream (written atomically)."""
    from adaptive_codec.audio.files import audio_info

    output = output or input.with_suffix(".acx")
    _check_output(output, force)
    audio_info(input)  # a missing or unreadable input fails before the model loads
    check_bitrate(bitrate, bitrate_scale)  # so does a bad --bitrate / --bitrate-scale
    codec = _codec(threads)
    # Read block by block: memory stays bounded whatever the file's length.
    plan, info = codec.encode_file(output, input, profile=profile, bitrate_kbps=bitrate,
                                   bitrate_scale=bitrate_scale)
    size = output.stat().st_size
    kbps = size * 8 / info.duration_s / 1000
    typer.echo(f"{input} -> {output}: {size} bytes, {kbps:.2f} kbps over {info.duration_s:.2f} s "
               f"({info.channels} ch, {info.sample_rate_hz} Hz)")
    for seg in plan:
        a, b = seg.start_frame / codec.frame_rate_hz, seg.end_frame / codec.frame_rate_hz
        typer.echo(f"  {a:8.2f}-{b:8.2f} s  {seg.label:10s} -> {seg.profile.name:10s} n_q {seg.n_q}")


def decode(
    input: Annotated[Path, typer.Argument(metavar="IN.acx", help="Stream to decode.")],
    output: Annotated[Optional[Path], typer.Argument(
        metavar="OUT.wav", help="Output audio (default: IN with suffix .wav; .flac also works).")] = None,
    start: Annotated[Optional[float], typer.Option("--start", metavar="S", help="Decode from S seconds.")] = None,
    end: Annotated[Optional[float], typer.Option("--end", metavar="S", help="Decode up to S seconds.")] = None,
    force: ForceOpt = False,
    threads: ThreadsOpt = 1,
) -> None:
    """Decode an .acx stream to audio at its original rate, channels and length."""
    output = output or input.with_suffix(".wav")
    _check_output(output, force)
    if not input.is_file():
        fail(f"{input}: no such file")
    codec = _codec(threads)
    n, sr = codec.decode_to(input, output, start_s=start, end_s=end)  # piece by piece
    typer.echo(f"{input} -> {output}: {n} samples, {n / sr:.2f} s at {sr} Hz")


class InfoFormat(str, enum.Enum):
    table = "table"
    json = "json"


def info(
    input: Annotated[Path, typer.Argument(metavar="IN.acx", help="Stream to describe.")],
    format: Annotated[InfoFormat, typer.Option("--format", "-f", help="Output format.")] = InfoFormat.table,
) -> None:
    """Show a stream's header: profile per segment, bits per class, actual kbps."""
    from adaptive_codec.container.acx import AcxReader

    if not input.is_file():
        fail(f"{input}: no such file")
    size = input.stat().st_size
    with AcxReader(input) as reader:
        header = reader.header
        bytes_per_frame: dict[str, float] = {}
        for chunk in reader.iter_chunks():
            # Attribute each chunk's bytes to its frames' labels in proportion
            # to the levels they code (an adaptive segment's mean is its n_q):
            # a 4-level ambient frame costs about half an 8-level speech frame.
            depths, _, _ = header.frame_layout(chunk.channel, chunk.start_frame, chunk.end_frame)
            total = max(int(depths.sum()), 1)
            for seg in header.segments_for_channel(chunk.channel):
                lo, hi = max(seg.start_frame, chunk.start_frame), min(seg.end_frame, chunk.end_frame)
                if lo < hi:
                    share = len(chunk.data) * seg.n_q * (hi - lo) / total
                    bytes_per_frame[seg.label] = bytes_per_frame.get(seg.label, 0.0) + share
    duration = header.duration_s
    frame_rate = header.frame_rate_hz
    seconds: dict[str, float] = {}
    for seg in header.segments_for_channel(0):
        seconds[seg.label] = seconds.get(seg.label, 0.0) + (seg.end_frame - seg.start_frame) / frame_rate
    per_class = {
        label: {"seconds": seconds.get(label, 0.0), "payload_bytes": round(b),
                "kbps": b * 8 / max(seconds.get(label, 0.0), 1e-9) / 1000}
        for label, b in bytes_per_frame.items()
    }
    summary = {
        "file": str(input), "size_bytes": size, "duration_s": duration,
        "kbps": size * 8 / duration / 1000 if duration else 0.0,
        "original_sample_rate_hz": header.original_sample_rate_hz, "channels": header.channels,
        "length_samples": header.length_samples, "weights_id": header.weights_id,
        "stereo_mode": header.stereo_mode,
        "segments": [
            {"start_s": s.start_frame / frame_rate, "end_s": s.end_frame / frame_rate,
             "label": s.label, "profile": header.profiles[s.profile_index].name, "n_q": s.n_q,
             "adaptive_depth": s.adaptive, "confidence": s.confidence}
            for s in header.segments_for_channel(0)
        ],
        "side_n_q": ([s.n_q for s in header.segments_for_channel(1)]
                     if header.stereo_mode == "mid_side" else None),
        "per_class": per_class,
    }
    if format is InfoFormat.json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"{input}: {size} bytes, {summary['kbps']:.2f} kbps, {duration:.2f} s, "
               f"{header.channels} ch ({header.stereo_mode}) @ {header.original_sample_rate_hz} Hz, "
               f"weights {header.weights_id}")
    typer.echo("  start_s    end_s  label       profile     n_q  conf")
    for s in summary["segments"]:
        mark = "*" if s["adaptive_depth"] else " "
        typer.echo(f"  {s['start_s']:7.2f} {s['end_s']:8.2f}  {s['label']:10s}  {s['profile']:10s} "
                   f"{s['n_q']:4d}{mark} {s['confidence']:.2f}")
    if any(s["adaptive_depth"] for s in summary["segments"]):
        typer.echo("  * energy-adaptive depth: n_q is the segment's mean; each frame's depth is in the stream")
    for label, c in per_class.items():
        typer.echo(f"  {label:10s} {c['seconds']:7.2f} s  {c['payload_bytes']:8d} B  {c['kbps']:.2f} kbps")


# -- archive -------------------------------------------------------------------

archive_app = typer.Typer(help="Archives of many files (.aca): create, append, list, extract, verify.",
                          no_args_is_help=True)


def _expand_inputs(inputs: list[Path], recursive: bool) -> list[tuple[Path, str]]:
    """(file, member name) pairs; folders are walked with --recursive."""
    out: list[tuple[Path, str]] = []
    for item in inputs:
        if item.is_dir():
            if not recursive:
                raise AdaptiveCodecError(f"{item} is a folder (use --recursive)")
            for f in sorted(item.rglob("*")):
                if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES:
                    rel = f.relative_to(item.parent).as_posix()
                    out.append((f, str(Path(rel).with_suffix(".acx").as_posix())))
        elif item.exists():
            out.append((item, item.with_suffix(".acx").name))
        else:
            raise AdaptiveCodecError(f"{item}: no such file")
    if not out:
        raise AdaptiveCodecError("no audio files to archive")
    names = [n for _, n in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AdaptiveCodecError(f"two inputs map to the member name {dupes[0]!r}")
    return out


def _encode_one(path: Path, profile: str, bitrate: Rate | float | None, profiles_dirs) -> tuple[bytes, dict]:
    from adaptive_codec.archive.dask_backend import cached_codec, encode_member

    return encode_member(cached_codec(profiles_dirs), path, profile, bitrate)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


SchedulerOpt = Annotated[Optional[str], typer.Option(
    "--scheduler", metavar="local|ADDRESS",
    help="Encode on Dask: 'local' starts a LocalCluster, an address (tcp://host:8786) uses a "
         "running cluster. Failing files are reported and skipped (exit 1).")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", min=1, help="Workers of the local Dask cluster (implies --scheduler local).")]


def _encoded_members(files: list[tuple[Path, str]], profile: str, bitrate: Rate | float | None,
                     jobs: int, threads: int, scheduler: str | None = None,
                     workers: int | None = None, failures: list | None = None
                     ) -> Iterator[tuple[str, bytes, dict]]:
    """Encode in order (1 job), in a process pool or on Dask, yielding members in input order.

    With ``scheduler`` or ``workers`` the Dask back end runs; files it cannot
    encode are skipped and appended to ``failures``.
    """
    from tqdm import tqdm

    dirs = list(cli_state().profiles_dirs)
    if scheduler is not None or workers is not None:
        from adaptive_codec.archive.dask_backend import DaskArchiveEncoder, dask_client

        with dask_client(scheduler or "local", workers) as client:
            encoder = DaskArchiveEncoder(client, files, profile, bitrate, dirs)
            yield from encoder.members()
        if failures is not None:
            failures.extend(encoder.failures)
        return
    bar = tqdm(total=len(files), unit="file", desc="encode", disable=None, file=__import__("sys").stderr)
    if jobs <= 1:
        _worker_init(threads)
        for path, name in files:
            data, meta = _encode_one(path, profile, bitrate, dirs)
            bar.update(1)
            yield name, data, meta
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, initializer=_worker_init, initargs=(threads,)) as pool:
            futures = [pool.submit(_encode_one, p, profile, bitrate, dirs) for p, _ in files]
            for (path, name), fut in zip(files, futures):
                data, meta = fut.result()
                bar.update(1)
                yield name, data, meta
    bar.close()


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
        "--bitrate", metavar="KBPS", help="Override every profile's bitrate (nominal kbps).")] = None,
    bitrate_scale: BitrateScaleOpt = None,
    force: ForceOpt = False,
    threads: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Encode files into a new .aca archive; print routing, sizes and ratios."""
    from adaptive_codec.container.aca import create_archive

    _check_output(output, force)
    rate = Rate(bitrate, bitrate_scale)  # a bad value fails before any file is read
    files = _expand_inputs(inputs, recursive)
    failures: list = []
    entries = create_archive(output, _encoded_members(files, profile, rate, jobs, threads,
                                                      scheduler, workers, failures))
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
    from adaptive_codec.container.aca import read_member
    from adaptive_codec.container.acx import read_header

    _report_entries(entries)
    for e in entries:
        header = read_header(read_member(output, e.name))  # routing is in each member's header
        for s in header.segments_for_channel(0):
            typer.echo(f"  {e.name}: {s.start_frame / header.frame_rate_hz:7.2f}-"
                       f"{s.end_frame / header.frame_rate_hz:7.2f} s  {s.label:9s} -> "
                       f"{header.profiles[s.profile_index].name}")
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
        "--bitrate", metavar="KBPS", help="Override every profile's bitrate (nominal kbps).")] = None,
    bitrate_scale: BitrateScaleOpt = None,
    threads: ThreadsOpt = 1,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Encode more files into an existing archive (replaced atomically)."""
    from adaptive_codec.container.aca import append_to_archive, list_archive

    rate = Rate(bitrate, bitrate_scale)  # a bad value fails before any file is read
    existing = {e.name for e in list_archive(archive)}
    files = _expand_inputs(inputs, recursive)
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
    from adaptive_codec.container.aca import list_archive

    _report_entries(list_archive(archive))


@archive_app.command("info")
@handle_errors
def archive_info(archive: Annotated[Path, typer.Argument(metavar="ARCHIVE.aca")]) -> None:
    """Totals of an archive: members, duration, size, kbps, compression ratio."""
    from adaptive_codec.container.aca import list_archive

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
    """Extract members as decoded .wav (default) or as .acx streams; never outside --to."""
    import tempfile

    from adaptive_codec.container.aca import extract_archive

    if acx:
        for path in extract_archive(archive, to, members, force=force, salvage=salvage):
            typer.echo(str(path))
        return
    from adaptive_codec.container.aca import _safe_target  # same path rules as raw extraction

    codec = _codec(threads)
    with tempfile.TemporaryDirectory() as tmp:
        streams = extract_archive(archive, tmp, members, force=True, salvage=salvage)
        root = Path(os.path.realpath(to))
        root.mkdir(parents=True, exist_ok=True)
        for stream in streams:
            name = stream.relative_to(Path(os.path.realpath(tmp))).with_suffix(".wav").as_posix()
            target = _safe_target(root, name, force)
            codec.decode_to(stream, target)
            typer.echo(str(target))


@archive_app.command("verify")
@handle_errors
def archive_verify(
    archive: Annotated[Path, typer.Argument(metavar="ARCHIVE.aca")],
    decode: Annotated[bool, typer.Option("--decode", help="Also decode every member.")] = False,
    threads: ThreadsOpt = 1,
) -> None:
    """Check every CRC (and optionally decode everything); exit 1 on any problem."""
    from adaptive_codec.container.aca import read_member, verify_archive

    report = verify_archive(archive, check_members=True)
    problems = list(report.problems)
    if decode and not problems:
        from adaptive_codec.container.aca import list_archive

        codec = _codec(threads)
        for e in list_archive(archive):
            try:
                codec.decode(read_member(archive, e.name))
            except AdaptiveCodecError as exc:
                problems.append(f"{e.name}: {exc}")
    if problems:
        for p in problems:
            typer.echo(f"problem: {p}", err=True)
        fail(f"{archive}: {len(problems)} problem(s) found")
    typer.echo(f"{archive}: ok ({report.entries_checked} members, {report.bytes_checked} bytes checked"
               + (", all decoded)" if decode else ")"))


def register(app: typer.Typer) -> None:
    """Add the codec commands to the main CLI app."""
    app.command("encode")(handle_errors(encode))
    app.command("decode")(handle_errors(decode))
    app.command("info")(handle_errors(info))
    app.add_typer(archive_app, name="archive")
