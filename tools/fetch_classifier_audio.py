"""Fetch every extra training source of the content classifier (content-v4) into one folder.

Reproduces the data of ``classifiers/content-v4.safetensors`` outside the
repository (nothing fetched here is ever committed)::

    python tools/fetch_classifier_audio.py /work/data/classifier

makes

    OUT/train-pool/   the Debian train-pool (``../shared/train-pool/fetch_debian_audio.py``: 19 packages,
                      speech in 13+ languages, game music, game/field ambience)
    OUT/songs/        eight rock/metal songs, stems summed (``tools/fetch_songs.py``)
    OUT/more/         two more Debian packages, chosen for what the earlier sources lack:
                      supertuxkart-data's 38 music tracks (electronic, pop, rock, celtic, orchestral
                      game music by many artists) and megaglest-data's nature ambience (day/night
                      forest, rain, wind, animals; 24 unique loops, the tilesets' symlinked copies
                      skipped) plus its 9 orchestral/world music tracks; ``manifest.csv`` with
                      ``path,label,group,source,license`` (one recording group per package)

Needs ``apt-get``, ``dpkg-deb``, ``tar`` and network access to the Debian archive (bookworm), and
the Python of the project (soundfile). Idempotent: what is already there is not fetched again.
Licences: supertuxkart-data music CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC-BY-3.0 / CC0 per track (Debian
copyright file, copied to ``OUT/more/licenses/``); megaglest-data CC-BY-SA-3.0.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
POOL_FETCHER = REPO.parent / "shared" / "train-pool" / "fetch_debian_audio.py"

#: package -> (licence summary, [(regex on the path inside the package, label)]); first match wins.
MORE = {
    "supertuxkart-data": ("CC-BY-SA-3.0 / CC-BY-SA-4.0 / CC-BY-3.0 / CC0 per track (Debian copyright)", [
        (r"^usr/share/games/supertuxkart/data/music/[^/]+\.ogg$", "music")]),
    "megaglest-data": ("CC-BY-SA-3.0", [
        (r"/tilesets/hell/", None),  # a synthetic drone and a spoken line
        (r"^usr/share/games/megaglest/tilesets/[^/]+/sounds/[^/]+\.(ogg|wav)$", "ambient"),
        (r"^usr/share/games/megaglest/(techs/megapack/factions/[^/]+|data/core/menu)/music/[^/]+\.ogg$", "music")]),
}


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def fetch_more(out: Path) -> None:
    """Download, extract and list the packages of :data:`MORE` into ``out``."""
    debs, audio, licenses = out / "debs", out / "audio", out / "licenses"
    for d in (debs, audio, licenses):
        d.mkdir(parents=True, exist_ok=True)
    rows = []
    for package, (licence, rules) in MORE.items():
        deb = next(iter(sorted(debs.glob(f"{package}_*.deb"))), None)
        if deb is None:
            _run(["apt-get", "download", package], cwd=debs)
            deb = next(iter(sorted(debs.glob(f"{package}_*.deb"))))
        listing = out / f"{package}.files"
        if not listing.exists():
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
                subprocess.run(["tar", "-x", "-C", tmp], stdin=tar.stdout, check=True)
                tar.wait()
                root = Path(tmp)
                copyright_file = root / "usr" / "share" / "doc" / package / "copyright"
                if copyright_file.exists():
                    shutil.copyfile(copyright_file, licenses / f"{package}.copyright")
                chosen = []
                for path in sorted(root.rglob("*")):
                    # Symlinks are the tilesets' shared copies of one recording: keep the original only.
                    if path.is_symlink() or not path.is_file():
                        continue
                    rel = path.relative_to(root).as_posix()
                    label = next((lab for rx, lab in rules if re.search(rx, rel)), None)
                    if label is None:
                        continue
                    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", rel.replace("usr/share/games/", "", 1))
                    target = audio / label / package / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                    chosen.append(f"{target.relative_to(out).as_posix()}\t{label}\t{rel}")
            listing.write_text("\n".join(chosen) + "\n")
        for line in listing.read_text().splitlines():
            rel, label, original = line.split("\t")
            try:
                duration = sf.info(str(out / rel)).duration
            except (sf.LibsndfileError, RuntimeError) as exc:
                print(f"skipping {rel}: {exc}")
                continue
            rows.append({"path": rel, "label": label, "group": f"deb:{package}",
                         "source": f"deb:{package}:{original}", "license": licence,
                         "duration_s": f"{duration:.3f}"})
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "group", "source", "license", "duration_s"])
        writer.writeheader()
        writer.writerows(rows)
    for package in MORE:
        for label in ("music", "ambient"):
            of = [r for r in rows if r["group"] == f"deb:{package}" and r["label"] == label]
            if of:
                print(f"{package:20s} {label:8s} {len(of):3d} files "
                      f"{sum(float(r['duration_s']) for r in of) / 3600:.2f} h")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for train-pool/, songs/ and more/")
    parser.add_argument("--skip-pool", action="store_true", help="do not run the train-pool fetcher")
    args = parser.parse_args(argv)
    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        print("error: needs apt-get and dpkg-deb (a Debian/Ubuntu machine)", file=sys.stderr)
        return 2
    try:
        if not args.skip_pool:
            if not POOL_FETCHER.is_file():
                print(f"error: {POOL_FETCHER} not found", file=sys.stderr)
                return 2
            _run([sys.executable, str(POOL_FETCHER), str(out / "train-pool")])
        if not (out / "songs" / "manifest.csv").is_file():
            _run([sys.executable, str(REPO / "tools" / "fetch_songs.py"), str(out / "songs")])
        fetch_more(out / "more")
    except subprocess.CalledProcessError as exc:
        print(f"error: {' '.join(map(str, exc.cmd))} failed with status {exc.returncode}", file=sys.stderr)
        return 1
    print(f"extra sources ready: {out / 'train-pool'} {out / 'songs'} {out / 'more'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
