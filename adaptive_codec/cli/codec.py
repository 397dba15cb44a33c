"""CLI commands of the codec itself: ``encode``, ``decode`` and ``info``.

Registered on the main app by :mod:`adaptive_codec.cli.app`; they use the
shared error handling of :mod:`adaptive_codec.cli.common` (one-line errors,
exit 1) and its profile registry.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptive_codec.audio import audio_info
from adaptive_codec.cli.common import BitrateScaleOpt, ForceOpt, ThreadsOpt, check_output, fail, handle_errors, load_codec
from adaptive_codec.container.acx import AcxReader, read_header
from adaptive_codec.errors import FormatError
from adaptive_codec.planning.rate import Rate
from adaptive_codec.planning.rate_control import cap_message, rate_summary

__all__ = ["encode", "decode", "info", "register"]


def encode(
    input: Annotated[Path, typer.Argument(metavar="IN", help="Audio file (wav, flac, ogg, opus, mp3 …).")],
    output: Annotated[Optional[Path], typer.Argument(
        metavar="OUT.acx", help="Output stream (default: IN with suffix .acx).")] = None,
    profile: Annotated[str, typer.Option(
        "--profile", "-p", help="auto (classify and route), a profile name, or a profile .toml.")] = "auto",
    bitrate: Annotated[Optional[float], typer.Option(
        "--bitrate", metavar="KBPS", help="Every profile's bitrate: the whole stream's kbps (headers and all channels), up to 1000.")] = None,
    bitrate_scale: BitrateScaleOpt = None,
    force: ForceOpt = False,
    threads: ThreadsOpt = 1,
) -> None:
    """Encode an audio file into an .acx stream (written atomically)."""
    output = output or input.with_suffix(".acx")
    check_output(output, force)
    audio_info(input)  # a missing or unreadable input fails before the model loads
    rate = Rate(bitrate, bitrate_scale)  # so does a bad --bitrate / --bitrate-scale
    codec = load_codec(threads)
    # Read block by block: memory stays bounded whatever the file's length.
    plan, info = codec.encode_file(output, input, profile=profile, rate=rate)
    size = output.stat().st_size
    kbps = size * 8 / info.duration_s / 1000
    typer.echo(f"{input} -> {output}: {size} bytes, {kbps:.2f} kbps over {info.duration_s:.2f} s "
               f"({info.channels} ch, {info.sample_rate_hz} Hz)")
    header = read_header(output)
    typer.echo(f"  {rate_summary(header.asked_bps, kbps * 1000, header.rate_limit)}")
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
    check_output(output, force)
    if not input.is_file():
        fail(f"{input}: no such file")
    with _naming(input):
        read_header(input)  # a damaged stream fails before the model loads
        codec = load_codec(threads)
        n, sr = codec.decode_to(input, output, start_s=start, end_s=end)  # piece by piece
    typer.echo(f"{input} -> {output}: {n} samples, {n / sr:.2f} s at {sr} Hz")


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Stream errors name the file they are about (a batch job decodes many)."""
    try:
        yield
    except FormatError as exc:
        if str(exc).startswith(f"{path}: "):
            raise
        raise FormatError(f"{path}: {exc}") from exc


class InfoFormat(str, enum.Enum):
    table = "table"
    json = "json"


def info(
    input: Annotated[Path, typer.Argument(metavar="IN.acx", help="Stream to describe.")],
    format: Annotated[InfoFormat, typer.Option("--format", "-f", help="Output format.")] = InfoFormat.table,
) -> None:
    """Show a stream's header: profile per segment, bits per class, actual kbps."""
    if not input.is_file():
        fail(f"{input}: no such file")
    size = input.stat().st_size
    with _naming(input), AcxReader(input) as reader:
        header = reader.header
        bytes_per_frame: dict[str, float] = {}
        for chunk in reader.iter_chunks():
            # Attribute each chunk's bytes to its frames' labels in proportion
            # to the levels they code (an adaptive segment's mean is its n_q):
            # a 4-level ambient frame costs about half an 8-level speech frame.
            # segments_in is a bisection: thousands of segments stay fast.
            rows = header.segments_in(chunk.channel, chunk.start_frame, chunk.end_frame)
            spans = [(seg, min(seg.end_frame, chunk.end_frame) - max(seg.start_frame, chunk.start_frame))
                     for seg in rows]
            total = max(sum(seg.n_q * n for seg, n in spans), 1)
            for seg, n in spans:
                share = len(chunk.data) * seg.n_q * n / total
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
    # The high band's bytes (header section) by the labels of the frames they code.
    # Imported here: the tool's package pulls in scipy.fft, which --help and archive commands never need.
    from adaptive_codec.tools.highband import highband_bytes_by_label

    for label, b in highband_bytes_by_label(header).items():
        row = per_class.setdefault(label, {"seconds": seconds.get(label, 0.0), "payload_bytes": 0, "kbps": 0.0})
        row["highband_bytes"] = round(b)
        row["highband_kbps"] = b * 8 / max(seconds.get(label, 0.0), 1e-9) / 1000
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
        "highband": None if header.highband is None else header.highband.to_dict(),
        "parametric_stereo": None if header.stereo_params is None else header.stereo_params.to_dict(),
        "asked_kbps": header.asked_bps / 1000 if header.asked_bps else None,
        "rate_limit": ("reached", "deepest", "shallowest")[header.rate_limit],
    }
    actual_bps = summary["kbps"] * 1000
    summary["capped"] = cap_message(header.rate_limit, actual_bps, header.asked_bps)
    if format is InfoFormat.json:
        typer.echo(json.dumps(summary, indent=2))
        return
    stereo = "mid + parametric stereo" if header.stereo_params is not None else header.stereo_mode
    typer.echo(f"{input}: {size} bytes, {summary['kbps']:.2f} kbps, {duration:.2f} s, "
               f"{header.channels} ch ({stereo}) @ {header.original_sample_rate_hz} Hz, "
               f"weights {header.weights_id}")
    if header.asked_bps:  # streams before 3.2, or of fixed depths, record no target
        typer.echo(f"  {rate_summary(header.asked_bps, actual_bps, header.rate_limit)}")
    typer.echo("  start_s    end_s  label       profile     n_q  conf")
    for s in summary["segments"]:
        mark = "*" if s["adaptive_depth"] else " "
        typer.echo(f"  {s['start_s']:7.2f} {s['end_s']:8.2f}  {s['label']:10s}  {s['profile']:10s} "
                   f"{s['n_q']:4d}{mark} {s['confidence']:.2f}")
    if any(s["adaptive_depth"] for s in summary["segments"]):
        typer.echo("  * energy-adaptive depth: n_q is the segment's mean; each frame's depth is in the stream")
    for label, c in per_class.items():
        high = f"  + high band {c['highband_bytes']} B, {c['highband_kbps']:.2f} kbps" if "highband_bytes" in c else ""
        typer.echo(f"  {label:10s} {c['seconds']:7.2f} s  {c['payload_bytes']:8d} B  {c['kbps']:.2f} kbps{high}")


# -- archive -------------------------------------------------------------------

def register(app: typer.Typer) -> None:
    """Add the codec commands to the main CLI app."""
    app.command("encode")(handle_errors(encode))
    app.command("decode")(handle_errors(decode))
    app.command("info")(handle_errors(info))
