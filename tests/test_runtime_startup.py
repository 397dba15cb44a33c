"""Start-up weight of the command line: commands that code nothing import none of the heavy parts.

``--help``, ``archive list`` and ``archive verify`` read headers and CRCs
only: they must not pay for ONNX Runtime, scipy (the high band's and the
features' FFTs), scikit-learn or torch. Coding commands pay for what they
use (ONNX Runtime, scipy) but never for the train extra's torch and
scikit-learn.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import adaptive_codec
from tests.conftest import EXAMPLES_DIR

#: Runs the CLI, then writes the heavy modules it imported to $STARTUP_PROBE_FILE.
_PROBE = """
import atexit, os, runpy, sys
HEAVY = ("torch", "sklearn", "onnxruntime", "scipy")
def _record():
    with open(os.environ["STARTUP_PROBE_FILE"], "w") as out:
        out.write(" ".join(m for m in HEAVY if m in sys.modules))
atexit.register(_record)
sys.argv = ["adaptive-codec"] + sys.argv[1:]
runpy.run_module("adaptive_codec", run_name="__main__", alter_sys=True)
"""


def _heavy_imports(tmp_path: Path, *args: str) -> list[str]:
    here = str(Path(adaptive_codec.__file__).resolve().parents[1])
    probe = tmp_path / "probe.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p),
           "OMP_NUM_THREADS": "1", "ADAPTIVE_CODEC_EXECUTOR": "onnxruntime", "STARTUP_PROBE_FILE": str(probe)}
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    return probe.read_text().split()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("startup")
    out = tmp / "a.aca"
    assert _heavy_imports(tmp, "archive", "create", str(out), str(EXAMPLES_DIR / "speech.flac"),
                          "--profile", "speech") == ["onnxruntime", "scipy"]
    return out


def test_help_imports_nothing_heavy(tmp_path):
    assert _heavy_imports(tmp_path, "--help") == []


@pytest.mark.parametrize("command", ["list", "verify"])
def test_archive_reading_commands_import_nothing_heavy(tmp_path, archive, command):
    assert _heavy_imports(tmp_path, "archive", command, str(archive)) == []


def test_auto_encode_imports_neither_torch_nor_sklearn(tmp_path):
    assert _heavy_imports(tmp_path, "encode", str(EXAMPLES_DIR / "mixed.flac"), "m.acx") == ["onnxruntime", "scipy"]
