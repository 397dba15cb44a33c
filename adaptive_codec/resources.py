"""Locate the data that ships with the package.

The repository keeps data at its root (``profiles/``, ``classifiers/``,
``examples/``; see DESIGN.md), while the backbone weights live inside the
package (``adaptive_codec/weights/``). ``setup.py`` maps the root folders into
the wheel as ``adaptive_codec/_profiles``, ``adaptive_codec/_classifiers`` and
``adaptive_codec/_examples``. So every lookup here tries the installed location
first and falls back to the source checkout (editable installs, running from
a clone); both are covered by tests (``tests/test_wheel.py``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from adaptive_codec.errors import AdaptiveCodecError

__all__ = [
    "profiles_dir",
    "classifiers_dir",
    "examples_dir",
    "example_path",
    "weights_dir",
    "EXAMPLE_NAMES",
]

#: Bundled example clips, by name (``examples/<name>.flac``); see
#: ``examples/README.md`` for their sources and licences.
EXAMPLE_NAMES = ("speech", "music", "ambient", "mixed")

# installed name inside the package -> folder at the repository root
_PACKAGED = {
    "_profiles": "profiles",
    "_classifiers": "classifiers",
    "_examples": "examples",
}


def _package_root() -> Path:
    # files() of a regular (non-zipped) package is a pathlib.Path; wheels are
    # always unpacked by pip, so a real directory is the only case we support.
    return Path(str(resources.files("adaptive_codec")))


def _data_dir(packaged: str, what: str) -> Path:
    installed = _package_root() / packaged
    if installed.is_dir():
        return installed
    checkout = _package_root().parent / _PACKAGED[packaged]
    if checkout.is_dir():
        return checkout
    raise AdaptiveCodecError(
        f"{what} not found (looked in {installed} and {checkout}); "
        "the installation is incomplete - reinstall adaptive-codec"
    )


def profiles_dir() -> Path:
    """Folder of the built-in profile TOML files (``profiles/``).

    Returns
    -------
    Path
        Holds ``speech.toml``, ``music.toml``, ``ambient.toml`` and an
        ``examples/`` sub-folder of custom-profile examples.
    """
    return _data_dir("_profiles", "built-in profiles")


def classifiers_dir() -> Path:
    """Folder of the shipped classifier artifacts (``classifiers/``)."""
    return _data_dir("_classifiers", "shipped classifiers")


def examples_dir() -> Path:
    """Folder of the bundled example audio (``examples/``)."""
    return _data_dir("_examples", "bundled example audio")


def example_path(name: str) -> Path:
    """Path of a bundled example clip.

    Parameters
    ----------
    name : str
        One of :data:`EXAMPLE_NAMES` (``"speech"``, ``"music"``,
        ``"ambient"``, ``"mixed"``).

    Returns
    -------
    Path
        The FLAC file. The mixed clip has its reference labels beside it in
        ``mixed.segments.csv`` (columns ``start_s,end_s,label``).
    """
    if name not in EXAMPLE_NAMES:
        raise AdaptiveCodecError(
            f"unknown example {name!r}; available: {', '.join(EXAMPLE_NAMES)}"
        )
    path = examples_dir() / f"{name}.flac"
    if not path.is_file():
        raise AdaptiveCodecError(f"bundled example missing: {path}")
    return path


def weights_dir() -> Path:
    """Folder of the backbone weights (``adaptive_codec/weights/``).

    Returned even if it does not exist yet; the backbone loader reports a
    missing weights file as a :class:`~adaptive_codec.errors.ModelError`.
    """
    return _package_root() / "weights"
