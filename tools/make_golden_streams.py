"""Write a set of golden ``.acx`` streams under ``tests/golden/SET/`` (run only on purpose).

Each stream codes a short excerpt of a bundled example clip with fixed
settings; ``tests/golden/SET/manifest.json`` records, per stream, how its
source is cut from the examples, the settings, the stream's SHA-256 and the
SHA-256 of its decoded 16-bit PCM. ``tests/test_golden.py`` decodes the
streams of every set, and re-encodes the sources of the set named in
``tests/golden/current.txt`` (which this script then points at the new set)
and compares bytes. Write a new set when what the encoder writes changes on
purpose (a format version, a new tool, new rate control; docs/FORMAT.md's
versioning); old sets stay, as the streams old archives hold:

    python tools/make_golden_streams.py --set 3.1      # refuses an existing set
    python tools/make_golden_streams.py --set 3.1 --force
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

import adaptive_codec
from adaptive_codec import AdaptiveCodec

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "golden"
EXAMPLES = ROOT / "examples"

#: name -> source (example clip(s), start, seconds) and coding settings. A
#: stereo source takes its left channel from the first clip and its right
#: from the second.
STREAMS = {
    "speech": {"clips": ["speech"], "start_s": 1.0, "duration_s": 2.0, "profile": "speech"},
    "music": {"clips": ["music"], "start_s": 2.0, "duration_s": 2.0, "profile": "music"},
    "ambient": {"clips": ["ambient"], "start_s": 1.0, "duration_s": 2.0, "profile": "ambient"},
    "stereo": {"clips": ["music", "speech"], "start_s": 3.0, "duration_s": 2.0, "profile": "auto"},
    "custom": {"clips": ["speech"], "start_s": 4.0, "duration_s": 2.0, "profile": "lecture.toml"},
    "auto_mixed": {"clips": ["mixed"], "start_s": 4.0, "duration_s": 6.0, "profile": "auto",
                   "bitrate_scale": 0.5},
}


def source_audio(spec: dict) -> tuple[np.ndarray, int]:
    """The excerpt ``(channels, samples)`` float32 a golden stream codes, and its rate."""
    rows, rate = [], None
    for clip in spec["clips"]:
        audio, sr = sf.read(EXAMPLES / f"{clip}.flac", dtype="float32", always_2d=True)
        if rate is not None and sr != rate:
            raise ValueError(f"example clips of a stereo source differ in rate: {sr} vs {rate}")
        rate = sr
        a = int(round(spec["start_s"] * sr))
        rows.append(audio[a : a + int(round(spec["duration_s"] * sr)), 0])
    n = min(len(r) for r in rows)
    return np.stack([r[:n] for r in rows]).astype(np.float32), int(rate)


def pcm16_sha256(audio: np.ndarray) -> str:
    """SHA-256 of decoded audio as little-endian interleaved 16-bit PCM."""
    x = np.atleast_2d(audio)
    pcm = np.clip(np.round(x.T * 32767.0), -32768, 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", required=True, dest="set_name",
                        help="name of the set (a folder under tests/golden/, e.g. the format version 3.1)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing set of that name")
    args = parser.parse_args(argv)
    if not args.set_name or "/" in args.set_name or args.set_name.startswith("."):
        print(f"error: --set {args.set_name!r}: give a plain folder name such as 3.1", file=sys.stderr)
        return 2
    out = OUT / args.set_name
    manifest_path = out / "manifest.json"
    if manifest_path.exists() and not args.force:
        print(f"error: {manifest_path} exists (use --force to regenerate on purpose)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    lecture = out / "lecture.toml"
    if not lecture.exists():  # the custom profile travels with each set
        previous = sorted(OUT.glob("*/lecture.toml"))
        if not previous:
            print("error: no lecture.toml in any golden set to copy into the new one", file=sys.stderr)
            return 1
        lecture.write_text(previous[-1].read_text())
    from adaptive_codec.threads import pin_threads

    pin_threads(1)
    codec = AdaptiveCodec.default()
    manifest = {"weights_id": codec.weights_meta["weights_id"], "version": adaptive_codec.__version__,
                "streams": {}}
    for name, spec in STREAMS.items():
        audio, sr = source_audio(spec)
        profile = spec["profile"]
        if profile.endswith(".toml"):
            profile = str(out / profile)
        blob = codec.encode(audio if audio.shape[0] > 1 else audio[0], sr, profile=profile,
                            bitrate_scale=spec.get("bitrate_scale"))
        decoded, sr2 = codec.decode(blob)
        (out / f"{name}.acx").write_bytes(blob)
        # The decoded reference, for the tolerance check on other CPUs.
        sf.write(out / f"{name}.decoded.flac", np.atleast_2d(decoded).T, sr2, subtype="PCM_16")
        manifest["streams"][name] = {
            **spec, "sample_rate_hz": sr, "channels": int(audio.shape[0]), "bytes": len(blob),
            "stream_sha256": hashlib.sha256(blob).hexdigest(), "decoded_pcm16_sha256": pcm16_sha256(decoded)}
        print(f"{name}: {len(blob)} bytes, {8 * len(blob) / spec['duration_s'] / 1000:.2f} kbps")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    (OUT / "current.txt").write_text(args.set_name + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
