"""Throughput of this checkout against another, measured side by side in one run.

Times the whole pipeline on the bundled examples (speech, music, ambient and
the 41 s mixed file, at their own rates and channels): ``encode_file``
(read, classify, plan, backbone, entropy coding, write) and ``decode_to``,
in a fresh process per repeat with one torch thread, after one untimed
warm-up encode and decode (the classifier's load is not counted), and ``archive
create`` through the command line with ``--jobs 1`` and ``--jobs 2``. Each
tree is run alternately (A B A B ...) so that a change in the machine's load
hits both; the median of the repeats is reported, as x real time, and the
ratio of the two trees.

Usage::

    python benchmarks/throughput.py                          # this checkout only
    python benchmarks/throughput.py --against ../before      # another checkout of the repo
    python benchmarks/throughput.py --against ../before --repeats 5 --out benchmarks/results/throughput.txt

Takes about 1 minute per repeat and tree on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ("speech", "music", "ambient", "mixed")

#: Run in a child process whose PYTHONPATH is the tree: times encode_file and decode_to of every example.
_CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from adaptive_codec.codec import AdaptiveCodec
import soundfile as sf
examples = Path(sys.argv[1])
codec = AdaptiveCodec.default()
out = {}
with tempfile.TemporaryDirectory() as tmp:
    # Warm-up (classifier load, first-call set-up): not timed.
    warm = Path(tmp) / "warm.acx"
    codec.encode_file(warm, examples / "speech.flac")
    codec.decode_to(warm, Path(tmp) / "warm.wav")
    for name in sys.argv[2].split(","):
        src = examples / f"{name}.flac"
        seconds = sf.info(str(src)).duration
        acx, wav = Path(tmp) / f"{name}.acx", Path(tmp) / f"{name}.wav"
        t0 = time.perf_counter(); codec.encode_file(acx, src); t1 = time.perf_counter()
        codec.decode_to(acx, wav); t2 = time.perf_counter()
        out[name] = {"seconds": seconds, "encode_s": t1 - t0, "decode_s": t2 - t1, "bytes": acx.stat().st_size}
print(json.dumps(out))
"""


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def run_pipeline(tree: Path) -> dict:
    """Encode/decode times of every example in a fresh process importing ``tree``'s package."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(tree / "examples"), ",".join(EXAMPLES)],
                          capture_output=True, text=True, env=_env(tree), cwd=tree, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"error: pipeline run in {tree} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_archive(tree: Path, jobs: int) -> float:
    """Seconds of ``archive create`` of the four examples with ``--jobs``."""
    import time

    with tempfile.TemporaryDirectory() as tmp:
        inputs = [str(tree / "examples" / f"{n}.flac") for n in EXAMPLES]
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "adaptive_codec", "archive", "create", "--jobs", str(jobs),
                               str(Path(tmp) / "x.aca"), *inputs],
                              capture_output=True, text=True, env=_env(tree), cwd=tree, timeout=1800)
        if done.returncode != 0:
            raise SystemExit(f"error: archive create in {tree} failed: {done.stderr.strip()[-300:]}")
        return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout of the repository to compare with")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per tree (median reported)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    trees = {"this": REPO}
    if args.against is not None:
        if not (args.against / "adaptive_codec").is_dir():
            print(f"error: {args.against} is not a checkout of adaptive-codec", file=sys.stderr)
            return 1
        trees["against"] = args.against.resolve()
    runs: dict[str, list] = {k: [] for k in trees}
    archives: dict[str, dict[int, list[float]]] = {k: {1: [], 2: []} for k in trees}
    for r in range(args.repeats):
        for key, tree in trees.items():
            runs[key].append(run_pipeline(tree))
            for jobs in (1, 2):
                archives[key][jobs].append(run_archive(tree, jobs))
            print(f"repeat {r + 1}/{args.repeats} {key}: done", file=sys.stderr)
    audio_s = sum(v["seconds"] for v in runs["this"][0].values())
    lines = [f"# throughput, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"median of {args.repeats} alternating runs, 1 torch thread",
             "# trees: " + ", ".join(f"{k} = {v}" for k, v in trees.items()),
             f"{'tree':8s} {'example':8s} {'audio s':>8s} {'encode x':>9s} {'decode x':>9s} {'bytes':>7s}"]
    summary: dict[str, dict[str, float]] = {}
    for key in trees:
        for name in EXAMPLES:
            enc = statistics.median(run[name]["encode_s"] for run in runs[key])
            dec = statistics.median(run[name]["decode_s"] for run in runs[key])
            sec = runs[key][0][name]["seconds"]
            lines.append(f"{key:8s} {name:8s} {sec:8.1f} {sec / enc:9.1f} {sec / dec:9.1f} "
                         f"{runs[key][0][name]['bytes']:7d}")
        enc_all = statistics.median(sum(v["encode_s"] for v in run.values()) for run in runs[key])
        dec_all = statistics.median(sum(v["decode_s"] for v in run.values()) for run in runs[key])
        summary[key] = {"encode": audio_s / enc_all, "decode": audio_s / dec_all,
                        "archive_j1": audio_s / statistics.median(archives[key][1]),
                        "archive_j2": audio_s / statistics.median(archives[key][2])}
    lines.append("")
    lines.append(f"{'tree':8s} {'encode x':>9s} {'decode x':>9s} {'archive -j1 x':>14s} {'archive -j2 x':>14s}")
    for key, s in summary.items():
        lines.append(f"{key:8s} {s['encode']:9.1f} {s['decode']:9.1f} {s['archive_j1']:14.1f} {s['archive_j2']:14.1f}")
    if "against" in summary:
        a, b = summary["this"], summary["against"]
        lines.append("ratio    " + " ".join(f"{a[k] / b[k]:9.3f}" if i < 2 else f"{a[k] / b[k]:14.3f}"
                                           for i, k in enumerate(("encode", "decode", "archive_j1", "archive_j2")))
                     + "   (this / against; > 1 is faster)")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
