"""Where does adaptive routing gain or lose on the mixed files? (issue 7)

``adaptive-codec bench`` compares adaptive routing ("adaptive-auto") with each
profile forced on the whole file. Routing changes two things at once: the
*conditioning* each segment is coded with (speech / music / ambient
embedding) and the *bit allocation* (each class at its profile's bitrate,
as ``class_allocation.py`` chose them; 6 / 6 / 3 kbps before 2026-11-27).
This script separates them by re-running the mixed files with profile sets
that keep the routing and the allocation but swap the conditioning (custom
profiles with ``override = true`` and ``base = "music"``,
so no code changes):

* ``routed``: the built-in profiles (what ``adaptive-auto`` is);
* ``ambient-on-music``: ambient segments keep their bitrate but use the
  music conditioning;
* ``all-on-music``: speech and ambient segments too: only the allocation is
  left of routing;
* ``routed-uniform-rate``: the built-in conditionings, but every class at
  speech's 6 kbps: only the conditioning is left of routing;
* ``routed-6-6-3``: the built-in conditionings at the allocation before
  2026-11-27 (music 6 kbps, ambient 3): what the new allocation buys;

and the forced ``music`` profile as the anchor (the best fixed profile in the
committed corpus run). Each variant is one ``bench`` run over the mixed files
(same excerpts, ladder and ViSQOL as ``benchmarks/bench_full_corpus.toml``);
the script prints each variant's mean rate-quality points and its BD-rate and
BD-ViSQOL against the forced music profile and against ``routed``, with a 90 %
paired bootstrap interval over the files (``bench.comparison.bd_interval``).

Usage (from the repository root; ~2.5 minutes of CPU per variant)::

    python benchmarks/routing_ablation.py --corpus ../shared/corpus \\
        --out /tmp/routing-ablation > benchmarks/results/routing_ablation.txt
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd

from adaptive_codec.bench.bd_rate import bd_compare
from adaptive_codec.bench.comparison import bd_interval, curve
from adaptive_codec.bench.report import summarize

REPO = Path(__file__).resolve().parents[1]
ANCHOR = "adaptive-music"

CONFIG = """\
bitrates_kbps = [1.5, 3.0, 6.0, 12.0]
profiles = {profiles}
baselines = []
metrics = ["visqol"]
max_clips_per_class = 0
max_mixed_files = 0
max_seconds_mixed = 8.0
bd_metrics = ["visqol"]
snippet_seconds = 0.0
"""

# A built-in profile's labels served by another conditioning and/or bitrate;
# loss weights only matter for training, so they are left at their defaults.
# A swap is a custom profile, so each stream carries it in full (its JSON and
# 32-value conditioning, ~200 bytes: ~0.2 kbps on an 8 s excerpt); the
# variants' rates include that, the built-ins' do not.
SWAP = """\
name = "{name}-as-{base}-{tag}k"
description = "routing ablation: the {name} labels at {kbps:g} kbps on the {base} conditioning"
labels = {labels}
bitrate_kbps = {kbps}
rate_lambda = 0.01
base = "{base}"
override = true
"""

# The same built-in at another bitrate: it keeps the built-in's name, so the
# stream references it as it does the built-in (no embedded profile, no
# overhead) and only the depth differs.
RERATE = """\
name = "{name}"
description = "routing ablation: the {name} profile at {kbps:g} kbps"
labels = {labels}
bitrate_kbps = {kbps}
rate_lambda = 0.01
override = true
"""

# variant -> {built-in profile: (conditioning it is coded with, bitrate or None = its own)}
VARIANTS: dict[str, dict[str, tuple[str, float | None]]] = {
    "routed": {},
    "ambient-on-music": {"ambient": ("music", None)},
    "all-on-music": {"ambient": ("music", None), "speech": ("music", None)},
    "routed-uniform-rate": {"ambient": ("ambient", 6.0), "music": ("music", 6.0)},
    "routed-6-6-3": {"ambient": ("ambient", 3.0), "music": ("music", 6.0)},
}


def _mixed_manifest(corpus: Path, out: Path) -> int:
    """Manifest of the corpus' mixed files with their reference segments; returns the count.

    Paths are written absolute: bench reads a manifest's relative paths
    against the manifest's own folder, which is ``--out``, not the cwd.
    """
    files = [f.resolve() for f in sorted((corpus / "mixed").glob("*.flac"))
             if (f.parent / f"{f.stem}.segments.csv").exists()]
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "segments"])
        for f in files:
            w.writerow([f, "mixed", f.parent / f"{f.stem}.segments.csv"])
    return len(files)


def _profiles_dir(root: Path, swaps: dict[str, tuple[str, float | None]]) -> Path | None:
    if not swaps:
        return None
    from adaptive_codec.profiles import ProfileRegistry

    builtin = ProfileRegistry.default()
    shutil.rmtree(root, ignore_errors=True)  # no profile of an earlier layout may linger
    root.mkdir(parents=True)
    for name, (base, kbps) in swaps.items():
        prof = builtin.get(name)
        labels = "[" + ", ".join(f'"{lb}"' for lb in prof.labels) + "]"
        rate = kbps or prof.bitrate_kbps
        template = RERATE if base == name else SWAP
        (root / f"{name}.toml").write_text(
            template.format(name=name, base=base, labels=labels, kbps=rate,
                            tag=f"{rate:g}".replace(".", "p")))  # names take no dots
    return root


def _run(variant: str, manifest: Path, out: Path, jobs: int) -> pd.DataFrame:
    work = out / variant
    work.mkdir(parents=True, exist_ok=True)
    config = work / "bench.toml"
    config.write_text(CONFIG.format(profiles='["music"]' if variant == "routed" else "[]"))
    cmd = [sys.executable, "-m", "adaptive_codec"]
    prof_dir = _profiles_dir(work / "profiles", VARIANTS[variant])
    if prof_dir is not None:
        cmd += ["--profiles-dir", str(prof_dir)]
    cmd += ["bench", str(manifest), "--out", str(work / "bench"), "--config", str(config),
            "--jobs", str(jobs), "--force"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
        raise SystemExit(f"error: bench for {variant} failed: {tail[0]}")
    results = pd.read_csv(work / "bench" / "results.csv", dtype={"error": str, "clip": str})
    results["error"] = results["error"].fillna("")
    results.loc[results.system == "adaptive-auto", "system"] = variant
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus",
                        help="corpus with mixed/*.flac and their .segments.csv (default ../shared/corpus)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/routing-ablation"),
                        help="work folder for the bench runs (default /tmp/routing-ablation)")
    parser.add_argument("--jobs", type=int, default=1, help="bench worker processes (default 1)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    args = parser.parse_args(argv)
    if not (args.corpus / "mixed").is_dir():
        print(f"error: {args.corpus}: no mixed/ folder (the corpus' labelled mixed files)", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = args.out / "mixed.csv"
    n = _mixed_manifest(args.corpus, manifest)
    if n < 2:
        print(f"error: {args.corpus / 'mixed'}: {n} mixed files with segments (need 2)", file=sys.stderr)
        return 1
    # Each run names its own systems (only "routed" also forces the music profile).
    results = pd.concat([_run(v, manifest, args.out, args.jobs) for v in VARIANTS], ignore_index=True)
    summary = summarize(results)
    meta = json.loads((args.out / "routed" / "bench" / "meta.json").read_text())
    weights = meta.get("weights", {}).get("weights_id", "?")

    print(f"# Routing ablation on {n} mixed files ({args.corpus / 'mixed'})")
    print("8 s excerpts centred on each file's first class change; ladder 1.5/3/6/12 kbps "
          "(routed variants: each profile's own bitrate x rung / 6); ViSQOL v3 audio mode.")
    print(f"weights: {weights}; machine: {meta.get('machine', {}).get('cpu', '?')}, "
          f"jobs {args.jobs}")
    print()
    print("## Mean points (actual kbps, ViSQOL)")
    for system in [ANCHOR, *VARIANTS]:
        rate, quality = curve(summary, "mixed", system, "visqol")
        pts = ", ".join(f"{r:.2f}/{q:.3f}" for r, q in zip(rate, quality))
        print(f"{system:18s} {pts}")
    print()
    swapped = [v for v, swaps in VARIANTS.items() if any(base != name for name, (base, _) in swaps.items())]
    print(f"({' and '.join(swapped)} code with custom profiles, which each stream carries in "
          "full: ~200 bytes, ~0.2 kbps per swapped profile on these 8 s excerpts, counted in their rates; "
          "the rerated variants keep the built-ins' names and pay nothing.)")
    print()
    print("## BD against the forced music profile and against routed (90 % paired bootstrap over files)")
    for system in VARIANTS:
        for anchor in (ANCHOR, "routed"):
            if system == anchor:
                continue
            point = bd_compare(*curve(summary, "mixed", anchor, "visqol"),
                               *curve(summary, "mixed", system, "visqol"))
            spread = bd_interval(results, "mixed", system, anchor, "visqol",
                                 n_resamples=args.resamples)
            print(f"{system} vs {anchor}: BD-rate {point.rate_percent:+.1f} %, "
                  f"BD-ViSQOL {point.quality:+.3f}")
            print(textwrap.indent(spread.sentence("mixed files"), "    "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
