"""Content profiles: what a class of audio is coded with, as data.

A profile is a TOML file (see ``profiles/speech.toml``)::

    name = "podcast"                      # [a-z0-9_-], unique in the registry
    description = "Talk with music beds"
    labels = ["podcast"]                  # classifier labels routed here
    bitrate_kbps = 6.0                    # target bitrate ... or n_q = 8 (RVQ depth), not both
    rate_lambda = 0.01                    # weight of the bit-rate term in training
    depth_slope = 0.0                     # optional: RVQ levels moved per 10 dB of frame energy (0 = fixed depth)
    highband_bands = 4                    # optional: bands of the envelope above 12 kHz (0 = no high band)
    highband_frames = 2                   # optional: codec frames (13.3 ms) per envelope frame
    highband_noise = 0.0                  # optional: noise share of the regenerated band (rest: patch)
    highband_rates = [[0, 4, 4], [5, 8, 2]]  # optional: [from kbps, bands, frames] by asked rate
    base = "speech"                       # optional: start from this profile's conditioning
    conditioning = "podcast.safetensors"  # optional: fine-tuned embedding, relative to this file
    # override = true                     # required to replace a profile of the same name/label

    [loss_weights]                        # all default to 0.0
    waveform = 0.1
    mel = 1.0
    stft = 0.6

:meth:`Profile.from_toml` validates the file and reports problems as
``FILE:LINE: key 'KEY': PROBLEM``. :class:`ProfileRegistry` collects the
built-in profiles, user folders (``--profiles-dir``, ``$ADAPTIVE_CODEC_PROFILES``)
and plug-in packages (entry point group ``adaptive_codec.profiles``); it lives
in :mod:`adaptive_codec.profiles.registry` and is re-exported by
:mod:`adaptive_codec.profiles`.

The names of the loss terms are owned here: :data:`LOSS_TERMS` is the list
of :class:`LossWeights` fields, and the training loss
(:mod:`adaptive_codec.backbone.losses`) computes exactly those terms.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from adaptive_codec.errors import ProfileError
from adaptive_codec.profiles.toml import load_toml, where_key

__all__ = [
    "ENV_VAR",
    "ENTRY_POINT_GROUP",
    "LOSS_TERMS",
    "LossWeights",
    "MAX_DEPTH_SLOPE",
    "Profile",
]

#: Environment variable with extra profile folders/files (os.pathsep-separated).
ENV_VAR = "ADAPTIVE_CODEC_PROFILES"
#: Entry-point group through which installed packages contribute profiles.
ENTRY_POINT_GROUP = "adaptive_codec.profiles"

# Names and labels travel in bitstreams and on command lines: keep them
# lowercase ASCII so "Speech" and "speech" can never be two profiles.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# "auto" is what the CLI/API use for "let the classifier decide".
_RESERVED_NAMES = frozenset({"auto"})


@dataclass(frozen=True)
class LossWeights:
    """Weights of the training loss terms (all default 0.0, i.e. unused).

    Attributes
    ----------
    waveform : float
        L1 on samples.
    mel : float
        Multi-scale log-mel distance (speech clarity).
    stft : float
        Multi-resolution STFT magnitude loss (music detail).
    mfcc : float
        MFCC distance (spectral envelope, speech timbre).
    chroma : float
        Chroma (pitch-class) distance (harmony in music).
    contrast : float
        Spectral-contrast distance (texture, dynamic range of ambient sound).
    loudness : float
        Loudness-envelope distance.
    phase : float
        Phase-aware distance of compressed complex STFTs (waveform coherence).
    intelligibility : float
        1 − STOI-style correlation of one-third octave band envelopes
        (150 Hz–4 kHz, 384 ms segments): what STOI measures, differentiable.
    band_level : float
        Distance of the mel bands' powers averaged over the whole example
        (long-term spectral balance: no steady muffling or brightening).
    """

    waveform: float = 0.0
    mel: float = 0.0
    stft: float = 0.0
    mfcc: float = 0.0
    chroma: float = 0.0
    contrast: float = 0.0
    loudness: float = 0.0
    phase: float = 0.0
    intelligibility: float = 0.0
    band_level: float = 0.0

    def as_dict(self) -> dict[str, float]:
        """Return ``{term: weight}`` for every term, zeros included."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


#: Names of the loss terms a profile may weight (TOML ``[loss_weights]``), in
#: the order of the training loss's weight matrix. Owned by the fields of
#: :class:`LossWeights`: add a term there (and compute it in
#: ``backbone/losses.py``), never here.
LOSS_TERMS: tuple[str, ...] = tuple(f.name for f in fields(LossWeights))

#: Keys that profile files may still hold but that mean nothing any more
#: (ignored with a warning, so old files keep loading), with the reason.
_OBSOLETE_KEYS = {
    "sample_rate_hz": "it never changed the coding rate (the backbone codes at its "
                      "own internal rate); remove it",
}


class _FieldError(ProfileError):
    """A problem with one key; :meth:`Profile.from_toml` adds file and line."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"key {key!r}: {problem}")
        self.key = key
        self.problem = problem


def _number(key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _FieldError(key, f"must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise _FieldError(key, f"must be finite, got {value}")
    if positive and value <= 0:
        raise _FieldError(key, f"must be > 0, got {value}")
    if value < 0:
        raise _FieldError(key, f"must be >= 0, got {value}")
    return value


def _integer(key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FieldError(key, f"must be an integer, got {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise _FieldError(key, f"must be between {lo} and {hi}, got {value}")
    return value


def _string(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _FieldError(key, f"must be a string, got {type(value).__name__} {value!r}")
    return value


def _identifier(key: str, value: Any) -> str:
    value = _string(key, value)
    if not _NAME_RE.match(value):
        raise _FieldError(
            key, f"{value!r} must be 1-64 characters of a-z, 0-9, '_' or '-', starting "
            "with a letter or digit"
        )
    return value


#: Largest depth_slope: 16 levels per 10 dB is already a switch between the
#: smallest and largest depth at any level step.
MAX_DEPTH_SLOPE = 16.0


@dataclass(frozen=True)
class Profile:
    """How one class of content is coded and trained.

    Attributes
    ----------
    name : str
        Unique name (``[a-z0-9][a-z0-9_-]*``, not ``"auto"``).
    description : str
        One line for humans.
    labels : tuple of str
        Classifier labels routed to this profile; empty means the profile is
        used only when named explicitly.
    bitrate_kbps : float or None
        Target bitrate. Exactly one of ``bitrate_kbps`` and ``n_q`` is set;
        the backbone derives the RVQ depth from the bitrate in one place.
    n_q : int or None
        Number of residual-VQ levels to keep, instead of a bitrate.
    loss_weights : LossWeights
        Training loss weights for examples of this class.
    rate_lambda : float
        Weight of the entropy-model bit estimate in the training loss.
    depth_slope : float
        Energy-adaptive depth: RVQ levels per 10 dB of frame energy that the
        encoder moves from quiet to loud frames at the same bitrate
        (:mod:`adaptive_codec.planning.depth_allocation`); 0 codes every frame at the
        profile's depth.
    highband_bands : int
        Bands of the coded envelope above 12 kHz for 44.1/48 kHz sources,
        0..8 (:mod:`adaptive_codec.tools.highband`); 0 codes no high band.
    highband_frames : int
        Codec frames per envelope frame, 1..16 (2: 26.7 ms).
    highband_noise : float
        Share of noise in the regenerated band's power, 0..1; the rest is
        the decoded 5-11 kHz band patched up.
    highband_rates : tuple of (float, int, int)
        The envelope's resolution by the asked (whole-stream) rate: rows
        ``(from_kbps, bands, frames)`` in increasing ``from_kbps``; a segment
        asked ``r`` kbps uses the last row with ``from_kbps <= r``
        (:meth:`highband_at`). Empty, below the first row and for a profile
        coded at a fixed ``n_q``: ``highband_bands`` and ``highband_frames``.
        ``highband_bands = 0`` turns the high band off at every rate.
    base : str or None
        Existing profile whose conditioning this one starts from (built-ins
        have none).
    conditioning : Path or None
        Safetensors file with a fine-tuned profile embedding.
    override : bool
        Allows this profile to replace an earlier one with the same name or
        label in a :class:`ProfileRegistry`.
    source : Path or None
        File the profile was loaded from (not part of the profile's data).
    """

    name: str
    description: str = ""
    labels: tuple[str, ...] = ()
    bitrate_kbps: float | None = None
    n_q: int | None = None
    loss_weights: LossWeights = field(default_factory=LossWeights)
    rate_lambda: float = 0.0
    depth_slope: float = 0.0
    highband_bands: int = 4
    highband_frames: int = 2
    highband_noise: float = 0.0
    highband_rates: tuple[tuple[float, int, int], ...] = ()
    base: str | None = None
    conditioning: Path | None = None
    override: bool = False
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        _identifier("name", self.name)
        if self.name in _RESERVED_NAMES:
            raise _FieldError("name", f"{self.name!r} is reserved")
        _string("description", self.description)
        if isinstance(self.labels, str) or not isinstance(self.labels, (tuple, list)):
            raise _FieldError("labels", f"must be a list of strings, got {self.labels!r}")
        for label in self.labels:
            _identifier("labels", label)
        if len(set(self.labels)) != len(self.labels):
            raise _FieldError("labels", f"lists a label twice: {list(self.labels)}")
        object.__setattr__(self, "labels", tuple(self.labels))
        if (self.bitrate_kbps is None) == (self.n_q is None):
            raise _FieldError(
                "bitrate_kbps", "set exactly one of 'bitrate_kbps' and 'n_q' "
                f"(got {'both' if self.n_q is not None else 'neither'})"
            )
        if self.bitrate_kbps is not None:
            object.__setattr__(
                self, "bitrate_kbps", _number("bitrate_kbps", self.bitrate_kbps, positive=True)
            )
        if self.n_q is not None:
            _integer("n_q", self.n_q, 1, 64)
        if not isinstance(self.loss_weights, LossWeights):
            raise _FieldError("loss_weights", "must be a LossWeights")
        for key in LOSS_TERMS:
            _number(f"loss_weights.{key}", getattr(self.loss_weights, key))
        object.__setattr__(self, "rate_lambda", _number("rate_lambda", self.rate_lambda))
        slope = _number("depth_slope", self.depth_slope)
        if not 0 <= slope <= MAX_DEPTH_SLOPE:
            raise _FieldError("depth_slope", f"must be in 0..{MAX_DEPTH_SLOPE:g} (levels per 10 dB), got {slope:g}")
        object.__setattr__(self, "depth_slope", slope)
        _integer("highband_bands", self.highband_bands, 0, 8)
        _integer("highband_frames", self.highband_frames, 1, 16)
        noise = _number("highband_noise", self.highband_noise)
        if not 0 <= noise <= 1:
            raise _FieldError("highband_noise", f"must be in 0..1 (share of noise), got {noise:g}")
        object.__setattr__(self, "highband_noise", noise)
        object.__setattr__(self, "highband_rates", _highband_rates(self.highband_rates))
        if self.base is not None:
            _identifier("base", self.base)
            if self.base == self.name:
                raise _FieldError("base", "a profile cannot be its own base")
        if self.conditioning is not None:
            object.__setattr__(self, "conditioning", Path(self.conditioning))
            if self.conditioning.suffix != ".safetensors":
                raise _FieldError("conditioning", "must name a .safetensors file")
        if not isinstance(self.override, bool):
            raise _FieldError("override", f"must be true or false, got {self.override!r}")

    def highband_at(self, kbps: float | None) -> tuple[int, int]:
        """(bands, codec frames per value) of the high band for a segment asked ``kbps`` (None: fixed depth)."""
        bands, frames = self.highband_bands, self.highband_frames
        if bands == 0:
            return 0, frames
        if kbps is not None:
            for start, b, f in self.highband_rates:
                if start <= kbps:
                    bands, frames = b, f
        return bands, frames

    # -- (de)serialisation --------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: Path | None = None) -> Profile:
        """Build a profile from TOML-shaped data (e.g. embedded in a bitstream).

        Parameters
        ----------
        data : Mapping
            Keys as in a profile TOML file.
        base_dir : Path, optional
            Folder that a relative ``conditioning`` path is relative to.

        Raises
        ------
        ProfileError
            Unknown key, wrong type or invalid value; the message names the key.

        Warns
        -----
        FutureWarning
            For an obsolete key (``sample_rate_hz``), which is ignored.
        """
        if not isinstance(data, Mapping):
            raise ProfileError(f"profile data must be a table, got {type(data).__name__}")
        data = _without_obsolete_keys(data, "profile")
        allowed = {f.name for f in fields(cls)} - {"source"}
        for key in data:
            if key not in allowed:
                raise _FieldError(key, f"unknown key; allowed keys: {', '.join(sorted(allowed))}")
        if "name" not in data:
            raise _FieldError("name", "missing (every profile needs a name)")
        kwargs = dict(data)
        weights = kwargs.pop("loss_weights", {})
        if not isinstance(weights, Mapping):
            raise _FieldError("loss_weights", f"must be a table, got {type(weights).__name__}")
        for key in weights:
            if key not in LOSS_TERMS:
                raise _FieldError(
                    f"loss_weights.{key}",
                    f"unknown loss term; known terms: {', '.join(LOSS_TERMS)}",
                )
        kwargs["loss_weights"] = LossWeights(
            **{k: _number(f"loss_weights.{k}", v) for k, v in weights.items()}
        )
        if "labels" in kwargs and not isinstance(kwargs["labels"], list):
            raise _FieldError("labels", f"must be a list of strings, got {kwargs['labels']!r}")
        if "conditioning" in kwargs:
            rel = Path(_string("conditioning", kwargs["conditioning"]))
            kwargs["conditioning"] = base_dir / rel if base_dir is not None else rel
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> Profile:
        """Load and validate a profile file.

        Parameters
        ----------
        path : str or PathLike
            A ``.toml`` profile file.

        Returns
        -------
        Profile
            With ``source`` set to ``path`` and ``conditioning`` resolved
            relative to the file's folder.

        Raises
        ------
        ProfileError
            ``FILE:LINE: key 'KEY': PROBLEM`` for an invalid key or value,
            ``FILE:LINE:COL: invalid TOML: ...`` for a syntax error, or
            ``FILE: ...`` if the file cannot be read.
        """
        p = Path(path)
        data = load_toml(p, what="profile", error=ProfileError)
        # Named with its line here, so from_dict has nothing left to warn about.
        data = _without_obsolete_keys(data, p)
        try:
            profile = cls.from_dict(data, base_dir=p.parent)
        except _FieldError as exc:
            raise ProfileError(where_key(p, exc.key) + str(exc)) from exc
        if profile.conditioning is not None and not profile.conditioning.is_file():
            raise ProfileError(
                where_key(p, "conditioning")
                + f"key 'conditioning': file not found: {profile.conditioning}"
            )
        return replace(profile, source=p)

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as TOML-shaped plain data (no ``source``).

        ``None`` fields are left out (TOML has no null); ``conditioning`` is
        written relative to the source file's folder when it lies below it.
        """
        out: dict[str, Any] = {"name": self.name, "description": self.description,
                               "labels": list(self.labels)}
        if self.bitrate_kbps is not None:
            out["bitrate_kbps"] = self.bitrate_kbps
        if self.n_q is not None:
            out["n_q"] = self.n_q
        out["rate_lambda"] = self.rate_lambda
        if self.depth_slope:
            out["depth_slope"] = self.depth_slope
        for key in ("highband_bands", "highband_frames", "highband_noise"):
            if getattr(self, key) != _FIELD_DEFAULTS[key]:
                out[key] = getattr(self, key)
        if self.highband_rates:
            out["highband_rates"] = [list(row) for row in self.highband_rates]
        if self.base is not None:
            out["base"] = self.base
        if self.conditioning is not None:
            cond = self.conditioning
            if self.source is not None and cond.is_relative_to(self.source.parent):
                cond = cond.relative_to(self.source.parent)
            out["conditioning"] = cond.as_posix()
        if self.override:
            out["override"] = True
        out["loss_weights"] = self.loss_weights.as_dict()
        return out

    def to_toml(self) -> str:
        """Return the profile as TOML text that :meth:`from_toml` reads back."""
        return tomli_w.dumps(self.to_dict())


_FIELD_DEFAULTS = {f.name: f.default for f in fields(Profile)}


def _highband_rates(rows: Any) -> tuple[tuple[float, int, int], ...]:
    """``highband_rates`` checked: rows ``[from_kbps >= 0, bands 0..8, frames 1..16]``, rates increasing."""
    key = "highband_rates"
    if isinstance(rows, (str, bytes)) or not isinstance(rows, (list, tuple)):
        raise _FieldError(key, f"must be a list of [from_kbps, bands, frames] rows, got {rows!r}")
    out = []
    for row in rows:
        if isinstance(row, (str, bytes)) or not isinstance(row, (list, tuple)) or len(row) != 3:
            raise _FieldError(key, f"every row must be [from_kbps, bands, frames], got {row!r}")
        start = _number(key, row[0])
        if out and start <= out[-1][0]:
            raise _FieldError(key, f"from_kbps must increase from row to row ({start:g} after {out[-1][0]:g})")
        out.append((start, _integer(key, row[1], 0, 8), _integer(key, row[2], 1, 16)))
    return tuple(out)


def _without_obsolete_keys(data: Mapping[str, Any], where: str | os.PathLike[str]) -> Mapping[str, Any]:
    """``data`` without :data:`_OBSOLETE_KEYS`, warning once for each one present."""
    present = [key for key in _OBSOLETE_KEYS if key in data]
    if not present:
        return data
    for key in present:
        prefix = where_key(where, key) if isinstance(where, Path) else f"{where}: "
        warnings.warn(f"{prefix}key {key!r} is obsolete and ignored: {_OBSOLETE_KEYS[key]}",
                      FutureWarning, stacklevel=3)
    return {k: v for k, v in data.items() if k not in present}
