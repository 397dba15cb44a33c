"""The torch-free runtime against the torch model, side by side in one run (issue 32).

Measures, on one thread, each implementation of the backbone in turn
(``ADAPTIVE_CODEC_EXECUTOR`` = ``torch``, ``onnxruntime``, ``numpy``):

1. codec round trip (encode + decode, in process) x real time on held-out
   music (all held-out music clips joined, 44.1 kHz stereo, ~56 s) and
   held-out speech (held-out speech clips joined to 60 s, 16 kHz mono),
   best of ``--repeats`` with the implementations interleaved, actual kbps,
   and the quality of each implementation's stream decoded by itself and by
   the other (PESQ-WB on speech, ViSQOL audio mode on music);
2. CLI wall time and peak RSS of ``encode`` (``auto``: with the classifier,
   and with a named profile: without it) and ``decode`` of a 1 s file and of
   a 10-minute 48 kHz stereo file built from corpus clips (torch and
   onnxruntime);
3. ``archive create`` throughput, ``--jobs 1`` and ``--jobs 2``, on the
   held-out clips (torch and onnxruntime; peak RSS of the largest process),
   and on a local Dask cluster of 2 workers (peak RSS of the client and of
   the largest worker process);
4. with ``--installs``: fresh-venv install size and time of the base package
   and of ``[dev]`` from a wheel of this checkout (pip resolves from the
   configured local wheel folders and PyPI).

Usage (from the repository root)::

    python benchmarks/runtime.py --out benchmarks/results/runtime.txt [--installs]
    python benchmarks/runtime.py --quick          # no long file, one repeat, no ViSQOL
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from adaptive_codec import AdaptiveCodec  # noqa: E402
from adaptive_codec.audio import load_audio, resample  # noqa: E402
from adaptive_codec.bench.corpus import is_held_out  # noqa: E402
from adaptive_codec.codec import EXECUTOR_ENV_VAR  # noqa: E402
from adaptive_codec.threads import pin_threads  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXECUTORS = ("torch", "onnxruntime", "numpy")
CLI_EXECUTORS = ("torch", "onnxruntime")


def held_out(corpus: Path, label: str) -> list[Path]:
    rows = csv.DictReader(open(corpus / "manifest.csv", newline="", encoding="utf-8"))
    return [corpus / r["path"] for r in rows if r["label"] == label and is_held_out(r["source"])]


def joined(paths: list[Path], sr: int, channels: int, seconds: float) -> np.ndarray:
    """Clips resampled to ``sr`` with the codec's resampler, ``channels`` wide, joined up to ``seconds``."""
    parts, total = [], 0
    for path in paths:
        x, info = load_audio(path)
        x = resample(x, info.sample_rate_hz, sr)
        x = np.repeat(x[:1], channels, 0) if x.shape[0] < channels else x[:channels]
        parts.append(x)
        total += x.shape[1]
        if total >= seconds * sr:
            break
    return np.concatenate(parts, axis=1)[:, : int(seconds * sr)].astype(np.float32)


def round_trips(inputs: dict[str, tuple[np.ndarray, int, str]], repeats: int, visqol_on: bool) -> list[str]:
    from adaptive_codec.bench.metrics import pesq_wb, visqol

    import torch

    torch.set_num_threads(1)
    pin_threads(1)
    codecs = {name: AdaptiveCodec.default(executor=name) for name in EXECUTORS}
    lines = [f"{'input':8s} {'executor':12s} {'s':>5s} {'kbps':>6s} {'enc x rt':>9s} {'dec x rt':>9s} "
             f"{'round trip x rt':>15s}"]
    streams: dict[tuple[str, str], bytes] = {}
    speed: dict[tuple[str, str], float] = {}
    for label, (x, sr, profile) in inputs.items():
        seconds = x.shape[1] / sr
        best = {name: (np.inf, np.inf) for name in EXECUTORS}
        for _ in range(repeats):
            for name, codec in codecs.items():  # interleaved: load drifts hit every executor alike
                t0 = time.perf_counter()
                blob = codec.encode(x if x.shape[0] > 1 else x[0], sr, profile=profile)
                t1 = time.perf_counter()
                codec.decode(blob)
                t2 = time.perf_counter()
                best[name] = (min(best[name][0], t1 - t0), min(best[name][1], t2 - t1))
                streams[label, name] = blob
        for name in EXECUTORS:
            enc, dec = best[name]
            speed[label, name] = seconds / (enc + dec)
            kbps = len(streams[label, name]) * 8 / seconds / 1000
            lines.append(f"{label:8s} {name:12s} {seconds:5.1f} {kbps:6.2f} {seconds / enc:9.1f} {seconds / dec:9.1f} "
                         f"{speed[label, name]:15.1f}")
    lines.append("")
    for label in inputs:
        ratio = speed[label, "onnxruntime"] / speed[label, "torch"]
        lines.append(f"{label}: runtime (onnxruntime) round trip = {ratio:.2f}x torch's "
                     f"(numpy: {speed[label, 'numpy'] / speed[label, 'torch']:.2f}x)")
    lines += ["", "quality: each stream decoded by each implementation (writer -> reader)",
              f"{'input':8s} {'metric':8s} " + " ".join(f"{w[:5]}->{r[:5]:5s}" for w in CLI_EXECUTORS for r in CLI_EXECUTORS)
              + "  same-writer bytes equal"]
    for label, (x, sr, _) in inputs.items():
        metric = "pesq_wb" if label == "speech" else "visqol"
        if metric == "visqol" and not visqol_on:
            continue
        score = pesq_wb if metric == "pesq_wb" else visqol
        ref = x[0] if x.shape[0] == 1 else x.mean(0)
        values = []
        for writer in CLI_EXECUTORS:
            for reader in CLI_EXECUTORS:
                y, _ = codecs[reader].decode(streams[label, writer])
                y = y if y.ndim == 1 else y.mean(0)
                values.append(score(ref, y, sr))
        same = streams[label, "torch"] == streams[label, "onnxruntime"]
        lines.append(f"{label:8s} {metric:8s} " + " ".join(f"{v:12.4f}" for v in values) + f"  {same}")
    return lines


#: Runs the CLI and writes, at exit, its own VmHWM and its waited children's largest ru_maxrss (KiB).
_WRAPPER = """
import atexit, os, resource, runpy, sys
def _record():
    with open('/proc/self/status') as status:
        hwm = [line.split()[1] for line in status if line.startswith('VmHWM:')]
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with open(os.environ['RUNTIME_BENCH_HWM_FILE'], 'w') as out:
        out.write(f"{hwm[0] if hwm else 0} {children}")
atexit.register(_record)
sys.argv = ['adaptive-codec'] + sys.argv[1:]
runpy.run_module('adaptive_codec', run_name='__main__', alter_sys=True)
"""


def cli(name: str, args: list[str], executor: str, split: bool = False):
    """Wall s, peak RSS MiB and exit status of ``adaptive-codec ARGS``.

    The peak is the command's own high-water mark (``VmHWM`` before exit:
    ``wait4``'s ``ru_maxrss`` of a child would include this process's size
    when it was started) or its largest worker's, whichever is larger. With
    ``split``: wall s, own peak MiB, largest descendant's peak MiB (a Dask
    worker: Linux folds each reaped grandchild's peak into its parent's) and
    exit status.
    """
    with tempfile.TemporaryDirectory() as tmp:
        hwm_file = Path(tmp) / "hwm"
        env = dict(os.environ, **{EXECUTOR_ENV_VAR: executor, "RUNTIME_BENCH_HWM_FILE": str(hwm_file)})
        t0 = time.monotonic()
        done = subprocess.run([sys.executable, "-c", _WRAPPER, *args], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=env, cwd=REPO)
        wall = time.monotonic() - t0
        own, children = (int(v) for v in hwm_file.read_text().split()) if hwm_file.exists() else (0, 0)
    if split:
        return wall, own / 1024, children / 1024, done.returncode
    return wall, max(own, children) / 1024, done.returncode


def cli_runs(corpus: Path, tmp: Path, long_minutes: float, archive_inputs: list[Path]) -> list[str]:
    music = held_out(corpus, "music")
    short = tmp / "one_second.flac"
    sf.write(short, joined(music, 44100, 2, 1.0).T, 44100, subtype="PCM_16")
    cases = [("1 s file", short)]
    if long_minutes > 0:
        long = tmp / "long.flac"
        pool = [p for label in ("speech", "music", "ambient") for p in sorted(held_out(corpus, label))]
        pool += [corpus / r["path"] for r in csv.DictReader(open(corpus / "manifest.csv", encoding="utf-8"))]
        sf.write(long, joined(pool * 4, 48000, 2, long_minutes * 60).T, 48000, subtype="PCM_16")
        cases.append((f"{long_minutes:g} min 48 kHz stereo", long))
    lines = [f"{'file':24s} {'command':22s} {'executor':12s} {'wall s':>7s} {'peak RSS MiB':>13s}  status"]
    for label, path in cases:
        for executor in CLI_EXECUTORS:
            acx, wav = tmp / f"{path.stem}.{executor}.acx", tmp / f"{path.stem}.{executor}.wav"
            for command, args in (("encode (auto)", ["encode", str(path), str(acx), "--force"]),
                                  ("encode --profile music", ["encode", str(path), str(acx), "--force",
                                                              "--profile", "music"]),
                                  ("decode", ["decode", str(acx), str(wav), "--force"])):
                wall, rss, rc = cli(command, args, executor)
                lines.append(f"{label:24s} {command:22s} {executor:12s} {wall:7.2f} {rss:13.0f}  "
                             f"{'ok' if rc == 0 else f'FAILED ({rc})'}")
    seconds = sum(sf.info(str(p)).duration for p in archive_inputs)
    lines += ["", f"archive create of {len(archive_inputs)} held-out clips ({seconds:.0f} s of audio):",
              f"{'jobs':>4s} {'executor':12s} {'wall s':>7s} {'x real time':>11s} {'peak RSS MiB':>13s}  status"]
    for jobs in (1, 2):
        for executor in CLI_EXECUTORS:
            out = tmp / f"a{jobs}.{executor}.aca"
            wall, rss, rc = cli("archive", ["archive", "create", str(out), *map(str, archive_inputs),
                                            "--jobs", str(jobs), "--force"], executor)
            lines.append(f"{jobs:4d} {executor:12s} {wall:7.2f} {seconds / wall:11.1f} {rss:13.0f}  "
                         f"{'ok' if rc == 0 else f'FAILED ({rc})'}")
    if importlib.util.find_spec("distributed") is None:
        return lines + ["", "Dask: not measured (the distributed extra is not installed)"]
    lines += ["", "archive create on a local Dask cluster (--workers 2, one thread each), same clips:",
              f"{'executor':12s} {'wall s':>7s} {'x real time':>11s} {'client MiB':>11s} {'worker MiB':>11s}  status"]
    for executor in CLI_EXECUTORS:
        out = tmp / f"dask.{executor}.aca"
        wall, own, worker, rc = cli("dask", ["archive", "create", str(out), *map(str, archive_inputs),
                                             "--workers", "2", "--force"], executor, split=True)
        lines.append(f"{executor:12s} {wall:7.2f} {seconds / wall:11.1f} {own:11.0f} {worker:11.0f}  "
                     f"{'ok' if rc == 0 else f'FAILED ({rc})'}")
    return lines


def installs(tmp: Path) -> list[str]:
    """Fresh-venv install time and size of the base package and of [dev], from a wheel of this checkout."""
    dist, src = tmp / "dist", tmp / "src"
    # From a copy: a build in the checkout leaves an egg-info there that makes pip
    # (with the checkout on PYTHONPATH) think the package is installed.
    src.mkdir()
    for item in ("pyproject.toml", "setup.py", "README.md", "adaptive_codec", "profiles", "classifiers", "examples"):
        if (REPO / item).is_dir():
            shutil.copytree(REPO / item, src / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (REPO / item).is_file():
            shutil.copy2(REPO / item, src / item)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist), str(src)], check=True, capture_output=True)
    (wheel,) = dist.glob("adaptive_codec-*.whl")
    lines = [f"wheel: {wheel.name}, {wheel.stat().st_size / 2**20:.1f} MiB",
             f"{'install':8s} {'time s':>7s} {'venv MiB':>9s}  torch installed"]
    base_python = getattr(sys, "_base_executable", sys.executable)
    for kind, spec in (("base", str(wheel)), ("[dev]", f"{wheel}[dev]")):
        venv = tmp / ("venv-" + kind.strip("[]"))
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
        t0 = time.monotonic()
        done = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", spec], capture_output=True, text=True)
        wall = time.monotonic() - t0
        size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20
        has_torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import importlib.util as u; "
                                    "print(u.find_spec('torch') is not None)"], capture_output=True, text=True)
        status = "" if done.returncode == 0 else f"  FAILED: {done.stderr.strip().splitlines()[-1:]}"
        lines.append(f"{kind:8s} {wall:7.1f} {size:9.0f}  {has_torch.stdout.strip()}{status}")
        shutil.rmtree(venv)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--repeats", type=int, default=3, help="round trips per executor (best is kept)")
    parser.add_argument("--long-minutes", type=float, default=10.0, help="length of the long CLI file (0: skip)")
    parser.add_argument("--no-visqol", action="store_true", help="skip ViSQOL on music (slow)")
    parser.add_argument("--installs", action="store_true", help="also time fresh-venv installs (minutes)")
    parser.add_argument("--quick", action="store_true", help="one repeat, no long file, no ViSQOL")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2
    if args.repeats < 1:
        print("error: --repeats must be >= 1", file=sys.stderr)
        return 2
    if args.quick:
        args.repeats, args.long_minutes, args.no_visqol = 1, 0.0, True
    codec = AdaptiveCodec.default()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    load = os.getloadavg()
    lines = [f"# runtime vs torch ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             f"weights {codec.weights_meta['weights_id']}, git {rev or '?'}; machine: {platform.machine()}, "
             f"{os.cpu_count()} cores (shared), python {platform.python_version()}; one thread per process; "
             f"load average at start {load[0]:.1f}"]
    music = joined(held_out(args.corpus, "music"), 44100, 2, 60.0)
    speech = joined(held_out(args.corpus, "speech"), 16000, 1, 60.0)
    inputs = {"music": (music, 44100, "music"), "speech": (speech, 16000, "speech")}
    lines += ["", "## round trip in process (held-out clips)", *round_trips(inputs, args.repeats, not args.no_visqol)]
    archive_inputs = sorted(p for label in ("speech", "music", "ambient") for p in held_out(args.corpus, label))
    with tempfile.TemporaryDirectory(prefix="runtime-bench-") as tmp:
        lines += ["", "## command line (one thread per process)",
                  *cli_runs(args.corpus, Path(tmp), args.long_minutes, archive_inputs)]
        if args.installs:
            lines += ["", "## fresh-venv installs", *installs(Path(tmp))]
    lines.append(f"load average at end {os.getloadavg()[0]:.1f}")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
