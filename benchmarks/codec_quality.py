"""Codec quality per class and bitrate on held-out corpus clips, side by side with Opus.

For each class (speech, music, ambient) a seeded sample of the corpus'
**held-out** clips (``train.codec_data.corpus_clips(corpus, "test")``: split by
source recording, the codec never trained on them), the first
``--max-seconds`` of each, mono. Every clip is coded at each nominal bitrate
(``bitrate_kbps=`` of ``AdaptiveCodec.encode``) with the class's own profile
forced (routing is measured by ``adaptive-codec bench``), and by Opus (PyAV's
libopus, Ogg) at the same nominal rates in the same run. Reported bitrates are
ACTUAL: bytes of the .acx stream / Ogg file x 8 / duration.

Metrics (``adaptive_codec.bench.metrics``): ViSQOL v3 audio mode at 48 kHz,
PESQ-WB and STOI (speech), multi-scale mel distance floored 60 dB below the
reference's peak (dB), SI-SDR (dB; near meaningless for generative codecs).
Also encode / decode speed as x real time on one core
(``threads.pin_threads(1)``): from the quality pass (wall clock), and from
a separate timing pass that also reads the thread's CPU time, which another
busy process on the machine inflates far less than wall time; the backbone's
parameter count and the peak RSS of the process.

Usage (from the repository root)::

    python benchmarks/codec_quality.py --out benchmarks/results/codec_quality.md
    python benchmarks/codec_quality.py --max-clips-per-class 1 --max-seconds 5   # smoke run
"""

from __future__ import annotations

import os

# One core; must be set before numpy / torch are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from adaptive_codec.threads import pin_threads  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

from adaptive_codec.bench import runner  # noqa: E402
from adaptive_codec.bench.config import BenchConfig  # noqa: E402
from adaptive_codec.bench.corpus import BenchClip  # noqa: E402
from adaptive_codec.bench.systems import jobs_for  # noqa: E402
from adaptive_codec.profiles import BUILTIN_CLASSES  # noqa: E402
from adaptive_codec.train.codec_data import corpus_clips  # noqa: E402

METRIC_KEYS = ("visqol", "pesq_wb", "stoi", "mel_distance", "si_sdr")
COLUMNS = ("visqol", "pesq_wb", "stoi", "mel_distance_db", "si_sdr_db")
#: Published per-class anchors (Codec-SUPERB; different metric code, other clips).
ANCHORS = ("EnCodec-24k @6 kbps: speech PESQ 2.63 / STOI 0.91, music STOI 0.70; "
           "DAC-16k @6 kbps: speech PESQ 3.88 / STOI 0.96")


def _pick(corpus: Path, per_class: int, seed: int) -> list[BenchClip]:
    clips = corpus_clips(corpus, "test")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in BUILTIN_CLASSES:
        items = sorted((c for c in clips if c.label == label), key=lambda c: str(c.path))
        if per_class and len(items) > per_class:
            items = [items[i] for i in sorted(rng.choice(len(items), per_class, replace=False))]
        chosen += [BenchClip(str(c.path.relative_to(corpus)), c.path, label, None, True) for c in items]
    return chosen


def _mean(values) -> float:
    arr = np.asarray([v for v in values if v is not None and not
                      (isinstance(v, float) and math.isnan(v))], dtype=float)
    return float(arr.mean()) if arr.size else math.nan


def _f(value: float, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def speed_pass(codec, clips: list[BenchClip], max_seconds: float, repeats: int = 3) -> dict[str, float]:
    """Median x real time of encode, decode and both (6 kbps, each clip's own profile).

    Returns wall-clock and thread-CPU-time figures; CPU time counts only
    this thread's work, so a busy machine inflates it far less.
    """
    from adaptive_codec.audio import load_audio, to_mono

    rows = []
    for clip in clips:
        audio, info = load_audio(clip.path)
        x = to_mono(audio)
        if max_seconds:
            x = x[: int(max_seconds * info.sample_rate_hz)]
        duration = x.size / info.sample_rate_hz
        for _ in range(repeats):
            c0, w0 = time.thread_time(), time.perf_counter()
            blob = codec.encode(x, info.sample_rate_hz, profile=clip.label, bitrate_kbps=6.0)
            c1, w1 = time.thread_time(), time.perf_counter()
            codec.decode(blob)
            c2, w2 = time.thread_time(), time.perf_counter()
            rows.append([duration / (c1 - c0), duration / (c2 - c1), duration / (c2 - c0),
                         duration / (w1 - w0), duration / (w2 - w1), duration / (w2 - w0)])
    med = np.median(np.asarray(rows), axis=0)
    keys = ("cpu_encode", "cpu_decode", "cpu_both", "wall_encode", "wall_decode", "wall_both")
    return dict(zip(keys, (float(v) for v in med)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--bitrates", default="1.5,3,6,12", help="nominal kbps, comma-separated")
    parser.add_argument("--max-clips-per-class", type=int, default=4,
                        help="held-out clips per class (0 = all; default 4: ~8 min on 2 busy cores)")
    parser.add_argument("--max-seconds", type=float, default=8.0, help="excerpt length (0 = whole)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--csv", type=Path, help="write the per-clip rows to this CSV")
    args = parser.parse_args(argv)
    if not (args.corpus / "manifest.csv").is_file():
        print(f"error: no corpus at {args.corpus} (expected manifest.csv there)", file=sys.stderr)
        return 2
    try:
        bitrates = tuple(float(b) for b in args.bitrates.split(","))
    except ValueError:
        bitrates = ()
    if not bitrates or not all(b > 0 for b in bitrates):
        print(f"error: --bitrates must be comma-separated kbps > 0, got {args.bitrates!r}", file=sys.stderr)
        return 2

    pin_threads(1)
    config = BenchConfig(bitrates_kbps=bitrates, auto=False, profiles="all", baselines=("opus",),
                         metrics=METRIC_KEYS, max_seconds=args.max_seconds, split="test")
    start = time.time()
    runner.init_worker(config, ())
    codec = runner.WORKER["codec"]
    systems = runner.WORKER["systems"]
    clips = _pick(args.corpus, args.max_clips_per_class, args.seed)
    rows = []
    for i, clip in enumerate(clips, 1):
        jobs = [j for j in jobs_for(clip.label, systems, config)
                if j.system in (f"adaptive-{clip.label}", "opus")]
        t = time.time()
        clip_rows, _ = runner.run_clip(clip, jobs, None, False)
        rows += clip_rows
        print(f"[{i}/{len(clips)}] {clip.clip_id} ({time.time() - t:.0f} s)", file=sys.stderr)
    for row in rows:
        if row.get("error"):
            print(f"warning: {row['clip']} {row['system']} {row.get('nominal_kbps')}: {row['error']}",
                  file=sys.stderr)

    lines = ["# Codec quality per class and bitrate (held-out corpus clips) vs Opus", ""]
    params = codec.backbone.n_parameters
    lines += [
        f"- clips: {len(clips)} held-out corpus clips (split by source recording; the codec never "
        f"trained on them), up to {args.max_clips_per_class or 'all'} per class, first "
        f"{args.max_seconds:g} s of each, mono; class's own profile forced",
        f"- weights: {codec.weights_meta.get('weights_id')} (sha256 {codec.weights_meta.get('sha256', '')[:12]}), "
        f"backbone parameters: {params:,}",
        f"- git: {runner.git_revision()}; machine: {runner.machine_info().get('cpu', '?')}, "
        f"torch threads 1; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "- bitrate = ACTUAL kbps from bytes (.acx stream; Opus = Ogg file incl. pages); "
        "ViSQOL v3 audio mode 48 kHz; PESQ-WB/STOI speech only; mel = multi-scale log-mel "
        "distance (dB, floor 60 dB below ref peak; lower is better); SI-SDR in dB",
        f"- published anchors (other metric code and clips): {ANCHORS}",
        "",
        "| class | asked kbps | ours kbps (actual/asked) | ours ViSQOL | ours PESQ | ours STOI | ours mel dB | ours SI-SDR "
        "| Opus kbps | Opus ViSQOL | Opus PESQ | Opus STOI | Opus mel dB | Opus SI-SDR | clips |",
        "|---" * 15 + "|",
    ]
    table: dict[tuple[str, str, float], dict[str, float]] = {}
    for label in BUILTIN_CLASSES:
        for kbps in bitrates:
            cells = {}
            for system in (f"adaptive-{label}", "opus"):
                sel = [r for r in rows if r["label"] == label and r["system"] == system
                       and r.get("nominal_kbps") == kbps and r.get("bitrate_kbps") is not None]
                cells[system] = {c: _mean(r.get(c) for r in sel) for c in ("bitrate_kbps", *COLUMNS)}
                cells[system]["n"] = len(sel)
                cells[system]["capped"] = sum(str(r.get("rate_note") or "").startswith("capped") for r in sel)
                table[(label, "ours" if system != "opus" else "opus", kbps)] = cells[system]
            ours, opus = cells[f"adaptive-{label}"], cells["opus"]
            capped = f", {ours['capped']} capped" if ours["capped"] else ""
            rate_cell = f"{_f(ours['bitrate_kbps'])} ({ours['bitrate_kbps'] / kbps:.3f}{capped})"
            lines.append(
                f"| {label} | {kbps:g} | {rate_cell} | {_f(ours['visqol'])} | "
                f"{_f(ours['pesq_wb'])} | {_f(ours['stoi'], 3)} | {_f(ours['mel_distance_db'])} | "
                f"{_f(ours['si_sdr_db'], 1)} | {_f(opus['bitrate_kbps'])} | {_f(opus['visqol'])} | "
                f"{_f(opus['pesq_wb'])} | {_f(opus['stoi'], 3)} | {_f(opus['mel_distance_db'])} | "
                f"{_f(opus['si_sdr_db'], 1)} | {ours['n']} |")

    ours_rows = [r for r in rows if r["system"] != "opus" and r.get("encode_x_realtime")]
    enc = _mean([r["encode_x_realtime"] for r in ours_rows])
    dec = _mean([r["decode_x_realtime"] for r in ours_rows])
    enc_med = float(np.median([r["encode_x_realtime"] for r in ours_rows])) if ours_rows else math.nan
    dec_med = float(np.median([r["decode_x_realtime"] for r in ours_rows])) if ours_rows else math.nan
    both = [1 / (1 / r["encode_x_realtime"] + 1 / r["decode_x_realtime"]) for r in ours_rows]
    peak = max((r.get("peak_rss_mib") or 0 for r in rows), default=0)
    load_before = os.getloadavg()[0]
    timing = speed_pass(codec, clips, args.max_seconds)
    load_after = os.getloadavg()[0]
    lines += [
        "",
        "## Speed and size (one core)",
        "",
        f"- encode: median {_f(enc_med, 1)}x real time (mean {_f(enc, 1)}x); decode: median "
        f"{_f(dec_med, 1)}x (mean {_f(dec, 1)}x); encode+decode: median "
        f"{_f(float(np.median(both)) if both else math.nan, 1)}x (quality pass, wall clock)",
        f"- timing pass ({len(clips)} clips x 3, 6 kbps, own profile; load average {load_before:.1f} -> "
        f"{load_after:.1f} on {os.cpu_count()} cores): by thread CPU time encode "
        f"{timing['cpu_encode']:.1f}x, decode {timing['cpu_decode']:.1f}x, encode+decode "
        f"{timing['cpu_both']:.1f}x (target >= 50x: {'met' if timing['cpu_both'] >= 50 else 'NOT met'}); "
        f"by wall clock {timing['wall_encode']:.1f}x / {timing['wall_decode']:.1f}x / "
        f"{timing['wall_both']:.1f}x",
        f"- backbone parameters: {params:,} (target <= 10 M)",
        f"- peak RSS during one encode+decode (process incl. model and metrics): {peak:.0f} MiB; "
        f"process lifetime peak: {runner.peak_rss_mib():.0f} MiB",
        "",
        "## Targets at 6 kbps (nominal; compare the actual kbps columns)",
        "",
    ]
    if 6.0 in bitrates:
        for label in BUILTIN_CLASSES:
            ours, opus = table[(label, "ours", 6.0)], table[(label, "opus", 6.0)]
            keys = ("pesq_wb", "stoi") if label == "speech" else ("visqol",)
            verdict = all(ours[k] > opus[k] for k in keys if not math.isnan(opus[k]))
            detail = ", ".join(f"{k} {_f(ours[k], 3)} vs Opus {_f(opus[k], 3)}" for k in keys)
            lines.append(f"- {label}: beats Opus at 6 kbps: {'yes' if verdict else 'NO'} ({detail})")
    else:
        lines.append("- (6 kbps not in the ladder)")
    lines += ["", f"Wall time: {time.time() - start:.0f} s."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    if args.csv:
        import pandas as pd

        pd.DataFrame(rows, columns=list(runner.RESULT_COLUMNS)).to_csv(args.csv, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
