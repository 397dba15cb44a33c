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
           "frame_conditioning"]

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

    Raises
    ------
    FormatError
        A built-in row the backbone lacks, or a vector of the wrong size.
    """
    cond = np.zeros((header.n_frames, table.cond_dim), np.float32)
    for seg in header.segments_for_channel(channel):
        entry = header.profiles[seg.profile_index]
        if entry.is_builtin:
            if entry.embedding_index >= table.vectors.shape[0]:
                raise FormatError(f"profile {entry.name!r}: embedding row {entry.embedding_index} "
                                  "is not in the backbone")
            vec = table.vectors[entry.embedding_index]
        else:
            vec = np.asarray(entry.conditioning, np.float32)
        if vec.size != cond.shape[1]:
            raise FormatError(f"profile {entry.name!r}: conditioning has {vec.size} values, "
                              f"backbone needs {cond.shape[1]}")
        cond[seg.start_frame : seg.end_frame] = vec
    return cond
