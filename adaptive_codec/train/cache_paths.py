"""Where training keeps its decoded 24 kHz audio caches (no heavy imports: the CLI reads it at start-up)."""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Root of the caches ``train codec`` and ``train entropy`` build (``--cache-dir``).
DEFAULT_CACHE_ROOT = Path.home() / ".cache" / "adaptive-codec" / "codec-cache"
#: Default per-class cap (hours) on an ``--extra`` folder's cache (``--extra-hours``).
DEFAULT_EXTRA_HOURS = 4.0


def cache_dir_for(data_dir: Path, cache_root: Path = DEFAULT_CACHE_ROOT,
                  extra_hours: float | None = None) -> Path:
    """The cache folder that training builds for one data folder.

    Parameters
    ----------
    data_dir : Path
        A corpus (``--data``: its training split is cached) or an ``--extra``
        folder (cached whole, capped per class).
    cache_root : Path
        Root of the caches (``--cache-dir``).
    extra_hours : float or None
        None for a corpus; the per-class cap in hours for an ``--extra``
        folder (a different cap is a different cache).

    Returns
    -------
    Path
        ``<root>/<folder name>-<kind>-<hash of the absolute path and kind>``;
        it exists once the cache has been built.
    """
    kind = "train" if extra_hours is None else f"all{extra_hours:g}"
    # expanduser: a quoted "~/pool" must name the same cache as the shell-expanded path
    data_dir = Path(data_dir).expanduser()
    key = hashlib.sha1(f"{data_dir.resolve()}|{kind}".encode()).hexdigest()[:10]
    return Path(cache_root).expanduser() / f"{data_dir.name}-{kind}-{key}"
