"""The ``adaptive-codec`` command line (typer): the root app, ``profiles``, ``examples``, ``classify``.

One typer sub-app or module per command group, registered here:
:mod:`adaptive_codec.cli.codec` (``encode``, ``decode``, ``info``),
:mod:`adaptive_codec.cli.archive` (``archive ...``),
:mod:`adaptive_codec.cli.bench` (``bench``) and
:mod:`adaptive_codec.cli.train` (``train ...``). What every command shares
(state, one-line errors, options) is in :mod:`adaptive_codec.cli.common`.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptive_codec import __version__
from adaptive_codec.audio import audio_info
from adaptive_codec.cli.bench import register as register_bench_command
from adaptive_codec.cli import archive as archive_commands
from adaptive_codec.cli import codec as codec_commands
from adaptive_codec.cli.common import (
    PROG,
    CliState,
    class_names,
    cli_state,
    error_message,
    handle_errors,
    is_click_flow,
    print_error,
    set_cli_state,
)
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.profiles import ENV_VAR, Profile
from adaptive_codec.resources import EXAMPLE_NAMES, example_path
from adaptive_codec.cli.train import train_app

__all__ = ["app", "main"]

app = typer.Typer(
    name=PROG,
    help="Content-adaptive neural audio codec: classify, route, encode, archive.",
    no_args_is_help=True,
    add_completion=False,
    # Tracebacks are for --debug only; our handler prints one line instead.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"{PROG} {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True,
                     help="Print the version and exit."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks on errors.")
    ] = False,
    profiles_dir: Annotated[
        Optional[list[Path]],
        typer.Option(
            "--profiles-dir", metavar="DIR",
            help=f"Extra folder of profile TOML files (repeatable; also ${ENV_VAR}).",
        ),
    ] = None,
) -> None:
    """Content-adaptive neural audio codec: classify, route, encode, archive."""
    set_cli_state(CliState(debug=debug, profiles_dirs=tuple(profiles_dir or ())))


# -- profiles -----------------------------------------------------------------

profiles_app = typer.Typer(
    help="List, show and validate content profiles.", no_args_is_help=True
)
app.add_typer(profiles_app, name="profiles")


class ListFormat(str, enum.Enum):
    table = "table"
    json = "json"


def _rate(profile: Profile) -> str:
    if profile.bitrate_kbps is not None:
        return f"{profile.bitrate_kbps:g} kbps"
    return f"n_q {profile.n_q}"


@profiles_app.command("list")
@handle_errors
def profiles_list(
    format: Annotated[ListFormat, typer.Option("--format", "-f", help="Output format.")]
    = ListFormat.table,
) -> None:
    """List the available profiles (built-in, plug-in and user folders)."""
    registry = cli_state().registry()
    if format is ListFormat.json:
        rows = [
            {**p.to_dict(), "origin": registry.origin(p.name),
             "source": str(p.source) if p.source else None}
            for p in registry
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    rows_text = [("NAME", "LABELS", "RATE", "DEPTH", "BASE", "ORIGIN")]
    for p in registry:
        depth = f"adaptive ({p.depth_slope:g}/10 dB)" if p.depth_slope else "fixed"
        rows_text.append((p.name, ",".join(p.labels) or "-", _rate(p), depth, p.base or "-",
                          registry.origin(p.name)))
    widths = [max(len(row[i]) for row in rows_text) for i in range(len(rows_text[0]))]
    for row in rows_text:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@profiles_app.command("show")
@handle_errors
def profiles_show(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Profile name, or a profile .toml file.")
    ],
) -> None:
    """Print one profile as TOML (all values, defaults included)."""
    registry = cli_state().registry()
    profile = registry.resolve(name)
    if profile.name in registry and registry.get(profile.name) is profile:
        origin = registry.origin(profile.name)
    else:
        origin = "file"
    where = f": {profile.source}" if profile.source else ""
    typer.echo(f"# profile {profile.name!r} ({origin}{where})")
    typer.echo(profile.to_toml(), nl=False)


@profiles_app.command("validate")
@handle_errors
def profiles_validate(
    files: Annotated[
        list[Path], typer.Argument(help="Profile .toml files to check.", metavar="FILE.toml...")
    ],
) -> None:
    """Check profile files: syntax, keys, values, base profile, name clashes.

    Prints one line per file; exits 1 if any file is invalid.
    """
    registry = cli_state().registry()
    failed = 0
    for path in files:
        try:
            profile = Profile.from_toml(path)
            existing = registry.get(profile.name) if profile.name in registry else None
            same_file = (existing is not None and existing.source is not None
                         and existing.source.resolve() == path.resolve())
            if not same_file:
                # A scratch copy of the registry reports clashes and bad bases.
                scratch = registry.copy()
                scratch.add(profile, origin="validate")
                scratch.check()
        except AdaptiveCodecError as exc:
            failed += 1
            print_error(str(exc))
            continue
        typer.echo(f"ok: {path} (profile {profile.name!r}, {_rate(profile)}, "
                   f"labels: {', '.join(profile.labels) or '-'})")
    if failed:
        raise typer.Exit(1)


# -- examples -----------------------------------------------------------------


@app.command("examples")
@handle_errors
def examples(
    path: Annotated[
        Optional[str],
        typer.Option("--path", metavar="NAME", help="Print only this example's file path."),
    ] = None,
) -> None:
    """List the bundled example clips (speech, music, ambient, mixed)."""
    if path is not None:
        typer.echo(str(example_path(path)))
        return
    for name in EXAMPLE_NAMES:
        file = example_path(name)
        info = audio_info(file)
        typer.echo(f"{name:8s} {info.duration_s:6.1f} s  {info.sample_rate_hz:6d} Hz  "
                   f"{info.channels} ch  {file}")


# -- classify (owner: classifier) ----------------------------------------------


class SegmentFormat(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command("classify")
@handle_errors
def classify(
    input: Annotated[Path, typer.Argument(metavar="IN", help="Audio file to label.")],
    format: Annotated[SegmentFormat, typer.Option("--format", "-f", help="Output format.")]
    = SegmentFormat.table,
    classifier: Annotated[Optional[Path], typer.Option(
        "--classifier", metavar="FILE", help="Classifier artifact (default: the shipped one).")] = None,
    min_segment: Annotated[float, typer.Option(
        "--min-segment", metavar="S", min=0.0, help="Shortest segment in seconds.")] = 2.0,
    max_pause: Annotated[float, typer.Option(
        "--max-pause", metavar="S", min=0.0,
        help="Longest silence inside a segment that keeps its label (0: every silence is its own segment).")] = 4.0,
) -> None:
    """Label the speech / music / ambient / silence segments of a file and their profiles."""
    # The analysis stage (scipy.fft, the features) loads for this command only: --help stays fast.
    from adaptive_codec.analysis.classifier_model import ClassifierModel
    from adaptive_codec.analysis.routing import segments_report

    model = ClassifierModel.load(classifier) if classifier else ClassifierModel.default()
    typer.echo(segments_report(input, model, cli_state().registry(), format=format.value,
                               min_segment_s=min_segment, max_pause_s=max_pause), nl=False)

# -- command groups in their own modules ---------------------------------------

app.add_typer(train_app, name="train")
codec_commands.register(app)
archive_commands.register(app)
register_bench_command(app)


# -- entry point --------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code (console script ``adaptive-codec``).

    Click's usage errors are reduced to one line ``error: ...`` (exit 2);
    ``--help`` and the per-command handling stay as typer does them.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result = app(args=args, prog_name=PROG, standalone_mode=False)
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    except typer.Abort:
        print_error("aborted")
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except Exception as exc:
        names = class_names(exc)
        if "NoArgsIsHelpError" in names:
            # Recent typer has printed the help already (get_help() is then
            # empty); older versions leave it to us.
            ctx = getattr(exc, "ctx", None)
            help_text = ctx.get_help() if ctx is not None else ""
            if help_text.strip():
                typer.echo(help_text, err=True)
            return 2
        if is_click_flow(exc):
            message = exc.format_message()  # type: ignore[attr-defined]
            ctx = getattr(exc, "ctx", None)
            if "UsageError" in names and ctx is not None:
                message += f" (see '{ctx.command_path} --help')"
            print_error(message)
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if "--debug" in args:
            raise
        # Raised outside any command (e.g. while building the registry).
        print_error(error_message(exc))
        return 1
    return result if isinstance(result, int) else 0
