"""Does encode/decode memory stay flat as files get longer? (issue 35: the 10-hour target)

Writes long synthetic-but-realistic inputs block by block (the committed
``examples/*.flac`` clips in turn, each at a random gain between -20 and 0 dB
and a random start offset, with a little noise added so no two repeats are
identical; speech, music and ambient alternate every few seconds like a radio
show), as 16-bit FLAC, then runs ``adaptive-codec encode`` (``--profile
auto``: classify + route) and ``adaptive-codec decode`` on each, every run its
own subprocess on one thread, and reads each process's peak resident memory
(``ru_maxrss`` from ``os.wait4``).

The growth rate is the least-squares slope of peak RSS against the input's
length, in MiB per minute of audio; the issue's target is that a 10-hour file
encodes and decodes with memory flat within 50 MB, i.e. a slope below
50 / 600 = 0.083 MiB/min (about 0.08 MB per minute of audio).

Usage (from the repository root)::

    python benchmarks/long_file_memory.py                         # 10, 30, 60 min, 16 kHz mono
    python benchmarks/long_file_memory.py --minutes 5 20 --rate 48000 --channels 2
    python benchmarks/long_file_memory.py --minutes 600           # the 10-hour file (~40 min CPU)

The inputs are written to a temporary folder (``--keep DIR`` to keep them:
a 10-hour 16 kHz mono FLAC is about 0.7 GB).
"""

from __future__ import annotations

import os

# One thread per process, as the codec is meant to be measured; the CLI
# subprocesses inherit this environment.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
#: The issue's target: memory flat within this many MB over a 10-hour file.
FLAT_WITHIN_MB = 50.0
TEN_HOURS_MIN = 600.0


@dataclass(frozen=True)
class Run:
    """One measured subprocess."""

    name: str
    minutes: float
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    late_rss_mib: float  # largest VmRSS sampled in the second half of the run
    returncode: int
    stderr_tail: str


def _clips(sample_rate_hz: int, channels: int) -> list[np.ndarray]:
    """The example clips as float32 ``(samples, channels)`` at ``sample_rate_hz``."""
    import soundfile as sf
    import soxr

    out = []
    for path in sorted(EXAMPLES.glob("*.flac")):
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        if sr != sample_rate_hz:
            audio = soxr.resample(audio, sr, sample_rate_hz, quality="HQ").astype(np.float32)
        if channels == 1:
            audio = audio.mean(axis=1, keepdims=True)
        elif audio.shape[1] == 1:
            # Mono clips are panned slightly, so the side channel is not silent.
            audio = audio * np.asarray([[1.0, 0.7]], np.float32)
        out.append(np.ascontiguousarray(audio))
    return out


def build_long_input(path: Path, minutes: float, sample_rate_hz: int, channels: int, seed: int = 0) -> None:
    """Write ``minutes`` of audio to the FLAC ``path``, one clip excerpt at a time (bounded memory)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    clips = _clips(sample_rate_hz, channels)
    total = int(minutes * 60 * sample_rate_hz)
    written, i = 0, 0
    with sf.SoundFile(path, "w", samplerate=sample_rate_hz, channels=channels, format="FLAC",
                      subtype="PCM_16") as out:
        while written < total:
            clip = clips[i % len(clips)]
            i += 1
            start = int(rng.integers(0, max(1, clip.shape[0] // 2)))
            piece = clip[start : start + min(total - written, int(rng.uniform(3, 12) * sample_rate_hz))]
            gain = np.float32(10 ** (rng.uniform(-20, 0) / 20))
            noise = rng.standard_normal(piece.shape).astype(np.float32) * np.float32(1e-3)
            out.write(np.clip(piece * gain + noise, -1.0, 1.0))
            written += piece.shape[0]


def _rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return None


def measure(name: str, minutes: float, args: list[str]) -> Run:
    """Run ``python -m adaptive_codec ARGS``; read its peak RSS and sample its RSS as it runs.

    The peak (``ru_maxrss`` of ``wait4``) is the target's number; the
    largest RSS sampled in the second half of the run shows growth that the
    model-loading peak at start-up would hide on shorter files.
    """
    with tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "adaptive_codec", *args], stdout=subprocess.DEVNULL,
                                stderr=err, cwd=REPO)
        samples: list[tuple[float, float]] = []
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            rss = _rss_mib(proc.pid)  # racy at exit: a missing sample is fine
            if rss is not None:
                samples.append((time.monotonic() - t0, rss))
            time.sleep(0.25)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall = time.monotonic() - t0
        late = max((r for t, r in samples if t >= wall / 2), default=float("nan"))
        err.seek(0)
        tail = err.read().decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    return Run(name, minutes, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, late,
               proc.returncode, tail[0])


def slope_mib_per_min(runs: list[Run], late: bool = False) -> float:
    """Least-squares slope of peak (or late) RSS (MiB) against input length (minutes)."""
    x = np.array([r.minutes for r in runs])
    y = np.array([r.late_rss_mib if late else r.peak_rss_mib for r in runs])
    if len(runs) < 2 or np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 30.0, 60.0],
                        help="lengths of the test files (minutes)")
    parser.add_argument("--rate", type=int, default=16000, help="sample rate of the test files (Hz)")
    parser.add_argument("--channels", type=int, default=1, choices=(1, 2))
    parser.add_argument("--no-decode", action="store_true", help="only measure encode")
    parser.add_argument("--keep", type=Path, help="write the inputs and outputs here and keep them")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if any(m <= 0 for m in args.minutes):
        raise SystemExit("error: --minutes must be positive")

    load = os.getloadavg()
    lines = [f"# encode/decode peak memory against input length "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
             f"load average at start {load[0]:.1f} (1 min)",
             f"input: examples/*.flac excerpts in turn (random gain -20..0 dB, 3-12 s each), "
             f"{args.rate} Hz, {args.channels} ch, FLAC 16-bit; one thread per process", "",
             f"{'command':10s} {'minutes':>8s} {'peak RSS MiB':>12s} {'late RSS MiB':>12s} {'wall s':>8s} "
             f"{'CPU s':>8s} "
             f"{'x real time':>11s}  status"]
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="long-file-memory-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for minutes in sorted(args.minutes):
            src = folder / f"long-{minutes:g}min.flac"
            acx, wav = src.with_suffix(".acx"), src.with_suffix(".wav")
            if not src.exists():
                build_long_input(src, minutes, args.rate, args.channels)
            todo = [("encode", ["encode", str(src), str(acx), "--force"])]
            if not args.no_decode:
                todo.append(("decode", ["decode", str(acx), str(wav), "--force"]))
            for name, cli in todo:
                r = measure(name, minutes, cli)
                runs.append(r)
                status = "ok" if r.returncode == 0 else f"FAILED ({r.returncode}): {r.stderr_tail}"
                line = (f"{r.name:10s} {minutes:8g} {r.peak_rss_mib:12.0f} {r.late_rss_mib:12.0f} {r.wall_s:8.1f} "
                        f"{r.cpu_s:8.1f} "
                        f"{minutes * 60 / max(r.cpu_s, 1e-9):11.1f}  {status}")
                lines.append(line)
                print(line, flush=True)
            wav.unlink(missing_ok=True)  # the largest file; not needed once measured
    lines.append("")
    for name in ("encode", "decode"):
        mine = [r for r in runs if r.name == name and r.returncode == 0]
        if len(mine) >= 2:
            slope, late = slope_mib_per_min(mine), slope_mib_per_min(mine, late=True)
            # The target is about the peak; the late samples are noisier (they
            # include the first pass when it takes more than half the run).
            verdict = "met" if slope * TEN_HOURS_MIN <= FLAT_WITHIN_MB else "NOT met"
            lines.append(f"{name}: peak RSS grows {slope:.3f} MiB per minute of audio -> "
                         f"{slope * TEN_HOURS_MIN:.0f} MiB over 10 hours (target: flat within "
                         f"{FLAT_WITHIN_MB:.0f} MB: {verdict}); late RSS {late:.3f} MiB per minute")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report, encoding="utf-8")
    return 0 if runs and all(r.returncode == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
