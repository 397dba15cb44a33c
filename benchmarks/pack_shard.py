"""Pack a small, class-balanced shard of cached training audio for a lent GPU.

    python benchmarks/pack_shard.py OUT_DIR --cache DIR [--cache DIR ...] [--mib 36] [--seed N]

The codec's training caches (24 kHz mono int16 ``<label>.npy`` + ``<label>.json``,
written by ``adaptive-codec train codec``; ~1.5 GB here) are far larger than
what travels to a device machine (64 MiB in all, the repository included).
This draws whole clips at random, an equal byte budget per class, and writes
them to OUT_DIR in the same cache format, so ``benchmarks/device_train.py``
(or ``CropSampler``) reads it unchanged. Long clips are cut to at most
``--max-clip-s`` so one soundtrack cannot fill a class. Different ``--seed``
values give different shards: rotate them between device calls.

Only corpus *train-split* caches and pool caches should be packed: the
held-out corpus recordings stay out of training wherever it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

CLASSES = ("speech", "music", "ambient")
SAMPLE_RATE_HZ = 24000


def _clips(caches: list[Path], label: str) -> list[tuple[Path, dict]]:
    found = []
    for cache in caches:
        meta = cache / f"{label}.json"
        if meta.exists() and (cache / f"{label}.npy").exists():
            found += [(cache, clip) for clip in json.loads(meta.read_text())["clips"]]
    return found


def pack(caches: list[Path], out: Path, mib: float, seed: int, max_clip_s: float) -> dict[str, float]:
    """Write the shard; return seconds of audio per class."""
    rng = np.random.default_rng(seed)
    budget = int(mib * 2**20 / len(CLASSES)) // 2  # samples per class (int16)
    max_clip = int(max_clip_s * SAMPLE_RATE_HZ)
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for label in CLASSES:
        clips = _clips(caches, label)
        if not clips:
            continue
        arrays, index, used = [], [], 0
        for i in rng.permutation(len(clips)):
            if used >= budget:
                break
            cache, clip = clips[i]
            data = np.load(cache / f"{label}.npy", mmap_mode="r")
            n = min(int(clip["n_samples"]), max_clip, budget - used)
            if n < SAMPLE_RATE_HZ // 2:
                continue
            # A random window of a long clip, not always its opening.
            start = int(clip["offset"]) + int(rng.integers(0, int(clip["n_samples"]) - n + 1))
            arrays.append(np.asarray(data[start:start + n], dtype=np.int16))
            index.append({"path": clip.get("path", ""), "source": clip.get("source", ""),
                          "offset": used, "n_samples": n})
            used += n
        tmp = out / f"{label}.tmp.npy"
        np.save(tmp, np.concatenate(arrays) if arrays else np.zeros(0, np.int16))
        tmp.replace(out / f"{label}.npy")
        # Index beside its array, atomically: a half-written index would misread the shard.
        tmp_json = out / f"{label}.tmp.json"
        tmp_json.write_text(json.dumps({"clips": index}))
        tmp_json.replace(out / f"{label}.json")
        seconds[label] = used / SAMPLE_RATE_HZ
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="shard folder to write (git-ignored, named in carry)")
    parser.add_argument("--cache", type=Path, action="append", required=True,
                        help="a training cache folder (<label>.npy + <label>.json); repeatable")
    parser.add_argument("--mib", type=float, default=36.0, help="total shard size in MiB (default 36)")
    parser.add_argument("--seed", type=int, default=0, help="which random shard (default 0)")
    parser.add_argument("--max-clip-s", type=float, default=20.0,
                        help="longest stretch taken from one clip (default 20 s)")
    args = parser.parse_args(argv)
    missing = [str(c) for c in args.cache if not c.is_dir()]
    if missing:
        print(f"error: not a cache folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    if args.mib <= 0 or args.max_clip_s <= 0:
        print("error: --mib and --max-clip-s must be > 0", file=sys.stderr)
        return 1
    seconds = pack(args.cache, args.out, args.mib, args.seed, args.max_clip_s)
    if not seconds:
        print(f"error: no cached audio in {', '.join(map(str, args.cache))}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 2**20
    print(f"{args.out}: {size:.1f} MiB, "
          + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
