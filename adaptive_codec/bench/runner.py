"""``adaptive-codec bench``: code every clip with every system, score, time, write results.

Per clip (mono downmix, excerpt per the config) and per job (system x
nominal bitrate) one row of ``results.csv`` (columns :data:`RESULT_COLUMNS`).
A labelled clip's excerpt starts at 0 s; a mixed file's excerpt is centred on
its first reference class change (so every excerpt contains a switch), and
``excerpt_start_s`` says where it starts.


* ``bitrate_kbps`` from the stored bytes (``n_bytes * 8 / duration_s``),
  never the nominal rate; ``asked_kbps`` what the system was asked (ours:
  the stream's rate record, the scaled profile mix in auto mode) and
  ``rate_note`` the capped-target note when ours could not reach it;
* ``encode_x_realtime`` / ``decode_x_realtime``: seconds of audio per second
  of wall time in this process (torch, BLAS and OpenMP limited to 1 thread,
  systems warmed up once; with ``--jobs N`` the processes share the CPU, so
  speeds are then lower bounds);
* ``peak_rss_mib``: the process's peak resident memory during that encode and
  decode (Linux: ``VmHWM`` after resetting it; elsewhere the lifetime peak);
* one column per metric (:mod:`~adaptive_codec.bench.metrics`); PESQ/STOI on
  ``speech`` clips only; no quality metrics for lossless baselines. A decode
  identical to one already scored for the clip (e.g. ``adaptive-auto`` and
  the clip's own profile, Opus at two rungs below its floor) reuses its
  scores; ``metrics_wall_s`` (seconds spent scoring the row) is then 0;
* ``routed_profiles``: share of the clip's time per profile (adaptive systems).

Rows are appended as clips finish, so ``--resume`` skips every (clip, system,
nominal bitrate) already written without an error. ``meta.json`` is written
when a run starts; a resumed run must have the same corpus, weights and
config (keys :data:`RESUME_FREE_KEYS` excepted), else its rows would not be
comparable. Files with reference segments also add rows to ``routing.csv``
(:data:`ROUTING_COLUMNS`): the reference timeline and the one
``adaptive-auto`` coded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from adaptive_codec.audio import load_audio, to_mono
from adaptive_codec.errors import AdaptiveCodecError
from adaptive_codec.bench.config import BenchConfig
from adaptive_codec.bench.corpus import BenchClip, read_segments, select_clips
from adaptive_codec.bench.metrics import METRICS
from adaptive_codec.bench.report import write_report
from adaptive_codec.bench.environment import git_revision, machine_info, peak_rss_mib, reset_peak_rss, versions
from adaptive_codec.bench.systems import AdaptiveSystem, Job, build_systems, jobs_for
from adaptive_codec.container.acx import read_header
from adaptive_codec.planning.rate_control import cap_message
from adaptive_codec.threads import pin_threads

# The environment helpers stay importable from here; benchmarks/codec_quality.py runs
# clips one by one through init_worker, WORKER and run_clip.
__all__ = ["BenchRunError", "RESULT_COLUMNS", "RESUME_FREE_KEYS", "ROUTING_COLUMNS", "run_bench",
           "init_worker", "run_clip", "WORKER",
           "git_revision", "machine_info", "peak_rss_mib", "reset_peak_rss", "versions"]

RESULT_COLUMNS: tuple[str, ...] = (
    "clip", "label", "excerpt_start_s", "duration_s", "sample_rate_hz", "system", "kind",
    "nominal_kbps", "asked_kbps", "bitrate_kbps", "n_bytes", "encode_x_realtime", "decode_x_realtime",
    "peak_rss_mib", "visqol", "pesq_wb", "stoi", "mel_distance_db", "stft_distance", "si_sdr_db",
    "loudness_diff_lu", "metrics_wall_s", "routed_profiles", "rate_note", "error",
)
ROUTING_COLUMNS: tuple[str, ...] = ("clip", "source", "start_s", "end_s", "label", "profile")
SNIPPET_SYSTEMS = ("adaptive-auto", "opus")
#: Config keys a ``--resume`` may change: they shape the report and snippets, not the rows.
RESUME_FREE_KEYS = ("bd_metrics", "snippet_seconds", "snippet_kbps")


class BenchRunError(AdaptiveCodecError):
    """A benchmark run cannot start or continue (e.g. ``--resume`` with another config)."""


# -- one clip -----------------------------------------------------------------------

#: This process's ``config``, ``codec``, ``systems`` and ``notes``, set by :func:`init_worker`.
WORKER: dict[str, Any] = {}


#: Thread-pool variables pinned to 1 for worker processes (read at library load).
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


def _single_thread() -> None:
    """One thread for torch, BLAS and OpenMP in this process.

    Measured here: with BLAS/OpenMP pools left at the core count, busy-waiting
    threads made the codec ~10x slower between metric computations on a
    shared 2-core machine; speeds are "on one core" only with this.
    """
    WORKER["thread_limits"] = pin_threads(1, native_pools=True)  # kept alive for the process


def init_worker(config: BenchConfig, profiles_dirs: tuple[str, ...], warm_up: bool = True) -> None:
    """Load the codec and build the systems once per process (1 thread), then warm up.

    The warm-up (1 s of quiet noise through every adaptive system) loads the
    classifier and fills caches, so the first timed row is not slower than the
    rest; a process that times nothing (the parent of ``--jobs N``) skips it.
    """
    from adaptive_codec.codec import AdaptiveCodec  # torch: loaded in the worker, not by `bench --help`

    _single_thread()
    codec = AdaptiveCodec.default(profiles_dirs=profiles_dirs)
    systems, notes = build_systems(config, codec, codec.registry)
    WORKER.update(config=config, codec=codec, systems=systems, notes=notes)
    if not warm_up:
        return
    noise = (1e-2 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    for system in systems.values():
        if isinstance(system, AdaptiveSystem):
            try:
                system.decode(system.encode(noise, 16000, config.bitrates_kbps[0]), 16000, noise.size)
            except Exception:  # noqa: BLE001 - a broken system reports itself in its rows
                pass


def excerpt_start_s(reference, seconds: float, duration_s: float) -> float:
    """Start of a ``seconds`` long excerpt centred on the first class change of ``reference``.

    Parameters
    ----------
    reference : pandas.DataFrame
        Reference segments (``start_s, end_s, label``) of a mixed file.
    seconds : float
        Excerpt length; 0 (whole file) or not shorter than the file gives 0.
    duration_s : float
        The file's length.

    Returns
    -------
    float
        In ``[0, duration_s - seconds]``; 0 when the labels never change.
    """
    if seconds <= 0 or seconds >= duration_s:
        return 0.0
    ordered = reference.sort_values("start_s")
    labels, starts = ordered["label"].tolist(), ordered["start_s"].tolist()
    changes = [t for prev, label, t in zip(labels, labels[1:], starts[1:]) if label != prev]
    if not changes:
        return 0.0
    return float(min(max(changes[0] - seconds / 2, 0.0), duration_s - seconds))


def _load_clip(clip: BenchClip, config: BenchConfig) -> tuple[np.ndarray, int, Any, float]:
    """Mono excerpt, sample rate, reference segments (excerpt time) or None, excerpt start (s)."""
    audio, info = load_audio(clip.path)
    x = to_mono(audio)
    sr = info.sample_rate_hz
    limit = config.max_seconds_mixed if clip.segments is not None else config.max_seconds
    ref = read_segments(clip.segments) if clip.segments is not None else None
    start_s = excerpt_start_s(ref, limit, x.size / sr) if ref is not None else 0.0
    first = int(round(start_s * sr))
    if limit > 0:
        x = x[first:first + int(round(limit * sr))]
    if ref is not None:
        dur = x.size / sr
        ref = ref.assign(start_s=ref.start_s - first / sr, end_s=ref.end_s - first / sr)
        ref = ref[(ref.end_s > 0) & (ref.start_s < dur)].copy()
        ref["start_s"] = ref["start_s"].clip(lower=0.0)
        ref["end_s"] = ref["end_s"].clip(upper=dur)
    return np.ascontiguousarray(x, np.float32), sr, ref, first / sr


def _share_of_profiles(plan: list, n_frames: int) -> str:
    shares: dict[str, float] = {}
    for seg in plan:
        shares[seg.profile.name] = shares.get(seg.profile.name, 0.0) + (seg.end_frame - seg.start_frame)
    total = max(1, sum(shares.values()) if n_frames <= 0 else n_frames)
    return ";".join(f"{k}:{v / total:.2f}" for k, v in sorted(shares.items()))


def _write_snippet(path: Path, audio: np.ndarray, sr: int, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(round(seconds * sr)) if seconds > 0 else audio.size
    tmp = path.with_name(path.name + ".tmp")
    sf.write(tmp, np.clip(audio[:n], -1, 1), sr, format="FLAC", subtype="PCM_16")
    tmp.replace(path)


def run_clip(clip: BenchClip, jobs: list[Job], out_dir: str | None, snippet: bool
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of ``results.csv`` and ``routing.csv`` for one clip (in a worker)."""
    config: BenchConfig = WORKER["config"]
    systems = WORKER["systems"]
    rows: list[dict[str, Any]] = []
    routing: list[dict[str, Any]] = []
    base = {"clip": clip.clip_id, "label": clip.label}
    try:
        x, sr, ref, start_s = _load_clip(clip, config)
        if x.size < int(0.5 * sr):
            raise ValueError(f"clip shorter than 0.5 s ({x.size / sr:.2f} s)")
    except Exception as exc:  # noqa: BLE001 - one bad file becomes error rows, not a crash
        message = f"{type(exc).__name__}: {exc}"
        return [{**base, "system": j.system, "kind": j.kind, "nominal_kbps": j.nominal_kbps,
                 "error": message} for j in jobs], []
    duration = x.size / sr
    base.update(excerpt_start_s=round(start_s, 4), duration_s=round(duration, 4), sample_rate_hz=sr)
    scored: dict[bytes, tuple[dict[str, float], list[str]]] = {}  # decode digest -> scores
    rung = min(config.bitrates_kbps, key=lambda b: abs(b - config.snippet_kbps))
    snippet_dir = Path(out_dir) / "snippets" if out_dir else None
    stem = "__".join(Path(clip.clip_id).with_suffix("").parts[-2:])
    if snippet and snippet_dir is not None:
        _write_snippet(snippet_dir / f"{stem}__original.flac", x, sr, config.snippet_seconds)
    if ref is not None:
        routing += [{"clip": clip.clip_id, "source": "reference", "start_s": float(r.start_s),
                     "end_s": float(r.end_s), "label": r.label, "profile": ""}
                    for r in ref.itertuples()]
    for job in jobs:
        system = systems[job.system]
        row: dict[str, Any] = {**base, "system": job.system, "kind": job.kind,
                               "nominal_kbps": job.nominal_kbps, "error": ""}
        try:
            reset_peak_rss()
            t0 = time.perf_counter()
            data = system.encode(x, sr, job.nominal_kbps)
            t1 = time.perf_counter()
            y = system.decode(data, sr, x.size)
            t2 = time.perf_counter()
            row["peak_rss_mib"] = round(peak_rss_mib(), 1)
            row.update(n_bytes=len(data), bitrate_kbps=len(data) * 8 / duration / 1000,
                       encode_x_realtime=duration / max(t1 - t0, 1e-9),
                       decode_x_realtime=duration / max(t2 - t1, 1e-9))
        except Exception as exc:  # noqa: BLE001 - record, keep going
            row["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            rows.append(row)
            continue
        row["asked_kbps"] = job.nominal_kbps
        if isinstance(system, AdaptiveSystem):
            # What the stream was asked (a scaled profile mix in auto mode), and a capped target.
            header = read_header(data)
            row["asked_kbps"] = header.asked_bps / 1000 if header.asked_bps else math.nan
            row["rate_note"] = cap_message(header.rate_limit, len(data) * 8 / duration, header.asked_bps) or ""
            frames = int(round(duration * WORKER["codec"].frame_rate_hz))
            row["routed_profiles"] = _share_of_profiles(system.last_plan, frames)
            if (job.system == "adaptive-auto" and ref is not None
                    and job.nominal_kbps == float(config.bitrates_kbps[0])):
                fr = WORKER["codec"].frame_rate_hz
                routing += [{"clip": clip.clip_id, "source": "predicted",
                             "start_s": seg.start_frame / fr,
                             "end_s": min(duration, seg.end_frame / fr),
                             "label": seg.label, "profile": seg.profile.name}
                            for seg in system.last_plan]
        problems: list[str] = []
        if job.kind != "lossless":
            # Metrics are deterministic in (reference, decode): an identical decode
            # (auto routed wholly to the clip's own profile; Opus below its floor)
            # reuses the scores instead of paying for ViSQOL again.
            digest = hashlib.blake2b(np.ascontiguousarray(y, np.float32).tobytes(),
                                     digest_size=16).digest()
            t3 = time.perf_counter()
            if digest not in scored:
                values: dict[str, float] = {}
                for key in config.metrics:
                    metric = METRICS[key]
                    if metric.speech_only and clip.label != "speech":
                        continue
                    try:
                        values[metric.column] = metric.function(x, y, sr)
                    except Exception as exc:  # noqa: BLE001
                        problems.append(f"{key}: {type(exc).__name__}: {exc}")
                scored[digest] = (values, problems)
            values, problems = scored[digest]
            row.update(values)
            row["metrics_wall_s"] = round(time.perf_counter() - t3, 3)
        row["error"] = "; ".join(problems)
        if (snippet and snippet_dir is not None and job.nominal_kbps == rung
                and job.system in (*SNIPPET_SYSTEMS, f"adaptive-{clip.label}")):
            _write_snippet(snippet_dir / f"{stem}__{job.system}.flac", y, sr, config.snippet_seconds)
        rows.append(row)
    return rows, routing


def _run_clip_task(args: tuple) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return run_clip(*args)


# -- the run ----------------------------------------------------------------------------


def _key(clip: str, system: str, nominal: Any) -> tuple[str, str, str]:
    try:
        value = float(nominal)
    except (TypeError, ValueError):
        value = math.nan
    return clip, system, "" if math.isnan(value) else f"{value:g}"


def _finished_keys(results: Path) -> set[tuple[str, str, str]]:
    if not results.is_file():
        return set()
    frame = pd.read_csv(results, keep_default_na=True)
    ok = frame[frame["error"].isna() | (frame["error"].astype(str).str.strip() == "")]
    done = set()
    for row in ok.itertuples(index=False):
        if not (isinstance(row.bitrate_kbps, float) and math.isnan(row.bitrate_kbps)):
            done.add(_key(row.clip, row.system, row.nominal_kbps))
    return done


def _append(path: Path, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    new = not path.exists()
    with path.open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        if new:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        fh.flush()


def _dedupe(path: Path, keys: list[str]) -> None:
    """Keep the last row per key (a resumed job replaces its failed row)."""
    if not path.is_file():
        return
    frame = pd.read_csv(path, keep_default_na=True)
    frame["_key"] = ["|".join("" if pd.isna(v) else str(v) for v in row)
                     for row in frame[keys].itertuples(index=False)]
    frame = frame.drop_duplicates("_key", keep="last").drop(columns="_key")
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _clear_outputs(out: Path) -> None:
    """Remove an earlier run's files (a fresh run must not report stale rows or snippets)."""
    for name in ("results.csv", "routing.csv", "meta.json"):
        (out / name).unlink(missing_ok=True)
    for folder, pattern in (("snippets", "*.flac"), ("figures", "*.png")):
        if (out / folder).is_dir():
            for path in (out / folder).glob(pattern):
                path.unlink()


def _check_resumable(out: Path, corpus: str, config: BenchConfig, weights: dict[str, Any]) -> None:
    """Refuse to add rows to a run made from another corpus, weights or config."""
    meta_path = out / "meta.json"
    if not (out / "results.csv").is_file():
        return  # nothing to resume: a fresh run
    if not meta_path.is_file():
        raise BenchRunError(f"{out}: results.csv without meta.json; cannot tell how its rows "
                            "were made (use --force to start over)")
    try:
        old = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchRunError(f"{meta_path}: unreadable ({exc}); use --force to start over") from None
    problems = []
    if old.get("corpus") != corpus:
        problems.append(f"corpus was {old.get('corpus')}")
    old_weights = old.get("weights", {}).get("weights_id")
    if old_weights != weights.get("weights_id"):
        problems.append(f"weights were {old_weights}, now {weights.get('weights_id')}")
    new_cfg, old_cfg = config.to_dict(), old.get("config", {})
    # A key newer than the run's meta.json had its default value in that run.
    default = BenchConfig().to_dict()
    changed = sorted(k for k in new_cfg
                     if k not in RESUME_FREE_KEYS and old_cfg.get(k, default[k]) != new_cfg[k])
    if changed:
        problems.append("config differs in " + ", ".join(changed))
    if problems:
        raise BenchRunError(f"cannot resume {out}: {'; '.join(problems)} (rerun with the same "
                            "corpus, --quick and --config, or use --force to start over)")


@dataclass
class BenchRun:
    """What :func:`run_bench` did."""

    out_dir: Path
    n_clips: int
    n_rows_run: int
    wall_s: float
    notes: list[str]


def run_bench(corpus: str | Path, out_dir: str | Path, config: BenchConfig, *,
              resume: bool = False, jobs: int = 1, profiles_dirs: tuple[str, ...] = (),
              progress: bool = True, quick: bool = False) -> BenchRun:
    """Run the benchmark and write every output file in ``out_dir`` (see the module docstring)."""
    start = time.time()
    out = Path(out_dir)
    clips, how = select_clips(Path(corpus), split=config.split,
                              max_clips_per_class=config.max_clips_per_class,
                              max_mixed_files=config.max_mixed_files, seed=config.seed,
                              labels=config.labels)
    # The parent of a worker pool times nothing: no warm-up there.
    init_worker(config, tuple(map(str, profiles_dirs)), warm_up=jobs <= 1)
    systems, notes, codec = WORKER["systems"], list(WORKER["notes"]), WORKER["codec"]
    results, routing_csv = out / "results.csv", out / "routing.csv"
    corpus_id = str(Path(corpus).resolve())
    if resume:
        _check_resumable(out, corpus_id, config, dict(codec.weights_meta))
    else:
        _clear_outputs(out)
    out.mkdir(parents=True, exist_ok=True)
    done = _finished_keys(results) if resume else set()
    seen_labels: set[str] = set()
    tasks = []
    for clip in clips:
        todo = [j for j in jobs_for(clip.label, systems, config)
                if _key(clip.clip_id, j.system, j.nominal_kbps) not in done]
        snippet = clip.label not in seen_labels
        seen_labels.add(clip.label)
        if todo:
            tasks.append((clip, todo, str(out), snippet))
    meta = {
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "finished_utc": None,
        "corpus": corpus_id, "selection": how, "n_clips": len(clips),
        "config": config.to_dict(), "quick": quick, "jobs": jobs, "resume": resume,
        "git_revision": git_revision(), "versions": versions(), "machine": machine_info(),
        "weights": dict(codec.weights_meta),
        "backbone_parameters": int(codec.backbone.n_parameters),
        "systems": list(systems), "notes": notes, "torch_threads_per_process": 1,
    }
    # Written now, so an interrupted run can be resumed and checked against it.
    _write_json(out / "meta.json", meta)
    n_rows = sum(len(t[1]) for t in tasks)
    bar = tqdm(total=n_rows, unit="row", desc="bench", disable=not progress, file=sys.stderr)

    def collect(result: tuple[list, list]) -> None:
        rows, routes = result
        _append(results, RESULT_COLUMNS, rows)
        if routes:
            _append(routing_csv, ROUTING_COLUMNS, routes)
        bar.update(len(rows))

    if jobs <= 1:
        for task in tasks:
            bar.set_postfix_str(task[0].clip_id[-40:])
            collect(run_clip(*task))
    else:
        # Children read these when their libraries load (before init_worker runs).
        for var in _THREAD_ENV:
            os.environ[var] = "1"
        # spawn, not fork: a forked torch/OpenMP runtime can hang in the child.
        with ProcessPoolExecutor(max_workers=jobs, initializer=init_worker,
                                 initargs=(config, tuple(map(str, profiles_dirs))),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_run_clip_task, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    collect(future.result())
            except BrokenProcessPool:
                raise BenchRunError(
                    f"a worker process died (out of memory? try fewer --jobs); the rows "
                    f"finished so far are in {results}: continue with --resume") from None
    bar.close()
    if not results.exists():
        _append(results, RESULT_COLUMNS, [])
    if not routing_csv.exists():
        _append(routing_csv, ROUTING_COLUMNS, [])
    _dedupe(results, ["clip", "system", "nominal_kbps"])
    _dedupe(routing_csv, ["clip", "source", "start_s"])
    meta["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    meta["wall_s"] = round(time.time() - start, 1)
    meta["rows_run_this_time"] = n_rows
    _write_json(out / "meta.json", meta)
    write_report(out)
    return BenchRun(out, len(clips), n_rows, time.time() - start, notes)
