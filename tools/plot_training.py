"""Plot codec training curves (loss terms and held-out metrics) for docs/TRAINING.md.

Usage::

    python tools/plot_training.py --log docs/training/log.csv \
        --eval docs/training/eval.csv --out docs/training/curves.png

``log.csv`` and ``eval.csv`` are what ``adaptive-codec train codec`` writes in
its run folder; sessions append to the copies under ``docs/training/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot(log_csv: Path, eval_csv: Path | None, out: Path) -> None:
    # Resumed runs repeat a few steps: keep the latest row of each step.
    log = pd.read_csv(log_csv).drop_duplicates("step", keep="last").sort_values("step")
    # Windows where a single broken crop dominated (before the loss fix) are
    # kept in the CSV but clipped out of the plot so the trend stays visible.
    log = log[log["loss"] < 20]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for term in ("mel", "stft", "mfcc", "contrast", "loudness", "waveform", "phase"):
        if term in log and log[term].notna().any():
            axes[0].plot(log["step"], log[term], label=term)
    axes[0].set(title="training loss terms (batch mean)", xlabel="step", yscale="log")
    axes[0].legend(fontsize=8)
    if eval_csv is not None and eval_csv.exists():
        ev = pd.read_csv(eval_csv).drop_duplicates("step", keep="last").sort_values("step")
        for col in ("speech_pesq", "speech_stoi"):
            if col in ev:
                axes[1].plot(ev["step"], ev[col], marker="o", label=col)
        axes[1].set(title="held-out speech @ 8 levels (6 kbps nominal)", xlabel="step")
        axes[1].legend(fontsize=8)
        for col in [c for c in ev.columns if c.endswith("_mel") or c.endswith("_rms_ratio")]:
            axes[2].plot(ev["step"], ev[col], marker=".", label=col)
        axes[2].set(title="held-out mel distance / output RMS ratio", xlabel="step")
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True, help="log.csv of a training run")
    parser.add_argument("--eval", type=Path, default=None, help="eval.csv of a training run")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        print(f"error: {args.log}: no such training log", file=sys.stderr)
        return 1
    try:
        plot(args.log, args.eval, args.out)
    except KeyError:  # a CSV without the columns plot() reads
        names = str(args.log) + (f", {args.eval}" if args.eval else "")
        print(f"error: {names}: not a training log (needs the step and loss columns `train codec` writes)",
              file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # unreadable or malformed CSV (pandas' errors are ValueErrors)
        print(f"error: cannot read the training log: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
