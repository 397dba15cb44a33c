"""Profiles -> what the backbone is conditioned on: an embedding vector and an entropy prior id.

A built-in profile is a row of the backbone's profile embedding; a custom
profile starts from its ``base`` profile's row and may replace the vector
with a fine-tuned one from its ``conditioning`` file (safetensors with an
``embedding`` vector and an optional ``prior_id``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file

from adaptive_codec.errors import FormatError, ProfileError
from adaptive_codec.profiles import Profile
from adaptive_codec.profiles.registry import ProfileRegistry

if TYPE_CHECKING:
    from adaptive_codec.container.acx_header import AcxHeader

__all__ = ["EmbeddingTable", "CONDITIONING_KEY", "load_conditioning", "prior_and_vector", "builtin_row",
           "frame_conditioning", "FrameConditioning"]

#: Key of the fine-tuned embedding vector in a profile's conditioning file.
CONDITIONING_KEY = "embedding"


@dataclass(frozen=True)
class EmbeddingTable:
    """The backbone's built-in profile embeddings, as data.

    Attributes
    ----------
    names : tuple of str
        Built-in profile names in row order (the entropy prior id of a
        built-in profile is its row).
    vectors : np.ndarray [shape=(len(names), cond_dim)], float32
    """

    names: tuple[str, ...]
    vectors: np.ndarray = field(repr=False)

    @property
    def cond_dim(self) -> int:
        return int(self.vectors.shape[1])


def builtin_row(profile: Profile, table: EmbeddingTable) -> int | None:
    """Embedding row of a built-in profile used as shipped; None for any other profile."""
    if profile.name in table.names and profile.conditioning is None:
        return table.names.index(profile.name)
    return None


def prior_and_vector(profile: Profile, registry: ProfileRegistry, table: EmbeddingTable,
                     seen: tuple[str, ...] = ()) -> tuple[int, np.ndarray]:
    """Entropy prior id and conditioning vector ``(cond_dim,)`` float32 of ``profile``.

    Raises
    ------
    ProfileError
        A circular ``base`` chain, an unreadable conditioning file, or a
        profile with neither a base nor a conditioning file.
    """
    row = builtin_row(profile, table)
    if row is not None:
        return row, table.vectors[row].astype(np.float32)
    base_prior, base_vec = None, None
    if profile.base is not None:
        if profile.base in seen:
            raise ProfileError(f"profile {profile.name!r}: circular base chain {seen}")
        base_prior, base_vec = prior_and_vector(registry.get(profile.base), registry, table, seen + (profile.name,))
    if profile.conditioning is not None:
        vec, prior = load_conditioning(profile, table.cond_dim)
        return (base_prior if base_prior is not None else prior), vec
    if base_vec is not None:
        return base_prior, base_vec
    raise ProfileError(
        f"profile {profile.name!r} has neither a 'base' profile nor a 'conditioning' file, "
        "so the backbone has no embedding for it; set base = \"speech\"|\"music\"|\"ambient\"")


def load_conditioning(profile: Profile, cond_dim: int) -> tuple[np.ndarray, int]:
    """Fine-tuned embedding ``(cond_dim,)`` float32 and prior id from a profile's ``conditioning`` file.

    A relative path is taken from the folder of the profile's TOML file.
    """
    path = profile.conditioning
    if path is not None and not path.is_absolute() and profile.source is not None:
        path = Path(profile.source).parent / path
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ProfileError(f"profile {profile.name!r}: cannot read conditioning {path}: {exc}") from None
    vec = arrays.get(CONDITIONING_KEY)
    if vec is None or vec.shape != (cond_dim,) or not np.isfinite(vec).all():
        raise ProfileError(f"profile {profile.name!r}: {path} must hold a finite "
                           f"'{CONDITIONING_KEY}' vector of {cond_dim} values")
    prior = int(arrays.get("prior_id", np.zeros(1))[0])
    return vec.astype(np.float32), prior


def frame_conditioning(header: "AcxHeader", channel: int, table: EmbeddingTable) -> np.ndarray:
    """Conditioning ``(frames, cond_dim)`` float32 of every frame of ``channel``, from a stream's profile table.

    ``n_frames · cond_dim · 4`` bytes (128 bytes a frame, 35 MB an hour):
    the encoder takes the rows a piece needs from :class:`FrameConditioning`
    instead.

    Raises
    ------
    FormatError
        A built-in row the backbone lacks, or a vector of the wrong size.
    """
    return FrameConditioning(header, channel, table).rows(0, header.n_frames)


class FrameConditioning:
    """The conditioning of one channel's frames, made a range of rows at a time.

    Conditioning is constant over a segment, so a stream's needs only its
    segment table and one vector per profile; :meth:`rows` makes the
    ``(frames, cond_dim)`` rows of a range when a backbone piece needs them,
    and memory does not grow with the length of the stream.

    Parameters
    ----------
    header : AcxHeader
        Its profile and segment tables.
    channel : int
    table : EmbeddingTable
        The backbone's built-in embeddings.

    Raises
    ------
    FormatError
        A built-in row the backbone lacks, or a vector of the wrong size
        (checked here, for every profile a segment uses).
    """

    def __init__(self, header: "AcxHeader", channel: int, table: EmbeddingTable) -> None:
        self.n_frames = int(header.n_frames)
        self.cond_dim = table.cond_dim
        segments = header.segments_for_channel(channel)
        vectors: dict[int, np.ndarray] = {}
        for seg in segments:
            if seg.profile_index not in vectors:
                vectors[seg.profile_index] = _profile_vector(header.profiles[seg.profile_index], table)
        self._vectors = vectors
        # Sorted by start (segments_for_channel): a range finds its first segment by bisection.
        self._starts = np.array([s.start_frame for s in segments], np.int64)
        self._ends = np.array([s.end_frame for s in segments], np.int64)
        self._profiles = [s.profile_index for s in segments]
        # Tiled segments (every stream the encoder writes) end in order too.
        self._ends_sorted = bool(np.all(self._ends[1:] >= self._ends[:-1]))

    def rows(self, start_frame: int, end_frame: int) -> np.ndarray:
        """Conditioning ``(n, cond_dim)`` float32 of frames ``[start_frame, end_frame)`` (clipped to the stream).

        Frames no segment covers are zero, as in :func:`frame_conditioning`.
        """
        a, b = max(0, int(start_frame)), min(self.n_frames, int(end_frame))
        out = np.zeros((max(0, b - a), self.cond_dim), np.float32)
        # Segments ending after a; later segments overwrite earlier ones where
        # they overlap, as the whole-stream loop did.
        first = int(np.searchsorted(self._ends, a, side="right")) if self._ends_sorted else 0
        for i in range(first, len(self._starts)):
            if self._starts[i] >= b:
                break
            lo, hi = max(int(self._starts[i]), a), min(int(self._ends[i]), b)
            if lo < hi:
                out[lo - a : hi - a] = self._vectors[self._profiles[i]]
        return out


def _profile_vector(entry, table: EmbeddingTable) -> np.ndarray:
    """The conditioning vector ``(cond_dim,)`` of a stream's profile-table entry.

    Raises
    ------
    FormatError
        A built-in row the backbone lacks, or a vector of the wrong size.
    """
    if entry.is_builtin:
        if entry.embedding_index >= table.vectors.shape[0]:
            raise FormatError(f"profile {entry.name!r}: embedding row {entry.embedding_index} "
                              "is not in the backbone")
        vec = table.vectors[entry.embedding_index]
    else:
        vec = np.asarray(entry.conditioning, np.float32)
    if vec.size != table.cond_dim:
        raise FormatError(f"profile {entry.name!r}: conditioning has {vec.size} values, "
                          f"backbone needs {table.cond_dim}")
    return vec
