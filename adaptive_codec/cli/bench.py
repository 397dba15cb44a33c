"""The ``adaptive-codec bench`` command (registered by :mod:`adaptive_codec.cli.app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptive_codec.cli.common import cli_state, fail, handle_errors

__all__ = ["bench", "register"]


def bench(
    corpus: Annotated[Path, typer.Argument(
        metavar="CORPUS", help="Folder with one sub-folder per class, or a manifest CSV "
                               "(path,label[,segments]).")],
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Output folder.")],
    baselines: Annotated[Optional[str], typer.Option(
        "--baselines", metavar="LIST", help="Comma-separated: opus,aac,mp3,codec2,flac (default: the config's).")] = None,
    labels: Annotated[Optional[str], typer.Option(
        "--labels", metavar="LIST", help="Comma-separated classes to run, e.g. mixed "
                                         "(default: the config's, all classes).")] = None,
    quick: Annotated[bool, typer.Option(
        "--quick", help="Smoke run: 1 clip per class, 4 s excerpts, one bitrate (6 kbps); "
                 "--config keys refine it.")] = False,
    config: Annotated[Optional[Path], typer.Option(
        "--config", metavar="FILE", help="Benchmark config TOML (bitrate ladder, profiles, "
                                         "baselines, metrics, clip caps).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the run in DIR: skip the rows it already has (same corpus, "
                         "weights and config required).")] = False,
    jobs: Annotated[int, typer.Option(
        "--jobs", min=1, help="Worker processes (1 torch thread each; speeds are then "
                       "lower bounds, the processes share the CPU).")] = 1,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite the results of an earlier run in DIR.")] = False,
) -> None:
    """Per-class benchmark of the adaptive codec against Opus, Codec2 and FLAC.

    Writes results.csv, summary.csv, bd_rate.csv, routing.csv,
    routing_accuracy.csv, meta.json, report.md and a self-contained
    report.html (figures, audio snippets) into DIR.
    """
    from adaptive_codec.bench.config import QUICK_OVERRIDES, BenchConfig
    from adaptive_codec.bench.runner import run_bench

    if not corpus.exists():
        fail(f"{corpus}: no such file or folder")
    if out.exists() and not out.is_dir():
        fail(f"{out}: exists and is not a folder")
    if (out / "results.csv").exists() and not (resume or force):
        fail(f"{out} already holds a benchmark (use --resume to continue it or --force to start over)")
    base = BenchConfig().replace(**QUICK_OVERRIDES) if quick else BenchConfig()
    cfg = BenchConfig.from_toml(config, base=base) if config else base
    if baselines is not None:
        cfg = cfg.replace(baselines=_names(baselines))
    if labels is not None:
        names = _names(labels)
        cfg = cfg.replace(labels="all" if names == ("all",) else names)
    run = run_bench(corpus, out, cfg, resume=resume, jobs=jobs,
                    profiles_dirs=tuple(str(p) for p in cli_state().profiles_dirs), quick=quick)
    for note in run.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"{run.n_clips} clips, {run.n_rows_run} rows in {run.wall_s:.0f} s; "
               f"report: {out / 'report.html'}")


def _names(text: str) -> tuple[str, ...]:
    """A comma-separated option value as a tuple of names (blanks dropped)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the main CLI app."""
    app.command("bench")(handle_errors(bench))
