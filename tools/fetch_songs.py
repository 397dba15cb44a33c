"""Fetch rock/metal songs from Debian as extra classifier data (and an out-of-corpus check).

The corpus' and the Debian train-pool's music is game and library music,
almost all of it without distorted guitars: content-v2 called 7 of 8 metal
songs from these packages mostly *ambient*. The two Frets on Fire song
packages hold eight complete rock/metal songs as separate stems (backing
track, lead guitar, sometimes rhythm guitar); this script downloads them,
sums the stems of each song into the full mix a listener hears, and writes

    OUT/music/<package>__<song>.flac      (44.1 kHz stereo, full mixes)
    OUT/manifest.csv                      (path,label,group,source,license)
    OUT/licenses/<package>.copyright      (Debian copyright files)

``OUT`` is then an ``--extra`` source of ``adaptive-codec train classifier``
(one recording group per package, so the per-source hold-out in
``benchmarks/classifier.py`` trains on one package and scores the other).

Usage::

    python tools/fetch_songs.py ~/.cache/adaptive-codec/songs

Needs ``apt-get`` and ``dpkg`` (Debian/Ubuntu) and network access to the
package archive; ``--debs DIR`` uses already downloaded ``.deb`` files instead.
Licences: fretsonfire-songs-muldjord CC BY-SA 3.0 (Muldjord),
fretsonfire-songs-sectoid MIT-style (Carlos Viola Iborra).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

PACKAGES = {
    "fretsonfire-songs-muldjord": "CC-BY-SA-3.0 (Muldjord / El Senator)",
    "fretsonfire-songs-sectoid": "MIT-style (Carlos Viola Iborra)",
}
# Stems of one Frets on Fire song; their sum is the full mix.
STEMS = ("song.ogg", "guitar.ogg", "rhythm.ogg")


def _last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else "no message"


def _download(debs: Path) -> None:
    missing = [p for p in PACKAGES if not list(debs.glob(f"{p}_*.deb"))]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        sys.exit("error: apt-get not found; download the .deb files of "
                 f"{', '.join(missing)} yourself and pass --debs DIR")
    result = subprocess.run(["apt-get", "download", *missing], cwd=debs, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"error: apt-get download failed: {_last_line(result.stderr)}")


def _full_mix(song_dir: Path) -> tuple[np.ndarray, int]:
    parts, rate = [], None
    for name in STEMS:
        path = song_dir / name
        if not path.is_file():
            continue
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        if rate is not None and sr != rate:
            raise ValueError(f"{song_dir}: stems at different sample rates")
        rate = sr
        parts.append(audio)
    if not parts:
        raise ValueError(f"{song_dir}: no stems")
    length = max(len(p) for p in parts)
    mix = np.zeros((length, max(p.shape[1] for p in parts)), np.float32)
    for p in parts:
        mix[: len(p)] += p  # a mono stem broadcasts to both channels
    peak = float(np.max(np.abs(mix)))
    if peak > 0.99:
        # Stems are mastered to be played together by the game's mixer, which
        # limits; scaling keeps the mix unclipped without changing its spectrum.
        mix *= 0.99 / peak
    return mix, rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output folder (created)")
    parser.add_argument("--debs", type=Path, help="folder with the .deb files (downloaded there if missing)")
    args = parser.parse_args(argv)
    if shutil.which("dpkg") is None:
        sys.exit("error: dpkg not found (needed to unpack the .deb files)")
    out = args.out.expanduser()
    (out / "music").mkdir(parents=True, exist_ok=True)
    (out / "licenses").mkdir(exist_ok=True)
    debs = (args.debs or out / "debs").expanduser()
    debs.mkdir(parents=True, exist_ok=True)
    _download(debs)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for package, license_ in PACKAGES.items():
            deb = sorted(debs.glob(f"{package}_*.deb"))[-1]
            tree = Path(tmp) / package
            unpacked = subprocess.run(["dpkg", "-x", str(deb), str(tree)], capture_output=True, text=True)
            if unpacked.returncode != 0:
                sys.exit(f"error: cannot unpack {deb}: {_last_line(unpacked.stderr)}")
            shutil.copy(tree / "usr/share/doc" / package / "copyright", out / "licenses" / f"{package}.copyright")
            for song_dir in sorted({p.parent for p in tree.rglob("song.ogg")}):
                try:
                    mix, rate = _full_mix(song_dir)
                except (ValueError, sf.LibsndfileError) as exc:
                    sys.exit(f"error: {deb.name}: {exc}")
                name = f"{package}__{song_dir.name.replace(' ', '_').lower()}.flac"
                target = out / "music" / name
                partial = target.with_suffix(".part.flac")
                sf.write(partial, mix, rate, subtype="PCM_16")
                os.replace(partial, target)
                rows.append({"path": f"music/{name}", "label": "music", "group": f"deb:{package}",
                             "source": f"deb:{package}:{song_dir.name} [full mix of its stems]",
                             "license": license_})
                print(f"{name}: {len(mix) / rate:.1f} s", flush=True)
    partial = out / "manifest.csv.part"
    with open(partial, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "group", "source", "license"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, out / "manifest.csv")
    print(f"{len(rows)} songs, {out / 'manifest.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
