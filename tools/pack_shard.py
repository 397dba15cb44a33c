"""Pack a small, class-balanced shard of cached training audio for a lent GPU.

    python tools/pack_shard.py OUT_DIR --cache DIR [--cache DIR ...] [--mib 38] [--seed N]
        [--format flac|npy]

The codec's training caches (24 kHz mono int16 ``<label>.npy`` + ``<label>.json``,
written by ``adaptive-codec train codec``; ~1.5 GB here) are far larger than
what travels to a device machine (64 MiB in all, the repository included).
This draws clips at random, an equal number of seconds per class, until the
shard's encoded bytes reach ``--mib``, and writes ``<label>.flac`` (lossless,
16-bit: about twice the audio of raw int16 in the same luggage) or
``<label>.npy`` beside each ``<label>.json`` index. ``expand_shard`` (called by
``tools/device_train.py``) decodes a FLAC shard into the cache format
``CropSampler`` reads; an npy shard is read as it is. Long clips are cut to at
most ``--max-clip-s`` so one soundtrack cannot fill a class. Different
``--seed`` values give different shards: rotate them between device calls.

Only corpus *train-split* caches and pool caches should be packed: the
held-out corpus recordings stay out of training wherever it runs.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np

CLASSES = ("speech", "music", "ambient")
SAMPLE_RATE_HZ = 24000
FORMATS = ("flac", "npy")


def _clips(caches: list[Path], label: str) -> list[tuple[Path, dict]]:
    found = []
    for cache in caches:
        meta = cache / f"{label}.json"
        if meta.exists() and (cache / f"{label}.npy").exists():
            found += [(cache, clip) for clip in json.loads(meta.read_text())["clips"]]
    return found


def _encoded_bytes(samples: np.ndarray, fmt: str) -> int:
    """Bytes ``samples`` (int16) take in the shard's format."""
    if fmt == "npy":
        return samples.nbytes
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")
    return len(buf.getvalue())


def pack(caches: list[Path], out: Path, mib: float, seed: int, max_clip_s: float,
         fmt: str = "flac") -> dict[str, float]:
    """Write the shard; return seconds of audio per class.

    Clips are drawn in turn for the class with the fewest seconds so far, so
    the classes hold equal time (a class whose clips run out stops early)
    while their encoded bytes differ: FLAC halves speech and ambient but
    keeps ~65 % of music.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    rng = np.random.default_rng(seed)
    budget = int(mib * 2**20)
    max_clip = int(max_clip_s * SAMPLE_RATE_HZ)
    pools = {label: _clips(caches, label) for label in CLASSES}
    orders = {label: iter(rng.permutation(len(clips)).tolist()) for label, clips in pools.items() if clips}
    arrays: dict[str, list[np.ndarray]] = {label: [] for label in orders}
    index: dict[str, list[dict]] = {label: [] for label in orders}
    used = {label: 0 for label in orders}  # samples
    spent = 0  # encoded bytes
    arrays_of: dict[tuple[Path, str], np.ndarray] = {}  # one memory map per cache file, not per clip
    active = list(orders)
    while active:
        label = min(active, key=lambda lb: used[lb])
        i = next(orders[label], None)
        if i is None:
            active.remove(label)
            continue
        cache, clip = pools[label][i]
        n = min(int(clip["n_samples"]), max_clip)
        if n < SAMPLE_RATE_HZ // 2:
            continue
        # A random window of a long clip, not always its opening.
        start = int(clip["offset"]) + int(rng.integers(0, int(clip["n_samples"]) - n + 1))
        if (cache, label) not in arrays_of:
            arrays_of[cache, label] = np.load(cache / f"{label}.npy", mmap_mode="r")
        samples = np.asarray(arrays_of[cache, label][start:start + n], dtype=np.int16)
        cost = _encoded_bytes(samples, fmt)
        if spent + cost > budget:
            break  # the budget is full; the classes are level to within one clip
        arrays[label].append(samples)
        index[label].append({"path": clip.get("path", ""), "source": clip.get("source", ""),
                             "offset": used[label], "n_samples": n})
        used[label] += n
        spent += cost
    out.mkdir(parents=True, exist_ok=True)
    filled = [label for label in orders if arrays[label]]  # a 0-frame FLAC would not read back
    for label in filled:
        audio = np.concatenate(arrays[label])
        tmp = out / f"{label}.tmp.{fmt}"
        if fmt == "npy":
            np.save(tmp, audio)
        else:
            import soundfile as sf

            sf.write(tmp, audio, SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")
        tmp.replace(out / f"{label}.{fmt}")
        # Index beside its audio, atomically: a half-written index would misread the shard.
        tmp_json = out / f"{label}.tmp.json"
        tmp_json.write_text(json.dumps({"clips": index[label]}))
        tmp_json.replace(out / f"{label}.json")
    return {label: used[label] / SAMPLE_RATE_HZ for label in filled}


def expand_shard(shard: Path, dest: Path) -> Path:
    """The shard as a cache ``CropSampler`` reads: FLAC shards are decoded into ``dest``.

    Returns ``shard`` itself when it already holds ``<label>.npy`` arrays.
    """
    flacs = sorted(shard.glob("*.flac"))
    if not flacs:
        return shard
    import soundfile as sf

    dest.mkdir(parents=True, exist_ok=True)
    for flac in flacs:
        label = flac.stem
        audio, rate = sf.read(flac, dtype="int16")
        if rate != SAMPLE_RATE_HZ or audio.ndim != 1:
            raise ValueError(f"{flac}: expected 24 kHz mono, got {rate} Hz, shape {audio.shape}")
        np.save(dest / f"{label}.npy", audio)
        shutil.copy(shard / f"{label}.json", dest / f"{label}.json")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="shard folder to write (git-ignored, named in carry)")
    parser.add_argument("--cache", type=Path, action="append", required=True,
                        help="a training cache folder (<label>.npy + <label>.json); repeatable")
    parser.add_argument("--mib", type=float, default=38.0, help="total shard size in MiB (default 38)")
    parser.add_argument("--seed", type=int, default=0, help="which random shard (default 0)")
    parser.add_argument("--max-clip-s", type=float, default=20.0,
                        help="longest stretch taken from one clip (default 20 s)")
    parser.add_argument("--format", choices=FORMATS, default="flac",
                        help="flac (default: lossless, ~2x the audio per MiB) or npy (raw int16)")
    args = parser.parse_args(argv)
    missing = [str(c) for c in args.cache if not c.is_dir()]
    if missing:
        print(f"error: not a cache folder: {', '.join(missing)}", file=sys.stderr)
        return 1
    if args.mib <= 0 or args.max_clip_s <= 0:
        print("error: --mib and --max-clip-s must be > 0", file=sys.stderr)
        return 1
    try:
        seconds = pack(args.cache, args.out, args.mib, args.seed, args.max_clip_s, args.format)
    except KeyError as exc:
        print(f"error: a cache index (<label>.json) lacks the field {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:  # unreadable array or index, invalid JSON
        print(f"error: cannot read the caches: {exc}", file=sys.stderr)
        return 1
    if not seconds:
        print(f"error: no cached audio in {', '.join(map(str, args.cache))}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in args.out.iterdir() if p.is_file()) / 2**20
    print(f"{args.out}: {size:.1f} MiB, "
          + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
