"""Peak memory and speed of the codec CLI on a long stereo file (issue 5, item 8).

Builds a 10-minute, 48 kHz, stereo FLAC from real corpus recordings in a
temporary folder (speech, music and ambient clips in turn, each resampled to
48 kHz; mono clips are panned slightly so the side channel is not silent),
then runs, each as its own subprocess on one thread:

* ``adaptive-codec encode IN OUT.acx`` (``--profile auto``: classify + route),
* ``adaptive-codec decode OUT.acx OUT.wav``,
* ``adaptive-codec archive create OUT.aca IN`` (``--jobs 1`` and ``--jobs 2``).

For each it reports two peaks of resident memory: the kernel's high-water
mark over the process's whole life (``ru_maxrss`` from ``os.wait4``; for
``--jobs 2`` the largest process of the tree), and the high-water mark when
the command has finished, before the interpreter shuts down (``VmHWM`` read
in an ``atexit`` hook). They differ because unloading the CUDA build of
torch at exit touches ~125 MiB of its libraries' pages; the same two numbers
for a bare ``import torch`` are printed as the floor. Also wall time, CPU
time and x real time. The target is a peak RSS <= 1 GiB for the 10-minute
stereo 48 kHz file.

This is a memory and speed measurement, not a quality one: any corpus clips
will do, and the audio is not scored.

Usage (from the repository root)::

    python benchmarks/codec_memory.py --out benchmarks/results/codec_memory.txt
    python benchmarks/codec_memory.py --minutes 2      # quicker look
"""

from __future__ import annotations

import os

# One thread per process, as the codec is meant to be measured; the CLI
# subprocesses inherit this environment.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.profiles import BUILTIN_CLASSES  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

#: The issue's target for a 10-minute stereo 48 kHz file.
RSS_TARGET_MIB = 1024
#: Left/right gains of mono clips: a slight pan, so mid/side coding has a side to code.
MONO_PAN = (1.0, 0.7)


#: Runs the CLI (or, without arguments, only imports torch) and records
#: VmHWM when it is done, before the interpreter shuts down.
_WRAPPER = """
import atexit, os, runpy, sys
def _record():
    with open('/proc/self/status') as status:
        hwm = [line.split()[1] for line in status if line.startswith('VmHWM:')]
    with open(os.environ['CODEC_MEMORY_HWM_FILE'], 'w') as out:
        out.write(hwm[0] if hwm else '')
atexit.register(_record)
if len(sys.argv) > 1:
    sys.argv = ['adaptive-codec'] + sys.argv[1:]
    runpy.run_module('adaptive_codec', run_name='__main__', alter_sys=True)
else:
    import torch
"""


@dataclass(frozen=True)
class Run:
    """One measured subprocess."""

    name: str
    wall_s: float
    cpu_s: float
    peak_rss_mib: float  # whole life of the process (wait4)
    done_rss_mib: float | None  # when the command was done, before interpreter exit
    returncode: int
    stderr_tail: str


def build_long_input(corpus: Path, path: Path, minutes: float, sample_rate_hz: int = 48_000) -> list[str]:
    """Write a stereo FLAC of ``minutes`` from corpus clips; returns the clips used.

    Clips are taken in turn from speech, music and ambient (sorted by path)
    and repeated if the corpus runs out, so the file switches content class
    every few seconds like a mixed recording.
    """
    import soundfile as sf
    import soxr

    rows = list(csv.DictReader(open(corpus / "manifest.csv", newline="", encoding="utf-8")))
    by_class = {label: sorted(r["path"] for r in rows if r["label"] == label)
                for label in BUILTIN_CLASSES}
    order = [p for trio in zip(*by_class.values()) for p in trio]
    total = int(minutes * 60 * sample_rate_hz)
    written, used = 0, []
    with sf.SoundFile(path, "w", samplerate=sample_rate_hz, channels=2, format="FLAC",
                      subtype="PCM_16") as out:
        while written < total:
            for rel in order:
                if written >= total:
                    break
                audio, sr = sf.read(corpus / rel, dtype="float32", always_2d=True)
                if sr != sample_rate_hz:
                    audio = soxr.resample(audio, sr, sample_rate_hz, quality="HQ")
                if audio.shape[1] == 1:
                    audio = audio[:, [0, 0]] * np.asarray(MONO_PAN, np.float32)
                audio = np.clip(audio[:, :2][: total - written], -1.0, 1.0)
                out.write(audio)
                written += audio.shape[0]
                used.append(rel)
    return used


def measure(name: str, args: list[str], pool: bool = False) -> Run:
    """Run ``adaptive-codec ARGS`` (no ARGS: ``import torch``) and read its peak RSS.

    ``ru_maxrss`` of ``wait4`` is the child's own high-water mark; for a
    process pool it is the largest of the processes the child waited for.
    With ``pool`` the work runs in worker processes, whose high-water mark
    before exit the hook cannot see, so none is reported.
    """
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as err:
        hwm_file = Path(tmp) / "hwm"
        env = dict(os.environ, CODEC_MEMORY_HWM_FILE=str(hwm_file))
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, *args], stdout=subprocess.DEVNULL,
                                stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        err.seek(0)
        tail = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        text = hwm_file.read_text().strip() if hwm_file.exists() else ""
    done = int(text) / 1024 if text and not pool else None
    return Run(name, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, done,
               os.waitstatus_to_exitcode(status), tail[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the test file")
    parser.add_argument("--no-archive", action="store_true", help="skip the archive runs")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        raise SystemExit(f"error: corpus not found at {args.corpus} (pass --corpus)")

    load = os.getloadavg()
    lines = [f"# codec memory and speed on a long stereo file "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
             f"load average at start {load[0]:.1f} (1 min), {load[1]:.1f} (5 min)"]
    with tempfile.TemporaryDirectory(prefix="codec-memory-") as tmp:
        src = Path(tmp) / "long.flac"
        used = build_long_input(args.corpus, src, args.minutes)
        duration = args.minutes * 60
        lines.append(f"input: {args.minutes:g} min, 48000 Hz, 2 channels, FLAC 16-bit "
                     f"({src.stat().st_size} bytes) built from {len(set(used))} corpus clips "
                     "(speech/music/ambient in turn; mono clips panned)")
        lines += ["", f"{'command':30s} {'peak RSS MiB':>12s} {'when done MiB':>13s} {'wall s':>7s} "
                      f"{'CPU s':>7s} {'x real time (CPU)':>18s}  status"]
        floor = measure("python -c 'import torch'", [])
        runs = [measure("encode (auto)", ["encode", str(src), str(Path(tmp) / "long.acx"), "--force"])]
        runs.append(measure("decode", ["decode", str(Path(tmp) / "long.acx"),
                                       str(Path(tmp) / "long.wav"), "--force"]))
        if not args.no_archive:
            for jobs in (1, 2):
                runs.append(measure(f"archive create --jobs {jobs}",
                                    ["archive", "create", str(Path(tmp) / f"long{jobs}.aca"), str(src),
                                     "--jobs", str(jobs), "--force"], pool=jobs > 1))
        for r in [floor, *runs]:
            status = "ok" if r.returncode == 0 else f"FAILED ({r.returncode}): {r.stderr_tail}"
            done = f"{r.done_rss_mib:13.0f}" if r.done_rss_mib is not None else f"{'-':>13s}"
            speed = f"{duration / max(r.cpu_s, 1e-9):18.1f}" if r is not floor else f"{'-':>18s}"
            lines.append(f"{r.name:30s} {r.peak_rss_mib:12.0f} {done} {r.wall_s:7.1f} {r.cpu_s:7.1f} "
                         f"{speed}  {status}")
        worst = max(r.peak_rss_mib for r in runs)
        worst_done = max((r.done_rss_mib or 0.0) for r in runs)
        lines += ["", f"largest peak RSS over the process's life: {worst:.0f} MiB; when done, before "
                      f"interpreter exit: {worst_done:.0f} MiB (target <= {RSS_TARGET_MIB} MiB: "
                      f"{'met' if worst <= RSS_TARGET_MIB else 'NOT met'} / "
                      f"{'met' if worst_done <= RSS_TARGET_MIB else 'NOT met'})",
                  f"floor: importing torch alone peaks at {floor.peak_rss_mib:.0f} MiB "
                  f"({floor.done_rss_mib or 0:.0f} MiB before exit).",
                  "x real time uses CPU seconds (user + system) of the process, so the training job "
                  "sharing this machine inflates wall time more than it does these; both include "
                  "Python start-up and model loading."]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0 if all(r.returncode == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
