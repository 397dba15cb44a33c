"""A/B of backbone weights files on every held-out corpus clip, at fixed depth.

For each weights file and class: every held-out clip of the corpus (first
``--seconds``, mono, 24 kHz, near-silent clips skipped), coded with the
class's own profile at a fixed depth of ``--depths`` RVQ levels (no
energy-adaptive depth, no entropy tables: what the backbone alone does).
Speech is scored with PESQ-WB and STOI, every class with the log-mel
distance of the training logs (bels, lower is better) and ViSQOL v3 (audio
mode, the metric of the corpus benchmark and of issue 7's routing target;
``--no-visqol`` skips it: it is most of the run time). ``kbps`` is the
index bits under the weights' own per-level priors at the largest depth:
the rate the entropy tables will roughly see.

``--native-rate`` scores as the codec is used and benchmarked
(``codec_quality.py``, ``adaptive-codec bench``): each clip is read at its own
sample rate, resampled to 24 kHz for the backbone with the codec's resampler,
and the decoded audio resampled back, so band-limited sources (the corpus's
16 kHz speech and mixed files) are judged on their own band. The default
scores both signals at 24 kHz. The two can disagree: on 16 kHz speech a
decoder that puts energy above 8 kHz, where the 24 kHz reference has none,
loses ViSQOL at 24 kHz that it does not lose at 16 kHz (docs/training-journal.md,
"A CPU cooldown that was not shipped").

This compares checkpoints before one is shipped (docs/TRAINING.md), so the
clips that choose are held-out ones: say so wherever the choice is reported.

Usage (from the repository root; ~1 minute per weights file on one core without ViSQOL, ~3 with it)::

    python benchmarks/weights_ab.py OLD.safetensors NEW.safetensors [...] --corpus ../shared/corpus
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.threads import pin_threads  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def index_kbps(model, audio: np.ndarray, profile: str, n_q: int) -> float:
    """Kbps of the first ``n_q`` levels' indices under the model's per-level prior."""
    import torch

    from adaptive_codec.backbone.losses import code_bits

    cfg = model.config
    x = torch.from_numpy(audio).float()[None]
    cond = model.profile_vector(profile)[None, None, :]
    with torch.no_grad():
        codes = model.encode_codes(x, cond, n_q)  # (1, levels, frames)
        prior = model.prior_logits[cfg.profiles.index(profile)][None]
        bits = float(code_bits(codes, prior[:, : codes.shape[1]], torch.tensor([n_q])).sum())
    return bits / (len(audio) / cfg.sample_rate_hz) / 1000


def native_clips(corpus: Path, seconds: float) -> dict[str, list[tuple[np.ndarray, int]]]:
    """Every held-out clip at its own sample rate: first ``seconds``, mono, near-silent ones skipped.

    The same clips as the training's held-out loader (whose silence test is
    on the 24 kHz version; the RMS barely depends on the rate).
    """
    import soundfile as sf

    from adaptive_codec.profiles import BUILTIN_CLASSES

    from adaptive_codec.train.codec_data import corpus_clips

    out: dict[str, list[tuple[np.ndarray, int]]] = {c: [] for c in BUILTIN_CLASSES}
    for clip in corpus_clips(Path(corpus), "test"):
        sr = sf.info(str(clip.path)).samplerate
        data, _ = sf.read(str(clip.path), dtype="float32", always_2d=True, frames=int(seconds * sr))
        x = data.mean(axis=1)
        if np.sqrt(np.mean(x**2)) > 1e-3:
            out[clip.label].append((x, sr))
    return out


def score(weights: Path, clips: dict[str, list[tuple[np.ndarray, int]]], depths: list[int],
          with_visqol: bool = True) -> dict[str, float]:
    """Mean metrics per class and depth for one weights file.

    ``clips`` holds ``(audio, sample_rate_hz)`` pairs; the backbone codes each
    at 24 kHz and the scores are taken at the clip's own rate.
    """
    from adaptive_codec.backbone.weights import load_weights
    from adaptive_codec.bench.metrics import visqol
    from adaptive_codec.audio.resampling import resample_signal
    from adaptive_codec.train.codec_eval import speech_scores, mel_distance, roundtrip

    model, _ = load_weights(weights)
    rate = model.config.sample_rate_hz

    out: dict[str, float] = {}
    for label, pairs in clips.items():
        # the backbone's input, resampled once per clip for every depth and the kbps
        inputs = [ref if sr == rate else resample_signal(ref, sr, rate) for ref, sr in pairs]
        for n_q in depths:
            mels, pesqs, stois, visqols = [], [], [], []
            for (ref, sr), x in zip(pairs, inputs):
                est = roundtrip(model, x, label, n_q)
                if sr != rate:
                    est = resample_signal(est, rate, sr)[: len(ref)]
                mels.append(mel_distance(est, ref, sr))
                if with_visqol:
                    visqols.append(visqol(ref, est, sr))
                if label == "speech":
                    p, s = speech_scores(ref, est, sr)
                    stois.append(s)
                    if p is not None:
                        pesqs.append(p)
            out[f"{label} mel@{n_q}"] = float(np.mean(mels))
            if visqols:
                out[f"{label} ViSQOL@{n_q}"] = float(np.mean(visqols))
            if pesqs:
                out[f"speech PESQ-WB@{n_q}"] = float(np.mean(pesqs))
                out[f"speech STOI@{n_q}"] = float(np.mean(stois))
        out[f"{label} kbps@{max(depths)}"] = float(np.mean([index_kbps(model, x, label, max(depths)) for x in inputs]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", type=Path, nargs="+", help="backbone .safetensors files to compare")
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--seconds", type=float, default=8.0, help="excerpt length (default 8)")
    parser.add_argument("--depths", default="4,8", help="fixed RVQ depths, comma-separated (default 4,8)")
    parser.add_argument("--native-rate", action="store_true",
                        help="score each clip at its own sample rate, as the benchmarks do (default: at 24 kHz)")
    parser.add_argument("--no-visqol", action="store_true", help="skip ViSQOL (about halves the run time)")
    args = parser.parse_args(argv)

    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (manifest.csv missing)", file=sys.stderr)
        return 2
    for w in args.weights:
        if not w.is_file():
            print(f"error: {w}: no such weights file", file=sys.stderr)
            return 2
    try:
        depths = sorted({int(d) for d in args.depths.split(",")})
    except ValueError:
        print(f"error: --depths {args.depths!r}: expected integers like 4,8", file=sys.stderr)
        return 2

    pin_threads(1)
    from adaptive_codec.backbone.weights import read_metadata

    from adaptive_codec.train.codec_eval import HeldOutSet

    # the training's held-out loader, with no cap on clips per class
    try:
        if args.native_rate:
            clips = native_clips(args.corpus, args.seconds)
        else:
            clips = {label: [(x, 24000) for x in xs] for label, xs in
                     HeldOutSet.from_corpus(args.corpus, per_class=sys.maxsize, seconds=args.seconds).audio.items()}
    except (OSError, RuntimeError, ValueError, AttributeError) as exc:  # soundfile: RuntimeError; columns: AttributeError
        print(f"error: {args.corpus}: cannot read the held-out clips ({exc})", file=sys.stderr)
        return 2
    print("held-out clips: " + ", ".join(f"{k} {len(v)}" for k, v in clips.items())
          + f"; first {args.seconds:g} s, fixed depth {depths}; scored at "
          + ("each clip's own sample rate" if args.native_rate else "24 kHz"))
    rows = []
    for w in args.weights:
        try:
            version = read_metadata(w)["weights_version"]
            rows.append((f"{version} ({w})", score(w, clips, depths, not args.no_visqol)))
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"scored {rows[-1][0]}", file=sys.stderr, flush=True)
    keys = list(rows[0][1])
    print("| weights | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, r in rows:
        print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
