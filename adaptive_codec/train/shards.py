"""Training shards: a small, class-balanced sample of the codec's training caches.

The training caches (24 kHz mono int16 ``<label>.npy`` + ``<label>.json``,
written by ``adaptive-codec train codec``; ~1.5 GB here) are far larger than
what travels to a device machine (64 MiB in all, the repository included).
:func:`pack` draws clips from them into a shard folder of ``<label>.flac``
(lossless, 16-bit: about twice the audio of raw int16 in the same luggage) or
``<label>.npy``, each beside its ``<label>.json`` index; :func:`expand_shard`
turns a shard back into the cache format :class:`~adaptive_codec.train.codec_data.CropSampler`
reads. ``tools/pack_shard.py`` and ``tools/device_train.py`` are the two ends.

Only corpus *train-split* caches and pool caches should be packed: the
held-out corpus recordings stay out of training wherever it runs.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np

from adaptive_codec.audio import INTERNAL_SAMPLE_RATE_HZ
from adaptive_codec.profiles import BUILTIN_CLASSES

__all__ = ["FORMATS", "SAMPLE_RATE_HZ", "expand_shard", "pack"]

#: Rate of the cached (and shard) audio: the backbone's.
SAMPLE_RATE_HZ = INTERNAL_SAMPLE_RATE_HZ
#: Shard audio formats: FLAC (lossless, default) or raw int16 arrays.
FORMATS = ("flac", "npy")


def _clips(caches: list[Path], label: str) -> list[tuple[Path, dict]]:
    found = []
    for cache in caches:
        meta = cache / f"{label}.json"
        if meta.exists() and (cache / f"{label}.npy").exists():
            found += [(cache, clip) for clip in json.loads(meta.read_text())["clips"]]
    return found


def _encoded_bytes(samples: np.ndarray, fmt: str) -> int:
    """Bytes ``samples`` (int16) take in the shard's format."""
    if fmt == "npy":
        return samples.nbytes
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")
    return len(buf.getvalue())


def pack(caches: list[Path], out: Path, mib: float, seed: int, max_clip_s: float,
         fmt: str = "flac") -> dict[str, float]:
    """Write a shard of ``caches`` into ``out``.

    Clips are drawn in turn for the class with the fewest seconds so far, so
    the classes hold equal time (a class whose clips run out stops early)
    while their encoded bytes differ: FLAC halves speech and ambient but
    keeps ~65 % of music.

    Parameters
    ----------
    caches : list of Path
        Training cache folders (``<label>.npy`` + ``<label>.json``).
    out : Path
        Shard folder to write (created).
    mib : float
        Budget of the shard's encoded audio in MiB.
    seed : int
        Which random shard: different seeds draw different clips and windows.
    max_clip_s : float
        Longest stretch taken from one clip (s), a random window of a longer
        one, so one soundtrack cannot fill a class; clips under 0.5 s are skipped.
    fmt : str
        One of :data:`FORMATS`.

    Returns
    -------
    dict of str to float
        Seconds of audio per class written (classes without audio left out).

    Raises
    ------
    ValueError
        An unknown ``fmt``, or an unreadable array or index.
    KeyError
        A cache index entry lacks a field (``offset``, ``n_samples``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    rng = np.random.default_rng(seed)
    budget = int(mib * 2**20)
    max_clip = int(max_clip_s * SAMPLE_RATE_HZ)
    pools = {label: _clips(caches, label) for label in BUILTIN_CLASSES}
    orders = {label: iter(rng.permutation(len(clips)).tolist()) for label, clips in pools.items() if clips}
    arrays: dict[str, list[np.ndarray]] = {label: [] for label in orders}
    index: dict[str, list[dict]] = {label: [] for label in orders}
    used = {label: 0 for label in orders}  # samples
    spent = 0  # encoded bytes
    arrays_of: dict[tuple[Path, str], np.ndarray] = {}  # one memory map per cache file, not per clip
    active = list(orders)
    while active:
        label = min(active, key=lambda lb: used[lb])
        i = next(orders[label], None)
        if i is None:
            active.remove(label)
            continue
        cache, clip = pools[label][i]
        n = min(int(clip["n_samples"]), max_clip)
        if n < SAMPLE_RATE_HZ // 2:
            continue
        # A random window of a long clip, not always its opening.
        start = int(clip["offset"]) + int(rng.integers(0, int(clip["n_samples"]) - n + 1))
        if (cache, label) not in arrays_of:
            arrays_of[cache, label] = np.load(cache / f"{label}.npy", mmap_mode="r")
        samples = np.asarray(arrays_of[cache, label][start:start + n], dtype=np.int16)
        cost = _encoded_bytes(samples, fmt)
        if spent + cost > budget:
            break  # the budget is full; the classes are level to within one clip
        arrays[label].append(samples)
        index[label].append({"path": clip.get("path", ""), "source": clip.get("source", ""),
                             "offset": used[label], "n_samples": n})
        used[label] += n
        spent += cost
    out.mkdir(parents=True, exist_ok=True)
    filled = [label for label in orders if arrays[label]]  # a 0-frame FLAC would not read back
    for label in filled:
        audio = np.concatenate(arrays[label])
        tmp = out / f"{label}.tmp.{fmt}"
        if fmt == "npy":
            np.save(tmp, audio)
        else:
            import soundfile as sf

            sf.write(tmp, audio, SAMPLE_RATE_HZ, format="FLAC", subtype="PCM_16")
        tmp.replace(out / f"{label}.{fmt}")
        # Index beside its audio, atomically: a half-written index would misread the shard.
        tmp_json = out / f"{label}.tmp.json"
        tmp_json.write_text(json.dumps({"clips": index[label]}))
        tmp_json.replace(out / f"{label}.json")
    return {label: used[label] / SAMPLE_RATE_HZ for label in filled}


def expand_shard(shard: Path, dest: Path) -> Path:
    """The shard as a cache ``CropSampler`` reads: FLAC shards are decoded into ``dest``.

    Parameters
    ----------
    shard : Path
        A folder written by :func:`pack`.
    dest : Path
        Where a FLAC shard's ``<label>.npy`` arrays (and copies of the
        indexes) are written; unused for an npy shard.

    Returns
    -------
    Path
        ``dest``, or ``shard`` itself when it already holds ``<label>.npy`` arrays.

    Raises
    ------
    ValueError
        A FLAC file that is not 24 kHz mono.
    OSError, RuntimeError
        A missing index or an unreadable FLAC file (soundfile's errors are RuntimeErrors).
    """
    flacs = sorted(shard.glob("*.flac"))
    if not flacs:
        return shard
    import soundfile as sf

    dest.mkdir(parents=True, exist_ok=True)
    for flac in flacs:
        label = flac.stem
        audio, rate = sf.read(flac, dtype="int16")
        if rate != SAMPLE_RATE_HZ or audio.ndim != 1:
            raise ValueError(f"{flac}: expected 24 kHz mono, got {rate} Hz, shape {audio.shape}")
        np.save(dest / f"{label}.npy", audio)
        shutil.copy(shard / f"{label}.json", dest / f"{label}.json")
    return dest
