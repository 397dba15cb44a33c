"""Archive benchmark: sizes, entropy-coding savings, container overhead, speed, memory.

On ../shared/corpus: all ``mixed/`` files plus the codec's held-out clips of
each class (split by source recording, never trained on), at their original
rates and channel counts, routed with ``profile="auto"``:

* total archive size vs the original files, vs FLAC (16-bit, re-encoded
  here) and vs Opus (PyAV libopus, on the mono downmix) at the lowest ladder
  bitrate whose mean ViSQOL (audio mode, 48 kHz, mono downmix) on these files
  reaches ours ("matched quality");
* bits saved by entropy coding: actual payload vs fixed-length indices
  (``depth x log2(codebook) bits`` per frame), per class, separately for the
  held-out clips (class from the corpus manifest; never seen by the entropy
  tables or the backbone) and for the mixed files (class from the router;
  they are cut from corpus clips, training clips included). A chunk's bytes
  are split over its frames in proportion to each frame's ideal code length
  under the coder's model;
* container overhead: everything in the archive that is not entropy-coded
  payload, as a share of the archive, per second of audio and relative to a
  6 kbps stream of the same duration, with its parts;
* throughput (x real time, whole pipeline: decode input, classify, encode,
  write) with 1 and 2 encoder processes, and peak RSS.

Usage::

    python benchmarks/archive.py --out benchmarks/results/archive.txt
    python benchmarks/archive.py --max-per-class 2 --no-opus      # quick look
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread per process: oversubscription is 10x slower here

import argparse  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

from adaptive_codec.container.binary import varint_bytes  # noqa: E402
from adaptive_codec.audio import audio_info, load_audio, to_mono  # noqa: E402
from adaptive_codec.profiles import BUILTIN_CLASSES  # noqa: E402
from adaptive_codec.train.codec_data import corpus_clips  # noqa: E402

OPUS_LADDER_KBPS = (6, 8, 10, 12, 16, 20, 24, 32)


def pick_files(corpus: Path, per_class: int) -> tuple[list[Path], dict[str, str]]:
    """Mixed files + held-out clips; and the member name -> class of the held-out clips."""
    files = sorted((corpus / "mixed").glob("*.flac"))
    held_out: dict[str, str] = {}
    for label in BUILTIN_CLASSES:
        held = [c.path for c in corpus_clips(corpus, "test") if c.label == label][:per_class]
        files += held
        held_out.update({p.with_suffix(".acx").name: label for p in held})
    return files, held_out


def run_create(out: Path, files: list[Path], jobs: int) -> float:
    cmd = [sys.executable, "-m", "adaptive_codec", "archive", "create", str(out), *map(str, files),
           "--jobs", str(jobs), "--force"]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"archive create failed: {done.stderr.strip()}")
    return time.monotonic() - t0


def asked_vs_actual(archive: Path) -> list[str]:
    """Report lines: each member's actual rate (its .acx bytes over its duration) / the rate it was asked.

    In an archive a member's bytes are its packed entry; this counts the
    member's own ``.acx`` stream, the unit rate control works on.
    """
    from adaptive_codec.container.aca import list_archive, read_member
    from adaptive_codec.container.acx import read_header
    from adaptive_codec.planning.rate_control import cap_message

    ratios, capped = [], []
    for entry in list_archive(archive):
        data = read_member(archive, entry.name)
        header = read_header(data)
        if not getattr(header, "asked_bps", 0):
            continue
        actual = len(data) * 8 / header.duration_s
        note = cap_message(header.rate_limit, actual, header.asked_bps)
        if note is None:
            ratios.append(actual / header.asked_bps)
        else:
            capped.append(f"  {entry.name}: {note}")
    if not ratios and not capped:
        return ["asked vs actual: the members record no asked rate (streams before .acx 3.2)"]
    lines = [f"asked vs actual per member (.acx bytes / duration over the asked total): "
             f"{len(ratios)} reached, min {min(ratios):.3f}, median {float(np.median(ratios)):.3f}, "
             f"max {max(ratios):.3f}; {len(capped)} capped"] if ratios else [f"{len(capped)} capped members"]
    return lines + capped


def entropy_savings(archive: Path, held_out_labels: dict[str, str]) -> tuple[dict[tuple[str, str], list[float]], dict[str, int]]:
    """Per (set, class) [actual payload bits, fixed-length bits]; and the archive's byte accounting.

    ``held_out_labels`` maps member names of held-out clips to their corpus class.
    """
    from adaptive_codec.container.aca_format import read_dictionary, read_tail
    from adaptive_codec.container.aca import list_archive, read_member
    from adaptive_codec.container.acx import AcxReader
    from adaptive_codec.codec import AdaptiveCodec
    from adaptive_codec.entropy.coder import decode_frames, frame_bits

    model = AdaptiveCodec.default().entropy_model
    per_class: dict[tuple[str, str], list[float]] = {}
    parts = {"payload": 0, "acx chunk framing": 0, "archive entries (local header, packed .acx header, CRC)": 0}
    for entry in list_archive(archive):
        data = read_member(archive, entry.name)
        parts["archive entries (local header, packed .acx header, CRC)"] += entry.entry_bytes
        with AcxReader(data) as reader:
            stream = reader.header
            chunks = list(reader.iter_chunks())
        bits_per_index = np.log2(stream.codebook_size)
        for chunk in chunks:
            parts["payload"] += len(chunk.data)
            parts["acx chunk framing"] += len(varint_bytes(len(chunk.data))) + 4
            depths, priors, _ = stream.frame_layout(chunk.channel, chunk.start_frame, chunk.end_frame)
            adaptive = stream.adaptive_frames(chunk.channel, chunk.start_frame, chunk.end_frame)
            if not depths.any():
                continue
            # Energy-adaptive frames carry their depth in the payload: decode it
            # (the payload bits below include those depth maps, ~2 bits a frame).
            codes, depths = decode_frames(model, chunk.data, depths, priors, stream.max_levels,
                                          adaptive=adaptive, return_depths=True)
            weight = frame_bits(model, codes, depths, priors)
            weight = weight / weight.sum()
            for seg in stream.segments_for_channel(chunk.channel):
                lo, hi = max(seg.start_frame, chunk.start_frame), min(seg.end_frame, chunk.end_frame)
                if lo < hi:
                    sl = slice(lo - chunk.start_frame, hi - chunk.start_frame)
                    key = ("held-out", held_out_labels[entry.name]) if entry.name in held_out_labels else ("mixed", seg.label)
                    acc = per_class.setdefault(key, [0.0, 0.0])
                    acc[0] += len(chunk.data) * 8 * float(weight[sl].sum())
                    acc[1] += float(depths[sl].sum()) * bits_per_index
    # Member bytes that are not payload or chunk framing are its (packed) header and entry framing.
    parts["archive entries (local header, packed .acx header, CRC)"] -= parts["payload"] + parts["acx chunk framing"]
    _, index_offset, _ = read_tail(archive)
    with open(archive, "rb") as fh:
        _, first_entry = read_dictionary(fh, index_offset, str(archive))
    parts["archive preamble + dictionary"] = first_entry
    parts["archive index + end record"] = archive.stat().st_size - index_offset
    return per_class, parts


def flac_bytes(files: list[Path]) -> int:
    import soundfile as sf

    total = 0
    for f in files:
        audio, info = load_audio(f)
        buf = io.BytesIO()
        sf.write(buf, audio.T, info.sample_rate_hz, format="FLAC", subtype="PCM_16")
        total += len(buf.getvalue())
    return total


def mean_visqol_ours(archive: Path, files: list[Path]) -> float:
    from adaptive_codec.container.aca import read_member
    from adaptive_codec.bench.metrics import visqol
    from adaptive_codec.codec import AdaptiveCodec

    codec = AdaptiveCodec.default()
    scores = []
    for f in files:
        audio, info = load_audio(f)
        decoded, sr = codec.decode(read_member(archive, f.with_suffix(".acx").name))
        # ViSQOL compares mono signals: the downmix of both sides.
        scores.append(visqol(to_mono(audio), to_mono(decoded), sr))
    return float(np.mean(scores))


def opus_at_matched_quality(files: list[Path], target: float) -> tuple[float, int, float]:
    """(bitrate, total bytes, mean ViSQOL) of the cheapest ladder rate reaching ``target``."""
    from adaptive_codec.bench.baselines import make_baseline
    from adaptive_codec.bench.metrics import visqol

    opus = make_baseline("opus")
    last = None
    for kbps in OPUS_LADDER_KBPS:
        total, scores = 0, []
        for f in files:
            audio, info = load_audio(f)
            # Opus codes the mono downmix (all its bits on what ViSQOL scores),
            # which favours Opus over our stereo archive where inputs are stereo.
            mono = to_mono(audio)
            data = opus.encode(mono, info.sample_rate_hz, kbps)
            decoded = opus.decode(data, info.sample_rate_hz, mono.shape[-1])
            total += len(data)
            scores.append(visqol(mono, to_mono(decoded), info.sample_rate_hz))
        last = (float(kbps), total, float(np.mean(scores)))
        if last[2] >= target:
            return last
    return last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--max-per-class", type=int, default=6,
                        help="held-out clips per class (plus every mixed file)")
    parser.add_argument("--no-opus", action="store_true", help="skip the Opus matched-quality search")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    if not (args.corpus / "manifest.csv").exists():
        raise SystemExit(f"error: corpus not found at {args.corpus} (pass --corpus)")

    files, held_out = pick_files(args.corpus, args.max_per_class)
    infos = [audio_info(f) for f in files]
    duration = sum(i.duration_s for i in infos)
    original = sum(f.stat().st_size for f in files)
    lines = [f"# archive benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
             f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
             f"load average at start {os.getloadavg()[0]:.1f}",
             f"files: {len(files)} ({sum('mixed' in str(f) for f in files)} mixed + held-out clips), "
             f"{duration / 60:.1f} min of audio, original {original} bytes", ""]
    with tempfile.TemporaryDirectory() as tmp:
        speeds = {}
        for jobs in (1, 2):
            out = Path(tmp) / f"bench{jobs}.aca"
            speeds[jobs] = duration / run_create(out, files, jobs)
        archive = Path(tmp) / "bench1.aca"
        size = archive.stat().st_size
        flac = flac_bytes(files)
        per_class, parts = entropy_savings(archive, held_out)
        payload = parts["payload"]
        over = size - payload
        at_6kbps = duration * 6000 / 8
        lines += [
            f"archive: {size} bytes = {size * 8 / duration / 1000:.2f} kbps actual",
            *asked_vs_actual(archive),
            f"ratio vs original files: {original / size:.1f}x; vs FLAC 16-bit ({flac} bytes): "
            f"{flac / size:.1f}x",
            f"container overhead (everything but entropy-coded payload): {over} bytes = {over / size:.2%} "
            f"of this archive; {over / duration:.1f} bytes per second of audio = {over / at_6kbps:.2%} of a "
            f"6 kbps stream of the same {duration:.0f} s; {over / len(files):.0f} bytes per file",
        ]
        for name, value in parts.items():
            if name != "payload":
                lines.append(f"  {name:58s} {value:7d} bytes  {value / size:6.2%}")
        lines += ["", "entropy coding vs fixed-length indices, per class (payload includes the depth maps of "
                      "energy-adaptive segments, ~2 bits per frame):"]
        for group in ("held-out", "mixed"):
            keys = sorted(k for k in per_class if k[0] == group)
            total_actual = sum(per_class[k][0] for k in keys)
            total_fixed = sum(per_class[k][1] for k in keys)
            note = ("held-out clips (class from the manifest)" if group == "held-out" else
                    "mixed files (class from the router; cut from corpus clips, training clips included)")
            lines.append(f"  {note}:")
            for key in keys:
                actual, fixed = per_class[key]
                lines.append(f"    {key[1]:8s} saved {1 - actual / fixed:6.1%}  "
                             f"({actual / 8:.0f} of {fixed / 8:.0f} bytes, {actual / fixed * 10:.2f} bits/index)")
            lines.append(f"    {'all':8s} saved {1 - total_actual / max(total_fixed, 1):6.1%}")
        lines += ["", f"throughput (whole pipeline, subprocess incl. start-up): "
                      f"1 job {speeds[1]:.1f}x real time, 2 jobs {speeds[2]:.1f}x real time"]
        if not args.no_opus:
            ours = mean_visqol_ours(archive, files)
            kbps, opus_bytes, opus_q = opus_at_matched_quality(files, ours)
            verdict = "reaches" if opus_q >= ours else "never reaches (ladder top)"
            lines += ["", f"mean ViSQOL (audio mode): ours {ours:.3f}; Opus {verdict} it at {kbps:g} kbps "
                          f"(ViSQOL {opus_q:.3f}, {opus_bytes} bytes = {opus_bytes / size:.2f}x our size)"]
    rss_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                 resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    lines.append(f"peak RSS (largest single process): {rss_mb:.0f} MiB")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)


if __name__ == "__main__":
    main()
