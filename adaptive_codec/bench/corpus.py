"""Which clips a benchmark runs on: a folder (class = sub-folder) or a manifest CSV.

* **Folder**: every audio file below ``CORPUS``; its class is the name of the
  first sub-folder (``CORPUS/speech/x.flac`` is ``speech``). Files directly in
  ``CORPUS`` are not labelled and are rejected.
* **Manifest CSV**: columns ``path,label`` and optionally ``segments``
  (paths relative to the CSV's folder).

A file with reference segments (the ``segments`` column, or a sibling
``<stem>.segments.csv`` with ``start_s,end_s,label``) is a *mixed* file: it is
coded like the others and also scores routing.

Held-out clips: when the corpus folder has a ``manifest.csv`` with a
``source`` column (the developers' corpus), ``split="auto"`` keeps only clips
of recordings the codec never trained on (:func:`is_held_out`, the split that
codec training uses too: ``train/`` imports it from here). Mixed files are
kept either way (they are cut from corpus clips, so they may contain training
material; the report says so).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from adaptive_codec.audio import AUDIO_SUFFIXES
from adaptive_codec.errors import AdaptiveCodecError

__all__ = ["BenchClip", "TEST_FRACTION_PERCENT", "is_held_out", "read_segments", "select_clips",
           "held_out_clips", "source_group"]

TEST_FRACTION_PERCENT = 15  # share of corpus source groups held out


def source_group(source: str) -> str:
    """Recording id of a corpus ``source`` entry (drops the cut offset and notes)."""
    return source.split("@", 1)[0].strip()


def is_held_out(source: str) -> bool:
    """Deterministic held-out membership of a corpus clip's recording.

    A fixed hash of :func:`source_group`, so every cut of one recording falls
    on the same side; codec training never trains on a held-out recording.
    """
    digest = hashlib.sha1(source_group(source).encode()).hexdigest()
    return int(digest[:8], 16) % 100 < TEST_FRACTION_PERCENT


class CorpusError(AdaptiveCodecError):
    """The benchmark input (folder or manifest) is unusable."""


@dataclass(frozen=True)
class BenchClip:
    """One input file of a benchmark run.

    Attributes
    ----------
    clip_id : str
        Path relative to the corpus (the ``clip`` column of ``results.csv``).
    path : Path
    label : str
        Class (one of :data:`~adaptive_codec.profiles.builtin.BUILTIN_CLASSES`,
        ``mixed``, or a custom class).
    segments : Path or None
        Reference segments CSV (``start_s,end_s,label``) of a mixed file.
    held_out : bool or None
        From the corpus manifest's source recording; None when unknown.
    """

    clip_id: str
    path: Path
    label: str
    segments: Path | None = None
    held_out: bool | None = None


def read_segments(path: Path) -> pd.DataFrame:
    """A reference segments CSV as a frame with ``start_s, end_s, label``."""
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad input file
        raise CorpusError(f"{path}: cannot read segments CSV ({exc})") from None
    missing = {"start_s", "end_s", "label"} - set(frame.columns)
    if missing:
        raise CorpusError(f"{path}: segments CSV lacks column(s) {', '.join(sorted(missing))}")
    return frame[["start_s", "end_s", "label"]]


def _sibling_segments(path: Path) -> Path | None:
    candidate = path.with_name(path.stem + ".segments.csv")
    return candidate if candidate.is_file() else None


def _held_out_map(corpus: Path) -> dict[str, bool]:
    manifest = corpus / "manifest.csv"
    if not manifest.is_file():
        return {}
    try:
        frame = pd.read_csv(manifest)
    except Exception:  # noqa: BLE001 - a foreign manifest.csv is not ours to judge
        return {}
    if not {"path", "source"} <= set(frame.columns):
        return {}
    return {str(p): is_held_out(str(s)) for p, s in zip(frame["path"], frame["source"])}


def _from_folder(root: Path) -> list[BenchClip]:
    held = _held_out_map(root)
    clips = []
    loose = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        rel = path.relative_to(root)
        if len(rel.parts) < 2:
            loose.append(rel.name)
            continue
        key = rel.as_posix()
        clips.append(BenchClip(key, path, rel.parts[0], _sibling_segments(path), held.get(key)))
    if not clips:
        hint = f" (files directly in the folder have no class: {', '.join(loose[:3])})" if loose else ""
        raise CorpusError(f"{root}: no audio files in class sub-folders{hint}")
    return clips


def _from_manifest(csv: Path) -> list[BenchClip]:
    try:
        frame = pd.read_csv(csv)
    except Exception as exc:  # noqa: BLE001
        raise CorpusError(f"{csv}: cannot read manifest CSV ({exc})") from None
    missing = {"path", "label"} - set(frame.columns)
    if missing:
        raise CorpusError(f"{csv}: manifest lacks column(s) {', '.join(sorted(missing))} "
                          "(expected path,label[,segments])")
    base = csv.parent
    held = {}
    if "source" in frame.columns:
        held = {str(p): is_held_out(str(s)) for p, s in zip(frame["path"], frame["source"])}
    clips = []
    for i, row in enumerate(frame.itertuples(index=False), start=2):
        path = base / str(row.path)
        if not path.is_file():
            raise CorpusError(f"{csv}:{i}: audio file not found: {path}")
        seg = getattr(row, "segments", None)
        segments = (base / str(seg)) if isinstance(seg, str) and seg.strip() else _sibling_segments(path)
        if segments is not None and not segments.is_file():
            raise CorpusError(f"{csv}:{i}: segments file not found: {segments}")
        clips.append(BenchClip(str(row.path), path, str(row.label), segments, held.get(str(row.path))))
    if not clips:
        raise CorpusError(f"{csv}: manifest has no rows")
    return clips


def select_clips(corpus: Path, *, split: str = "auto", max_clips_per_class: int = 0,
                 max_mixed_files: int = 0, seed: int = 0,
                 labels: Sequence[str] | str = "all") -> tuple[list[BenchClip], str]:
    """The clips of one run and a sentence saying how they were chosen.

    Parameters
    ----------
    corpus : Path
        A folder or a ``.csv`` manifest.
    split : {"auto", "all", "test"}
    max_clips_per_class, max_mixed_files : int
        Caps (0 = no cap); a seeded random sample of each class, kept in path order.
    seed : int
    labels : sequence of str or "all"
        Keep only clips of these classes (``"mixed"`` names the files with
        reference segments); "all" keeps every class. A label the corpus does
        not have is an error, so a typo cannot silently empty the run.
    """
    corpus = Path(corpus)
    if not corpus.exists():
        raise CorpusError(f"{corpus}: no such file or folder")
    if corpus.is_dir():
        clips = _from_folder(corpus)
    elif corpus.suffix.lower() == ".csv":
        clips = _from_manifest(corpus)
    else:
        raise CorpusError(f"{corpus}: expected a folder with class sub-folders or a manifest .csv")
    if labels != "all":
        missing = sorted(set(labels) - {c.label for c in clips})
        if missing:
            raise CorpusError(f"{corpus}: no clips labelled {', '.join(map(repr, missing))}; "
                              f"labels here: {', '.join(sorted({c.label for c in clips}))}")
        clips = [c for c in clips if c.label in set(labels)]
    known = any(c.held_out is not None for c in clips)
    if split == "test" and not known:
        raise CorpusError(f"{corpus}: split 'test' needs a manifest with a 'source' column")
    use_test = split == "test" or (split == "auto" and known)
    mixed = [c for c in clips if c.segments is not None]
    plain = [c for c in clips if c.segments is None and (not use_test or c.held_out)]
    rng = np.random.default_rng(seed)

    def cap(items: list[BenchClip], n: int) -> list[BenchClip]:
        if n <= 0 or len(items) <= n:
            return items
        keep = sorted(rng.choice(len(items), size=n, replace=False))
        return [items[i] for i in keep]

    chosen: list[BenchClip] = []
    for label in sorted({c.label for c in plain}):
        chosen += cap([c for c in plain if c.label == label], max_clips_per_class)
    chosen += cap(mixed, max_mixed_files)
    how = ("held-out clips only (split by source recording; the codec never trained on them)"
           if use_test else "all clips (no held-out information, or split = all)")
    if mixed:
        how += "; mixed files are cut from corpus clips and may contain training material"
    if not chosen:
        raise CorpusError(f"{corpus}: no clips left after selection (split {split!r})")
    return chosen, how


def held_out_clips(corpus: Path, max_clips_per_class: int = 0, labels: Sequence[str] | str = "all",
                   mixed: bool = True) -> list[BenchClip]:
    """The held-out clips of a corpus folder (its ``manifest.csv`` when there is one), as benchmarks steer by.

    Single-class clips of the test split (:func:`select_clips` with ``split="test"``)
    and, with ``mixed``, the mixed files whose sources are all held out.

    Raises
    ------
    CorpusError
        No manifest with sources, an unknown label, or nothing selected.
    """
    corpus = Path(corpus)
    manifest = corpus / "manifest.csv"
    chosen, _ = select_clips(manifest if manifest.is_file() else corpus, split="test",
                             max_clips_per_class=max_clips_per_class, labels=labels)
    return [c for c in chosen if c.segments is None or (mixed and c.held_out)]
