"""The rows of an ``.acx`` header's tables: profile entries and segment entries.

Split from :mod:`adaptive_codec.container.acx_header` (which serializes and
validates them) to keep each module to one idea; import the public names from
:mod:`adaptive_codec.container.acx`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ProfileEntry", "SegmentEntry", "quantize_confidence"]


@dataclass(eq=False)
class ProfileEntry:
    """One row of the profile table: enough to decode without the user's TOML.

    Attributes
    ----------
    name : str
        Profile name (e.g. ``"speech"``, ``"podcast"``).
    prior_id : int
        Entropy-model prior (built-in family) its frames are coded with.
    parameters : dict
        The profile's parameters as JSON values (embedded profiles only; a
        built-in profile is defined by the package that wrote the file).
    conditioning : np.ndarray [shape=(cond_dim,), dtype=float32]
        The profile embedding (embedded profiles only; empty for built-ins,
        whose embedding is row ``embedding_index`` of the named weights).
    embedding_index : int or None
        For a built-in profile, its row in the backbone's profile embedding
        (and its prior id); ``None`` for an embedded (custom) profile.
    """

    name: str
    prior_id: int
    parameters: dict[str, Any] = field(default_factory=dict)
    conditioning: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    embedding_index: int | None = None

    @classmethod
    def builtin(cls, name: str, embedding_index: int) -> "ProfileEntry":
        """A built-in profile: referenced by name and embedding row, nothing embedded."""
        return cls(name, embedding_index, {}, np.zeros(0, np.float32), embedding_index)

    @property
    def is_builtin(self) -> bool:
        return self.embedding_index is not None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ProfileEntry)
            and (self.name, self.prior_id, self.parameters, self.embedding_index)
            == (other.name, other.prior_id, other.parameters, other.embedding_index)
            and np.array_equal(np.asarray(self.conditioning, np.float32), np.asarray(other.conditioning, np.float32))
        )


def quantize_confidence(value: float) -> float:
    """``value`` clipped to 0..1 and rounded to the 1/255 grid the header stores."""
    if not math.isfinite(value):
        return value
    return round(min(1.0, max(0.0, float(value))) * 255) / 255


@dataclass
class SegmentEntry:
    """One row of the segment table: a run of frames coded with one profile.

    Attributes
    ----------
    start_frame, end_frame : int
        Frame range ``[start_frame, end_frame)`` at the internal frame rate.
    profile_index : int
        Row of the profile table.
    n_q : int
        RVQ depth: number of levels coded per frame, ``0..max_levels``; with
        ``adaptive`` the segment's budget (mean depth), each frame's depth
        being coded in the chunks.
    label : str
        Content class the router assigned (e.g. ``"speech"``).
    confidence : float
        Router confidence in ``label``, 0..1, stored to 1/255.
    channel : int or None
        Channel the row applies to; ``None`` means all channels.
    adaptive : bool
        Frame depths are coded in the chunks (energy-adaptive depth,
        :mod:`adaptive_codec.planning.depth_allocation`).
    """

    start_frame: int
    end_frame: int
    profile_index: int
    n_q: int
    label: str = ""
    confidence: float = 1.0
    channel: int | None = None
    adaptive: bool = False

    def __post_init__(self) -> None:
        # Stored as a byte: round now so a written and re-read table compares equal.
        self.confidence = quantize_confidence(self.confidence)
