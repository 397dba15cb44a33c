"""Exceptions raised by adaptive-codec.

A deliberately small hierarchy (in the spirit of ``librosa.util.exceptions``):
everything the package raises on purpose derives from
:class:`AdaptiveCodecError`, so callers and the CLI can tell "the input or an
artifact is bad" (a one-line message for the user) from a programming error
(a traceback for the developer).

Messages are complete sentences about the user's input: they name the file,
the key or the value and say what is wrong, e.g.
``profiles/podcast.toml:4: key 'bitrate_kbps': must be > 0, got -6.0``.
"""

from __future__ import annotations

__all__ = [
    "AdaptiveCodecError",
    "AudioError",
    "ProfileError",
    "FormatError",
    "ModelError",
]


class AdaptiveCodecError(Exception):
    """Base class of every error adaptive-codec raises on purpose."""


class AudioError(AdaptiveCodecError):
    """Audio input is missing, unreadable, corrupt or outside what we accept.

    Examples: a file that does not exist, a truncated FLAC, NaN samples,
    more than 8 channels, a sample rate below 8 kHz.
    """


class ProfileError(AdaptiveCodecError):
    """A profile TOML file is invalid, or the profile registry is inconsistent.

    Examples: an unknown key, a negative bitrate, an unknown base profile,
    two profiles with the same name without ``override = true``.
    """


class FormatError(AdaptiveCodecError):
    """A bitstream (``.acx``) or archive (``.aca``) is malformed or unsupported.

    Examples: wrong magic bytes, an unknown format version, a CRC mismatch,
    a truncated chunk.
    """


class ModelError(AdaptiveCodecError):
    """Model weights or a classifier artifact are missing, corrupt or mismatched.

    Examples: a bitstream that names a backbone weights version that is not
    installed, a safetensors file with missing tensors.
    """
