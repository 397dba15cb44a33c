"""Shared pytest fixtures: repository paths, the developers' corpus, real clips.

Tests use real recordings: the bundled examples (``examples/``, always
present) for fast tests, and ``../shared/corpus`` (see DESIGN.md, "Data")
where a test needs more. Corpus tests skip with a clear message when the
corpus is absent; set ``ADAPTIVE_CODEC_CORPUS`` to point elsewhere.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from adaptive_codec.audio import load_audio

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = REPO_ROOT / "examples"


#: Folders of stand-alone scripts: benchmarks, then training and data tools.
SCRIPT_DIRS = (REPO_ROOT / "benchmarks", REPO_ROOT / "tools")


@pytest.fixture(scope="session")
def bench_script() -> Callable:
    """``bench_script(name)``: the module of ``benchmarks/<name>.py`` or ``tools/<name>.py``.

    Scripts are not a package; a name found in both folders is an error, so a
    test never loads the other script by accident.
    """
    def load(name: str):
        found = [d / f"{name}.py" for d in SCRIPT_DIRS if (d / f"{name}.py").is_file()]
        if len(found) != 1:
            raise LookupError(f"{name}.py: expected in exactly one of "
                              f"{', '.join(d.name + '/' for d in SCRIPT_DIRS)}, found {len(found)}")
        # Registered under a private name so a script's dataclasses can find
        # their module, without shadowing a real package of the same name.
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", found[0])
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module

    return load


def corpus_path() -> Path:
    """Where the developers' corpus is expected (it may be missing)."""
    env = os.environ.get("ADAPTIVE_CODEC_CORPUS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (holds pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The developers' corpus (speech/, music/, ambient/, mixed/, manifest.csv).

    Skips the test if the corpus is not there.
    """
    path = corpus_path()
    if not (path / "manifest.csv").is_file():
        pytest.skip(f"developers' corpus not found at {path} "
                    "(set ADAPTIVE_CODEC_CORPUS to its folder)")
    return path


@pytest.fixture(scope="session")
def example_clip() -> Callable[[str], tuple[np.ndarray, int]]:
    """Load a bundled example: ``example_clip("speech") -> (audio, sample_rate_hz)``.

    Names: ``speech``, ``music``, ``ambient``, ``mixed``. Audio is float32
    ``(channels, samples)``. Results are cached; do not modify them in place.
    """
    cache: dict[str, tuple[np.ndarray, int]] = {}

    def load(name: str) -> tuple[np.ndarray, int]:
        if name not in cache:
            audio, info = load_audio(EXAMPLES_DIR / f"{name}.flac")
            audio.setflags(write=False)
            cache[name] = (audio, info.sample_rate_hz)
        return cache[name]

    return load


@pytest.fixture
def write_text(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a text file under ``tmp_path``: ``write_text("a/b.toml", text)``."""

    def write(relative: str, text: str) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def noise_training_cache(tmp_path: Path) -> Path:
    """A codec training cache (``<label>.npy`` + ``.json``) of 1 s of seeded noise per class."""
    import json

    root = tmp_path / "noise-cache"
    root.mkdir()
    rng = np.random.default_rng(0)
    for label in ("speech", "music", "ambient"):
        np.save(root / f"{label}.npy", (rng.standard_normal(24000) * 3000).astype(np.int16))
        (root / f"{label}.json").write_text(json.dumps(
            {"clips": [{"path": "x", "source": "x", "offset": 0, "n_samples": 24000}]}))
    return root
