"""How much could a richer context model save? Bits per RVQ index on held-out clips.

The shipped range coder conditions each index on one context group (the
previous frame's level-0 index, or the same frame's index one level up;
docs/FORMAT.md section 4). This script measures what a *parametric* context
model would add on top, without changing the format: for each level ``l >= 1``
the level's codeword is predicted by linear least squares from what a decoder
that decodes level by level already knows, and the index is coded with

    log p(k) ∝ κ · <ĉ, c_k> + a · log p_table(k | context)

where ``c_k`` are the level's unit codewords, ``ĉ`` the prediction and
``p_table`` the shipped table. Two predictors:

* ``lower``: the partial reconstruction of levels ``< l`` (projected into the
  level's code space) at frames ``f-2 .. f+2`` and the same frame's level
  ``l-1`` codeword: decodable level by level, as today;
* ``lower+same``: also the level's own codewords at ``f±1, f±2``: an upper
  bound for decode orders that interleave frames (a checkerboard order sees
  half of these).

W, κ and a are fitted on training audio (the caches ``train codec`` uses; never
held-out clips); bits are measured on the corpus' held-out clips (``is_held_out``),
each with its class's built-in profile. Level 0 keeps the table.

Usage (from the repository root; ~2 minutes on one core)::

    python benchmarks/entropy_context.py --corpus ../shared/corpus > benchmarks/results/entropy_context.txt
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.threads import pin_threads  # noqa: E402

KAPPAS = (0.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0)
TABLE_POWERS = (0.0, 0.5, 0.8, 1.0)
OFFSETS = (-2, -1, 0, 1, 2)


def context_features(codes: np.ndarray, books, in_weights, out_layers, level: int, same_level: bool) -> np.ndarray:
    """Predictor inputs ``(frames, n_features)`` for the indices of ``level``.

    Parameters
    ----------
    codes : np.ndarray [shape=(levels, frames)], int
    books : list of np.ndarray [shape=(K, code_dim)]
        Unit codewords per level.
    in_weights : list of np.ndarray [shape=(code_dim, latent_dim)]
        Each level's input projection (residual -> code space).
    out_layers : list of (np.ndarray [shape=(latent_dim, code_dim)], np.ndarray [shape=(latent_dim,)])
        Each level's output projection (code space -> residual) and bias.
    level : int
        Level whose indices are predicted (>= 1).
    same_level : bool
        Also use the level's own codewords at ``f±1, f±2``.

    Notes
    -----
    Frames beyond the clip's ends wrap around; callers drop the two frames at
    each end.
    """
    frames = codes.shape[1]
    partial = np.zeros((frames, out_layers[0][0].shape[0]), np.float64)
    for j in range(level):
        w, b = out_layers[j]
        partial += books[j][codes[j]] @ w.T + b
    projected = partial @ in_weights[level].T
    cols = [np.roll(projected, -d, axis=0) for d in OFFSETS]
    cols.append(books[level - 1][codes[level - 1]])
    if same_level:
        own = books[level][codes[level]]
        cols += [np.roll(own, -d, axis=0) for d in OFFSETS if d != 0]
    cols.append(np.ones((frames, 1)))
    return np.concatenate(cols, axis=1)


def table_log_probs(model, codes: np.ndarray, prior: int, level: int) -> np.ndarray:
    """``(frames, K)`` natural-log probabilities of the shipped table for each frame's context."""
    from adaptive_codec.entropy.tables import symbol_contexts

    freqs = model.frequencies[prior, level].astype(np.float64) / (1 << model.precision_bits)
    ctx = symbol_contexts(model, codes, np.full(codes.shape[1], codes.shape[0]), level)
    return np.log(freqs[ctx])


def code_lengths(scores: np.ndarray, table_logp: np.ndarray, symbols: np.ndarray, kappa: float, power: float) -> np.ndarray:
    """Bits of each symbol under ``softmax(kappa * scores + power * table_logp)``."""
    logits = kappa * scores + power * table_logp
    logits -= logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits).sum(axis=1))
    return (log_norm - logits[np.arange(len(symbols)), symbols]) / np.log(2.0)


def fit_level(features: np.ndarray, symbols: np.ndarray, table_logp: np.ndarray, book: np.ndarray,
              max_fit: int = 8000, seed: int = 0) -> tuple[np.ndarray, float, float]:
    """Least-squares predictor ``W`` of the symbol's codeword, then ``(kappa, power)`` by grid search.

    ``kappa = 0, power = 1`` is the table alone, so the fit never does worse
    than the table on the data it is fitted on.
    """
    w, *_ = np.linalg.lstsq(features, book[symbols], rcond=None)
    pick = np.random.default_rng(seed).choice(len(symbols), min(max_fit, len(symbols)), replace=False)
    scores = (features[pick] @ w) @ book.T
    best = (np.inf, 0.0, 1.0)
    for kappa in KAPPAS:
        for power in TABLE_POWERS:
            bits = code_lengths(scores, table_logp[pick], symbols[pick], kappa, power).mean()
            if bits < best[0]:
                best = (bits, kappa, power)
    return w, best[1], best[2]


def _symbols_and_table(clips, model, prior, level):
    """Each clip's symbols of ``level`` and their table log-probabilities, two frames cut at each end."""
    syms, tabs = [], []
    for codes in clips:
        if codes.shape[1] < 8:
            continue
        syms.append(np.asarray(codes[level][2:-2], np.int64))
        tabs.append(table_log_probs(model, codes, prior, level)[2:-2])
    return np.concatenate(syms), np.concatenate(tabs)


def _features(clips, level, same_level, books, in_weights, out_layers):
    # np.roll wraps around: the two frames at each end see the clip's other end, so they are cut.
    return np.concatenate([context_features(c, books, in_weights, out_layers, level, same_level)[2:-2]
                           for c in clips if c.shape[1] >= 8])


#: The --extra folders of the training command in docs/TRAINING.md (never corpus audio).
DEFAULT_EXTRA = (Path("../shared/train-pool"), Path.home() / ".cache/adaptive-codec/train-pool")


def default_caches() -> list[Path]:
    """The decoded caches ``train codec --extra DIR`` builds for :data:`DEFAULT_EXTRA` (default cap)."""
    from adaptive_codec.train.cache_paths import DEFAULT_EXTRA_HOURS, cache_dir_for

    return [cache_dir_for(d, extra_hours=DEFAULT_EXTRA_HOURS) for d in DEFAULT_EXTRA]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("../shared/corpus"))
    parser.add_argument("--cache", type=Path, action="append", default=None,
                        help="training-audio cache folder (<label>.npy + <label>.json); default: the caches "
                        "`adaptive-codec train codec` built for its --extra folders " + " and ".join(map(str, DEFAULT_EXTRA)))
    parser.add_argument("--minutes", type=float, default=8.0, help="training audio per class for the fit")
    parser.add_argument("--weights", type=Path, default=None, help="backbone weights (default: shipped)")
    args = parser.parse_args(argv)
    if not args.minutes > 0:
        print(f"error: --minutes must be > 0, got {args.minutes:g}", file=sys.stderr)
        return 2
    if not args.corpus.is_dir():
        print(f"error: corpus not found: {args.corpus}", file=sys.stderr)
        return 2
    caches = args.cache or default_caches()
    if not any(Path(c).is_dir() for c in caches):
        print("error: no training-audio cache found (run `adaptive-codec train codec` once, or pass --cache)",
              file=sys.stderr)
        return 2

    pin_threads(1)
    from adaptive_codec.bench.environment import git_revision
    from adaptive_codec.codec import AdaptiveCodec
    from adaptive_codec.profiles import BUILTIN_CLASSES
    from adaptive_codec.train.entropy import EntropyBuildConfig, held_out_codes, collect_codes

    from adaptive_codec.errors import AdaptiveCodecError

    t0 = time.monotonic()
    try:
        codec = AdaptiveCodec.default(weights=args.weights)
    except AdaptiveCodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bb = codec.backbone
    model = codec.entropy_model
    labels = [c for c in BUILTIN_CLASSES if c in bb.config.profiles]
    train = collect_codes(bb, caches, labels, EntropyBuildConfig(minutes_per_class=args.minutes, max_clip_s=60.0))
    held = held_out_codes(codec, args.corpus, labels)
    missing = [label for label in labels if not train[label] or not held[label]]
    if missing:
        print(f"error: no training or held-out audio for {', '.join(missing)} (caches: "
              f"{', '.join(map(str, caches))}; corpus: {args.corpus})", file=sys.stderr)
        return 2
    levels = bb.quantizer.levels
    books = [lvl.normalized_codebook().detach().double().numpy() for lvl in levels]
    in_weights = [lvl.in_proj.weight.detach().double().numpy() for lvl in levels]
    out_layers = [(lvl.out_proj.weight.detach().double().numpy(), lvl.out_proj.bias.detach().double().numpy())
                  for lvl in levels]
    fixed = bb.config.bits_per_index
    print(f"# Parametric context models vs the shipped tables (bits per index, held-out corpus clips)")
    print(f"weights {codec.weights_meta['weights_id']}; git {git_revision()}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; fit on {args.minutes:g} min of training audio per class "
          f"({', '.join(Path(c).name for c in caches)}); fixed length {fixed:g} bits")
    summary = []
    for label in labels:
        prior = bb.config.profiles.index(label)
        depth = codec.depth_for(codec.registry.get(label))
        print(f"\n## {label} (depth {depth}; {len(held[label])} held-out clips, "
              f"{sum(c.shape[1] for c in held[label])} frames)")
        print("level  table  lower  lower+same  (kappa, a)")
        totals = {"table": 0.0, "lower": 0.0, "lower+same": 0.0}
        for level in range(depth):
            hy, htab = _symbols_and_table(held[label], model, prior, level)
            row = {"table": float((-htab[np.arange(len(hy)), hy] / np.log(2.0)).mean())}
            fits = []
            for name, same in (("lower", False), ("lower+same", True)):
                if level == 0:  # nothing below level 0: it keeps the table (previous-frame context)
                    row[name] = row["table"]
                    continue
                y, tab = _symbols_and_table(train[label], model, prior, level)
                w, kappa, power = fit_level(_features(train[label], level, same, books, in_weights, out_layers),
                                            y, tab, books[level])
                hx = _features(held[label], level, same, books, in_weights, out_layers)
                row[name] = float(code_lengths((hx @ w) @ books[level].T, htab, hy, kappa, power).mean())
                fits.append(f"({kappa:g}, {power:g})")
            for k in totals:
                totals[k] += row[k]
            print(f"{level:5d}  {row['table']:5.2f}  {row['lower']:5.2f}  {row['lower+same']:10.2f}  {' '.join(fits)}")
        means = {k: v / depth for k, v in totals.items()}
        summary.append((label, means))
        print("mean   " + "  ".join(f"{means[k]:.2f}" for k in totals)
              + "   saved vs fixed: " + " / ".join(f"{1 - means[k] / fixed:.1%}" for k in totals))
    print("\n## Summary: saved vs fixed-length indices (table / lower / lower+same)")
    for label, means in summary:
        print(f"{label:8s} " + " / ".join(f"{1 - means[k] / fixed:5.1%}" for k in ("table", "lower", "lower+same")))
    print(f"\nwall time {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
