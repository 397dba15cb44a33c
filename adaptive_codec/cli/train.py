"""`adaptive-codec train …` commands (also `python -m adaptive_codec.train`).

The CLI imports this module at start-up, so it stays light: torch and the
training modules (which import torch, sklearn and the codec at their tops)
are imported inside the commands that need them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from adaptive_codec.cli.common import cli_state, handle_errors
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.resources import weights_dir
from adaptive_codec.threads import pin_threads
from adaptive_codec.train.cache_paths import DEFAULT_CACHE_ROOT, DEFAULT_EXTRA_HOURS
from adaptive_codec.train.codec_config import TrainConfig

#: What a training command says when torch is not installed (the base install is inference only).
TRAIN_EXTRA_HINT = "needs PyTorch, which the base install leaves out: pip install 'adaptive-codec[train]'"


def require_torch(command: str, module: str = "torch") -> None:
    """Fail in one line, naming the extra, when ``command`` runs without ``module`` (torch, sklearn) installed."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook that refuses the module: the same as not installed
        found = False
    if not found:
        hint = TRAIN_EXTRA_HINT.replace("PyTorch", {"sklearn": "scikit-learn"}.get(module, "PyTorch"))
        raise AdaptiveCodecError(f"`adaptive-codec train {command}` {hint}")


train_app = typer.Typer(help="Train the codec backbone, the classifier, a profile or the entropy tables.",
                        no_args_is_help=True)



@train_app.command("codec")
@handle_errors
def train_codec(
    data: Annotated[list[Path], typer.Option(
        "--data", help="Corpus folder(s) with manifest.csv (path,label,source,…). Split by "
        "source recording: the held-out part is never trained on and is used for evaluation.")],
    extra: Annotated[Optional[list[Path]], typer.Option(
        "--extra", help="More training folders with manifest.csv, used whole (no held-out part).")] = None,
    extra_hours: Annotated[float, typer.Option(
        help="Cap per class (hours) on each --extra folder, bounds the one-off cache build.")] = DEFAULT_EXTRA_HOURS,
    run_dir: Annotated[Path, typer.Option(help="Checkpoints and logs; resumes if it has one.")] = Path("runs/codec"),
    config: Annotated[Optional[Path], typer.Option(help="TOML file with a [train] table.")] = None,
    init_weights: Annotated[Optional[Path], typer.Option(
        "--init", help="Start from these safetensors weights when the run has no checkpoint "
        "(default: the shipped weights).")] = None,
    from_scratch: Annotated[bool, typer.Option(help="Ignore shipped weights; random init.")] = False,
    export: Annotated[Optional[Path], typer.Option(help="Write fp16 safetensors weights here at the end.")] = None,
    max_steps: Annotated[int, typer.Option(help="Stop at this total step count.")] = 1_000_000,
    max_minutes: Annotated[float, typer.Option(help="Stop after this much wall time (resumable).")] = 10.0,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (default from config).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    cache_dir: Annotated[Path, typer.Option(help="Where decoded 24 kHz training audio is cached.")] = DEFAULT_CACHE_ROOT,
) -> None:
    """Train (or continue training) the shared backbone codec.

    Under ``torchrun --nproc_per_node=N`` every process trains on its own
    crops with DistributedDataParallel (gloo on CPU, nccl on CUDA); rank 0
    builds the caches and writes checkpoints, logs, evaluations and exports.
    """
    require_torch("codec")
    import torch  # heavy: only the training commands need it

    from adaptive_codec.train.ddp import init_from_env, shutdown  # imports torch

    cfg = TrainConfig.from_toml(config) if config else TrainConfig()
    if threads is not None:
        cfg.threads = threads
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dist_ctx, device = init_from_env(device)
    try:
        _train_codec(data, extra, extra_hours, run_dir, cfg, init_weights, from_scratch, export,
                     max_steps, max_minutes, device, cache_dir, dist_ctx)
    finally:
        shutdown()


def _train_codec(data, extra, extra_hours, run_dir, cfg, init_weights, from_scratch, export,
                 max_steps, max_minutes, device, cache_dir, dist_ctx) -> None:
    # Heavy (torch, torchaudio, pandas): imported when a run starts.
    from adaptive_codec.train.codec import CodecTrainer
    from adaptive_codec.train.codec_data import ensure_caches
    from adaptive_codec.train.codec_eval import HeldOutSet

    main = dist_ctx.is_main
    caches = [str(c) for c in ensure_caches(data, extra or [], extra_hours, cache_dir, build=main)]
    if dist_ctx.active:
        import torch.distributed  # heavy, and only under torchrun

        torch.distributed.barrier()  # the other ranks wait for rank 0's caches
    cfg.caches = caches
    registry = cli_state().registry()
    held_out = HeldOutSet.from_corpus(data[0]) if main else None
    init = None if from_scratch else (init_weights or weights_dir() / "backbone.safetensors")
    if init is not None and not Path(init).exists():
        init = None
    trainer = CodecTrainer(run_dir, cfg, registry, init_weights=init, device=device,
                           held_out=held_out, dist=dist_ctx)
    if main:
        typer.echo(f"training from step {trainer.step} on {device} x {dist_ctx.world_size} "
                   "process(es); data hours "
                   + ", ".join(f"{k} {v:.2f}" for k, v in trainer.sampler.hours().items()))
    trainer.run(max_steps, max_minutes, export_to=export)
    if main:
        typer.echo(f"stopped at step {trainer.step}; checkpoint in {run_dir}")


@train_app.command("classifier")
def train_classifier_command(
    data: Annotated[Path, typer.Option(
        "--data", help="One sub-folder per label, or a manifest CSV / folder with manifest.csv "
        "(path,label[,group|source]). Trained on and cross-validated by recording group.")],
    out: Annotated[Path, typer.Option(help="Artifact to write (.safetensors); the card goes "
                                      "beside it as .md unless --card.")] = Path("classifier.safetensors"),
    extra: Annotated[Optional[list[Path]], typer.Option(
        "--extra", help="More training data (same layouts), never scored.")] = None,
    card: Annotated[Optional[Path], typer.Option(help="Where to write the Markdown card.")] = None,
    model: Annotated[str, typer.Option(help="logreg or mlp.")] = "logreg",
    max_files_per_label: Annotated[Optional[int], typer.Option(
        help="Cap per label on each --extra source.")] = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    narrowband: Annotated[bool, typer.Option(
        help="Also train on 8 kHz copies so bandwidth is no class cue.")] = True,
    noisy_speech: Annotated[bool, typer.Option(
        help="Also train on speech mixed with ambient files at 5-20 dB SNR.")] = False,
    extra_share: Annotated[Optional[float], typer.Option(
        min=0.0, help="Weight of the --extra data per class, relative to the main data's windows "
        "(default: every window counts once).")] = None,
    extra_balance: Annotated[str, typer.Option(
        help="How --extra-share is spread within a class: 'class' (evenly over its windows) or 'group' "
        "(evenly over its recording groups first, so one big source does not drown a small one).")] = "class",
    train_exclude: Annotated[Optional[list[str]], typer.Option(
        "--train-exclude", metavar="TEXT", help="Never train on main-data files whose recording group or "
        "path contains TEXT (known label errors); they are still scored by the CV. Repeatable.")] = None,
    mixtures: Annotated[int, typer.Option(
        min=0, help="Also train on the windows next to label changes in this many synthetic mixtures "
        "of the --data clips (0: none).")] = 0,
    augment: Annotated[int, typer.Option(
        min=0, help="Also train on this many degraded copies of every file (level, EQ tilt, telephone band, "
        "low-pass, MP3/Opus round trip, noise, reverb; 0: none).")] = 0,
    speech_over_music: Annotated[bool, typer.Option(
        help="Also train on speech mixed over music at -5 to +10 dB, labelled speech "
        "(needs labels speech and music).")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Feature cache folder.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing artifact.")] = False,
) -> None:
    """Train the content classifier on your own labels (custom classes welcome)."""
    require_torch("classifier", "sklearn")
    from adaptive_codec.train.classifier import run_training  # heavy: sklearn, the feature stack

    handle_errors(run_training)(data=data, out=out, extra=tuple(extra or ()), card=card, model=model,
                                max_files_per_label=max_files_per_label, folds=folds, narrowband=narrowband,
                                noisy_speech=noisy_speech, extra_share=extra_share,
                                extra_balance=extra_balance, train_exclude=tuple(train_exclude or ()),
                                mixtures=mixtures, augment=augment, speech_over_music=speech_over_music,
                                cache_dir=cache_dir, force=force, echo=typer.echo)


@train_app.command("profile")
@handle_errors
def train_profile(
    profile: Annotated[Path, typer.Argument(metavar="FILE.toml", help="The custom profile to tune.")],
    data: Annotated[Path, typer.Option("--data", help="Audio file or folder of the profile's content.")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Conditioning file to write (default: the profile's 'conditioning').")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimisation steps.")] = 150,
    max_minutes: Annotated[float, typer.Option(help="Stop after this much wall time.")] = 10.0,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
) -> None:
    """Fine-tune a custom profile's conditioning embedding (backbone frozen)."""
    require_torch("profile")
    # Heavy (torch): imported when the command runs.
    from adaptive_codec.codec import AdaptiveCodec
    from adaptive_codec.train.profile import profile_for_tuning, tune_profile

    pin_threads(threads)
    prof, target = profile_for_tuning(profile)
    codec = AdaptiveCodec.default(profiles_dirs=cli_state().profiles_dirs)
    result = tune_profile(codec, prof, data, out or target, steps=steps, max_minutes=max_minutes)
    typer.echo(
        f"{prof.name}: {result.steps} steps in {result.seconds:.0f} s on {result.n_train_files} "
        f"file(s); held-out loss ({result.n_heldout_files} file(s)) {result.heldout_loss_before:.4f}"
        f" -> {result.heldout_loss_after:.4f}; kept the {result.kept} embedding; wrote {result.output}")
    if target is None:
        typer.echo(f"add  conditioning = \"{result.output}\"  to {profile} to use it")


@train_app.command("entropy")
@handle_errors
def train_entropy(
    data: Annotated[Optional[list[Path]], typer.Option(
        "--data", help="Corpus folder(s) with manifest.csv: their training split is encoded "
        "(cached like `train codec`); the first one's held-out split is scored before/after.")] = None,
    extra: Annotated[Optional[list[Path]], typer.Option(
        "--extra", help="More training folders with manifest.csv, used whole.")] = None,
    cache: Annotated[Optional[list[Path]], typer.Option(
        "--cache", help="Existing training-audio caches (<label>.npy + <label>.json) to use as they are.")] = None,
    extra_hours: Annotated[float, typer.Option(
        help="Cap per class (hours) when building an --extra cache.")] = DEFAULT_EXTRA_HOURS,
    weights: Annotated[Optional[Path], typer.Option(
        help="Backbone weights (default: the shipped ones).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        help="Table file to write (default: entropy.safetensors next to the weights).")] = None,
    minutes_per_class: Annotated[float, typer.Option(
        min=0.01, help="Training audio encoded per class (the build's run time follows it).")] = 240.0,
    max_clip_seconds: Annotated[float, typer.Option(
        min=1.0, help="At most this much of each training clip (long music tracks would otherwise crowd out the rest).")] = 600.0,
    groups: Annotated[int, typer.Option(min=1, max=4096, help="Context groups per RVQ level.")] = 32,
    threads: Annotated[int, typer.Option(min=1, help="torch CPU threads.")] = 1,
    cache_dir: Annotated[Path, typer.Option(help="Where decoded 24 kHz training audio is cached.")] = DEFAULT_CACHE_ROOT,
) -> None:
    """Build the entropy tables (context model of RVQ indices) for a backbone's weights.

    Encodes capped training audio with the weights, fits context groups and
    counts, and writes a safetensors table tied to those weights (the codec
    ignores, with a warning, a table built for other weights). A few minutes
    on one CPU core; deterministic for the same inputs and weights.
    """
    require_torch("entropy")
    # Heavy (torch): imported when the command runs.
    from adaptive_codec.codec import AdaptiveCodec
    from adaptive_codec.entropy.selection import EntropyTableWarning
    from adaptive_codec.train.codec_data import ensure_caches
    from adaptive_codec.train.entropy import EntropyBuildConfig, build_entropy_tables

    pin_threads(threads)
    caches = ensure_caches(data or [], extra or [], extra_hours, cache_dir) + list(cache or [])
    if not caches:
        raise AdaptiveCodecError("no training audio: give --data, --extra or --cache")
    missing = [c for c in caches if not Path(c).is_dir()]
    if missing:
        raise AdaptiveCodecError(f"{missing[0]}: no such cache folder")
    weights_path = weights or weights_dir() / "backbone.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EntropyTableWarning)  # the table is what we are building
        codec = AdaptiveCodec.default(weights=weights_path)
    config = EntropyBuildConfig(minutes_per_class=minutes_per_class, max_clip_s=max_clip_seconds, groups=groups)
    target = out or Path(weights_path).with_name("entropy.safetensors")
    build_entropy_tables(codec, caches, target, config, held_out_corpus=(data or [None])[0], echo=typer.echo)
