"""Pack a small, class-balanced shard of cached training audio for a lent GPU.

    python tools/pack_shard.py OUT_DIR --cache DIR [--cache DIR ...] [--mib 38] [--seed N]
        [--format flac|npy]

The codec's training caches (24 kHz mono int16 ``<label>.npy`` + ``<label>.json``,
written by ``adaptive-codec train codec``; ~1.5 GB here) are far larger than
what travels to a device machine (64 MiB in all, the repository included).
This draws clips at random, an equal number of seconds per class, until the
shard's encoded bytes reach ``--mib``, and writes ``<label>.flac`` (lossless,
16-bit: about twice the audio of raw int16 in the same luggage) or
``<label>.npy`` beside each ``<label>.json`` index
(:func:`adaptive_codec.train.shards.pack`). ``tools/device_train.py`` decodes
a FLAC shard into the cache format ``CropSampler`` reads
(:func:`adaptive_codec.train.shards.expand_shard`); an npy shard is read as it
is. Long clips are cut to at most ``--max-clip-s`` so one soundtrack cannot
fill a class. Different ``--seed`` values give different shards: rotate them
between device calls.

Only corpus *train-split* caches and pool caches should be packed: the
held-out corpus recordings stay out of training wherever it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adaptive_codec.train.shards import FORMATS, pack


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
