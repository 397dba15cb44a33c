"""Build the entropy tables of a backbone: encode training audio, cluster contexts, count.

``adaptive-codec train entropy`` runs :func:`build_entropy_tables`. The tables
belong to one weights file (the codebooks change when the backbone is
retrained), so the command encodes capped, seeded training audio with those
weights and writes ``entropy.safetensors`` next to them, recording the
weights' hash; the codec refuses a table built for other weights.

Model (see :mod:`adaptive_codec.entropy.coder`): per prior id (built-in profile
family), RVQ level and context group, one categorical distribution. Steps:

1. Codes: every training clip (at most ``max_clip_s`` of it, up to
   ``minutes_per_class`` per class, clips drawn round-robin from the caches)
   is encoded at all RVQ levels with its class's built-in profile embedding.
2. Context groups per level: k-means of the conditioning level's codebook
   vectors gives a start, then a few rounds of *distributional* clustering
   move each conditioning index to the group whose successor distribution
   codes its own successors in the fewest bits (pooled over all classes).
3. Counts per (prior, level, group), smoothed toward the level's unigram
   (``alpha`` pseudo-counts) and, per class, toward the all-class row
   (``shrinkage`` pseudo-counts), then quantized to integers.

Everything is seeded; on one machine the same inputs give the same file.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from adaptive_codec.backbone.streaming import encode_signal, inference_backbone
from adaptive_codec.entropy.coder import ideal_bits
from adaptive_codec.entropy.selection import coding_prior_logits
from adaptive_codec.entropy.tables import DEFAULT_PRECISION_BITS, EntropyModel
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.profiles.builtin import BUILTIN_CLASSES
from adaptive_codec.train.codec_data import corpus_clips, read_mono

__all__ = ["EntropyBuildConfig", "collect_codes", "fit_context_model", "bits_per_index", "build_entropy_tables"]


@dataclass(frozen=True)
class EntropyBuildConfig:
    """Settings of an entropy-table build (every default measured, docs/training-journal.md "Entropy tables")."""

    # Training audio per class. Held-out bits/index fell with more data (weights
    # 0.dev4200, music 9.23 -> 8.81 -> 8.75 at 12 -> 90 -> 240 min); the build
    # takes ~7 minutes on one loaded core at 240. A class with less audio uses all it has.
    minutes_per_class: float = 240.0
    # At most this much of each clip: 20 s capped music at 30 minutes (the
    # Debian music is 60 long tracks); long caps let every track contribute.
    max_clip_s: float = 600.0
    groups: int = 32  # context groups per level (table rows); 16 costs ~0.1 bit/index, 64+ gains < 0.05
    alpha: float = 32.0  # pseudo-counts of the level's unigram in every context row
    shrinkage: float = 1024.0  # pseudo-counts pulling each class's row toward the all-class row
    cluster_rounds: int = 15  # distributional clustering rounds (stops early when stable)
    kmeans_rounds: int = 30  # k-means rounds on codebook vectors (the clustering's start)
    precision_bits: int = DEFAULT_PRECISION_BITS
    seed: int = 0


# --------------------------------------------------------------------------- codes


def _cache_clips(cache: Path, label: str) -> tuple[np.ndarray, list[dict]] | None:
    npy = Path(cache) / f"{label}.npy"
    meta = Path(cache) / f"{label}.json"
    if not (npy.exists() and meta.exists()):
        return None
    return np.load(npy, mmap_mode="r"), json.loads(meta.read_text())["clips"]


def collect_codes(backbone, caches: Sequence[Path], labels: Sequence[str], config: EntropyBuildConfig,
                  progress: Callable[[float], None] | None = None) -> dict[str, list[np.ndarray]]:
    """RVQ codes (all levels) of capped training audio per class.

    Parameters
    ----------
    backbone : Backbone
    caches : list of Path
        Folders made by :func:`adaptive_codec.train.codec_data.build_cache`
        (``<label>.npy`` int16 at the backbone's rate + ``<label>.json``).
    labels : list of str
        Classes to collect; each must name a built-in profile of the backbone.
    progress : callable, optional
        Called with the seconds of audio just encoded.

    Returns
    -------
    dict[str, list[np.ndarray [shape=(n_levels, frames), dtype=int16]]]
        One array per clip.
    """
    cfg = backbone.config
    rate = cfg.sample_rate_hz
    out: dict[str, list[np.ndarray]] = {}
    for label in labels:
        row = cfg.profiles.index(label)
        vector = inference_backbone(backbone).profile_vectors[row]
        sources = []
        for i, cache in enumerate(caches):
            found = _cache_clips(cache, label)
            if found is not None and found[1]:
                data, clips = found
                order = np.random.default_rng([config.seed, i]).permutation(len(clips))
                sources.append((data, [clips[j] for j in order]))
        budget = int(config.minutes_per_class * 60 * rate)
        per_clip = int(config.max_clip_s * rate)
        got, codes, turn = 0, [], 0
        # Round-robin over the caches so no single source dominates a class.
        while got < budget and any(clips for _, clips in sources):
            data, clips = sources[turn % len(sources)]
            turn += 1
            if not clips:
                continue
            clip = clips.pop(0)
            n = min(clip["n_samples"], per_clip, budget - got)
            if n < cfg.hop * 4:
                continue
            x = np.asarray(data[clip["offset"] : clip["offset"] + n], np.float32) / 32768.0
            n_frames = backbone.mdct.n_frames(n)
            codes.append(encode_signal(backbone, x, np.repeat(vector[None], n_frames, 0), cfg.n_levels))
            got += n
            if progress is not None:
                progress(n / rate)
        out[label] = codes
    return out


# --------------------------------------------------------------------------- fitting


def _kmeans(points: np.ndarray, k: int, rounds: int, seed: int) -> np.ndarray:
    """Group index of each row of ``points`` (plain Lloyd iterations, seeded start)."""
    rng = np.random.default_rng(seed)
    k = min(k, len(points))
    centres = points[rng.choice(len(points), k, replace=False)].astype(np.float64)
    assign = np.zeros(len(points), np.int64)
    for _ in range(rounds):
        dist = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
        assign = dist.argmin(1)
        for j in range(k):
            members = points[assign == j]
            if len(members):
                centres[j] = members.mean(0)
    return assign


def _backoff(counts: np.ndarray, prior_row: np.ndarray, weight: float) -> np.ndarray:
    """``(counts + weight * prior_row) / (row total + weight)`` per row."""
    return (counts + weight * prior_row) / (counts.sum(-1, keepdims=True) + weight)


def _distributional_groups(pairs: np.ndarray, start: np.ndarray, groups: int, unigram: np.ndarray,
                           config: EntropyBuildConfig) -> np.ndarray:
    """Regroup conditioning indices so each group's successor distribution codes its members cheaply.

    ``pairs[a, b]`` counts conditioning index ``a`` followed by coded index
    ``b``. Indices never seen keep their starting (codebook k-means) group.
    """
    assign = start.copy()
    unseen = pairs.sum(1) == 0
    for _ in range(config.cluster_rounds):
        member = np.zeros((groups, pairs.shape[0]))
        member[assign, np.arange(pairs.shape[0])] = 1.0
        log_q = np.log2(_backoff(member @ pairs, unigram[None], config.alpha))
        new = (-pairs @ log_q.T).argmin(1)
        new[unseen] = start[unseen]
        if np.array_equal(new, assign):
            break
        assign = new
    return assign


def _pairs(codes: list[np.ndarray], level: int) -> tuple[np.ndarray, np.ndarray]:
    """(conditioning index, coded index) pairs of one level over all clips."""
    if level == 0:
        cond = [c[0, :-1] for c in codes]
        coded = [c[0, 1:] for c in codes]
    else:
        cond = [c[level - 1] for c in codes]
        coded = [c[level] for c in codes]
    return (np.concatenate(cond).astype(np.int64) if cond else np.zeros(0, np.int64),
            np.concatenate(coded).astype(np.int64) if coded else np.zeros(0, np.int64))


def fit_context_model(codes_by_prior: dict[int, list[np.ndarray]], n_priors: int, codebooks: Sequence[np.ndarray],
                      config: EntropyBuildConfig) -> EntropyModel:
    """Fit the context model's groups and tables on training codes.

    Parameters
    ----------
    codes_by_prior : dict[int, list[np.ndarray [shape=(n_levels, frames)]]]
        Training codes per prior id (classes with no data get the all-class tables).
    n_priors : int
    codebooks : list of np.ndarray [shape=(K, code_dim)]
        Normalised codebook of every level (the clustering's start).

    Returns
    -------
    EntropyModel
        ``groups + 1`` contexts per level; the last is the start context.
    """
    n_levels = len(codebooks)
    k = codebooks[0].shape[0]
    g = config.groups
    everything = [c for arrs in codes_by_prior.values() for c in arrs]
    probs = np.zeros((n_priors, n_levels, g + 1, k))
    context_of = np.zeros((n_levels, k), np.int64)
    for level in range(n_levels):
        cond, coded = _pairs(everything, level)
        unigram = np.bincount(np.concatenate([c[level] for c in everything]).astype(np.int64) if everything else np.zeros(0, np.int64),
                              minlength=k) + 0.5
        unigram = unigram / unigram.sum()
        pairs = np.bincount(cond * k + coded, minlength=k * k).reshape(k, k).astype(np.float64)
        start = _kmeans(codebooks[0 if level == 0 else level - 1], g, config.kmeans_rounds, config.seed + level)
        groups = _distributional_groups(pairs, start, g, unigram, config)
        context_of[level] = groups

        def counts_of(arrs: list[np.ndarray]) -> np.ndarray:
            c_cond, c_coded = _pairs(arrs, level)
            ctx = groups[c_cond]
            if level == 0:  # each clip's first frame is coded in the start context
                ctx = np.concatenate([ctx, np.full(len(arrs), g)])
                c_coded = np.concatenate([c_coded, [int(a[0, 0]) for a in arrs]]).astype(np.int64)
            return np.bincount(ctx * k + c_coded, minlength=(g + 1) * k).reshape(g + 1, k).astype(np.float64)

        shared = _backoff(counts_of(everything), unigram[None], config.alpha)
        for prior in range(n_priors):
            arrs = codes_by_prior.get(prior, [])
            probs[prior, level] = _backoff(counts_of(arrs), shared, config.shrinkage) if arrs else shared
    return EntropyModel.from_probabilities(probs, context_of, g, config.precision_bits)


def expected_level_bits(codes_by_prior: dict[int, list[np.ndarray]], n_priors: int, codebooks: Sequence[np.ndarray],
                        config: EntropyBuildConfig) -> np.ndarray:
    """Expected bits per index at each level and prior, ``(n_priors, n_levels)``, by two-fold cross-fitting.

    What the encoder expects a level to cost when it maps a bitrate to a
    depth. Tables fitted on every other clip code the remaining clips (and
    the other way round): measured on the tables' own training codes the
    estimate was up to 1.3 bit/index optimistic (ambient, 41 minutes of
    audio), which overshot bitrates. A prior without codes gets the
    frame-weighted mean of the others; no level is planned above its fixed
    length ``log2(K)``.
    """
    n_levels = len(codebooks)
    total = np.zeros((n_priors, n_levels))
    frames = np.zeros(n_priors)
    for fold in range(2):
        fit_on = {p: arrs[fold::2] for p, arrs in codes_by_prior.items()}
        held = {p: arrs[1 - fold::2] for p, arrs in codes_by_prior.items()}
        model = fit_context_model(fit_on, n_priors, codebooks, config)
        for prior, arrs in held.items():
            n = sum(a.shape[1] for a in arrs)
            if n and fit_on.get(prior):
                total[prior] += model.mean_level_bits(arrs, prior) * n
                frames[prior] += n
    if frames.sum() == 0:
        return np.full((n_priors, n_levels), math.log2(codebooks[0].shape[0]))
    out = np.where(frames[:, None] > 0, total / np.maximum(frames, 1)[:, None], total.sum(0) / frames.sum())
    # Tables fitted on too little audio can cost more than fixed-length indices on new
    # clips (8 minutes per class: 10.4-11.1 bits); never plan with more than the fixed length.
    return np.minimum(out, math.log2(codebooks[0].shape[0]))


def bits_per_index(model: EntropyModel, codes: list[np.ndarray], prior: int, depth: int) -> float:
    """Mean ideal code length (bits) of the first ``depth`` levels of ``codes`` under ``model``.

    Each array is coded as one chunk (contexts restart at its first frame).
    """
    total, n = 0.0, 0
    for c in codes:
        depths = np.full(c.shape[1], depth)
        total += ideal_bits(model, c[:depth], depths, np.full(c.shape[1], prior))
        n += depth * c.shape[1]
    return total / max(n, 1)


# --------------------------------------------------------------------------- command


def held_out_codes(codec, corpus: Path, labels: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """Codes of the corpus's held-out clips (mono downmix, each with its class's profile)."""
    bb = codec.backbone
    out: dict[str, list[np.ndarray]] = {label: [] for label in labels}
    for clip in corpus_clips(corpus, "test"):
        if clip.label not in out:
            continue
        x = read_mono(clip.path, bb.config.sample_rate_hz)
        n_frames = bb.mdct.n_frames(x.size)
        vector = bb.profile_vectors[bb.config.profiles.index(clip.label)]
        out[clip.label].append(encode_signal(bb, x, np.repeat(vector[None], n_frames, 0), bb.config.n_levels))
    return out


def build_entropy_tables(codec, caches: Sequence[Path], out: Path, config: EntropyBuildConfig = EntropyBuildConfig(),
                         held_out_corpus: Path | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Build and write the entropy tables of ``codec``'s backbone weights.

    Parameters
    ----------
    codec : AdaptiveCodec
        Its backbone encodes the training audio; its weights id and hash are
        recorded in the table file.
    caches : list of Path
        Training-audio caches (never held-out audio).
    out : Path
        Table file to write (normally ``entropy.safetensors`` next to the weights).
    held_out_corpus : Path, optional
        A corpus whose held-out clips (``train/codec_data.py`` split) are
        coded before/after to report bits per index per class.

    Returns
    -------
    dict
        The provenance stored in the file (data minutes, held-out results).
    """
    bb = codec.backbone
    labels = [c for c in BUILTIN_CLASSES if c in bb.config.profiles]
    t0 = time.monotonic()
    total_s = config.minutes_per_class * 60 * len(labels)
    with tqdm(total=round(total_s), unit="s audio", desc="encode training audio") as bar:
        codes = collect_codes(bb, caches, labels, config, progress=lambda s: bar.update(round(s)))
    minutes = {label: sum(c.shape[1] for c in codes[label]) / bb.config.frame_rate_hz / 60 for label in labels}
    if not any(codes.values()):
        raise AdaptiveCodecError(f"no training audio found in {', '.join(map(str, caches)) or 'no caches'}")
    from adaptive_codec.backbone.inference import torch_model  # torch: the training side

    books = [lvl.normalized_codebook().detach().double().numpy() for lvl in torch_model(bb).quantizer.levels]
    by_prior = {bb.config.profiles.index(label): codes[label] for label in labels}
    model = fit_context_model(by_prior, len(bb.config.profiles), books, config)
    model = model.with_level_bits(expected_level_bits(by_prior, len(bb.config.profiles), books, config))
    provenance: dict[str, Any] = {
        "config": asdict(config),
        "caches": [Path(c).name for c in caches],
        "training_minutes": {k: round(v, 2) for k, v in minutes.items()},
        "build_seconds": None,
    }
    if held_out_corpus is not None:
        static = EntropyModel.from_logits(coding_prior_logits(bb.prior_logits))
        held = held_out_codes(codec, held_out_corpus, labels)
        # Score at the depths the codec will choose with the new tables (their expected bits per level).
        with_tables = type(codec)(bb, codec.weights_meta, codec.registry, entropy_model=model)
        results = {}
        for label in labels:
            if not held[label]:
                continue
            prior = bb.config.profiles.index(label)
            depth = with_tables.depth_for(codec.registry.get(label))
            before = bits_per_index(static, held[label], prior, depth)
            after = bits_per_index(model, held[label], prior, depth)
            frames = sum(c.shape[1] for c in held[label])
            results[label] = {"clips": len(held[label]), "frames": frames, "depth": depth,
                              "static_bits_per_index": round(before, 3), "bits_per_index": round(after, 3)}
            echo(f"held-out {label:8s} {len(held[label]):3d} clips, depth {depth:2d}: "
                 f"{before:.2f} -> {after:.2f} bits/index (fixed 10): saves {1 - after / 10:.1%} "
                 f"(static priors {1 - before / 10:.1%})")
        provenance["held_out"] = results
    provenance["build_seconds"] = round(time.monotonic() - t0, 1)
    model.save(out, weights_id=codec.weights_meta["weights_id"], weights_sha256=codec.weights_meta["sha256"],
               provenance=provenance)
    echo(f"wrote {out}: {model.n_priors} priors x {model.n_levels} levels x {model.n_contexts} contexts, "
         f"from {sum(minutes.values()):.1f} min of training audio in {provenance['build_seconds']:.0f} s; "
         f"for weights {codec.weights_meta['weights_id']}")
    return provenance
